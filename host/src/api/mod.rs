//! The HTTP management API of `cairn serve`: the Durable Functions
//! built-in HTTP API under `/runtime/webhooks/durabletask` (wire-compatible
//! with that extension, see `HTTP-API.md`), and Cairn's own routes beside it
//! (components, health, metrics, the OpenAPI document).
//!
//! # Layout
//! - [`http`]    — request errors and their JSON bodies, query strings, bounded bodies, URLs
//! - [`auth`]    — the API key (constant-time comparison, redaction)
//! - `browser`   — requests a web page could make: `Host` and `Origin` checks, CORS
//! - `slots`     — connection slots: idle connections give way to new ones
//! - `durable`   — the Durable Functions routes
//! - `own`       — Cairn's own routes
//! - `console`   — the web console: assets built into the binary, its JSON routes (`/api/console/...`)
//! - `session`   — console sign-in: session cookie (HttpOnly, SameSite=Strict) and CSRF token
//! - [`client`]  — a small HTTP/1.1 client for `cairn --url`
//! - [`tls`]     — HTTPS (`--tls-cert`, `--tls-key`): rustls, ring provider
//!
//! Limits: request bodies are capped (413, refused from `Content-Length`
//! before reading and capped while reading), headers must arrive within a
//! timeout, connections are capped (at the cap the connection idle longest
//! is closed for a new one; only when every connection has a request in
//! flight do new ones wait in the listen backlog), concurrent component
//! uploads are capped (503 + `Retry-After` beyond), JSON nesting is bounded,
//! and a handler that panics answers 500 without taking the server down.
//!
//! Without an API key (loopback only) the server answers only requests
//! addressed to a loopback host name, refuses foreign `Origin`s, takes
//! bodies only of the declared JSON/wasm types (so no web page can reach
//! it with a CORS-free "simple" request), and refuses capability grants.

pub mod auth;
mod browser;
pub mod client;
mod console;
mod durable;
mod entities;
pub mod http;
mod own;
mod session;
mod slots;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{EXPECT, HOST};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::engine::Engine;
use crate::hub::Hub;
use auth::{ApiKey, redact_query};
use http::{HttpError, Query, Resp, Urls, check_body_type, valid_host};
use slots::Slots;

pub use browser::is_loopback_host;

/// The base path of the Durable Functions routes.
pub const BASE_PATH: &str = "/runtime/webhooks/durabletask";

/// Settings of the API server. Every field has a documented default.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Key every route but `/healthz` requires (default none: only a
    /// loopback address may then be served, only to requests addressed to a
    /// loopback host name, and capabilities cannot be granted over HTTP).
    pub api_key: Option<String>,
    /// Origins (`https://app.example`) whose web pages may call the API:
    /// their requests are served and answered with CORS headers (default
    /// none: every request with another site's `Origin` answers 403).
    pub allowed_origins: Vec<String>,
    /// Build URLs from `X-Forwarded-Host` / `X-Forwarded-Proto` (default
    /// false: only behind a proxy that sets them).
    pub trust_forwarded: bool,
    /// Largest request body, bytes (default 4 MiB).
    pub max_body_bytes: usize,
    /// Largest component upload, bytes (default 64 MiB).
    pub max_component_bytes: usize,
    /// Time a client has to send the request headers (default 10 s).
    pub header_read_timeout: Duration,
    /// Time a client has to send the request body (default 30 s).
    pub body_read_timeout: Duration,
    /// Connections served at once (default 1024). At the cap, a new
    /// connection takes the slot of the connection idle longest.
    pub max_connections: usize,
    /// Component uploads read and compiled at once (default 2); more answer
    /// 503 with `Retry-After`. Bounds memory: an upload of the largest
    /// component holds about three times its size while it compiles.
    pub max_concurrent_deploys: usize,
    /// Deepest JSON nesting accepted in bodies (default 128).
    pub max_json_depth: usize,
    /// Longest synchronous wait of a start with `timeout` (default 600 s).
    pub max_wait: Duration,
    /// Serve HTTPS with these settings (default none: plain HTTP); see
    /// [`tls::TlsArgs::load`]. The URLs handed out then say `https`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            allowed_origins: Vec::new(),
            trust_forwarded: false,
            max_body_bytes: 4 << 20,
            max_component_bytes: 64 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_concurrent_deploys: 2,
            max_json_depth: 128,
            max_wait: Duration::from_secs(600),
            tls: None,
        }
    }
}

