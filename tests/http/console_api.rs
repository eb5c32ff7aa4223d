//! The console's routes over HTTP: its page needs no key, its sign-in
//! trades the key for an HttpOnly SameSite=Strict cookie, cookie-only
//! changes need the CSRF token, foreign origins stay out, and the JSON
//! routes (list, instance with timeline, time travel) answer.

use cairn::api::ApiConfig;
use cairn::store::RuntimeStatus;

use crate::{Server, df};

const KEY: &str = "console-k3y-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_cookie_csrf_and_origin() {
    let config = ApiConfig {
        api_key: Some(KEY.into()),
        ..ApiConfig::default()
    };
    let s = Server::with(&["human-interaction"], config).await;
    let auth = format!("Bearer {KEY}");

    // The page and its assets need no key and carry a strict CSP.
    let page = s.get("/").await;
    page.expect(200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    s.get("/console/app.js").await.expect(200);
    s.get("/console/app.css").await.expect(200);
    s.req("POST", "/", &[], b"").await.expect(405);

    // The data needs the key or a session.
    s.get("/api/console/instances").await.expect(401);
    let v = s.get("/api/console/session").await.json();
    assert_eq!(
        (v["keyRequired"].as_bool(), v["signedIn"].as_bool()),
        (Some(true), Some(false))
    );
    s.post("/api/console/session", r#"{"key":"wrong"}"#).await.expect(401);
    s.req(
        "POST",
        "/api/console/session",
        &[("Content-Type", "text/plain")],
        KEY.as_bytes(),
    )
    .await
    .expect(415);
    let r = s.post("/api/console/session", &format!(r#"{{"key":"{KEY}"}}"#)).await;
    r.expect(200);
    let csrf = r.json()["csrf"].as_str().unwrap().to_owned();
    let set = r.header("set-cookie").unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains(KEY), "the cookie is not the key");
    let cookie = set.split(';').next().unwrap().to_owned();
    let with_cookie = [("Cookie", cookie.as_str())];
    let v = s.req("GET", "/api/console/session", &with_cookie, b"").await.json();
    assert_eq!(v["csrf"], csrf.as_str());

    // Reads with the cookie; changes need its CSRF token too.
    s.req(
        "POST",
        &df("/orchestrators/ApprovalWorkflow/c1"),
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        br#"{"timeout_ms":600000}"#,
    )
    .await
    .expect(202);
    // Let it reach its wait (timer and event) before suspending it.
    for _ in 0..2000 {
        let row = s.t.hub.store.get_instance("c1").await.unwrap().unwrap();
        if row.custom_status.is_some_and(|c| c.contains("waiting-for-approval")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let list = s.req("GET", "/api/console/instances", &with_cookie, b"").await;
    list.expect(200);
    assert_eq!(list.json()["instances"][0]["instanceId"], "c1");
    let suspend = df("/instances/c1/suspend");
    s.req("POST", &suspend, &with_cookie, b"").await.expect(403);
    s.req(
        "POST",
        &suspend,
        &[("Cookie", &cookie), ("X-Cairn-CSRF", "forged")],
        b"",
    )
    .await
    .expect(403);
    // Another site's page cannot use the cookie even with a token.
    s.req(
        "POST",
        &suspend,
        &[
            ("Cookie", &cookie),
            ("X-Cairn-CSRF", &csrf),
            ("Origin", "http://evil.example"),
        ],
        b"",
    )
    .await
    .expect(403);
    // The requests go to Host: localhost; the page's own origin passes.
    let origin = "http://localhost".to_owned();
    s.req(
        "POST",
        &suspend,
        &[("Cookie", &cookie), ("X-Cairn-CSRF", &csrf), ("Origin", &origin)],
        b"",
    )
    .await
    .expect(202);
    s.wait_status("c1", RuntimeStatus::Suspended).await;

    // Time travel and the instance document.
    let doc = s.req("GET", "/api/console/instances/c1", &with_cookie, b"").await;
    doc.expect(200);
    let doc = doc.json();
    assert_eq!(doc["status"]["runtimeStatus"], "Suspended");
    let kinds: Vec<&str> = doc["timeline"]["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["activity", "event", "timer"], "{doc}");
    let last = doc["historyLength"].as_u64().unwrap();
    let past = format!("/api/console/instances/c1/replay?until={last}");
    s.req("GET", &past, &with_cookie, b"").await.expect(400);
    let travel = s
        .req("GET", "/api/console/instances/c1/replay?until=2", &with_cookie, b"")
        .await;
    travel.expect(200);
    let travel = travel.json();
    assert_eq!(travel["pending"][0]["name"], "RequestApproval", "{travel}");
    s.req("GET", "/api/console/instances/c1/replay", &with_cookie, b"")
        .await
        .expect(400);

    // Sign out: the cookie stops working.
    let out = s.req("DELETE", "/api/console/session", &with_cookie, b"").await;
    out.expect(200);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    s.req("GET", "/api/console/instances", &with_cookie, b"")
        .await
        .expect(401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_console_is_signed_in_and_loopback_only() {
    let s = Server::new(&[]).await;
    let v = s.get("/api/console/session").await.json();
    assert_eq!(
        (v["keyRequired"].as_bool(), v["signedIn"].as_bool()),
        (Some(false), Some(true))
    );
    s.get("/api/console/components").await.expect(200);
    s.get("/api/console/locks").await.expect(200);
    // DNS rebinding: a page served under another name gets nothing.
    s.req("GET", "/", &[("Host", "rebind.example:7071")], b"")
        .await
        .expect(403);
    s.req("GET", "/api/console/instances", &[("Host", "rebind.example")], b"")
        .await
        .expect(403);
    s.req("POST", "/api/console/instances", &[], b"").await.expect(405);
    s.stop().await;
}
