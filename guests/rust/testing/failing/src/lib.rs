//! Every way a function can fail:
//! - `Panics` panics with "boom from the guest";
//! - `ReturnsError` returns the failure `MyError: custom failure`;
//! - `CatchesActivityError` calls `AlwaysFails` and returns what it caught as
//!   `{"caught_type", "caught_message", "caught_details"}`;
//! - `CallsMissingActivity` calls `NoSuchActivity` and returns its failure.

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: {
        "Panics" => panics,
        "ReturnsError" => returns_error,
        "CatchesActivityError" => catches_activity_error,
        "CallsMissingActivity" => calls_missing_activity,
    },
    activities: { "AlwaysFails" => always_fails },
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
