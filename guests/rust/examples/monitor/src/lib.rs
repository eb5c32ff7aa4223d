//! Monitor: polls a job's status on a durable timer until it completes (the
//! Durable Functions "monitor" pattern). Each poll is one execution: the
//! orchestrator continues as new between polls, so its history stays small
//! however long the job runs.
//!
//! - Orchestrator `Monitor`, input
//!   `{"job_id": "...", "polls": n, "interval_ms": m, "max_polls": k}`
//!   (`job_id` is required; `polls` defaults to 0, `interval_ms` to 100 and
//!   `max_polls` to 10). It calls `GetJobStatus` with
//!   `{"job_id": ..., "poll": n}`, then:
//!   - if the status is `"completed"`, returns
//!     `{"job_id": ..., "status": "completed", "polls": n}`;
//!   - else if `n + 1 >= max_polls`, returns `{"status": "timed-out"}`;
//!   - else waits on a durable timer of `m` ms and continues as new with
//!     `polls: n + 1` (and the same `job_id`, `interval_ms`, `max_polls`).
//!
//!   With the defaults, the instance polls 4 times (polls 0 to 3, over 3
//!   executions after the first) and returns
//!   `{"job_id": ..., "status": "completed", "polls": 3}`.
//! - Activity `GetJobStatus`, input `{"job_id": ..., "poll": n}`: returns
//!   `"completed"` when `n >= 3`, else `"running"` (a stand-in for asking a
//!   real system).

use std::time::Duration;

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: { "Monitor" => monitor },
    activities: { "GetJobStatus" => get_job_status },
}

/// Input of `Monitor`, and the input it continues as new with.
#[derive(Serialize, Deserialize)]
struct MonitorInput {
    job_id: String,
    /// Polls already made by earlier executions.
    #[serde(default)]
    polls: u32,
    /// Delay between two polls.
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
    /// Give up after this many polls.
    #[serde(default = "default_max_polls")]
    max_polls: u32,
}

fn default_interval_ms() -> u64 {
    100
}

fn default_max_polls() -> u32 {
    10
}

/// Input of `GetJobStatus`.
#[derive(Serialize, Deserialize)]
struct StatusQuery {
    job_id: String,
    poll: u32,
}

fn monitor(ctx: &OrchestrationContext, input: MonitorInput) -> Result<Value, Failure> {
    let query = StatusQuery {
        job_id: input.job_id.clone(),
        poll: input.polls,
    };
    let status: String = ctx.call_activity("GetJobStatus", &query)?;
    if status == "completed" {
        return Ok(json!({ "job_id": input.job_id, "status": "completed", "polls": input.polls }));
    }
    let next = input.polls.saturating_add(1);
    if next >= input.max_polls {
        ctx.log_warn(format!(
            "job {} still {status} after {next} polls",
            input.job_id
        ));
        return Ok(json!({ "status": "timed-out" }));
    }

    ctx.create_timer_after(Duration::from_millis(input.interval_ms))
        .get()?;
    ctx.continue_as_new(
        &MonitorInput {
            polls: next,
            ..input
        },
        false,
    );
    // Ignored by the host: the next execution produces the output.
    Ok(Value::Null)
}

fn get_job_status(ctx: &ActivityContext, query: StatusQuery) -> Result<String, Failure> {
    let status = if query.poll >= 3 {
        "completed"
    } else {
        "running"
    };
    ctx.log_info(format!(
        "job {} is {status} (poll {})",
        query.job_id, query.poll
    ));
    Ok(status.to_string())
}
