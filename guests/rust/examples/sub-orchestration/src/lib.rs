//! Sub-orchestrations: a parent orchestrator fans out one child
//! orchestration per device and waits for all of them.
//!
//! - Orchestrator `ProvisionAll`, input `{"devices": ["a", "b", ...]}`:
//!   starts the sub-orchestrator `ProvisionDevice` for every device, in
//!   parallel (child instance ids are derived by the host), and returns their
//!   results in the order of `devices`, e.g.
//!   `["a-created-configured", "b-created-configured"]`. An empty list
//!   returns `[]`. The first child failure (in that order) fails the parent.
//! - Orchestrator `ProvisionDevice`, input a device id such as `"a"`: calls
//!   `CreateDevice` and then `ConfigureDevice` with its result; returns
//!   `"a-created-configured"`.
//! - Activity `CreateDevice`, input `"<id>"`: returns `"<id>-created"`.
//! - Activity `ConfigureDevice`, input `"<x>"`: returns `"<x>-configured"`.

use cairn_sdk::{ActivityContext, Failure, OrchestrationContext, Task};
use serde::Deserialize;

cairn_sdk::register! {
    orchestrators: {
        "ProvisionAll" => provision_all,
        "ProvisionDevice" => provision_device,
    },
    activities: {
        "CreateDevice" => create_device,
        "ConfigureDevice" => configure_device,
    },
}

/// Input of `ProvisionAll`.
#[derive(Deserialize)]
struct ProvisionInput {
    devices: Vec<String>,
}

fn provision_all(
    ctx: &OrchestrationContext,
    input: ProvisionInput,
) -> Result<Vec<String>, Failure> {
    if input.devices.is_empty() {
        return Ok(Vec::new());
    }
    let children: Vec<Task<String>> = input
        .devices
        .iter()
        .map(|device| ctx.schedule_sub_orchestrator("ProvisionDevice", device, None))
        .collect();
    ctx.when_all(&children)
}

fn provision_device(ctx: &OrchestrationContext, device: String) -> Result<String, Failure> {
    let created: String = ctx.call_activity("CreateDevice", &device)?;
    ctx.call_activity("ConfigureDevice", &created)
}

fn create_device(_ctx: &ActivityContext, device: String) -> Result<String, Failure> {
    Ok(format!("{device}-created"))
}

fn configure_device(_ctx: &ActivityContext, device: String) -> Result<String, Failure> {
    Ok(format!("{device}-configured"))
}
