// Shared by pipeline-v1 and pipeline-v2 (included with `include!`), which
// differ only in `LATER_STEPS`.
//
// - `Pipeline` (any input): calls `StepA`, waits for event `go`, calls the
//   first of `LATER_STEPS`, waits for event `go2`, calls the second; returns
//   the three results, e.g. `["A", "B", "C"]`.
// - `StepA`, `StepB`, `StepC` (any input): return `"A"`, `"B"`, `"C"`.

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext};
use serde_json::Value;

cairn_sdk::register! {
    orchestrators: { "Pipeline" => pipeline },
    activities: {
        "StepA" => step_a,
        "StepB" => step_b,
        "StepC" => step_c,
    },
}

fn pipeline(ctx: &OrchestrationContext, _input: Value) -> Result<Vec<String>, Failure> {
    let mut results: Vec<String> = vec![ctx.call_activity("StepA", &())?];
    ctx.wait_for_event::<Value>("go").get()?;
    results.push(ctx.call_activity(LATER_STEPS[0], &())?);
    ctx.wait_for_event::<Value>("go2").get()?;
    results.push(ctx.call_activity(LATER_STEPS[1], &())?);
    Ok(results)
}

fn step_a(_ctx: &ActivityContext, _input: Value) -> Result<String, Failure> {
    Ok("A".into())
}

fn step_b(_ctx: &ActivityContext, _input: Value) -> Result<String, Failure> {
    Ok("B".into())
}

fn step_c(_ctx: &ActivityContext, _input: Value) -> Result<String, Failure> {
    Ok("C".into())
}
