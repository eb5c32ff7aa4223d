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
    // The defaults: 1024 slots, 10 s to send the headers.
    let config = ApiConfig {
        api_key: Some(KEY.into()),
        ..ApiConfig::default()
    };
    let cap = config.max_connections;
    let s = Server::with(&[], config).await;
    let mut flood = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        if i % 2 == 1 {
            // Headers begun, never finished.
            c.write_all(b"GET /runtime/webhooks/durabletask/instances HTTP/1.1\r\n")
                .await
                .unwrap();
        }
        flood.push(c);
    }
    // The server took every flood socket, keeping `cap` and closing the
    // oldest beyond it (before the fix it held `cap` and left the rest in
    // the backlog, closing none).
    let deadline = Instant::now() + Duration::from_secs(8);
    while closed(&flood) < FLOOD - cap {
        assert!(
            Instant::now() < deadline,
            "only {} of {FLOOD} flood sockets were closed",
            closed(&flood)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        s.get("/healthz").await.expect(200);
        latencies.push(("healthz", t.elapsed()));
        let t = Instant::now();
        s.req("GET", &df("/instances"), &[("x-functions-key", KEY)], b"")
            .await
            .expect(200);
        latencies.push(("authenticated", t.elapsed()));
    }
    let worst = latencies.iter().map(|(_, d)| *d).max().unwrap();
    eprintln!("under a flood of {FLOOD} idle sockets: {latencies:?}");
    assert!(
        worst < Duration::from_millis(200),
        "a request waited {worst:?} behind idle sockets: {latencies:?}"
    );
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
