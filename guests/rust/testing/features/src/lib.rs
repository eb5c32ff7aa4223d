//! One orchestrator per orchestration feature, for host tests:
//! - `WaitForApproval` `{"timeout_ms": t}`: races the external event
//!   `Approval` against a `t` ms timer; returns `{"approved": <payload>}` or
//!   `{"timed_out": true}`.
//! - `Sleeps` `{"ms": t}`: waits on a `t` ms durable timer; returns the
//!   deterministic time (ms) before and after.
//! - `Counter` `{"count": c, "target": n}`: sets the custom status
//!   `{"count": c}` and continues as new with `c + 1` until `c == n`, then
//!   returns `c`.
//! - `Parent` `{"values": [..]}`: runs the sub-orchestrator `Child` for each
//!   value in parallel; `Child` doubles its input with the activity `Double`.
//!   Returns the doubled values.
//! - `RetriesChild` (any input): calls `FailingChild` as a sub-orchestration
//!   with a retry policy of 3 attempts (10 ms apart) and returns the caught
//!   failure as `{"error_type", "message"}`. `FailingChild` always fails
//!   with `ChildError`.
//! - `CallsHttp` `<DurableHttpRequest>`: sends it with `ctx.call_http`
//!   (durable HTTP) and returns `{"ok": <DurableHttpResponse>}` or
//!   `{"error_type", "message"}`.
//! - `CallsActivity` `{"name", "input"}`: calls activity `name` and returns
//!   `{"ok": result}` or `{"error_type", "message"}`.
//! - `Locked` `{"locks": [..], "value"?: n, "wait_for"?: "EventName"}`:
//!   takes the named locks, waits for the event when `wait_for` is given,
//!   calls `Double` with `value` (default 21) and releases the locks; returns
//!   the double, or fails when `Double` does (`value` too large) while still
//!   holding the locks.
//! - `Forgets` `"timer" | "event" | "activity" | "cancelled" | "nothing"`:
//!   creates that task, never awaits it and returns `"returned"` (the SDK
//!   fails it with `UnawaitedTask`, except when the task was cancelled).
//! - `TypedEvents` (any input): waits for the events `Flag` (a `bool`),
//!   `Amount` (a `u64`), `Order` (`{"sku": String}`) and `Note` (a
//!   `String`), in that order, and returns them as `{"flag", "amount",
//!   "order", "note"}` (the values a Durable Functions client meant: see the
//!   SDK's rule for double-encoded values).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_sdk::{
    ActivityContext, AnyTask, DurableHttpRequest, Failure, OrchestrationContext, RetryOptions, Task,
};
use serde::Deserialize;
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: {
        "WaitForApproval" => wait_for_approval,
        "Sleeps" => sleeps,
        "Counter" => counter,
        "Parent" => parent,
        "Child" => child,
        "Locked" => locked,
        "RetriesChild" => retries_child,
        "FailingChild" => failing_child,
        "CallsActivity" => calls_activity,
        "CallsHttp" => calls_http,
        "Forgets" => forgets,
        "TypedEvents" => typed_events,
    },
    activities: { "Double" => double },
}

#[derive(Deserialize)]
struct ApprovalInput {
    timeout_ms: u64,
}

fn wait_for_approval(ctx: &OrchestrationContext, input: ApprovalInput) -> Result<Value, Failure> {
    let approval: Task<Value> = ctx.wait_for_event("Approval");
    let timeout = ctx.create_timer_after(Duration::from_millis(input.timeout_ms));
    ctx.set_custom_status(&json!({ "waiting_for": "Approval" }));
    let winner = ctx.when_any::<&dyn AnyTask>(&[&approval, &timeout]);
    ctx.clear_custom_status();
    if winner == 0 {
        Ok(json!({ "approved": approval.get()? }))
    } else {
        Ok(json!({ "timed_out": true }))
    }
}

