//! An orchestrator that makes an outbound HTTP request through
//! `wasi:http/outgoing-handler` (bindings from the `wasi` crate), so the
//! component imports `wasi:http/*`: the host must reject it at deploy time.
//! - `CallsHttp` (any input): logs, then sends `GET http://127.0.0.1:9/`; returns
//!   `{"status": <code>}`, or fails with `HttpError` if the request fails.

use cairn_sdk::{Failure, OrchestrationContext};
use serde_json::{Value, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

cairn_sdk::register! {
    orchestrators: { "CallsHttp" => calls_http },
}

fn http_error(what: &str, detail: impl std::fmt::Debug) -> Failure {
    Failure::new("HttpError", format!("{what}: {detail:?}"))
}

fn calls_http(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    ctx.log_info("sending GET http://127.0.0.1:9/ from an orchestrator");
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| http_error("set_method", "rejected"))?;
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| http_error("set_scheme", "rejected"))?;
    request
        .set_authority(Some("127.0.0.1:9"))
        .map_err(|()| http_error("set_authority", "rejected"))?;
    request
        .set_path_with_query(Some("/"))
        .map_err(|()| http_error("set_path_with_query", "rejected"))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| http_error("handle", e))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or_else(|| http_error("get", "no response after the pollable was ready"))?
        .map_err(|()| http_error("get", "response already taken"))?
        .map_err(|e| http_error("response", e))?;
    Ok(json!({ "status": response.status() }))
}
