//! Python guests (guests/python): the same examples as the Rust ones, with
//! the same function names, inputs and outputs, built with componentize-py
//! into target/guests/python (`scripts/build-python-guests.sh`); the sandbox
//! around Python orchestrators; typed failures; and the Durable Functions
//! HelloCities sample ported with only its import and registration changed.
//!
//! A Python component takes 12-20 s to compile the first time; the compiled
//! cache (shared by every test) makes later deploys of the same build fast.
//! Each test deploys one component, once per mode.

use serde_json::json;

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

fn assert_failed_with(row: &cairn::store::InstanceRow, error_type: &str, message_part: &str) {
    assert_eq!(row.status, RuntimeStatus::Failed, "{row:?}");
    let out = output(row);
    assert_eq!(out["ErrorType"], json!(error_type), "{out}");
    let message = out["Message"].as_str().unwrap_or_default();
    assert!(message.contains(message_part), "{message:?} lacks {message_part:?}");
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
