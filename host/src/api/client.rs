//! A small HTTP/1.1 client of this API, for `cairn --url` (plain HTTP; put
//! a TLS-terminating proxy in front of a remote `cairn serve`).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Largest response body the client reads (64 MiB).
const MAX_RESPONSE: usize = 64 << 20;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--url {0:?} must look like http://host:port (https is not supported: use a local proxy)")]
    BadUrl(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("HTTP request to {addr} failed: {message}")]
    Http { addr: String, message: String },
    #[error("{addr} did not answer within {secs} s")]
    Timeout { addr: String, secs: u64 },
}

/// A server's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as text (lossy).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`null` when empty or not JSON).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value as text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The server's error message (`ExceptionMessage` of an error body),
    /// or the body text.
    #[must_use]
    pub fn error_message(&self) -> String {
        match self.json().get("ExceptionMessage").and_then(|m| m.as_str()) {
            Some(m) => m.to_owned(),
            None => self.text(),
        }
    }
}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    /// `host:port` to connect to and send as `Host`.
    authority: String,
    /// Path prefix of the server (usually empty).
    prefix: String,
    key: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("authority", &self.authority)
            .field("prefix", &self.prefix)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Client {
    /// A client of the server at `url` (`http://host[:port][/prefix]`),
    /// sending `key` as a bearer token.
    ///
    /// # Errors
    /// [`ClientError::BadUrl`].
    pub fn new(url: &str, key: Option<String>) -> Result<Self, ClientError> {
        let bad = || ClientError::BadUrl(url.to_owned());
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("HTTP://"))
            .ok_or_else(bad)?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || !super::http::valid_host(authority) {
            return Err(bad());
        }
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(h, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':'));
        let authority = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            prefix: prefix.to_owned(),
            key: key.filter(|k| !k.is_empty()),
            timeout: Duration::from_secs(660),
        })
    }

    /// Sends one request; `path` starts with `/` and may carry a query.
    ///
    /// # Errors
    /// Connection and protocol errors (an HTTP error status is a [`Reply`]).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, ClientError> {
        let addr = self.authority.clone();
        let http = |message: String| ClientError::Http {
            addr: addr.clone(),
            message,
        };
        let exchange = async {
            let stream = TcpStream::connect(&addr).await.map_err(|source| ClientError::Connect {
                addr: addr.clone(),
                source,
            })?;
            let _ = stream.set_nodelay(true);
            let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| http(e.to_string()))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut req = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.prefix))
                .header("host", &addr)
                .header("accept", "application/json");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(key) = &self.key {
                let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|e| http(e.to_string()))?;
                v.set_sensitive(true);
                req = req.header("authorization", v);
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| http(e.to_string()))?;
            let resp = sender.send_request(req).await.map_err(|e| http(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| http(e.to_string()))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: self.authority.clone(),
                secs: self.timeout.as_secs(),
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = Client::new("http://127.0.0.1:7071", None).unwrap();
        assert_eq!((c.authority.as_str(), c.prefix.as_str()), ("127.0.0.1:7071", ""));
        let c = Client::new("http://example.org/cairn/", Some("k".into())).unwrap();
        assert_eq!((c.authority.as_str(), c.prefix.as_str()), ("example.org:80", "/cairn"));
        assert!(!format!("{c:?}").contains("\"k\""));
        let c = Client::new("http://[::1]:9", None).unwrap();
        assert_eq!(c.authority, "[::1]:9");
        assert!(Client::new("https://x", None).is_err());
        assert!(Client::new("http://", None).is_err());
        assert!(Client::new("http://a b", None).is_err());
    }
}
