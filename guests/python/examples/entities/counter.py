"""Entity `Counter`, the aggregator of the Durable Functions docs, written
as a Durable Functions (v1 programming model) entity function.

State: the count (a number). Operations: `add` (input: an integer) adds
it; `reset` sets 0; `get` returns the count (0 when the entity has no
state); `delete` deletes the state. Any other operation fails with
`NotFound`.
"""

import cairn_sdk as df
from cairn_sdk import Failure


def entity_function(context: df.DurableEntityContext):
    operation = context.operation_name
    if operation == "add":
        amount = context.get_input()
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise Failure("InvalidInput", f"add takes an integer, not {amount!r}")
        context.set_state(context.get_state(lambda: 0) + amount)
    elif operation == "reset":
        context.set_state(0)
    elif operation == "get":
        context.set_result(context.get_state(lambda: 0))
    elif operation == "delete":
        context.destruct_on_exit()
    else:
        raise Failure("NotFound", f"entity Counter has no operation named {operation!r}")


main = df.Entity.create(entity_function, name="Counter")
