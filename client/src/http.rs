//! [`Management`] over a `cairn serve`'s HTTP API.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::Management;
use crate::error::Error;
use crate::types::*;

/// Prefix of the Durable Functions routes.
const DURABLE: &str = "/runtime/webhooks/durabletask";
const CONTINUATION: &str = "x-ms-continuation-token";
/// Longest wait of one request (a `wait` asks for at most this much at once).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(660);
/// Longest wait for completion asked of the server in one request.
const WAIT_SLICE: Duration = Duration::from_secs(300);

/// Characters kept as they are in a path segment or query value.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, KEEP).to_string()
}

/// A query string from the pairs that have a value.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn instance(id: &str) -> String {
    format!("{DURABLE}/instances/{}", enc(id))
}

/// A server's answer.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::Other(format!("the server's answer is not the document expected: {e}")))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// The server's error message (`ExceptionMessage` of an error body, or the text).
    fn message(&self) -> String {
        let text = String::from_utf8_lossy(&self.body).trim().to_owned();
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("ExceptionMessage").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(text)
    }

    /// The error of a status outside `ok`.
    fn expect(self, ok: &[StatusCode]) -> Result<Self, Error> {
        if ok.contains(&self.status) {
            return Ok(self);
        }
        let message = self.message();
        Err(match self.status {
            StatusCode::NOT_FOUND => Error::NotFound(message),
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Error::BadRequest(message)
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Unauthorized(if message.is_empty() {
                "the server refused the API key (give it with --api-key or CAIRN_API_KEY)".to_owned()
            } else {
                message
            }),
            StatusCode::CONFLICT | StatusCode::GONE | StatusCode::PRECONDITION_FAILED => Error::Conflict(message),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => Error::Unavailable(message),
            s => Error::Other(format!("the server answered {s}: {message}")),
        })
    }
}

/// A client of one `cairn serve` (or any server behind the same routes).
#[derive(Clone)]
pub struct HttpClient {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", &self.base)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client of the server at `url` (`http://` or `https://host[:port][/prefix]`),
    /// sending `api_key` as a bearer token. HTTPS certificates are checked
    /// against the system's roots.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a URL that is not `http(s)://host...`.
    pub fn new(url: &str, api_key: Option<String>) -> Result<Self, Error> {
        Self::with_ca(url, api_key, None)
    }

    /// As [`HttpClient::new`], also trusting the certificate authority (or
    /// self-signed certificate) `ca_pem`.
    ///
    /// # Errors
    /// A bad URL or certificate.
    pub fn with_ca(url: &str, api_key: Option<String>, ca_pem: Option<&[u8]>) -> Result<Self, Error> {
        let parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "--url {url:?}: expected http://host:port or https://host:port (e.g. http://127.0.0.1:7071)"
                ))
            })?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(Error::BadRequest(format!(
                "--url {url:?}: give the server's base URL, without a query or fragment"
            )));
        }
        if let Some(k) = &api_key
            && !k.is_empty()
            && k.trim().is_empty()
        {
            return Err(Error::BadRequest(
                "the API key is only whitespace; give the server's key".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cairn-client/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::BadRequest(format!("the CA certificate is not PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::BadRequest("the CA certificate file holds no certificate".into()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Other(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            key: api_key.filter(|k| !k.is_empty()),
            http,
        })
    }

    /// The server's base URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Reply, Error> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("accept", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(key) = &self.key {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| Error::BadRequest("the API key holds characters a header cannot carry".into()))?;
            v.set_sensitive(true);
            req = req.header("authorization", v);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| self.transport(&e))?.to_vec();
        Ok(Reply { status, headers, body })
    }

    fn transport(&self, e: &reqwest::Error) -> Error {
        // The innermost cause says what happened (refused, certificate...).
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        if e.is_timeout() {
            Error::Unavailable(format!("{} did not answer in time", self.base))
        } else {
            Error::Connect(format!("cannot reach {}: {cause}", self.base))
        }
    }

    async fn get(&self, path: &str, ok: &[StatusCode]) -> Result<Reply, Error> {
        self.send(Method::GET, path, &[], None).await?.expect(ok)
    }

    /// One page of a listing: `continuation` is the previous page's token.
    async fn get_page(&self, path: &str, continuation: Option<&str>) -> Result<Reply, Error> {
        let headers: Vec<(&str, &str)> = continuation.map(|t| (CONTINUATION, t)).into_iter().collect();
        self.send(Method::GET, path, &headers, None).await?.expect(OK)
    }

    async fn post_json(&self, path: &str, body: Option<&Value>, ok: &[StatusCode]) -> Result<Reply, Error> {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        self.send(Method::POST, path, &[], body).await?.expect(ok)
    }

    /// Uploads a component; while the server is busy with other uploads
    /// (503 with `Retry-After`), waits as told and tries again, a few times.
    async fn upload(&self, path: &str, wasm: Vec<u8>, ok: &[StatusCode]) -> Result<Reply, Error> {
        const ATTEMPTS: u32 = 10;
        for attempt in 1..=ATTEMPTS {
            let reply = self
                .send(Method::POST, path, &[], Some(("application/wasm", wasm.clone())))
                .await?;
            let wait = reply
                .header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|_| reply.status == StatusCode::SERVICE_UNAVAILABLE && attempt < ATTEMPTS);
            match wait {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs.clamp(1, 30))).await,
                None => return reply.expect(ok),
            }
        }
        Err(Error::Unavailable("the server stayed busy with other uploads".into()))
    }
}

