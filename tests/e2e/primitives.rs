//! Timers, external events, sub-orchestrations, continue-as-new,
//! terminate, suspend and resume.

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use cairn::history::Event;
use cairn::hub::HubError;
use cairn::store::{RuntimeStatus, StoreError};

async fn wait_status(t: &TestHub, id: &str, want: RuntimeStatus) {
    for _ in 0..500 {
        if t.hub
            .store
            .get_instance(id)
            .await
            .unwrap()
            .is_some_and(|r| r.status == want)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never became {want}");
}

/// Waits until the instance has had `n` episodes (it is blocked waiting).
async fn wait_idle(t: &TestHub, id: &str) {
    wait_status(t, id, RuntimeStatus::Running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_timer_fires_and_advances_deterministic_time() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("features").await;
        let row = t.run("Sleeps", r#"{"ms":100}"#, "sleep").await;
        assert_completed(&row);
        let out = output(&row);
        let (before, after) = (out["before_ms"].as_u64().unwrap(), out["after_ms"].as_u64().unwrap());
        assert!(after >= before + 100, "{out}");
        assert_eq!(
            t.types("sleep").await,
            [
                "ExecutionStarted",
                "OrchestratorStarted",
                "TimerCreated",
                "OrchestratorCompleted",
                "TimerFired",
                "OrchestratorStarted",
                "OrchestratorCompleted",
                "ExecutionCompleted"
            ]
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_fired_is_stamped_when_the_timer_fired_not_when_it_was_created() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("features").await;
        assert_completed(&t.run("Sleeps", r#"{"ms":400}"#, "stamp").await);
        let h = t.history("stamp").await;
        let (created, fire_at) = h
            .iter()
            .find_map(|(ts, e)| match e {
                Event::TimerCreated { fire_at, .. } => Some((*ts, *fire_at)),
                _ => None,
            })
            .unwrap();
        let at = h
            .iter()
            .position(|(_, e)| matches!(e, Event::TimerFired { .. }))
            .unwrap();
        let fired = h[at].0;
        assert_eq!(fire_at, created + 400, "{h:?}");
        assert!(
            fired >= fire_at,
            "TimerFired at {fired}, before its fire-at {fire_at}: {h:?}"
        );
        // It is delivered to the episode that follows (which is not earlier).
        assert!(matches!(h[at + 1].1, Event::OrchestratorStarted), "{h:?}");
        assert!(h[at + 1].0 >= fired, "{h:?}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_event_races_a_timeout_both_ways() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("features").await;
        // Event wins.
        let id = t.start("WaitForApproval", r#"{"timeout_ms":60000}"#, "approve").await;
        wait_idle(&t, &id).await;
        let status = t.hub.store.get_instance(&id).await.unwrap().unwrap();
        assert_eq!(status.custom_status.as_deref(), Some(r#"{"waiting_for":"Approval"}"#));
        t.hub
            .raise_event(&id, "Approval", Some(r#"{"by":"ana"}"#))
            .await
            .unwrap();
        let row = t.wait(&id).await;
        assert_eq!(output(&row), json!({"approved": {"by": "ana"}}), "hot={hot}");
        assert!(t.types(&id).await.contains(&"EventRaised"));
        // Timer wins.
        let row = t.run("WaitForApproval", r#"{"timeout_ms":50}"#, "timeout").await;
        assert_eq!(output(&row), json!({"timed_out": true}));
        assert!(t.types("timeout").await.contains(&"TimerFired"));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_raised_before_the_wait_is_buffered() {
    for hot in [true, false] {
        let mut t = TestHub::with(hot, Default::default(), false).await;
        t.deploy("features").await;
        let id = t.start("WaitForApproval", r#"{"timeout_ms":60000}"#, "early").await;
        // Raised while the instance has not even run its first episode.
        t.hub.raise_event(&id, "Approval", Some("true")).await.unwrap();
        t.running = Some(t.engine.run());
        let row = t.wait(&id).await;
        assert_eq!(output(&row), json!({"approved": true}));
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_to_unknown_and_finished_instances_are_refused() {
    let t = TestHub::new(true).await;
    t.deploy("hello-cities").await;
    let err = t.hub.raise_event("nobody", "Approval", None).await.unwrap_err();
    assert!(matches!(err, HubError::Store(StoreError::InstanceNotFound(_))), "{err}");
    assert_completed(&t.run("HelloCities", "null", "done").await);
    let err = t.hub.raise_event("done", "Approval", None).await.unwrap_err();
    assert!(
        matches!(err, HubError::Store(StoreError::InstanceFinished { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("Completed"));
    let err = t
        .hub
        .raise_event("done", "Approval", Some("{not json"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_orchestrations_fan_out_and_report_to_the_parent() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("features").await;
        let row = t.run("Parent", r#"{"values":[1,2,3,4]}"#, "parent").await;
        assert_completed(&row);
        assert_eq!(output(&row), json!([2, 4, 6, 8]));
        let types = t.types("parent").await;
        assert_eq!(
            types
                .iter()
                .filter(|t| **t == "SubOrchestrationInstanceCreated")
                .count(),
            4
        );
        assert_eq!(
            types
                .iter()
                .filter(|t| **t == "SubOrchestrationInstanceCompleted")
                .count(),
            4
        );
        // Children have deterministic ids and are linked to their parent.
        let child = t.hub.store.get_instance("parent:0").await.unwrap().unwrap();
        assert_eq!(child.parent_instance.as_deref(), Some("parent"));
        assert_eq!(child.status, RuntimeStatus::Completed);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_as_new_a_thousand_times_keeps_history_bounded() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("features").await;
        let row = t.run("Counter", r#"{"count":0,"target":1000}"#, "counter").await;
        assert_completed(&row);
        assert_eq!(output(&row), json!(1000));
        assert_eq!(row.custom_status.as_deref(), Some(r#"{"count":1000}"#));
        let h = t.history("counter").await;
        assert!(h.len() <= 5, "only the last execution's history is kept: {}", h.len());
        let rows = t
            .hub
            .store
            .as_any()
            .downcast_ref::<cairn::store::sqlite::SqliteStore>()
            .unwrap()
            .history_rows()
            .await
            .unwrap();
        assert!(rows <= 5, "{rows} history rows in the store");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_suspend_and_resume() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("features").await;

        let id = t.start("WaitForApproval", r#"{"timeout_ms":60000}"#, "term").await;
        wait_idle(&t, &id).await;
        t.hub
            .control(
                &id,
                Event::ExecutionTerminated {
                    reason: Some("no longer needed".into()),
                },
            )
            .await
            .unwrap();
        let row = t.wait(&id).await;
        assert_eq!(row.status, RuntimeStatus::Terminated);
        assert_eq!(output(&row), json!("no longer needed"));
        assert!(t.types(&id).await.contains(&"ExecutionTerminated"));
        let again = t.hub.control(&id, Event::ExecutionTerminated { reason: None }).await;
        assert!(again.is_err(), "terminating a terminated instance is refused");

        let id = t.start("WaitForApproval", r#"{"timeout_ms":60000}"#, "susp").await;
        wait_idle(&t, &id).await;
        t.hub
            .control(
                &id,
                Event::ExecutionSuspended {
                    reason: Some("pause".into()),
                },
            )
            .await
            .unwrap();
        wait_status(&t, &id, RuntimeStatus::Suspended).await;
        // Suspended instances accept events but do not process them.
        t.hub.raise_event(&id, "Approval", Some("\"yes\"")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let row = t.hub.store.get_instance(&id).await.unwrap().unwrap();
        assert_eq!(row.status, RuntimeStatus::Suspended);
        t.hub
            .control(&id, Event::ExecutionResumed { reason: None })
            .await
            .unwrap();
        let row = t.wait(&id).await;
        assert_eq!(output(&row), json!({"approved": "yes"}));
        let types = t.types(&id).await;
        let s = types.iter().position(|t| *t == "ExecutionSuspended").unwrap();
        let r = types.iter().position(|t| *t == "ExecutionResumed").unwrap();
        let e = types.iter().position(|t| *t == "EventRaised").unwrap();
        assert!(s < r && r < e, "the event is processed only after resume: {types:?}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sub_orchestration_is_retried_by_policy_then_reported() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("features").await;
        let row = t.run("RetriesChild", "null", "parent-r").await;
        assert_completed(&row);
        assert_eq!(
            output(&row),
            json!({"error_type": "ChildError", "message": "the child failed"})
        );
        let types = t.types("parent-r").await;
        assert_eq!(types.iter().filter(|t| **t == "TaskRetrying").count(), 2, "{types:?}");
        assert_eq!(
            types.iter().filter(|t| **t == "SubOrchestrationInstanceFailed").count(),
            1
        );
        let child = t.hub.store.get_instance("parent-r:0").await.unwrap().unwrap();
        assert_eq!(child.status, RuntimeStatus::Failed);
        t.stop().await;
    }
}
