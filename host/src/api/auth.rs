//! The API key: accepted as the `code` query parameter, the
//! `x-functions-key` header or `Authorization: Bearer`, compared in constant
//! time, and never logged (see [`redact_query`]).

use hyper::header::{AUTHORIZATION, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::http::{Query, encode_component};

/// A configured API key, kept only as its SHA-256 digest: comparing
/// digests takes the same time whatever the key's length or content.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl ApiKey {
    #[must_use]
    pub fn new(key: &str) -> Self {
        Self { digest: digest(key) }
    }

    fn matches(&self, candidate: &str) -> bool {
        bool::from(self.digest.ct_eq(&digest(candidate)))
    }

    /// Whether the request carries this key in any accepted place. Every
    /// candidate is compared (no early exit on the first mismatch).
    #[must_use]
    pub fn accepts(&self, query: &Query, headers: &HeaderMap) -> bool {
        let mut ok = false;
        if let Some(code) = query.get("code") {
            ok |= self.matches(code);
        }
        for v in headers.get_all("x-functions-key") {
            if let Ok(v) = v.to_str() {
                ok |= self.matches(v.trim());
            }
        }
        for v in headers.get_all(AUTHORIZATION) {
            if let Some(token) = v
                .to_str()
                .ok()
                .and_then(|v| v.trim().split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim())
            {
                ok |= self.matches(token);
            }
        }
        ok
    }
}

/// The query string with the value of every `code` parameter replaced, for
/// logs.
#[must_use]
pub fn redact_query(raw: Option<&str>) -> String {
    let Some(raw) = raw else { return String::new() };
    let parts: Vec<String> = raw
        .split('&')
        .map(|p| {
            let name = p.split_once('=').map_or(p, |(k, _)| k);
            let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            if decoded.eq_ignore_ascii_case("code") {
                format!("{}=REDACTED", encode_component(&decoded))
            } else {
                p.to_owned()
            }
        })
        .collect();
    format!("?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sources_and_redaction() {
        let key = ApiKey::new("s3cret");
        let mut h = HeaderMap::new();
        let q = |s: &str| Query::parse(Some(s)).unwrap_or_default();
        assert!(key.accepts(&q("code=s3cret"), &h));
        assert!(!key.accepts(&q("code=s3cre"), &h));
        assert!(!key.accepts(&q(""), &h));
        h.insert("x-functions-key", "s3cret".parse().unwrap());
        assert!(key.accepts(&q(""), &h));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "bearer s3cret".parse().unwrap());
        assert!(key.accepts(&q(""), &h));
        assert_eq!(
            redact_query(Some("a=1&code=s3cret&CODE=x")),
            "?a=1&code=REDACTED&CODE=REDACTED"
        );
        assert!(!format!("{key:?}").contains("s3cret"));
    }
}
