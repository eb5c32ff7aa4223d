//! HTTP API tests: a real engine and a real API server on a loopback port
//! (in-process), talked to over TCP with a tiny HTTP/1.1 client that can
//! also send malformed requests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod cli;
mod clients;
mod config;
mod console_api;
mod console_scale;
mod df_client;
mod entities;
mod failures;
mod flood;
mod metrics;
mod multihost;
mod otlp;
mod own;
mod routes;
mod scripting;
mod security;
mod storms;
mod tls;
mod uploads;

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cairn::api::{self, Api, ApiConfig, ApiError};
use cairn::store::RuntimeStatus;
use common::TestHub;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub const BASE: &str = "/runtime/webhooks/durabletask";

/// `BASE` + `path`.
pub fn df(path: &str) -> String {
    format!("{BASE}{path}")
}

// ---- logs ---------------------------------------------------------------

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line of this test binary (debug level for the API).
fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,cairn=debug"))
            .with_ansi(false)
            .with_writer(|| LogSink)
            .try_init();
    });
}

/// Everything logged so far.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

// ---- client -------------------------------------------------------------

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status and the error-body shape for 4xx/5xx.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        if status >= 400 {
            let v = self.json();
            for k in ["Message", "ExceptionMessage", "ExceptionType"] {
                assert!(v[k].is_string(), "error body lacks {k}: {v}");
            }
        }
        self
    }
}

/// Parses a raw HTTP/1.1 response (Content-Length or chunked body).
pub fn parse_reply(raw: &[u8]) -> Option<Reply> {
    common::serve::parse(raw).map(|r| Reply {
        status: r.status,
        headers: r.headers,
        body: r.body,
    })
}

/// Writes `request` on a new connection and reads until the server closes
/// it (keeping what arrived if the connection is reset).
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(request).await;
    read_all(&mut s, Duration::from_secs(30)).await
}

pub async fn read_all(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Builds a request with `Connection: close` and a Content-Length.
pub fn build(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    // A loopback name: a server without a key serves no other (DNS rebinding).
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

// ---- server -------------------------------------------------------------

/// An engine and the API server on 127.0.0.1:<random port>.
pub struct Server {
    pub t: TestHub,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ApiError>>>,
}

impl Server {
    /// A server with the engine running and the given components deployed.
    pub async fn new(components: &[&str]) -> Self {
        Self::with(components, ApiConfig::default()).await
    }

    pub async fn with(components: &[&str], config: ApiConfig) -> Self {
        Self::on(TestHub::new(true).await, components, config).await
    }

    pub async fn on(t: TestHub, components: &[&str], config: ApiConfig) -> Self {
        init_logs();
        for c in components {
            t.deploy(c).await;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let api = Api::new(t.hub.clone(), t.engine.clone(), config).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(api::serve(listener, api, async {
            let _ = stopped.await;
        }));
        Self {
            t,
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let raw = exchange(self.addr, &build(method, path, headers, body)).await;
        parse_reply(&raw)
            .unwrap_or_else(|| panic!("{method} {path}: no HTTP response: {:?}", String::from_utf8_lossy(&raw)))
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.req("GET", path, &[], b"").await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.req("DELETE", path, &[], b"").await
    }

    /// POST with a JSON body (Content-Type: application/json).
    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.req("POST", path, &[("Content-Type", "application/json")], body.as_bytes())
            .await
    }

    /// Starts `name` with `input` under `id` (generated when empty); returns its id.
    pub async fn start(&self, name: &str, input: &str, id: &str) -> String {
        let path = if id.is_empty() {
            df(&format!("/orchestrators/{name}"))
        } else {
            df(&format!("/orchestrators/{name}/{id}"))
        };
        let r = self.post(&path, input).await;
        r.expect(202);
        r.json()["id"].as_str().unwrap().to_owned()
    }

    pub async fn status(&self, id: &str) -> Option<RuntimeStatus> {
        self.t.hub.store.get_instance(id).await.unwrap().map(|r| r.status)
    }

    /// Waits (at most 20 s) until `id` has status `want`.
    pub async fn wait_status(&self, id: &str, want: RuntimeStatus) {
        for _ in 0..2000 {
            if self.status(id).await == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} never became {want}; it is {:?}", self.status(id).await);
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
        self.t.stop().await;
    }
}

/// Percent-encodes every byte outside A-Z a-z 0-9 - . _ ~.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
