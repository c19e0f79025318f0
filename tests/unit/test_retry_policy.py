"""Which worker failures are retried (transient) and which fail the task at once."""

import pytest
from pymilvus.exceptions import MilvusException
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from workers.retry import TransientError, is_transient


class _DriverError(Exception):
    """Stands in for a driver exception carrying a PostgreSQL SQLSTATE."""

    def __init__(self, sqlstate: str | None = None, pgcode: str | None = None) -> None:
        super().__init__(sqlstate or pgcode)
        self.sqlstate = sqlstate
        self.pgcode = pgcode


def dbapi_error(orig: BaseException, cls: type[DBAPIError] = DBAPIError) -> DBAPIError:
    return cls("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("broker hiccup"),
        dbapi_error(Exception("server closed the connection"), OperationalError),
        dbapi_error(Exception("connection is closed"), InterfaceError),
        ConnectionError("refused"),
        ConnectionResetError("reset"),
        TimeoutError("slow"),
        MilvusException(code=1, message="milvus down"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc) is True


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad"), KeyError("id"), TypeError("x"), RuntimeError("bug")],
    ids=lambda exc: type(exc).__name__,
)
def test_not_transient(exc: BaseException) -> None:
    assert is_transient(exc) is False


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("40P01", True),  # deadlock_detected
        ("40001", True),  # serialization_failure
        ("57P01", True),  # admin_shutdown
        ("53300", True),  # too_many_connections
        ("23505", False),  # unique_violation
        ("23503", False),  # foreign_key_violation
        ("22001", False),  # string_data_right_truncation
        ("42P01", False),  # undefined_table
    ],
)
def test_dbapi_error_by_sqlstate(sqlstate: str, expected: bool) -> None:
    assert is_transient(dbapi_error(_DriverError(sqlstate=sqlstate))) is expected


def test_dbapi_error_by_pgcode() -> None:
    assert is_transient(dbapi_error(_DriverError(pgcode="40P01"))) is True
    assert is_transient(dbapi_error(_DriverError(pgcode="23505"))) is False


def test_integrity_error_is_not_transient() -> None:
    assert is_transient(dbapi_error(_DriverError(sqlstate="23505"), IntegrityError)) is False


def test_dbapi_error_without_sqlstate_is_not_transient() -> None:
    assert is_transient(dbapi_error(Exception("syntax error"))) is False


def test_dbapi_error_caused_by_lost_connection_is_transient() -> None:
    orig = _DriverError()
    orig.__cause__ = ConnectionResetError("peer reset")
    assert is_transient(dbapi_error(orig)) is True


def test_invalidated_connection_is_transient() -> None:
    error = DBAPIError("SELECT 1", {}, _DriverError(sqlstate="23505"), connection_invalidated=True)
    assert is_transient(error) is True
