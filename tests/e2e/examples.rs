//! The Durable Functions patterns as shipped examples (guests/rust/examples).

use std::time::Duration;

use serde_json::json;

use crate::common::*;
use cairn::store::RuntimeStatus;

async fn human_interaction_approval_rejection_and_escalation(lang: &str) {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, "human-interaction").await;
        for (id, payload, expected) in [
            ("approve", "true", "approved"),
            ("approve-obj", r#"{"approved":true}"#, "approved"),
            ("reject", "false", "rejected"),
        ] {
            t.start("ApprovalWorkflow", r#"{"timeout_ms":60000}"#, id).await;
            t.wait_custom_status(id, r#"{"stage":"waiting-for-approval"}"#).await;
            t.hub.raise_event(id, "ApprovalEvent", Some(payload)).await.unwrap();
            let row = t.wait(id).await;
            assert_eq!(output(&row), json!(expected), "{id} hot={hot}");
            assert_history_invariants(&t.history(id).await);
        }
        let row = t.run("ApprovalWorkflow", r#"{"timeout_ms":30}"#, "escalate").await;
        assert_eq!(output(&row), json!("escalated"));
        let types = t.types("escalate").await;
        assert!(types.contains(&"TimerFired") && !types.contains(&"EventRaised"));
        t.stop().await;
    }
}

async fn monitor_polls_with_continue_as_new_until_done_or_bounded(lang: &str) {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, "monitor").await;
        let row = t.run("Monitor", r#"{"job_id":"job-1","interval_ms":10}"#, "mon").await;
        assert_eq!(
            output(&row),
            json!({"job_id": "job-1", "status": "completed", "polls": 3})
        );
        assert!(t.history("mon").await.len() < 20, "only the last execution is kept");
        let row = t
            .run("Monitor", r#"{"job_id":"j","interval_ms":5,"max_polls":2}"#, "bounded")
            .await;
        assert_eq!(output(&row), json!({"status": "timed-out"}));
        t.stop().await;
    }
}

async fn sub_orchestration_example_provisions_every_device(lang: &str) {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, "sub-orchestration").await;
        let row = t.run("ProvisionAll", r#"{"devices":["a","b","c"]}"#, "prov").await;
        assert_eq!(
            output(&row),
            json!(["a-created-configured", "b-created-configured", "c-created-configured"])
        );
        t.stop().await;
    }
}

async fn retry_example_succeeds_on_the_third_attempt_or_fails_typed(lang: &str) {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, "retry").await;
        let row = t.run("RetryFlaky", "null", "flaky").await;
        assert_eq!(output(&row), json!({"succeeded_on_attempt": 3}));
        let retries = t.types("flaky").await.iter().filter(|e| **e == "TaskRetrying").count();
        assert_eq!(retries, 2);
        let row = t.run("RetryFlaky", r#"{"fail_times":5}"#, "hopeless").await;
        assert_eq!(row.status, RuntimeStatus::Failed);
        assert_eq!(output(&row)["ErrorType"], json!("TransientError"));
        t.stop().await;
    }
}

async fn error_handling_example_catches_the_typed_failure_and_compensates(lang: &str) {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, "error-handling").await;
        let row = t.run("HandleErrors", r#"{"amount":100}"#, "declined").await;
        assert_eq!(
            output(&row),
            json!({
                "status": "compensated",
                "error_type": "PaymentDeclined",
                "error_message": "card declined for amount 100",
                "notification": "notified: card declined for amount 100"
            })
        );
        let row = t.run("HandleErrors", r#"{"amount":10}"#, "charged").await;
        assert_eq!(output(&row), json!({"status": "charged"}));
        t.stop().await;
    }
}

