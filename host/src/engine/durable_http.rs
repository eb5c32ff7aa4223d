//! Durable HTTP (Durable Functions' `CallHttpAsync` / `callHttp` /
//! `call_http`): an orchestrator schedules the built-in activity
//! [`HTTP_ACTIVITY`] with a [`DurableHttpRequest`]; the host sends it (to a
//! host its component was granted with `--allow-http`) and records the
//! [`DurableHttpResponse`] in history like any activity result, so replays
//! never send it again. Non-2xx answers are responses, not failures; a
//! refused host, a bad request or a transport error fails the task.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::http::uri::Scheme;
use hyper::{Method, Request, Uri};
use serde::{Deserialize, Serialize};

use crate::history::Failure;
use crate::sandbox::{Grants, check_target, http_denied};

/// Name of the built-in activity (the name Durable Functions uses).
pub const HTTP_ACTIVITY: &str = "BuiltIn::HttpActivity";

/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request, in Durable Functions' JSON shape.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DurableHttpRequest {
    pub method: String,
    pub uri: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// A response, in Durable Functions' JSON shape.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DurableHttpResponse {
    pub status_code: u16,
    pub headers: BTreeMap<String, String>,
    pub content: String,
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure::new("InvalidInput", message)
}

/// Sends the request in `input` if `grants` allow its host; the response
/// body is limited to `max_body` bytes and the whole call to `timeout`.
///
/// # Errors
/// `InvalidInput` (bad JSON, method, URI or header), `CapabilityDenied`
/// (host not granted), `LimitExceeded` (body too large), `HttpError`
/// (connection, TLS, protocol), `Timeout`.
pub async fn send(input: &str, grants: &Grants, max_body: usize, timeout: Duration) -> Result<String, Failure> {
    let req: DurableHttpRequest =
        serde_json::from_str(input).map_err(|e| invalid(format!("not a durable HTTP request: {e}")))?;
    let method = Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| invalid(format!("bad HTTP method {:?}", req.method)))?;
    let uri: Uri = req
        .uri
        .parse()
        .map_err(|e| invalid(format!("bad URI {:?}: {e}", req.uri)))?;
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(invalid(format!(
            "the URI {:?} needs http:// or https:// and a host",
            req.uri
        )));
    };
    if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
        return Err(invalid(format!("unsupported scheme in {:?}", req.uri)));
    }
    if let Err(target) = check_target(&grants.http_patterns(), Some(scheme), Some(authority)) {
        return Err(http_denied("durable HTTP", &[target], grants));
    }
    let mut builder = Request::builder()
        .method(method)
        .uri(uri.clone())
        .header(hyper::header::HOST, authority.as_str());
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = Full::new(Bytes::from(req.content.unwrap_or_default())).map_err(|never| match never {});
    let request = builder
        .body(body)
        .map_err(|e| invalid(format!("bad request header: {e}")))?;
    let options = wasmtime_wasi_http::RequestOptions {
        connect_timeout: Some(CONNECT_TIMEOUT),
        first_byte_timeout: Some(timeout),
        between_bytes_timeout: Some(timeout),
    };
    let call = async {
        let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options))
            .await
            .map_err(|e| Failure::new("HttpError", format!("{} {}: {e}", req.method, req.uri)))?;
        let driver = tokio::spawn(io);
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Failure::new(
                        "LimitExceeded",
                        format!("the response body is larger than {max_body} bytes (limits.payload)"),
                    )
                } else {
                    Failure::new("HttpError", format!("reading the response of {}: {e}", req.uri))
                }
            })?
            .to_bytes();
        driver.abort();
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok::<_, Failure>(DurableHttpResponse {
            status_code: parts.status.as_u16(),
            headers,
            content: String::from_utf8_lossy(&bytes).into_owned(),
        })
    };
    let response = tokio::time::timeout(timeout, call).await.map_err(|_| {
        Failure::new(
            "Timeout",
            format!("{} {} took longer than {} s", req.method, req.uri, timeout.as_secs()),
        )
    })??;
    let json = serde_json::to_string(&response).map_err(|e| Failure::new("HttpError", e.to_string()))?;
    if json.len() > max_body {
        return Err(Failure::new(
            "LimitExceeded",
            format!(
                "the response is {} bytes; the limit is {max_body} bytes (limits.payload)",
                json.len()
            ),
        ));
    }
    Ok(json)
}
