"""Logging for every process: one JSON object per line (COURSEWISE_LOG_FORMAT=text for people),
carrying the request id of the write being served or applied, so one grep follows a write from
the HTTP request into the task and the worker."""

import faulthandler
import json
import logging
import os
import re
import signal
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept only if it is short and printable: it ends up in every log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

request_id_var: ContextVar[str | None] = ContextVar("coursewise_request_id", default=None)


def valid_request_id(value: str | None) -> str | None:
    return value if value is not None and _REQUEST_ID.match(value) else None


def new_request_id() -> str:
    # 128 random bits as 32 hex digits, like uuid4().hex, without building a UUID per request.
    return os.urandom(16).hex()


def current_request_id() -> str | None:
    return request_id_var.get()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


# Attributes every LogRecord has; anything else was passed with `extra=` and is logged too.
# `kill -USR2 <pid>` writes every thread's Python stack to the process's stderr (its log): what a
# process that hangs but stays alive is waiting on (the fault suite sends it on a failure).
# Not SIGUSR1: a Celery worker dumps its own threads on that one, into its log.
STACK_DUMP_SIGNAL = signal.SIGUSR2

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging() -> None:
    level = os.environ.get("COURSEWISE_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    if os.environ.get("COURSEWISE_LOG_FORMAT", "json").lower() == "text":
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [%(process)d] [%(request_id)s] %(message)s"
            )
        )
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    # Replace (not add to) our handler when called again, e.g. by a forked child.
    for existing in [h for h in root.handlers if getattr(h, "_coursewise", False)]:
        root.removeHandler(existing)
    handler._coursewise = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    if sys.__stderr__ is not None:
        faulthandler.register(STACK_DUMP_SIGNAL, file=sys.__stderr__, all_threads=True)
