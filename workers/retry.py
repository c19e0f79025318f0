"""Which failures are worth retrying. Anything else fails the task at once, with its reason."""

import asyncio

from asyncpg.exceptions import PostgresConnectionError
from pymilvus.exceptions import MilvusException
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# serialization_failure, deadlock_detected, admin/crash shutdown, cannot_connect_now, too many conns
_RETRYABLE_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "53300"}


class TransientError(Exception):
    """A failure of a dependency (database, Milvus, broker) that may pass; the task is retried."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return sqlstate in _RETRYABLE_SQLSTATES or isinstance(
            getattr(exc.orig, "__cause__", None), PostgresConnectionError | OSError
        )
    return isinstance(
        exc,
        MilvusException
        | PostgresConnectionError
        | ConnectionError
        | TimeoutError
        | OSError
        | asyncio.TimeoutError,
    )
