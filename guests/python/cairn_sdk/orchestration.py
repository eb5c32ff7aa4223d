"""The orchestrator's view of the world: everything it does goes through its
:class:`OrchestrationContext`, so that it replays identically.

Two styles, chosen by how the orchestrator is written:

- **Plain code** (a normal function): waiting happens inside the call.
  ``call_activity``, ``call_activity_with_retry``, ``call_sub_orchestrator``,
  ``wait_for_external_event`` and ``task_all`` return results,
  ``create_timer`` returns once the timer has fired, ``task_any`` returns
  the winning task::

      def hello(context):
          return [context.call_activity("SayHello", c) for c in ("Tokyo", "London")]

- **Generator** (a function that ``yield``\\ s), as in Durable Functions for
  Python: those methods return tasks, and ``yield task`` waits for one and
  evaluates to its result (or raises its failure)::

      def hello(context):
          first = yield context.call_activity("SayHello", "Tokyo")
          rest = yield context.task_all([context.call_activity("SayHello", c) for c in ("Seattle", "London")])
          return [first] + rest

In both styles, ``schedule_activity``, ``schedule_sub_orchestrator``,
``schedule_timer`` and ``schedule_external_event`` return tasks without
waiting (to fan out or race in plain code), and ``task.get()`` (or
``task.result``) waits for one task. Waiting blocks inside the host: the
host records every result, parks the orchestrator, and resumes (or replays)
it when the result exists.

Every task must be awaited (``get()``, ``yield``, ``task_all``,
``task_any``) or cancelled (``task.cancel()``) before the orchestrator
returns: an orchestrator that returns while a task it created was never
awaited fails with ``UnawaitedTask``, naming the task.

An orchestration's input and external event payloads are decoded with the
rule every Cairn SDK shares (see :func:`client_value`): a JSON string whose
text is a JSON object, array, number, ``true``, ``false`` or ``null`` (as
Durable Functions' Python client sends them, encoded twice) becomes that
value; any other string stays as sent.
"""

import datetime as _dt

import json as _json
import math

from . import _host
from ._codec import decode, encode
from ._levels import LogMethods, to_wit
from .entity import EntityId, _scheduled_ms, entity_id_text, host_call
from .errors import (
    ActivityFailedError,
    EntityOperationFailedError,
    Failure,
    SubOrchestratorFailedError,
    TaskFailedError,
    details_from_json,
)

__all__ = [
    "client_value",
    "OrchestrationContext",
    "DurableOrchestrationContext",
    "RetryOptions",
    "Task",
    "TimerTask",
    "EntityTask",
    "WhenAllTask",
    "WhenAnyTask",
    "LockGuard",
    "DurableHttpResponse",
]

#: Name of the host's built-in HTTP activity (as in Durable Functions).
HTTP_ACTIVITY = "BuiltIn::HttpActivity"

_UTC = _dt.timezone.utc
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def client_value(value):
    """The value an outside client meant: a string whose text is a JSON
    object, array, number, ``true``, ``false`` or ``null`` is taken to be a
    double-encoded value (Durable Functions' Python client encodes inputs
    and event data twice) and is replaced by it; every other value,
    including a string holding a JSON string, stays as it is.

    ``"Tokyo"`` stays ``"Tokyo"``; ``'{"a": 1}'`` becomes ``{"a": 1}``;
    ``"true"`` becomes ``True`` and ``"42"`` becomes ``42`` (so a string
    that must stay ``"42"`` travels inside an object: ``{"id": "42"}``).
    Applied to an orchestration's input and to external event payloads."""
    if not isinstance(value, str):
        return value
    try:
        inner = _json.loads(value, parse_constant=_refuse_constant)
    except ValueError:
        return value
    if isinstance(inner, str) or (isinstance(inner, float) and not math.isfinite(inner)):
        return value
    return inner


