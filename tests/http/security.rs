//! RELIABILITY items 20–21: API key, body cap, header timeout, connection
//! cap, JSON nesting, malformed input.

use std::time::Duration;

use cairn::api::{ApiConfig, check_listen};
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
async fn slow_headers_time_out_and_the_connection_cap_holds() {
    let config = ApiConfig {
        header_read_timeout: Duration::from_millis(500),
        max_connections: 2,
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

    // Two idle connections fill the cap: a third waits...
    let mut idle1 = TcpStream::connect(s.addr).await.unwrap();
    let idle2 = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let addr = s.addr;
    let third = tokio::spawn(async move { exchange(addr, &build("GET", "/healthz", &[], b"")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!third.is_finished(), "a connection over the cap was served");
    // ...until the idle ones are closed by the header timeout.
    let _ = read_all(&mut idle1, Duration::from_secs(3)).await;
    drop(idle2);
    let raw = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .unwrap()
        .unwrap();
    parse_reply(&raw).unwrap().expect(200);
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
