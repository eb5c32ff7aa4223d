//! Connection slots under floods (issue 10, item 2): sockets that send
//! nothing must not keep health checks and authenticated clients waiting,
//! while connections with requests in flight still hold the cap.

use std::time::{Duration, Instant};

use cairn::api::ApiConfig;
use cairn::store::RuntimeStatus;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{Server, build, df, exchange, parse_reply};

const KEY: &str = "flood-test-key";

/// The soft limit of open files of this process (`/proc/self/limits`).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Raises the soft limit of open files to at least `want` (within the hard
/// limit) with util-linux `prlimit`, so the test needs no libc binding.
/// Returns the limit in effect.
fn ensure_open_files(want: u64) -> u64 {
    if open_files_limit() < want {
        let _ = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={want}:"))
            .status();
    }
    open_files_limit()
}

/// How many of `sockets` the server has closed (EOF or reset).
fn closed(sockets: &[TcpStream]) -> usize {
    let mut buf = [0u8; 64];
    sockets
        .iter()
        .filter(|s| match s.try_read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_flood_does_not_delay_health_or_authenticated_requests() {
    const FLOOD: usize = 2000;
    // Both ends of every socket live in this process.
    let limit = ensure_open_files(2 * FLOOD as u64 + 1024);
    assert!(
        limit >= 2 * FLOOD as u64 + 256,
        "open-files limit {limit} is too low for this test; raise `ulimit -n`"
    );
    // 1024 slots (the default); a header timeout longer than the test, so
    // that it cannot be what frees the slots.
    let config = ApiConfig {
        api_key: Some(KEY.into()),
        header_read_timeout: Duration::from_secs(120),
        ..ApiConfig::default()
    };
    let cap = config.max_connections;
    let s = Server::with(&[], config).await;
    let started = Instant::now();
    let mut flood = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let mut c = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(s.addr))
            .await
            .unwrap_or_else(|_| panic!("flood socket {i} could not connect: the server stopped accepting"))
            .unwrap();
        if i % 2 == 1 {
            // Headers begun, never finished.
            c.write_all(b"GET /runtime/webhooks/durabletask/instances HTTP/1.1\r\n")
                .await
                .unwrap();
        }
        flood.push(c);
    }
    let flooded = started.elapsed();
    // Right after the flood: health and authenticated requests are served
    // at once (before the fix they waited for a slot, here for 120 s).
    let timed = |path: String, headers: Vec<(&'static str, &'static str)>| {
        let s = &s;
        async move {
            let t = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(5), s.req("GET", &path, &headers, b"")).await;
            (r.map(|r| r.status).ok(), t.elapsed())
        }
    };
    let mut latencies = Vec::new();
    for _ in 0..5 {
        latencies.push(timed("/healthz".into(), vec![]).await);
        latencies.push(timed(df("/instances"), vec![("x-functions-key", KEY)]).await);
    }
    eprintln!("{FLOOD} idle sockets connected in {flooded:?}; then (status, latency): {latencies:?}");
    for (status, latency) in &latencies {
        assert_eq!(*status, Some(200), "{latencies:?}");
        assert!(
            *latency < Duration::from_millis(200),
            "a request waited {latency:?} behind idle sockets: {latencies:?}"
        );
    }
    // The server took every flood socket, keeping `cap` of them and closing
    // the oldest beyond (before the fix it held `cap` and left the rest in
    // the listen backlog).
    let deadline = Instant::now() + Duration::from_secs(5);
    while closed(&flood) < FLOOD - cap {
        assert!(
            Instant::now() < deadline,
            "only {} of {FLOOD} flood sockets were closed",
            closed(&flood)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(flood);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_holds_for_connections_with_requests_in_flight() {
    let config = ApiConfig {
        max_connections: 2,
        ..ApiConfig::default()
    };
    let s = Server::with(&["features"], config).await;
    let addr = s.addr;
    // Two synchronous starts fill both slots with requests in flight.
    let wait = |id: &str| {
        build(
            "POST",
            &df(&format!("/orchestrators/WaitForApproval/{id}?timeout=60")),
            &[("Content-Type", "application/json")],
            br#"{"timeout_ms":600000}"#,
        )
    };
    let (req1, req2) = (wait("w1"), wait("w2"));
    let w1 = tokio::spawn(async move { exchange(addr, &req1).await });
    let w2 = tokio::spawn(async move { exchange(addr, &req2).await });
    s.wait_status("w1", RuntimeStatus::Running).await;
    s.wait_status("w2", RuntimeStatus::Running).await;
    // A third connection (idle, then a request) waits: neither busy one is evicted...
    let mut third = tokio::spawn(async move { exchange(addr, &build("GET", "/healthz", &[], b"")).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut third)
            .await
            .is_err(),
        "a connection over the cap was served while every slot had a request in flight"
    );
    // ...until one of them finishes.
    s.t.hub.raise_event("w1", "Approval", Some("\"yes\"")).await.unwrap();
    let r1 = parse_reply(&w1.await.unwrap()).unwrap();
    r1.expect(200);
    assert_eq!(r1.json(), serde_json::json!({"approved": "yes"}));
    let r3 = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the third connection is served once a slot frees")
        .unwrap();
    parse_reply(&r3).unwrap().expect(200);
    s.t.hub.raise_event("w2", "Approval", Some("2")).await.unwrap();
    parse_reply(&w2.await.unwrap()).unwrap().expect(200);
    s.stop().await;
}