def _ms(value, what):
    """Milliseconds in ``value`` (a number of milliseconds or a timedelta)."""
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        return max(0, int(value.total_seconds() * 1000))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0, int(value))
    raise TypeError(f"{what} must be milliseconds (int) or a datetime.timedelta, not {type(value).__name__}")


class RetryOptions:
    """How the host retries a failed activity or sub-orchestration.

    Same constructor as Durable Functions' ``RetryOptions``: the delay
    before retry ``n`` (n >= 1) is ``min(first_retry_interval *
    backoff_coefficient ** (n - 1), max_retry_interval)``. Intervals are in
    milliseconds (a ``datetime.timedelta`` works too)::

        RetryOptions(50, 5, backoff_coefficient=2.0)  # retries after 50, 100, 200, 400 ms
    """

    def __init__(
        self,
        first_retry_interval_in_milliseconds,
        max_number_of_attempts,
        backoff_coefficient=1.0,
        max_retry_interval_in_milliseconds=None,
        retry_timeout_in_milliseconds=None,
    ):
        self.first_retry_interval_in_milliseconds = _ms(first_retry_interval_in_milliseconds, "first_retry_interval")
        self.max_number_of_attempts = int(max_number_of_attempts)
        self.backoff_coefficient = float(backoff_coefficient)
        self.max_retry_interval_in_milliseconds = _ms(max_retry_interval_in_milliseconds, "max_retry_interval")
        self.retry_timeout_in_milliseconds = _ms(retry_timeout_in_milliseconds, "retry_timeout")
        if self.max_number_of_attempts < 1:
            raise ValueError("max_number_of_attempts must be at least 1")
        if self.backoff_coefficient < 1.0:
            raise ValueError("backoff_coefficient must be at least 1.0")

    def _to_wit(self):
        return _host.WitRetryPolicy(
            max_attempts=self.max_number_of_attempts,
            first_interval_ms=self.first_retry_interval_in_milliseconds,
            backoff_coefficient=self.backoff_coefficient,
            max_interval_ms=self.max_retry_interval_in_milliseconds,
            retry_timeout_ms=self.retry_timeout_in_milliseconds,
        )

    def __repr__(self):
        return (
            f"RetryOptions({self.first_retry_interval_in_milliseconds}, {self.max_number_of_attempts}, "
            f"backoff_coefficient={self.backoff_coefficient})"
        )


class Task:
    """A scheduled piece of durable work: an activity, a sub-orchestration,
    a timer or an external event.

    Creating a task never blocks; :meth:`get` (or :attr:`result`, or
    ``yield task`` in a generator orchestrator) waits for its outcome.
    A task must be awaited or cancelled before the orchestrator returns
    (else it fails with ``UnawaitedTask``).
    """

    _failure_class = TaskFailedError

    def __init__(self, task_id, name=None):
        self._id = task_id
        self._name = name
        self._done = False
        self._value = None
        self._error = None
        self._cancelled = False
        _created(self)

    @property
    def id(self):
        """The id the host gave this task (0, 1, 2, ... in creation order)."""
        return self._id

    @property
    def name(self):
        """The activity, orchestrator or event name (``None`` for a timer)."""
        return self._name

    def get(self):
        """Waits until the task completes; returns its result or raises its
        failure (a :class:`TaskFailedError`). Calling it again returns the
        same outcome."""
        _observed(self)
        if not self._done:
            try:
                text = _host.orchestration.await_task(self._id)
            except _host.Err as e:
                self._settle_failure(e.value)
            else:
                self._settle_value(text)
        if self._error is not None:
            raise self._error
        return self._value

    @property
    def result(self):
        """Same as :meth:`get` (the Durable Functions spelling)."""
        return self.get()

    @property
    def is_completed(self):
        """True once the task's outcome is known here (it was waited for,
        or won a ``task_any``)."""
        return self._done

    @property
    def is_faulted(self):
        """True once the task is known to have failed."""
        return self._error is not None

    @property
    def exception(self):
        """The failure of a task known to have failed, else ``None``."""
        return self._error

    def cancel(self):
        """Stops waiting for this task on purpose (Durable Functions' timer
        cancellation): the orchestrator may then return without awaiting
        it. The work itself is not stopped: an activity still runs and a
        timer still fires (harmlessly); their results are dropped."""
        self._cancelled = True
        _observed(self)

    @property
    def is_cancelled(self):
        """True once :meth:`cancel` was called."""
        return self._cancelled

    def _describe(self):
        return f"{self._kind} {self._name!r} (task {self._id})"

    _kind = "task"

    def _settle_value(self, text):
        self._done = True
        self._value = decode(text, f"the result of task {self._id}")

    def _settle_failure(self, wit_failure):
        self._done = True
        self._error = self._failure_class(
            wit_failure.error_type,
            wit_failure.message,
            details_from_json(wit_failure.details),
            task_id=self._id,
            name=self._name,
        )

    def __repr__(self):
        kind = type(self).__name__
        name = f" {self._name!r}" if self._name else ""
        return f"<{kind} {self._id}{name}>"