/// Errors of starting the API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "refusing to serve the management API on {0} without an API key: set --api-key or CAIRN_API_KEY, or listen on a loopback address such as 127.0.0.1"
    )]
    KeyRequired(SocketAddr),
    #[error("the API key must not be empty or only whitespace")]
    EmptyKey,
    #[error("invalid API setting: {0}")]
    Config(String),
    #[error("the management API listener failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks that `addr` may be served with `config` (a non-loopback address
/// needs an API key).
///
/// # Errors
/// [`ApiError::KeyRequired`], [`ApiError::EmptyKey`].
pub fn check_listen(addr: SocketAddr, config: &ApiConfig) -> Result<(), ApiError> {
    match config.api_key.as_deref() {
        Some(k) if k.trim().is_empty() => Err(ApiError::EmptyKey),
        None if !addr.ip().is_loopback() => Err(ApiError::KeyRequired(addr)),
        _ => Ok(()),
    }
}

/// The API: the task hub, its running engine, the settings.
pub struct Api {
    hub: Hub,
    engine: Arc<Engine>,
    config: ApiConfig,
    key: Option<ApiKey>,
    /// Permits of component uploads in progress.
    deploys: Arc<Semaphore>,
    /// Console sessions (cookies traded for the API key).
    sessions: session::Sessions,
    /// Permits of console replays (time travel, timeline event waits):
    /// each runs a guest, so only a few at once.
    replays: Arc<Semaphore>,
}

impl Api {
    /// # Errors
    /// [`ApiError::Config`] for unusable settings; [`ApiError::EmptyKey`].
    pub fn new(hub: Hub, engine: Arc<Engine>, config: ApiConfig) -> Result<Arc<Self>, ApiError> {
        if config.max_connections == 0
            || config.max_body_bytes == 0
            || config.max_json_depth == 0
            || config.max_concurrent_deploys == 0
        {
            return Err(ApiError::Config(
                "max_connections, max_body_bytes, max_json_depth and max_concurrent_deploys must be positive".into(),
            ));
        }
        let key = match config.api_key.as_deref() {
            Some(k) if k.trim().is_empty() => return Err(ApiError::EmptyKey),
            Some(k) => Some(ApiKey::new(k)),
            None => None,
        };
        Ok(Arc::new(Self {
            hub,
            engine,
            deploys: Arc::new(Semaphore::new(config.max_concurrent_deploys)),
            sessions: session::Sessions::default(),
            replays: Arc::new(Semaphore::new(2)),
            config,
            key,
        }))
    }

    #[must_use]
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// Answers one request (never panics the caller: see [`serve`]):
    /// first the checks against requests a web page could make (see
    /// `browser`), then the route, with CORS headers for an allowed
    /// cross-origin caller.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, local: SocketAddr) -> Resp {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let logged = format!("{}{}", req.uri().path(), redact_query(req.uri().query()));
        let forwarded_host = if self.config.trust_forwarded {
            req.headers().get("x-forwarded-host").and_then(|v| v.to_str().ok())
        } else {
            None
        };
        let verdict = browser::check(
            req.headers(),
            req.uri(),
            self.key.is_none(),
            &self.config.allowed_origins,
            forwarded_host,
        );
        let resp = match verdict {
            Err(e) => e.into_response(),
            Ok(v) => match browser::preflight(req.method(), req.headers(), &v) {
                Some(r) => r,
                None => {
                    let mut resp = match self.route(req, local).await {
                        Ok(r) => r,
                        Err(e) => {
                            if e.status.is_server_error() {
                                tracing::error!(target: "cairn::api", %method, url = %logged, error = %e.detail, "request failed");
                            }
                            e.into_response()
                        }
                    };
                    browser::add_cors(&mut resp, &v);
                    resp
                }
            },
        };
        let route = crate::metrics::route_template(&path);
        let t = &self.engine.telemetry;
        t.http_requests
            .get_or_create(&crate::metrics::HttpLabels {
                method: method.as_str().to_owned(),
                route,
                status: resp.status().as_u16(),
            })
            .inc();
        t.http_seconds
            .get_or_create(&crate::metrics::RouteLabels {
                method: method.as_str().to_owned(),
                route,
            })
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(
            target: "cairn::api",
            %method,
            url = %logged,
            status = resp.status().as_u16(),
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        resp
    }

