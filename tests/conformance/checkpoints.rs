//! Checkpoints: all or nothing, guarded by the history length; what their
//! outbox items do; continue-as-new; rewind plans.

use std::collections::HashMap;

use cairn::decide;
use cairn::history::{CompletionStatus, Event, Failure, ParentRef};
use cairn::store::{InstanceRow, Message, Outbox, RuntimeStatus, Store, StoreError};

use crate::*;

crate::conformance!(
    a_refused_checkpoint_leaves_nothing,
    two_checkpoints_from_one_history_length_one_wins,
    concurrent_writes_commit_or_fail_each_on_their_own,
    next_execution_replaces_the_history,
    a_finished_execution_drops_its_work_and_announces_itself,
    start_child_creates_the_child_or_delivers_refused,
    messages_to_gone_or_finished_instances_are_dropped,
    rewind_applies_the_plan_and_conflicts_when_history_changed,
);

fn work(task_id: u32) -> Outbox {
    Outbox::WorkItem {
        task_id,
        name: "Act".into(),
        input: format!("{task_id}"),
        retry: None,
        attempt: 1,
    }
}

fn to(id: &str, visible_at: u64, event: Event) -> Outbox {
    Outbox::Message(Message {
        instance_id: id.into(),
        execution_id: None,
        visible_at,
        event,
    })
}

/// Everything a checkpoint could write, for instance `row`.
fn full_outbox(row: &InstanceRow, other: &str) -> Vec<Outbox> {
    let child = decide::new_execution(
        "child",
        "child-e1".into(),
        "Orch",
        "v1",
        "null",
        Some(ParentRef {
            instance_id: row.instance_id.clone(),
            execution_id: row.execution_id.clone(),
            task_id: 3,
            retry: None,
            attempt: 1,
            first_scheduled: T0,
        }),
        Vec::new(),
        T0,
    );
    vec![
        work(1),
        to(
            &row.instance_id,
            T0 + 60_000,
            Event::TimerFired {
                task_id: 2,
                fire_at: T0 + 60_000,
            },
        ),
        Outbox::StartChild {
            child,
            refused: Message {
                instance_id: row.instance_id.clone(),
                execution_id: Some(row.execution_id.clone()),
                visible_at: T0,
                event: raised("refused"),
            },
        },
        Outbox::AcquireLocks {
            task_id: 4,
            names: vec!["L".into()],
            granted: decide::lock_granted(4),
        },
        to(other, T0, raised("hello")),
    ]
}

