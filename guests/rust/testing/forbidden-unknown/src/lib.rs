//! An orchestrator component that also imports `acme:evil/backdoor@0.1.0`,
//! an interface of a package the host does not know (WIT in `wit/`): the host
//! must reject it at deploy time.
//! - `OpensBackdoor` (any input): logs, then calls `acme:evil/backdoor.open`; returns
//!   `{"opened": <u32>}`.

use cairn_sdk::{Failure, OrchestrationContext};
use serde_json::{Value, json};

/// Bindings for the `acme:evil/evil` world (imports only).
#[allow(unsafe_code, clippy::all)]
mod evil {
    wit_bindgen::generate!({
        path: "wit",
        world: "acme:evil/evil",
        generate_all,
    });
}

use evil::acme::evil::backdoor;

cairn_sdk::register! {
    orchestrators: { "OpensBackdoor" => opens_backdoor },
}

fn opens_backdoor(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    ctx.log_info("opening acme:evil/backdoor from an orchestrator");
    Ok(json!({ "opened": backdoor::open() }))
}
