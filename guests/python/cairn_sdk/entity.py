"""Durable entities: small pieces of state with operations, addressed by an
id ``name@key`` (an :class:`EntityId`).

Operations on one entity run one at a time, in the order they arrive; each
starts from the state the previous one left. An entity is a function of
its context, in the Durable Functions style::

    import cairn_sdk as df

    def counter(context: df.DurableEntityContext):
        count = context.get_state(lambda: 0)
        if context.operation_name == "add":
            context.set_state(count + context.get_input())
        elif context.operation_name == "reset":
            context.set_state(0)
        elif context.operation_name == "get":
            context.set_result(count)
        elif context.operation_name == "delete":
            context.destruct_on_exit()

    main = df.Entity.create(counter, name="Counter")

An exception fails the operation (as it fails an activity): the state
stays as it was, the signals and orchestration starts of the operation are
dropped, and an orchestration that called the operation sees the failure
(an :class:`EntityOperationFailedError` with the same ``error_type``).

Entities run in the orchestrators' sandbox: no clock, entropy, files or
network. They reach the outside through the signals they send and the
orchestrations they start, both sent when the operation's batch commits.
"""

import datetime as _dt

from . import _host
from ._codec import decode, encode
from ._levels import LogMethods, to_wit
from .errors import Failure, details_from_json

__all__ = ["EntityId", "DurableEntityContext", "EntityContext", "entity_id_text"]

_UTC = _dt.timezone.utc
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)


class EntityId:
    """The id of an entity: its ``name`` (the entity function it runs) and
    its ``key`` (which instance). Its text form is ``name@key``::

        EntityId("Counter", "c1")        # str(...) == "Counter@c1"
        EntityId.parse("Account@alice")  # EntityId("Account", "alice")
    """

    __slots__ = ("name", "key")

    def __init__(self, name, key):
        name = str(name)
        if not name or "@" in name:
            raise ValueError(f"an entity name must be non-empty and may not contain '@', not {name!r}")
        self.name = name
        self.key = str(key)

    @classmethod
    def parse(cls, text):
        """The id written ``name@key`` (the key may contain ``@``)."""
        if isinstance(text, EntityId):
            return text
        text = str(text)
        name, sep, key = text.partition("@")
        if not sep:
            raise ValueError(f"an entity id is written name@key, not {text!r}")
        return cls(name, key)

    def __str__(self):
        return f"{self.name}@{self.key}"

    def __repr__(self):
        return f"EntityId({self.name!r}, {self.key!r})"

    def __eq__(self, other):
        return isinstance(other, EntityId) and (self.name, self.key) == (other.name, other.key)

    def __hash__(self):
        return hash((self.name, self.key))

    def to_json(self):
        return str(self)


def entity_id_text(entity_id):
    """``name@key`` for an :class:`EntityId` or for that text; a malformed
    id is an ``InvalidInput`` failure."""
    try:
        return str(EntityId.parse(entity_id))
    except ValueError as e:
        raise Failure("InvalidInput", str(e)) from None


