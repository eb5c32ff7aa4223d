//! Non-determinism detection and version pinning.

use serde_json::json;

use crate::common::*;
use cairn::store::RuntimeStatus;
use cairn::upgrade::{UpgradeOptions, Verdict};

/// `upgrade-check --apply`.
const APPLY: UpgradeOptions = UpgradeOptions {
    apply: true,
    allow_input_changes: false,
};

/// A hub whose activities never run: instances stay parked at task 0.
async fn stuck_hub(hot: bool) -> TestHub {
    let stuck = cairn::engine::EngineConfig {
        activity_concurrency: 0,
        ..Default::default()
    };
    TestHub::with(hot, stuck, true).await
}

/// A new engine (nothing hot) on `store`, running, polling every 10 ms.
fn fresh_engine(
    store: &cairn::store::Store,
    sandbox: &std::sync::Arc<cairn::sandbox::Sandbox>,
    hot: bool,
) -> (std::sync::Arc<cairn::engine::Engine>, cairn::engine::Running) {
    let engine = cairn::engine::Engine::new(
        store.clone(),
        sandbox.clone(),
        cairn::engine::EngineConfig {
            hot_cache: hot,
            poll_interval: std::time::Duration::from_millis(10),
            ..Default::default()
        },
    );
    let running = engine.run();
    (engine, running)
}