const OK: &[StatusCode] = &[StatusCode::OK];
const ACCEPTED: &[StatusCode] = &[StatusCode::ACCEPTED];
/// A status: 200 when finished, 202 while running.
const STATUS: &[StatusCode] = &[StatusCode::OK, StatusCode::ACCEPTED];

fn flag(b: bool) -> Option<String> {
    Some(b.to_string())
}

#[async_trait::async_trait]
impl Management for HttpClient {
    async fn start(&self, request: &StartRequest) -> Result<String, Error> {
        let mut path = format!("{DURABLE}/orchestrators/{}", enc(&request.name));
        if let Some(id) = request.instance_id.as_deref().filter(|i| !i.is_empty()) {
            path = format!("{path}/{}", enc(id));
        }
        path.push_str(&query(&[("version", request.version.clone())]));
        let reply = self.post_json(&path, request.input.as_ref(), ACCEPTED).await?;
        let v: Value = reply.json()?;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Other("the server's answer has no instance id".into()))
    }

    async fn status(&self, id: &str, options: StatusOptions) -> Result<InstanceStatus, Error> {
        let path = format!(
            "{}{}",
            instance(id),
            query(&[
                ("showInput", flag(options.show_input)),
                ("showHistory", flag(options.show_history)),
                ("showHistoryOutput", flag(options.show_history && options.show_output)),
            ])
        );
        let mut status: InstanceStatus = self.get(&path, STATUS).await?.json()?;
        if !options.show_output {
            status.output = None;
            status.failure_details = None;
        }
        Ok(status)
    }

    async fn wait(&self, id: &str, timeout: Duration) -> Result<InstanceStatus, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(WAIT_SLICE);
            let path = format!("/api/instances/{}/wait?timeout={}", enc(id), left.as_secs_f64());
            let status: InstanceStatus = self.get(&path, STATUS).await?.json()?;
            if status.is_finished() || tokio::time::Instant::now() >= deadline {
                return Ok(status);
            }
        }
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, Error> {
        let path = format!(
            "{DURABLE}/instances{}",
            query(&[
                ("createdTimeFrom", q.created_from.clone()),
                ("createdTimeTo", q.created_to.clone()),
                ("runtimeStatus", (!q.statuses.is_empty()).then(|| q.statuses.join(","))),
                ("instanceIdPrefix", q.id_prefix.clone()),
                ("name", q.name.clone()),
                ("top", q.top.map(|t| t.to_string())),
                ("showInput", flag(q.show_input)),
            ])
        );
        let reply = self.get_page(&path, q.continuation.as_deref()).await?;
        Ok(Page {
            instances: reply.json()?,
            continuation: reply.header(CONTINUATION),
        })
    }

    async fn history(&self, id: &str) -> Result<Vec<Value>, Error> {
        let path = format!(
            "{}?showHistory=true&showHistoryOutput=true&showInput=true",
            instance(id)
        );
        let status: InstanceStatus = self.get(&path, STATUS).await?.json()?;
        Ok(status.history_events.unwrap_or_default())
    }

    async fn raise_event(&self, id: &str, event: &str, data: Option<Value>) -> Result<(), Error> {
        let path = format!("{}/raiseEvent/{}", instance(id), enc(event));
        self.post_json(&path, Some(&data.unwrap_or(Value::Null)), ACCEPTED)
            .await?;
        Ok(())
    }

    async fn control(&self, id: &str, action: Control, reason: Option<&str>) -> Result<(), Error> {
        let path = format!(
            "{}/{}{}",
            instance(id),
            action.verb(),
            query(&[("reason", reason.map(str::to_owned))])
        );
        self.post_json(&path, None, ACCEPTED).await?;
        Ok(())
    }

    async fn restart(&self, id: &str, new_instance_id: bool) -> Result<String, Error> {
        let path = format!(
            "{}/restart{}",
            instance(id),
            query(&[("restartWithNewInstanceId", flag(new_instance_id))])
        );
        let v: Value = self.post_json(&path, None, ACCEPTED).await?.json()?;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Other("the server's answer has no instance id".into()))
    }

    async fn purge_instance(&self, id: &str) -> Result<(), Error> {
        self.send(Method::DELETE, &instance(id), &[], None).await?.expect(OK)?;
        Ok(())
    }

    async fn purge(&self, filter: &PurgeFilter) -> Result<u64, Error> {
        let path = format!(
            "{DURABLE}/instances{}",
            query(&[
                (
                    "createdTimeFrom",
                    Some(
                        filter
                            .created_from
                            .clone()
                            .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
                    )
                ),
                ("createdTimeTo", filter.created_to.clone()),
                (
                    "runtimeStatus",
                    (!filter.statuses.is_empty()).then(|| filter.statuses.join(","))
                ),
            ])
        );
        let reply = self.send(Method::DELETE, &path, &[], None).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(0);
        }
        let v: Value = reply.expect(OK)?.json()?;
        Ok(v["instancesDeleted"].as_u64().unwrap_or(0))
    }

    async fn deploy(&self, wasm: Vec<u8>, grants: &Grants) -> Result<DeployReport, Error> {
        let params: Vec<String> = grants
            .env
            .iter()
            .map(|v| ("allowEnv", v))
            .chain(grants.dirs.iter().map(|v| ("allowDir", v)))
            .chain(grants.http.iter().map(|v| ("allowHttp", v)))
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        let path = if params.is_empty() {
            "/api/components".to_owned()
        } else {
            format!("/api/components?{}", params.join("&"))
        };
        self.upload(&path, wasm, OK).await?.json()
    }

    async fn components(&self) -> Result<Vec<ComponentVersion>, Error> {
        let v: Value = self.get("/api/components", OK).await?.json()?;
        let mut out = Vec::new();
        for f in v["functions"].as_array().into_iter().flatten() {
            for version in f["versions"].as_array().into_iter().flatten() {
                out.push(ComponentVersion {
                    name: f["name"].as_str().unwrap_or_default().to_owned(),
                    kind: f["kind"].as_str().unwrap_or_default().to_owned(),
                    hash: version["hash"].as_str().unwrap_or_default().to_owned(),
                    deployed_at: version["deployedAt"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        Ok(out)
    }

    async fn upgrade_check(&self, name: &str, wasm: Vec<u8>, options: UpgradeOptions) -> Result<UpgradeReport, Error> {
        let path = format!(
            "/api/upgrade-check/{}{}",
            enc(name),
            query(&[
                ("apply", flag(options.apply)),
                ("allowInputChanges", flag(options.allow_input_changes)),
            ])
        );
        self.upload(&path, wasm, OK).await?.json()
    }

    async fn replay(&self, id: &str, component: Option<Vec<u8>>, until: Option<usize>) -> Result<ReplayReport, Error> {
        let path = format!(
            "/api/instances/{}/replay{}",
            enc(id),
            query(&[("until", until.map(|u| u.to_string()))])
        );
        match component {
            Some(wasm) => self.upload(&path, wasm, OK).await?.json(),
            None => self.post_json(&path, None, OK).await?.json(),
        }
    }

    async fn describe(&self, id: &str) -> Result<Description, Error> {
        self.get(&format!("/api/instances/{}/describe", enc(id)), OK)
            .await?
            .json()
    }

    async fn locks(&self) -> Result<Vec<Lock>, Error> {
        self.get("/api/locks", OK).await?.json()
    }

    async fn prune_versions(&self) -> Result<Vec<String>, Error> {
        let v: Value = self.post_json("/api/components/prune", None, OK).await?.json()?;
        Ok(v["pruned"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect())
    }

    async fn delete_task_hub(&self) -> Result<u64, Error> {
        let reply = self
            .send(Method::DELETE, "/api/taskhub?confirm=true", &[], None)
            .await?
            .expect(OK)?;
        let v: Value = reply.json()?;
        Ok(v["instancesDeleted"].as_u64().unwrap_or(0))
    }

    async fn signal_entity(&self, s: &EntitySignal) -> Result<bool, Error> {
        let path = format!(
            "{DURABLE}/entities/{}/{}?op={}",
            enc(&s.name),
            key_segment(&s.key),
            enc(&s.operation)
        );
        let mut headers = Vec::new();
        if let Some(k) = &s.idempotency_key {
            headers.push(("idempotency-key", k.as_str()));
        }
        let body = s
            .input
            .as_ref()
            .map(|v| ("application/json", v.to_string().into_bytes()));
        let reply = self.send(Method::POST, &path, &headers, body).await?.expect(ACCEPTED)?;
        // The server says when it had the signal already (idempotency key).
        Ok(reply.header("x-cairn-duplicate").is_none())
    }

    async fn entity_state(&self, name: &str, key: &str) -> Result<Value, Error> {
        let path = format!("{DURABLE}/entities/{}/{}", enc(name), key_segment(key));
        let reply = self.get(&path, OK).await?;
        match reply.json::<Value>() {
            Ok(v) => Ok(v),
            Err(_) => Ok(Value::String(String::from_utf8_lossy(&reply.body).into_owned())),
        }
    }

    async fn list_entities(&self, q: &EntityQuery) -> Result<EntityPage, Error> {
        let mut path = format!("{DURABLE}/entities");
        if let Some(n) = &q.name {
            path.push('/');
            path.push_str(&enc(n));
        }
        path.push_str(&query(&[
            ("fetchState", flag(q.fetch_state)),
            ("top", q.top.map(|t| t.to_string())),
        ]));
        let reply = self.get_page(&path, q.continuation.as_deref()).await?;
        Ok(EntityPage {
            entities: reply.json()?,
            continuation: reply.header(CONTINUATION),
        })
    }

    async fn purge_entities(&self, name: Option<&str>) -> Result<u64, Error> {
        let path = match name {
            Some(n) => format!("{DURABLE}/entities/{}", enc(n)),
            None => format!("{DURABLE}/entities"),
        };
        let v: Value = self.send(Method::DELETE, &path, &[], None).await?.expect(OK)?.json()?;
        Ok(v["entitiesDeleted"].as_u64().unwrap_or(0))
    }
}

/// The key as a path segment: `$` for the empty key.
fn key_segment(key: &str) -> String {
    if key.is_empty() { "$".to_owned() } else { enc(key) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_keys_redacted() {
        let c = HttpClient::new("http://127.0.0.1:7071/", Some("k".into())).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:7071");
        assert!(!format!("{c:?}").contains("\"k\""));
        assert!(HttpClient::new("https://example.org/cairn", None).is_ok());
        for bad in ["ftp://x", "127.0.0.1:7071", "http://", "http://x/?a=b", ""] {
            assert!(matches!(HttpClient::new(bad, None), Err(Error::BadRequest(_))), "{bad}");
        }
        assert!(matches!(
            HttpClient::new("http://x", Some("  ".into())),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            HttpClient::with_ca("http://x", None, Some(b"not pem")),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn segments_and_queries_are_encoded() {
        assert_eq!(enc("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(query(&[("a", None), ("b", Some("x y".into()))]), "?b=x%20y");
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(key_segment(""), "$");
    }
}
