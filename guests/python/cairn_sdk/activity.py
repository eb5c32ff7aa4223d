"""What an activity knows about the call it serves."""

from . import _host
from ._levels import LogMethods, to_wit

__all__ = ["ActivityContext"]


class ActivityContext(LogMethods):
    """The activity's handle on the call it serves.

    An activity that takes two parameters is called as ``fn(context,
    input)``; one that takes one is called as ``fn(input)`` (the Durable
    Functions style), and can still reach its context with
    :func:`cairn_sdk.activity_context`.

    Activities run at least once: use :attr:`idempotency_key` to make side
    effects idempotent.
    """

    __slots__ = ()

    @property
    def instance_id(self):
        """Id of the orchestration instance that scheduled this activity."""
        return _host.activity_context.instance_id()

    @property
    def function_name(self):
        """Name of the activity being run."""
        return _host.activity_context.function_name()

    @property
    def idempotency_key(self):
        """``<instance-id>:<execution-id>:<task-id>``, stable across retries
        and redeliveries of the same scheduled task."""
        return _host.activity_context.idempotency_key()

    @property
    def attempt(self):
        """1 for the first delivery, incremented on every redelivery or retry."""
        return _host.activity_context.attempt()

    def log(self, level, message):
        """Writes a log line through the host (``level``: a :class:`LogLevel`
        or its name)."""
        _host.activity_context.log(to_wit(level), str(message))

    def __repr__(self):
        return "ActivityContext()"
