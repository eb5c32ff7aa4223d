"""Typed errors: one class per kind of refusal, carrying the server's message."""

from __future__ import annotations

import json
from typing import Any


class CairnError(Exception):
    """A request failed. `status` is the HTTP status (None when the server
    could not be reached), `message` the server's `ExceptionMessage` (what
    exactly was wrong), `error_type` its `ExceptionType`, `body` the decoded
    error document."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error_type: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message if status is None else f"{status}: {message}")
        self.message = message
        self.status = status
        self.error_type = error_type
        self.body = body


class BadRequest(CairnError):
    """400: a malformed argument, an unknown orchestrator, an invalid id."""


class Unauthorized(CairnError):
    """401: the API key is missing or wrong."""


class Forbidden(CairnError):
    """403: refused (capability grants without a key, a foreign Host or Origin)."""


class NotFound(CairnError):
    """404: no such instance (or route)."""


class Conflict(CairnError):
    """The instance's state does not allow the request: 409 (the id is in
    use by an unfinished instance), 410 (it has finished: no more events,
    terminate, suspend or resume) or 412 (purging an unfinished instance,
    rewinding one that did not fail)."""


class WaitTimeout(CairnError, TimeoutError):
    """The instance did not finish within the wait; `last_status` is the
    status seen last."""

    def __init__(self, message: str, last_status: Any = None) -> None:
        super().__init__(message)
        self.last_status = last_status


_BY_STATUS: dict[int, type[CairnError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Conflict,
    412: Conflict,
}


def error_for(status: int, body: bytes, content_type: str | None = None) -> CairnError:
    """The typed error of an error response (`{"Message", "ExceptionMessage",
    "ExceptionType"}`; any other body is kept as text)."""
    doc: Any = None
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    message = None
    error_type = None
    if isinstance(doc, dict):
        message = doc.get("ExceptionMessage") or doc.get("Message")
        error_type = doc.get("ExceptionType")
    if not message:
        message = body.decode("utf-8", "replace").strip() or f"HTTP {status}"
    cls = _BY_STATUS.get(status, CairnError)
    return cls(message, status=status, error_type=error_type, body=doc)
