//! The command line as scripts use it: the real `cairn` binary, on a task
//! hub file and with `--url` against a real `cairn serve` on the same hub.
//! Pins the exit codes, that `-o json` prints exactly one JSON document for
//! every verb, that local and remote print the same documents, that `purge`
//! refuses to run without filters, and that read verbs refuse a missing hub.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::common::repo_root;
use crate::common::serve::ServeProcess;

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env_remove("CAIRN_URL")
        .env_remove("CAIRN_DB")
        .output()
        .expect("cairn runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a verb with `-o json` and returns its one JSON document (panics
/// when stdout holds anything else).
fn json(target: &[&str], args: &[&str]) -> Value {
    let mut argv: Vec<&str> = target.to_vec();
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["-o", "json"]);
    let out = cairn(&argv);
    assert!(out.status.success(), "{argv:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{argv:?}: stdout is not one JSON document ({e}): {}", text(&out)))
}

fn code(target: &[&str], args: &[&str]) -> (Option<i32>, String) {
    let mut argv: Vec<&str> = target.to_vec();
    argv.extend_from_slice(args);
    let out = cairn(&argv);
    (out.status.code(), text(&out))
}

fn guest(name: &str) -> String {
    repo_root()
        .join(format!("target/guests/rust/{name}.wasm"))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_cli_is_safe_to_script_locally_and_remotely() {
    let dir = crate::common::TempDir::new("scripting");
    let db_path = dir.0.join("hub.db");
    let db = db_path.to_str().unwrap().to_owned();
    let local: &[&str] = &["--db", &db];

    // Read verbs refuse a task hub that does not exist, and create nothing.
    for verb in [
        &["list"][..],
        &["status", "x"],
        &["history", "x"],
        &["locks"],
        &["components"],
    ] {
        let (c, t) = code(local, verb);
        assert_eq!(c, Some(3), "{verb:?}: {t}");
        assert!(t.contains("does not exist"), "{t}");
        assert!(!db_path.exists(), "{verb:?} created the task hub");
    }

    // Deploy (it creates the hub): one JSON document for several files.
    let deployed = json(
        local,
        &[
            "deploy",
            &guest("hello-cities"),
            &guest("human-interaction"),
            &guest("failing"),
            &guest("entities"),
        ],
    );
    assert_eq!(deployed.as_array().map(Vec::len), Some(4), "{deployed}");

    let server = ServeProcess::start(&db, &[]);
    let url = server.url();
    let remote: &[&str] = &["--url", &url];

    // start --wait: JSON only on stdout, exit 0 on Completed, 4 on Failed.
    let done = json(local, &["start", "HelloCities", "--id", "ok-1", "--wait", "60"]);
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(done["instanceId"], "ok-1");
    let done = json(remote, &["start", "HelloCities", "--id", "ok-2", "--wait", "60"]);
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    for (target, id) in [(local, "fails-local"), (remote, "fails-remote")] {
        let mut argv = target.to_vec();
        argv.extend_from_slice(&["start", "ReturnsError", "--id", id, "--wait", "60", "-o", "json"]);
        let out = cairn(&argv);
        assert_eq!(out.status.code(), Some(4), "{}", text(&out));
        let status: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["runtimeStatus"], "Failed");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("ended Failed"),
            "{}",
            text(&out)
        );
    }

    // An instance that waits for an event: --wait runs out (6), describe
    // says what it waits for, the same locally and remotely.
    let started = json(remote, &["start", "ApprovalWorkflow", "--id", "wait-1"]);
    assert_eq!(started, serde_json::json!({ "id": "wait-1" }));
    let (c, t) = code(local, &["start", "ApprovalWorkflow", "--id", "wait-2", "--wait", "1"]);
    assert_eq!(c, Some(6), "{t}");
    let mut waits = Value::Null;
    for _ in 0..300 {
        waits = json(local, &["describe", "wait-1"]);
        if waits["waitingFor"].as_array().is_some_and(|w| w.len() == 2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let kinds: Vec<&str> = waits["waitingFor"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["event", "timer"], "{waits}");
    assert!(waits["waitingFor"][1]["fireAt"].as_str().is_some(), "{waits}");
    assert_eq!(waits, json(remote, &["describe", "wait-1"]));
    let table = String::from_utf8_lossy(&cairn(&[local, &["describe", "wait-1"][..]].concat()).stdout).into_owned();
    assert!(table.contains("ApprovalEvent") && table.contains("fires at"), "{table}");

    // A waiter whose instance is terminated meanwhile exits 5.
    let waiter = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "--url",
            &url,
            "start",
            "ApprovalWorkflow",
            "--id",
            "term-1",
            "--wait",
            "60",
            "-o",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cairn runs");
    while code(local, &["status", "term-1"]).0 != Some(0) {
        std::thread::sleep(Duration::from_millis(20));
    }
    json(local, &["terminate", "term-1", "--reason", "stop"]);
    let out = waiter.wait_with_output().expect("the waiter ends");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["runtimeStatus"], "Terminated");

    // Read verbs print the same documents locally and remotely.
    for verb in [
        &["status", "ok-1", "--show-input", "--show-output"][..],
        &["status", "ok-1", "--show-history"],
        &["history", "ok-1"],
        &["list", "--name", "HelloCities"],
        &["list", "--status", "Failed", "--top", "1"],
        &["locks"],
        &["components"],
        &["replay", "ok-1"],
        &["replay", "ok-1", "--until", "2"],
    ] {
        assert_eq!(json(local, verb), json(remote, verb), "{verb:?}");
    }
    let listed = json(local, &["list", "--name", "HelloCities"]);
    let ids: Vec<&str> = listed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ok-1", "ok-2"], "{listed}");
    let page = json(local, &["list", "--status", "Failed", "--top", "1"]);
    assert!(
        page["continuation"].as_str().is_some(),
        "two Failed instances, pages of one: {page}"
    );
    // The table of `history` names tasks, attempts and durations.
    let out = cairn(&[local, &["history", "ok-1"][..]].concat());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().next().unwrap_or_default().contains("Instance ok-1"),
        "{table}"
    );
    assert!(
        table.contains("TaskCompleted") && table.contains("SayHello") && table.contains("TOOK"),
        "{table}"
    );

    // Every verb that changes something prints one JSON document too.
    for target in [local, remote] {
        json(target, &["raise-event", "wait-1", "Other", "{\"x\": 1}"]);
        json(target, &["suspend", "wait-1", "--reason", "r"]);
        json(target, &["resume", "wait-1"]);
        json(target, &["prune-versions"]);
        json(target, &["restart", "ok-1"]);
    }
    json(remote, &["terminate", "wait-2", "--reason", "done"]);
    json(local, &["rewind", "fails-local"]);
    let purged = json(remote, &["purge", "ok-2"]);
    assert_eq!(purged["instancesDeleted"], 1);

    // Entities and upgrade checks print one JSON document too.
    for target in [local, remote] {
        let signaled = json(target, &["entity", "signal", "Counter@c1", "add", "5"]);
        assert_eq!(signaled["queued"], true, "{signaled}");
    }
    let mut count = Value::Null;
    for _ in 0..300 {
        let out = cairn(&[local, &["entity", "get", "Counter@c1"][..]].concat());
        if out.status.success() {
            count = serde_json::from_slice(&out.stdout).unwrap();
            if count == 10 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count, 10, "two signals of add 5");
    assert_eq!(
        json(local, &["entity", "list", "--fetch-state"]),
        json(remote, &["entity", "list", "--fetch-state"])
    );
    assert_eq!(code(remote, &["entity", "get", "Counter@none"]).0, Some(3));
    json(remote, &["entity", "purge"]);
    let checked = json(
        remote,
        &["upgrade-check", "ApprovalWorkflow", &guest("human-interaction")],
    );
    assert_eq!(checked["instances"][0]["verdict"], "replays-cleanly", "{checked}");

    // Exit codes of refusals.
    for target in [local, remote] {
        assert_eq!(code(target, &["status", "ghost"]).0, Some(3));
        let (c, t) = code(target, &["purge"]);
        assert_eq!(c, Some(2), "{t}");
        assert!(t.contains("--all --yes"), "{t}");
        assert_eq!(code(target, &["purge", "--all"]).0, Some(2));
        assert_eq!(
            code(target, &["start", "HelloCities", "--input", "not json"]).0,
            Some(2)
        );
        assert_eq!(code(target, &["rewind", "ok-1"]).0, Some(10), "ok-1 did not fail");
        assert_eq!(
            code(target, &["replay", "ok-1", "--component", &guest("hello-cities-v2")]).0,
            Some(7)
        );
    }
    let purged = json(local, &["purge", "--all", "--yes"]);
    assert!(purged["instancesDeleted"].as_u64().is_some_and(|n| n >= 2), "{purged}");

    // Unreachable server: exit 9, one line.
    let (c, t) = code(&["--url", "http://127.0.0.1:9"], &["list"]);
    assert_eq!(c, Some(9), "{t}");

    // Completions and help.
    let out = cairn(&["completions", "bash"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("complete"),
        "{}",
        text(&out)
    );
    let out = cairn(&["start", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:") && help.contains("Guest limits"), "{help}");
    assert!(String::from_utf8_lossy(&cairn(&["list", "--help"]).stdout).contains("Examples:"));
    assert!(!String::from_utf8_lossy(&cairn(&["list", "--help"]).stdout).contains("--memory-limit-mib"));
    // `func durable` verb names.
    assert_eq!(json(local, &["get-runtime-status", "wait-1"])["instanceId"], "wait-1");
    // Deleting the task hub under a running server: refused locally (the
    // server holds the one-host guard: exit 9), done through the server.
    assert_eq!(code(local, &["delete-task-hub", "--yes"]).0, Some(9));
    let deleted = json(remote, &["delete-task-hub", "--yes"]);
    assert!(deleted["instancesDeleted"].as_u64().is_some(), "{deleted}");
    drop(server);
}

/// `start` without `--wait` tells when nothing serves a SQLite hub; asking
/// must not take the hub's one-host guard, or a `cairn serve` started in
/// the meantime would be refused.
#[test]
fn asking_whether_anyone_serves_claims_nothing() {
    let dir = crate::common::TempDir::new("nobody-serves");
    let db = dir.0.join("hub.db");
    let asking = cairn::manage::Local::new(cairn::hub::Hub::open(&db).unwrap());
    assert!(asking.nobody_serves());
    // A server (another handle, as another process would) can still claim it.
    let server = cairn::hub::Hub::open(&db).unwrap();
    server.store.claim_host().expect("the guard is free after the question");
    assert!(!asking.nobody_serves(), "the server holds the guard now");
}
