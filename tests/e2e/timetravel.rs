//! Time travel (`cairn replay ID --until N`): the orchestrator replayed up
//! to a history event shows the tasks open then, its output lines up to
//! then (replayed ones included) and what it does next; and the timeline
//! of a real run.

use cairn::timetravel::replay_until;

use crate::common::TestHub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_shows_pending_tasks_and_output_up_to_an_event() {
    for hot in [true, false] {
        let t = TestHub::new(hot).await;
        t.deploy("sandbox-abuse").await;
        let row = t.run("Chatty", r#"{"lines":3}"#, "chatty-tt").await;
        assert_eq!(row.output.as_deref(), Some("3"));
        let history = t.hub.store.get_history("chatty-tt").await.unwrap();
        let types: Vec<&str> = history.iter().map(|(_, e)| e.type_name()).collect();
        assert_eq!(
            types,
            [
                "ExecutionStarted",
                "OrchestratorStarted",
                "TaskScheduled",
                "OrchestratorCompleted",
                "TaskCompleted",
                "OrchestratorStarted",
                "OrchestratorCompleted",
                "ExecutionCompleted"
            ]
        );

        // After the activity was scheduled: it is pending, the first line printed.
        let at = replay_until(&t.hub, "chatty-tt", 3, None).await.unwrap();
        assert_eq!(at.state, "waiting");
        assert_eq!(at.pending.len(), 1);
        assert_eq!(
            (at.pending[0].kind, at.pending[0].name.as_str()),
            ("activity", "ChattyActivity")
        );
        assert_eq!(at.pending[0].scheduled_index, Some(2));
        let lines: Vec<&str> = at.logs.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(lines, ["chatty before chatty-tt"]);
        assert!(at.next.is_empty(), "nothing new: {:?}", at.next);

        // At its completion: the orchestrator goes on, prints and returns.
        let at = replay_until(&t.hub, "chatty-tt", 4, None).await.unwrap();
        assert_eq!(at.state, "finished");
        assert!(at.pending.is_empty());
        assert_eq!(at.output, Some(serde_json::json!(3)));
        let lines: Vec<(&str, bool)> = at.logs.iter().map(|l| (l.message.as_str(), l.replaying)).collect();
        assert_eq!(
            lines,
            [("chatty before chatty-tt", true), ("chatty after chatty-tt", false)],
            "the recorded episode's line is a replayed one"
        );
        assert!(at.next.iter().any(|e| e["EventType"] == "ExecutionCompleted"));

        // The first event: nothing has run yet but the start.
        let at = replay_until(&t.hub, "chatty-tt", 0, None).await.unwrap();
        assert_eq!(at.event["EventType"], "ExecutionStarted");
        assert_eq!(
            at.next[0]["EventType"], "TaskScheduled",
            "it schedules its activity next"
        );

        // Past the end: a clear error.
        let e = replay_until(&t.hub, "chatty-tt", 8, None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("past the end") && e.contains("0 to 7"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_of_a_sub_orchestration_links_the_child() {
    let t = TestHub::new(true).await;
    t.deploy("sub-orchestration").await;
    let row = t.run("ProvisionAll", r#"{"devices":["a","b"]}"#, "parent-tl").await;
    assert_eq!(row.status, cairn::store::RuntimeStatus::Completed, "{row:?}");
    let history = t.hub.store.get_history("parent-tl").await.unwrap();
    let tl = cairn::timeline::build(&history, Some(&[]));
    let subs: Vec<_> = tl.bars.iter().filter(|b| b.kind == "sub-orchestration").collect();
    assert_eq!(subs.len(), 2, "{:?}", tl.bars);
    for b in subs {
        assert_eq!(b.outcome, "completed");
        let child = b.child.as_deref().unwrap();
        let child_row = t.hub.store.get_instance(child).await.unwrap().unwrap();
        assert_eq!(child_row.parent_instance.as_deref(), Some("parent-tl"));
        assert!(b.end.unwrap() >= b.start);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_collects_log_calls_with_their_level() {
    let t = TestHub::new(true).await;
    t.deploy("human-interaction").await;
    let row = t.run("ApprovalWorkflow", r#"{"timeout_ms":10}"#, "escalates").await;
    assert_eq!(row.output.as_deref(), Some("\"escalated\""));
    let last = t.hub.store.get_history("escalates").await.unwrap().len() - 1;
    let at = replay_until(&t.hub, "escalates", last, None).await.unwrap();
    assert_eq!(at.state, "finished");
    let warn: Vec<_> = at.logs.iter().filter(|l| l.level == "warn").collect();
    assert_eq!(warn.len(), 1, "{:?}", at.logs);
    assert!(warn[0].message.contains("no answer within 10 ms"), "{:?}", warn[0]);
    assert!(warn[0].replaying, "a recorded episode's line");
    // The custom status was cleared once the race was decided.
    assert_eq!(at.custom_status, serde_json::Value::Null);
    // Before the timer fired, the race was open and the status set.
    let fired = t
        .hub
        .store
        .get_history("escalates")
        .await
        .unwrap()
        .iter()
        .position(|(_, e)| e.type_name() == "TimerFired")
        .unwrap();
    let at = replay_until(&t.hub, "escalates", fired - 1, None).await.unwrap();
    assert_eq!(at.custom_status["stage"], "waiting-for-approval");
    assert!(at.logs.iter().all(|l| l.level != "warn"));
}
