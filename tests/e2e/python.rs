//! Python guests (guests/python): the same examples as the Rust ones, with
//! the same function names, inputs and outputs, built with componentize-py
//! into target/guests/python (`scripts/build-python-guests.sh`); the sandbox
//! around Python orchestrators; typed failures; and the Durable Functions
//! HelloCities sample ported with only its import and registration changed.
//!
//! A Python component takes 12-20 s to compile the first time; the compiled
//! cache (shared by every test) makes later deploys of the same build fast.
//! Each test deploys one component, once per mode.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use cairn::store::RuntimeStatus;

/// Bytes of a built Python component.
fn py_guest(name: &str) -> Vec<u8> {
    let path = repo_root().join("target/guests/python").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-python-guests.sh first", path.display()))
}

async fn deploy_py(t: &TestHub, name: &str) -> String {
    t.hub
        .deploy(py_guest(name))
        .await
        .unwrap_or_else(|e| panic!("deploying the Python component {name}: {e}"))
        .hash
}

async fn wait_custom_status(t: &TestHub, id: &str, want: &str) {
    for _ in 0..500 {
        let row = t.hub.store.get_instance(id).await.unwrap().unwrap();
        if row.custom_status.as_deref() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never showed custom status {want}");
}

fn assert_failed_with(row: &cairn::store::InstanceRow, error_type: &str, message_part: &str) {
    assert_eq!(row.status, RuntimeStatus::Failed, "{row:?}");
    let out = output(row);
    assert_eq!(out["ErrorType"], json!(error_type), "{out}");
    let message = out["Message"].as_str().unwrap_or_default();
    assert!(message.contains(message_part), "{message:?} lacks {message_part:?}");
}

const SEED_HISTORY: [&str; 16] = [
    "ExecutionStarted",
    "OrchestratorStarted",
    "TaskScheduled",
    "OrchestratorCompleted",
    "TaskCompleted",
    "OrchestratorStarted",
    "TaskScheduled",
    "OrchestratorCompleted",
    "TaskCompleted",
    "OrchestratorStarted",
    "TaskScheduled",
    "OrchestratorCompleted",
    "TaskCompleted",
    "OrchestratorStarted",
    "OrchestratorCompleted",
    "ExecutionCompleted",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_hello_cities_matches_the_seed_history_hot_and_replayed() {
    let mut runs = Vec::new();
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "hello-cities").await;
        let row = t.run("HelloCities", "null", "hello").await;
        assert_completed(&row);
        assert_eq!(output(&row), json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]));
        assert_eq!(t.types("hello").await, SEED_HISTORY, "hot={hot}");
        let h = t.history("hello").await;
        assert_history_invariants(&h);
        runs.push(normalized(&h));
        t.stop().await;
    }
    assert_eq!(runs[0], runs[1], "hot and replayed histories are identical");
}