    async fn route(&self, req: Request<Incoming>, local: SocketAddr) -> Result<Resp, HttpError> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let mut segs: Vec<&str> = path.split('/').skip(1).collect();
        while segs.len() > 1 && segs.last() == Some(&"") {
            segs.pop();
        }
        let is = |i: usize, lit: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(lit));
        if segs.len() == 1 && is(0, "healthz") {
            return self.healthz(&parts.method).await;
        }
        // The console's pages hold no data: served without the key (the
        // page signs in, then calls the API with its session cookie).
        if let Some((content_type, body)) = console::asset(&path) {
            return Ok(console::serve_asset(&parts.method, &path, content_type, body));
        }
        let console_session = segs.len() == 3 && is(0, "api") && is(1, "console") && is(2, "session");
        // Authentication first: a caller without the key learns nothing
        // about its request, not even that its query string is malformed.
        // A console session cookie stands for the key; a change made with
        // it alone must carry the session's CSRF token.
        if !console_session
            && let Some(key) = &self.key
            && !key.accepts(&Query::parse_lossy(parts.uri.query()), &parts.headers)
        {
            let Some(csrf) = self.sessions.lookup(&parts.headers) else {
                return Err(HttpError::unauthorized());
            };
            if parts.method != Method::GET
                && parts.method != Method::HEAD
                && !session::csrf_matches(&parts.headers, &csrf)
            {
                return Err(HttpError::forbidden(
                    "a change made with the console's session needs its CSRF token in the X-Cairn-CSRF header; reload the console",
                ));
            }
        }
        let query = Query::parse(parts.uri.query())?;
        let durable = segs.len() >= 3 && is(0, "runtime") && is(1, "webhooks") && is(2, "durabletask");
        // Requests whose body is a component: deploy, upgrade-check, replay against a candidate.
        let upload = parts.method == Method::POST
            && is(0, "api")
            && ((segs.len() == 2 && is(1, "components"))
                || (segs.len() == 3 && is(1, "upgrade-check"))
                || (segs.len() == 4 && is(1, "instances") && is(3, "replay")));
        // Raise-event answers 400 for another type, as Durable Functions does.
        let raise_event = durable && segs.len() >= 7 && is(segs.len() - 2, "raiseEvent");
        if upload {
            check_body_type(&parts.headers, &["application/wasm", "application/octet-stream"])?;
        } else if !raise_event {
            check_body_type(&parts.headers, &["application/json"])?;
        }
        let origin = self.origin(&parts, local);
        let ctx = Ctx {
            self_url: format!("{origin}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str())),
            urls: Urls {
                base: format!("{origin}{BASE_PATH}"),
                carried: query.carried(),
            },
            method: parts.method,
            headers: parts.headers,
            query,
            body: Some(body),
        };
        if console_session {
            let secure = ctx.urls.base.starts_with("https://");
            return self.console_session(ctx, secure).await;
        }
        if segs.len() >= 2 && is(0, "api") && is(1, "console") {
            return self.console(ctx, &segs).await;
        }
        if durable {
            return self.durable(ctx, &segs[3..]).await;
        }
        if is(0, "api") || (segs.len() == 1 && is(0, "metrics")) {
            return self.own(ctx, &segs).await;
        }
        Err(HttpError::not_found(format!("no route for {path}")))
    }

    /// `scheme://host` of the request, for the URLs we hand out.
    fn origin(&self, parts: &hyper::http::request::Parts, local: SocketAddr) -> String {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| valid_host(v))
                .map(str::to_owned)
        };
        let mut scheme = if self.config.tls.is_some() { "https" } else { "http" }.to_owned();
        let mut host = None;
        if self.config.trust_forwarded {
            host = header("x-forwarded-host");
            if let Some(p) = header("x-forwarded-proto")
                && (p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("https"))
            {
                scheme = p.to_ascii_lowercase();
            }
        }
        let host = host
            .or_else(|| header(HOST.as_str()))
            .or_else(|| {
                parts
                    .uri
                    .authority()
                    .map(|a| a.as_str().to_owned())
                    .filter(|a| valid_host(a))
            })
            .unwrap_or_else(|| local.to_string());
        format!("{scheme}://{host}")
    }
}

