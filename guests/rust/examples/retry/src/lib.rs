//! Automatic retries: the host retries a failing activity with exponential
//! backoff, and the orchestrator only sees the final outcome.
//!
//! - Orchestrator `RetryFlaky`, input `{"fail_times": f}` (a missing input
//!   or `fail_times` means 2): calls `FlakyActivity` with `{"fail_times": f}`
//!   under a retry policy of at most 5 attempts, 50 ms before the first retry
//!   and a backoff coefficient of 2.0 (retries after 50, 100, 200, 400 ms).
//!   Returns what the activity returned, e.g. `{"succeeded_on_attempt": 3}`
//!   for `f = 2`. With `f >= 5` every attempt fails and so does the
//!   orchestration, with the last attempt's `TransientError`.
//! - Activity `FlakyActivity`, input `{"fail_times": f}`: fails with
//!   `TransientError` ("attempt <n> failed (fails <f> times)") while its
//!   attempt number `n` (1-based) is `<= f`, then returns
//!   `{"succeeded_on_attempt": n}`.

use std::time::Duration;

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext, RetryOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: { "RetryFlaky" => retry_flaky },
    activities: { "FlakyActivity" => flaky_activity },
}

/// Input of both functions: how many attempts fail before one succeeds.
#[derive(Serialize, Deserialize)]
struct FlakyInput {
    #[serde(default = "default_fail_times")]
    fail_times: u32,
}

fn default_fail_times() -> u32 {
    2
}

fn retry_flaky(ctx: &OrchestrationContext, input: Option<FlakyInput>) -> Result<Value, Failure> {
    let input = input.unwrap_or(FlakyInput {
        fail_times: default_fail_times(),
    });
    let retry = RetryOptions::new(Duration::from_millis(50), 5).with_backoff_coefficient(2.0);
    ctx.call_activity_with_retry("FlakyActivity", &input, retry)
}

fn flaky_activity(ctx: &ActivityContext, input: FlakyInput) -> Result<Value, Failure> {
    let attempt = ctx.attempt();
    if attempt <= input.fail_times {
        ctx.log_warn(format!("attempt {attempt} fails"));
        return Err(Failure::new(
            "TransientError",
            format!(
                "attempt {attempt} failed (fails {} times)",
                input.fail_times
            ),
        ));
    }
    Ok(json!({ "succeeded_on_attempt": attempt }))
}
