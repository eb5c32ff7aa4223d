// Monitor: polls a job's status on a durable timer until it completes (the
// Durable Functions "monitor" pattern). Each poll is one execution: the
// orchestrator continues as new between polls, so its history stays small
// however long the job runs.
//
// - Orchestrator `Monitor`, input
//   `{"job_id": "...", "polls": n, "interval_ms": m, "max_polls": k}`
//   (`job_id` is required; `polls` defaults to 0, `interval_ms` to 100 and
//   `max_polls` to 10). It calls `GetJobStatus` with
//   `{"job_id": ..., "poll": n}`, then:
//   - if the status is `"completed"`, returns
//     `{"job_id": ..., "status": "completed", "polls": n}`;
//   - else if `n + 1 >= max_polls`, returns `{"status": "timed-out"}`;
//   - else waits on a durable timer of `m` ms and continues as new with
//     `polls: n + 1` (and the same `job_id`, `interval_ms`, `max_polls`).
//
//   With the defaults, the instance polls 4 times (polls 0 to 3, over 3
//   executions after the first) and returns
//   `{"job_id": ..., "status": "completed", "polls": 3}`.
// - Activity `GetJobStatus`, input `{"job_id": ..., "poll": n}`: returns
//   `"completed"` when `n >= 3`, else `"running"` (a stand-in for asking a
//   real system).

import * as cairn from "cairn-sdk";

function Monitor(context, input) {
  if (input === null || typeof input !== "object" || typeof input.job_id !== "string") {
    throw new cairn.DurableError("InvalidInput", 'the input needs a "job_id" string');
  }
  const { job_id } = input;
  const polls = input.polls ?? 0;
  const interval_ms = input.interval_ms ?? 100;
  const max_polls = input.max_polls ?? 10;

  const status = context.callActivity("GetJobStatus", { job_id, poll: polls });
  if (status === "completed") return { job_id, status: "completed", polls };
  const next = polls + 1;
  if (next >= max_polls) {
    context.log.warn(`job ${job_id} still ${status} after ${next} polls`);
    return { status: "timed-out" };
  }

  context.createTimer(context.currentUtcDateTime.getTime() + interval_ms);
  context.continueAsNew({ job_id, polls: next, interval_ms, max_polls });
  // Ignored by the host: the next execution produces the output.
  return null;
}

function GetJobStatus(context, query) {
  const status = query.poll >= 3 ? "completed" : "running";
  context.log(`job ${query.job_id} is ${status} (poll ${query.poll})`);
  return status;
}

export const functions = cairn.app({
  orchestrators: { Monitor },
  activities: { GetJobStatus },
});
