//! Console sessions: with an API key, the console's sign-in form trades
//! the key for a session cookie (`HttpOnly; SameSite=Strict`), so the key
//! never sits in a URL, in the page's storage or in its scripts after
//! sign-in.
//!
//! Cookies are ambient credentials, so a request authenticated by the
//! cookie alone must also carry the session's CSRF token in the
//! `X-Cairn-CSRF` header to change anything (any method but GET/HEAD). A
//! page of another site can neither read the token (no CORS for it) nor
//! set that header without a preflight the server refuses; and the
//! `Host`/`Origin` checks of `browser` apply to every request as before.
//!
//! Sessions live in memory (a restart signs everyone out), expire after
//! [`SESSION_TTL`], and are capped at [`MAX_SESSIONS`] (the oldest goes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header::{COOKIE, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "cairn_session";
/// Header carrying the CSRF token of a cookie-authenticated change.
pub const CSRF_HEADER: &str = "x-cairn-csrf";
/// Lifetime of a session.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once (bounds memory; the oldest is dropped beyond).
pub const MAX_SESSIONS: usize = 1024;

struct Entry {
    csrf: String,
    created: Instant,
}

/// The signed-in sessions, by SHA-256 of their token (a memory dump does
/// not hand out live cookies).
#[derive(Default)]
pub(super) struct Sessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

impl Sessions {
    /// A new session: (cookie token, CSRF token). 256 random bits each.
    pub(super) fn create(&self) -> (String, String) {
        let token = format!("{}{}", crate::ids::random_hex(), crate::ids::random_hex());
        let csrf = format!("{}{}", crate::ids::random_hex(), crate::ids::random_hex());
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, e| e.created.elapsed() < SESSION_TTL);
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.created).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
            map.insert(
                digest(&token),
                Entry {
                    csrf: csrf.clone(),
                    created: Instant::now(),
                },
            );
        }
        (token, csrf)
    }

    /// The CSRF token of the request's live session, if it has one.
    pub(super) fn lookup(&self, headers: &HeaderMap) -> Option<String> {
        let token = cookie(headers, COOKIE_NAME)?;
        let map = self.map.lock().ok()?;
        map.get(&digest(token))
            .filter(|e| e.created.elapsed() < SESSION_TTL)
            .map(|e| e.csrf.clone())
    }

    /// Ends the request's session.
    pub(super) fn remove(&self, headers: &HeaderMap) {
        if let (Some(token), Ok(mut map)) = (cookie(headers, COOKIE_NAME), self.map.lock()) {
            map.remove(&digest(token));
        }
    }
}

/// Whether the request carries `csrf` in [`CSRF_HEADER`] (constant time).
pub(super) fn csrf_matches(headers: &HeaderMap, csrf: &str) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| bool::from(digest(v.trim()).ct_eq(&digest(csrf))))
}

/// `Set-Cookie` of a new session (`secure`: the console is served over HTTPS).
pub(super) fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that ends the session in the browser.
pub(super) fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn sessions_round_trip_and_check_csrf() {
        let s = Sessions::default();
        let (token, csrf) = s.create();
        assert_eq!(token.len(), 64);
        let mut h = HeaderMap::new();
        assert_eq!(s.lookup(&h), None);
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE_NAME}={token}")).unwrap(),
        );
        assert_eq!(s.lookup(&h).as_deref(), Some(csrf.as_str()));
        assert!(!csrf_matches(&h, &csrf));
        h.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).unwrap());
        assert!(csrf_matches(&h, &csrf));
        h.insert(CSRF_HEADER, HeaderValue::from_static("nope"));
        assert!(!csrf_matches(&h, &csrf));
        s.remove(&h);
        assert_eq!(s.lookup(&h), None);
        assert!(set_cookie(&token, false).contains("HttpOnly; SameSite=Strict"));
    }
}
