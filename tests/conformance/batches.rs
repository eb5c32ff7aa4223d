//! Many episodes at once: starts, lease takes, loads, checkpoints, results
//! and releases of different instances issued concurrently (a backend may
//! answer them together, e.g. PostgreSQL's group commit and grouped reads)
//! each get exactly their own instance's answer.

use cairn::history::Event;
use cairn::store::{Lease, Outbox, RuntimeStatus, Store, StoreError};
use futures_util::future::join_all;

use crate::*;

crate::conformance!(
    concurrent_episodes_each_get_their_own_answers,
    a_refused_checkpoint_among_concurrent_ones_writes_nothing,
);

const N: usize = 40;

fn id(i: usize) -> String {
    format!("many-{i:02}")
}

fn owner(i: usize) -> Lease {
    Lease {
        owner: if i.is_multiple_of(2) { "even" } else { "odd" }.to_owned(),
        duration_ms: 10_000,
    }
}

async fn concurrent_episodes_each_get_their_own_answers(s: Store) {
    // Starts at once.
    let started = join_all((0..N).map(|i| {
        let s = s.clone();
        async move {
            s.create_instance(new_execution(&id(i), &format!("{}-e1", id(i)), T0), T0)
                .await
        }
    }))
    .await;
    assert!(started.iter().all(Result::is_ok), "{started:?}");
    // Lease takes at once, then a second owner's takes: all refused.
    let taken = join_all((0..N).map(|i| {
        let s = s.clone();
        async move { s.lease_instance(&id(i), &owner(i), T0).await.unwrap() }
    }))
    .await;
    assert!(taken.iter().all(|t| *t), "{taken:?}");
    let stolen = join_all((0..N).map(|i| {
        let s = s.clone();
        async move { s.lease_instance(&id(i), &owner(i + 1), T0 + 1).await.unwrap() }
    }))
    .await;
    assert!(stolen.iter().all(|t| !*t), "{stolen:?}");
    // Cold loads at once: each its own start message, no history.
    let loads = join_all((0..N).map(|i| {
        let s = s.clone();
        async move { s.load_episode(&id(i), T0 + 1, None).await.unwrap().unwrap() }
    }))
    .await;
    for (i, ep) in loads.iter().enumerate() {
        assert_eq!(ep.instance.instance_id, id(i));
        assert_eq!(ep.history.as_deref().map(<[_]>::len), Some(0), "{}", id(i));
        assert_eq!(ep.messages.len(), 1, "{}", id(i));
        assert!(
            matches!(&ep.messages[0].event, Event::ExecutionStarted { execution_id, .. } if *execution_id == format!("{}-e1", id(i))),
            "{:?}",
            ep.messages[0]
        );
    }
    // Checkpoints at once, each with 2 + i events and a work item for the
    // even ones.
    let cps = join_all(loads.iter().enumerate().map(|(i, ep)| {
        let s = s.clone();
        let mut events = vec![Event::OrchestratorStarted, ep.messages[0].event.clone()];
        events.extend((0..i).map(|k| raised(&format!("e{k}"))));
        let outbox = if i.is_multiple_of(2) {
            vec![Outbox::WorkItem {
                task_id: 0,
                name: format!("act-{i}"),
                input: "null".into(),
                retry: None,
                attempt: 1,
            }]
        } else {
            Vec::new()
        };
        let mut cp = checkpoint(
            &ep.instance,
            vec![ep.messages[0].id],
            events,
            RuntimeStatus::Running,
            outbox,
            T0 + 2,
        );
        cp.lease_until = Some(T0 + 10_000);
        async move { s.checkpoint(cp, owner(i)).await }
    }))
    .await;
    assert!(cps.iter().all(Result::is_ok), "{cps:?}");
    for i in 0..N {
        let row = s.get_instance(&id(i)).await.unwrap().unwrap();
        assert_eq!(row.history_len, 2 + i as u64, "{}", id(i));
        assert_eq!(row.status, RuntimeStatus::Running);
        assert_eq!(s.get_history(&id(i)).await.unwrap().len(), 2 + i);
    }
    // Messages: up to four to each instance, each its own.
    for i in 0..N {
        for k in 0..=i.min(3) {
            s.send_message(&id(i), raised(&format!("m{i}-{k}")), T0 + 3)
                .await
                .unwrap();
        }
    }
    // Loads at once: hot with the current key, hot with a stale key, cold.
    let loads = join_all((0..N).map(|i| {
        let s = s.clone();
        async move {
            let key = match i % 3 {
                0 => Some((format!("{}-e1", id(i)), 2 + i as u64, "v1".to_owned())),
                1 => Some((format!("{}-e1", id(i)), 1, "v1".to_owned())),
                _ => None,
            };
            s.load_episode(&id(i), T0 + 3, key).await.unwrap().unwrap()
        }
    }))
    .await;
    for (i, ep) in loads.iter().enumerate() {
        assert_eq!(ep.instance.instance_id, id(i));
        let names: Vec<String> = ep
            .messages
            .iter()
            .map(|m| match &m.event {
                Event::EventRaised { name, .. } => name.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        let want: Vec<String> = (0..=i.min(3)).map(|k| format!("m{i}-{k}")).collect();
        assert_eq!(names, want, "{}: oldest first, only its own", id(i));
        match i % 3 {
            0 => assert!(ep.history.is_none(), "{}: the hot copy is current", id(i)),
            _ => assert_eq!(ep.history.as_ref().map(Vec::len), Some(2 + i), "{}", id(i)),
        }
    }
    // Releases at once: the other owner's release changes nothing.
    join_all((0..N).map(|i| {
        let s = s.clone();
        async move { s.release_instance(&id(i), &owner(i + 1).owner).await.unwrap() }
    }))
    .await;
    let held = s.instance_leases(None, T0 + 4).await.unwrap();
    assert_eq!(held.len(), N, "{held:?}");
    join_all((0..N).map(|i| {
        let s = s.clone();
        async move { s.release_instance(&id(i), &owner(i).owner).await.unwrap() }
    }))
    .await;
    assert!(s.instance_leases(None, T0 + 4).await.unwrap().is_empty());
}

async fn a_refused_checkpoint_among_concurrent_ones_writes_nothing(s: Store) {
    let rows = join_all((0..N).map(|i| {
        let s = s.clone();
        async move { first_episode(&s, &id(i), Vec::new(), "h1", T0).await }
    }))
    .await;
    for i in 0..N {
        s.send_message(&id(i), raised("go"), T0 + 1).await.unwrap();
    }
    // Every fifth checkpoint comes from a stale history length; the others
    // end their instance, each scheduling nothing.
    let results = join_all(rows.iter().enumerate().map(|(i, row)| {
        let s = s.clone();
        let mut row = row.clone();
        if i.is_multiple_of(5) {
            row.history_len -= 1;
        }
        async move {
            let ep = s.load_episode(&row.instance_id, T0 + 2, None).await.unwrap().unwrap();
            let consumed = ep.messages.iter().map(|m| m.id).collect();
            let cp = checkpoint(
                &row,
                consumed,
                completed(),
                RuntimeStatus::Completed,
                Vec::new(),
                T0 + 2,
            );
            s.checkpoint(cp, lease("h1")).await
        }
    }))
    .await;
    for (i, r) in results.iter().enumerate() {
        let row = s.get_instance(&id(i)).await.unwrap().unwrap();
        if i.is_multiple_of(5) {
            assert!(matches!(r, Err(StoreError::Conflict(c)) if *c == id(i)), "{r:?}");
            assert_eq!(row.status, RuntimeStatus::Running, "{}: untouched", id(i));
            assert_eq!(row.history_len, rows[i].history_len);
            assert_eq!(inbox(&s, &id(i), T0 + 2).await.len(), 1, "{}: its message stays", id(i));
        } else {
            assert!(r.is_ok(), "{}: {r:?}", id(i));
            assert_eq!(row.status, RuntimeStatus::Completed);
            assert_eq!(row.history_len, rows[i].history_len + completed().len() as u64);
            assert!(inbox(&s, &id(i), T0 + 2).await.is_empty());
        }
    }
}
