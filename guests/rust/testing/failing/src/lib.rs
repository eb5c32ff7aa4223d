//! Every way a function can fail:
//! - `Panics` panics with "boom from the guest";
//! - `ReturnsError` returns the failure `MyError: custom failure`;
//! - `CatchesActivityError` calls `AlwaysFails` and returns what it caught as
//!   `{"caught_type", "caught_message", "caught_details"}`;
//! - `CallsMissingActivity` calls `NoSuchActivity` and returns its failure;
//! - `UncaughtDetails` calls `OutOfStock` without catching: fails with
//!   `OutOfStock: sku-42 is out of stock` and the details `{"sku": "sku-42"}`;
//! - `RetriesActivity` with `{"succeed_on_attempt": k, "max_attempts": m}`
//!   calls `FlakyUntil` with a retry policy of `m` attempts; `FlakyUntil`
//!   fails with `Flaky` before attempt `k`, then returns
//!   `{"attempt", "idempotency_key", "instance_id", "function_name"}`.

use std::time::Duration;

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext, RetryOptions};
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: {
        "Panics" => panics,
        "ReturnsError" => returns_error,
        "CatchesActivityError" => catches_activity_error,
        "CallsMissingActivity" => calls_missing_activity,
        "RetriesActivity" => retries_activity,
        "UncaughtDetails" => uncaught_details,
    },
    activities: {
        "AlwaysFails" => always_fails,
        "OutOfStock" => out_of_stock,
        "FlakyUntil" => flaky_until,
    },
}

fn panics(_ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    panic!("boom from the guest");
}

fn returns_error(_ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    Err(Failure::new("MyError", "custom failure"))
}

fn catches_activity_error(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    match ctx.call_activity::<_, Value>("AlwaysFails", &Value::Null) {
        Ok(value) => Err(Failure::new(
            "UnexpectedSuccess",
            format!("AlwaysFails returned {value}"),
        )),
        Err(caught) => Ok(json!({
            "caught_type": caught.error_type,
            "caught_message": caught.message,
            "caught_details": caught.details,
        })),
    }
}

fn calls_missing_activity(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    ctx.call_activity("NoSuchActivity", &Value::Null)
}

fn always_fails(_ctx: &ActivityContext, _input: Value) -> Result<Value, Failure> {
    Err(Failure::new("ValidationError", "bad input"))
}

/// Input of `RetriesActivity`.
#[derive(serde::Deserialize)]
struct RetryInput {
    /// `FlakyUntil` fails on every attempt before this one.
    succeed_on_attempt: u32,
    /// Attempts the retry policy allows (first one included).
    max_attempts: u32,
    /// Delay before the first retry (doubles after each retry).
    #[serde(default = "default_first_interval_ms")]
    first_interval_ms: u64,
}

fn default_first_interval_ms() -> u64 {
    100
}

fn retries_activity(ctx: &OrchestrationContext, input: RetryInput) -> Result<Value, Failure> {
    let retry = RetryOptions::new(
        Duration::from_millis(input.first_interval_ms),
        input.max_attempts,
    )
    .with_backoff_coefficient(2.0);
    ctx.call_activity_with_retry(
        "FlakyUntil",
        &json!({ "succeed_on_attempt": input.succeed_on_attempt }),
        retry,
    )
}

/// Fails with `Flaky` until its `attempt()` reaches `succeed_on_attempt`,
/// then returns what it knows about the call.
fn flaky_until(ctx: &ActivityContext, input: Value) -> Result<Value, Failure> {
    let succeed_on = input["succeed_on_attempt"].as_u64().unwrap_or(1);
    let attempt = ctx.attempt();
    if u64::from(attempt) < succeed_on {
        ctx.log_warn(format!("failing attempt {attempt}"));
        return Err(Failure::new("Flaky", format!("attempt {attempt} fails")));
    }
    Ok(json!({
        "attempt": attempt,
        "idempotency_key": ctx.idempotency_key(),
        "instance_id": ctx.instance_id(),
        "function_name": ctx.function_name(),
    }))
}

fn uncaught_details(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    ctx.call_activity("OutOfStock", &Value::Null)
}

fn out_of_stock(_ctx: &ActivityContext, _input: Value) -> Result<Value, Failure> {
    Err(Failure::new("OutOfStock", "sku-42 is out of stock").with_details(json!({"sku": "sku-42"})))
}
