//! Activity failures, retries and lease redelivery; guest failures.

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use cairn::engine::EngineConfig;
use cairn::store::RuntimeStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_failures_are_typed() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("failing").await;

        let row = t.run("Panics", "null", "panics").await;
        assert_eq!(row.status, RuntimeStatus::Failed);
        let out = output(&row);
        assert_eq!(out["ErrorType"], json!("Panic"), "{out}");
        assert!(
            out["Message"].as_str().unwrap().contains("boom from the guest"),
            "{out}"
        );

        let row = t.run("ReturnsError", "null", "returns").await;
        assert_eq!(row.status, RuntimeStatus::Failed);
        assert_eq!(output(&row)["ErrorType"], json!("MyError"));
        assert_eq!(output(&row)["Message"], json!("custom failure"));

        let row = t.run("CatchesActivityError", "null", "catches").await;
        assert_completed(&row);
        assert_eq!(
            output(&row)["caught_type"],
            json!("ValidationError"),
            "the activity's own type reaches the orchestrator"
        );
        assert_eq!(output(&row)["caught_message"], json!("bad input"));
        let h = t.history("catches").await;
        assert!(h.iter().any(|(_, e)| e.type_name() == "TaskFailed"));

        let row = t.run("CallsMissingActivity", "null", "missing").await;
        let text = output(&row).to_string();
        assert!(text.contains("NotFound") && text.contains("NoSuchActivity"), "{text}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_activity_is_retried_by_policy_with_durable_delays() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("failing").await;
        let row = t
            .run(
                "RetriesActivity",
                r#"{"succeed_on_attempt":3,"max_attempts":5,"first_interval_ms":20}"#,
                "retry",
            )
            .await;
        assert_completed(&row);
        let out = output(&row);
        assert_eq!(out["attempt"], json!(3), "{out}");
        let h = t.history("retry").await;
        let retrying: Vec<_> = h.iter().filter(|(_, e)| e.type_name() == "TaskRetrying").collect();
        assert_eq!(retrying.len(), 2, "two failed attempts are visible in history");
        assert_eq!(h.iter().filter(|(_, e)| e.type_name() == "TaskScheduled").count(), 1);
        // The idempotency key is stable across attempts.
        let exec = t.hub.store.get_instance("retry").await.unwrap().unwrap().execution_id;
        assert_eq!(out["idempotency_key"], json!(format!("retry:{exec}:0")));

        let row = t
            .run(
                "RetriesActivity",
                r#"{"succeed_on_attempt":9,"max_attempts":2,"first_interval_ms":5}"#,
                "gives-up",
            )
            .await;
        assert_eq!(row.status, RuntimeStatus::Failed, "policy exhausted: {row:?}");
        assert!(output(&row).to_string().contains("Flaky"));
        t.stop().await;
    }
}

