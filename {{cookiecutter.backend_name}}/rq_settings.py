"""RQ settings for ``rq info -c rq_settings`` and
``rq worker -c rq_settings -w label_studio_ml.worker.Worker``.

They come from the runtime's settings, so they read the same environment variables as the API
(see .env.example).
"""

from label_studio_ml.settings import Settings, redis_url_from

_settings = Settings.from_env()
REDIS_URL = _settings.redis_url or redis_url_from("localhost")
QUEUES = [_settings.rq_queue_name]
