//! Activity work items: leased to one owner at a time, redelivered with
//! attempt + 1 only after the lease expires, completed only by the holder.

use cairn::decide;
use cairn::history::{Event, Failure, RetryPolicy};
use cairn::store::{Lease, Outbox, Store};

use crate::*;

crate::conformance!(
    work_items_are_leased_to_one_owner_and_redelivered_after_expiry,
    a_completion_by_a_lost_lease_writes_nothing,
    concurrent_claims_never_share_an_item,
    a_retry_keeps_the_item_for_later_with_the_next_attempt,
);

fn work(task_id: u32, retry: Option<RetryPolicy>) -> Outbox {
    Outbox::WorkItem {
        task_id,
        name: "Act".into(),
        input: format!("\"in{task_id}\""),
        retry,
        attempt: 1,
    }
}

fn owner(name: &str, ms: u64) -> Lease {
    Lease {
        owner: name.to_owned(),
        duration_ms: ms,
    }
}

async fn work_items_are_leased_to_one_owner_and_redelivered_after_expiry(s: Store) {
    let mut notes = s.subscribe();
    // The checkpoint leases its work to the committing host (lease: 1 s).
    let row = first_episode(&s, "w", vec![work(0, None)], "a", T0).await;
    let mut announced = None;
    notes_until(&mut notes, |n| {
        if let Some(item) = n.work.first() {
            assert_eq!(n.work.len(), 1);
            announced = Some(item.clone());
            true
        } else {
            false
        }
    })
    .await;
    let item = announced.unwrap();
    assert_eq!(
        (item.instance_id.as_str(), item.execution_id.as_str(), item.task_id),
        ("w", row.execution_id.as_str(), 0)
    );
    assert_eq!(
        (item.name.as_str(), item.input.as_str(), item.attempt),
        ("Act", "\"in0\"", 1)
    );
    assert_eq!(item.first_scheduled, T0);
    // Nobody else gets it while the lease runs, the holder included.
    assert!(
        s.claim_work_items(owner("b", 1_000), T0 + 999, false, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.claim_work_items(owner("a", 1_000), T0 + 999, false, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Expired: redelivered, attempt + 1.
    let again = s
        .claim_work_items(owner("b", 1_000), T0 + 1_000, false, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, item.id);
    assert_eq!(again[0].attempt, 2);
    assert!(
        s.claim_work_items(owner("c", 1_000), T0 + 1_500, false, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // `reclaim_all` (the only host at start-up) takes every foreign lease.
    let taken = s
        .claim_work_items(owner("c", 1_000), T0 + 1_500, true, 10)
        .await
        .unwrap();
    assert_eq!((taken.len(), taken[0].attempt), (1, 3));
    assert!(
        s.claim_work_items(owner("c", 1_000), T0 + 1_500, true, 10)
            .await
            .unwrap()
            .is_empty(),
        "not its own"
    );
    // A clean shutdown releases them: the next claim is not a redelivery.
    s.release_leases("c".into()).await.unwrap();
    let next = s
        .claim_work_items(owner("d", 1_000), T0 + 1_600, false, 10)
        .await
        .unwrap();
    assert_eq!(next[0].attempt, 3);
}

async fn a_completion_by_a_lost_lease_writes_nothing(s: Store) {
    first_episode(&s, "l", vec![work(0, None)], "a", T0).await;
    let taken = s
        .claim_work_items(owner("b", 1_000), T0 + 1_000, false, 10)
        .await
        .unwrap();
    let item = taken[0].clone();
    let mut stale = item.clone();
    stale.attempt = 1;
    let depths = s.queue_depths().await.unwrap();
    let done = decide::activity_outcome(&stale, Ok("\"from a\"".into()), T0 + 1_001, 10);
    assert!(!s.complete_work_item(stale, "a".into(), done, T0 + 1_001).await.unwrap());
    assert_eq!(s.queue_depths().await.unwrap(), depths, "nothing written");
    assert!(inbox(&s, "l", T0 + 1_001).await.is_empty());
    // The holder's completion delivers the result and removes the item.
    let done = decide::activity_outcome(&item, Ok("\"from b\"".into()), T0 + 1_002, 10);
    assert!(
        s.complete_work_item(item.clone(), "b".into(), done, T0 + 1_002)
            .await
            .unwrap()
    );
    assert_eq!(
        inbox(&s, "l", T0 + 1_002).await,
        vec![Event::TaskCompleted {
            task_id: 0,
            result: "\"from b\"".into()
        }]
    );
    assert_eq!(s.queue_depths().await.unwrap().1, 0);
    // Completing twice is a lost lease too.
    let done = decide::activity_outcome(&item, Ok("\"again\"".into()), T0 + 1_003, 10);
    assert!(!s.complete_work_item(item, "b".into(), done, T0 + 1_003).await.unwrap());
    assert_eq!(inbox(&s, "l", T0 + 1_003).await.len(), 1);
}

async fn concurrent_claims_never_share_an_item(s: Store) {
    let items: Vec<Outbox> = (0..40).map(|t| work(t, None)).collect();
    first_episode(&s, "many", items, "a", T0).await;
    let claim = |o: &'static str| {
        let s = s.clone();
        async move {
            let mut got = Vec::new();
            for _ in 0..8 {
                got.extend(s.claim_work_items(owner(o, 1_000), T0 + 1_000, false, 5).await.unwrap());
            }
            got
        }
    };
    let (x, y, z) = tokio::join!(claim("x"), claim("y"), claim("z"));
    let mut ids: Vec<i64> = x.iter().chain(&y).chain(&z).map(|i| i.id).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "an item was claimed twice");
    assert_eq!(n, 40, "every item was claimed once");
    assert!(x.iter().chain(&y).chain(&z).all(|i| i.attempt == 2));
}

async fn a_retry_keeps_the_item_for_later_with_the_next_attempt(s: Store) {
    let policy = RetryPolicy {
        max_attempts: 3,
        first_interval_ms: 5_000,
        backoff_coefficient: 1.0,
        max_interval_ms: None,
        retry_timeout_ms: None,
    };
    first_episode(&s, "r", vec![work(0, Some(policy.clone()))], "a", T0).await;
    let item = s
        .claim_work_items(owner("a", 1_000), T0 + 1_000, false, 10)
        .await
        .unwrap()[0]
        .clone();
    assert_eq!(item.retry.as_ref(), Some(&policy));
    let outcome = decide::activity_outcome(&item, Err(Failure::new("Flaky", "try again")), T0 + 1_100, 10);
    let retry_at = outcome.retry_at.expect("the policy retries");
    assert_eq!(retry_at, T0 + 6_100);
    assert!(
        s.complete_work_item(item.clone(), "a".into(), outcome.clone(), T0 + 1_100)
            .await
            .unwrap()
    );
    assert_eq!(inbox(&s, "r", T0 + 1_100).await, vec![outcome.message]);
    assert!(
        s.claim_work_items(owner("b", 1_000), retry_at - 1, false, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let next = s
        .claim_work_items(owner("b", 1_000), retry_at, false, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].id, next[0].attempt), (item.id, item.attempt + 1));
}
