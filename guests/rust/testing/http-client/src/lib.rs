//! An activity-only component that imports `wasi:http/outgoing-handler`:
//! deploying it needs `--allow-http`, and requests reach only granted hosts.
//! - `HttpGet` `"http://HOST:PORT/PATH"`: sends `GET`, returns
//!   `{"status": <code>, "body": "<text>"}`; fails with `HttpError` naming
//!   the wasi:http error code when the request fails (e.g. `HttpRequestDenied`).
//! - `HttpGetIgnoringErrors` (same input): as `HttpGet`, but swallows a
//!   failed request and returns `{"status": null}`: the host must still fail
//!   the attempt when the request went to a host outside the grant.

mod get;

use cairn_sdk::{ActivityContext, Failure};
use get::get;
use serde_json::{Value, json};

cairn_sdk::register! {
    activities: {
        "HttpGet" => http_get,
        "HttpGetIgnoringErrors" => http_get_ignoring_errors,
    },
}

fn http_get(_ctx: &ActivityContext, url: String) -> Result<Value, Failure> {
    get(&url)
}

fn http_get_ignoring_errors(_ctx: &ActivityContext, url: String) -> Result<Value, Failure> {
    Ok(get(&url).unwrap_or_else(|_| json!({ "status": null })))
}
