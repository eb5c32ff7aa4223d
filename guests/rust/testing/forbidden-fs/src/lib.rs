//! An orchestrator that touches the filesystem, so the component imports
//! `wasi:filesystem/types` and `wasi:filesystem/preopens`: the host must
//! reject it at deploy time.
//! - `ReadsFile` (any input): logs, then reads `/etc/hostname` with
//!   `std::fs::read_to_string`; returns `{"contents": <text>}`, or fails with
//!   `IoError` if the read fails.

use cairn_sdk::{Failure, OrchestrationContext};
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: { "ReadsFile" => reads_file },
}

fn reads_file(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    ctx.log_info("reading /etc/hostname from an orchestrator");
    let contents = std::fs::read_to_string("/etc/hostname")
        .map_err(|e| Failure::new("IoError", format!("cannot read /etc/hostname: {e}")))?;
    Ok(json!({ "contents": contents }))
}
