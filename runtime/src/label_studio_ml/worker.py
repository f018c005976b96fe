"""The RQ worker class every training worker runs (``label-studio-ml worker``, or
``rq worker -c rq_settings -w label_studio_ml.worker.Worker``).

It is rq's own :class:`rq.Worker` with two changes: it sets the process up as a worker
(:func:`label_studio_ml.process.setup_process`: the backend's log format and ``LOG_LEVEL``)
when it starts working, and the thread that listens for rq's commands (``rq:pubsub:<worker>``)
wakes every :data:`COMMAND_POLL_SECONDS` instead of every 60 s.

Why: on a warm shutdown rq unsubscribes that thread, then stops and joins it. From redis-py
8.2 on, ``PubSubWorkerThread.stop()`` waits for the thread to end, and an unsubscribed
``PubSub.get_message(timeout=60)`` sleeps the whole 60 s before it looks at the stop flag; a
worker asked to stop (``docker compose stop``, a deploy, ``supervisorctl restart``) then hangs
for a minute or is killed. A short poll (rq 2.0 used 0.2 s) bounds the stop by this interval, whatever the
redis-py and rq versions; the cost is one ``select`` call per interval on an idle socket.
"""

from __future__ import annotations

from typing import Any

from rq import Worker as _RQWorker

from .process import setup_process

#: how often the command listener checks its stop flag (seconds): bounds a worker's stop
COMMAND_POLL_SECONDS = 0.2


class Worker(_RQWorker):
    """:class:`rq.Worker` whose command listener stops within :data:`COMMAND_POLL_SECONDS`."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        # rq worker -w label_studio_ml.worker.Worker: the process is a worker from here on
        # (label-studio-ml worker set it up already, with its settings: then nothing changes).
        # Here and not in __init__: rq builds Worker objects to list workers (rq info, Worker.all).
        setup_process(role="worker")
        return super().work(*args, **kwargs)

    def subscribe(self) -> None:
        # the same subscription as rq's, with a short poll instead of sleep_time=60
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=COMMAND_POLL_SECONDS,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,
        )
