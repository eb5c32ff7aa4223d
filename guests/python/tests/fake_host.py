"""A stand-in for the bindings componentize-py generates (``wit_world``,
``componentize_py_types``), so that the SDK's logic can be unit-tested on a
plain CPython: an in-memory host that runs activities at once.

Import this module before ``cairn_sdk``.
"""

import dataclasses
import enum
import sys
import types
from typing import Generic, Optional, TypeVar

T = TypeVar("T")


@dataclasses.dataclass
class Ok(Generic[T]):
    value: T


@dataclasses.dataclass(frozen=True)
class Err(Exception):
    value: object


@dataclasses.dataclass
class Failure:
    error_type: str
    message: str
    details: Optional[str]


@dataclasses.dataclass
class RetryPolicy:
    max_attempts: int
    first_interval_ms: int
    backoff_coefficient: float
    max_interval_ms: Optional[int]
    retry_timeout_ms: Optional[int]


class LogLevel(enum.Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


class FunctionKind(enum.Enum):
    ORCHESTRATOR = 0
    ACTIVITY = 1


@dataclasses.dataclass
class FunctionInfo:
    name: str
    kind: FunctionKind


@dataclasses.dataclass
class OperationOutcome:
    state: Optional[str]
    output: str


class Host:
    """The orchestration host: task ids in creation order; an activity
    "runs" when awaited, through ``activities[name](input_json)``, which
    returns JSON text or raises ``Err``."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.activities = {}
        self.events = {}
        self.tasks = []  # (kind, name, input_json, retry)
        self.outcomes = {}
        self.logs = []
        self.custom_status = "unset"
        self.continued = None
        self.locks = []
        self.unlocked = []
        self.now_ms = 1_700_000_000_000
        self.any_winner = None  # index into the ids given to await_any
        self.input_json = "null"
        self.entity_calls = {}  # task id -> (entity, operation, input_json)
        self.entity_handler = None  # (entity, operation, input_json) -> JSON text, or raises Err
        self.signals = []  # (entity, operation, input_json, scheduled_at)
        self.started = []  # (name, input_json, instance_id)
        self.entity = ("Counter", "c1")

    def _new(self, kind, name, input_json=None, retry=None):
        self.tasks.append((kind, name, input_json, retry))
        return len(self.tasks) - 1

    def _outcome(self, task_id):
        if task_id not in self.outcomes:
            kind, name, input_json, _ = self.tasks[task_id]
            try:
                if kind in ("activity", "sub"):
                    value = self.activities[name](input_json)
                elif kind == "entity":
                    value = self.entity_handler(*self.entity_calls[task_id])
                elif kind == "event":
                    value = self.events[name]
                else:
                    value = "null"
                self.outcomes[task_id] = Ok(value)
            except Err as e:
                self.outcomes[task_id] = e
        return self.outcomes[task_id]


host = Host()


def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def _await_task(task_id):
    outcome = host._outcome(task_id)
    if isinstance(outcome, Err):
        raise outcome
    return outcome.value


def _await_any(ids):
    if not ids:
        raise RuntimeError("trap: await-any of nothing")
    return ids[host.any_winner or 0]


def _call_entity(entity, operation, input_json):
    if "@" not in entity:
        raise Err(Failure("InvalidInput", f"bad entity id {entity!r}", None))
    task_id = host._new("entity", entity, input_json)
    host.entity_calls[task_id] = (entity, operation, input_json)
    return task_id


def _signal_entity(entity, operation, input_json, scheduled_at):
    if "@" not in entity:
        raise Err(Failure("InvalidInput", f"bad entity id {entity!r}", None))
    host.signals.append((entity, operation, input_json, scheduled_at))


def _start_orchestration(name, input_json, instance_id):
    host.started.append((name, input_json, instance_id))
    return instance_id or f"started-{len(host.started)}"


def _lock(names):
    if host.locks and len(host.unlocked) < len(host.locks):
        raise Err(Failure("LockError", "nested lock", None))
    host.locks.append(names)
    return host._new("lock", ",".join(names))


_module("componentize_py_types", Ok=Ok, Err=Err)
_module("wit_world")
_module("wit_world.imports")
_module(
    "wit_world.imports.types",
    Failure=Failure,
    RetryPolicy=RetryPolicy,
    LogLevel=LogLevel,
    FunctionKind=FunctionKind,
    FunctionInfo=FunctionInfo,
)
_module(
    "wit_world.imports.orchestration",
    instance_id=lambda: "inst-1",
    execution_id=lambda: "exec-1",
    function_name=lambda: "Fn",
    input=lambda: host.input_json,
    current_time=lambda: host.now_ms,
    new_guid=lambda: f"guid-{len(host.tasks)}",
    is_replaying=lambda: False,
    schedule_activity=lambda name, input, retry: host._new("activity", name, input, retry),
    schedule_sub_orchestration=lambda name, input, instance_id, retry: host._new("sub", name, input, retry),
    create_timer=lambda fire_at: host._new("timer", str(fire_at)),
    wait_for_event=lambda name: host._new("event", name),
    await_task=_await_task,
    await_all=lambda ids: [host._outcome(i) for i in ids],
    await_any=_await_any,
    call_entity=_call_entity,
    signal_entity=_signal_entity,
    lock=_lock,
    unlock=lambda task_id: host.unlocked.append(task_id),
    set_custom_status=lambda status: setattr(host, "custom_status", status),
    continue_as_new=lambda input, preserve: setattr(host, "continued", (input, preserve)),
    log=lambda level, message: host.logs.append(("orchestration", level.name, message)),
)
_module(
    "wit_world.imports.activity_context",
    instance_id=lambda: "inst-1",
    function_name=lambda: "Act",
    idempotency_key=lambda: "inst-1:exec-1:0",
    attempt=lambda: 1,
    log=lambda level, message: host.logs.append(("activity", level.name, message)),
)
_module(
    "wit_world.imports.entity_context",
    entity_name=lambda: host.entity[0],
    entity_key=lambda: host.entity[1],
    current_time=lambda: host.now_ms,
    signal_entity=_signal_entity,
    start_orchestration=_start_orchestration,
    log=lambda level, message: host.logs.append(("entity", level.name, message)),
)
_module("wit_world.exports")
_module("wit_world.exports.entity", OperationOutcome=OperationOutcome)
sys.modules["wit_world.imports"].entity_context = sys.modules["wit_world.imports.entity_context"]
sys.modules["wit_world.exports"].entity = sys.modules["wit_world.exports.entity"]
sys.modules["wit_world.imports"].orchestration = sys.modules["wit_world.imports.orchestration"]
sys.modules["wit_world.imports"].activity_context = sys.modules["wit_world.imports.activity_context"]
sys.modules["wit_world.imports"].types = sys.modules["wit_world.imports.types"]
