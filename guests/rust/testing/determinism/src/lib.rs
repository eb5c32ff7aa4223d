//! Replay-stable values: `Clocks` reads the deterministic time and a
//! deterministic GUID, calls the activity `Echo` (which returns its input),
//! reads both again, and returns everything. Every replay of an instance must
//! produce the same output.

use std::time::{SystemTime, UNIX_EPOCH};

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: { "Clocks" => clocks },
    activities: { "Echo" => echo },
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn clocks(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    let replaying_at_start = ctx.is_replaying();
    let time1 = ctx.current_utc_datetime();
    let guid1 = ctx.new_guid();
    let echoed: Value = ctx.call_activity("Echo", &json!({ "guid": guid1 }))?;
    let time2 = ctx.current_utc_datetime();
    let guid2 = ctx.new_guid();
    Ok(json!({
        "time1_ms": millis(time1),
        "guid1": guid1,
        "echo": echoed,
        "time2_ms": millis(time2),
        "guid2": guid2,
        "instance_id": ctx.instance_id(),
        "execution_id": ctx.execution_id(),
        "replaying_at_start": replaying_at_start,
        "replaying_at_end": ctx.is_replaying(),
    }))
}

fn echo(_ctx: &ActivityContext, input: Value) -> Result<Value, Failure> {
    Ok(input)
}
