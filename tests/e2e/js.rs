//! JavaScript guests (guests/js, built by scripts/build-js-guests.sh into
//! target/guests/js): the same examples and outputs as the Rust ones, the
//! Durable Functions sample ported with two changed lines, determinism of
//! the JS runtime under forced replay, typed failures across languages.

use serde_json::json;

use crate::common::*;
use cairn::store::RuntimeStatus;

fn js_guest(name: &str) -> Vec<u8> {
    let path = repo_root().join("target/guests/js").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `scripts/build-js-guests.sh` first", path.display()))
}

async fn deploy_js(t: &TestHub, name: &str) -> String {
    t.hub
        .deploy(js_guest(name))
        .await
        .unwrap_or_else(|e| panic!("deploy {name}: {e}"))
        .hash
}

/// Lines only in `a` and lines only in `b` (a longest-common-subsequence diff).
fn line_diff<'a>(a: &[&'a str], b: &[&'a str]) -> (Vec<&'a str>, Vec<&'a str>) {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut removed, mut added) = (0, 0, Vec::new(), Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push(b[j]);
            j += 1;
        } else {
            removed.push(a[i]);
            i += 1;
        }
    }
    (removed, added)
}

#[test]
fn js_hello_cities_is_the_durable_functions_sample_with_two_lines_changed() {
    let dir = repo_root().join("guests/js/examples/hello-cities");
    let seed = std::fs::read_to_string(dir.join("HelloCities.seed.js")).unwrap();
    let ours = std::fs::read_to_string(dir.join("HelloCities.js")).unwrap();
    // The copy is the sample as published in the seed document.
    let doc = std::fs::read_to_string(repo_root().join("../shared/seeds/002_3cef076dba0df752.txt"));
    if let Ok(doc) = doc {
        assert!(
            doc.contains(seed.trim_end()),
            "HelloCities.seed.js is the published sample"
        );
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (seed.lines().collect(), ours.lines().collect());
    let (removed, added) = line_diff(&a, &b);
    assert!(
        removed.len() <= 2 && added.len() <= 2,
        "removed {removed:?}, added {added:?}"
    );
    for line in &removed {
        assert!(
            line.contains("require(") || line.contains("module.exports"),
            "only import/registration changed: {line}"
        );
    }
    for line in &added {
        assert!(
            line.starts_with("import ") || line.starts_with("export default "),
            "{line}"
        );
    }
    assert!(a.len() >= 10 && a.iter().filter(|l| l.contains("yield context.df.callActivity")).count() == 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_orchestrator_calls_rust_javascript_and_python_activities() {
    let python = repo_root().join("target/guests/python/error-handling.wasm");
    let python = std::fs::read(&python).ok();
    if python.is_none() {
        eprintln!("target/guests/python/error-handling.wasm is missing: checking Rust and JavaScript only");
    }
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_js(&t, "cross-language").await;
        t.hub.deploy(guest("hello-cities")).await.unwrap();
        t.hub.deploy(guest("retry")).await.unwrap();
        let mut expected = json!({
            "rust": "Hello Tokyo!",
            "javascript": "HELLO TOKYO!",
            "rust_error": {"error_type": "TransientError", "message": "attempt 1 failed (fails 1 times)"},
        });
        let input = if let Some(bytes) = &python {
            t.hub.deploy(bytes.clone()).await.unwrap();
            expected["python"] = json!("notified: HELLO TOKYO!");
            expected["python_error"] =
                json!({"error_type": "PaymentDeclined", "message": "card declined for amount 100"});
            r#"{"python":true}"#
        } else {
            "null"
        };
        let row = t.run("CrossLanguage", input, "cross").await;
        assert_completed(&row);
        assert_eq!(output(&row), expected, "hot={hot}");
        assert_history_invariants(&t.history("cross").await);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_date_and_random_are_replay_stable_in_orchestrators() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_js(&t, "features").await;
        let row = t.run("ClockRandomProbe", "null", "probe").await;
        assert_completed(&row);
        let out = output(&row);
        // In forced-replay mode `first` was recomputed by a replay of the
        // first episode; `recorded` is what the live run saw (from history).
        assert_eq!(out["first"], out["recorded"], "hot={hot}");
        let starts: Vec<u64> = t
            .history("probe")
            .await
            .iter()
            .filter(|(_, e)| e.type_name() == "OrchestratorStarted")
            .map(|(ts, _)| *ts)
            .collect();
        let first = &out["first"];
        assert_eq!(first["date_now"], json!(starts[0]), "Date.now() is the episode's time");
        assert_eq!(first["new_date"], json!(starts[0]));
        assert_eq!(first["current_utc"], json!(starts[0]));
        assert_eq!(first["date_string"], json!("string"));
        assert_eq!(out["date_after"], json!(starts[1]));
        let randoms = first["randoms"].as_array().unwrap();
        assert!(
            randoms.windows(2).all(|w| w[0] != w[1]),
            "random varies within a run: {randoms:?}"
        );
        assert!(randoms.iter().all(|r| (0.0..1.0).contains(&r.as_f64().unwrap())));
        // Another instance draws another sequence (seeded per instance).
        let other = output(&t.run("ClockRandomProbe", "null", "probe-2").await);
        assert_ne!(other["first"]["randoms"], first["randoms"]);
        assert_ne!(other["first"]["guid"], first["guid"]);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_typed_failures_cross_into_orchestrators_in_both_styles() {
    let cases = json!([
        {"kind": "TypeError", "message": "bad"},
        {"kind": "RangeError", "message": "too far"},
        {"kind": "Custom", "message": "my own"},
        {"kind": "Durable", "message": "declined"},
        {"kind": "String", "message": "just text"},
        {"kind": "Record", "message": "as a record"},
    ]);
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_js(&t, "features").await;
        let row = t.run("CatchTyped", &cases.to_string(), "plain").await;
        assert_completed(&row);
        let seen = output(&row);
        let types: Vec<&str> = seen
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["error_type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["TypeError", "RangeError", "Custom", "Declined", "Error", "RecordError"]
        );
        let messages: Vec<&str> = seen
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["message"].as_str().unwrap())
            .collect();
        assert_eq!(
            messages,
            ["bad", "too far", "my own", "declined", "just text", "as a record"]
        );
        for s in seen.as_array().unwrap() {
            assert_eq!(s["durable"], json!(true), "{s}");
            assert_eq!(s["is_error"], json!(true), "{s}");
            assert_eq!(s["name"], s["error_type"], "{s}");
        }
        assert_eq!(seen[3]["details"], json!({"code": 42}), "details cross as JSON");
        assert!(
            seen[0]["details"]["stack"].is_string(),
            "an Error's stack travels in details"
        );

        let row = t.run("CatchTypedGenerator", "null", "generator").await;
        assert_completed(&row);
        let out = output(&row);
        assert_eq!(out["single"]["error_type"], json!("TypeError"));
        assert_eq!(out["single"]["message"], json!("bad"));
        assert_eq!(out["all"]["error_type"], json!("RangeError"));
        assert_eq!(out["all"]["message"], json!("second"));
        assert_eq!(out["any"]["winner_is_failing"], json!(true));
        assert_eq!(out["any"]["faulted"], json!(true));
        assert_eq!(out["any"]["exception"]["error_type"], json!("Custom"));
        assert_eq!(out["after"], json!("still running"));

        for (name, id) in [("Uncaught", "uncaught"), ("UncaughtGenerator", "uncaught-gen")] {
            let row = t.run(name, r#"{"kind":"TypeError","message":"bad"}"#, id).await;
            assert_eq!(row.status, RuntimeStatus::Failed, "{name}");
            assert_eq!(output(&row)["ErrorType"], json!("TypeError"), "{name}");
            assert_eq!(output(&row)["Message"], json!("bad"), "{name}");
        }
        let row = t.run("ThrowInOrchestrator", "null", "throws").await;
        assert_eq!(row.status, RuntimeStatus::Failed);
        assert_eq!(output(&row)["ErrorType"], json!("RangeError"));
        assert_eq!(output(&row)["Message"], json!("out of range"));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_activities_fail_loudly_on_clock_reads_and_promises() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_js(&t, "features").await;
        let out = output(&t.run("ActivityClock", "null", "clock").await);
        assert_eq!(out["error_type"], json!("Error"), "{out}");
        assert!(out["message"].as_str().unwrap().contains("currentUtcDateTime"), "{out}");
        let out = output(&t.run("PromiseActivity", "null", "promise").await);
        assert_eq!(out["error_type"], json!("InvalidOutput"), "{out}");
        assert!(out["message"].as_str().unwrap().contains("Promise"), "{out}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_context_api_exposes_ids_input_guids_and_sub_orchestrations() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_js(&t, "features").await;
        let row = t.run("ContextApi", r#"{"a":[1,2]}"#, "ctx-api").await;
        assert_completed(&row);
        let out = output(&row);
        assert_eq!(out["input"], json!({"a": [1, 2]}));
        assert_eq!(out["df_input"], json!({"a": [1, 2]}));
        assert_eq!(out["instance_id"], json!("ctx-api"));
        assert_eq!(out["function_name"], json!("ContextApi"));
        let guid = out["guid"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(guid).is_ok(), "{guid}");
        assert_ne!(out["guid"], out["guid_again"]);
        assert_eq!(
            out["child"],
            json!({"input": {"from": "ctx-api"}, "instance_id": "ctx-api-child"})
        );
        assert_eq!(row.custom_status.as_deref(), Some(r#"{"step":"child"}"#));
        // Durable Functions v4 registration (`app.orchestration`, `app.activity`).
        let row = t.run("Pm4Style", r#""Cairo""#, "pm4").await;
        assert_eq!(output(&row), json!("Hello Cairo from pm4Hello!"));
        t.stop().await;
    }
}

/// Lines the host logged for guests (target `cairn::guest`), captured by a
/// process-wide subscriber installed on first use. Other modules of this
/// binary that need guest logs should use this one (a process has one
/// global subscriber).
pub(crate) fn guest_log() -> &'static std::sync::Mutex<Vec<u8>> {
    use std::sync::{Mutex, OnceLock};
    static LOG: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct Sink(&'static Mutex<Vec<u8>>);
        impl std::io::Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("cairn::guest=trace"))
            .with_ansi(false)
            .with_writer(move || Sink(buffer))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("another global tracing subscriber is installed in the e2e binary: use js::guest_log()");
        buffer
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_console_goes_to_the_replay_safe_log() {
    let log = guest_log();
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        deploy_js(&t, "features").await;
        let id = format!("console-{hot}");
        let row = t.run("ConsoleLog", "null", &id).await;
        assert_completed(&row);
        assert_eq!(output(&row), json!("logged"));
        t.stop().await;
        let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&format!("\"{id}\""))).collect();
        let count = |marker: &str| lines.iter().filter(|l| l.contains(marker)).count();
        // Written in the first episode, replayed (and suppressed) in the second.
        assert_eq!(
            count(&format!("js-orchestrator-marker {id} {{\"n\":1}}")),
            1,
            "hot={hot}: {lines:#?}"
        );
        assert_eq!(count(&format!("js-activity-marker {id}")), 1, "{lines:#?}");
        assert_eq!(count("js-orchestrator-after logged"), 1, "{lines:#?}");
        assert_eq!(count("js-context-log-marker"), 1, "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("WARN") && l.contains("js-orchestrator-after")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("ERROR") && l.contains("js-context-log-marker")),
            "{lines:#?}"
        );
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Footprint numbers for BENCHMARKS.md (guests/js/CHOICE.md explains them):
/// `cargo test --release --test e2e js_measure -- --ignored --nocapture`.
/// `CAIRN_MEASURE_DIR` (default target/guests/js) picks the components: it
/// needs human-interaction.wasm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a test: run it by name"]
async fn js_measure_compile_load_and_parked_memory() {
    let dir = std::env::var("CAIRN_MEASURE_DIR").map_or_else(|_| repo_root().join("target/guests/js"), Into::into);
    let n: usize = std::env::var("CAIRN_MEASURE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let bytes = std::fs::read(dir.join("human-interaction.wasm")).unwrap();
    let size = bytes.len();
    // Cold compile into an empty cache, then a load from that cache.
    let cache = TempDir::new("measure-cache");
    let db = TempDir::new("measure-db");
    let hub = cairn::hub::Hub::open_with(
        &db.0.join("a.db"),
        cairn::sandbox::Limits::default(),
        Some(cache.0.clone()),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    hub.deploy(bytes.clone()).await.unwrap();
    let cold = t0.elapsed();
    drop(hub);
    let hub = cairn::hub::Hub::open_with(
        &db.0.join("b.db"),
        cairn::sandbox::Limits::default(),
        Some(cache.0.clone()),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    hub.deploy(bytes.clone()).await.unwrap();
    let cached = t0.elapsed();
    drop(hub);

    let t = TestHub::new(true).await;
    t.hub.deploy(bytes).await.unwrap();
    let input = r#"{"timeout_ms":600000}"#;
    t.start("ApprovalWorkflow", input, "warm").await;
    t.wait_custom_status("warm", r#"{"stage":"waiting-for-approval"}"#)
        .await;
    let before = rss_kib();
    let t0 = std::time::Instant::now();
    for i in 0..n {
        t.start("ApprovalWorkflow", input, &format!("p{i}")).await;
    }
    for i in 0..n {
        t.wait_custom_status(&format!("p{i}"), r#"{"stage":"waiting-for-approval"}"#)
            .await;
    }
    let parked = t0.elapsed();
    let after = rss_kib();
    let t0 = std::time::Instant::now();
    for i in 0..n {
        t.hub
            .raise_event(&format!("p{i}"), "ApprovalEvent", Some("true"))
            .await
            .unwrap();
    }
    for i in 0..n {
        assert_eq!(output(&t.wait(&format!("p{i}")).await), json!("approved"));
    }
    let resumed = t0.elapsed();
    println!(
        "component: {} ({size} bytes)",
        dir.join("human-interaction.wasm").display()
    );
    println!("cold compile + deploy: {cold:?}; deploy from the compiled cache: {cached:?}");
    println!(
        "{n} parked ApprovalWorkflow instances: RSS +{} KiB ({:.0} KiB each); started and parked in {parked:?}",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / n as f64
    );
    let metrics = &t.engine.metrics;
    println!(
        "{n} resumed to completion (2 more episodes, 2 activities each) in {resumed:?}; hot resumes {}, replays {}, evictions {}",
        metrics.hot_resumes.load(std::sync::atomic::Ordering::Relaxed),
        metrics.replays.load(std::sync::atomic::Ordering::Relaxed),
        metrics.evictions.load(std::sync::atomic::Ordering::Relaxed),
    );
    t.stop().await;
}