class ActivityTask(Task):
    """A task that runs an activity."""

    _failure_class = ActivityFailedError
    _kind = "activity"


class DurableHttpResponse:
    """The recorded response of :meth:`OrchestrationContext.call_http`
    (Durable Functions' ``DurableHttpResponse``): any status, 4xx and 5xx
    included."""

    def __init__(self, status_code, headers, content):
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def __repr__(self):
        return f"<DurableHttpResponse {self.status_code}>"


class HttpTask(ActivityTask):
    """A durable HTTP request; its result is a :class:`DurableHttpResponse`."""

    def _settle_value(self, text):
        super()._settle_value(text)
        v = self._value or {}
        self._value = DurableHttpResponse(v.get("statusCode"), v.get("headers") or {}, v.get("content") or "")


class SubOrchestratorTask(Task):
    """A task that runs a sub-orchestration."""

    _failure_class = SubOrchestratorFailedError
    _kind = "sub-orchestration"


class EntityTask(Task):
    """A call of an entity operation; its result is what the operation set
    with ``context.set_result`` (``None`` when nothing). A failed operation
    raises :class:`EntityOperationFailedError`."""

    _failure_class = EntityOperationFailedError
    _kind = "entity operation"

    def __init__(self, task_id, entity_id, operation):
        self.entity_id = entity_id
        self.operation = operation
        super().__init__(task_id, f"{entity_id}:{operation}")

    def _describe(self):
        return f"call of {self.operation!r} on entity {self.entity_id} (task {self._id})"

    def _settle_failure(self, wit_failure):
        super()._settle_failure(wit_failure)
        self._error.entity_id = self.entity_id
        self._error.operation = self.operation


class EventTask(Task):
    """A task completed by an external event; its result is the payload
    (decoded with :func:`client_value`)."""

    _kind = "event"

    def _settle_value(self, text):
        super()._settle_value(text)
        self._value = client_value(self._value)


class TimerTask(Task):
    """A durable timer; its result is ``None``. :meth:`cancel` it when you
    stop waiting for it (e.g. after the other task of a race won)."""

    _kind = "timer"

    def __init__(self, task_id, fire_at):
        self.fire_at = fire_at
        super().__init__(task_id)

    def _describe(self):
        return f"timer firing at {self.fire_at.isoformat()} (task {self._id})"


# Tasks the running orchestrator created and has not awaited (or cancelled)
# yet, by id; reset when an orchestrator starts. A component runs one
# function at a time.
_outstanding = {}


def _created(task):
    _outstanding[task._id] = task


def _observed(task):
    _outstanding.pop(task._id, None)


def begin_run():
    """Forgets the tasks of a previous run (called when an orchestrator starts)."""
    _outstanding.clear()