async fn a_refused_checkpoint_leaves_nothing(s: Store) {
    start(&s, "other", T0).await;
    let row = start(&s, "a", T0).await;
    let before_depths = s.queue_depths().await.unwrap();
    let ep = s.load_episode("a", T0, None).await.unwrap().unwrap();
    let mut cp = checkpoint(
        &ep.instance,
        vec![ep.messages[0].id],
        vec![Event::OrchestratorStarted, Event::OrchestratorCompleted],
        RuntimeStatus::Running,
        full_outbox(&row, "other"),
        T0,
    );
    cp.expected_history_len = 5; // someone else wrote meanwhile
    let err = s.checkpoint(cp.clone(), lease("h1")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(ref id) if id == "a"), "{err}");
    assert!(err.is_retryable());
    // Nothing of it: no history, the start still queued, no work, no
    // timer, no child, no lock, no message to the other instance.
    assert_eq!(s.get_instance("a").await.unwrap().unwrap(), row);
    assert!(s.get_history("a").await.unwrap().is_empty());
    assert_eq!(s.queue_depths().await.unwrap(), before_depths);
    assert!(s.get_instance("child").await.unwrap().is_none());
    assert!(s.list_locks().await.unwrap().is_empty());
    assert_eq!(inbox(&s, "other", T0).await.len(), 1, "only its own start");
    assert!(
        s.claim_work_items(lease("h2"), T0 + 10_000, true, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The same checkpoint from the right length commits all of it.
    cp.expected_history_len = 0;
    s.checkpoint(cp, lease("h1")).await.unwrap();
    assert_eq!(s.get_history("a").await.unwrap().len(), 2);
    assert_eq!(
        s.get_instance("child")
            .await
            .unwrap()
            .unwrap()
            .parent_instance
            .as_deref(),
        Some("a")
    );
    assert_eq!(s.list_locks().await.unwrap()[0].holder.as_ref().unwrap().0, "a");
    assert_eq!(inbox(&s, "other", T0).await.last(), Some(&raised("hello")));
    assert_eq!(
        inbox(&s, "a", T0).await,
        vec![decide::lock_granted(4)],
        "the timer is not due yet"
    );
}

async fn two_checkpoints_from_one_history_length_one_wins(s: Store) {
    let row = first_episode(&s, "race", Vec::new(), "h1", T0).await;
    assert_eq!(row.history_len, 3);
    let events = |tag: &str| vec![Event::OrchestratorStarted, raised(tag), Event::OrchestratorCompleted];
    let mut one = checkpoint(
        &row,
        Vec::new(),
        events("one"),
        RuntimeStatus::Running,
        vec![work(1)],
        T0 + 1,
    );
    let mut two = checkpoint(
        &row,
        Vec::new(),
        events("two"),
        RuntimeStatus::Running,
        vec![work(2)],
        T0 + 1,
    );
    one.lease_until = Some(T0 + 1_000);
    two.lease_until = Some(T0 + 1_000);
    let (a, b) = tokio::join!(s.checkpoint(one, lease("h1")), s.checkpoint(two, lease("h1")));
    let winner = match (&a, &b) {
        (Ok(()), Err(StoreError::Conflict(_))) => "one",
        (Err(StoreError::Conflict(_)), Ok(())) => "two",
        other => panic!("expected one commit and one conflict, got {other:?}"),
    };
    let history = s.get_history("race").await.unwrap();
    assert_eq!(history.len(), 6);
    assert_eq!(history[4].1, raised(winner));
    assert_eq!(s.get_instance("race").await.unwrap().unwrap().history_len, 6);
    let items = s.claim_work_items(lease("h2"), T0 + 5_000, false, 10).await.unwrap();
    assert_eq!(items.len(), 1, "only the winner's work item");
    assert_eq!(items[0].task_id, if winner == "one" { 1 } else { 2 });
}

async fn next_execution_replaces_the_history(s: Store) {
    let row = first_episode(&s, "eternal", vec![work(1)], "h1", T0).await;
    let next = decide::new_execution(
        "eternal",
        "eternal-e2".into(),
        "Orch",
        "v2",
        "\"next\"",
        None,
        Vec::new(),
        T0 + 1,
    );
    let cp = checkpoint(
        &row,
        Vec::new(),
        vec![
            Event::OrchestratorStarted,
            Event::ExecutionCompleted {
                status: CompletionStatus::ContinuedAsNew,
                result: Some("\"next\"".into()),
                failure: None,
            },
            Event::OrchestratorCompleted,
        ],
        RuntimeStatus::ContinuedAsNew,
        vec![Outbox::NextExecution(next.clone())],
        T0 + 1,
    );
    s.checkpoint(cp, lease("h1")).await.unwrap();
    let now = s.get_instance("eternal").await.unwrap().unwrap();
    assert_eq!(now.execution_id, "eternal-e2");
    assert_eq!(now.version, "v2");
    assert_eq!(now.input.as_deref(), Some("\"next\""));
    assert_eq!(now.history_len, 0);
    assert_eq!(now.output, None);
    assert_eq!(now.status, RuntimeStatus::ContinuedAsNew);
    assert!(
        s.get_history("eternal").await.unwrap().is_empty(),
        "the old execution's history is gone"
    );
    let ep = s.load_episode("eternal", T0 + 1, None).await.unwrap().unwrap();
    assert_eq!(ep.messages.len(), 1);
    assert_eq!(ep.messages[0].event, next.started);
    assert_eq!(ep.messages[0].execution_id.as_deref(), Some("eternal-e2"));
    assert_eq!(ep.history, Some(Vec::new()));
}

async fn a_finished_execution_drops_its_work_and_announces_itself(s: Store) {
    let mut notes = s.subscribe();
    let row = first_episode(&s, "f", vec![work(1), work(2)], "h1", T0).await;
    crate::notes_until(&mut notes, |n| {
        n.work.len() == 2 && n.work.iter().all(|w| w.instance_id == "f")
    })
    .await;
    let cp = checkpoint(
        &row,
        Vec::new(),
        completed(),
        RuntimeStatus::Completed,
        Vec::new(),
        T0 + 1,
    );
    s.checkpoint(cp, lease("h1")).await.unwrap();
    crate::notes_until(&mut notes, |n| n.finished == ["f"]).await;
    let done = s.get_instance("f").await.unwrap().unwrap();
    assert_eq!(done.status, RuntimeStatus::Completed);
    assert_eq!(done.output.as_deref(), Some("\"done\""));
    assert_eq!(
        s.queue_depths().await.unwrap(),
        (0, 0),
        "no work is left for a finished execution"
    );
    // A finished instance takes no lease.
    let stored = s.load_episode("f", T0 + 2, None).await.unwrap().unwrap();
    assert_eq!(stored.instance.history_len, 6);
    assert!(s.due_instances(T0 + 2, 10, "h2").await.unwrap().is_empty());
}

async fn start_child_creates_the_child_or_delivers_refused(s: Store) {
    start(&s, "busy", T0).await;
    let row = first_episode(&s, "parent", Vec::new(), "h1", T0).await;
    let start_child = |id: &str, task_id: u32| {
        let child = decide::new_execution(
            id,
            format!("{id}-e1"),
            "Orch",
            "v1",
            "\"child input\"",
            Some(ParentRef {
                instance_id: "parent".into(),
                execution_id: row.execution_id.clone(),
                task_id,
                retry: None,
                attempt: 1,
                first_scheduled: T0,
            }),
            Vec::new(),
            T0 + 1,
        );
        Outbox::StartChild {
            child,
            refused: Message {
                instance_id: "parent".into(),
                execution_id: Some(row.execution_id.clone()),
                visible_at: T0 + 1,
                event: Event::SubOrchestrationInstanceFailed {
                    task_id,
                    failure: Failure::new("InstanceExists", format!("{id} is running")),
                },
            },
        }
    };
    let cp = checkpoint(
        &row,
        Vec::new(),
        vec![Event::OrchestratorStarted, Event::OrchestratorCompleted],
        RuntimeStatus::Running,
        vec![start_child("kid", 1), start_child("busy", 2)],
        T0 + 1,
    );
    s.checkpoint(cp, lease("h1")).await.unwrap();
    let kid = s.get_instance("kid").await.unwrap().unwrap();
    assert_eq!(kid.status, RuntimeStatus::Pending);
    assert_eq!(kid.parent_instance.as_deref(), Some("parent"));
    assert_eq!(kid.input.as_deref(), Some("\"child input\""));
    assert!(matches!(
        inbox(&s, "kid", T0 + 1).await[..],
        [Event::ExecutionStarted { .. }]
    ));
    assert_eq!(
        inbox(&s, "parent", T0 + 1).await,
        vec![Event::SubOrchestrationInstanceFailed {
            task_id: 2,
            failure: Failure::new("InstanceExists", "busy is running"),
        }],
        "the refused start's message, exactly"
    );
    let busy = s.get_instance("busy").await.unwrap().unwrap();
    assert_eq!(busy.execution_id, "busy-e1", "the running instance is untouched");
}

async fn messages_to_gone_or_finished_instances_are_dropped(s: Store) {
    let done = first_episode(&s, "done", Vec::new(), "h1", T0).await;
    complete(&s, &done, "h1", T0 + 1).await;
    let row = first_episode(&s, "sender", Vec::new(), "h1", T0).await;
    let cp = checkpoint(
        &row,
        Vec::new(),
        vec![Event::OrchestratorStarted, Event::OrchestratorCompleted],
        RuntimeStatus::Running,
        vec![
            to("nobody", T0 + 2, raised("x")),
            to("done", T0 + 2, raised("x")),
            to("sender", T0 + 2, raised("self")),
        ],
        T0 + 2,
    );
    s.checkpoint(cp, lease("h1")).await.unwrap();
    assert!(s.get_instance("nobody").await.unwrap().is_none());
    assert!(inbox(&s, "done", T0 + 2).await.is_empty());
    assert_eq!(inbox(&s, "sender", T0 + 2).await, vec![raised("self")]);
    assert_eq!(s.queue_depths().await.unwrap().0, 1);
}

async fn rewind_applies_the_plan_and_conflicts_when_history_changed(s: Store) {
    // A Failed instance whose activity 0 failed; activity 1 completed.
    let failure = Failure::new("Boom", "it broke");
    let history: Vec<(u64, Event)> = [
        Event::OrchestratorStarted,
        Event::ExecutionStarted {
            name: "Orch".into(),
            input: "null".into(),
            execution_id: "r-e1".into(),
            version: "v1".into(),
            parent: None,
            carried_events: Vec::new(),
        },
        Event::TaskScheduled {
            task_id: 0,
            name: "Act".into(),
            input: "0".into(),
            retry: None,
        },
        Event::TaskScheduled {
            task_id: 1,
            name: "Act".into(),
            input: "1".into(),
            retry: None,
        },
        Event::OrchestratorCompleted,
        Event::OrchestratorStarted,
        Event::TaskCompleted {
            task_id: 1,
            result: "1".into(),
        },
        Event::TaskFailed {
            task_id: 0,
            failure: failure.clone(),
        },
        Event::ExecutionCompleted {
            status: CompletionStatus::Failed,
            result: None,
            failure: Some(failure.clone()),
        },
        Event::OrchestratorCompleted,
    ]
    .into_iter()
    .map(|e| (T0, e))
    .collect();
    let row = InstanceRow {
        instance_id: "r".into(),
        execution_id: "r-e1".into(),
        name: "Orch".into(),
        version: "v1".into(),
        status: RuntimeStatus::Failed,
        input: Some("null".into()),
        output: Some(decide::failure_json(&failure)),
        custom_status: None,
        created_at: T0,
        updated_at: T0,
        parent_instance: None,
        history_len: history.len() as u64,
    };
    s.import_instance(row.clone(), history.clone()).await.unwrap();
    assert_eq!(s.get_instance("r").await.unwrap().unwrap(), row);

    let versions = HashMap::new();
    let mut next_id = || "unused".to_owned();
    let mut inputs = decide::Inputs {
        versions: &versions,
        new_execution_id: &mut next_id,
    };
    let plan = decide::rewind(&row, &history, Some("fixed".into()), T0 + 10, &mut inputs).unwrap();

    // The history changes before the plan is applied: conflict, nothing written.
    let mut changed = row.clone();
    changed.history_len -= 1;
    s.import_instance(changed.clone(), history[..history.len() - 1].to_vec())
        .await
        .unwrap();
    let err = s.rewind(plan.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(s.get_instance("r").await.unwrap().unwrap(), changed);
    assert_eq!(s.queue_depths().await.unwrap(), (0, 0));

    s.import_instance(row.clone(), history.clone()).await.unwrap();
    s.rewind(plan.clone()).await.unwrap();
    let rewound = s.get_instance("r").await.unwrap().unwrap();
    assert_eq!(rewound.status, RuntimeStatus::Running);
    assert_eq!(rewound.output, None);
    assert_eq!(rewound.history_len, plan.history.len() as u64);
    assert_eq!(s.get_history("r").await.unwrap(), plan.history);
    assert_eq!(
        inbox(&s, "r", T0 + 10).await,
        vec![Event::ExecutionRewound {
            reason: Some("fixed".into())
        }]
    );
    // Task 0 runs again (unleased, its attempts counted on), task 1 does not.
    let items = s.claim_work_items(lease("h1"), T0 + 10, false, 10).await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (items[0].task_id, items[0].attempt, items[0].input.as_str()),
        (0, 2, "0")
    );

    // A Running instance is not rewound.
    let err = s.rewind(plan).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFailed {
                status: RuntimeStatus::Running,
                ..
            }
        ),
        "{err}"
    );
}

