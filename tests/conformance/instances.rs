//! Instances and their inboxes: starts, messages, timers, wake-ups.

use cairn::history::Event;
use cairn::store::{Message, Outbox, RuntimeStatus, Store, StoreError};

use crate::*;

crate::conformance!(
    starting_an_unfinished_id_is_refused_and_a_finished_one_replaced,
    messages_need_an_unfinished_instance,
    inbox_messages_are_delivered_oldest_first,
    future_messages_stay_invisible_until_due,
    a_suspended_instance_is_due_only_for_resume_or_terminate,
    commits_wake_the_handles_subscribers,
);

async fn starting_an_unfinished_id_is_refused_and_a_finished_one_replaced(s: Store) {
    let first = start(&s, "dup", T0).await;
    assert_eq!(first.status, RuntimeStatus::Pending);
    assert_eq!((first.created_at, first.history_len), (T0, 0));
    let err = s
        .create_instance(new_execution("dup", "dup-e2", T0 + 1), T0 + 1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InstanceExists(ref id) if id == "dup"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(s.get_instance("dup").await.unwrap().unwrap(), first, "untouched");

    // Finished: a new start replaces it, history and inbox included.
    let running = first_episode(&s, "done", Vec::new(), "h1", T0).await;
    s.send_message("done", raised("late"), T0 + 1).await.unwrap();
    complete(&s, &running, "h1", T0 + 2).await;
    s.create_instance(new_execution("done", "done-e2", T0 + 3), T0 + 3)
        .await
        .unwrap();
    let again = s.get_instance("done").await.unwrap().unwrap();
    assert_eq!(again.execution_id, "done-e2");
    assert_eq!(again.status, RuntimeStatus::Pending);
    assert_eq!((again.created_at, again.history_len), (T0 + 3, 0));
    assert_eq!(again.output, None);
    assert!(s.get_history("done").await.unwrap().is_empty());
    let msgs = inbox(&s, "done", T0 + 3).await;
    assert_eq!(msgs.len(), 1);
    assert!(matches!(&msgs[0], Event::ExecutionStarted { execution_id, .. } if execution_id == "done-e2"));

    // Concurrent starts of one new id: exactly one wins.
    let (a, b) = tokio::join!(
        s.create_instance(new_execution("twin", "twin-a", T0), T0),
        s.create_instance(new_execution("twin", "twin-b", T0), T0)
    );
    assert!(
        matches!(
            (&a, &b),
            (Ok(()), Err(StoreError::InstanceExists(_))) | (Err(StoreError::InstanceExists(_)), Ok(()))
        ),
        "{a:?} {b:?}"
    );
    assert_eq!(inbox(&s, "twin", T0).await.len(), 1);
}

async fn messages_need_an_unfinished_instance(s: Store) {
    let err = s.send_message("ghost", raised("x"), T0).await.unwrap_err();
    assert!(
        matches!(err, StoreError::InstanceNotFound(ref id) if id == "ghost"),
        "{err}"
    );
    let row = first_episode(&s, "fin", Vec::new(), "h1", T0).await;
    s.send_message("fin", raised("before"), T0 + 1).await.unwrap();
    complete(&s, &row, "h1", T0 + 2).await;
    let err = s.send_message("fin", raised("after"), T0 + 3).await.unwrap_err();
    assert!(
        matches!(err, StoreError::InstanceFinished { ref id, status: RuntimeStatus::Completed } if id == "fin"),
        "{err}"
    );
    assert!(inbox(&s, "fin", T0 + 3).await.is_empty());
    // Pending and Suspended instances take messages.
    start(&s, "new", T0).await;
    s.send_message("new", raised("early"), T0 + 1).await.unwrap();
    assert_eq!(inbox(&s, "new", T0 + 1).await.last(), Some(&raised("early")));
}

async fn inbox_messages_are_delivered_oldest_first(s: Store) {
    first_episode(&s, "fifo", Vec::new(), "h1", T0).await;
    let names: Vec<String> = (0..12).map(|i| format!("e{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        // Same timestamp for some: order is arrival, not time.
        s.send_message("fifo", raised(name), T0 + 1 + (i as u64) / 4)
            .await
            .unwrap();
    }
    let ep = s.load_episode("fifo", T0 + 10, None).await.unwrap().unwrap();
    let got: Vec<Event> = ep.messages.iter().map(|m| m.event.clone()).collect();
    assert_eq!(got, names.iter().map(|n| raised(n)).collect::<Vec<_>>());
    assert!(
        ep.messages.windows(2).all(|w| w[0].id < w[1].id),
        "ids grow with arrival"
    );
    assert_eq!(ep.messages[0].timestamp, T0 + 1);
    assert_eq!(ep.messages[0].execution_id, None, "for whatever execution is current");
    // Consumed messages are gone; the rest stay in order.
    let row = ep.instance.clone();
    let consumed = ep.messages[..5].iter().map(|m| m.id).collect();
    let cp = checkpoint(
        &row,
        consumed,
        vec![Event::OrchestratorStarted, Event::OrchestratorCompleted],
        RuntimeStatus::Running,
        Vec::new(),
        T0 + 10,
    );
    s.checkpoint(cp, lease("h1")).await.unwrap();
    let rest: Vec<Event> = inbox(&s, "fifo", T0 + 10).await;
    assert_eq!(rest, names[5..].iter().map(|n| raised(n)).collect::<Vec<_>>());
    let ids: Vec<i64> = s
        .load_episode("fifo", T0 + 10, None)
        .await
        .unwrap()
        .unwrap()
        .messages
        .iter()
        .map(|m| m.id)
        .collect();
    s.discard_messages(ids).await.unwrap();
    assert!(inbox(&s, "fifo", T0 + 10).await.is_empty());
}

async fn future_messages_stay_invisible_until_due(s: Store) {
    // A start scheduled for later.
    s.create_instance(new_execution("later", "later-e1", T0 + 5_000), T0)
        .await
        .unwrap();
    assert!(s.due_instances(T0, 10, "h1").await.unwrap().is_empty());
    assert!(inbox(&s, "later", T0 + 4_999).await.is_empty());
    assert_eq!(s.due_instances(T0 + 5_000, 10, "h1").await.unwrap(), ["later"]);

    // A durable timer.
    let row = first_episode(&s, "timer", Vec::new(), "h1", T0).await;
    let fired = Event::TimerFired {
        task_id: 0,
        fire_at: T0 + 60_000,
    };
    let cp = checkpoint(
        &row,
        Vec::new(),
        vec![
            Event::OrchestratorStarted,
            Event::TimerCreated {
                task_id: 0,
                fire_at: T0 + 60_000,
            },
            Event::OrchestratorCompleted,
        ],
        RuntimeStatus::Running,
        vec![Outbox::Message(Message {
            instance_id: "timer".into(),
            execution_id: Some(row.execution_id.clone()),
            visible_at: T0 + 60_000,
            event: fired.clone(),
        })],
        T0 + 1,
    );
    s.checkpoint(cp, lease("h1")).await.unwrap();
    assert!(
        !s.due_instances(T0 + 59_999, 10, "h1")
            .await
            .unwrap()
            .contains(&"timer".to_owned())
    );
    let ep = s.load_episode("timer", T0 + 59_999, None).await.unwrap().unwrap();
    assert!(ep.messages.is_empty());
    assert_eq!(s.queue_depths().await.unwrap().0, 2, "stored, just not visible");
    assert!(
        s.due_instances(T0 + 60_000, 10, "h1")
            .await
            .unwrap()
            .contains(&"timer".to_owned())
    );
    let ep = s.load_episode("timer", T0 + 60_000, None).await.unwrap().unwrap();
    assert_eq!(ep.messages.len(), 1);
    assert_eq!(ep.messages[0].event, fired);
    assert_eq!(ep.messages[0].execution_id.as_deref(), Some(row.execution_id.as_str()));
}

async fn a_suspended_instance_is_due_only_for_resume_or_terminate(s: Store) {
    let row = first_episode(&s, "sus", Vec::new(), "h1", T0).await;
    let cp = checkpoint(
        &row,
        Vec::new(),
        vec![Event::ExecutionSuspended { reason: None }],
        RuntimeStatus::Suspended,
        Vec::new(),
        T0 + 1,
    );
    s.checkpoint(cp, lease("h1")).await.unwrap();
    s.send_message("sus", raised("x"), T0 + 2).await.unwrap();
    assert!(s.due_instances(T0 + 2, 10, "h1").await.unwrap().is_empty());
    s.send_message("sus", Event::ExecutionResumed { reason: None }, T0 + 3)
        .await
        .unwrap();
    assert_eq!(s.due_instances(T0 + 3, 10, "h1").await.unwrap(), ["sus"]);
}

async fn commits_wake_the_handles_subscribers(s: Store) {
    let mut notes = s.subscribe();
    start(&s, "w", T0).await;
    notes_until(&mut notes, |n| n.inbox == ["w"]).await;
    s.send_message("w", raised("now"), T0 + 1).await.unwrap();
    let n = next_notes(&mut notes).await;
    assert_eq!(n.inbox, ["w"]);
    assert!(n.work.is_empty() && n.finished.is_empty());
    // A message for later wakes nobody now; a finished instance announces itself.
    s.create_instance(new_execution("later", "later-e1", T0 + 10_000), T0 + 1)
        .await
        .unwrap();
    let row = first_episode(&s, "w2", Vec::new(), "h1", T0 + 2).await;
    complete(&s, &row, "h1", T0 + 3).await;
    let mut seen = Vec::new();
    loop {
        let n = next_notes(&mut notes).await;
        assert!(
            !n.inbox.contains(&"later".to_owned()),
            "a future start woke someone: {n:?}"
        );
        seen.extend(n.inbox.iter().cloned());
        if n.finished == ["w2"] {
            break;
        }
    }
    assert_eq!(seen, ["w2"], "the start of w2, and nothing else");
}
