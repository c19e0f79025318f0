"""Periodic jobs run from beat. (Re-publishing lost tasks and retention are the sweeper's:
workers/sweeper.py, a process of its own.)"""

import logging
import time

from celery import shared_task

from shared.catalog.reconcile import reconcile
from shared.messaging import RECONCILE_INDEX
from workers.retry import TransientError, is_transient
from workers.runtime import runtime

log = logging.getLogger(__name__)

# Single writes seal into segments at most this often (a flush per write would make many
# tiny segments); bulk indexing flushes as it goes. Checked after each reconciliation.
FLUSH_EVERY_S = 300.0
_last_flush = 0.0


def _flush_if_due() -> None:
    global _last_flush
    if time.monotonic() - _last_flush < FLUSH_EVERY_S:
        return
    try:
        runtime().indexer.flush()
        _last_flush = time.monotonic()
    except Exception as exc:  # the index serves unsealed data meanwhile; next time retries
        log.warning("flushing the course collection failed: %r", exc)


@shared_task(
    name=RECONCILE_INDEX,
    ignore_result=True,
    autoretry_for=(TransientError,),
    retry_backoff=True,
    max_retries=3,
)
def reconcile_index() -> dict[str, int]:
    rt = runtime()
    try:
        report = rt.run(
            reconcile(rt.sessionmaker, rt.milvus, rt.settings.milvus_collection, rt.indexer)
        )
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        raise
    log.info("reconciliation: %s", report.as_dict())
    _flush_if_due()
    return report.as_dict()
