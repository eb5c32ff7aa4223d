//! `cairn serve --tls-cert --tls-key`: HTTPS verified against a test CA
//! (the `openssl` command makes it) by a rustls client, by Python's
//! OpenSSL and by the CLI (`--url https://… --ca-cert`); the URLs handed
//! out say `https`, the console's cookie is `Secure`; plain HTTP to the
//! port gets no answer; bad certificate files stop the server at start-up
//! with a clear message.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::serve::{ServeProcess, test_certificates, try_request, try_send_tls};
use crate::common::{TempDir, repo_root};

const KEY: &str = "tls-test-key";

#[test]
fn serve_answers_over_https_verified_against_its_ca() {
    let dir = TempDir::new("tls-serve");
    let (server, ca) = ServeProcess::start_tls(&dir.0.join("cairn.db"), &["--api-key", KEY]);
    let auth = [("x-functions-key", KEY)];
    // /healthz, by name and by address (both are in the certificate).
    server.tls_req(&ca, "GET", "/healthz", &[], b"").expect(200);
    let by_ip = try_send_tls(
        server.addr,
        &ca,
        "127.0.0.1",
        "GET",
        "/healthz",
        &[],
        b"",
        Duration::from_secs(30),
    )
    .unwrap();
    by_ip.expect(200);
    // The Durable Functions routes: a missing instance is 404, no key is 401.
    let missing = "/runtime/webhooks/durabletask/instances/no-such-instance";
    server.tls_req(&ca, "GET", missing, &auth, b"").expect(404);
    server.tls_req(&ca, "GET", missing, &[], b"").expect(401);

    // Check-status URLs say https.
    let wasm = std::fs::read(repo_root().join("target/guests/rust/hello-cities.wasm"))
        .expect("target/guests/rust/hello-cities.wasm: run `make guests` first");
    let deploy = server.tls_req(
        &ca,
        "POST",
        "/api/components",
        &[("x-functions-key", KEY), ("Content-Type", "application/wasm")],
        &wasm,
    );
    deploy.expect(200);
    let started = server.tls_req(
        &ca,
        "POST",
        "/runtime/webhooks/durabletask/orchestrators/HelloCities/over-tls",
        &[("x-functions-key", KEY), ("Content-Type", "application/json")],
        b"null",
    );
    started.expect(202);
    let v = started.json();
    let base = format!("https://localhost:{}/runtime/webhooks/durabletask/", server.addr.port());
    let status_url = v["statusQueryGetUri"].as_str().unwrap_or_default();
    assert!(status_url.starts_with(&base), "{v}");
    assert!(
        started.header("location").is_some_and(|l| l.starts_with(&base)),
        "{started:?}"
    );

    // The console's session cookie is Secure over HTTPS.
    let session = server.tls_req(
        &ca,
        "POST",
        "/api/console/session",
        &[("Content-Type", "application/json")],
        format!("{{\"key\": \"{KEY}\"}}").as_bytes(),
    );
    session.expect(200);
    let cookie = session.header("set-cookie").unwrap_or_default();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Another client, another TLS stack: Python's urllib over OpenSSL, with
    // the CA as its only root.
    let script = "import ssl, sys, urllib.request\n\
                  ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
                  with urllib.request.urlopen(sys.argv[2], context=ctx, timeout=30) as r:\n    print(r.status)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&ca)
        .arg(format!("{}/healthz", server.https_url()))
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200");

    // The CLI over HTTPS, trusting the CA with --ca-cert.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--url", &server.https_url(), "--api-key", KEY, "--ca-cert"])
        .arg(&ca)
        .args(["-o", "json", "status", "over-tls"])
        .env_remove("CAIRN_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("over-tls"));

    // A client that does not trust the CA refuses the server: the
    // certificate really is verified.
    let other = TempDir::new("tls-other-ca");
    let (other_ca, _, _) = test_certificates(&other.0);
    let refused = try_send_tls(
        server.addr,
        &other_ca,
        "localhost",
        "GET",
        "/healthz",
        &[],
        b"",
        Duration::from_secs(30),
    );
    assert!(refused.is_err(), "{refused:?}");
    // And a name the certificate does not hold.
    let wrong_name = try_send_tls(
        server.addr,
        &ca,
        "cairn.example",
        "GET",
        "/healthz",
        &[],
        b"",
        Duration::from_secs(30),
    );
    assert!(wrong_name.is_err(), "{wrong_name:?}");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = try_request(server.addr, "GET", "/healthz", None, Duration::from_secs(15));
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    // The server still serves HTTPS afterwards.
    server.tls_req(&ca, "GET", "/healthz", &[], b"").expect(200);
}

/// `cairn serve ARGS` must fail at start-up with `expected` on stderr.
fn refused(args: &[&std::ffi::OsStr], expected: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env_remove("CAIRN_TLS_CERT")
        .env_remove("CAIRN_TLS_KEY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} started: {err}");
    assert!(err.contains(expected), "{args:?}: {err}");
    assert!(!err.contains("management API on"), "{args:?}: {err}");
}

#[test]
fn bad_certificate_files_stop_serve_at_startup() {
    let dir = TempDir::new("tls-bad");
    let (_, cert, key) = test_certificates(&dir.0);
    let other = TempDir::new("tls-bad-other");
    let (_, _, other_key) = test_certificates(&other.0);
    let db = dir.0.join("cairn.db");
    let garbage = dir.0.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.0.join("missing.pem");
    let os = |p: &Path| p.as_os_str().to_owned();
    let serve = |cert: &Path, key: &Path| {
        vec![
            "--db".into(),
            os(&db),
            "serve".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            os(cert),
            "--tls-key".into(),
            os(key),
        ]
    };
    let run = |args: Vec<std::ffi::OsString>, expected: &str| {
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        refused(&refs, expected);
    };
    run(serve(&cert, &other_key), "the private key is not the certificate's");
    run(serve(&missing, &key), "missing.pem: cannot read it");
    run(serve(&cert, &missing), "missing.pem: cannot read it");
    run(serve(&garbage, &key), "garbage.pem: no certificate in it");
    run(serve(&cert, &garbage), "garbage.pem: no private key in it");
    // The key file given as the certificate and the other way round.
    run(serve(&key, &cert), "no certificate in it");
    // One without the other.
    let mut only_cert = serve(&cert, &key);
    only_cert.truncate(7);
    run(only_cert, "--tls-cert needs --tls-key");
}