/// Many checkpoints, starts and activity results submitted at once (which a
/// provider may group into shared transactions): each one commits or is
/// refused on its own. A refused checkpoint leaves nothing and never takes
/// the others down; an accepted one is there in full.
async fn concurrent_writes_commit_or_fail_each_on_their_own(s: Store) {
    const N: usize = 24;
    let mut rows = Vec::new();
    for i in 0..N {
        rows.push(first_episode(&s, &format!("i{i}"), vec![work(1)], "h1", T0).await);
    }
    // The first episodes leased their work to h1 for 1 s: take it again after that.
    let mut items = s.claim_work_items(lease("h1"), T0 + 2_000, false, 100).await.unwrap();
    assert_eq!(items.len(), N);
    items.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    let stale = |i: usize| i.is_multiple_of(3);
    let mut all = tokio::task::JoinSet::new();
    for (i, row) in rows.iter().enumerate() {
        let mut cp = checkpoint(
            row,
            Vec::new(),
            vec![
                Event::OrchestratorStarted,
                raised(&format!("e{i}")),
                Event::OrchestratorCompleted,
            ],
            RuntimeStatus::Running,
            vec![work(2)],
            T0 + 2,
        );
        if stale(i) {
            cp.expected_history_len = 1; // another writer got there first
        }
        let s = s.clone();
        all.spawn(async move { (format!("cp {i}"), s.checkpoint(cp, lease("h1")).await.map(|()| true)) });
    }
    // Activity results: every other one under a lease its owner lost.
    for (i, item) in items.iter().cloned().enumerate() {
        let owner = if i.is_multiple_of(2) { "h1" } else { "someone-else" };
        let outcome = cairn::store::ActivityOutcome {
            message: Event::TaskCompleted {
                task_id: 1,
                result: format!("{i}"),
            },
            retry_at: None,
        };
        let s = s.clone();
        all.spawn(async move {
            (
                format!("result {i}"),
                s.complete_work_item(item, owner.to_owned(), outcome, T0 + 2).await,
            )
        });
    }
    for (id, exec) in [("i1", "again"), ("fresh", "fresh-e1")] {
        let s = s.clone();
        all.spawn(async move {
            (
                format!("start {id}"),
                s.create_instance(new_execution(id, exec, T0 + 2), T0 + 2)
                    .await
                    .map(|()| true),
            )
        });
    }
    let mut outcomes = HashMap::new();
    while let Some(r) = all.join_next().await {
        let (what, r) = r.unwrap();
        outcomes.insert(what, r);
    }
    for i in 0..N {
        let r = &outcomes[&format!("cp {i}")];
        let row = s.get_instance(&format!("i{i}")).await.unwrap().unwrap();
        let history = s.get_history(&format!("i{i}")).await.unwrap();
        if stale(i) {
            assert!(matches!(r, Err(StoreError::Conflict(_))), "cp {i}: {r:?}");
            assert_eq!(row.history_len, 3, "i{i}: nothing of the refused checkpoint");
            assert_eq!(history.len(), 3);
        } else {
            assert!(matches!(r, Ok(true)), "cp {i}: {r:?}");
            assert_eq!(row.history_len, 6, "i{i}");
            assert_eq!(history[4].1, raised(&format!("e{i}")));
        }
        let kept = &outcomes[&format!("result {i}")];
        assert_eq!(kept.as_ref().ok(), Some(&(i.is_multiple_of(2))), "result {i}: {kept:?}");
    }
    assert!(
        matches!(outcomes["start i1"], Err(StoreError::InstanceExists(_))),
        "{:?}",
        outcomes["start i1"]
    );
    assert!(matches!(outcomes["start fresh"], Ok(true)));
    assert_eq!(inbox(&s, "fresh", T0 + 2).await.len(), 1, "its start");
    // The accepted checkpoints' work items (leased to h1 for 1 s), and only theirs.
    let mut new_work: Vec<String> = s
        .claim_work_items(lease("h2"), T0 + 5_000, false, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|w| w.task_id == 2)
        .map(|w| w.instance_id)
        .collect();
    new_work.sort();
    let mut want: Vec<String> = (0..N).filter(|&i| !stale(i)).map(|i| format!("i{i}")).collect();
    want.sort();
    assert_eq!(new_work, want);
    // The results whose lease held were delivered, the others not.
    for (i, item) in items.iter().enumerate() {
        let delivered = inbox(&s, &item.instance_id, T0 + 3)
            .await
            .iter()
            .any(|e| matches!(e, Event::TaskCompleted { task_id: 1, .. }));
        assert_eq!(delivered, i.is_multiple_of(2), "{}", item.instance_id);
    }
}
