"""Monitor: polls a job's status on a durable timer until it completes (the
Durable Functions "monitor" pattern). Each poll is one execution: the
orchestrator continues as new between polls, so its history stays small
however long the job runs.

- Orchestrator `Monitor`, input
  `{"job_id": "...", "polls": n, "interval_ms": m, "max_polls": k}`
  (`job_id` is required; `polls` defaults to 0, `interval_ms` to 100 and
  `max_polls` to 10). It calls `GetJobStatus` with
  `{"job_id": ..., "poll": n}`, then:
  - if the status is `"completed"`, returns
    `{"job_id": ..., "status": "completed", "polls": n}`;
  - else if `n + 1 >= max_polls`, returns `{"status": "timed-out"}`;
  - else waits on a durable timer of `m` ms and continues as new with
    `polls: n + 1` (and the same `job_id`, `interval_ms`, `max_polls`).

  With the defaults, the instance polls 4 times (polls 0 to 3, over 3
  executions after the first) and returns
  `{"job_id": ..., "status": "completed", "polls": 3}`.
- Activity `GetJobStatus`, input `{"job_id": ..., "poll": n}`: returns
  `"completed"` when `n >= 3`, else `"running"` (a stand-in for asking a
  real system).

Written as plain code: `call_activity` waits and returns the result.
"""

from datetime import timedelta

import cairn_sdk
from cairn_sdk import Failure

app = cairn_sdk.App()


@app.orchestrator("Monitor")
def monitor(context, input_):
    if not isinstance(input_, dict) or not isinstance(input_.get("job_id"), str):
        raise Failure("InvalidInput", "Monitor needs {\"job_id\": \"...\"}")
    job_id = input_["job_id"]
    polls = input_.get("polls", 0)
    interval_ms = input_.get("interval_ms", 100)
    max_polls = input_.get("max_polls", 10)

    status = context.call_activity("GetJobStatus", {"job_id": job_id, "poll": polls})
    if status == "completed":
        return {"job_id": job_id, "status": "completed", "polls": polls}
    if polls + 1 >= max_polls:
        context.log_warn(f"job {job_id} still {status} after {polls + 1} polls")
        return {"status": "timed-out"}

    # Plain style: create_timer waits until the timer fires.
    context.create_timer(timedelta(milliseconds=interval_ms))
    context.continue_as_new(
        {"job_id": job_id, "polls": polls + 1, "interval_ms": interval_ms, "max_polls": max_polls}
    )
    # Ignored by the host: the next execution produces the output.
    return None


@app.activity("GetJobStatus")
def get_job_status(context: cairn_sdk.ActivityContext, query: dict) -> str:
    status = "completed" if query["poll"] >= 3 else "running"
    context.log_info(f"job {query['job_id']} is {status} (poll {query['poll']})")
    return status


from cairn_sdk import Functions  # noqa: E402,F401  (the component's export)
