"""Fan-out/fan-in: `FanOutFanIn` squares `0..count` in parallel with the
activity `Square` and returns the sum of the squares. `RaceFirst` starts
the same activities and returns the result of whichever completes first
(first in history order, so replays pick the same one).

- Orchestrators `FanOutFanIn` and `RaceFirst`, input `{"count": n}` (a
  missing input or `count` means 10; `RaceFirst` needs `n >= 1`, else
  `InvalidInput`). With `n = 50`, `FanOutFanIn` returns 40425.
- Activity `Square`, input an integer `i`: returns `i * i` (`InvalidInput`
  when that does not fit in 64 bits).

Written in the Durable Functions generator style: `yield` waits for a task.
"""

import cairn_sdk
from cairn_sdk import Failure

app = cairn_sdk.App()

I64_MAX = 2**63 - 1


def count_of(context):
    input_ = context.get_input() or {}
    return int(input_.get("count", 10))


@app.orchestrator("FanOutFanIn")
def fan_out_fan_in(context):
    tasks = [context.call_activity("Square", i) for i in range(count_of(context))]
    squares = yield context.task_all(tasks)
    return sum(squares)


@app.orchestrator("RaceFirst")
def race_first(context):
    count = count_of(context)
    if count < 1:
        raise Failure("InvalidInput", "count must be at least 1")
    tasks = [context.call_activity("Square", i) for i in range(count)]
    first = yield context.task_any(tasks)
    return first.result


@app.activity("Square")
def square(i: int) -> int:
    result = i * i
    if result > I64_MAX:
        raise Failure("InvalidInput", f"{i} squared does not fit in an i64")
    return result


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)
