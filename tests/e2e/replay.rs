//! Non-determinism detection and version pinning.

use serde_json::json;

use crate::common::*;
use cairn::store::RuntimeStatus;

/// Rewrites a completed HelloCities instance so that it is mid-flight
/// (history up to the second TaskScheduled, a pending result in its inbox)
/// and pinned to `version`: its next episode replays the recorded history
/// against that component.
fn rewind_to_mid_flight(db: &std::path::Path, id: &str, version: &str) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.execute("DELETE FROM history WHERE instance_id = ?1 AND seq >= 8", [id])
        .unwrap();
    c.execute(
        "UPDATE instances SET status = 'Running', history_len = 8, version = ?2, output = NULL WHERE instance_id = ?1",
        [id, version],
    )
    .unwrap();
    let exec: String = c
        .query_row("SELECT execution_id FROM instances WHERE instance_id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    c.execute(
        "INSERT INTO inbox (instance_id, execution_id, kind, visible_at, created_at, data)
         VALUES (?1, ?2, 'TaskCompleted', 0, 0, '{\"EventType\":\"TaskCompleted\",\"TaskScheduledId\":1,\"Result\":\"\\\"Hello Seattle!\\\"\"}')",
        [id, &exec],
    )
    .unwrap();
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

        rewind_to_mid_flight(&t.db(), "nd", &v2);
        // A fresh engine on the same file (cold: nothing hot).
        let hub = cairn::hub::Hub::open_with(&t.db(), Default::default(), Some(compiled_cache())).unwrap();
        let engine = cairn::engine::Engine::new(
            hub.store.clone(),
            hub.sandbox.clone(),
            cairn::engine::EngineConfig {
                hot_cache: hot,
                poll_interval: std::time::Duration::from_millis(10),
                ..Default::default()
            },
        );
        let running = engine.run();
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
