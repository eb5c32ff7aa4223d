"""Functions used by the host's Python end-to-end tests
(tests/e2e/python.rs): the sandbox around Python orchestrators and typed
failures in both orchestrator styles.

Orchestrators:
- `CallForbidden`, input the name of a call (`"time.time"`, `"time.sleep"`,
  `"uuid.uuid4"`, `"os.urandom"`, `"random.seed"`, `"open"`,
  `"datetime.now"`, `"socket"`, `"socket.getaddrinfo"`): makes that call,
  which fails the instance (with `NonDeterministicCallError` naming the
  context's equivalent, `NetworkAccessError` for the network, or for
  `datetime.now`, which the SDK cannot intercept, a `Trap`).
- `CallForbiddenInActivity`, the same input: calls the activity
  `Forbidden`, which makes that call, and returns the caught failure as
  `{"error_type", "message"}`.
- `ReplayStable`: draws `random.random()`, reads `current_utc_datetime`
  and `new_uuid()`, sends them through the activity `Echo` (so they are
  recorded), draws again, and returns `{"drawn", "now", "uuid"}` as
  computed now next to `{"echoed"}`, what the history recorded. Equal
  when the values are replay-stable.
- `Prints`: `print()`s to stdout and stderr (which go to the replay-safe
  log), calls `PrintingActivity`, returns `"printed"`.
- `LazyImport`: imports a module that was not imported at build time;
  fails with `ModuleNotFoundError`.
- `CatchTyped` (plain) and `CatchTypedGenerator` (generator), input
  `{"type": ..., "message": ..., "details": ...}`: call `Fail` with it and
  return what the caught exception says.
- `Uncaught`, input a message: raises `RuntimeError(message)`.
- `UncaughtActivityFailure`, input as `CatchTyped`: calls `Fail` without
  catching.
- `CatchSubOrchestrator`: calls `Uncaught` as a sub-orchestration and
  returns what the caught exception says.
- `AllFailsFirst`: `task_all` of `Echo(1)`, `Fail(...)`, `Echo(3)`; returns
  the caught failure's type and the other tasks' results.
- `CheckSite` (a URL): the seed's CheckSiteAvailable in the generator
  style (`res = yield context.call_http("GET", url)`); returns
  `{"status", "content"}`, or `{"error_type"}` when the task fails.
- `Sleeps` `{"ms": t}`: plain style, `context.create_timer` (which waits)
  `t` ms; returns the deterministic time (ms) before and after as
  `{"before_ms", "after_ms"}` (the contract of the Rust and JS `Sleeps`).
- `Forgets` `"timer" | "event" | "activity" | "cancelled" | "nothing"`:
  schedules that task, never awaits it and returns `"returned"` (the SDK
  fails it with `UnawaitedTask` unless cancelled). `ForgetsGenerator`: a
  generator that creates a timer it never yields.
- `PyClientValues` (any input): waits (plain style) for the events `Flag`,
  `Amount`, `Order` and `Note` in that order; returns `{"input", "flag",
  "amount", "order", "note", "types"}` as the orchestrator saw them.
- `CallForbiddenInEntity`, input a name as for `CallForbidden`: calls
  operation `<name>` of entity `Sandboxed@x`, which makes that call, and
  returns the caught failure as `{"class", "error_type", "message",
  "entity_id", "operation"}`.
Entities:
- `Sandboxed`: operation `<name>` makes the call `<name>` of
  `CallForbidden`; operation `echo` returns its input.
Activities:
- `Echo`: returns its input.
- `Fail`, input `{"type": t, "message": m, "details": d}`: raises the
  built-in exception `t` (e.g. `ValueError`) with `m`, or when `t` is not a
  built-in exception or `d` is given, `cairn_sdk.Failure(t, m, d)`.
- `PrintingActivity`: prints and returns `"activity printed"`.
- `Forbidden`, input a name as for `CallForbidden`: makes that call.
"""

import builtins
import datetime
import os
import random
import socket
import sys
import time
import uuid

import cairn_sdk
from cairn_sdk import ActivityFailedError, EntityId, EntityOperationFailedError, Failure, SubOrchestratorFailedError

app = cairn_sdk.App()

FORBIDDEN = {
    "time.time": lambda: time.time(),
    "time.sleep": lambda: time.sleep(1),
    "time.monotonic": lambda: time.monotonic(),
    "uuid.uuid4": lambda: str(uuid.uuid4()),
    "os.urandom": lambda: os.urandom(8).hex(),
    "random.seed": lambda: random.seed(),
    "open": lambda: open("/etc/passwd").read(),
    "datetime.now": lambda: datetime.datetime.now().isoformat(),
    "socket": lambda: socket.create_connection(("example.com", 80)).recv(1),
    "socket.getaddrinfo": lambda: str(socket.getaddrinfo("example.com", 80)),
}


@app.orchestrator("CallForbidden")
def call_forbidden(context, name):
    return FORBIDDEN[name]()


@app.orchestrator("CallForbiddenInActivity")
def call_forbidden_in_activity(context, name):
    try:
        context.call_activity("Forbidden", name)
    except ActivityFailedError as e:
        return {"error_type": e.error_type, "message": e.message}
    return "not raised"


