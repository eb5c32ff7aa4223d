//! RELIABILITY items 20–21: API key, body cap, header timeout, JSON
//! nesting, malformed input; issue 10 item 4: authentication before
//! argument checks, repeated parameters, blank keys, times, deploy errors.

use std::time::Duration;

use cairn::api::{ApiConfig, ApiError, check_listen};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{Server, build, df, exchange, parse_reply, read_all};

const KEY: &str = "k3y-Of-The-Test-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_and_accepted_three_ways() {
    let config = ApiConfig {
        api_key: Some(KEY.into()),
        ..ApiConfig::default()
    };
    let s = Server::with(&["hello-cities"], config).await;
    let status = df("/instances");
    // Missing or wrong: 401 on every route but /healthz.
    for (path, headers) in [
        (status.clone(), vec![]),
        (format!("{status}?code=wrong"), vec![]),
        (format!("{status}?code="), vec![]),
        (status.clone(), vec![("x-functions-key", "wrong")]),
        (status.clone(), vec![("Authorization", "Bearer wrong")]),
        (status.clone(), vec![("Authorization", KEY)]),
        (format!("{status}?code={}", &KEY[..KEY.len() - 1]), vec![]),
        ("/metrics".into(), vec![]),
        ("/api/components".into(), vec![]),
        ("/api/openapi.yaml".into(), vec![]),
        (df("/instances/x"), vec![]),
        ("/nope".into(), vec![]),
    ] {
        let r = s.req("GET", &path, &headers, b"").await;
        assert_eq!(r.status, 401, "{path} {headers:?}");
        r.expect(401);
    }
    let r = s
        .req(
            "POST",
            &df("/orchestrators/HelloCities/k"),
            &[("x-functions-key", "nope")],
            b"",
        )
        .await;
    r.expect(401);
    assert_eq!(s.status("k").await, None, "a refused request has no effect");
    s.get("/healthz").await.expect(200);
    // Right: as code, x-functions-key or bearer.
    s.get(&format!("{status}?code={KEY}")).await.expect(200);
    s.req("GET", &status, &[("x-functions-key", KEY)], b"")
        .await
        .expect(200);
    s.req("GET", &status, &[("Authorization", &format!("Bearer {KEY}"))], b"")
        .await
        .expect(200);
    // The key given as `code` is carried into the check-status URLs.
    let r = s
        .post(&df(&format!("/orchestrators/HelloCities/k2?code={KEY}")), "")
        .await;
    r.expect(202);
    assert!(
        r.json()["statusQueryGetUri"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?code={KEY}"))
    );
    s.t.wait("k2").await;
    // A failing request with the key in the URL: the key is not logged.
    s.get(&df(&format!("/instances/missing?code={KEY}"))).await.expect(404);
    let logs = crate::logs();
    assert!(logs.contains("code=REDACTED"), "access log lines are written");
    assert!(!logs.contains(KEY), "the key appears in the logs");
    s.stop().await;

    // A non-loopback address needs a key.
    let any: std::net::SocketAddr = "0.0.0.0:7071".parse().unwrap();
    assert!(check_listen(any, &ApiConfig::default()).is_err());
    assert!(check_listen("[::]:7071".parse().unwrap(), &ApiConfig::default()).is_err());
    assert!(check_listen("127.0.0.1:7071".parse().unwrap(), &ApiConfig::default()).is_ok());
    assert!(check_listen("[::1]:7071".parse().unwrap(), &ApiConfig::default()).is_ok());
    let keyed = ApiConfig {
        api_key: Some(KEY.into()),
        ..ApiConfig::default()
    };
    assert!(check_listen(any, &keyed).is_ok());
    let empty = ApiConfig {
        api_key: Some(String::new()),
        ..ApiConfig::default()
    };
    assert!(check_listen("127.0.0.1:7071".parse().unwrap(), &empty).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_cap_are_refused_with_413() {
    let config = ApiConfig {
        max_body_bytes: 64 * 1024,
        ..ApiConfig::default()
    };
    let s = Server::with(&["hello-cities"], config).await;
    let start = df("/orchestrators/HelloCities");
    // Declared too large: refused before a byte of the body is read.
    let head = build(
        "POST",
        &start,
        &[("Content-Length", "5000000000"), ("Content-Type", "application/json")],
        b"",
    );
    let raw = tokio::time::timeout(Duration::from_secs(5), exchange(s.addr, &head))
        .await
        .expect("413 comes without waiting for the body");
    parse_reply(&raw).unwrap().expect(413);
    // Chunked, no length: capped while reading.
    let big = format!("\"{}\"", "x".repeat(100 * 1024));
    let mut req = build(
        "POST",
        &start,
        &[("Transfer-Encoding", "chunked"), ("Content-Type", "application/json")],
        b"",
    );
    req.extend_from_slice(format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len()).as_bytes());
    let raw = exchange(s.addr, &req).await;
    parse_reply(&raw).unwrap().expect(413);
    // Within the cap: fine.
    let ok = format!("\"{}\"", "x".repeat(1000));
    s.post(&format!("{start}/fits"), &ok).await.expect(202);
    s.t.wait("fits").await;
    // A raise-event body is capped the same way.
    s.start("HelloCities", "null", "").await;
    let r = s
        .req(
            "POST",
            &df("/instances/fits/raiseEvent/E"),
            &[("Content-Type", "application/json"), ("Content-Length", "999999999")],
            b"",
        )
        .await;
    r.expect(413);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_json_is_a_400_not_a_stack_overflow() {
    let s = Server::new(&["hello-cities", "features"]).await;
    let start = df("/orchestrators/HelloCities");
    let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    s.post(&start, &"[".repeat(200_000)).await.expect(400);
    s.post(&start, &"{\"a\":".repeat(100_000)).await.expect(400);
    s.post(&start, &nested(129)).await.expect(400);
    s.post(&format!("{start}/deep128"), &nested(128)).await.expect(202);
    s.start("WaitForApproval", r#"{"timeout_ms":600000}"#, "ev").await;
    s.post(&df("/instances/ev/raiseEvent/Noise"), &nested(500))
        .await
        .expect(400);
    s.post(&df("/instances/ev/raiseEvent/Noise"), &nested(20))
        .await
        .expect(202);
    s.get("/healthz").await.expect(200);
    s.t.wait("deep128").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_time_out() {
    let config = ApiConfig {
        header_read_timeout: Duration::from_millis(500),
        ..ApiConfig::default()
    };
    let s = Server::with(&[], config).await;
    // Slow loris: half a request line, then nothing: closed after the timeout.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let got = read_all(&mut slow, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the connection stayed open {took:?}");
    assert!(parse_reply(&got).is_none_or(|r| r.status == 408), "{got:?}");
    s.stop().await;
}

/// A small deterministic generator (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() & 0xff) as u8).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_fuzzed_requests_never_break_the_server() {
    // Short timeouts: incomplete requests are closed quickly.
    let config = ApiConfig {
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        ..ApiConfig::default()
    };
    let s = Server::with(&["hello-cities"], config).await;
    let mut rng = Lcg(0x5eed);
    let fixed: Vec<Vec<u8>> = vec![
        b"\r\n\r\n".to_vec(),
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /runtime/webhooks/durabletask/instances?top=%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /runtime/webhooks/durabletask/instances/%ZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /runtime/webhooks/durabletask/orchestrators/HelloCities HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
            .to_vec(),
        b"POST /runtime/webhooks/durabletask/orchestrators/HelloCities HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort"
            .to_vec(),
        b"GET /runtime/webhooks/durabletask/instances HTTP/1.1\r\nHost: \xff\xfe\r\nx-ms-continuation-token: \xff\r\nConnection: close\r\n\r\n"
            .to_vec(),
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n", "a".repeat(200_000)).into_bytes(),
        format!("GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a/".repeat(50_000)).into_bytes(),
    ];
    for req in fixed {
        let raw = exchange(s.addr, &req).await;
        if let Some(r) = parse_reply(&raw) {
            assert!(
                r.status < 500,
                "{} for {:?}",
                r.status,
                String::from_utf8_lossy(&req[..req.len().min(80)])
            );
        }
    }
    let methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"];
    let prefixes = [
        "/runtime/webhooks/durabletask/orchestrators/",
        "/runtime/webhooks/durabletask/instances/",
        "/runtime/webhooks/durabletask/instances/x/raiseEvent/",
        "/runtime/webhooks/durabletask/instances?",
        "/api/components/",
        "/",
    ];
    let pieces = [
        "HelloCities",
        "%",
        "%2",
        "%2F",
        "%00",
        "%C3%28",
        "@",
        "..",
        "/",
        "?",
        "&",
        "=",
        "#",
        "top=",
        "showHistory=",
        "runtimeStatus=",
        "createdTimeFrom=",
        "x",
        "é",
        "%E2%82%AC",
        "terminate",
        "raiseEvent",
        "restart",
        "rewind",
        "timeout=",
        "1e309",
        "1e300",
        "-1",
        "true",
        "TRUE",
        "NaN",
    ];
    let mut five_hundreds = Vec::new();
    for _ in 0..300 {
        let method = rng.pick(&methods);
        let mut path = rng.pick(&prefixes).to_owned();
        for _ in 0..(rng.next() % 6) {
            path.push_str(rng.pick(&pieces));
        }
        let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
        let n = (rng.next() % 64) as usize;
        let body = if rng.next().is_multiple_of(2) {
            rng.bytes(n)
        } else {
            rng.pick(&["", "null", "{", "[1,", "\"x\"", "{\"a\":1}", "1e999999"])
                .as_bytes()
                .to_vec()
        };
        let ctype = rng.pick(&["application/json", "text/plain", "application/wasm", ""]);
        let headers: Vec<(&str, &str)> = if ctype.is_empty() {
            vec![]
        } else {
            vec![("Content-Type", ctype)]
        };
        let raw = exchange(s.addr, &build(method, &path, &headers, &body)).await;
        if let Some(r) = parse_reply(&raw)
            && r.status >= 500
        {
            five_hundreds.push(format!("{method} {path} -> {} {}", r.status, r.text()));
        }
    }
    assert!(five_hundreds.is_empty(), "{five_hundreds:#?}");
    s.get("/healthz").await.expect(200);
    s.stop().await;
}

// ---- issue 10, item 4 ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_comes_before_query_parsing() {
    let config = ApiConfig {
        api_key: Some(KEY.into()),
        ..ApiConfig::default()
    };
    let s = Server::with(&[], config).await;
    let bad = [
        df("/instances?top=%zz"),
        df("/instances?a=%ff"),
        df("/instances?top=1&top=2"),
        df("/instances?createdTimeFrom=yesterday"),
    ];
    for path in &bad {
        s.get(path).await.expect(401);
    }
    // With the key (header, or `code` beside the malformed part): 400.
    for path in &bad {
        s.req("GET", path, &[("x-functions-key", KEY)], b"").await.expect(400);
    }
    s.get(&df(&format!("/instances?code={KEY}&top=%zz"))).await.expect(400);
    s.get(&df(&format!("/instances?code={KEY}&top=2"))).await.expect(200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_or_conflicting_query_parameters_are_refused() {
    let s = Server::new(&["hello-cities"]).await;
    s.start("HelloCities", "null", "keep").await;
    s.t.wait("keep").await;
    for query in [
        "Confirm=TRUE&confirm=false",
        "confirm=false&CONFIRM=true",
        "confirm=true&confirm=true",
    ] {
        let r = s.delete(&format!("/api/taskhub?{query}")).await;
        r.expect(400);
        assert!(r.text().contains("more than once"), "{}", r.text());
        assert!(s.status("keep").await.is_some(), "{query} deleted the task hub");
    }
    // The same for the Durable Functions routes.
    s.get(&df("/instances/keep?showInput=true&showinput=false"))
        .await
        .expect(400);
    // Repeatable grants stay repeatable (refused here for lack of a key, not as repeated).
    let r = s
        .req(
            "POST",
            "/api/components?allowEnv=A&allowEnv=B",
            &[("Content-Type", "application/wasm")],
            b"\0asm",
        )
        .await;
    r.expect(403);
    // Once: deleted.
    let r = s.delete("/api/taskhub?confirm=true").await;
    r.expect(200);
    assert_eq!(s.status("keep").await, None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whitespace_api_keys_are_refused() {
    let lo: std::net::SocketAddr = "127.0.0.1:7071".parse().unwrap();
    let any: std::net::SocketAddr = "0.0.0.0:7071".parse().unwrap();
    for key in ["", " ", "   ", "\t", " \n "] {
        let config = ApiConfig {
            api_key: Some(key.into()),
            ..ApiConfig::default()
        };
        assert!(
            matches!(check_listen(lo, &config), Err(ApiError::EmptyKey)),
            "{key:?} accepted on loopback"
        );
        assert!(
            matches!(check_listen(any, &config), Err(ApiError::EmptyKey)),
            "{key:?} accepted on 0.0.0.0"
        );
        let t = crate::common::TestHub::with(true, Default::default(), false).await;
        assert!(matches!(
            cairn::api::Api::new(t.hub.clone(), t.engine.clone(), config),
            Err(ApiError::EmptyKey)
        ));
    }
    // The CLI refuses it before connecting anywhere.
    use clap::Parser as _;
    let cli =
        cairn::cli::Cli::try_parse_from(["cairn", "--url", "http://127.0.0.1:9", "--api-key", "  ", "list"]).unwrap();
    let err = cairn::cli::run(cli).await.unwrap_err();
    assert!(err.to_string().contains("whitespace"), "{err}");
    let config = ApiConfig {
        api_key: Some(" a key with inner spaces ".into()),
        ..ApiConfig::default()
    };
    assert!(check_listen(any, &config).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotnet_min_value_and_pre_epoch_times_are_accepted_and_garbage_is_not() {
    let s = Server::new(&["hello-cities"]).await;
    s.start("HelloCities", "null", "t1").await;
    s.t.wait("t1").await;
    let list = |q: &str| df(&format!("/instances?{q}"));
    for from in [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00.0000000Z",
        "0001-01-01T00:00:00",
        "1900-06-01T00:00:00%2B02:00",
        "1970-01-01T00:00:00Z",
    ] {
        let r = s.get(&list(&format!("createdTimeFrom={from}"))).await;
        r.expect(200);
        assert_eq!(r.json().as_array().unwrap().len(), 1, "{from}");
    }
    let r = s
        .get(&list(
            "createdTimeFrom=0001-01-01T00:00:00Z&createdTimeTo=9999-12-31T23:59:59.9999999Z",
        ))
        .await;
    r.expect(200);
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    // Pre-1970 upper bound: nothing was created before it.
    let r = s.get(&list("createdTimeTo=0001-01-01T00:00:00Z")).await;
    r.expect(200);
    assert_eq!(r.json().as_array().unwrap().len(), 0);
    for bad in [
        "2024-01-01T00:00:00ZZZZ",
        "2024-01-01T00:00:00Zjunk",
        "2024-01-01T25:00:00Z",
        "01/02/2024",
    ] {
        let r = s.get(&list(&format!("createdTimeFrom={bad}"))).await;
        r.expect(400);
        assert!(r.text().contains("createdTimeFrom"), "{}", r.text());
    }
    // Purge with .NET's DateTime.MinValue as the lower bound.
    let r = s.delete(&df("/instances?createdTimeFrom=0001-01-01T00:00:00Z")).await;
    r.expect(200);
    assert_eq!(r.json()["instancesDeleted"], 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_errors_say_what_the_file_is() {
    let s = Server::new(&[]).await;
    let deploy = |body: Vec<u8>| {
        let s = &s;
        async move {
            s.req(
                "POST",
                "/api/components",
                &[("Content-Type", "application/wasm")],
                &body,
            )
            .await
        }
    };
    let message = |r: &crate::Reply| r.json()["ExceptionMessage"].as_str().unwrap().to_owned();
    // Garbage: one line that says what it is not, no dump of expected bytes.
    let r = deploy(b"PK\x03\x04 certainly not wasm".to_vec()).await;
    r.expect(400);
    let m = message(&r);
    assert!(m.contains("not a WebAssembly binary"), "{m}");
    assert!(!m.contains('\n') && !m.contains("0x"), "{m}");
    // A core module: told to make it a component.
    let r = deploy(b"\0asm\x01\0\0\0".to_vec()).await;
    r.expect(400);
    let m = message(&r);
    assert!(
        m.contains(
            "this is a core wasm module, not a component; build for wasm32-wasip2 or run `wasm-tools component new`"
        ),
        "{m}"
    );
    // A truncated component: the parser's message, on one line.
    let mut truncated = crate::common::guest("hello-cities");
    truncated.truncate(truncated.len() / 2);
    let r = deploy(truncated).await;
    r.expect(400);
    assert!(!message(&r).contains('\n'), "{}", message(&r));
    s.stop().await;

    // The CLI names a missing file once, with the OS error once.
    let dir = crate::common::TempDir::new("missing");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(dir.0.join("hub.db"))
        .args(["deploy", "missing.wasm"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("missing.wasm").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // A core module from the CLI gets the same hint.
    let core = dir.0.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(dir.0.join("hub.db"))
        .arg("deploy")
        .arg(&core)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wasm-tools component new"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_status_urls_percent_encode_ids_and_round_trip() {
    let s = Server::new(&["hello-cities"]).await;
    for id in ["a b%c", "x:y.z~é", "semi;colon&amp=1", "..."] {
        let r = s
            .post(&df(&format!("/orchestrators/HelloCities/{}", crate::enc(id))), "")
            .await;
        r.expect(202);
        let v = r.json();
        assert_eq!(v["id"], id);
        for key in ["statusQueryGetUri", "terminatePostUri", "sendEventPostUri"] {
            let url = v[key].as_str().unwrap();
            let path = url.split_once("/runtime").unwrap().1;
            assert!(
                path.bytes().all(|b| b.is_ascii_graphic()) && !path.contains(' '),
                "{key} not encoded: {url}"
            );
        }
        // The handed-out status URL addresses this instance.
        let url = v["statusQueryGetUri"].as_str().unwrap();
        let path = format!("/runtime{}", url.split_once("/runtime").unwrap().1);
        s.t.wait(id).await;
        let status = s.get(&path).await;
        status.expect(200);
        assert_eq!(status.json()["instanceId"], id);
    }
    s.stop().await;
}
