//! Requests a web page could make (issue 10, item 1): a cross-site page
//! or a DNS-rebinding one must not deploy with capability grants nor start
//! an activity that writes host files on a server without a key.

use cairn::api::ApiConfig;
use cairn::sandbox::{DirGrant, Grants};
use cairn::store::RuntimeStatus;
use serde_json::json;

use crate::common::{TempDir, guest, output};
use crate::{Reply, Server, df};

const KEY: &str = "browser-test-key";
const EVIL: &str = "http://evil.example";
const REBIND: &str = "rebind.attacker.example:7071";

/// The body of a start of `CallsActivity` that writes `path` in the guest.
fn write_file(path: &str, text: &str) -> String {
    json!({"name": "WriteFile", "input": {"path": path, "text": text}}).to_string()
}

/// (what, request headers, expected status)
type Attempt<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);

fn assert_no_cors(r: &Reply) {
    for (k, _) in &r.headers {
        assert!(!k.starts_with("access-control-"), "CORS header {k} sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_and_rebinding_requests_cannot_grant_capabilities_or_write_files() {
    let s = Server::new(&["features"]).await;
    let shared = TempDir::new("browser");
    let grant = format!("{}:/v:rw", shared.0.display());
    let deploy = format!("/api/components?allowDir={}", crate::enc(&grant));
    let wasm = guest("capabilities");

    // Step 1: deploy the capabilities component with a writable directory.
    // As a page sends it (text/plain, its Origin), as a rebinding page sends
    // it (its Host), and each marker on its own.
    let attempts: [Attempt; 5] = [
        (
            "cross-site",
            vec![("Origin", EVIL), ("Content-Type", "text/plain")],
            403,
        ),
        ("rebinding", vec![("Host", REBIND), ("Content-Type", "text/plain")], 403),
        (
            "rebinding, same origin",
            vec![("Host", REBIND), ("Origin", "http://rebind.attacker.example:7071")],
            403,
        ),
        ("simple content type", vec![("Content-Type", "text/plain")], 415),
        ("no key", vec![("Content-Type", "application/wasm")], 403),
    ];
    for (what, headers, want) in &attempts {
        let r = s.req("POST", &deploy, headers, &wasm).await;
        assert_eq!(r.status, *want, "{what}: {}", r.text());
        r.expect(*want);
        assert_no_cors(&r);
    }
    let functions = s.t.hub.store.list_functions().await.unwrap();
    assert!(
        !functions.iter().any(|f| f.name == "WriteFile"),
        "a refused deploy stored the component: {functions:?}"
    );

    // Step 2: the component is there with the grant (as the operator would
    // deploy it from the CLI); the page starts an activity that writes.
    let grants = Grants {
        dirs: vec![DirGrant::parse(&grant).unwrap()],
        ..Default::default()
    };
    s.t.hub.deploy_with(wasm.clone(), grants).await.unwrap();
    let start = |id: &str| df(&format!("/orchestrators/CallsActivity/{id}"));
    let body = write_file("/v/pwned.txt", "pwned");
    let attacks: [Attempt; 4] = [
        (
            "cross-site",
            vec![("Origin", EVIL), ("Content-Type", "text/plain")],
            403,
        ),
        (
            "cross-site json",
            vec![("Origin", EVIL), ("Content-Type", "application/json")],
            403,
        ),
        (
            "rebinding",
            vec![("Host", REBIND), ("Content-Type", "application/json")],
            403,
        ),
        ("simple content type", vec![("Content-Type", "text/plain")], 415),
    ];
    for (i, (what, headers, want)) in attacks.iter().enumerate() {
        let id = format!("attack{i}");
        let r = s.req("POST", &start(&id), headers, body.as_bytes()).await;
        assert_eq!(r.status, *want, "{what}: {}", r.text());
        r.expect(*want);
        assert_no_cors(&r);
        assert_eq!(
            s.status(&id).await,
            None,
            "{what}: the refused start created an instance"
        );
    }

    // The same start as a local client sends it is served and writes: the
    // refusals above are the browser checks, not a broken setup.
    let r = s
        .req(
            "POST",
            &start("legit"),
            &[("Content-Type", "application/json")],
            write_file("/v/ok.txt", "ok").as_bytes(),
        )
        .await;
    r.expect(202);
    let row = s.t.wait("legit").await;
    assert_eq!(row.status, RuntimeStatus::Completed, "{row:?}");
    assert_eq!(output(&row), json!({"ok": true}));
    assert_eq!(std::fs::read_to_string(shared.0.join("ok.txt")).unwrap(), "ok");
    assert!(!shared.0.join("pwned.txt").exists(), "the attack wrote the file");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_grants_over_http_work_with_the_api_key() {
    let config = ApiConfig {
        api_key: Some(KEY.into()),
        ..ApiConfig::default()
    };
    let s = Server::with(&["features"], config).await;
    let shared = TempDir::new("browser-keyed");
    let grant = format!("{}:/v:rw", shared.0.display());
    let deploy = format!("/api/components?allowDir={}", crate::enc(&grant));
    let key = ("x-functions-key", KEY);
    // With the key, but from a foreign page: still refused.
    let r = s
        .req(
            "POST",
            &deploy,
            &[key, ("Origin", EVIL), ("Content-Type", "application/wasm")],
            &guest("capabilities"),
        )
        .await;
    r.expect(403);
    // With the key from a client: granted, and the activity writes.
    let r = s
        .req(
            "POST",
            &deploy,
            &[key, ("Content-Type", "application/wasm")],
            &guest("capabilities"),
        )
        .await;
    r.expect(200);
    let r = s
        .req(
            "POST",
            &df("/orchestrators/CallsActivity/keyed"),
            &[key, ("Content-Type", "application/json")],
            write_file("/v/keyed.txt", "keyed").as_bytes(),
        )
        .await;
    r.expect(202);
    let row = s.t.wait("keyed").await;
    assert_eq!(output(&row), json!({"ok": true}), "{row:?}");
    assert_eq!(std::fs::read_to_string(shared.0.join("keyed.txt")).unwrap(), "keyed");
    // A foreign Host is served with a key (the key is the protection).
    s.req("GET", &df("/instances/keyed"), &[key, ("Host", REBIND)], b"")
        .await
        .expect(200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_loopback_hosts_are_served_without_a_key() {
    let s = Server::new(&[]).await;
    let port = s.addr.port().to_string();
    for host in [
        "localhost".to_owned(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "127.3.2.1".to_owned(),
        format!("[::1]:{port}"),
        "[::1]".to_owned(),
    ] {
        s.req("GET", "/healthz", &[("Host", &host)], b"").await.expect(200);
        s.req("GET", &df("/instances"), &[("Host", &host)], b"")
            .await
            .expect(200);
    }
    for host in [
        REBIND,
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
        "0.0.0.0",
        "10.1.2.3:7071",
        "[::2]",
    ] {
        let r = s.req("GET", &df("/instances"), &[("Host", host)], b"").await;
        r.expect(403);
        assert!(r.text().contains("DNS rebinding"), "{}", r.text());
        s.req("GET", "/healthz", &[("Host", host)], b"").await.expect(403);
    }
    // An absolute-form request target names the host too.
    let raw = crate::exchange(
        s.addr,
        format!("GET http://{REBIND}/healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    crate::parse_reply(&raw).unwrap().expect(403);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_are_refused_and_only_allowed_ones_get_cors_headers() {
    const APP: &str = "https://app.example";
    let config = ApiConfig {
        allowed_origins: vec![APP.into()],
        ..ApiConfig::default()
    };
    let s = Server::with(&[], config).await;
    let list = df("/instances");
    // Same origin (a page served by this host): served, no CORS headers needed.
    let r = s
        .req(
            "GET",
            &list,
            &[("Host", "localhost:7071"), ("Origin", "http://localhost:7071")],
            b"",
        )
        .await;
    r.expect(200);
    assert_no_cors(&r);
    // Foreign, `null` (sandboxed frames) or another port: 403 without CORS headers.
    for origin in [EVIL, "null", "http://localhost:7072", "https://app.example.evil"] {
        let r = s
            .req("GET", &list, &[("Host", "localhost:7071"), ("Origin", origin)], b"")
            .await;
        assert_eq!(r.status, 403, "{origin}");
        r.expect(403);
        assert_no_cors(&r);
        // Its preflight is refused too.
        let r = s
            .req(
                "OPTIONS",
                &list,
                &[("Origin", origin), ("Access-Control-Request-Method", "POST")],
                b"",
            )
            .await;
        assert_eq!(r.status, 403, "{origin}");
        assert_no_cors(&r);
    }
    // The configured origin: preflight answered, responses carry the headers.
    let r = s
        .req(
            "OPTIONS",
            &df("/orchestrators/X"),
            &[
                ("Origin", APP),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert!(r.header("access-control-allow-methods").unwrap().contains("POST"));
    assert!(
        r.header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("content-type")
    );
    let r = s.req("GET", &list, &[("Origin", APP)], b"").await;
    r.expect(200);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("vary"), Some("Origin"));
    // Errors carry them too, so the page can read why.
    let r = s.req("GET", &df("/instances/ghost"), &[("Origin", APP)], b"").await;
    r.expect(404);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_posts_work_as_durable_functions_clients_send_them() {
    let s = Server::new(&["features"]).await;
    let slow = r#"{"timeout_ms":600000}"#;
    for id in ["b1", "b2", "b3", "b4"] {
        s.start("WaitForApproval", slow, id).await;
        s.wait_status(id, RuntimeStatus::Running).await;
    }
    let control = |id: &str, verb: &str| df(&format!("/instances/{id}/{verb}?reason=r"));
    // No Content-Type, Content-Length: 0 (the Python and JS clients).
    s.req("POST", &control("b1", "suspend"), &[], b"").await.expect(202);
    s.wait_status("b1", RuntimeStatus::Suspended).await;
    // Any Content-Type with an empty body.
    s.req("POST", &control("b1", "resume"), &[("Content-Type", "text/plain")], b"")
        .await
        .expect(202);
    s.wait_status("b1", RuntimeStatus::Running).await;
    s.req(
        "POST",
        &control("b2", "terminate"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"",
    )
    .await
    .expect(202);
    s.wait_status("b2", RuntimeStatus::Terminated).await;
    // No Content-Length at all.
    let raw = crate::exchange(
        s.addr,
        format!(
            "POST {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            control("b3", "terminate")
        )
        .as_bytes(),
    )
    .await;
    crate::parse_reply(&raw).unwrap().expect(202);
    s.wait_status("b3", RuntimeStatus::Terminated).await;
    // A JSON body where none is needed is fine; a text one is not.
    s.req(
        "POST",
        &control("b4", "terminate"),
        &[("Content-Type", "text/plain")],
        b"x",
    )
    .await
    .expect(415);
    assert_eq!(s.status("b4").await, Some(RuntimeStatus::Running));
    s.post(&control("b4", "terminate"), "{}").await.expect(202);
    s.wait_status("b4", RuntimeStatus::Terminated).await;
    // A start without a body needs no Content-Type either.
    s.req("POST", &df("/orchestrators/CallsActivity/nobody"), &[], b"")
        .await
        .expect(202);
    s.t.wait("nobody").await;
    s.stop().await;
}
