"""The one exception hierarchy. Every error a client sees is rendered from one of these.

Body shape (all 4xx/5xx): {"error": {"code", "message", "details": [{"loc", "code", "message"}]}}
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ErrorDetail:
    loc: list[str | int]
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"loc": self.loc, "code": self.code, "message": self.message}


@dataclass
class CoursewiseError(Exception):
    message: str
    details: list[ErrorDetail] = field(default_factory=list)
    status_code = 500
    code = "internal_error"

    def __str__(self) -> str:
        return self.message

    def headers(self) -> dict[str, str]:
        return {}


class NotFound(CoursewiseError):
    status_code = 404
    code = "not_found"


class CourseNotFound(NotFound):
    code = "course_not_found"

    def __init__(self, course_id: str) -> None:
        super().__init__(
            f"Course {course_id!r} does not exist.",
            [ErrorDetail(["path", "course_id"], self.code, "no course with this id")],
        )


class LearnerNotFound(NotFound):
    code = "learner_not_found"

    def __init__(self, learner_id: str) -> None:
        super().__init__(
            f"Learner {learner_id!r} does not exist.",
            [ErrorDetail(["path", "user_id"], self.code, "no learner with this id")],
        )


class TaskNotFound(NotFound):
    code = "task_not_found"

    def __init__(self, task_id: str) -> None:
        super().__init__(
            f"Task {task_id!r} does not exist.",
            [ErrorDetail(["path", "task_id"], self.code, "no task with this id")],
        )


class CourseNotIndexed(CoursewiseError):
    """The course exists but its vector is not in Milvus yet (or indexing failed)."""

    status_code = 409
    code = "course_not_indexed"

    def __init__(self, course_id: str) -> None:
        super().__init__(
            f"Course {course_id!r} is not indexed yet; retry when its index_state is 'indexed'.",
            [ErrorDetail(["path", "course_id"], self.code, "course has no vector yet")],
        )


class IdempotencyKeyConflict(CoursewiseError):
    status_code = 409
    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used for a different request.",
            [ErrorDetail(["header", "idempotency-key"], self.code, "use a new key per request")],
        )


class TaskNotRetryable(CoursewiseError):
    status_code = 409
    code = "task_not_retryable"

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(
            f"Task {task_id!r} is {status}; only failed tasks can be retried.",
            [ErrorDetail(["path", "task_id"], self.code, f"status is {status}")],
        )


class TaskNotCancellable(CoursewiseError):
    status_code = 409
    code = "task_not_cancellable"

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(
            f"Task {task_id!r} is {status}; only queued tasks can be cancelled.",
            [ErrorDetail(["path", "task_id"], self.code, f"status is {status}")],
        )


class InvalidRequest(CoursewiseError):
    status_code = 422
    code = "validation_error"


class PayloadTooLarge(CoursewiseError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(CoursewiseError):
    status_code = 415
    code = "unsupported_media_type"


class DependencyUnavailable(CoursewiseError):
    status_code = 503
    code = "dependency_unavailable"


class Unauthenticated(CoursewiseError):
    """No usable API key: missing, unknown, revoked or expired (the message says which)."""

    status_code = 401
    code = "unauthenticated"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"{reason} Send `Authorization: Bearer <api key>`.",
            [ErrorDetail(["header", "authorization"], self.code, reason)],
        )

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class InsufficientScope(CoursewiseError):
    status_code = 403
    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__(
            f"This API key lacks the {scope!r} scope.",
            [ErrorDetail(["header", "authorization"], self.code, f"needs scope {scope!r}")],
        )

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{self.scope}"'}


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"API key {key_id!r} does not exist.",
            [ErrorDetail(["path", "key_id"], self.code, "no API key with this id")],
        )


@dataclass
class _RetryLater(CoursewiseError):
    retry_after_s: int = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, self.retry_after_s))}


class RateLimited(_RetryLater):
    status_code = 429
    code = "rate_limited"


class TooManyPendingTasks(_RetryLater):
    """The caller's own backlog is full: its earlier writes must drain first."""

    status_code = 429
    code = "too_many_pending_tasks"


class BacklogFull(_RetryLater):
    """All callers together have too much queued: shed load instead of growing the queue."""

    status_code = 503
    code = "backlog_full"