async fn critical_sections_on_the_same_accounts_never_overlap(lang: &str) {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, "critical-section").await;
        // Opposite orders: sorted acquisition means no deadlock.
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
        for id in &ids {
            let row = t.wait(id).await;
            assert_completed(&row);
            assert_eq!(output(&row).as_array().map(Vec::len), Some(2), "{row:?}");
            let h = t.history(id).await;
            let types: Vec<_> = h.iter().map(|(_, e)| e.type_name()).collect();
            for ty in ["LockRequested", "LockGranted", "LockReleased"] {
                assert_eq!(types.iter().filter(|x| **x == ty).count(), 1, "{id}: {types:?}");
            }
            // Both activities run inside the section (between the grant and
            // the release); the section's window is from the first activity
            // scheduled to the last result, as recorded in the history.
            let granted = h.iter().position(|(_, e)| e.type_name() == "LockGranted").unwrap();
            let released = h.iter().position(|(_, e)| e.type_name() == "LockReleased").unwrap();
            let activities: Vec<usize> = (0..h.len())
                .filter(|&i| matches!(h[i].1.type_name(), "TaskScheduled" | "TaskCompleted"))
                .collect();
            assert_eq!(activities.len(), 4, "{id}: {types:?}");
            assert!(
                activities.iter().all(|&i| granted < i && i < released),
                "{id}: activities outside the critical section: {types:?}"
            );
            let (first, last) = (activities[0], activities[activities.len() - 1]);
            windows.push((h[first].0, h[last].0, id.clone()));
        }
        windows.sort();
        for pair in windows.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "critical sections overlap: {pair:?}");
        }
        assert!(
            t.hub.store.list_locks().await.unwrap().is_empty(),
            "every lock released"
        );
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_pass_to_the_next_waiter_when_the_holder_is_terminated() {
    for hot in [true, false] {
        // No activity slots: a holder stays inside its critical section.
        let config = cairn::engine::EngineConfig {
            activity_concurrency: 0,
            ..Default::default()
        };
        let t = TestHub::with(hot, config, true).await;
        t.deploy("critical-section").await;
        let input = r#"{"from":"acct-a","to":"acct-b","amount":1}"#;
        t.start("TransferFunds", input, "holder").await;
        let holds = |who: &'static str| {
            let store = t.hub.store.clone();
            async move {
                for _ in 0..500 {
                    let locks = store.list_locks().await.unwrap();
                    if locks.len() == 2 && locks.iter().all(|l| l.holder.as_ref().is_some_and(|h| h.0 == who)) {
                        return locks;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("{who} never held both locks");
            }
        };
        holds("holder").await;
        t.start("TransferFunds", input, "waiter").await;
        for _ in 0..500 {
            let locks = t.hub.store.list_locks().await.unwrap();
            if locks.iter().any(|l| l.waiting == ["waiter"]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t.hub
            .control("holder", cairn::history::Event::ExecutionTerminated { reason: None })
            .await
            .unwrap();
        assert_eq!(t.wait("holder").await.status, RuntimeStatus::Terminated);
        let locks = holds("waiter").await;
        assert!(locks.iter().all(|l| l.waiting.is_empty()), "{locks:?}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_pass_to_the_next_waiter_when_the_holder_fails() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("features").await;
        // The holder doubles i64::MAX (the activity fails) inside its section.
        let holder = r#"{"locks":["ledger"],"value":9223372036854775807,"wait_for":"proceed"}"#;
        t.start("Locked", holder, "holder").await;
        for _ in 0..500 {
            let locks = t.hub.store.list_locks().await.unwrap();
            if locks.iter().any(|l| l.holder.as_ref().is_some_and(|h| h.0 == "holder")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t.start("Locked", r#"{"locks":["ledger"]}"#, "waiter").await;
        for _ in 0..500 {
            let locks = t.hub.store.list_locks().await.unwrap();
            if locks.iter().any(|l| l.waiting == ["waiter"]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let locks = t.hub.store.list_locks().await.unwrap();
        assert_eq!(locks.len(), 1, "{locks:?}");
        assert_eq!(locks[0].waiting, ["waiter"], "{locks:?}");
        assert_eq!(
            t.hub.store.get_instance("waiter").await.unwrap().unwrap().status,
            RuntimeStatus::Running
        );

        t.hub.raise_event("holder", "proceed", None).await.unwrap();
        let row = t.wait("holder").await;
        assert_eq!(row.status, RuntimeStatus::Failed, "{row:?}");
        assert_eq!(output(&row)["ErrorType"], json!("InvalidInput"), "{row:?}");
        let row = t.wait("waiter").await;
        assert_completed(&row);
        assert_eq!(output(&row), json!(42));
        assert!(
            t.hub.store.list_locks().await.unwrap().is_empty(),
            "every lock released"
        );
        t.stop().await;
    }
}

/// The component with each language's test functions (`Sleeps`, `Forgets`).
fn testing_component(lang: &str) -> &'static str {
    if lang == "python" { "checks" } else { "features" }
}

/// Plain style is the same in every language: a timer helper documented as
/// waiting waits (Python's `context.create_timer` in a plain orchestrator
/// used to return a task at once, so a 2 s "sleep" took no time at all).
/// The deterministic time after the wait is at least the timer's delay
/// later than before it.
async fn plain_style_timers_wait_until_they_fire(lang: &str) {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, testing_component(lang)).await;
        let row = t.run("Sleeps", r#"{"ms":300}"#, "sleeps").await;
        assert_completed(&row);
        let out = output(&row);
        let (before, after) = (out["before_ms"].as_u64().unwrap(), out["after_ms"].as_u64().unwrap());
        assert!(
            after >= before + 300,
            "{lang} hot={hot}: waited {} ms: {out}",
            after - before
        );
        let types = t.types("sleeps").await;
        assert!(types.contains(&"TimerFired"), "{types:?}");
        t.stop().await;
    }
}

/// A timer, event or activity task that an orchestrator creates and never
/// awaits cannot go unnoticed: the orchestrator fails with `UnawaitedTask`,
/// naming the task. Cancelling the task on purpose (`task.cancel()`) is the
/// way to stop waiting for it.
async fn a_task_created_and_never_awaited_fails_the_orchestration(lang: &str) {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy_in(lang, testing_component(lang)).await;
        let mut cases = vec![
            ("Forgets", "timer", "timer firing at"),
            ("Forgets", "event", "event"),
            ("Forgets", "activity", "activity"),
        ];
        if lang != "rust" {
            cases.push(("ForgetsGenerator", "generator", "timer firing at"));
        }
        for (name, what, named) in cases {
            let id = format!("forgets-{what}");
            let row = t.run(name, &json!(what).to_string(), &id).await;
            assert_eq!(row.status, RuntimeStatus::Failed, "{lang} {what} hot={hot}: {row:?}");
            let out = output(&row);
            assert_eq!(out["ErrorType"], json!("UnawaitedTask"), "{lang} {what}: {out}");
            let message = out["Message"].as_str().unwrap();
            assert!(
                message.contains(named) && message.contains("(task 0)"),
                "{lang} {what}: {message}"
            );
            assert!(message.contains("cancel()"), "the message says what to do: {message}");
        }
        for what in ["cancelled", "nothing"] {
            let row = t
                .run("Forgets", &json!(what).to_string(), &format!("keeps-{what}"))
                .await;
            assert_completed(&row);
            assert_eq!(output(&row), json!("returned"), "{lang} {what}");
        }
        t.stop().await;
    }
}

crate::in_every_language!(
    plain_style_timers_wait_until_they_fire,
    a_task_created_and_never_awaited_fails_the_orchestration,
    human_interaction_approval_rejection_and_escalation,
    monitor_polls_with_continue_as_new_until_done_or_bounded,
    sub_orchestration_example_provisions_every_device,
    retry_example_succeeds_on_the_third_attempt_or_fails_typed,
    error_handling_example_catches_the_typed_failure_and_compensates,
    critical_sections_on_the_same_accounts_never_overlap,
);