def unawaited_failure():
    """The ``UnawaitedTask`` failure of an orchestrator that returned while
    tasks it created were never awaited, or ``None``."""
    if not _outstanding:
        return None
    tasks = [t._describe() for _, t in sorted(_outstanding.items())]
    _outstanding.clear()
    return Failure(
        "UnawaitedTask",
        f"the orchestrator returned without awaiting {len(tasks)} task(s) it created: "
        f"{', '.join(tasks)}. Await every task (task.get(), yield task, task_all, or race it "
        "with task_any), or call task.cancel() to stop waiting for it on purpose",
    )


def _leaf_tasks(tasks, what):
    tasks = list(tasks)
    for t in tasks:
        if not isinstance(t, (Task, _CompositeTask)):
            raise TypeError(
                f"{what} takes tasks, got {type(t).__name__} {t!r}. In a plain (non-generator) "
                "orchestrator call_activity, create_timer and wait_for_external_event wait and "
                "return the result: use context.schedule_activity(...), schedule_timer(...) or "
                "schedule_external_event(...) to get a task"
            )
    return tasks


class _CompositeTask:
    def __init__(self, tasks):
        self._tasks = tasks
        self._done = False
        self._value = None
        self._error = None

    @property
    def tasks(self):
        return list(self._tasks)

    @property
    def result(self):
        return self.get()

    @property
    def is_completed(self):
        return self._done


class WhenAllTask(_CompositeTask):
    """Completes when every task has; its result is their results in the
    order given, or it raises the first failure in that order."""

    def get(self):
        if not self._done:
            leaves = [t for t in self._tasks if isinstance(t, Task) and not t._done]
            for t in leaves:
                _observed(t)
            if leaves:
                outcomes = _host.orchestration.await_all([t._id for t in leaves])
                for t, outcome in zip(leaves, outcomes):
                    if isinstance(outcome, _host.Err):
                        t._settle_failure(outcome.value)
                    else:
                        t._settle_value(outcome.value)
            values = []
            try:
                for t in self._tasks:
                    values.append(t.get())
            except Failure as e:
                self._error = e
            else:
                self._value = values
            self._done = True
        if self._error is not None:
            raise self._error
        return self._value


class WhenAnyTask(_CompositeTask):
    """Completes when one of the tasks has; its result is that task (the
    first to complete in history order, so replays pick the same one).
    Read the winner's outcome with ``winner.result``."""

    def get(self):
        if not self._done:
            for t in self._tasks:
                if not isinstance(t, Task):
                    raise TypeError("task_any takes activity, sub-orchestration, timer and event tasks")
            ids = [t._id for t in self._tasks]
            for t in self._tasks:
                _observed(t)
            done = _host.orchestration.await_any(ids)
            winner = self._tasks[ids.index(done)]
            # The winner is complete: reading it does not block.
            try:
                winner.get()
            except Failure:
                pass
            self._value = winner
            self._done = True
        return self._value


class LockGuard:
    """Holds the locks taken by :meth:`OrchestrationContext.lock`. Use it as
    a context manager, or call :meth:`release`."""

    def __init__(self, task_id, names):
        self._id = task_id
        self.names = names
        self._released = False

    @property
    def id(self):
        return self._id

    def release(self):
        """Leaves the critical section (again: a no-op)."""
        if not self._released:
            self._released = True
            _host.orchestration.unlock(self._id)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.release()
        return False

    def __repr__(self):
        return f"<LockGuard {self.names!r}>"


