//! Outbound HTTP (`wasi:http`) for activities, gated by the hosts the
//! component was granted at deploy (`cairn deploy --allow-http HOST`).
//!
//! A request to a host outside the grant never leaves the process: the
//! guest receives `HTTP-request-denied`, and the host records the denial so
//! the activity attempt fails with `CapabilityDenied` naming the host, even
//! when the guest swallows the error.

use std::future::Future;

use hyper::http::uri::{Authority, Scheme};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// One granted host: `example.com` (any port), `example.com:8443`,
/// `*.example.com` (subdomains of example.com, any port), `127.0.0.1:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lowercase host; for a wildcard, the suffix after `*.`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses a grant.
    ///
    /// # Errors
    /// A message naming the bad pattern (a URL, a path, an empty host).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("--allow-http {spec:?}: {why}; expected HOST, HOST:PORT or *.DOMAIN");
        if spec.contains("://") || spec.contains('/') || spec.contains('@') {
            return Err(bad("give a host, not a URL"));
        }
        let (wildcard, rest) = match spec.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let authority: Authority = rest.parse().map_err(|_| bad("not a host"))?;
        if let Some((_, port)) = rest.rsplit_once(':').filter(|_| !rest.ends_with(']'))
            && port.parse::<u16>().is_err()
        {
            return Err(bad("not a port"));
        }
        let host = authority.host().to_ascii_lowercase();
        if host.is_empty() || host.contains('*') {
            return Err(bad("not a host"));
        }
        Ok(Self {
            host,
            wildcard,
            port: authority.port_u16(),
        })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        let host_ok = if self.wildcard {
            host.strip_suffix(self.host.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// The `wasi:http` hooks of one guest store.
#[derive(Default)]
pub(super) struct HttpGate {
    allowed: Vec<HostPattern>,
    /// `host:port` of every refused request, in order.
    pub(super) denied: Vec<String>,
}

impl HttpGate {
    pub(super) fn new(allowed: Vec<HostPattern>) -> Self {
        Self {
            allowed,
            denied: Vec::new(),
        }
    }

    fn permits(&self, scheme: Option<&Scheme>, authority: Option<&Authority>) -> Result<(), String> {
        check_target(&self.allowed, scheme, authority)
    }
}

/// Whether a request to `authority` (default port by `scheme`) falls under
/// one of the `allowed` grants; the refused `host:port` otherwise.
///
/// # Errors
/// The refused target, e.g. `"example.com:443"`.
pub fn check_target(
    allowed: &[HostPattern],
    scheme: Option<&Scheme>,
    authority: Option<&Authority>,
) -> Result<(), String> {
    let Some(authority) = authority else {
        return Err("(no host)".to_owned());
    };
    let host = authority.host().to_ascii_lowercase();
    let port = authority
        .port_u16()
        .unwrap_or(if scheme == Some(&Scheme::HTTP) { 80 } else { 443 });
    if allowed.iter().any(|p| p.matches(&host, port)) {
        Ok(())
    } else {
        Err(format!("{host}:{port}"))
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    hyper::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        let uri = request.uri();
        if let Err(target) = self.permits(uri.scheme(), uri.authority()) {
            tracing::warn!(target = %target, "outbound HTTP denied: host not granted");
            self.denied.push(target);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(specs: &[&str]) -> HttpGate {
        HttpGate::new(specs.iter().map(|s| HostPattern::parse(s).unwrap()).collect())
    }

    fn check(g: &HttpGate, url: &str) -> Result<(), String> {
        let uri: hyper::Uri = url.parse().unwrap();
        g.permits(uri.scheme(), uri.authority())
    }

    #[test]
    fn patterns_match_host_port_and_subdomains() {
        let g = gate(&["api.example.com", "127.0.0.1:8080", "*.internal.test"]);
        assert!(check(&g, "https://api.example.com/x").is_ok());
        assert!(check(&g, "http://API.example.com:81/").is_ok());
        assert!(check(&g, "http://127.0.0.1:8080/").is_ok());
        assert!(check(&g, "https://a.b.internal.test/").is_ok());
        assert_eq!(check(&g, "http://127.0.0.1:8081/"), Err("127.0.0.1:8081".into()));
        assert_eq!(check(&g, "https://internal.test/"), Err("internal.test:443".into()));
        assert_eq!(
            check(&g, "https://evil-internal.test/"),
            Err("evil-internal.test:443".into())
        );
        assert_eq!(check(&g, "https://example.com/"), Err("example.com:443".into()));
        assert!(check(&gate(&[]), "https://api.example.com/").is_err());
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "https://x.com",
            "x.com/path",
            "*.",
            "a*b.com",
            "user@x.com",
            "x.com:99999",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
