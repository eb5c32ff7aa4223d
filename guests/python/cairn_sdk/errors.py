"""Typed failures: what crosses the boundary between functions.

A function fails by raising. The exception becomes a failure record
``{error_type, message, details}``:

- ``raise ValueError("bad")`` fails with error type ``"ValueError"`` and
  message ``"bad"``: the error type is the exception's class name;
- ``raise Failure("PaymentDeclined", "card declined", {"code": 51})`` chooses
  the error type and attaches structured details (any JSON value).

An orchestrator that waits for a failed task sees the failure as an
exception it can catch: :class:`ActivityFailedError` for an activity,
:class:`SubOrchestratorFailedError` for a sub-orchestration,
:class:`EntityOperationFailedError` for an entity operation, all
:class:`TaskFailedError` and :class:`Failure`, with ``error_type``,
``message`` and ``details`` exactly as the callee produced them. Left
uncaught, it fails the orchestration with that same type and message.
"""

import json

__all__ = [
    "Failure",
    "TaskFailedError",
    "ActivityFailedError",
    "SubOrchestratorFailedError",
    "EntityOperationFailedError",
    "NonDeterministicCallError",
    "WasiUnavailableError",
    "CapabilityDeniedError",
]

# Failures the host wraps around a callee's own failure, with the inner
# failure in `details` (kept for compatibility; the host currently passes
# failures through unchanged).
_HOST_WRAPPERS = ("ActivityFailed", "SubOrchestrationFailed")


class Failure(Exception):
    """A typed failure: raise it to choose the error type a caller sees.

    ``error_type`` is machine-readable (callers branch on it), ``message``
    is for people, ``details`` is optional structured data (any JSON value).
    """

    def __init__(self, error_type, message="", details=None):
        super().__init__(error_type, message)
        self.error_type = str(error_type)
        self.message = str(message)
        self.details = details

    def __str__(self):
        return f"{self.error_type}: {self.message}" if self.message else self.error_type

    def __repr__(self):
        return (
            f"{type(self).__name__}(error_type={self.error_type!r}, "
            f"message={self.message!r}, details={self.details!r})"
        )

    def is_type(self, error_type):
        """True when this failure's ``error_type`` is ``error_type``."""
        return self.error_type == error_type

    def cause(self):
        """The failure wrapped in ``details``, if the details hold one."""
        d = self.details
        if isinstance(d, dict):
            error_type = d.get("error_type", d.get("errorType", d.get("ErrorType")))
            message = d.get("message", d.get("Message"))
            if isinstance(error_type, str) and isinstance(message, str):
                return Failure(error_type, message, d.get("details", d.get("Details")))
        return None

    def root_cause(self):
        """The innermost failure: follows :meth:`cause` through host wrappers
        (``ActivityFailed``, ``SubOrchestrationFailed``)."""
        current = self
        while current.error_type in _HOST_WRAPPERS:
            inner = current.cause()
            if inner is None:
                break
            current = inner
        return current


class TaskFailedError(Failure):
    """Raised by waiting for a task that failed. ``error_type``, ``message``
    and ``details`` are the callee's; ``task_id`` and ``name`` say which
    task it was."""

    def __init__(self, error_type, message="", details=None, task_id=None, name=None):
        super().__init__(error_type, message, details)
        self.task_id = task_id
        self.name = name


class ActivityFailedError(TaskFailedError):
    """An activity failed (after its retries, if it had a retry policy)."""


class SubOrchestratorFailedError(TaskFailedError):
    """A sub-orchestration failed."""


class EntityOperationFailedError(TaskFailedError):
    """An entity operation called by the orchestration failed (the entity's
    state is as it was before the operation); ``name`` is the operation's
    description, ``entity_id`` the entity's ``name@key`` and ``operation``
    the operation's name."""

    entity_id = None
    operation = None


class NonDeterministicCallError(Failure):
    """An orchestrator called something whose result would differ on replay
    (the clock, the OS's random bytes, ``uuid.uuid4()``, ``time.sleep``).
    The message names the replay-safe equivalent on the context."""

    def __init__(self, message):
        super().__init__("NonDeterministicCallError", message)


class WasiUnavailableError(Failure):
    """An activity called something that needs WASI (the clock, the OS's
    random bytes, files, sockets). Python components are built with
    ``componentize-py --stub-wasi`` and import no WASI at all."""

    def __init__(self, message):
        super().__init__("WasiUnavailableError", message)


class NetworkAccessError(WasiUnavailableError):
    """A function opened a network connection or resolved a host name
    (``socket``, and what is built on it: ``http.client``, ``urllib``).
    The sandbox forbids network access; the message says what to use
    instead (durable HTTP from the orchestrator)."""

    def __init__(self, message):
        Failure.__init__(self, "NetworkAccessError", message)


class CapabilityDeniedError(Failure, PermissionError):
    """An activity used a capability its component was not granted at
    deploy: a directory (``--allow-dir``) or an HTTP host (``--allow-http``).
    Its error type is ``CapabilityDenied``, the type the host uses for the
    same refusal; ``details`` names what was refused."""

    def __init__(self, message, details=None):
        Failure.__init__(self, "CapabilityDenied", message, details)


def failure_from_exception(exc):
    """The failure a raised exception stands for."""
    if isinstance(exc, Failure):
        return exc.error_type, exc.message, exc.details
    return type(exc).__name__, str(exc), {"traceback": _traceback_lines(exc)}


def _traceback_lines(exc):
    """Where the exception was raised, innermost last, without reading
    source files (there is no file system to read them from)."""
    lines = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        # The SDK's own frames say nothing about the user's code.
        if not code.co_filename.endswith(_SDK_RUNTIME_FILES):
            lines.append(f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}")
        tb = tb.tb_next
    return lines[-20:]


_SDK_RUNTIME_FILES = ("cairn_sdk/_runtime.py", "cairn_sdk/app.py", "cairn_sdk/entity.py")


def details_to_json(details):
    """Details as the JSON text the WIT carries (``None`` stays ``None``)."""
    if details is None:
        return None
    try:
        return json.dumps(details, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return json.dumps(str(details))


def details_from_json(text):
    """Details from the WIT's JSON text; text that is not JSON stays text."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
