"""RQ settings for ``rq worker -c rq_settings`` and ``rq info -c rq_settings``.

They read the same environment variables as the API (see .env.example).
"""

import os

REDIS_URL = os.environ.get("REDIS_URL") or "redis://{}:{}/0".format(
    os.environ.get("REDIS_HOST", "localhost"), os.environ.get("REDIS_PORT", "6379")
)
QUEUES = [os.environ.get("RQ_QUEUE_NAME", "default")]
