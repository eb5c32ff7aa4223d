//! An orchestrator that makes an outbound HTTP request through
//! `wasi:http/outgoing-handler` (bindings from the `wasi` crate), so the
//! component imports `wasi:http/*`: the host must reject it at deploy time.
//! - `CallsHttp` (any input): logs, then sends `GET http://127.0.0.1:9/`; returns
//!   `{"status": <code>, "body": <text>}`, or fails with `HttpError` if the request fails.

#[path = "../../http-client/src/get.rs"]
mod get;

use cairn_sdk::{Failure, OrchestrationContext};
use serde_json::Value;

cairn_sdk::register! {
    orchestrators: { "CallsHttp" => calls_http },
}

fn calls_http(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    ctx.log_info("sending GET http://127.0.0.1:9/ from an orchestrator");
    get::get("http://127.0.0.1:9/")
}
