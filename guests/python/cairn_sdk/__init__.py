"""Write Cairn orchestrators, activities and durable entities in Python.

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

    from cairn_sdk import Functions, Entity  # the component's exports

Entities are functions of their context (``df.Entity.create(fn)``,
``@app.entity("Counter")``); orchestrations call them with
``context.call_entity(EntityId("Counter", "c1"), "add", 1)``, signal them
with ``context.signal_entity(...)`` and lock them for a critical section
with ``context.lock_entities(...)``; see :mod:`cairn_sdk.entity`.

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
import sys as _sys

from .app import Activity, App, DFApp, Orchestrator, default_app
from .entity import DurableEntityContext, EntityContext, EntityId
from .errors import (
    ActivityFailedError,
    CapabilityDeniedError,
    EntityOperationFailedError,
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
    EntityTask,
    LockGuard,
    OrchestrationContext,
    RetryOptions,
    Task,
    TimerTask,
    WhenAllTask,
    WhenAnyTask,
    client_value,
)
from ._runtime import Entity, Functions, activity_context, current_kind

__version__ = "0.1.0"

__all__ = [
    "Activity",
    "ActivityContext",
    "ActivityFailedError",
    "App",
    "CapabilityDeniedError",
    "DFApp",
    "DurableEntityContext",
    "DurableHttpResponse",
    "DurableOrchestrationContext",
    "Entity",
    "EntityContext",
    "EntityId",
    "EntityOperationFailedError",
    "EntityTask",
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
    "entity",
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


def entity(name=None):
    """Decorator: registers an entity function on the default app (see
    :meth:`App.entity`)."""
    return default_app.entity(name)


# The component's main module (componentize-py's `main`, being imported
# now) must expose the `cairn:durable/entity` export as well as
# `Functions`: set it there, so that a main module ending with
# `from cairn_sdk import Functions` (written before entities existed)
# still builds.
_main = _sys.modules.get("main")
if _main is not None and "Entity" not in vars(_main):
    _main.Entity = Entity
del _main
