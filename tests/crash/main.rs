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
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `cairn [flags] serve --listen 127.0.0.1:0 [serve_args]` with its log
/// (stderr) written to `log`.
fn serve_logged(db: &Path, log: &Path, flags: &[&str], serve_args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(db)
        .args(flags)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(serve_args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Deploys `target/guests/rust/<name>.wasm`.
fn deploy(db: &Path, name: &str) {
    let path = repo_root().join(format!("target/guests/rust/{name}.wasm"));
    let out = cairn(db, &["deploy", path.to_str().unwrap()]);
    assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `cairn start NAME --id ID --input INPUT` (queued for `serve`).
fn start(db: &Path, name: &str, id: &str, input: &str) {
    let out = cairn(db, &["start", name, "--id", id, "--input", input]);
    assert!(out.status.success(), "{id}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `f` on the task hub at `db`, opened through its provider (the
/// host that wrote it is gone).
fn with_hub<T>(db: &Path, f: impl AsyncFnOnce(&cairn::store::Store) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = cairn::store::open(db).unwrap();
        f(&store).await
    })
}

/// The stored history of `id`, decoded.
fn history_of(db: &Path, id: &str) -> Vec<(u64, cairn::history::Event)> {
    with_hub(db, async |s| s.get_history(id).await.unwrap())
}

/// SQLite's integrity check of the file (`ok` when healthy).
fn integrity(db: &Path) -> String {
    with_hub(db, async |s| {
        let sqlite = s.as_any().downcast_ref::<cairn::store::sqlite::SqliteStore>().unwrap();
        sqlite.integrity_check().await.unwrap()
    })
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
        .args(["serve", "--listen", "127.0.0.1:0"])
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
    deploy(&db, "slow-fan-out");
    start(&db, "SlowFanOut", "fan", r#"{"count":100,"sleep_ms":40}"#);

    // Kill at different moments: before, during and after the fan-out episode.
    for (cycle, delay_ms) in [60u64, 150, 250, 400, 700].into_iter().enumerate() {
        let mut child = serve(&db);
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        assert_eq!(integrity(&db), "ok", "cycle {cycle}");
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

    let events = history_of(&db, "fan");
    let (history_len, leftover) = with_hub(&db, async |s| {
        let row = s.get_instance("fan").await.unwrap().unwrap();
        (row.history_len, s.queue_depths().await.unwrap().1)
    });
    assert_eq!(events.len() as u64, history_len, "contiguous history");
    assert_history_invariants(&events);
    assert_eq!(
        events.iter().filter(|(_, e)| e.type_name() == "TaskScheduled").count(),
        100
    );
    assert_eq!(
        events.iter().filter(|(_, e)| e.type_name() == "TaskCompleted").count(),
        100
    );
    assert_eq!(leftover, 0);
}

#[test]
fn a_timer_due_while_the_host_was_down_fires_exactly_once_after_restart() {
    let dir = TempDir::new("timer-down");
    let db = dir.0.join("hub.db");
    deploy(&db, "features");
    let mut child = serve(&db);
    // (Long enough that the host is surely killed before it fires, even
    // when each CLI call of a loaded machine takes a second.)
    let out = cairn(&db, &["start", "Sleeps", "--id", "nap", "--input", r#"{"ms":4000}"#]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_until(
        || status(&db, "nap")["runtimeStatus"] == "Running",
        "the timer to be created",
    );
    child.kill().unwrap();
    let _ = child.wait();
    // The timer comes due while no host runs.
    std::thread::sleep(Duration::from_millis(4400));
    assert_eq!(status(&db, "nap")["runtimeStatus"], "Running");
    let mut child = serve(&db);
    wait_until(
        || status(&db, "nap")["runtimeStatus"] == "Completed",
        "completion after restart",
    );
    child.kill().unwrap();
    let _ = child.wait();
    let out = cairn(&db, &["status", "nap", "--show-history", "--show-output"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = s["historyEvents"].as_array().unwrap();
    let fired = events.iter().filter(|e| e["EventType"] == "TimerFired").count();
    assert_eq!(fired, 1, "{events:?}");
    let before = s["output"]["before_ms"].as_u64().unwrap();
    let after = s["output"]["after_ms"].as_u64().unwrap();
    assert!(after >= before + 4000, "{s}");
}

#[test]
fn cli_status_shows_terminate_suspend_and_resume() {
    let dir = TempDir::new("cli-control");
    let db = dir.0.join("hub.db");
    deploy(&db, "features");
    let mut child = serve(&db);
    for id in ["t1", "s1"] {
        let out = cairn(
            &db,
            &[
                "start",
                "WaitForApproval",
                "--id",
                id,
                "--input",
                r#"{"timeout_ms":60000}"#,
            ],
        );
        assert!(out.status.success());
        wait_until(|| status(&db, id)["runtimeStatus"] == "Running", "running");
    }
    assert!(cairn(&db, &["terminate", "t1", "--reason", "bye"]).status.success());
    wait_until(|| status(&db, "t1")["runtimeStatus"] == "Terminated", "terminated");
    assert_eq!(status(&db, "t1")["output"], "bye");
    let again = cairn(&db, &["terminate", "t1"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("Terminated"));

    assert!(cairn(&db, &["suspend", "s1", "--reason", "hold"]).status.success());
    wait_until(|| status(&db, "s1")["runtimeStatus"] == "Suspended", "suspended");
    assert!(
        cairn(&db, &["raise-event", "s1", "Approval", "\"ok\""])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        status(&db, "s1")["runtimeStatus"],
        "Suspended",
        "suspended instances buffer events"
    );
    assert!(cairn(&db, &["resume", "s1"]).status.success());
    wait_until(
        || status(&db, "s1")["runtimeStatus"] == "Completed",
        "completed after resume",
    );
    assert_eq!(status(&db, "s1")["output"], serde_json::json!({"approved": "ok"}));
    let missing = cairn(&db, &["raise-event", "nobody", "Approval"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    child.kill().unwrap();
    let _ = child.wait();
}

/// Every named crash point: the host aborts there, restarts, and the
/// instances still reach their golden output with clean histories.
#[test]
fn named_crash_points_lose_nothing() {
    for point in [
        "before_commit",
        "after_commit_before_ack",
        "activity_done_before_result_commit",
        "timer_due_before_commit",
    ] {
        let dir = TempDir::new(point);
        let db = dir.0.join("hub.db");
        for g in ["hello-cities", "features"] {
            let path = repo_root().join(format!("target/guests/rust/{g}.wasm"));
            assert!(cairn(&db, &["deploy", path.to_str().unwrap()]).status.success());
        }
        assert!(cairn(&db, &["start", "HelloCities", "--id", "hello"]).status.success());
        assert!(
            cairn(&db, &["start", "Sleeps", "--id", "nap", "--input", r#"{"ms":200}"#])
                .status
                .success()
        );
        // First run: aborts at the crash point.
        let crashed = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("--db")
            .arg(&db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CAIRN_CRASH_AT", point)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!crashed.status.success(), "{point}: the host did not crash");
        assert!(String::from_utf8_lossy(&crashed.stderr).contains(point));
        assert_eq!(integrity(&db), "ok", "{point}");
        // Restart without the crash point: everything completes.
        let mut child = serve(&db);
        wait_until(
            || {
                status(&db, "hello")["runtimeStatus"] == "Completed"
                    && status(&db, "nap")["runtimeStatus"] == "Completed"
            },
            point,
        );
        child.kill().unwrap();
        let _ = child.wait();
        assert_eq!(
            status(&db, "hello")["output"],
            serde_json::json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
            "{point}"
        );
        for id in ["hello", "nap"] {
            let out = cairn(&db, &["status", id, "--show-history"]);
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let events = s["historyEvents"].as_array().unwrap();
            let count = |t: &str| events.iter().filter(|e| e["EventType"] == t).count();
            assert_eq!(count("ExecutionCompleted"), 1, "{point} {id}");
            let scheduled: Vec<_> = events
                .iter()
                .filter(|e| e["EventType"] == "TaskScheduled")
                .map(|e| e["EventId"].clone())
                .collect();
            let mut dedup = scheduled.clone();
            dedup.dedup();
            assert_eq!(scheduled, dedup, "{point} {id}: a task was scheduled twice");
            assert!(count("TaskCompleted") <= scheduled.len(), "{point} {id}");
            assert!(count("TimerFired") <= 1, "{point} {id}");
        }
    }
}

#[test]
fn cli_upgrade_check_prune_and_locks() {
    let dir = TempDir::new("cli-upgrade");
    let db = dir.0.join("hub.db");
    let v1 = repo_root().join("target/guests/rust/hello-cities.wasm");
    let v3 = repo_root().join("target/guests/rust/hello-cities-v3.wasm");
    assert!(cairn(&db, &["deploy", v1.to_str().unwrap()]).status.success());
    // Not yet run (no server): its empty history replays on anything.
    assert!(
        cairn(&db, &["start", "HelloCities", "--id", "waiting"])
            .status
            .success()
    );
    let out = cairn(&db, &["upgrade-check", "HelloCities", v3.to_str().unwrap(), "--apply"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["instances"][0]["instanceId"], "waiting");
    assert_eq!(report["instances"][0]["verdict"], "replays-cleanly");
    assert_eq!(report["moved"], 1);
    let out = cairn(&db, &["prune-versions"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pruned "), "{text}");
    let out = cairn(&db, &["locks", "-o", "json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    // Replay of a finished instance: its own version reproduces it, a
    // version that calls other activities does not (non-zero exit).
    let out = cairn(&db, &["start", "HelloCities", "--id", "done", "--wait", "30"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cairn(&db, &["replay", "done"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "replays-cleanly", "{report}");
    assert_eq!(report["recorded"], report["replayed"], "{report}");
    let v2 = repo_root().join("target/guests/rust/hello-cities-v2.wasm");
    let out = cairn(&db, &["replay", "done", "--component", v2.to_str().unwrap()]);
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "diverges", "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("differs"));
    // Same actions, a changed input (cities reordered): also a divergence.
    let reordered = repo_root().join("target/guests/rust/hello-cities-reordered.wasm");
    let out = cairn(&db, &["replay", "done", "--component", reordered.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "diverges", "{report}");
    assert_eq!(report["errorType"], "InputChanged", "{report}");
    assert_eq!(out.status.code(), Some(7), "replay differs: exit 7");
    // Moving instances whose inputs changed needs --apply too.
    let out = cairn(
        &db,
        &[
            "upgrade-check",
            "HelloCities",
            reordered.to_str().unwrap(),
            "--allow-input-changes",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--apply"));
    let out = cairn(&db, &["replay", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no instance"));

    // Over --url they go to the server: none listens on port 9 (exit 9).
    let out = cairn(&db, &["--url", "http://127.0.0.1:9", "locks"]);
    assert_eq!(out.status.code(), Some(9), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[test]
fn limit_flags_reach_the_sandbox() {
    let dir = TempDir::new("limit-flags");
    let db = dir.0.join("hub.db");
    deploy(&db, "sandbox-abuse");
    let started = Instant::now();
    let out = cairn(
        &db,
        &[
            "start",
            "InfiniteLoop",
            "--orchestrator-cpu-ms",
            "150",
            "--id",
            "spin",
            "--wait",
            "30",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"Failed\"") && text.contains("Timeout") && text.contains("150 ms"),
        "{text}"
    );
    // Task cap (also settable as CAIRN_MAX_TASKS).
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(&db)
        .args([
            "start",
            "ManyTasks",
            "--id",
            "many",
            "--input",
            r#"{"count":10}"#,
            "--wait",
            "30",
        ])
        .env("CAIRN_MAX_TASKS", "5")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("LimitExceeded") && text.contains("created 5 tasks"),
        "{text}"
    );
    // Component size cap at deploy.
    let path = repo_root().join("target/guests/rust/hello-cities.wasm");
    let out = cairn(&db, &["deploy", "--max-component-mib", "0", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the limit is 0 bytes"));
}

/// `VmRSS` and `VmHWM` (peak RSS) of a process, in MiB.
fn rss_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `cairn serve` limited to `kib` of address space (`ulimit -v`), its log in `log`.
fn serve_in_address_space(db: &Path, log: &Path, kib: u64) -> Child {
    Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The host running out of memory for guests (here: address space, as
/// with `vm.max_map_count` or an overcommitted machine) is not the
/// instances' failure: they wait until there is room, and all complete.
#[test]
fn a_host_out_of_guest_memory_fails_no_instance() {
    const INSTANCES: usize = 16;
    let dir = TempDir::new("exhausted");
    let db = dir.0.join("hub.db");
    let log = dir.0.join("serve.log");
    // The JavaScript runtime keeps wasmtime's default layout (a Rust guest
    // runs on the dense engine, which reserves 258 MiB and falls back to
    // exact sizes: see host/src/sandbox/dense.rs).
    let js = repo_root().join("target/guests/js/features.wasm");
    let out = cairn(&db, &["deploy", js.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for i in 0..INSTANCES {
        start(&db, "Sleeps", &format!("s{i}"), r#"{"ms":1500}"#);
    }
    // A parked instance reserves about 4 GiB of address space: room for a
    // few next to the host's own 1 GiB, not for all 16 at once.
    let mut child = serve_in_address_space(&db, &log, 20 << 20);
    for i in 0..INSTANCES {
        let id = format!("s{i}");
        wait_until(
            || {
                let s = status(&db, &id);
                assert_ne!(s["runtimeStatus"], "Failed", "{s}");
                s["runtimeStatus"] == "Completed"
            },
            "every instance to complete",
        );
    }
    child.kill().unwrap();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("the host ran out of memory for a guest"),
        "the limit was reached (else this test proves nothing): {text}"
    );
}

#[test]
fn memory_bombs_fail_at_the_limit_and_host_rss_stays_bounded() {
    const LIMIT_MIB: u64 = 64;
    const BOMBS: u64 = 4;
    let dir = TempDir::new("memory-bomb");
    let db = dir.0.join("hub.db");
    deploy(&db, "sandbox-abuse");
    let mut child = serve_logged(
        &db,
        &dir.0.join("serve.log"),
        &[],
        &["--memory-limit-mib", &LIMIT_MIB.to_string()],
    );
    // A quick instance first: the host is up, the component loaded.
    assert!(cairn(&db, &["start", "Quick", "--id", "warm-up"]).status.success());
    wait_until(|| status(&db, "warm-up")["runtimeStatus"] == "Completed", "warm-up");
    let (baseline, _) = rss_mib(child.id());

    for round in 0..2 {
        let ids: Vec<String> = (0..BOMBS).map(|i| format!("bomb-{round}-{i}")).collect();
        for id in &ids {
            assert!(cairn(&db, &["start", "MemoryBomb", "--id", id]).status.success());
        }
        for id in &ids {
            wait_until(|| status(&db, id)["runtimeStatus"] == "Failed", "the bomb to fail");
            let s = status(&db, id);
            let message = s["failureDetails"]["Message"].as_str().unwrap_or_default().to_owned();
            assert_eq!(s["failureDetails"]["ErrorType"], "LimitExceeded", "{s}");
            assert!(message.contains(&format!("{} bytes", LIMIT_MIB << 20)), "{message}");
        }
    }
    let (rss, peak) = rss_mib(child.id());
    eprintln!("host RSS: baseline {baseline} MiB, peak {peak} MiB, after {rss} MiB");
    child.kill().unwrap();
    let _ = child.wait();
    // Every bomb may have held at most the limit at once; without the
    // limit one bomb alone would grow until the machine ran out.
    let slack = 96;
    assert!(
        peak <= baseline + BOMBS * LIMIT_MIB + slack,
        "peak RSS {peak} MiB, baseline {baseline} MiB, {BOMBS} × {LIMIT_MIB} MiB limit"
    );
    assert!(
        rss <= baseline + slack,
        "memory is returned after the bombs fail: RSS {rss} MiB, baseline {baseline} MiB"
    );
}

#[test]
fn guest_output_goes_to_the_host_log_once_however_long_and_despite_replays() {
    let dir = TempDir::new("guest-output");
    let db = dir.0.join("hub.db");
    let log = dir.0.join("serve.log");
    deploy(&db, "sandbox-abuse");
    // Forced replay: the orchestrator's first lines run again at every episode.
    let mut child = serve_logged(&db, &log, &[], &["--no-hot-cache"]);
    let out = cairn(
        &db,
        &["start", "Chatty", "--id", "chatty-1", "--input", r#"{"lines":2000}"#],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Pending is not done either (under load the engine may not have begun).
    wait_until(
        || {
            !matches!(
                status(&db, "chatty-1")["runtimeStatus"].as_str(),
                Some("Pending" | "Running")
            )
        },
        "completion",
    );
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    let _ = child.wait();
    let s = status(&db, "chatty-1");
    // 2000 lines of 100 bytes: far more than the 16 KiB kept in memory.
    assert_eq!(s["runtimeStatus"], "Completed", "{s}");
    assert_eq!(s["output"], 2000);
    let text = std::fs::read_to_string(&log).unwrap();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(
        count("chatty before chatty-1"),
        1,
        "logged once, not on replay:\n{text}"
    );
    assert_eq!(count("chatty after chatty-1"), 1, "{text}");
    assert_eq!(count("1999 -----"), 1, "the activity's last stdout line");
    let tail: String = text.lines().rev().take(5).collect::<Vec<_>>().join("\n");
    assert!(text.contains("stream=\"stderr\""), "stderr is logged too:\n{tail}");
}

/// A failed orchestration and a failed activity each leave one WARN line in
/// the `serve` log at the default level, with the instance id, the function
/// name and the failure; `status` shows the output only with --show-output.
#[test]
fn failures_are_logged_once_at_the_default_level_and_status_omits_the_output_unless_asked() {
    let dir = TempDir::new("failure-log");
    let db = dir.0.join("hub.db");
    let log = dir.0.join("serve.log");
    deploy(&db, "failing");
    deploy(&db, "hello-cities");
    let mut child = serve_logged(&db, &log, &[], &[]);
    start(&db, "ReturnsError", "fails-1", "null");
    start(&db, "CatchesActivityError", "catches-1", "null");
    start(&db, "HelloCities", "ok-1", "null");
    for id in ["fails-1", "catches-1", "ok-1"] {
        wait_until(
            || matches!(status(&db, id)["runtimeStatus"].as_str(), Some("Completed" | "Failed")),
            id,
        );
    }
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    let lines = |needle: &str| -> Vec<String> {
        text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    };
    wait_until(
        || !lines("orchestration failed").is_empty(),
        "the orchestration's WARN line",
    );
    wait_until(|| !lines("activity failed").is_empty(), "the activity's WARN line");
    child.kill().unwrap();
    let _ = child.wait();

    let failed = lines("orchestration failed");
    assert_eq!(failed.len(), 1, "one line per failed orchestration:\n{}", text());
    for needle in ["WARN", "fails-1", "ReturnsError", "MyError", "custom failure"] {
        assert!(failed[0].contains(needle), "{needle}: {}", failed[0]);
    }
    let activity = lines("activity failed");
    assert_eq!(activity.len(), 1, "one line per failed activity:\n{}", text());
    for needle in ["WARN", "catches-1", "AlwaysFails"] {
        assert!(activity[0].contains(needle), "{needle}: {}", activity[0]);
    }
    assert!(lines("ok-1").is_empty(), "{}", text());

    // `status` without --show-output leaves the output out (not `null`).
    let out = cairn(&db, &["status", "ok-1"]);
    assert!(out.status.success());
    let plain: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plain["runtimeStatus"], "Completed", "{plain}");
    assert!(plain.get("output").is_none(), "{plain}");
    assert_eq!(
        status(&db, "ok-1")["output"],
        serde_json::json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
}

#[test]
fn guest_output_has_its_own_log_target_and_json_format() {
    let dir = TempDir::new("guest-target");
    let db = dir.0.join("hub.db");
    let log = dir.0.join("serve.log");
    deploy(&db, "sandbox-abuse");
    // Guest output turned off, the host's log kept, as JSON lines.
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--db")
        .arg(&db)
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info,cairn::guest=off")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    start(&db, "Chatty", "quiet-1", r#"{"lines":5}"#);
    wait_until(|| status(&db, "quiet-1")["runtimeStatus"] == "Completed", "completion");
    child.kill().unwrap();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("chatty before"), "guest output is off:\n{text}");
    let records: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        records.iter().any(|r| r["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("workers running"))),
        "the host's own lines stay, as JSON:\n{text}"
    );
}

/// RELIABILITY.md test 1: a mixed workload (sequences, fan-outs, instances
/// waiting on events and on timers, plus starts and events sent between
/// kills) under `cycles` SIGKILLs of `cairn serve` at varying moments.
/// Every acknowledged request is present, every instance reaches its golden
/// output with a well-formed history, and the activity duplicate rate is
/// reported (activities in flight at a kill run again: at least once).
fn kill_loop(cycles: u64) {
    let dir = TempDir::new("kill-loop");
    let db = dir.0.join("hub.db");
    for g in ["hello-cities", "slow-fan-out", "features"] {
        deploy(&db, g);
    }
    let start = |name: &str, id: &str, input: &str| start(&db, name, id, input);
    let mut sequences: Vec<String> = (0..5).map(|i| format!("seq-{i}")).collect();
    for id in &sequences {
        start("HelloCities", id, "null");
    }
    let fans: Vec<String> = (0..3).map(|i| format!("fan-{i}")).collect();
    for id in &fans {
        start("SlowFanOut", id, r#"{"count":20,"sleep_ms":20}"#);
    }
    let waiters: Vec<String> = (0..5).map(|i| format!("wait-{i}")).collect();
    for id in &waiters {
        start("WaitForApproval", id, r#"{"timeout_ms":600000}"#);
    }
    let naps: Vec<String> = (0..5).map(|i| format!("nap-{i}")).collect();
    for (i, id) in naps.iter().enumerate() {
        start("Sleeps", id, &format!(r#"{{"ms":{}}}"#, 100 + 150 * i));
    }

    let logs: Vec<std::path::PathBuf> = (0..=cycles).map(|c| dir.0.join(format!("serve-{c}.log"))).collect();
    let spawn = |cycle: usize| serve_logged(&db, &logs[cycle], &[], &[]);
    for cycle in 0..cycles {
        let mut child = spawn(cycle as usize);
        // Kill at different moments: 20 ms to 400 ms after the start.
        std::thread::sleep(Duration::from_millis(20 + (cycle * 97) % 380));
        // Requests acknowledged while the host runs (or is about to die).
        let id = format!("seq-late-{cycle}");
        start("HelloCities", &id, "null");
        sequences.push(id);
        if let Some(w) = waiters.get((cycle / 2) as usize).filter(|_| cycle % 2 == 1) {
            let out = cairn(&db, &["raise-event", w, "Approval", "true"]);
            assert!(out.status.success(), "{w}: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis((cycle * 53) % 120));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        assert_eq!(integrity(&db), "ok", "cycle {cycle}");
    }
    // Events for waiters the loop did not reach.
    for w in waiters.iter().skip((cycles / 2) as usize) {
        assert!(cairn(&db, &["raise-event", w, "Approval", "true"]).status.success());
    }
    let mut child = spawn(cycles as usize);
    let all: Vec<&String> = sequences.iter().chain(&fans).chain(&waiters).chain(&naps).collect();
    let terminal = |id: &str| {
        let s = status(&db, id)["runtimeStatus"].clone();
        s != "Running" && s != "Pending"
    };
    wait_until(|| all.iter().all(|id| terminal(id)), "every instance to finish");
    child.kill().unwrap();
    let _ = child.wait();

    let golden = |id: &str| -> serde_json::Value {
        if id.starts_with("seq") {
            serde_json::json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
        } else if id.starts_with("fan") {
            serde_json::json!((0..20i64).map(|i| i * i).sum::<i64>())
        } else if id.starts_with("wait") {
            serde_json::json!({"approved": true})
        } else {
            serde_json::Value::Null
        }
    };
    for id in &all {
        let s = status(&db, id);
        assert_eq!(s["runtimeStatus"], "Completed", "{id}: {s}");
        if !id.starts_with("nap") {
            assert_eq!(s["output"], golden(id), "{id}");
        }
        let events = history_of(&db, id);
        assert_history_invariants(&events);
    }
    let leftover = with_hub(&db, async |s| s.queue_depths().await.unwrap().1);
    assert_eq!(leftover, 0, "no work item left behind");

    // Duplicate rate: SlowSquare executions (logged) against distinct tasks.
    let mut executions = 0usize;
    let mut keys = std::collections::HashSet::new();
    for log in &logs {
        for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
            if let Some(rest) = line.split("slow-square ").nth(1) {
                executions += 1;
                keys.insert(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
    }
    let tasks = fans.len() * 20;
    assert!(keys.len() <= tasks && executions >= keys.len());
    eprintln!(
        "kill loop: {cycles} kills, {} instances completed; SlowSquare: {executions} executions logged for {} of {tasks} tasks, {} duplicates ({:.1} %)",
        all.len(),
        keys.len(),
        executions - keys.len(),
        100.0 * (executions - keys.len()) as f64 / tasks as f64
    );
}

#[test]
fn kill_9_loop_with_a_mixed_workload_loses_nothing() {
    kill_loop(20);
}

/// The long version: `cargo test --release --test crash -- --ignored kill_9_soak`.
#[test]
#[ignore = "soak: 200 kill cycles, several minutes"]
fn kill_9_soak() {
    kill_loop(200);
}

/// RELIABILITY.md test 5: SIGTERM stops `cairn serve` within 10 s, letting
/// in-flight activities finish and commit; after a restart the instance
/// completes and no activity ran twice.
#[test]
fn sigterm_drains_in_flight_activities_and_exits_within_ten_seconds() {
    let dir = TempDir::new("sigterm");
    let db = dir.0.join("hub.db");
    deploy(&db, "slow-fan-out");
    let logs = [dir.0.join("first.log"), dir.0.join("second.log")];
    let spawn = |log: &Path| serve_logged(&db, log, &[], &[]);
    start(&db, "SlowFanOut", "fan", r#"{"count":10,"sleep_ms":1500}"#);
    let mut child = spawn(&logs[0]);
    // Wait until the activities run, then ask the host to stop.
    wait_until(
        || {
            std::fs::read_to_string(&logs[0])
                .unwrap_or_default()
                .matches("slow-square ")
                .count()
                == 10
        },
        "the activities to start",
    );
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "cairn serve did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "clean exit: {exit:?}");
    eprintln!("SIGTERM → exit in {:?}", signalled.elapsed());

    let mut child = spawn(&logs[1]);
    wait_until(
        || status(&db, "fan")["runtimeStatus"] == "Completed",
        "completion after restart",
    );
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        status(&db, "fan")["output"],
        serde_json::json!((0..10i64).map(|i| i * i).sum::<i64>())
    );
    let executions: usize = logs
        .iter()
        .map(|l| {
            std::fs::read_to_string(l)
                .unwrap_or_default()
                .matches("slow-square ")
                .count()
        })
        .sum();
    assert_eq!(executions, 10, "the drained activities were committed, not run again");
}

/// Issue 15: a host killed (SIGKILL) again and again during a stream of
/// 1,000 signals to one Counter. The client retries a signal whose answer
/// it did not get, under the same idempotency key (at-least-once on the
/// wire); after the last restart the count is exactly 1,000: every signal
/// applied once, none lost, none twice.
#[test]
fn kill_9_during_a_stream_of_signals_applies_each_exactly_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use common::serve::{ServeProcess, try_send};

    const SIGNALS: usize = 1000;
    let dir = TempDir::new("kill9-entity");
    let db = dir.0.join("hub.db");
    deploy(&db, "entities");
    let mut server = ServeProcess::start(&db, &[]);
    let addr = Arc::new(Mutex::new(server.addr));
    let sent = Arc::new(AtomicUsize::new(0));
    let client = {
        let (addr, sent) = (addr.clone(), sent.clone());
        std::thread::spawn(move || {
            let path = "/runtime/webhooks/durabletask/entities/Counter/crash?op=add";
            let mut retries = 0u32;
            for i in 0..SIGNALS {
                let key = format!("signal-{i}");
                let headers = [("Content-Type", "application/json"), ("Idempotency-Key", key.as_str())];
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let to = *addr.lock().unwrap();
                    match try_send(to, "POST", path, &headers, b"1", Duration::from_secs(10)) {
                        Ok(r) if r.status == 202 => break,
                        _ => {
                            retries += 1;
                            assert!(Instant::now() < deadline, "signal {i} was never accepted");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                sent.store(i + 1, Ordering::SeqCst);
            }
            retries
        })
    };
    // Kill at spread-out points of the stream, and restart.
    for at in [100, 250, 450, 650, 850] {
        wait_until(|| sent.load(Ordering::SeqCst) >= at, "the stream to progress");
        server.kill(); // SIGKILL
        assert_eq!(integrity(&db), "ok", "after the kill at {at}");
        server = ServeProcess::start(&db, &[]);
        *addr.lock().unwrap() = server.addr;
    }
    let retries = client.join().unwrap();
    eprintln!("{retries} signals were retried after a kill");
    // Everything was accepted; wait until it is applied, then stop the host.
    let state = |s: &ServeProcess| s.get("/runtime/webhooks/durabletask/entities/Counter/crash").text();
    wait_until(|| state(&server) == SIGNALS.to_string(), "the count to reach 1000");
    server.terminate(Duration::from_secs(10));
    let (count, queued) = with_hub(&db, async |s| {
        let row = s.get_instance("@Counter@crash").await.unwrap().unwrap();
        (row.output, s.queue_depths().await.unwrap().0)
    });
    assert_eq!(
        count.as_deref(),
        Some("1000"),
        "each signal applied exactly once ({retries} retries on the wire)"
    );
    assert_eq!(queued, 0, "nothing left in the queue");
}
