//! Memory of concurrent component uploads (issue 10, item 3), measured on
//! a real `cairn serve` process so that no other test shares the numbers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TempDir, guest, with_custom_section};
use crate::{Reply, parse_reply};

/// A `cairn serve` child process on a temporary task hub.
struct ServeProcess {
    server: crate::common::serve::ServeProcess,
    addr: SocketAddr,
    _dir: TempDir,
}

impl ServeProcess {
    fn start(extra: &[&str]) -> Self {
        let dir = TempDir::new("serve-rss");
        let server = crate::common::serve::ServeProcess::start(dir.0.join("hub.db"), extra);
        let addr = server.addr;
        Self {
            server,
            addr,
            _dir: dir,
        }
    }

    /// A `kB` field of `/proc/<pid>/status` (VmRSS, VmHWM), in MiB.
    fn status_mib(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.server.pid())).unwrap();
        let kib: u64 = text
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{field} missing from /proc status"));
        kib / 1024
    }
}

/// The bytes before the padding of a component of exactly `size` bytes.
fn padded_prefix(component: &[u8], name: &str, size: usize) -> Vec<u8> {
    let mut prefix = with_custom_section(component, name, 0);
    // The section's size field grows with the padding: settle its length.
    for _ in 0..3 {
        prefix = with_custom_section(component, name, size - prefix.len());
    }
    prefix
}

/// POSTs `prefix` + `padding` as a component, writing while reading (the
/// server may answer before it has read everything).
async fn upload(addr: SocketAddr, prefix: Vec<u8>, padding: Arc<Vec<u8>>) -> Reply {
    let len = prefix.len() + padding.len();
    let head = format!(
        "POST /api/components HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/wasm\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    // The writer hands its half back: dropping it would half-close the
    // connection, which the server takes as the client going away.
    let writer = tokio::spawn(async move {
        for part in [head.as_bytes(), &prefix, &padding] {
            if wr.write_all(part).await.is_err() {
                break;
            }
        }
        wr
    });
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(120), rd.read_to_end(&mut raw)).await;
    drop(writer.await);
    parse_reply(&raw).unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_uploads_stay_within_a_memory_bound() {
    const UPLOADS: usize = 16;
    const SIZE: usize = 63 << 20;
    /// Growth of the server's peak RSS allowed over its RSS before the
    /// uploads. With every upload in flight at once, 16 took about 2.7 GiB
    /// (about 170 MB each); two at a time (the default) measured 265 MiB.
    const BOUND_MIB: u64 = 450;
    let server = ServeProcess::start(&[]);
    let base = guest("hello-cities");
    // Warm up the deploy path (wasmtime, SQLite) with a small component.
    upload(server.addr, base.clone(), Arc::new(Vec::new()))
        .await
        .expect(200);
    let before = server.status_mib("VmRSS:");

    let prefixes: Vec<Vec<u8>> = (0..UPLOADS)
        .map(|i| padded_prefix(&base, &format!("cairn-test-padding-{i:02}"), SIZE))
        .collect();
    let padding = Arc::new(vec![0u8; SIZE - prefixes[0].len()]);
    let tasks: Vec<_> = prefixes
        .iter()
        .map(|p| tokio::spawn(upload(server.addr, p.clone(), padding.clone())))
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    let peak = server.status_mib("VmHWM:");
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    eprintln!(
        "{UPLOADS} concurrent uploads of {} MiB: server RSS {before} MiB before, peak {peak} MiB; statuses {statuses:?}",
        SIZE >> 20
    );
    assert_eq!(prefixes[0].len() + padding.len(), SIZE);
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    assert!(accepted >= 1, "no upload was deployed: {statuses:?}");
    for r in &replies {
        match r.status {
            200 => assert_eq!(r.json()["size"], SIZE, "{}", r.text()),
            503 => {
                r.expect(503);
                assert!(r.header("retry-after").is_some(), "503 without Retry-After");
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(
        peak < before + BOUND_MIB,
        "peak RSS {peak} MiB exceeds {before} MiB + {BOUND_MIB} MiB"
    );

    // A refused upload sent again after Retry-After is deployed.
    if let Some(i) = statuses.iter().position(|s| *s == 503) {
        let secs: u64 = replies[i].header("retry-after").unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        upload(server.addr, prefixes[i].clone(), padding.clone())
            .await
            .expect(200);
    }
}