/// Rewrites a completed HelloCities instance so that it is mid-flight
/// (history up to the second TaskScheduled, a pending result in its inbox)
/// and pinned to `version`: its next episode replays the recorded history
/// against that component.
async fn rewind_to_mid_flight(store: &cairn::store::Store, id: &str, version: &str) {
    let mut row = store.get_instance(id).await.unwrap().unwrap();
    let mut history = store.get_history(id).await.unwrap();
    history.truncate(8);
    row.status = RuntimeStatus::Running;
    row.version = version.to_owned();
    row.output = None;
    store.import_instance(row, history).await.unwrap();
    let result = cairn::history::Event::TaskCompleted {
        task_id: 1,
        result: "\"Hello Seattle!\"".into(),
    };
    store.send_message(id, result, 0).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_history_against_a_different_component_fails_with_non_determinism() {
    for hot in [true, false] {
        let t = TestHub::with(hot, Default::default(), false).await;
        let v1 = t.deploy("hello-cities").await;
        let v2 = t.deploy("hello-cities-v2").await;
        assert_ne!(v1, v2);
        // Record a v1 history, then replay it against v2.
        t.hub.start("HelloCities", None, Some("nd"), Some(&v1)).await.unwrap();
        let mut t = t;
        t.running = Some(t.engine.run());
        assert_completed(&t.wait("nd").await);
        t.halt().await;

        rewind_to_mid_flight(&t.hub.store, "nd", &v2).await;
        // A fresh engine on the same file (cold: nothing hot).
        let hub = cairn::hub::Hub::open_with(&t.db(), Default::default(), Some(compiled_cache())).unwrap();
        let (engine, running) = fresh_engine(&hub.store, &hub.sandbox, hot);
        let row = engine.wait_for("nd", std::time::Duration::from_secs(30)).await.unwrap();
        running.shutdown(&engine, std::time::Duration::from_secs(2)).await;
        assert_eq!(row.status, RuntimeStatus::Failed, "{row:?}");
        let out = output(&row);
        assert_eq!(out["ErrorType"], json!("NonDeterminism"));
        let msg = out["Message"].as_str().unwrap();
        for needle in ["task 0", "\"SayHello\"", "\"SayHi\""] {
            assert!(msg.contains(needle), "message names the position and both sides: {msg}");
        }
        let h = hub.store.get_history("nd").await.unwrap();
        assert_eq!(
            h.iter().filter(|(_, e)| e.type_name() == "ExecutionCompleted").count(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_keep_their_version_after_a_new_deploy() {
    for hot in [true, false] {
        let mut t = TestHub::with(hot, Default::default(), false).await;
        let v1 = t.deploy("hello-cities").await;
        // Started on v1 (newest at the time)…
        let old = t.start("HelloCities", "null", "old").await;
        // …then v2 of the same name is deployed.
        let v2 = t.deploy("hello-cities-v2").await;
        let new = t.start("HelloCities", "null", "new").await;
        t.running = Some(t.engine.run());
        let (old_row, new_row) = (t.wait(&old).await, t.wait(&new).await);
        assert_eq!(old_row.version, v1);
        assert_eq!(new_row.version, v2);
        assert_eq!(
            output(&old_row),
            json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
            "hot={hot}"
        );
        assert_eq!(output(&new_row), json!(["Hi Tokyo!", "Hi Seattle!", "Hi London!"]));
        // An explicit version still starts the old code.
        let pinned = t
            .hub
            .start("HelloCities", None, Some("pinned"), Some(&v1))
            .await
            .unwrap();
        assert_eq!(output(&t.wait(pinned.as_str()).await)[0], json!("Hello Tokyo!"));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_check_reports_divergence_and_moves_compatible_instances() {
    for hot in [true, false] {
        let mut t = stuck_hub(hot).await;
        let v1 = t.deploy("hello-cities").await;
        let ids: Vec<String> = (0..3).map(|i| format!("up-{i}")).collect();
        for id in &ids {
            t.start("HelloCities", "null", id).await;
        }
        for id in &ids {
            for _ in 0..500 {
                if t.hub.store.get_instance(id).await.unwrap().unwrap().status == RuntimeStatus::Running {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }

        let report = cairn::upgrade::check(&t.hub, "HelloCities", guest("hello-cities-v2"), APPLY)
            .await
            .unwrap();
        assert_eq!(report.instances.len(), 3);
        assert_eq!(report.moved, 0, "nothing incompatible moves");
        for i in &report.instances {
            match &i.verdict {
                cairn::upgrade::Verdict::Diverges { error_type, message } => {
                    assert_eq!(error_type, "NonDeterminism");
                    assert!(
                        message.contains("\"SayHello\"") && message.contains("\"SayHi\""),
                        "{message}"
                    );
                }
                other => panic!("v2 must diverge: {other:?}"),
            }
        }

        let report = cairn::upgrade::check(&t.hub, "HelloCities", guest("hello-cities-v3"), APPLY)
            .await
            .unwrap();
        assert!(
            report
                .instances
                .iter()
                .all(|i| i.verdict == cairn::upgrade::Verdict::ReplaysCleanly)
        );
        assert_eq!(report.moved, 3);
        assert!(report.instances.iter().all(|i| i.from_version == v1));

        // A normal engine finishes them on the new version.
        t.halt().await;
        let (engine, running) = fresh_engine(&t.hub.store, &t.hub.sandbox, hot);
        for id in &ids {
            let row = engine.wait_for(id, std::time::Duration::from_secs(30)).await.unwrap();
            assert_eq!(row.version, report.candidate);
            assert_eq!(output(&row), json!(["HELLO TOKYO!", "HELLO SEATTLE!", "HELLO LONDON!"]));
        }
        running.shutdown(&engine, std::time::Duration::from_secs(2)).await;
        // v1 is unused now: pruning removes it (v2 stays: it is the newest SayHi).
        let pruned = t.hub.store.prune_unused_versions().await.unwrap();
        assert!(pruned.contains(&v1), "{pruned:?}");
        t.stop().await;
    }
}

/// Waits until `id`'s orchestrator has consumed `n` activity results (so
/// it is parked at the await that follows them).
async fn wait_for_completed_tasks(t: &TestHub, id: &str, n: usize) {
    for _ in 0..1000 {
        if t.types(id).await.iter().filter(|e| **e == "TaskCompleted").count() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{id} never completed {n} tasks: {:?}", t.types(id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_check_with_reordered_activities_moves_only_the_instances_before_the_change() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        let v1 = t.deploy("pipeline-v1").await;
        let (early, late) = (["early-0", "early-1"], ["late-0", "late-1"]);
        for id in early.iter().chain(&late) {
            t.start("Pipeline", "null", id).await;
        }
        for id in early.iter().chain(&late) {
            wait_for_completed_tasks(&t, id, 1).await; // StepA done, waiting for `go`
        }
        for id in late {
            t.hub.raise_event(id, "go", None).await.unwrap();
            wait_for_completed_tasks(&t, id, 2).await; // StepB done, waiting for `go2`
        }

        // v2 calls StepC before StepB: only instances that have not called
        // StepB yet replay cleanly.
        let report = cairn::upgrade::check(&t.hub, "Pipeline", guest("pipeline-v2"), APPLY)
            .await
            .unwrap();
        assert_eq!(report.instances.len(), 4, "{report:?}");
        assert_eq!(report.moved, 2, "{report:?}");
        for i in &report.instances {
            assert_eq!(i.from_version, v1);
            if i.instance_id.starts_with("early") {
                assert_eq!(i.verdict, cairn::upgrade::Verdict::ReplaysCleanly, "{i:?}");
            } else {
                match &i.verdict {
                    cairn::upgrade::Verdict::Diverges { error_type, message } => {
                        assert_eq!(error_type, "NonDeterminism", "{message}");
                        assert!(message.contains("StepB") && message.contains("StepC"), "{message}");
                    }
                    other => panic!("{} must diverge: {other:?}", i.instance_id),
                }
            }
        }

        // Moved instances finish on v2 (C before B); the others on v1.
        for id in early {
            t.hub.raise_event(id, "go", None).await.unwrap();
            wait_for_completed_tasks(&t, id, 2).await;
            t.hub.raise_event(id, "go2", None).await.unwrap();
            let row = t.wait(id).await;
            assert_eq!(output(&row), json!(["A", "C", "B"]), "{row:?}");
            assert_eq!(row.version, report.candidate);
        }
        for id in late {
            t.hub.raise_event(id, "go2", None).await.unwrap();
            let row = t.wait(id).await;
            assert_eq!(output(&row), json!(["A", "B", "C"]), "{row:?}");
            assert_eq!(row.version, v1);
        }
        t.stop().await;
    }
}

/// Waits until `id` is Running (its first episode is committed).
async fn wait_running(t: &TestHub, id: &str) {
    for _ in 0..1000 {
        if t.hub.store.get_instance(id).await.unwrap().unwrap().status == RuntimeStatus::Running {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{id} never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reports_a_changed_activity_input_as_a_divergence() {
    let t = TestHub::new(true).await;
    t.deploy("hello-cities").await;
    let row = t.run("HelloCities", "null", "cities").await;
    assert_completed(&row);
    // Its own version reproduces it exactly.
    let report = cairn::upgrade::replay_finished(&t.hub, "cities", None).await.unwrap();
    assert!(report.is_identical(), "{report:?}");
    // Same activity names, cities reordered: not what the recorded run did.
    let report = cairn::upgrade::replay_finished(&t.hub, "cities", Some(guest("hello-cities-reordered")))
        .await
        .unwrap();
    assert!(!report.is_identical(), "{report:?}");
    match &report.verdict {
        Verdict::Diverges { error_type, message } => {
            assert_eq!(error_type, "InputChanged", "{message}");
            for needle in ["input changed", "task 0", "\"SayHello\"", "\"Tokyo\"", "\"Seattle\""] {
                assert!(
                    message.contains(needle),
                    "names the task, the action and both inputs: {message}"
                );
            }
        }
        other => panic!("a changed input is a divergence: {other:?}"),
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_check_reports_changed_inputs_and_moves_them_only_when_allowed() {
    for hot in [true, false] {
        // (Parked at SayHello "Tokyo".)
        let mut t = stuck_hub(hot).await;
        let v1 = t.deploy("hello-cities").await;
        let ids = ["in-0", "in-1"];
        for id in ids {
            t.start("HelloCities", "null", id).await;
        }
        for id in ids {
            wait_running(&t, id).await;
        }
        let reordered = guest("hello-cities-reordered");

        let report = cairn::upgrade::check(&t.hub, "HelloCities", reordered.clone(), APPLY)
            .await
            .unwrap();
        assert_eq!(report.instances.len(), 2, "{report:?}");
        assert_eq!(report.moved, 0, "changed inputs are not moved by default: {report:?}");
        for i in &report.instances {
            match &i.verdict {
                Verdict::InputChanged { message } => {
                    for needle in ["task 0", "\"SayHello\"", "\"Tokyo\"", "\"Seattle\""] {
                        assert!(message.contains(needle), "{message}");
                    }
                }
                other => panic!("{}: the input changed: {other:?}", i.instance_id),
            }
        }
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["instances"][0]["verdict"], json!("input-changed"), "{json}");
        for id in ids {
            assert_eq!(t.hub.store.get_instance(id).await.unwrap().unwrap().version, v1);
        }

        let allow = UpgradeOptions {
            apply: true,
            allow_input_changes: true,
        };
        let report = cairn::upgrade::check(&t.hub, "HelloCities", reordered, allow)
            .await
            .unwrap();
        assert_eq!(report.moved, 2, "{report:?}");

        // Moved, they carry on with the result recorded for the old input
        // (task 0 ran SayHello "Tokyo"), which is what the report warned of.
        t.halt().await;
        let (engine, running) = fresh_engine(&t.hub.store, &t.hub.sandbox, hot);
        for id in ids {
            let row = engine.wait_for(id, std::time::Duration::from_secs(30)).await.unwrap();
            assert_eq!(row.version, report.candidate);
            assert_eq!(
                output(&row),
                json!(["Hello Tokyo!", "Hello Tokyo!", "Hello London!"]),
                "hot={hot}"
            );
        }
        running.shutdown(&engine, std::time::Duration::from_secs(2)).await;
        t.stop().await;
    }
}
