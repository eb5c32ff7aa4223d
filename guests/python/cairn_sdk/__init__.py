"""Write Cairn orchestrators and activities in Python.

A Cairn component serves named functions. Orchestrators are replayed from
their recorded history whenever they resume, so they must be deterministic;
activities do the actual work and may run more than once::

    import cairn_sdk

    app = cairn_sdk.App()

    @app.orchestrator("HelloCities")
    def hello_cities(context):
        result1 = yield context.call_activity("SayHello", "Tokyo")
        result2 = yield context.call_activity("SayHello", "Seattle")
        return [result1, result2]

    @app.activity("SayHello")
    def say_hello(name):
        return f"Hello {name}!"

    from cairn_sdk import Functions  # the component's export

Orchestrators may also be plain functions, where waiting happens inside the
call (``greeting = context.call_activity("SayHello", "Tokyo")``); see
:mod:`cairn_sdk.orchestration`.

Durable Functions code ports with its import changed to
``import cairn_sdk as df`` and its registration to
``df.Orchestrator.create(fn, name="...")`` (or ``@app.orchestration_trigger``
/ ``@app.activity_trigger`` on a ``df.DFApp()``).

Failures cross typed: ``raise ValueError("bad")`` in an activity reaches
the orchestrator as an :class:`ActivityFailedError` whose ``error_type`` is
``"ValueError"`` and ``message`` ``"bad"``.
"""

from .activity import ActivityContext
from ._levels import LogLevel
from .app import Activity, App, DFApp, Orchestrator, default_app
from .errors import (
    ActivityFailedError,
    CapabilityDeniedError,
    Failure,
    NetworkAccessError,
    NonDeterministicCallError,
    SubOrchestratorFailedError,
    TaskFailedError,
    WasiUnavailableError,
)
from .orchestration import (
    DurableHttpResponse,
    DurableOrchestrationContext,
    LockGuard,
    OrchestrationContext,
    RetryOptions,
    Task,
    TimerTask,
    WhenAllTask,
    WhenAnyTask,
    client_value,
)
from ._runtime import Functions, activity_context, current_kind

__version__ = "0.1.0"

__all__ = [
    "Activity",
    "ActivityContext",
    "ActivityFailedError",
    "App",
    "CapabilityDeniedError",
    "DFApp",
    "DurableHttpResponse",
    "DurableOrchestrationContext",
    "Failure",
    "Functions",
    "LockGuard",
    "LogLevel",
    "NetworkAccessError",
    "NonDeterministicCallError",
    "Orchestrator",
    "OrchestrationContext",
    "RetryOptions",
    "SubOrchestratorFailedError",
    "Task",
    "TaskFailedError",
    "TimerTask",
    "WasiUnavailableError",
    "WhenAllTask",
    "WhenAnyTask",
    "activity",
    "activity_context",
    "client_value",
    "current_kind",
    "default_app",
    "orchestrator",
]


def orchestrator(name=None):
    """Decorator: registers an orchestrator on the default app (see
    :meth:`App.orchestrator`)."""
    return default_app.orchestrator(name)


def activity(name=None):
    """Decorator: registers an activity on the default app (see
    :meth:`App.activity`)."""
    return default_app.activity(name)
