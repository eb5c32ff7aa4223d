//! Human interaction: an approval request that escalates when nobody answers
//! in time (the Durable Functions "human interaction" pattern).
//!
//! - Orchestrator `ApprovalWorkflow`, input `{"timeout_ms": t}` (a missing
//!   input or `timeout_ms` means 60000): calls `RequestApproval`, then sets
//!   the custom status `{"stage": "waiting-for-approval"}` and races the
//!   external event `ApprovalEvent` against a durable timer of `t` ms. The
//!   custom status is cleared once the race is decided.
//!   - The event wins with payload `true` or `{"approved": true}`: calls
//!     `Approve` and returns `"approved"`.
//!   - The event wins with any other payload (`false`, `{"approved": false}`,
//!     ...): returns `"rejected"`.
//!   - The timer wins: calls `Escalate` and returns `"escalated"`.
//! - Activities `RequestApproval`, `Approve` and `Escalate` take the instance
//!   id (a string) and return `"requested"`, `"approval-processed"` and
//!   `"escalated"`.

use std::time::Duration;

use cairn_sdk::{ActivityContext, AnyTask, Failure, OrchestrationContext, Task};
use serde::Deserialize;
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: { "ApprovalWorkflow" => approval_workflow },
    activities: {
        "RequestApproval" => request_approval,
        "Approve" => approve,
        "Escalate" => escalate,
    },
}

/// Input of `ApprovalWorkflow`.
#[derive(Deserialize)]
struct ApprovalInput {
    /// How long to wait for the approval before escalating.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    60_000
}

fn approval_workflow(
    ctx: &OrchestrationContext,
    input: Option<ApprovalInput>,
) -> Result<String, Failure> {
    let timeout_ms = input.map_or_else(default_timeout_ms, |i| i.timeout_ms);
    let instance_id = ctx.instance_id();
    let _: String = ctx.call_activity("RequestApproval", &instance_id)?;

    // Events raised before this point are buffered, so none is lost while
    // `RequestApproval` runs.
    let approval: Task<Value> = ctx.wait_for_event("ApprovalEvent");
    let timeout = ctx.create_timer_after(Duration::from_millis(timeout_ms));
    ctx.set_custom_status(&json!({ "stage": "waiting-for-approval" }));
    let winner = ctx.when_any::<&dyn AnyTask>(&[&approval, &timeout]);
    ctx.clear_custom_status();

    if winner == 1 {
        ctx.log_warn(format!("no answer within {timeout_ms} ms, escalating"));
        let _: String = ctx.call_activity("Escalate", &instance_id)?;
        return Ok("escalated".to_string());
    }
    if is_approval(&approval.get()?) {
        let _: String = ctx.call_activity("Approve", &instance_id)?;
        Ok("approved".to_string())
    } else {
        Ok("rejected".to_string())
    }
}

/// `true` and `{"approved": true}` approve; anything else rejects.
fn is_approval(payload: &Value) -> bool {
    match payload {
        Value::Bool(approved) => *approved,
        Value::Object(fields) => fields.get("approved") == Some(&Value::Bool(true)),
        _ => false,
    }
}

fn request_approval(ctx: &ActivityContext, instance_id: String) -> Result<String, Failure> {
    ctx.log_info(format!("approval requested for {instance_id}"));
    Ok("requested".to_string())
}

fn approve(ctx: &ActivityContext, instance_id: String) -> Result<String, Failure> {
    ctx.log_info(format!("{instance_id} approved"));
    Ok("approval-processed".to_string())
}

fn escalate(ctx: &ActivityContext, instance_id: String) -> Result<String, Failure> {
    ctx.log_warn(format!("{instance_id} escalated to a manager"));
    Ok("escalated".to_string())
}