class OrchestrationContext(LogMethods):
    """The orchestrator's handle on its durable execution.

    Every method is deterministic under replay: time, ids and task results
    come from the recorded history. See the module documentation for the
    plain and generator styles.
    """

    def __init__(self, input_json="null", generator=False):
        self._input_json = input_json
        self._input = None
        self._input_decoded = False
        self._generator = generator
        self._continued = False

    # ---- who and when -------------------------------------------------

    @property
    def instance_id(self):
        """Id of this orchestration instance."""
        return _host.orchestration.instance_id()

    @property
    def execution_id(self):
        """Id of the current execution (changes with continue-as-new)."""
        return _host.orchestration.execution_id()

    @property
    def function_name(self):
        """Name this orchestrator was started under."""
        return _host.orchestration.function_name()

    @property
    def current_utc_datetime(self):
        """Deterministic "now": when the current episode started, as a
        timezone-aware UTC ``datetime``."""
        return _EPOCH + _dt.timedelta(milliseconds=_host.orchestration.current_time())

    @property
    def is_replaying(self):
        """True while the orchestrator re-executes already recorded history."""
        return _host.orchestration.is_replaying()

    @property
    def is_generator(self):
        """True when the orchestrator is a generator (its waits are ``yield``\\ s)."""
        return self._generator

    def get_input(self):
        """The instance input, decoded from JSON (``None`` when none was
        given), with :func:`client_value`: a double-encoded object, array,
        number or boolean is unwrapped; strings stay strings."""
        if not self._input_decoded:
            self._input = client_value(decode(self._input_json, "the orchestration input"))
            self._input_decoded = True
        return self._input

    def new_uuid(self):
        """A deterministic UUID (lowercase, hyphenated text), stable across replays."""
        return _host.orchestration.new_guid()

    new_guid = new_uuid

    # ---- scheduling ---------------------------------------------------

    def schedule_activity(self, name, input_=None, retry_options=None):
        """Schedules activity ``name`` with ``input_``; returns its task
        without waiting."""
        retry = retry_options._to_wit() if retry_options is not None else None
        task_id = _host.orchestration.schedule_activity(name, encode(input_, "the activity input"), retry)
        return ActivityTask(task_id, name)

    def call_activity(self, name, input_=None):
        """Runs activity ``name``: its result (plain style) or its task
        (generator style)."""
        return self._wait_unless_generator(self.schedule_activity(name, input_))

    def call_http(self, method, uri, content=None, headers=None):
        """Sends an HTTP request durably (Durable Functions' ``call_http``):
        the host sends it, to a host granted at deploy with ``--allow-http``,
        and records the response; replays read it from history. Returns a
        :class:`DurableHttpResponse` (plain style) or its task (generator
        style). A refused host or a transport error raises
        :class:`ActivityFailedError` (``CapabilityDenied``, ``HttpError``)."""
        request = {"method": method, "uri": uri}
        if content is not None:
            request["content"] = content if isinstance(content, str) else encode(content, "the HTTP content")
        if headers:
            request["headers"] = {str(k): str(v) for k, v in headers.items()}
        task_id = _host.orchestration.schedule_activity(HTTP_ACTIVITY, encode(request, "the HTTP request"), None)
        return self._wait_unless_generator(HttpTask(task_id, HTTP_ACTIVITY))

    def call_activity_with_retry(self, name, retry_options, input_=None):
        """Like :meth:`call_activity`, retried by the host according to
        ``retry_options`` (a :class:`RetryOptions`)."""
        return self._wait_unless_generator(self.schedule_activity(name, input_, retry_options))

    def schedule_sub_orchestrator(self, name, input_=None, instance_id=None, retry_options=None):
        """Starts orchestrator ``name`` as a child instance; returns its task
        without waiting. Without ``instance_id`` the host derives a
        deterministic one."""
        retry = retry_options._to_wit() if retry_options is not None else None
        task_id = _host.orchestration.schedule_sub_orchestration(
            name, encode(input_, "the sub-orchestration input"), instance_id, retry
        )
        return SubOrchestratorTask(task_id, name)

    def call_sub_orchestrator(self, name, input_=None, instance_id=None):
        """Runs orchestrator ``name`` as a child instance: its output (plain
        style) or its task (generator style)."""
        return self._wait_unless_generator(self.schedule_sub_orchestrator(name, input_, instance_id))

    def call_sub_orchestrator_with_retry(self, name, retry_options, input_=None, instance_id=None):
        """Like :meth:`call_sub_orchestrator`, retried by the host."""
        return self._wait_unless_generator(
            self.schedule_sub_orchestrator(name, input_, instance_id, retry_options)
        )

    def create_timer(self, fire_at):
        """A durable timer that fires at ``fire_at`` (a ``datetime``; naive
        means UTC) or after ``fire_at`` (a ``timedelta``, counted from
        :attr:`current_utc_datetime`). Plain style: waits until it fires
        (returns ``None``). Generator style: returns its task, to ``yield``
        or race with ``task_any``."""
        task = self.schedule_timer(fire_at)
        return self._wait_unless_generator(task)

    def schedule_timer(self, fire_at):
        """A durable timer task (see :meth:`create_timer`), without waiting
        (both styles): to race it with ``task_any`` in plain code."""
        if isinstance(fire_at, _dt.timedelta):
            fire_at = self.current_utc_datetime + fire_at
        if not isinstance(fire_at, _dt.datetime):
            raise TypeError(f"create_timer takes a datetime or a timedelta, not {type(fire_at).__name__}")
        if fire_at.tzinfo is None:
            fire_at = fire_at.replace(tzinfo=_UTC)
        ms = max(0, (fire_at - _EPOCH) // _dt.timedelta(milliseconds=1))
        return TimerTask(_host.orchestration.create_timer(ms), fire_at)

    def wait_for_external_event(self, name):
        """The next external event called ``name``: plain style, waits and
        returns its payload; generator style, returns its task (to
        ``yield`` or race with ``task_any``). Events raised before anyone
        waits are buffered, in arrival order. The payload is decoded with
        :func:`client_value`."""
        return self._wait_unless_generator(self.schedule_external_event(name))

    def schedule_external_event(self, name):
        """A task completed by the next external event called ``name`` (see
        :meth:`wait_for_external_event`), without waiting (both styles): to
        race it with ``task_any`` in plain code."""
        return EventTask(_host.orchestration.wait_for_event(name), name)

    # ---- entities -----------------------------------------------------

    def schedule_call_entity(self, entity_id, operation_name, operation_input=None):
        """Calls operation ``operation_name`` of entity ``entity_id`` (an
        :class:`EntityId` or ``"name@key"``) with ``operation_input``;
        returns its :class:`EntityTask` without waiting (both styles)."""
        entity = entity_id_text(entity_id)
        operation = str(operation_name)
        task_id = host_call(
            _host.orchestration.call_entity, entity, operation, encode(operation_input, "the operation's input")
        )
        return EntityTask(task_id, entity, operation)

    def call_entity(self, entity_id, operation_name, operation_input=None):
        """Calls operation ``operation_name`` of entity ``entity_id`` (an
        :class:`EntityId` or ``"name@key"``): its result (plain style) or
        its task (generator style: ``value = yield context.call_entity(...)``).
        Operations on one entity run one at a time, in arrival order; a
        failed operation raises :class:`EntityOperationFailedError`."""
        return self._wait_unless_generator(self.schedule_call_entity(entity_id, operation_name, operation_input))

    def signal_entity(self, entity_id, operation_name, operation_input=None, scheduled_time=None):
        """Signals operation ``operation_name`` of entity ``entity_id``, one
        way (nothing to wait for), now or at ``scheduled_time`` (a
        ``datetime``, or a ``timedelta`` from :attr:`current_utc_datetime`)."""
        at = None
        if scheduled_time is not None:
            at = _scheduled_ms(scheduled_time, _host.orchestration.current_time())
        host_call(
            _host.orchestration.signal_entity,
            entity_id_text(entity_id),
            str(operation_name),
            encode(operation_input, "the signal's input"),
            at,
        )

    def lock_entities(self, *entity_ids):
        """Enters a critical section over entities (:class:`EntityId`\ s or
        ``"name@key"`` texts, given as arguments or as one list): waits
        until all are locked and returns a :class:`LockGuard`. While the
        orchestration holds them, only its own calls and signals reach
        those entities; the others wait, in order, until it leaves::

            with context.lock_entities(EntityId("Account", "a"), EntityId("Account", "b")):
                balance = context.call_entity(EntityId("Account", "a"), "balance")
        """
        if len(entity_ids) == 1 and isinstance(entity_ids[0], (list, tuple, set, frozenset)):
            entity_ids = tuple(entity_ids[0])
        return self.lock([EntityId.parse(e) for e in entity_ids])

    # ---- waiting ------------------------------------------------------

    def task_all(self, tasks):
        """Waits for every task: their results in the order given, or the
        first failure in that order (plain style); a task that does so
        (generator style)."""
        composite = WhenAllTask(_leaf_tasks(tasks, "task_all"))
        return composite if self._generator else composite.get()

    def task_any(self, tasks):
        """Waits until one task completes: that task, the first completed in
        history order (plain style); a task whose result is that task
        (generator style). Read the winner's outcome with ``.result``."""
        tasks = _leaf_tasks(tasks, "task_any")
        if not tasks:
            raise ValueError("task_any needs at least one task")
        composite = WhenAnyTask(tasks)
        return composite if self._generator else composite.get()

    def _wait_unless_generator(self, task):
        return task if self._generator else task.get()

    # ---- everything else ----------------------------------------------

    def lock(self, names):
        """Enters a critical section: waits until every named lock is held
        (in both styles), and returns a :class:`LockGuard`::

            with context.lock(["acct-a", "acct-b"]):
                ...

        A name may be an :class:`EntityId`: that locks the entity (as
        :meth:`lock_entities` does; the lock's name is ``@name@key``).
        Locks are released when the ``with`` block ends and always when the
        instance ends. Nested locking is a ``LockError`` failure."""
        if isinstance(names, (str, EntityId)):
            names = [names]
        names = [f"@{n}" if isinstance(n, EntityId) else str(n) for n in names]
        task_id = host_call(_host.orchestration.lock, names)
        return LockGuard(task_id, names)

    def set_custom_status(self, status):
        """Replaces the custom status shown by status queries (``None`` clears it)."""
        _host.orchestration.set_custom_status(None if status is None else encode(status, "the custom status"))

    def clear_custom_status(self):
        """Clears the custom status."""
        _host.orchestration.set_custom_status(None)

    def continue_as_new(self, input_=None, preserve_unprocessed_events=False):
        """Ends this execution and starts a fresh one with ``input_`` and an
        empty history. Return right after calling it: the return value is
        ignored."""
        _host.orchestration.continue_as_new(encode(input_, "the continue-as-new input"), bool(preserve_unprocessed_events))
        self._continued = True

    def log(self, level, message):
        """Replay-safe log (suppressed while replaying). ``print()`` inside
        an orchestrator goes here too."""
        _host.orchestration.log(to_wit(level), str(message))

    def __repr__(self):
        return f"OrchestrationContext(generator={self._generator})"


# The Durable Functions name, so that type annotations port unchanged.
DurableOrchestrationContext = OrchestrationContext


def drive(generator):
    """Runs a generator orchestrator: every yielded task is waited for, and
    its result sent back (or its failure thrown in at the ``yield``)."""
    send = None
    throw = None
    while True:
        try:
            if throw is not None:
                item = generator.throw(throw)
            else:
                item = generator.send(send)
        except StopIteration as stop:
            return stop.value
        send = throw = None
        try:
            send = _resolve(item)
        except Exception as e:  # noqa: BLE001 - handed to the orchestrator's code
            throw = e


def _resolve(item):
    if isinstance(item, (Task, _CompositeTask)):
        return item.get()
    if isinstance(item, LockGuard):
        return item
    if isinstance(item, (list, tuple)) and item and all(isinstance(t, (Task, _CompositeTask)) for t in item):
        return WhenAllTask(list(item)).get()
    raise TypeError(
        f"an orchestrator yielded {type(item).__name__} {item!r}: yield tasks, e.g. "
        "context.call_activity(...), context.create_timer(...), context.task_all([...])"
    )