/// Engine A leases a work item but never runs it (no activity slots), then
/// dies without releasing its lease; engine B (with `max_deliveries`)
/// picks it up once the lease expired. Returns the finished instance.
async fn lease_expires_then_redelivered(hot: bool, max_deliveries: u32) -> cairn::store::InstanceRow {
    let stuck = EngineConfig {
        activity_concurrency: 0,
        lease_ms: 300,
        ..EngineConfig::default()
    };
    let mut a = TestHub::with(hot, stuck, true).await;
    a.deploy("failing").await;
    a.start(
        "RetriesActivity",
        r#"{"succeed_on_attempt":1,"max_attempts":1}"#,
        "lease",
    )
    .await;
    let store = a.hub.store.clone();
    // Wait until the work item exists and is leased.
    for _ in 0..200 {
        if store.queue_depths().await.unwrap().1 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.queue_depths().await.unwrap().1, 1);
    if let Some(r) = a.running.take() {
        drop(r); // no graceful shutdown: the lease stays
    }
    let b = cairn::engine::Engine::new(
        store.clone(),
        a.hub.sandbox.clone(),
        EngineConfig {
            hot_cache: hot,
            poll_interval: Duration::from_millis(10),
            max_deliveries,
            ..EngineConfig::default()
        },
    );
    let running = b.run();
    let row = b.wait_for("lease", Duration::from_secs(30)).await.unwrap();
    running.shutdown(&b, Duration::from_secs(2)).await;
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_is_redelivered_with_the_next_attempt() {
    for hot in [true, false] {
        let row = lease_expires_then_redelivered(hot, 10).await;
        assert_completed(&row);
        assert_eq!(output(&row)["attempt"], json!(2), "redelivered with attempt + 1");
    }
}

/// RELIABILITY.md test 27: a work item delivered more often than
/// `max_deliveries` stops as a visible `PoisonMessage` failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_item_delivered_too_often_fails_as_poison() {
    let row = lease_expires_then_redelivered(true, 1).await;
    let out = output(&row);
    let text = out.to_string();
    assert!(
        text.contains("PoisonMessage") && text.contains("max_deliveries"),
        "{row:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_reruns_the_failed_activity_from_the_last_good_state() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("failing").await;
        let row = t
            .run(
                "RetriesActivity",
                r#"{"succeed_on_attempt":2,"max_attempts":1}"#,
                "rewind",
            )
            .await;
        assert_eq!(row.status, RuntimeStatus::Failed);
        // Only Failed instances can be rewound.
        t.deploy("hello-cities").await;
        assert_completed(&t.run("HelloCities", "null", "fine").await);
        let err = t.hub.rewind("fine", None).await.unwrap_err();
        assert!(err.to_string().contains("only Failed"), "{err}");
        let err = t.hub.rewind("nobody", None).await.unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");

        t.hub.rewind("rewind", Some("fixed the card")).await.unwrap();
        let row = t.wait("rewind").await;
        assert_completed(&row);
        assert_eq!(
            output(&row)["attempt"],
            json!(2),
            "the rewound task runs as the next attempt"
        );
        let h = t.history("rewind").await;
        let types: Vec<_> = h.iter().map(|(_, e)| e.type_name()).collect();
        assert!(types.contains(&"ExecutionRewound"), "{types:?}");
        assert!(!types.contains(&"TaskFailed"), "{types:?}");
        assert_history_invariants(&h);
        t.stop().await;
    }
}

/// A Failed instance can be rewound on its version, so pruning unused
/// versions keeps that version (it used to delete it: `prune-versions` and
/// `remove_component` had two different "in use" rules).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_the_version_a_failed_instance_needs_for_rewind() {
    let t = TestHub::new(true).await;
    let v1 = t.deploy("failing").await;
    let row = t
        .run(
            "RetriesActivity",
            r#"{"succeed_on_attempt":2,"max_attempts":1}"#,
            "needs-v1",
        )
        .await;
    assert_eq!(row.status, RuntimeStatus::Failed);
    assert_eq!(row.version, v1);
    // A newer build of the same functions makes v1 no function's newest.
    let v2 = t.hub.deploy(rebuilt(&guest("failing"), "v2")).await.unwrap().hash;
    assert_ne!(v1, v2);
    let pruned = t.hub.store.prune_unused_versions().await.unwrap();
    assert!(
        !pruned.contains(&v1),
        "pruned the version a Failed instance needs: {pruned:?}"
    );
    t.hub.store.component_bytes(&v1).await.unwrap();
    t.hub.rewind("needs-v1", None).await.unwrap();
    let row = t.wait("needs-v1").await;
    assert_completed(&row);
    assert_eq!(row.version, v1);
    // Once nothing that may run again uses it, v1 goes.
    t.hub.purge_instance("needs-v1").await.unwrap();
    let pruned = t.hub.store.prune_unused_versions().await.unwrap();
    assert_eq!(pruned, vec![v1]);
    t.stop().await;
}
