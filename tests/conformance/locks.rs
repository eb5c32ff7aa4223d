//! Critical sections: locks granted FIFO, the grant message exactly the
//! request's, released by `unlock` or when the holder's execution ends.

use cairn::history::{CompletionStatus, Event};
use cairn::store::{InstanceRow, LockInfo, Outbox, RuntimeStatus, Store};

use crate::*;

crate::conformance!(
    locks_are_granted_first_come_first_served,
    locks_are_released_in_the_checkpoint_that_ends_the_holder,
    a_request_for_several_locks_waits_for_all,
);

/// The grant message of request `task`, as the decision core builds it.
fn grant(task: u32) -> Event {
    Event::LockGranted { task_id: task }
}

fn acquire(task: u32, names: &[&str]) -> Outbox {
    Outbox::AcquireLocks {
        task_id: task,
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        granted: grant(task),
    }
}

async fn episode(s: &Store, id: &str, outbox: Vec<Outbox>, status: RuntimeStatus, now: u64) -> InstanceRow {
    let ep = s.load_episode(id, now, None).await.unwrap().unwrap();
    let consumed = ep.messages.iter().map(|m| m.id).collect();
    let events = if status.is_terminal() {
        completed()
    } else {
        vec![Event::OrchestratorStarted, Event::OrchestratorCompleted]
    };
    let cp = checkpoint(&ep.instance, consumed, events, status, outbox, now);
    s.checkpoint(cp, lease("h")).await.unwrap();
    s.get_instance(id).await.unwrap().unwrap()
}

fn lock(name: &str, holder: Option<&str>, since: u64, waiting: &[&str]) -> LockInfo {
    LockInfo {
        name: name.to_owned(),
        holder: holder.map(|h| (h.to_owned(), since)),
        waiting: waiting.iter().map(|w| (*w).to_owned()).collect(),
    }
}

async fn locks_are_granted_first_come_first_served(s: Store) {
    for id in ["a", "b", "c"] {
        first_episode(&s, id, Vec::new(), "h", T0).await;
    }
    episode(&s, "a", vec![acquire(1, &["x"])], RuntimeStatus::Running, T0 + 1).await;
    episode(&s, "b", vec![acquire(2, &["x"])], RuntimeStatus::Running, T0 + 2).await;
    episode(&s, "c", vec![acquire(3, &["x"])], RuntimeStatus::Running, T0 + 3).await;
    assert_eq!(
        inbox(&s, "a", T0 + 3).await,
        vec![grant(1)],
        "exactly the request's grant"
    );
    assert!(inbox(&s, "b", T0 + 3).await.is_empty());
    assert!(inbox(&s, "c", T0 + 3).await.is_empty());
    assert_eq!(
        s.list_locks().await.unwrap(),
        vec![lock("x", Some("a"), T0 + 1, &["b", "c"])]
    );

    // A leaves the section: B (first in line) gets it, in that checkpoint.
    episode(
        &s,
        "a",
        vec![Outbox::ReleaseLocks { lock: 1 }],
        RuntimeStatus::Running,
        T0 + 4,
    )
    .await;
    assert_eq!(inbox(&s, "b", T0 + 4).await, vec![grant(2)]);
    assert!(inbox(&s, "c", T0 + 4).await.is_empty());
    assert_eq!(
        s.list_locks().await.unwrap(),
        vec![lock("x", Some("b"), T0 + 4, &["c"])]
    );
    // Releasing a section it is not in changes nothing.
    episode(
        &s,
        "a",
        vec![Outbox::ReleaseLocks { lock: 1 }],
        RuntimeStatus::Running,
        T0 + 5,
    )
    .await;
    assert_eq!(
        s.list_locks().await.unwrap(),
        vec![lock("x", Some("b"), T0 + 4, &["c"])]
    );
    episode(
        &s,
        "b",
        vec![Outbox::ReleaseLocks { lock: 2 }],
        RuntimeStatus::Running,
        T0 + 6,
    )
    .await;
    assert_eq!(inbox(&s, "c", T0 + 6).await, vec![grant(3)]);
    episode(
        &s,
        "c",
        vec![Outbox::ReleaseLocks { lock: 3 }],
        RuntimeStatus::Running,
        T0 + 7,
    )
    .await;
    assert!(s.list_locks().await.unwrap().is_empty());
}

