"""A worker's heartbeat, touched by a timer of its consumer's event loop (the main process):
while the loop is blocked (a confirm wait, a stuck socket, SIGSTOP) nothing receives or acks,
and the file goes stale. Children run tasks; their time is bounded by the task time limits."""

from typing import Any

from celery import bootsteps

from shared.liveness import Heartbeat
from shared.settings import get_settings


class LivenessStep(bootsteps.StartStopStep):
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        settings = get_settings()
        self.heartbeat = Heartbeat(settings.liveness_dir, "worker")
        self.interval = settings.liveness_interval_s
        self.tref: Any = None
        super().__init__(c, **kwargs)

    def start(self, c: Any) -> None:
        self.heartbeat.touch()
        self.tref = c.timer.call_repeatedly(self.interval, self.heartbeat.touch)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    def shutdown(self, c: Any) -> None:
        self.stop(c)
        self.heartbeat.remove()
