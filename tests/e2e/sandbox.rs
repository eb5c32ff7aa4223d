//! Determinism by capability and resource limits, with adversarial guests
//! (guests/rust/testing).

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use cairn::engine::EngineConfig;
use cairn::sandbox::Limits;
use cairn::store::RuntimeStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrators_with_forbidden_imports_are_rejected_at_deploy() {
    let t = TestHub::new(true).await;
    let cases = [
        ("forbidden-fs", "wasi:filesystem/"),
        ("forbidden-net", "wasi:sockets/"),
        ("forbidden-http", "wasi:http/"),
        ("forbidden-unknown", "acme:evil/backdoor"),
    ];
    for (guest_name, import) in cases {
        let err = t.hub.deploy(guest(guest_name)).await.unwrap_err().to_string();
        assert!(err.contains(import), "{guest_name}: {err}");
        assert!(
            err.contains("move network, file and HTTP I/O into an activity"),
            "{err}"
        );
    }
    assert!(
        t.hub.store.list_functions().await.unwrap().is_empty(),
        "nothing was deployed"
    );
    // Every SDK-built orchestrator in the repository passes the same check.
    for ok in [
        "hello-cities",
        "fan-out-fan-in",
        "features",
        "nondeterminism-probe",
        "sandbox-abuse",
    ] {
        t.hub.deploy(guest(ok)).await.unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    t.stop().await;
}

fn tight_limits() -> Limits {
    Limits {
        max_memory_bytes: 64 << 20,
        orchestrator_cpu: Duration::from_millis(300),
        activity_cpu: Duration::from_millis(500),
        max_payload_bytes: 1 << 20,
        max_tasks_per_execution: 100,
        ..Limits::default()
    }
}

async fn failure_of(t: &TestHub, name: &str, input: &str, id: &str) -> serde_json::Value {
    let row = t.run(name, input, id).await;
    assert_eq!(row.status, RuntimeStatus::Failed, "{id}: {row:?}");
    output(&row)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_guests_fail_their_instance_while_others_complete() {
    for hot in [true, false] {
        let t = TestHub::with_limits(hot, EngineConfig::default(), tight_limits(), true).await;
        t.deploy("sandbox-abuse").await;
        t.deploy("hello-cities").await;
        // The infinite loops (an orchestrator and an activity) start first;
        // 20 other instances (10 of them calling activities) still complete.
        let started = std::time::Instant::now();
        let bad = t.start("InfiniteLoop", "null", "loop").await;
        let spin = t.start("CallsSpinActivity", "null", "spin").await;
        let others: Vec<(String, &str)> = (0..20)
            .map(|i| (format!("other-{i}"), if i % 2 == 0 { "Quick" } else { "HelloCities" }))
            .collect();
        for (id, name) in &others {
            t.start(name, &format!("{{\"n\":\"{id}\"}}"), id).await;
        }
        for (id, name) in &others {
            let row = t.wait(id).await;
            assert_completed(&row);
            if *name == "Quick" {
                assert_eq!(output(&row), json!({ "n": id }));
            } else {
                assert_eq!(output(&row)[0], json!("Hello Tokyo!"));
            }
        }
        let row = t.wait(&bad).await;
        assert_eq!(row.status, RuntimeStatus::Failed);
        assert_eq!(output(&row)["ErrorType"], json!("Timeout"), "{row:?}");
        assert!(
            output(&row)["Message"].as_str().unwrap().contains("limits.cpu"),
            "{row:?}"
        );
        let row = t.wait(&spin).await;
        assert_eq!(row.status, RuntimeStatus::Failed);
        let out = output(&row);
        assert_eq!(
            out["ErrorType"],
            json!("Timeout"),
            "the looping activity fails its attempt: {out}"
        );
        // Deadlines: 300 ms (orchestrator), 500 ms + 1 s wall (activity).
        // The bound only tells them from the 30 s episode timeout and the
        // activity's default time limit: it has to hold on a loaded machine.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "both failed within their deadlines: {:?}",
            started.elapsed()
        );

        let out = failure_of(&t, "MemoryBomb", "null", "bomb").await;
        let text = out.to_string();
        assert!(
            text.contains("LimitExceeded") || text.contains("memory"),
            "memory limit named: {text}"
        );

        let out = failure_of(&t, "DeepRecursion", "null", "deep").await;
        assert_eq!(out["ErrorType"], json!("Trap"), "{out}");

        let out = failure_of(&t, "HugeOutput", r#"{"bytes":2000000}"#, "huge").await;
        assert_eq!(out["ErrorType"], json!("LimitExceeded"), "{out}");

        let out = failure_of(&t, "ManyTasks", r#"{"count":1000}"#, "many").await;
        assert_eq!(out["ErrorType"], json!("LimitExceeded"), "{out}");
        assert!(out["Message"].as_str().unwrap().contains("limits.tasks"), "{out}");

        let row = t.run("Nested", "null", "nested").await;
        assert_eq!(output(&row), json!({"nested_error_type": "LockError"}), "{row:?}");
        t.stop().await;
    }
}

/// `std::thread::sleep` in an orchestrator waits on its virtual clock, which
/// stands still: it fails the instance at once, pointing at durable timers,
/// instead of blocking real time on every run and replay. Activities, whose
/// clocks are real, may sleep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_sleep_in_an_orchestrator_fails_at_once_and_names_durable_timers() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("sandbox-abuse").await;
        let started = std::time::Instant::now();
        let out = failure_of(&t, "BlockingSleep", r#"{"ms":5000}"#, "sleeper").await;
        let elapsed = started.elapsed();
        assert_eq!(out["ErrorType"], json!(cairn::sandbox::BLOCKING_WAIT), "{out}");
        let message = out["Message"].as_str().unwrap();
        for needle in ["blocking wait of 5000 ms", "durable timer", "create_timer"] {
            assert!(message.contains(needle), "{message}");
        }
        assert!(elapsed < Duration::from_secs(5), "failed without sleeping: {elapsed:?}");
        assert_eq!(
            t.types("sleeper")
                .await
                .iter()
                .filter(|e| **e == "ExecutionCompleted")
                .count(),
            1
        );

        let row = t
            .run("BlockingSleep", r#"{"ms":20,"in_activity":true}"#, "activity-sleeper")
            .await;
        assert_completed(&row);
        assert_eq!(output(&row), json!(20));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_inputs_are_refused_before_they_are_stored() {
    let t = TestHub::with_limits(true, EngineConfig::default(), tight_limits(), true).await;
    t.deploy("hello-cities").await;
    let big = format!("\"{}\"", "x".repeat(2 << 20));
    let err = t
        .hub
        .start("HelloCities", Some(&big), Some("big"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    assert!(t.hub.store.get_instance("big").await.unwrap().is_none());

    // Event data: refused, nothing queued; a small event still gets through.
    t.deploy("features").await;
    t.start("WaitForApproval", r#"{"timeout_ms":60000}"#, "event").await;
    t.wait_custom_status("event", r#"{"waiting_for":"Approval"}"#).await;
    let err = t.hub.raise_event("event", "Approval", Some(&big)).await.unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    t.hub.raise_event("event", "Approval", Some("true")).await.unwrap();
    assert_eq!(output(&t.wait("event").await), json!({"approved": true}));

    // Output and custom status over the limit fail the instance; the
    // oversized text is never written.
    t.deploy("sandbox-abuse").await;
    for (input, id) in [
        (r#"{"bytes":1500000}"#, "huge-output"),
        (r#"{"bytes":1500000,"as_status":true}"#, "huge-status"),
    ] {
        let row = t.run("HugeOutput", input, id).await;
        assert_eq!(row.status, RuntimeStatus::Failed, "{id}");
        assert_eq!(output(&row)["ErrorType"], json!("LimitExceeded"), "{id}: {row:?}");
        assert!(row.custom_status.as_deref().is_none_or(|s| s.len() < 1000), "{id}");
    }
    let largest = t
        .hub
        .store
        .as_any()
        .downcast_ref::<cairn::store::sqlite::SqliteStore>()
        .unwrap()
        .largest_payload()
        .await
        .unwrap();
    assert!(largest < 1 << 20, "an oversized payload was stored ({largest} bytes)");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashmap_clock_and_random_are_replay_stable() {
    let mut outputs = Vec::new();
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("nondeterminism-probe").await;
        let row = t.run("HashMapClockRandom", "null", "probe").await;
        assert_completed(&row);
        let out = output(&row);
        // In forced-replay mode `first` was recomputed by a replay of the
        // first episode; `recorded` is what the live run saw (from history).
        assert_eq!(out["first"], out["recorded"], "hot={hot}");
        let h = t.history("probe").await;
        let starts: Vec<u64> = h
            .iter()
            .filter(|(_, e)| e.type_name() == "OrchestratorStarted")
            .map(|(ts, _)| *ts)
            .collect();
        assert_eq!(
            out["first"]["system_time_ms"],
            json!(starts[0]),
            "wall clock = episode time"
        );
        assert_eq!(out["system_time_after_ms"], json!(starts[1]));
        let randoms = out["first"]["randoms"].as_array().unwrap();
        assert!(
            randoms.windows(2).any(|w| w[0] != w[1]),
            "random still varies within a run: {randoms:?}"
        );
        let order = out["first"]["hash_order"].as_array().unwrap();
        assert_eq!(order.len(), 50);

        // The recorded run (hot: one live guest across episodes; cold: a
        // replay at every episode), replayed once more from the start in
        // forced-replay fashion, reproduces every action and the output.
        let report = cairn::upgrade::replay_finished(&t.hub, "probe", None).await.unwrap();
        assert!(report.is_identical(), "hot={hot}: {report:?}");
        match &report.replayed {
            Some(cairn::history::Event::ExecutionCompleted { result, .. }) => {
                assert_eq!(
                    serde_json::from_str::<serde_json::Value>(result.as_deref().unwrap()).unwrap(),
                    out
                );
            }
            other => panic!("{other:?}"),
        }
        // A different program does not pass for the same one.
        let report = cairn::upgrade::replay_finished(&t.hub, "probe", Some(guest("hello-cities")))
            .await
            .unwrap();
        assert!(!report.is_identical(), "{report:?}");
        outputs.push(out);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_capabilities_default_to_none_and_follow_the_grants() {
    let t = TestHub::new(true).await;
    t.deploy("features").await;
    let shared = TempDir::new("grant");
    std::fs::write(shared.0.join("note.txt"), "granted text").unwrap();
    let call = |name: &str, input: serde_json::Value| json!({"name": name, "input": input}).to_string();

    // Deployed with no grants: no env, no files.
    t.deploy("capabilities").await;
    let row = t.run("CallsActivity", &call("ReadEnv", json!("PATH")), "no-env").await;
    assert_eq!(output(&row)["error_type"], json!("NotGranted"), "{row:?}");
    let row = t
        .run("CallsActivity", &call("ReadFile", json!("/note.txt")), "no-file")
        .await;
    assert_eq!(output(&row)["error_type"], json!("NotGranted"));

    // Granted: PATH and a read-only directory.
    let grants = cairn::sandbox::Grants {
        env: vec!["PATH".into()],
        dirs: vec![cairn::sandbox::DirGrant::parse(&format!("{}:/data", shared.0.display())).unwrap()],
        ..Default::default()
    };
    t.hub.deploy_with(guest("capabilities"), grants).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // the engine caches grants for 1 s
    let row = t.run("CallsActivity", &call("ReadEnv", json!("PATH")), "env").await;
    assert_eq!(output(&row)["ok"], json!(std::env::var("PATH").unwrap()));
    let row = t
        .run("CallsActivity", &call("ReadEnv", json!("HOME")), "other-env")
        .await;
    assert_eq!(
        output(&row)["error_type"],
        json!("NotGranted"),
        "only granted names are visible"
    );
    let row = t
        .run("CallsActivity", &call("ReadFile", json!("/data/note.txt")), "file")
        .await;
    assert_eq!(output(&row)["ok"], json!("granted text"));
    let row = t
        .run(
            "CallsActivity",
            &call("WriteFile", json!({"path": "/data/x.txt", "text": "no"})),
            "ro",
        )
        .await;
    assert_eq!(
        output(&row)["error_type"],
        json!("NotGranted"),
        "read-only grant refuses writes"
    );
    assert!(!shared.0.join("x.txt").exists());

    // Orchestrator components cannot be given capabilities.
    let err = t
        .hub
        .deploy_with(
            guest("features"),
            cairn::sandbox::Grants {
                env: vec!["PATH".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only --allow-http"), "{err}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_longer_than_the_limit_fails_the_instance_deterministically() {
    let limits = Limits {
        max_history_events: 30,
        ..Limits::default()
    };
    let t = TestHub::with_limits(true, EngineConfig::default(), limits, true).await;
    t.deploy("fan-out-fan-in").await;
    let row = t.run("FanOutFanIn", r#"{"count":50}"#, "long").await;
    assert_eq!(row.status, RuntimeStatus::Failed);
    assert_eq!(output(&row)["ErrorType"], json!("LimitExceeded"));
    assert!(output(&row)["Message"].as_str().unwrap().contains("limits.history"));
    let ok = t.run("FanOutFanIn", r#"{"count":5}"#, "short").await;
    assert_completed(&ok);
    t.stop().await;
}

/// A one-route HTTP server on 127.0.0.1 (answers every request with
/// `hello from cairn`); counts the requests that reach it.
fn tiny_http_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = "hello from cairn";
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_reaches_only_granted_hosts() {
    let t = TestHub::new(true).await;
    let (port, hits) = tiny_http_server();
    let http = |hosts: &[String]| cairn::sandbox::Grants {
        http: hosts.to_vec(),
        ..Default::default()
    };

    // Importing wasi:http needs a grant; patterns are validated.
    let err = t.hub.deploy(guest("http-client")).await.unwrap_err().to_string();
    assert!(
        err.contains("wasi:http/outgoing-handler") && err.contains("--allow-http"),
        "{err}"
    );
    let err = t
        .hub
        .deploy_with(guest("http-client"), http(&["https://example.com/x".into()]))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a URL"), "{err}");

    t.hub
        .deploy_with(guest("http-client"), http(&[format!("127.0.0.1:{port}")]))
        .await
        .unwrap();
    t.deploy("features").await;
    let call = |name: &str, url: String| json!({"name": name, "input": url}).to_string();

    let row = t
        .run(
            "CallsActivity",
            &call("HttpGet", format!("http://127.0.0.1:{port}/hi")),
            "granted",
        )
        .await;
    assert_eq!(
        output(&row)["ok"],
        json!({"status": 200, "body": "hello from cairn"}),
        "{row:?}"
    );

    // Same server, other host name: not granted, never sent.
    let row = t
        .run(
            "CallsActivity",
            &call("HttpGet", format!("http://localhost:{port}/")),
            "other-host",
        )
        .await;
    assert_eq!(output(&row)["error_type"], json!("CapabilityDenied"), "{row:?}");
    let message = output(&row)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&format!("localhost:{port}")) && message.contains(&format!("127.0.0.1:{port}")),
        "names the refused and the granted hosts: {message}"
    );

    // The guest swallowing the error does not hide the denial.
    let row = t
        .run(
            "CallsActivity",
            &call("HttpGetIgnoringErrors", format!("http://127.0.0.1:{}/", port ^ 1)),
            "swallowed",
        )
        .await;
    assert_eq!(output(&row)["error_type"], json!("CapabilityDenied"), "{row:?}");

    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the granted request went out"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_instances_are_reused_until_they_trap() {
    let t = TestHub::new(true).await;
    t.deploy("sandbox-abuse").await;
    let row = t.run("WarmWorker", "null", "warm").await;
    assert_completed(&row);
    // Three calls on one warm instance, a panic drops it, a fresh one follows.
    assert_eq!(output(&row), json!([1, 2, 3, "Panic", 1]));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_http_is_sent_once_by_the_host_and_replayed_from_history() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        let (port, hits) = tiny_http_server();
        // Orchestrator components may be granted HTTP hosts (durable HTTP only).
        t.hub
            .deploy_with(
                guest("features"),
                cairn::sandbox::Grants {
                    http: vec![format!("127.0.0.1:{port}")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let request = |uri: String| json!({"method": "POST", "uri": uri, "content": "ping"}).to_string();

        let row = t
            .run("CallsHttp", &request(format!("http://127.0.0.1:{port}/check")), "site")
            .await;
        let response = &output(&row)["ok"];
        assert_eq!(response["statusCode"], json!(200), "{row:?}");
        assert_eq!(response["content"], json!("hello from cairn"));
        assert_eq!(response["headers"]["content-length"], json!("16"));
        // One request, although forced replay re-ran the orchestrator.
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        let history = t.history("site").await;
        assert!(history.iter().any(|(_, e)| matches!(
            e,
            cairn::history::Event::TaskScheduled { name, .. } if name == "BuiltIn::HttpActivity"
        )));

        // Not granted: the task fails, nothing is sent.
        let row = t
            .run("CallsHttp", &request(format!("http://localhost:{port}/")), "denied")
            .await;
        assert_eq!(output(&row)["error_type"], json!("CapabilityDenied"), "{row:?}");
        let row = t.run("CallsHttp", &request("ftp://127.0.0.1/".into()), "bad-uri").await;
        assert_eq!(output(&row)["error_type"], json!("InvalidInput"), "{row:?}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

        // The replay of the finished instance reproduces it without sending.
        let report = cairn::upgrade::replay_finished(&t.hub, "site", None).await.unwrap();
        assert!(report.is_identical(), "{report:?}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        t.stop().await;
    }
}

/// The seed's CheckSiteAvailable (`callHttp` / `call_http`) in JavaScript and
/// Python, generator style.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_http_from_javascript_and_python() {
    let t = TestHub::new(false).await;
    let (port, hits) = tiny_http_server();
    for (lang, component) in [("js", "features"), ("python", "checks")] {
        t.hub
            .deploy_with(
                guest_in(lang, component),
                cairn::sandbox::Grants {
                    http: vec![format!("127.0.0.1:{port}")],
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{lang}: {e}"));
        let url = json!(format!("http://127.0.0.1:{port}/")).to_string();
        let row = t.run("CheckSite", &url, &format!("{lang}-site")).await;
        assert_eq!(
            output(&row),
            json!({"status": 200, "content": "hello from cairn"}),
            "{lang}: {row:?}"
        );
        let url = json!(format!("http://localhost:{port}/")).to_string();
        let row = t.run("CheckSite", &url, &format!("{lang}-denied")).await;
        assert_eq!(
            output(&row),
            json!({"error_type": "CapabilityDenied"}),
            "{lang}: {row:?}"
        );
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    t.stop().await;
}

/// RELIABILITY.md test 17: components over the size cap, or that take
/// longer than the compile-time cap, are refused at deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_slow_to_compile_components_are_refused_at_deploy() {
    let dir = TempDir::new("deploy-caps");
    let small = Limits {
        max_component_bytes: 64 << 10,
        ..Limits::default()
    };
    let hub = cairn::hub::Hub::open_with(&dir.0.join("a.db"), small, None).unwrap();
    let err = hub.deploy(guest("features")).await.unwrap_err().to_string();
    assert!(err.contains("bytes; the limit is 65536 bytes"), "{err}");

    // No compiled cache: the JavaScript component (≈ 1.5 s to compile) must
    // be compiled, which the 1 ms cap does not allow.
    let hasty = Limits {
        max_compile_time: Duration::from_millis(1),
        ..Limits::default()
    };
    let hub = cairn::hub::Hub::open_with(&dir.0.join("b.db"), hasty, None).unwrap();
    let err = hub
        .deploy(guest_in("js", "hello-cities"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.compile_time"), "{err}");
    assert!(hub.store.list_functions().await.unwrap().is_empty(), "nothing stored");
}

/// Compiled components (`*.cwasm`) in a compiled-code cache directory.
fn compiled_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

/// A deploy that is refused leaves nothing behind: no component in the
/// store and no compiled code in `<db>.compiled/`; a refused re-deploy of
/// a deployed component keeps the deployed one's compiled code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_deploy_leaves_no_compiled_code_behind() {
    let dir = TempDir::new("refused-deploy");
    let db = dir.0.join("hub.db");
    let cache = cairn::sandbox::default_cache_dir(&db);
    let hub = cairn::hub::Hub::open(&db).unwrap();
    let err = hub.deploy(guest("forbidden-net")).await.unwrap_err().to_string();
    assert!(err.contains("wasi:sockets/"), "{err}");
    assert_eq!(
        compiled_files(&cache),
        Vec::<String>::new(),
        "refused: nothing compiled is kept"
    );

    let hash = hub.deploy(guest("hello-cities")).await.unwrap().hash;
    let kept = compiled_files(&cache);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].starts_with(&hash), "{kept:?}");
    // Environment grants are refused for an orchestrator component, but the
    // same bytes are deployed: their compiled code stays.
    let grants = cairn::sandbox::Grants {
        env: vec!["HOME".into()],
        ..Default::default()
    };
    let err = hub
        .deploy_with(guest("hello-cities"), grants)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("exports orchestrators"), "{err}");
    assert_eq!(compiled_files(&cache), kept);
    assert_completed(&{
        let engine = cairn::engine::Engine::new(hub.store.clone(), hub.sandbox.clone(), EngineConfig::default());
        let running = engine.run();
        let id = hub.start("HelloCities", None, Some("after"), None).await.unwrap();
        let row = engine.wait_for(id.as_str(), Duration::from_secs(30)).await.unwrap();
        running.shutdown(&engine, Duration::from_secs(2)).await;
        row
    });
}