@app.orchestrator("CallForbiddenInEntity")
def call_forbidden_in_entity(context, name):
    try:
        context.call_entity(EntityId("Sandboxed", "x"), name)
    except EntityOperationFailedError as e:
        return {
            "class": type(e).__name__,
            "error_type": e.error_type,
            "message": e.message,
            "entity_id": e.entity_id,
            "operation": e.operation,
        }
    return "not raised"


@app.entity("Sandboxed")
def sandboxed(context):
    if context.operation_name == "echo":
        return context.get_input()
    return FORBIDDEN[context.operation_name]()


@app.orchestrator("ReplayStable")
def replay_stable(context):
    drawn = random.random()
    now = context.current_utc_datetime.isoformat()
    new_uuid = context.new_uuid()
    echoed = context.call_activity("Echo", {"drawn": drawn, "now": now, "uuid": new_uuid})
    return {
        "drawn": drawn,
        "now": now,
        "uuid": new_uuid,
        "echoed": echoed,
        "second_draw": random.random(),
    }


@app.orchestrator("Prints")
def prints(context):
    print("hello from a Python orchestrator")
    print("a warning", file=sys.stderr)
    sys.stdout.write("partial ")
    sys.stdout.write("line\n")
    sys.stdout.write("unterminated")
    return [context.call_activity("PrintingActivity", None), "printed"]


@app.orchestrator("LazyImport")
def lazy_import(context):
    import colorsys  # noqa: F401  (not imported when the component was built)

    return "imported"


def describe(e):
    return {
        "class": type(e).__name__,
        "error_type": e.error_type,
        "message": e.message,
        "details": e.details,
        "is_failure": isinstance(e, Failure),
        "task_id": e.task_id,
        "name": e.name,
    }


@app.orchestrator("CatchTyped")
def catch_typed(context, spec):
    try:
        context.call_activity("Fail", spec)
    except ActivityFailedError as e:
        return describe(e)
    return "not raised"


@app.orchestrator("CatchTypedGenerator")
def catch_typed_generator(context):
    spec = context.get_input()
    try:
        yield context.call_activity("Fail", spec)
    except ActivityFailedError as e:
        after = yield context.call_activity("Echo", "after")
        return dict(describe(e), after=after)
    return "not raised"


@app.orchestrator("CheckSite")
def check_site(context):
    url = context.get_input()
    try:
        res = yield context.call_http("GET", url)
    except ActivityFailedError as e:
        return {"error_type": e.error_type}
    return {"status": res.status_code, "content": res.content}


@app.orchestrator("Uncaught")
def uncaught(context, message):
    raise RuntimeError(message)


@app.orchestrator("UncaughtActivityFailure")
def uncaught_activity_failure(context, spec):
    return context.call_activity("Fail", spec)


@app.orchestrator("CatchSubOrchestrator")
def catch_sub_orchestrator(context):
    try:
        context.call_sub_orchestrator("Uncaught", "child failed")
    except SubOrchestratorFailedError as e:
        return describe(e)
    return "not raised"


@app.orchestrator("AllFailsFirst")
def all_fails_first(context):
    tasks = [
        context.schedule_activity("Echo", 1),
        context.schedule_activity("Fail", {"type": "KeyError", "message": "missing"}),
        context.schedule_activity("Echo", 3),
    ]
    try:
        context.task_all(tasks)
    except ActivityFailedError as e:
        return {"error_type": e.error_type, "others": [tasks[0].result, tasks[2].result]}
    return "not raised"


def _ms(moment):
    return int(moment.timestamp() * 1000)


@app.orchestrator("Sleeps")
def sleeps(context, input_):
    before = context.current_utc_datetime
    context.create_timer(datetime.timedelta(milliseconds=input_["ms"]))
    return {"before_ms": _ms(before), "after_ms": _ms(context.current_utc_datetime)}


@app.orchestrator("Forgets")
def forgets(context, what):
    later = datetime.timedelta(seconds=2)
    if what == "timer":
        context.schedule_timer(later)
    elif what == "event":
        context.schedule_external_event("Approval")
    elif what == "activity":
        context.schedule_activity("Echo", 3)
    elif what == "cancelled":
        context.schedule_timer(later).cancel()
    return "returned"


@app.orchestrator("ForgetsGenerator")
def forgets_generator(context):
    context.create_timer(datetime.timedelta(seconds=2))
    yield context.call_activity("Echo", 2)
    return "returned"


@app.orchestrator("PyClientValues")
def py_client_values(context, input_):
    values = {
        "input": input_,
        "flag": context.wait_for_external_event("Flag"),
        "amount": context.wait_for_external_event("Amount"),
        "order": context.wait_for_external_event("Order"),
        "note": context.wait_for_external_event("Note"),
    }
    values["types"] = {k: type(v).__name__ for k, v in values.items()}
    return values


@app.activity("Echo")
def echo(value):
    return value


@app.activity("Fail")
def fail(spec):
    error_type = spec["type"]
    cls = getattr(builtins, error_type, None)
    if spec.get("details") is None and isinstance(cls, type) and issubclass(cls, Exception):
        raise cls(spec["message"])
    raise Failure(error_type, spec["message"], spec.get("details"))


@app.activity("Forbidden")
def forbidden(name):
    return FORBIDDEN[name]()


@app.activity("PrintingActivity")
def printing_activity():
    print("hello from a Python activity")
    return "activity printed"


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)