/// The Durable Functions Python sample, kept as published, differs from the
/// orchestrator the component is built from only in its import and
/// registration lines (guests/python/tests/seed_diff.py computes the diff
/// with difflib).
#[test]
fn python_hello_cities_is_the_seed_sample_with_import_and_registration_changed() {
    let script = repo_root().join("guests/python/tests/seed_diff.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("running python3 {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let changed: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("changed lines: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of changed lines in:\n{stdout}"));
    assert!((1..=6).contains(&changed), "{stdout}");
}

/// The SDK's own unit tests (guests/python/tests/test_sdk.py), on the
/// machine's CPython against an in-memory fake host: the generator driver,
/// both styles, failures, registration spellings.
#[test]
fn python_sdk_unit_tests_pass() {
    let dir = repo_root().join("guests/python/tests");
    let out = std::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("running python3 -m unittest in {}: {e}", dir.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("\nOK"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_fan_out_fan_in_and_race() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "fan-out-fan-in").await;

        let row = t.run("FanOutFanIn", r#"{"count":50}"#, "fan").await;
        assert_completed(&row);
        let expected: i64 = (0..50i64).map(|i| i * i).sum();
        assert_eq!(output(&row), json!(expected));
        let h = t.history("fan").await;
        assert_history_invariants(&h);
        let scheduled = h.iter().filter(|(_, e)| e.type_name() == "TaskScheduled").count();
        let completed = h.iter().filter(|(_, e)| e.type_name() == "TaskCompleted").count();
        assert_eq!((scheduled, completed), (50, 50));
        let first_completion = h.iter().position(|(_, e)| e.type_name() == "TaskCompleted").unwrap();
        let last_schedule = h.iter().rposition(|(_, e)| e.type_name() == "TaskScheduled").unwrap();
        assert!(
            last_schedule < first_completion,
            "all 50 are scheduled before any result"
        );

        let row = t.run("RaceFirst", r#"{"count":5}"#, "race").await;
        assert_completed(&row);
        let first = t
            .history("race")
            .await
            .iter()
            .find_map(|(_, e)| match e {
                cairn::history::Event::TaskCompleted { result, .. } => Some(result.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            output(&row),
            serde_json::from_str::<Value>(&first).unwrap(),
            "hot={hot}"
        );

        let row = t.run("RaceFirst", r#"{"count":0}"#, "race-none").await;
        assert_failed_with(&row, "InvalidInput", "count must be at least 1");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_human_interaction_approval_rejection_and_escalation() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "human-interaction").await;
        for (id, payload, expected) in [
            ("approve", "true", "approved"),
            ("approve-obj", r#"{"approved":true}"#, "approved"),
            ("reject", "false", "rejected"),
        ] {
            t.start("ApprovalWorkflow", r#"{"timeout_ms":60000}"#, id).await;
            wait_custom_status(&t, id, r#"{"stage":"waiting-for-approval"}"#).await;
            t.hub.raise_event(id, "ApprovalEvent", Some(payload)).await.unwrap();
            let row = t.wait(id).await;
            assert_eq!(output(&row), json!(expected), "{id} hot={hot}");
            assert_eq!(row.custom_status, None, "the status is cleared once decided");
            assert_history_invariants(&t.history(id).await);
        }
        let row = t.run("ApprovalWorkflow", r#"{"timeout_ms":30}"#, "escalate").await;
        assert_eq!(output(&row), json!("escalated"));
        let types = t.types("escalate").await;
        assert!(types.contains(&"TimerFired") && !types.contains(&"EventRaised"));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_monitor_polls_with_continue_as_new_until_done_or_bounded() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "monitor").await;
        let row = t.run("Monitor", r#"{"job_id":"job-1","interval_ms":10}"#, "mon").await;
        assert_eq!(
            output(&row),
            json!({"job_id": "job-1", "status": "completed", "polls": 3}),
            "hot={hot}"
        );
        assert!(t.history("mon").await.len() < 20, "only the last execution is kept");
        let row = t
            .run("Monitor", r#"{"job_id":"j","interval_ms":5,"max_polls":2}"#, "bounded")
            .await;
        assert_eq!(output(&row), json!({"status": "timed-out"}));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sub_orchestration_provisions_every_device() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "sub-orchestration").await;
        let row = t.run("ProvisionAll", r#"{"devices":["a","b","c"]}"#, "prov").await;
        assert_eq!(
            output(&row),
            json!(["a-created-configured", "b-created-configured", "c-created-configured"]),
            "hot={hot}"
        );
        let row = t.run("ProvisionAll", r#"{"devices":[]}"#, "prov-none").await;
        assert_eq!(output(&row), json!([]));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_retry_succeeds_on_the_third_attempt_or_fails_typed() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "retry").await;
        let row = t.run("RetryFlaky", "null", "flaky").await;
        assert_eq!(output(&row), json!({"succeeded_on_attempt": 3}), "hot={hot}");
        let retries = t.types("flaky").await.iter().filter(|e| **e == "TaskRetrying").count();
        assert_eq!(retries, 2);
        let row = t.run("RetryFlaky", r#"{"fail_times":5}"#, "hopeless").await;
        assert_failed_with(&row, "TransientError", "attempt 5 failed (fails 5 times)");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_error_handling_catches_the_typed_failure_and_compensates() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "error-handling").await;
        let row = t.run("HandleErrors", r#"{"amount":100}"#, "declined").await;
        assert_eq!(
            output(&row),
            json!({
                "status": "compensated",
                "error_type": "PaymentDeclined",
                "error_message": "card declined for amount 100",
                "notification": "notified: card declined for amount 100"
            }),
            "hot={hot}"
        );
        let row = t.run("HandleErrors", r#"{"amount":10}"#, "charged").await;
        assert_eq!(output(&row), json!({"status": "charged"}));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_critical_sections_on_the_same_accounts_never_overlap() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "critical-section").await;
        let ids: Vec<String> = (0..6).map(|i| format!("transfer-{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let input = if i % 2 == 0 {
                r#"{"from":"acct-a","to":"acct-b","amount":1}"#
            } else {
                r#"{"from":"acct-b","to":"acct-a","amount":1}"#
            };
            t.start("TransferFunds", input, id).await;
        }
        let mut windows = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let row = t.wait(id).await;
            assert_completed(&row);
            let expected = if i % 2 == 0 {
                json!(["debited 1 from acct-a", "credited 1 to acct-b"])
            } else {
                json!(["debited 1 from acct-b", "credited 1 to acct-a"])
            };
            assert_eq!(output(&row), expected, "{id} hot={hot}");
            let h = t.history(id).await;
            let types: Vec<_> = h.iter().map(|(_, e)| e.type_name()).collect();
            for ty in ["LockRequested", "LockGranted", "LockReleased"] {
                assert_eq!(types.iter().filter(|x| **x == ty).count(), 1, "{id}: {types:?}");
            }
            let granted = h.iter().position(|(_, e)| e.type_name() == "LockGranted").unwrap();
            let released = h.iter().position(|(_, e)| e.type_name() == "LockReleased").unwrap();
            windows.push((h[granted].0, h[released].0, id.clone()));
        }
        windows.sort();
        for pair in windows.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "critical sections overlap: {pair:?}");
        }
        assert!(
            t.hub.store.list_locks().await.unwrap().is_empty(),
            "every lock released"
        );

        let row = t.run("TransferFunds", r#"{"from":"x","to":"x"}"#, "self").await;
        assert_failed_with(&row, "InvalidInput", "cannot transfer from x to itself");
        t.stop().await;
    }
}

/// Inside a Python orchestrator, the clock, `time.sleep`, OS randomness and
/// `uuid.uuid4()` fail loudly with a pointer to the context's deterministic
/// equivalent; `random` is seeded per execution and replay-stable; `print`
/// goes to the replay-safe log; and importing a module the component was
/// not built with is a clear `ModuleNotFoundError`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_orchestrators_fail_loudly_on_nondeterministic_calls() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "checks").await;
        for (call, error_type, hint) in [
            ("time.time", "NonDeterministicCallError", "context.current_utc_datetime"),
            (
                "time.monotonic",
                "NonDeterministicCallError",
                "context.current_utc_datetime",
            ),
            ("time.sleep", "NonDeterministicCallError", "context.create_timer"),
            ("uuid.uuid4", "NonDeterministicCallError", "context.new_uuid()"),
            ("os.urandom", "NonDeterministicCallError", "context.new_uuid()"),
            (
                "random.seed",
                "NonDeterministicCallError",
                "seeded per orchestration execution",
            ),
            ("open", "WasiUnavailableError", "do I/O in an activity"),
            // Not interceptable from Python: a WASI call that traps, loudly.
            ("datetime.now", "Trap", "wall_clock_now"),
        ] {
            let id = format!("forbidden-{call}");
            let row = t.run("CallForbidden", &format!("\"{call}\""), &id).await;
            assert_failed_with(&row, error_type, hint);
        }

        // Replay-stable: what the orchestrator computes when it finishes (in
        // forced-replay mode: in a fresh instance replaying the history)
        // equals what it recorded in its first episode.
        let mut draws = Vec::new();
        for id in ["stable-1", "stable-2"] {
            let row = t.run("ReplayStable", "null", id).await;
            assert_completed(&row);
            let out = output(&row);
            for key in ["drawn", "now", "uuid"] {
                assert_eq!(
                    out[key], out["echoed"][key],
                    "{key} differs on replay (hot={hot}): {out}"
                );
            }
            assert_ne!(out["drawn"], out["second_draw"]);
            draws.push(out["drawn"].clone());
        }
        assert_ne!(draws[0], draws[1], "random is seeded per instance");

        let row = t.run("Prints", "null", "prints").await;
        assert_eq!(output(&row), json!(["activity printed", "printed"]), "{row:?}");

        let row = t.run("LazyImport", "null", "lazy").await;
        assert_failed_with(&row, "ModuleNotFoundError", "Import 'colorsys' at the top");
        t.stop().await;
    }
}

/// `raise ValueError("bad")` in an activity is the failure
/// `{ValueError, "bad"}`, which an orchestrator catches as an exception (in
/// both styles) or, uncaught, fails the instance with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_failures_cross_typed() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_py(&t, "checks").await;

        let row = t
            .run("CatchTyped", r#"{"type":"ValueError","message":"bad"}"#, "plain")
            .await;
        assert_completed(&row);
        let out = output(&row);
        assert_eq!(out["class"], json!("ActivityFailedError"), "{out}");
        assert_eq!(
            (&out["error_type"], &out["message"]),
            (&json!("ValueError"), &json!("bad"))
        );
        assert_eq!((&out["is_failure"], &out["name"]), (&json!(true), &json!("Fail")));

        let spec = r#"{"type":"PaymentDeclined","message":"no","details":{"code":7}}"#;
        let row = t.run("CatchTypedGenerator", spec, "generator").await;
        assert_completed(&row);
        let out = output(&row);
        assert_eq!(out["error_type"], json!("PaymentDeclined"), "{out}");
        assert_eq!(out["details"], json!({"code": 7}));
        assert_eq!(out["after"], json!("after"), "the generator goes on after catching");

        let row = t.run("Uncaught", r#""boom""#, "uncaught").await;
        assert_failed_with(&row, "RuntimeError", "boom");

        let spec = r#"{"type":"ValueError","message":"bad"}"#;
        let row = t.run("UncaughtActivityFailure", spec, "uncaught-activity").await;
        assert_failed_with(&row, "ValueError", "bad");

        let row = t.run("CatchSubOrchestrator", "null", "sub").await;
        assert_completed(&row);
        let out = output(&row);
        assert_eq!(out["class"], json!("SubOrchestratorFailedError"), "{out}");
        assert_eq!(
            (&out["error_type"], &out["message"]),
            (&json!("RuntimeError"), &json!("child failed"))
        );

        let row = t.run("AllFailsFirst", "null", "all").await;
        assert_eq!(output(&row), json!({"error_type": "KeyError", "others": [1, 3]}));
        t.stop().await;
    }
}
