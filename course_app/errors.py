"""Domain errors raised by services. State turns them into messages, API routes
into status codes, each in one place."""


class DomainError(Exception):
    """Base class: ``str(error)`` is a message safe to show the user."""

    status_code = 400
    code = "bad_request"
    retryable = False  # whether sending the same request again may succeed


class InvalidInput(DomainError):
    status_code = 400
    code = "invalid_input"


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Stale(Conflict):
    """An edit made on a view older than the course's revision (or an ``If-Match``
    that no longer matches): refused so it cannot undo a change its author never saw."""

    status_code = 412
    code = "stale_revision"

    def __init__(self, message: str = "This course changed in another window; your view is now up to date.",
                 revision: int | None = None) -> None:
        super().__init__(message)
        self.revision = revision  # the course's current revision, when known


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooLarge(DomainError):
    status_code = 413
    code = "too_large"


class UnsupportedType(DomainError):
    status_code = 415
    code = "not_a_video"


class StorageUnavailable(DomainError):
    status_code = 503
    code = "storage_error"
    retryable = True


class DatabaseUnavailable(DomainError):
    status_code = 503
    code = "database_unavailable"
    retryable = False  # the work is kept; sending it again would duplicate it


class QuotaExceeded(DomainError):
    status_code = 413
    code = "quota_exceeded"
