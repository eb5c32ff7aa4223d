//! Entities: requests queued for an entity (its row created on first
//! use), idempotency keys, batches applied exactly once, requests parked
//! behind the entity's lock and due again when it is released, listing,
//! purge and delete.

use cairn::decide::entity::{client_signal, request_for};
use cairn::decide::{EntityPlan, OperationDone, entity_commit, plan_entity};
use cairn::history::Event;
use cairn::ids::EntityId;
use cairn::store::{EntityCommit, EntityQuery, InboxMessage, Outbox, RuntimeStatus, Store, StoreError};

use crate::*;

crate::conformance!(
    a_signal_creates_the_entity_and_is_queued_in_order,
    an_idempotency_key_is_received_once_per_entity,
    a_batch_is_applied_once,
    requests_are_parked_behind_the_entity_lock_until_it_is_released,
    calls_reply_to_the_caller_and_orchestrations_address_entities,
    entities_are_listed_purged_and_deleted,
);

fn counter(key: &str) -> EntityId {
    EntityId::new("Counter", key).unwrap()
}

/// Queues a client signal.
async fn signal(s: &Store, e: &EntityId, op: &str, input: &str, key: Option<&str>, now: u64) -> bool {
    let Outbox::ToEntity { name, message } = client_signal(e, format!("r-{op}-{input}-{now}"), op, input, now) else {
        unreachable!()
    };
    s.send_to_entity(&name, message, key.map(str::to_owned), now)
        .await
        .unwrap()
}

async fn queue(s: &Store, e: &EntityId, now: u64) -> Vec<InboxMessage> {
    let key = Some((String::new(), 0, String::new()));
    s.load_episode(&e.instance_id(), now, key)
        .await
        .unwrap()
        .map(|ep| ep.messages)
        .unwrap_or_default()
}

fn ops(messages: &[InboxMessage]) -> Vec<(String, String)> {
    messages
        .iter()
        .map(|m| match &m.event {
            Event::EntityRequest { operation, input, .. } => (operation.clone(), input.clone()),
            other => panic!("not a request: {other:?}"),
        })
        .collect()
}

/// Every planned request done with `result`, no effects.
fn all_done(plan: &EntityPlan, result: &str) -> Vec<OperationDone> {
    plan.run
        .iter()
        .map(|_| OperationDone {
            outcome: Ok(result.to_owned()),
            effects: Vec::new(),
        })
        .collect()
}

/// Plans and commits one batch with `state` as the new state.
async fn batch(s: &Store, e: &EntityId, state: Option<&str>, now: u64) -> Result<EntityPlan, StoreError> {
    let messages = queue(s, e, now).await;
    let holder = s.lock_holder(&e.instance_id()).await.unwrap();
    let plan = plan_entity(&messages, holder.as_deref(), 1000);
    let kept = EntityPlan {
        run: plan.run.clone(),
        parked: plan.parked.clone(),
        dropped: plan.dropped.clone(),
        holder: plan.holder.clone(),
    };
    let done = all_done(&plan, "null");
    let mut ids = || "x".to_owned();
    let (commit, _) = entity_commit(
        e,
        plan,
        state.map(str::to_owned),
        done,
        now,
        &Default::default(),
        &mut ids,
    );
    s.commit_entity(commit, lease("h")).await.map(|()| kept)
}

async fn a_signal_creates_the_entity_and_is_queued_in_order(s: Store) {
    let c = counter("a");
    assert!(s.get_instance(&c.instance_id()).await.unwrap().is_none());
    for (i, n) in ["1", "2", "3"].iter().enumerate() {
        assert!(signal(&s, &c, "add", n, None, T0 + i as u64).await);
    }
    // A scheduled signal stays invisible until due.
    let Outbox::ToEntity { name, message } = client_signal(&c, "later".into(), "add", "10", T0 + 1000) else {
        unreachable!()
    };
    s.send_to_entity(&name, message, None, T0 + 3).await.unwrap();
    let row = s.get_instance(&c.instance_id()).await.unwrap().unwrap();
    assert_eq!(
        (row.name.as_str(), row.status, row.output.as_deref()),
        ("Counter", RuntimeStatus::Running, None)
    );
    assert!(
        s.due_instances(T0 + 3, 10, "h")
            .await
            .unwrap()
            .contains(&c.instance_id())
    );
    let q = ops(&queue(&s, &c, T0 + 3).await);
    assert_eq!(
        q,
        [
            ("add".into(), "1".into()),
            ("add".into(), "2".into()),
            ("add".into(), "3".into())
        ]
    );
    assert_eq!(queue(&s, &c, T0 + 1000).await.len(), 4);
}