/// One request being served.
pub(crate) struct Ctx {
    pub method: Method,
    pub headers: hyper::HeaderMap,
    pub query: Query,
    /// Taken by the handler that reads it.
    pub body: Option<Incoming>,
    pub urls: Urls,
    /// The absolute URL of this request (`Location` of a 202 status).
    pub self_url: String,
}

impl Ctx {
    /// Reads the body, at most `cap` bytes, within the body timeout.
    pub async fn body(&mut self, cap: usize, timeout: Duration) -> Result<Vec<u8>, HttpError> {
        let Some(body) = self.body.take() else {
            return Ok(Vec::new());
        };
        match tokio::time::timeout(timeout, http::read_body(&self.headers, body, cap)).await {
            Ok(r) => r,
            Err(_) => Err(HttpError {
                status: StatusCode::REQUEST_TIMEOUT,
                message: "The request body did not arrive in time",
                detail: format!("the body was not received within {timeout:?}"),
                kind: "System.TimeoutException",
                retry_after: None,
            }),
        }
    }

    /// Reads and drops the body (at most `cap` bytes, within `timeout`)
    /// before an early refusal, so a client still sending it reads the
    /// answer instead of a reset. Not when the client sent `Expect:
    /// 100-continue`: it waits for the answer before sending the body.
    pub async fn discard_body(&mut self, cap: usize, timeout: Duration) {
        if self.headers.contains_key(EXPECT) {
            return;
        }
        if let Some(body) = self.body.take() {
            let _ = tokio::time::timeout(timeout, http::discard_body(body, cap)).await;
        }
    }
}

/// A connection's byte stream: TCP, or TLS over TCP.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// Serves the API on `listener` until `shutdown` completes, then lets
/// open requests finish (at most 5 s).
///
/// # Errors
/// [`ApiError::KeyRequired`] for a non-loopback listener without a key.
pub async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ApiError> {
    let local = listener.local_addr()?;
    check_listen(local, &api.config)?;
    let slots = Slots::new(api.config.max_connections);
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(api.config.header_read_timeout)
        .max_headers(100);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // At the cap, the connection idle longest gives way; when every
        // connection has a request in flight, wait (new ones queue in the
        // listen backlog meanwhile).
        let slot = tokio::select! {
            s = slots.take() => s,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let api = api.clone();
        let marker = slot.marker();
        let tls = api.config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let handshake_timeout = api.config.header_read_timeout;
        let service = service_fn(move |req| {
            let api = api.clone();
            let busy = marker.busy();
            async move {
                let _busy = busy;
                // A panicking handler answers 500 instead of killing the connection task.
                let resp = match tokio::spawn(api.handle(req, local)).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(target: "cairn::api", error = %e, "request handler panicked");
                        HttpError::internal("the request handler failed").into_response()
                    }
                };
                Ok::<_, Infallible>(resp)
            }
        });
        let watcher = graceful.watcher();
        let builder = builder.clone();
        tokio::spawn(async move {
            // HTTPS: the handshake runs here, not in the accept loop, within
            // the header timeout; the connection holds its slot meanwhile
            // and, idle, gives it way to a new one like any idle connection.
            let io: Box<dyn Io> = match tls {
                None => Box::new(stream),
                Some(acceptor) => tokio::select! {
                    r = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)) => match r {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            tracing::debug!(target: "cairn::api", error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(target: "cairn::api", "TLS handshake timed out");
                            return;
                        }
                    },
                    () = slot.evicted() => return,
                },
            };
            let conn = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
            tokio::select! {
                _ = conn => {}
                () = slot.evicted() => {
                    tracing::debug!(target: "cairn::api", "closed an idle connection to make room for a new one");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    Ok(())
}
