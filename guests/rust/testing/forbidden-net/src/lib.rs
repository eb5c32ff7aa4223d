//! An orchestrator that opens a TCP connection, so the component imports
//! `wasi:sockets/*`: the host must reject it at deploy time.
//! - `OpensSocket` (any input): logs, then connects to `127.0.0.1:9` with
//!   `std::net::TcpStream::connect`; returns `{"connected": true, "peer":
//!   <address>}`, or fails with `IoError` if the connection fails.

use std::net::TcpStream;

use cairn_sdk::{Failure, OrchestrationContext};
use serde_json::{Value, json};

cairn_sdk::register! {
    orchestrators: { "OpensSocket" => opens_socket },
}

fn opens_socket(ctx: &OrchestrationContext, _input: Value) -> Result<Value, Failure> {
    ctx.log_info("connecting to 127.0.0.1:9 from an orchestrator");
    let stream = TcpStream::connect("127.0.0.1:9")
        .map_err(|e| Failure::new("IoError", format!("cannot connect to 127.0.0.1:9: {e}")))?;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    Ok(json!({ "connected": true, "peer": peer }))
}