def _scheduled_ms(scheduled_time, now_ms):
    """Milliseconds since the epoch for a ``datetime`` (naive means UTC) or a
    ``timedelta`` from ``now_ms``; ``None`` stays ``None``."""
    if scheduled_time is None:
        return None
    if isinstance(scheduled_time, _dt.timedelta):
        return max(0, now_ms + int(scheduled_time.total_seconds() * 1000))
    if isinstance(scheduled_time, _dt.datetime):
        if scheduled_time.tzinfo is None:
            scheduled_time = scheduled_time.replace(tzinfo=_UTC)
        return max(0, (scheduled_time - _EPOCH) // _dt.timedelta(milliseconds=1))
    raise TypeError(f"scheduled_time must be a datetime or a timedelta, not {type(scheduled_time).__name__}")


def host_call(fn, *args):
    """Calls a host import that returns ``result<_, failure>``: its failure
    is raised as a :class:`Failure`."""
    try:
        return fn(*args)
    except _host.Err as e:
        f = e.value
        raise Failure(f.error_type, f.message, details_from_json(f.details)) from None


class DurableEntityContext(LogMethods):
    """What one operation of an entity sees and does: its name and input,
    the entity's state, the operation's result, and the signals and
    orchestration starts it sends."""

    def __init__(self, name, key, operation, input_json, state_json):
        self._name = name
        self._key = key
        self._operation = operation
        self._input_json = input_json
        self._input = None
        self._input_decoded = False
        self._had_state = state_json is not None
        self._has_state = self._had_state
        self._state = decode(state_json, f"the stored state of entity {name}@{key}") if self._had_state else None
        self._result = None
        self._result_set = False
        self._destruct = False

    # ---- who ----------------------------------------------------------

    @property
    def entity_name(self):
        """The entity's name (the part of its id before ``@``)."""
        return self._name

    @property
    def entity_key(self):
        """The entity's key (the part of its id after ``@``)."""
        return self._key

    @property
    def entity_id(self):
        """The entity's :class:`EntityId`."""
        return EntityId(self._name, self._key)

    @property
    def operation_name(self):
        """The operation to run."""
        return self._operation

    @property
    def is_newly_constructed(self):
        """True when the entity had no state when the operation started."""
        return not self._had_state

    @property
    def current_utc_datetime(self):
        """When the operation's batch started, as a timezone-aware UTC
        ``datetime``."""
        return _EPOCH + _dt.timedelta(milliseconds=_host.entity_context.current_time())

    # ---- input, state, result ------------------------------------------

    def get_input(self):
        """The operation's input, decoded from JSON (``None`` when none was
        given). A double-encoded object, array, number or boolean (as
        Durable Functions' Python client sends them) is unwrapped; strings
        stay strings (see :func:`cairn_sdk.client_value`)."""
        if not self._input_decoded:
            from .orchestration import client_value

            self._input = client_value(decode(self._input_json, f"the input of operation {self._operation!r}"))
            self._input_decoded = True
        return self._input

    def get_state(self, initializer=None):
        """The entity's state. When it has none (a new or deleted entity),
        ``initializer()`` when given (it does not store it: call
        :meth:`set_state`), else ``None``. Changes made in place to a
        stored state (a dict, a list) are kept."""
        if self._has_state:
            return self._state
        if initializer is None:
            return None
        if not callable(initializer):
            raise TypeError("get_state takes a function that returns the initial state, e.g. lambda: 0")
        return initializer()

    @property
    def has_state(self):
        """True when the entity has a state now."""
        return self._has_state

    def set_state(self, state):
        """Replaces the entity's state (any JSON value)."""
        self._state = state
        self._has_state = True
        self._destruct = False

    def set_result(self, result):
        """The operation's result, returned to an orchestration that called
        it (``None`` when never set; a non-``None`` return value of the
        entity function counts when this is not called)."""
        self._result = result
        self._result_set = True

    def destruct_on_exit(self):
        """Deletes the entity's state when the operation ends: reading the
        entity finds nothing, and its next operation starts from no state.
        A later :meth:`set_state` in the same operation cancels it."""
        self._destruct = True
        self._state = None
        self._has_state = False

    delete_state = destruct_on_exit

    # ---- the outside -----------------------------------------------------

    def signal_entity(self, entity_id, operation_name, operation_input=None, scheduled_time=None):
        """Signals operation ``operation_name`` of entity ``entity_id`` (an
        :class:`EntityId` or ``"name@key"``), one way, now or at
        ``scheduled_time`` (a ``datetime``, or a ``timedelta`` from
        :attr:`current_utc_datetime`). Sent when the operation's batch
        commits, not at all when the operation fails."""
        at = _scheduled_ms(scheduled_time, _host.entity_context.current_time()) if scheduled_time is not None else None
        host_call(
            _host.entity_context.signal_entity,
            entity_id_text(entity_id),
            str(operation_name),
            encode(operation_input, "the signal's input"),
            at,
        )

    def start_new_orchestration(self, name, input_=None, instance_id=None):
        """Starts orchestrator ``name`` with ``input_`` under
        ``instance_id`` (default: an id derived from this operation);
        returns the instance id. Started when the operation's batch
        commits, not at all when it fails."""
        return host_call(
            _host.entity_context.start_orchestration,
            str(name),
            encode(input_, "the orchestration input"),
            None if instance_id is None else str(instance_id),
        )

    def log(self, level, message):
        """Logs a line under the entity's id."""
        _host.entity_context.log(to_wit(level), str(message))

    def __repr__(self):
        return f"DurableEntityContext({self._name}@{self._key}, operation={self._operation!r})"


EntityContext = DurableEntityContext


def run_entity(fn, name, key, operation, input_json, state_json):
    """Runs one operation of entity function ``fn``: ``(state_json or None,
    output_json)``, or raises the operation's failure."""
    context = DurableEntityContext(name, key, operation, input_json, state_json)
    returned = fn(context)
    if hasattr(returned, "send") and hasattr(returned, "throw"):
        raise TypeError(
            f"entity {name!r} is a generator function: an entity function runs an operation to its end "
            "(it cannot wait); set the result with context.set_result(...)"
        )
    result = context._result if context._result_set else returned
    state = encode(context._state, f"the state of entity {name}@{key}") if context._has_state else None
    return state, encode(result, f"the result of operation {operation!r}")
