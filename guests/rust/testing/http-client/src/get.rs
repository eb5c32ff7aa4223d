//! `GET` through `wasi:http/outgoing-handler` (bindings from the `wasi`
//! crate); shared by `http-client` and `forbidden-http`.

use cairn_sdk::Failure;
use serde_json::{Value, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingRequest, Scheme};

fn http_error(what: &str, detail: impl std::fmt::Debug) -> Failure {
    Failure::new("HttpError", format!("{what}: {detail:?}"))
}

/// Sends `GET url`; returns `{"status", "body"}`, or fails with `HttpError`.
pub fn get(url: &str) -> Result<Value, Failure> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return Err(Failure::new(
            "BadInput",
            format!("not an http(s) URL: {url:?}"),
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| http_error("set_method", "rejected"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| http_error("set_scheme", "rejected"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| http_error("set_authority", "rejected"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| http_error("set_path_with_query", "rejected"))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| http_error("handle", e))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or_else(|| http_error("get", "no response after the pollable was ready"))?
        .map_err(|()| http_error("get", "response already taken"))?
        .map_err(|e| http_error("response", e))?;
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| http_error("consume", "body already taken"))?;
    let stream = body
        .stream()
        .map_err(|()| http_error("stream", "already taken"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(http_error("read body", e)),
        }
    }
    drop(stream);
    Ok(json!({ "status": status, "body": String::from_utf8_lossy(&bytes) }))
}