async fn an_idempotency_key_is_received_once_per_entity(s: Store) {
    let (a, b) = (counter("a"), counter("b"));
    assert!(signal(&s, &a, "add", "1", Some("k"), T0).await);
    assert!(
        !signal(&s, &a, "add", "1", Some("k"), T0 + 1).await,
        "the same key again"
    );
    assert!(signal(&s, &b, "add", "1", Some("k-b"), T0 + 2).await);
    assert_eq!(queue(&s, &a, T0 + 2).await.len(), 1);
    // Applied and gone from the queue, the key is still remembered.
    batch(&s, &a, Some("1"), T0 + 3).await.unwrap();
    assert!(!signal(&s, &a, "add", "1", Some("k"), T0 + 4).await);
    assert!(queue(&s, &a, T0 + 4).await.is_empty());
    // After the window it is forgotten.
    let later = T0 + cairn::store::DEDUP_WINDOW_MS + 10;
    assert!(signal(&s, &a, "add", "1", Some("k"), later).await);
}

async fn a_batch_is_applied_once(s: Store) {
    let c = counter("a");
    signal(&s, &c, "add", "5", None, T0).await;
    // Two hosts plan the same batch; the second commit is refused whole.
    let messages = queue(&s, &c, T0).await;
    let make = |state: &str| {
        let plan = plan_entity(&messages, None, 1000);
        let done = all_done(&plan, "null");
        let mut ids = || "x".to_owned();
        entity_commit(
            &c,
            plan,
            Some(state.to_owned()),
            done,
            T0 + 1,
            &Default::default(),
            &mut ids,
        )
        .0
    };
    let (first, second): (EntityCommit, EntityCommit) = (make("5"), make("10"));
    s.commit_entity(first, lease("h1")).await.unwrap();
    assert!(matches!(
        s.commit_entity(second, lease("h2")).await,
        Err(StoreError::Conflict(_))
    ));
    let row = s.get_instance(&c.instance_id()).await.unwrap().unwrap();
    assert_eq!(row.output.as_deref(), Some("5"));
    assert_eq!(row.updated_at, T0 + 1);
    assert!(queue(&s, &c, T0 + 2).await.is_empty());
    // An instance lease held by another host refuses a batch too.
    signal(&s, &c, "add", "1", None, T0 + 3).await;
    assert!(
        s.lease_instance(&c.instance_id(), &lease("other"), T0 + 3)
            .await
            .unwrap()
    );
    assert!(matches!(
        batch(&s, &c, Some("6"), T0 + 4).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn requests_are_parked_behind_the_entity_lock_until_it_is_released(s: Store) {
    let c = counter("a");
    // Orchestration "o" holds the entity's lock.
    let row = first_episode(
        &s,
        "o",
        vec![Outbox::AcquireLocks {
            task_id: 0,
            names: vec![c.instance_id()],
            granted: Event::LockGranted { task_id: 0 },
        }],
        "h",
        T0,
    )
    .await;
    assert_eq!(s.lock_holder(&c.instance_id()).await.unwrap().as_deref(), Some("o"));
    // A client's signal, then a call from the holder.
    signal(&s, &c, "add", "1", None, T0 + 1).await;
    let call = Event::EntityOperationCalled {
        task_id: 1,
        entity: c.to_string(),
        operation: "get".into(),
        input: "null".into(),
    };
    let ep = s.load_episode("o", T0 + 2, None).await.unwrap().unwrap();
    let consumed = ep.messages.iter().map(|m| m.id).collect();
    let outbox = vec![request_for("o", &row.execution_id, &call, T0 + 2).unwrap()];
    let cp = checkpoint(
        &ep.instance,
        consumed,
        vec![Event::OrchestratorStarted, call],
        RuntimeStatus::Running,
        outbox,
        T0 + 2,
    );
    s.checkpoint(cp, lease("h")).await.unwrap();
    // The batch runs the holder's call and parks the signal.
    let plan = batch(&s, &c, Some("0"), T0 + 3).await.unwrap();
    assert_eq!(plan.run.len(), 1);
    assert_eq!(plan.run[0].operation, "get");
    assert_eq!(plan.parked.len(), 1);
    assert!(queue(&s, &c, T0 + 4).await.is_empty(), "parked requests are not due");
    assert!(
        !s.due_instances(T0 + 4, 10, "h")
            .await
            .unwrap()
            .contains(&c.instance_id())
    );
    // The reply reached the caller.
    assert!(inbox(&s, "o", T0 + 4).await.contains(&Event::EntityOperationCompleted {
        task_id: 1,
        result: "null".into()
    }));
    // Parking under a holder that released meanwhile is refused.
    signal(&s, &c, "add", "2", None, T0 + 5).await;
    let messages = queue(&s, &c, T0 + 5).await;
    let stale = plan_entity(&messages, Some("o"), 1000);
    assert_eq!(stale.parked.len(), 1);
    // The holder ends: its lock is released and the parked signal is due again, in order.
    let row = s.get_instance("o").await.unwrap().unwrap();
    complete(&s, &row, "h", T0 + 6).await;
    assert_eq!(s.lock_holder(&c.instance_id()).await.unwrap(), None);
    let mut ids = || "x".to_owned();
    let done = all_done(&stale, "null");
    let (commit, _) = entity_commit(&c, stale, Some("0".into()), done, T0 + 7, &Default::default(), &mut ids);
    assert!(matches!(
        s.commit_entity(commit, lease("h")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        ops(&queue(&s, &c, T0 + 8).await),
        [("add".into(), "1".into()), ("add".into(), "2".into())]
    );
    assert!(
        s.due_instances(T0 + 8, 10, "h")
            .await
            .unwrap()
            .contains(&c.instance_id())
    );
}

async fn calls_reply_to_the_caller_and_orchestrations_address_entities(s: Store) {
    let c = counter("x");
    let row = first_episode(&s, "caller", Vec::new(), "h", T0).await;
    let signal_event = Event::EntityOperationSignaled {
        task_id: 0,
        entity: c.to_string(),
        operation: "add".into(),
        input: "4".into(),
        scheduled_at: Some(T0 + 100),
    };
    let call = Event::EntityOperationCalled {
        task_id: 1,
        entity: c.to_string(),
        operation: "get".into(),
        input: "null".into(),
    };
    let outbox: Vec<Outbox> = [&signal_event, &call]
        .iter()
        .map(|e| request_for("caller", &row.execution_id, e, T0 + 1).unwrap())
        .collect();
    let ep = s.load_episode("caller", T0 + 1, None).await.unwrap().unwrap();
    let cp = checkpoint(
        &ep.instance,
        Vec::new(),
        vec![Event::OrchestratorStarted, signal_event, call],
        RuntimeStatus::Running,
        outbox,
        T0 + 1,
    );
    s.checkpoint(cp, lease("h")).await.unwrap();
    // Now: the call; at T0+100: the scheduled signal.
    assert_eq!(ops(&queue(&s, &c, T0 + 2).await), [("get".into(), "null".into())]);
    let messages = queue(&s, &c, T0 + 2).await;
    let plan = plan_entity(&messages, None, 1000);
    let done = vec![OperationDone {
        outcome: Err(cairn::history::Failure::new("NotFound", "no such operation")),
        effects: Vec::new(),
    }];
    let mut ids = || "x".to_owned();
    let (commit, _) = entity_commit(&c, plan, None, done, T0 + 3, &Default::default(), &mut ids);
    s.commit_entity(commit, lease("h")).await.unwrap();
    assert_eq!(
        inbox(&s, "caller", T0 + 3).await,
        vec![Event::EntityOperationFailed {
            task_id: 1,
            failure: cairn::history::Failure::new("NotFound", "no such operation"),
        }]
    );
    assert_eq!(ops(&queue(&s, &c, T0 + 100).await), [("add".into(), "4".into())]);
}

async fn entities_are_listed_purged_and_deleted(s: Store) {
    for (k, at) in [("a", 1), ("b", 2), ("c", 3)] {
        let c = counter(k);
        signal(&s, &c, "add", "1", None, T0 + at).await;
        batch(&s, &c, if k == "b" { None } else { Some("1") }, T0 + at)
            .await
            .unwrap();
    }
    let acct = EntityId::new("Account", "z").unwrap();
    signal(&s, &acct, "deposit", "1", None, T0 + 4).await;
    batch(&s, &acct, Some("1"), T0 + 4).await.unwrap();
    first_episode(&s, "plain", Vec::new(), "h", T0).await;
    let ids = |rows: Vec<cairn::store::InstanceRow>| rows.into_iter().map(|r| r.instance_id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_entities(EntityQuery::default()).await.unwrap()),
        ["@Account@z", "@Counter@a", "@Counter@c"],
        "entities with state, by id"
    );
    let q = EntityQuery {
        name: Some("Counter".into()),
        include_empty: true,
        last_op_from: Some(T0 + 2),
        ..EntityQuery::default()
    };
    assert_eq!(ids(s.list_entities(q).await.unwrap()), ["@Counter@b", "@Counter@c"]);
    let q = EntityQuery {
        top: Some(1),
        after: Some("@Counter@a".into()),
        ..EntityQuery::default()
    };
    assert_eq!(ids(s.list_entities(q).await.unwrap()), ["@Counter@c"]);
    assert_eq!(ids(s.list_instances(Default::default()).await.unwrap()), ["plain"]);
    // Purge takes only entities without state, queue or lock.
    assert_eq!(s.purge_empty_entities(Some("Account".into())).await.unwrap(), 0);
    assert_eq!(s.purge_empty_entities(None).await.unwrap(), 1);
    assert!(s.get_instance("@Counter@b").await.unwrap().is_none());
    assert!(s.delete_entity("@Counter@a").await.unwrap());
    assert!(!s.delete_entity("@Counter@a").await.unwrap());
    assert_eq!(
        ids(s.list_entities(EntityQuery::default()).await.unwrap()),
        ["@Account@z", "@Counter@c"]
    );
}