#[derive(Deserialize)]
struct SleepInput {
    ms: u64,
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn sleeps(ctx: &OrchestrationContext, input: SleepInput) -> Result<Value, Failure> {
    let before = ctx.current_utc_datetime();
    ctx.create_timer_after(Duration::from_millis(input.ms))
        .get()?;
    let after = ctx.current_utc_datetime();
    Ok(json!({ "before_ms": millis(before), "after_ms": millis(after) }))
}

#[derive(Deserialize)]
struct CounterInput {
    count: u32,
    target: u32,
}

fn counter(ctx: &OrchestrationContext, input: CounterInput) -> Result<Value, Failure> {
    ctx.set_custom_status(&json!({ "count": input.count }));
    if input.count < input.target {
        ctx.continue_as_new(
            &json!({ "count": input.count + 1, "target": input.target }),
            true,
        );
        return Ok(Value::Null);
    }
    Ok(json!(input.count))
}

#[derive(Deserialize)]
struct ParentInput {
    values: Vec<i64>,
}

fn parent(ctx: &OrchestrationContext, input: ParentInput) -> Result<Vec<i64>, Failure> {
    let children: Vec<Task<i64>> = input
        .values
        .iter()
        .map(|v| ctx.schedule_sub_orchestrator("Child", v, None))
        .collect();
    ctx.when_all(&children)
}

fn child(ctx: &OrchestrationContext, value: i64) -> Result<i64, Failure> {
    ctx.call_activity("Double", &value)
}

#[derive(Deserialize)]
struct LockedInput {
    locks: Vec<String>,
    #[serde(default = "twenty_one")]
    value: i64,
    #[serde(default)]
    wait_for: Option<String>,
}

fn twenty_one() -> i64 {
    21
}

fn locked(ctx: &OrchestrationContext, input: LockedInput) -> Result<i64, Failure> {
    let names: Vec<&str> = input.locks.iter().map(String::as_str).collect();
    let guard = ctx.lock(&names)?;
    if let Some(event) = &input.wait_for {
        ctx.wait_for_event::<Value>(event).get()?;
    }
    let doubled = ctx.call_activity("Double", &input.value)?;
    guard.release();
    Ok(doubled)
}

fn double(_ctx: &ActivityContext, value: i64) -> Result<i64, Failure> {
    value
        .checked_mul(2)
        .ok_or_else(|| Failure::invalid_input(format!("{value} doubled does not fit in an i64")))
}

fn retries_child(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    let retry = RetryOptions::new(Duration::from_millis(10), 3);
    let task: Task<Value> =
        ctx.schedule_sub_orchestrator_with_retry("FailingChild", &json!(null), None, retry);
    match task.get() {
        Ok(v) => Ok(json!({ "unexpected": v })),
        Err(f) => Ok(json!({ "error_type": f.error_type, "message": f.message })),
    }
}

fn failing_child(_ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    Err(Failure::new("ChildError", "the child failed"))
}

#[derive(Deserialize)]
struct CallInput {
    name: String,
    input: Value,
}

fn calls_activity(ctx: &OrchestrationContext, input: CallInput) -> Result<Value, Failure> {
    match ctx.call_activity::<Value, Value>(&input.name, &input.input) {
        Ok(v) => Ok(json!({ "ok": v })),
        Err(f) => Ok(json!({ "error_type": f.error_type, "message": f.message })),
    }
}

fn calls_http(ctx: &OrchestrationContext, request: DurableHttpRequest) -> Result<Value, Failure> {
    match ctx.call_http(&request) {
        Ok(response) => Ok(json!({ "ok": response })),
        Err(f) => Ok(json!({ "error_type": f.error_type, "message": f.message })),
    }
}

fn forgets(ctx: &OrchestrationContext, what: String) -> Result<&'static str, Failure> {
    match what.as_str() {
        "timer" => {
            let _timer = ctx.create_timer_after(Duration::from_secs(2));
        }
        "event" => {
            let _event: Task<Value> = ctx.wait_for_event("Approval");
        }
        "activity" => {
            let _double: Task<i64> = ctx.schedule_activity("Double", &3);
        }
        "cancelled" => ctx.create_timer_after(Duration::from_secs(2)).cancel(),
        _ => {}
    }
    Ok("returned")
}

#[derive(Deserialize, serde::Serialize)]
struct Order {
    sku: String,
}

fn typed_events(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    let flag: bool = ctx.wait_for_event("Flag").get()?;
    let amount: u64 = ctx.wait_for_event("Amount").get()?;
    let order: Order = ctx.wait_for_event("Order").get()?;
    let note: String = ctx.wait_for_event("Note").get()?;
    Ok(json!({ "flag": flag, "amount": amount, "order": order, "note": note }))
}
