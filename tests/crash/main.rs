//! Crash tests: the real `cairn` binary, SIGKILLed and restarted.

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn cairn(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn serve(db: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(db)
        .args(["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn status(db: &Path, id: &str) -> serde_json::Value {
    let out = cairn(db, &["status", id, "--show-output"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_until(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn a_second_serve_on_the_same_hub_is_refused() {
    let dir = TempDir::new("two-serves");
    let db = dir.0.join("hub.db");
    let mut first = serve(&db);
    wait_until(|| dir.0.join("hub.db.lock").exists(), "the first server's lock");
    std::thread::sleep(Duration::from_millis(200));
    let second = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(&db)
        .arg("serve")
        .output()
        .unwrap();
    first.kill().unwrap();
    let _ = first.wait();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already running"), "{err}");
}

#[test]
fn kill_9_during_a_fan_out_of_100_loses_nothing_and_duplicates_nothing() {
    let dir = TempDir::new("kill9");
    let db = dir.0.join("hub.db");
    let path = repo_root().join("target/guests/rust/slow-fan-out.wasm");
    let out = cairn(&db, &["deploy", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cairn(
        &db,
        &[
            "start",
            "SlowFanOut",
            "--id",
            "fan",
            "--input",
            r#"{"count":100,"sleep_ms":40}"#,
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Kill at different moments: before, during and after the fan-out episode.
    for (cycle, delay_ms) in [60u64, 150, 250, 400, 700].into_iter().enumerate() {
        let mut child = serve(&db);
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let c = rusqlite::Connection::open(&db).unwrap();
        let check: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "cycle {cycle}");
    }
    let mut child = serve(&db);
    wait_until(
        || status(&db, "fan")["runtimeStatus"] != "Running" && status(&db, "fan")["runtimeStatus"] != "Pending",
        "completion",
    );
    child.kill().unwrap();
    let _ = child.wait();

    let s = status(&db, "fan");
    assert_eq!(s["runtimeStatus"], "Completed", "{s}");
    let expected: i64 = (0..100i64).map(|i| i * i).sum();
    assert_eq!(s["output"], serde_json::json!(expected));

    let c = rusqlite::Connection::open(&db).unwrap();
    let seqs: Vec<i64> = c
        .prepare("SELECT seq FROM history WHERE instance_id = 'fan' ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(seqs, (0..seqs.len() as i64).collect::<Vec<_>>(), "contiguous history");
    let events: Vec<(u64, cairn::history::Event)> = c
        .prepare("SELECT timestamp, data FROM history WHERE instance_id = 'fan' ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (ts, d) = r.unwrap();
            (ts, cairn::history::Event::decode(&d).unwrap())
        })
        .collect();
    assert_history_invariants(&events);
    assert_eq!(
        events.iter().filter(|(_, e)| e.type_name() == "TaskScheduled").count(),
        100
    );
    assert_eq!(
        events.iter().filter(|(_, e)| e.type_name() == "TaskCompleted").count(),
        100
    );
    let leftover: i64 = c
        .query_row("SELECT COUNT(*) FROM work_items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(leftover, 0);
}
