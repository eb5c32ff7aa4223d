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

/// A Python entity is held to the orchestrators' sandbox: the clock,
/// entropy, files and the network fail its operation with the SDK's typed
/// failures, which the calling orchestration catches as an
/// `EntityOperationFailedError` naming the entity and the operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_entities_are_sandboxed_like_orchestrators() {
    let t = TestHub::new(true).await;
    deploy_py(&t, "checks").await;
    for (call, error_type, hint) in [
        ("time.time", "NonDeterministicCallError", "not available in an entity"),
        ("uuid.uuid4", "NonDeterministicCallError", "not available in an entity"),
        ("os.urandom", "NonDeterministicCallError", "not available in an entity"),
        ("open", "WasiUnavailableError", "not allowed in an entity"),
        ("socket", "NetworkAccessError", "forbids network access in an entity"),
    ] {
        let row = t
            .run(
                "CallForbiddenInEntity",
                &format!("\"{call}\""),
                &format!("entity-{call}"),
            )
            .await;
        assert_completed(&row);
        let out = output(&row);
        assert_eq!(out["class"], json!("EntityOperationFailedError"), "{call}: {out}");
        assert_eq!(out["error_type"], json!(error_type), "{call}: {out}");
        assert!(
            out["message"].as_str().unwrap_or_default().contains(hint),
            "{call}: {out}"
        );
        assert_eq!(
            (&out["entity_id"], &out["operation"]),
            (&json!("Sandboxed@x"), &json!(call))
        );
    }
    t.stop().await;
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

/// `socket` (and what is built on it) in a sandboxed Python component
/// fails with a `NetworkAccessError` that says the sandbox forbids network
/// access and what to use instead, in an orchestrator and in an activity
/// (unguarded, it failed with `LookupError: unknown encoding: idna`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_network_access_fails_saying_the_sandbox_forbids_it() {
    let t = TestHub::new(true).await;
    deploy_py(&t, "checks").await;
    for call in ["socket", "socket.getaddrinfo"] {
        let row = t
            .run("CallForbidden", &format!("\"{call}\""), &format!("net-{call}"))
            .await;
        assert_failed_with(&row, "NetworkAccessError", "forbids network access in an orchestrator");
        assert_failed_with(&row, "NetworkAccessError", "context.call_http");
        assert_failed_with(&row, "NetworkAccessError", "--allow-http");

        let row = t
            .run(
                "CallForbiddenInActivity",
                &format!("\"{call}\""),
                &format!("act-net-{call}"),
            )
            .await;
        assert_completed(&row);
        let out = output(&row);
        assert_eq!(out["error_type"], json!("NetworkAccessError"), "{out}");
        let message = out["message"].as_str().unwrap_or_default();
        for needle in ["forbids network access", "context.call_http", "--allow-http"] {
            assert!(message.contains(needle), "{message}");
        }
    }
    t.stop().await;
}

/// The orchestrator CPU limit counts the guest's own CPU time, not the
/// time it waits for a core: 200 Python orchestrations started at once on 2
/// cores, next to two busy neighbours that hold a worker thread for 100 ms
/// at a time (as a compile or any other long step would), all complete,
/// with the hot cache and in forced replay, under the default 2 s limit and
/// under a 250 ms limit (below the wall time of an episode under that load,
/// far above its CPU time), while an infinite loop among them still fails
/// at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_python_orchestrations_never_hit_the_cpu_limit() {
    let tight = cairn::sandbox::Limits {
        orchestrator_cpu: std::time::Duration::from_millis(250),
        ..cairn::sandbox::Limits::default()
    };
    assert_eq!(
        cairn::sandbox::Limits::default().orchestrator_cpu,
        std::time::Duration::from_secs(2)
    );
    for (hot, limits) in [
        (true, cairn::sandbox::Limits::default()),
        (false, cairn::sandbox::Limits::default()),
        (true, tight),
    ] {
        concurrent_python_orchestrations(hot, limits).await;
    }
}

async fn concurrent_python_orchestrations(hot: bool, limits: cairn::sandbox::Limits) {
    const N: usize = 200;
    let limit = limits.orchestrator_cpu.as_millis() as u64;
    let mut t = TestHub::with_limits(hot, cairn::engine::EngineConfig::default(), limits, false).await;
    deploy_py(&t, "hello-cities").await;
    t.deploy("sandbox-abuse").await;
    let looping = t.start("InfiniteLoop", "null", "loop").await;
    let ids: Vec<String> = (0..N).map(|i| format!("py-{i}")).collect();
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let neighbours: Vec<_> = (0..2)
        .map(|_| {
            let busy = busy.clone();
            tokio::spawn(async move {
                while busy.load(std::sync::atomic::Ordering::Relaxed) {
                    let until = std::time::Instant::now() + std::time::Duration::from_millis(100);
                    while std::time::Instant::now() < until {
                        std::hint::black_box(0u64);
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    t.running = Some(t.engine.run());
    // As `cairn bench --mode seq`: 16 clients start their share one after
    // another while the engine runs.
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..16 {
        let hub = t.hub.clone();
        let share: Vec<String> = ids.iter().skip(c).step_by(16).cloned().collect();
        clients.spawn(async move {
            for id in share {
                hub.start("HelloCities", None, Some(&id), None).await.unwrap();
            }
        });
    }
    while let Some(r) = clients.join_next().await {
        r.unwrap();
    }
    let mut failed = Vec::new();
    for id in &ids {
        let row = t.wait(id).await;
        if row.status == RuntimeStatus::Completed {
            assert_eq!(output(&row), json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]));
        } else {
            failed.push(format!("{id}: {:?} {:?}", row.status, row.output));
        }
    }
    let elapsed = started.elapsed();
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    for n in neighbours {
        n.await.unwrap();
    }
    assert!(
        failed.is_empty(),
        "{} of {N} failed (hot={hot}, limit {limit} ms): {failed:#?}",
        failed.len()
    );
    let row = t.wait(&looping).await;
    assert_eq!(row.status, RuntimeStatus::Failed, "{row:?}");
    let out = output(&row);
    assert_eq!(out["ErrorType"], json!("Timeout"), "{out}");
    // "…ran for more than N ms of CPU time…; the limit is L ms": stopped
    // within a few epoch ticks of the limit, however loaded the host was.
    let message = out["Message"].as_str().unwrap();
    let used: u64 = message
        .split("more than ")
        .nth(1)
        .and_then(|m| m.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!((limit..limit + 200).contains(&used), "{message}");
    eprintln!(
        "{N} concurrent Python HelloCities orchestrations (hot={hot}, limit {limit} ms) completed in {elapsed:?}"
    );
    t.stop().await;
}
