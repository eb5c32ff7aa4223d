//! Requests a web browser could be made to send. The API has no cookies, so
//! the danger is a page the operator visits talking to a server that needs
//! no key (one on a loopback address):
//! - **DNS rebinding**: `attacker.example` re-resolves to 127.0.0.1, and its
//!   page then calls the API as its own origin. Those requests carry
//!   `Host: attacker.example`, so without a key only loopback host names
//!   are served ([`is_loopback_host`]).
//! - **Cross-site requests**: any page can make the browser POST to
//!   `http://127.0.0.1:7071` without a CORS preflight (a "simple" request).
//!   Browsers mark such requests with `Origin`, so an `Origin` other than
//!   the server's own is refused, with or without a key, unless the operator
//!   allowed it (`--allow-origin`); only allowed origins get CORS headers.
//!
//! Both checks answer 403. Clients that are not browsers send no `Origin`
//! and, on loopback, a loopback `Host`, so they pass.

use std::net::{Ipv4Addr, Ipv6Addr};

use hyper::header::{HOST, HeaderMap, HeaderValue, ORIGIN};
use hyper::{StatusCode, Uri};

use super::http::{HttpError, Resp};

/// True for `localhost`, `127.x.y.z` and `[::1]`, each with or without a port.
#[must_use]
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let valid_port = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = host.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
        return port_ok && ip.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    let name = match host.split_once(':') {
        Some((name, port)) if valid_port(port) => name,
        Some(_) => return false,
        None => host,
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host[:port]` of an `Origin` value (`http://host:port`), if it has one.
fn origin_authority(origin: &str) -> Option<&str> {
    let (scheme, rest) = origin.split_once("://")?;
    let ok = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    (ok && !rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// What the browser checks decided about a request.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    /// The request's `Origin`, when it is one the operator allowed
    /// cross-origin: the response gets CORS headers for it.
    pub cors_origin: Option<HeaderValue>,
}

/// Applies the checks of this module.
///
/// `keyless`: the server has no API key (then only loopback `Host` names
/// are served). `allowed`: origins allowed cross-origin. `forwarded_host`:
/// the `X-Forwarded-Host` when the server trusts it (also "same origin").
///
/// # Errors
/// 403 for a foreign `Host` (keyless) or a foreign `Origin`.
pub(super) fn check(
    headers: &HeaderMap,
    uri: &Uri,
    keyless: bool,
    allowed: &[String],
    forwarded_host: Option<&str>,
) -> Result<Verdict, HttpError> {
    let host = match headers.get(HOST) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| HttpError::bad_request("the Host header is not text"))?
                .trim(),
        ),
        None => None,
    };
    if keyless {
        for h in host.into_iter().chain(uri.authority().map(|a| a.as_str())) {
            if !is_loopback_host(h) {
                return Err(HttpError::forbidden(format!(
                    "this server has no API key, so it only serves requests addressed to localhost, 127.0.0.1 or [::1], not {h:?} (a defence against DNS rebinding); give the server an API key with --api-key to serve other host names"
                )));
            }
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(Verdict::default());
    };
    let text = origin.to_str().unwrap_or("").trim();
    let text_no_slash = text.trim_end_matches('/');
    if !text.is_empty()
        && allowed
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(text_no_slash))
    {
        return Ok(Verdict {
            cors_origin: Some(origin.clone()),
        });
    }
    let same = origin_authority(text).is_some_and(|a| {
        host.into_iter()
            .chain(forwarded_host)
            .any(|h| h.eq_ignore_ascii_case(a))
    });
    if same {
        return Ok(Verdict::default());
    }
    Err(HttpError::forbidden(format!(
        "cross-origin requests are refused: Origin {text:?} is not this server's origin; start the server with --allow-origin {text} to let that web app call the API"
    )))
}

/// Answers a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`)
/// from an allowed origin; `None` for any other request.
pub(super) fn preflight(method: &hyper::Method, headers: &HeaderMap, verdict: &Verdict) -> Option<Resp> {
    if method != hyper::Method::OPTIONS || !headers.contains_key("access-control-request-method") {
        return None;
    }
    let origin = verdict.cors_origin.as_ref()?;
    let mut r = Resp::new(http_body_util::Full::new(bytes::Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert("access-control-allow-origin", origin.clone());
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("Authorization, Content-Type, x-functions-key, x-ms-continuation-token"),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("600"));
    h.insert("vary", HeaderValue::from_static("Origin"));
    Some(r)
}

/// Adds the CORS headers of an allowed cross-origin request to its answer.
pub(super) fn add_cors(r: &mut Resp, verdict: &Verdict) {
    if let Some(origin) = &verdict.cors_origin {
        let h = r.headers_mut();
        h.insert("access-control-allow-origin", origin.clone());
        h.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("Location, Retry-After, x-ms-continuation-token"),
        );
        h.insert("vary", HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST:7071",
            "127.0.0.1",
            "127.0.0.1:7071",
            "127.1.2.3:1",
            "[::1]",
            "[::1]:7071",
            "[0:0:0:0:0:0:0:1]:80",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "",
            "rebind.attacker.example:7071",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "128.0.0.1",
            "0.0.0.0:7071",
            "[::]:7071",
            "[::1]x",
            "[::1]:",
            "localhost:",
            "localhost:70a",
            "localhost:7071:1",
            "::1",
            "10.0.0.1:7071",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:7071"));
        let uri: Uri = "/x".parse().unwrap_or_default();
        assert!(check(&h, &uri, true, &[], None).is_ok(), "no Origin");
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:7071"));
        assert!(
            check(&h, &uri, true, &[], None).is_ok_and(|v| v.cors_origin.is_none()),
            "same origin"
        );
        for bad in ["http://evil.example", "null", "http://127.0.0.1:7072", ""] {
            h.insert(ORIGIN, HeaderValue::from_static(bad));
            let e = check(&h, &uri, false, &[], None).err().map(|e| e.status);
            assert_eq!(e, Some(StatusCode::FORBIDDEN), "{bad}");
        }
        h.insert(ORIGIN, HeaderValue::from_static("https://app.example"));
        let allowed = ["https://APP.example/".to_owned()];
        assert!(check(&h, &uri, true, &allowed, None).is_ok_and(|v| v.cors_origin.is_some()));
        h.insert(HOST, HeaderValue::from_static("rebind.example:7071"));
        assert!(check(&h, &uri, true, &allowed, None).is_err(), "foreign Host, keyless");
        assert!(check(&h, &uri, false, &allowed, None).is_ok(), "foreign Host, keyed");
    }
}
