"""Beat's scheduler: the persistent one, with every broker wait bounded and a heartbeat.

Beat publishes on a connection of its own with socket read/write timeouts; each publish waits
at most the publish timeout for its confirm (shared.messaging.BoundedAMQP). After a failed
publish the socket is dropped rather than closed gracefully, and the next one reconnects: a
confirm that arrives late on the old channel can never be taken for the next message's. Each
tick touches the liveness file, and beat ticks at least every `beat_max_loop_interval`."""

import logging
from typing import Any

from celery.beat import PersistentScheduler
from kombu.utils.objects import cached_property

from shared.liveness import Heartbeat
from shared.messaging import drop, publishing_connection
from shared.settings import get_settings

log = logging.getLogger(__name__)


class BoundedScheduler(PersistentScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.heartbeat = Heartbeat(get_settings().liveness_dir, "beat")
        self.heartbeat.touch()
        super().__init__(*args, **kwargs)

    @cached_property
    def connection(self) -> Any:
        return publishing_connection(self.app, confirm=True)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self.heartbeat.touch()
        return float(super().tick(*args, **kwargs))

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        log.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as exc:
            log.error("publishing %s failed: %r; dropping the connection", entry.name, exc)
            self._drop_connection()

    def _drop_connection(self) -> None:
        connection = self.__dict__.pop("connection", None)
        self.__dict__.pop("producer", None)
        drop(connection)

    def close(self) -> None:
        self.heartbeat.remove()
        super().close()