async fn locks_are_released_in_the_checkpoint_that_ends_the_holder(s: Store) {
    for id in ["a", "b", "c"] {
        first_episode(&s, id, Vec::new(), "h", T0).await;
    }
    episode(&s, "a", vec![acquire(1, &["x"])], RuntimeStatus::Running, T0 + 1).await;
    episode(&s, "b", vec![acquire(1, &["x"])], RuntimeStatus::Running, T0 + 2).await;
    // A completes without unlocking: B is granted in the same commit.
    episode(&s, "a", Vec::new(), RuntimeStatus::Completed, T0 + 3).await;
    assert_eq!(inbox(&s, "b", T0 + 3).await, vec![grant(1)]);
    assert_eq!(s.list_locks().await.unwrap(), vec![lock("x", Some("b"), T0 + 3, &[])]);
    // B continues as new while holding it: released too, and C's waiting
    // request is granted.
    episode(&s, "c", vec![acquire(5, &["x"])], RuntimeStatus::Running, T0 + 4).await;
    let row = s.get_instance("b").await.unwrap().unwrap();
    let ep = s.load_episode("b", T0 + 5, None).await.unwrap().unwrap();
    let next = cairn::decide::new_execution("b", "b-e2".into(), "Orch", "v1", "null", None, Vec::new(), T0 + 5);
    let mut cp = checkpoint(
        &row,
        ep.messages.iter().map(|m| m.id).collect(),
        vec![Event::ExecutionCompleted {
            status: CompletionStatus::ContinuedAsNew,
            result: None,
            failure: None,
        }],
        RuntimeStatus::ContinuedAsNew,
        vec![Outbox::NextExecution(next)],
        T0 + 5,
    );
    cp.output = None;
    s.checkpoint(cp, lease("h")).await.unwrap();
    assert_eq!(inbox(&s, "c", T0 + 5).await, vec![grant(5)]);
    assert_eq!(s.list_locks().await.unwrap(), vec![lock("x", Some("c"), T0 + 5, &[])]);
}

async fn a_request_for_several_locks_waits_for_all(s: Store) {
    for id in ["a", "b", "c"] {
        first_episode(&s, id, Vec::new(), "h", T0).await;
    }
    episode(&s, "a", vec![acquire(1, &["y"])], RuntimeStatus::Running, T0 + 1).await;
    // B wants x and y (sorted): takes x, waits for y.
    episode(&s, "b", vec![acquire(1, &["x", "y"])], RuntimeStatus::Running, T0 + 2).await;
    // C wants x: waits behind B.
    episode(&s, "c", vec![acquire(1, &["x"])], RuntimeStatus::Running, T0 + 3).await;
    assert!(inbox(&s, "b", T0 + 3).await.is_empty());
    assert_eq!(
        s.list_locks().await.unwrap(),
        vec![
            lock("x", Some("b"), T0 + 2, &["c"]),
            lock("y", Some("a"), T0 + 1, &["b"])
        ]
    );
    // C gives up (terminated while waiting): its request is withdrawn.
    episode(&s, "c", Vec::new(), RuntimeStatus::Terminated, T0 + 4).await;
    assert_eq!(
        s.list_locks().await.unwrap(),
        vec![lock("x", Some("b"), T0 + 2, &[]), lock("y", Some("a"), T0 + 1, &["b"])]
    );
    // A fails holding y: B now holds both and is granted once.
    episode(&s, "a", Vec::new(), RuntimeStatus::Failed, T0 + 5).await;
    assert_eq!(inbox(&s, "b", T0 + 5).await, vec![grant(1)]);
    assert_eq!(
        s.list_locks().await.unwrap(),
        vec![lock("x", Some("b"), T0 + 2, &[]), lock("y", Some("b"), T0 + 5, &[])]
    );
    // delete_all leaves no lock behind.
    assert_eq!(s.delete_all().await.unwrap(), 3);
    assert!(s.list_locks().await.unwrap().is_empty());
    first_episode(&s, "d", Vec::new(), "h", T0 + 6).await;
    episode(&s, "d", vec![acquire(1, &["x", "y"])], RuntimeStatus::Running, T0 + 7).await;
    assert_eq!(inbox(&s, "d", T0 + 7).await, vec![grant(1)]);
}
