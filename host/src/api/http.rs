//! HTTP plumbing of the API: typed request errors and their JSON bodies,
//! query strings, bounded body reading, the JSON nesting check, and the
//! absolute URLs of the check-status payload.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, TRANSFER_ENCODING};
use hyper::{Response, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};

use crate::admin::AdminError;
use crate::clock::parse_iso;
use crate::history::Millis;
use crate::hub::HubError;
use crate::store::{RuntimeStatus, StoreError};

/// The response type of every handler.
pub type Resp = Response<Full<Bytes>>;

/// Characters escaped in path segments and query values of URLs we build
/// (everything but RFC 3986 unreserved characters).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment or query value.
#[must_use]
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A request that cannot be served: status code and the messages of the
/// Durable Functions error body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {detail}")]
pub struct HttpError {
    pub status: StatusCode,
    /// Short category (`Message`).
    pub message: &'static str,
    /// What exactly was wrong (`ExceptionMessage`).
    pub detail: String,
    /// A .NET-style exception type name (`ExceptionType`), as clients expect.
    pub kind: &'static str,
    /// Seconds for a `Retry-After` header (503).
    pub retry_after: Option<u32>,
}

impl HttpError {
    fn new(status: StatusCode, message: &'static str, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            message,
            detail: detail.into(),
            kind,
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "One or more of the arguments submitted is incorrect",
            "System.ArgumentException",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "System.Collections.Generic.KeyNotFoundException",
            detail,
        )
    }

    pub fn conflict(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::new(
            status,
            "The instance is not in a state that allows this operation",
            "System.InvalidOperationException",
            detail,
        )
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is too large",
            "System.ArgumentException",
            detail,
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "System.UnauthorizedAccessException",
            "a valid API key is required: pass it as the `code` query parameter, the `x-functions-key` header or `Authorization: Bearer <key>`",
        )
    }

    /// 403: the request may not be served at all (foreign `Host` or
    /// `Origin`, a capability grant without an API key).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "System.UnauthorizedAccessException",
            detail,
        )
    }

    /// 415: a body of a type this route does not take.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "System.NotSupportedException",
            detail,
        )
    }

    /// 503 with `Retry-After: secs`: a bounded resource is in use.
    pub fn busy(detail: impl Into<String>, secs: u32) -> Self {
        let mut e = Self::unavailable(detail);
        e.retry_after = Some(secs);
        e
    }

    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "System.NotSupportedException",
            detail,
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The task hub is busy; retry later",
            "System.TimeoutException",
            detail,
        );
        e.retry_after = Some(1);
        e
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal error occurred",
            "System.Exception",
            detail,
        )
    }

    /// The error as a response with a JSON body.
    #[must_use]
    pub fn into_response(self) -> Resp {
        let body = json!({
            "Message": self.message,
            "ExceptionMessage": self.detail,
            "ExceptionType": self.kind,
        });
        let mut r = json_response(self.status, &body);
        if let Some(s) = self.retry_after {
            r.headers_mut().insert("retry-after", HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::InstanceNotFound(_) => Self::not_found(e.to_string()),
            StoreError::InstanceExists(_) => Self::conflict(StatusCode::CONFLICT, e.to_string()),
            StoreError::InstanceFinished { .. } => Self::conflict(StatusCode::GONE, e.to_string()),
            StoreError::NotFailed { .. } => Self::conflict(StatusCode::PRECONDITION_FAILED, e.to_string()),
            StoreError::FunctionNotFound { .. } | StoreError::VersionNotFound(_) => Self::bad_request(e.to_string()),
            _ if e.is_retryable() => Self::unavailable(e.to_string()),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl From<HubError> for HttpError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::Store(s) => s.into(),
            HubError::TooLarge { .. } => Self::too_large(e.to_string()),
            other if other.is_bad_request() => Self::bad_request(other.to_string()),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<AdminError> for HttpError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Hub(h) => h.into(),
            AdminError::Store(s) => s.into(),
            AdminError::NotTerminal { .. } => Self::conflict(StatusCode::PRECONDITION_FAILED, e.to_string()),
            AdminError::BadContinuationToken => Self::bad_request(e.to_string()),
            AdminError::ComponentNotFound(_) => Self::not_found(e.to_string()),
            AdminError::ComponentInUse { .. } => Self::conflict(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

/// A response with a JSON body.
#[must_use]
pub fn json_response(status: StatusCode, body: &Value) -> Resp {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "null".into());
    raw_json_response(status, text)
}

/// A response whose body is already JSON text.
#[must_use]
pub fn raw_json_response(status: StatusCode, text: String) -> Resp {
    with_type(status, "application/json; charset=utf-8", Bytes::from(text))
}

/// A response with a body of the given content type.
#[must_use]
pub fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Sets a header whose value came from data (a URL): silently skipped if
/// it cannot be a header value (it always can: we build it from ASCII).
pub fn set_header(r: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// Decodes one percent-encoded path segment.
///
/// # Errors
/// 400 for a segment that does not decode to UTF-8.
pub fn decode_segment(raw: &str) -> Result<String, HttpError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| HttpError::bad_request(format!("path segment {raw:?} is not valid percent-encoded UTF-8")))
}

/// Query parameters that may be repeated (`allowDir=a&allowDir=b`); any
/// other name given twice, in any case, is refused (400): with first-wins,
/// `confirm=TRUE&confirm=false` would mean something else to a proxy, a log
/// reader or a person than to the server.
const REPEATABLE: [&str; 3] = ["allowEnv", "allowDir", "allowHttp"];

/// A parsed query string (names compared case-insensitively; only
/// [`REPEATABLE`] names may appear more than once).
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// Decodes one query name or value (`+` is a space).
fn decode_query_part(s: &str) -> Option<String> {
    let s = s.replace('+', " ");
    percent_decode_str(&s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

impl Query {
    /// Parses `a=1&b=x+y` (`+` is a space, percent escapes decoded).
    ///
    /// # Errors
    /// 400 when a name or value does not decode to UTF-8, or a name that is
    /// not [`REPEATABLE`] appears twice.
    pub fn parse(raw: Option<&str>) -> Result<Self, HttpError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (Some(k), Some(v)) = (decode_query_part(k), decode_query_part(v)) else {
                return Err(HttpError::bad_request(
                    "the query string is not valid percent-encoded UTF-8",
                ));
            };
            if !REPEATABLE.iter().any(|r| r.eq_ignore_ascii_case(&k))
                && pairs.iter().any(|(seen, _)| seen.eq_ignore_ascii_case(&k))
            {
                return Err(HttpError::bad_request(format!(
                    "query parameter {k} is given more than once; give it once"
                )));
            }
            pairs.push((k, v));
        }
        Ok(Self { pairs })
    }

    /// Parses what can be parsed, skipping undecodable pairs: only to find
    /// the API key, so that a malformed query answers 401, not 400, to a
    /// caller without the key.
    #[must_use]
    pub fn parse_lossy(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|part| {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                Some((decode_query_part(k)?, decode_query_part(v)?))
            })
            .collect();
        Self { pairs }
    }

    /// The value of `name`, if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated `name` (`a=1&a=2`), in order.
    #[must_use]
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The value of `name` unless absent or empty.
    #[must_use]
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// A boolean (`true`/`false`, any case); `default` when absent or empty.
    ///
    /// # Errors
    /// 400 for another value.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, HttpError> {
        match self.non_empty(name).map(str::trim) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(HttpError::bad_request(format!(
                "query parameter {name} must be true or false, got {v:?}"
            ))),
        }
    }

    /// An ISO 8601 time.
    ///
    /// # Errors
    /// 400 when it does not parse.
    pub fn time(&self, name: &str) -> Result<Option<Millis>, HttpError> {
        self.non_empty(name)
            .map(|v| {
                parse_iso(v).ok_or_else(|| {
                    HttpError::bad_request(format!(
                        "query parameter {name} must be an ISO 8601 time such as 2024-01-31T12:00:00Z, got {v:?}"
                    ))
                })
            })
            .transpose()
    }

    /// A positive integer.
    ///
    /// # Errors
    /// 400 when it does not parse or is 0.
    pub fn positive(&self, name: &str) -> Result<Option<u32>, HttpError> {
        self.non_empty(name)
            .map(|v| match v.trim().parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(HttpError::bad_request(format!(
                    "query parameter {name} must be a positive integer, got {v:?}"
                ))),
            })
            .transpose()
    }

    /// An index (0 or more).
    ///
    /// # Errors
    /// 400 when it does not parse.
    pub fn non_negative(&self, name: &str) -> Result<Option<usize>, HttpError> {
        self.non_empty(name)
            .map(|v| {
                v.trim().parse::<usize>().map_err(|_| {
                    HttpError::bad_request(format!(
                        "query parameter {name} must be 0 or a positive integer, got {v:?}"
                    ))
                })
            })
            .transpose()
    }

    /// A duration in (possibly fractional) seconds, at least 0.
    ///
    /// # Errors
    /// 400 when it does not parse, is negative or not finite.
    pub fn seconds(&self, name: &str) -> Result<Option<f64>, HttpError> {
        self.non_empty(name)
            .map(|v| match v.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
                _ => Err(HttpError::bad_request(format!(
                    "query parameter {name} must be a number of seconds, got {v:?}"
                ))),
            })
            .transpose()
    }

    /// A comma list of runtime statuses.
    ///
    /// # Errors
    /// 400 naming an unknown status.
    pub fn statuses(&self, name: &str) -> Result<Vec<RuntimeStatus>, HttpError> {
        let mut out = Vec::new();
        for part in self.get(name).unwrap_or("").split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let s = RuntimeStatus::parse(part).ok_or_else(|| {
                HttpError::bad_request(format!(
                    "unknown runtime status {part:?}; expected one of Pending, Running, Completed, ContinuedAsNew, Failed, Canceled, Terminated, Suspended"
                ))
            })?;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// `taskHub`, `connection` and `code` as a query string to append to
    /// the URLs we hand out (only those the request carried).
    #[must_use]
    pub fn carried(&self) -> String {
        ["taskHub", "connection", "code"]
            .iter()
            .filter_map(|k| self.get(k).map(|v| format!("{k}={}", encode_component(v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The declared `Content-Length`, if any.
///
/// # Errors
/// 400 when it is not a number.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, HttpError> {
    headers
        .get(CONTENT_LENGTH)
        .map(|len| {
            len.to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| HttpError::bad_request("Content-Length is not a number"))
        })
        .transpose()
}

/// Reads a request body of at most `cap` bytes without buffering more: a
/// declared `Content-Length` over the cap is refused before reading, and
/// the body is read into one buffer of the declared size (no second copy
/// when the frames are joined).
///
/// # Errors
/// 413 over the cap; 400 when the body cannot be read.
pub async fn read_body(headers: &HeaderMap, mut body: Incoming, cap: usize) -> Result<Vec<u8>, HttpError> {
    let declared = content_length(headers)?;
    if let Some(len) = declared
        && len > cap as u64
    {
        return Err(HttpError::too_large(format!(
            "the body is {len} bytes; the limit is {cap} bytes"
        )));
    }
    let too_large = || HttpError::too_large(format!("the body is larger than the limit of {cap} bytes"));
    let mut out = Vec::with_capacity(declared.map_or(0, |n| usize::try_from(n).unwrap_or(cap)));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| HttpError::bad_request(format!("the request body could not be read: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len().saturating_add(data.len()) > cap {
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// Reads and discards a body of at most `cap` bytes, so that a client
/// still sending it receives the answer instead of a reset connection.
/// Gives up (the connection is then closed) past `cap` or on an error.
pub async fn discard_body(mut body: Incoming, cap: usize) {
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen > cap {
                return;
            }
        }
    }
}

/// Refuses JSON nested deeper than `max` arrays/objects, scanning the text
/// without recursion (so a hostile body cannot exhaust the stack of a
/// recursive parser).
///
/// # Errors
/// 400 when nested too deeply.
pub fn check_json_depth(text: &[u8], max: usize) -> Result<(), HttpError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(HttpError::bad_request(format!(
                        "the JSON body is nested more than {max} levels deep"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Optional JSON body text: `None` when empty or only whitespace.
///
/// # Errors
/// 400 when not UTF-8 or nested too deeply (syntax is checked by the hub).
pub fn json_body(body: &[u8], max_depth: usize) -> Result<Option<String>, HttpError> {
    let text = std::str::from_utf8(body).map_err(|_| HttpError::bad_request("the body is not UTF-8 text"))?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    check_json_depth(body, max_depth)?;
    Ok(Some(text.to_owned()))
}

/// The media type of the `Content-Type` header (no parameters), if any.
fn media_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
}

/// True when the Content-Type is `application/json` (any parameters, any case).
#[must_use]
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|t| t.eq_ignore_ascii_case("application/json"))
}

/// True when the request carries a body: a `Content-Length` above 0 or a
/// `Transfer-Encoding` (HTTP/1.1 has no other way to send one).
#[must_use]
pub fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) != Some(0))
}

/// Refuses a body whose `Content-Type` is not one of `allowed` (415). A
/// request without a body passes whatever it declares: the bodiless POSTs
/// of Durable Functions clients (terminate, suspend, ...) send none.
///
/// Why: a web page can make a browser send a cross-site POST without a CORS
/// preflight only with `text/plain`, `multipart/form-data` or
/// `application/x-www-form-urlencoded` bodies; requiring the types below
/// keeps such requests from reaching a handler.
///
/// # Errors
/// 415 naming the accepted types.
pub fn check_body_type(headers: &HeaderMap, allowed: &[&str]) -> Result<(), HttpError> {
    if !has_body(headers) {
        return Ok(());
    }
    let got = media_type(headers);
    if got.is_some_and(|t| allowed.iter().any(|a| t.eq_ignore_ascii_case(a))) {
        return Ok(());
    }
    Err(HttpError::unsupported_media_type(format!(
        "a request body must be sent with Content-Type: {} (got {})",
        allowed.join(" or "),
        got.map_or_else(|| "none".to_owned(), |t| format!("{t:?}"))
    )))
}

/// The URLs of the check-status payload of one instance.
#[derive(Debug, Clone)]
pub struct Urls {
    /// `scheme://host/runtime/webhooks/durabletask`
    pub base: String,
    /// `taskHub=..&connection=..&code=..` (possibly empty)
    pub carried: String,
}

impl Urls {
    fn with_query(&self, url: String, first: Option<&str>) -> String {
        let q: Vec<&str> = first
            .into_iter()
            .chain((!self.carried.is_empty()).then_some(self.carried.as_str()))
            .collect();
        if q.is_empty() {
            url
        } else {
            format!("{url}?{}", q.join("&"))
        }
    }

    /// The status URL of instance `id`.
    #[must_use]
    pub fn status(&self, id: &str) -> String {
        self.with_query(format!("{}/instances/{}", self.base, encode_component(id)), None)
    }

    /// The check-status payload of instance `id`.
    #[must_use]
    pub fn check_status(&self, id: &str) -> Value {
        let inst = format!("{}/instances/{}", self.base, encode_component(id));
        let reason = Some("reason={text}");
        json!({
            "id": id,
            "statusQueryGetUri": self.with_query(inst.clone(), None),
            "sendEventPostUri": self.with_query(format!("{inst}/raiseEvent/{{eventName}}"), None),
            "terminatePostUri": self.with_query(format!("{inst}/terminate"), reason),
            "purgeHistoryDeleteUri": self.with_query(inst.clone(), None),
            "restartPostUri": self.with_query(format!("{inst}/restart"), None),
            "suspendPostUri": self.with_query(format!("{inst}/suspend"), reason),
            "resumePostUri": self.with_query(format!("{inst}/resume"), reason),
            "rewindPostUri": self.with_query(format!("{inst}/rewind"), reason),
        })
    }
}

/// A host name (with optional port) safe to echo into URLs.
#[must_use]
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_check_counts_only_structure() {
        assert!(check_json_depth(b"[[[1]]]", 3).is_ok());
        assert!(check_json_depth(b"[[[[1]]]]", 3).is_err());
        assert!(check_json_depth(br#"{"a":"[[[[[[[["}"#, 2).is_ok());
        assert!(check_json_depth(br#"["\"[[[[[["]"#, 1).is_ok());
        assert!(check_json_depth("[".repeat(100_000).as_bytes(), 128).is_err());
    }

    #[test]
    fn query_parsing() {
        let q = Query::parse(Some("showHistory=True&reason=a+b%20c&x&code=k%26y")).unwrap_or_default();
        assert_eq!(q.bool("SHOWHISTORY", false).ok(), Some(true));
        assert_eq!(q.get("reason"), Some("a b c"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.carried(), "code=k%26y");
        assert!(q.bool("reason", false).is_err());
        assert!(Query::parse(Some("a=%ff")).is_err());
    }

    #[test]
    fn check_status_urls() {
        let u = Urls {
            base: "http://h:1/runtime/webhooks/durabletask".into(),
            carried: "taskHub=t&code=c".into(),
        };
        let v = u.check_status("a b");
        assert_eq!(
            v["statusQueryGetUri"],
            "http://h:1/runtime/webhooks/durabletask/instances/a%20b?taskHub=t&code=c"
        );
        assert_eq!(
            v["terminatePostUri"],
            "http://h:1/runtime/webhooks/durabletask/instances/a%20b/terminate?reason={text}&taskHub=t&code=c"
        );
        assert_eq!(
            v["sendEventPostUri"],
            "http://h:1/runtime/webhooks/durabletask/instances/a%20b/raiseEvent/{eventName}?taskHub=t&code=c"
        );
    }
}
