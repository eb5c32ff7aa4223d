//! Instance leases: exclusive, expiring, renewable, taken over only after
//! expiry; a checkpoint by a host that lost its lease is refused.

use cairn::history::Event;
use cairn::store::{Lease, RuntimeStatus, Store, StoreError};

use crate::*;

crate::conformance!(
    instance_leases_are_exclusive_expire_and_renew,
    a_checkpoint_by_a_host_whose_lease_was_taken_over_is_refused,
    due_instances_skip_instances_leased_to_others,
    releasing_and_reclaiming_leases,
);

fn held(owner: &str, ms: u64) -> Lease {
    Lease {
        owner: owner.to_owned(),
        duration_ms: ms,
    }
}

async fn instance_leases_are_exclusive_expire_and_renew(s: Store) {
    start(&s, "i", T0).await;
    assert!(!s.lease_instance("unknown", &held("a", 1_000), T0).await.unwrap());
    assert!(s.lease_instance("i", &held("a", 1_000), T0).await.unwrap());
    assert!(
        s.lease_instance("i", &held("a", 1_000), T0 + 10).await.unwrap(),
        "the holder renews"
    );
    assert!(
        !s.lease_instance("i", &held("b", 1_000), T0 + 500).await.unwrap(),
        "exclusive"
    );
    // Renewed at T0 + 900 until T0 + 1_900: still not B's at T0 + 1_500.
    let lost = s
        .renew_instance_leases(vec!["i".into(), "unknown".into()], &held("a", 1_000), T0 + 900)
        .await
        .unwrap();
    assert_eq!(lost, ["unknown"]);
    assert!(!s.lease_instance("i", &held("b", 1_000), T0 + 1_500).await.unwrap());
    assert!(!s.lease_instance("i", &held("b", 1_000), T0 + 1_899).await.unwrap());
    // Expired: B takes it over, and A's renewal reports it lost.
    assert!(s.lease_instance("i", &held("b", 1_000), T0 + 1_900).await.unwrap());
    let lost = s
        .renew_instance_leases(vec!["i".into()], &held("a", 1_000), T0 + 1_901)
        .await
        .unwrap();
    assert_eq!(lost, ["i"]);
    assert!(!s.lease_instance("i", &held("a", 1_000), T0 + 1_902).await.unwrap());
    // Two hosts racing for an expired lease: exactly one gets it.
    let (hx, hy) = (held("x", 1_000), held("y", 1_000));
    let (x, y) = tokio::join!(
        s.lease_instance("i", &hx, T0 + 3_000),
        s.lease_instance("i", &hy, T0 + 3_000)
    );
    assert!(
        x.unwrap() ^ y.unwrap(),
        "exactly one of two hosts takes an expired lease"
    );
}

async fn a_checkpoint_by_a_host_whose_lease_was_taken_over_is_refused(s: Store) {
    start(&s, "t", T0).await;
    assert!(s.lease_instance("t", &held("a", 1_000), T0).await.unwrap());
    let ep = s.load_episode("t", T0, None).await.unwrap().unwrap();
    let mut cp = checkpoint(
        &ep.instance,
        vec![ep.messages[0].id],
        vec![
            Event::OrchestratorStarted,
            ep.messages[0].event.clone(),
            Event::OrchestratorCompleted,
        ],
        RuntimeStatus::Running,
        Vec::new(),
        T0 + 100,
    );
    cp.lease_until = Some(T0 + 1_100);
    // B cannot commit while A's lease runs.
    let err = s.checkpoint(cp.clone(), held("b", 1_000)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // A is slow: its lease expires and B takes the instance over.
    assert!(s.lease_instance("t", &held("b", 1_000), T0 + 1_000).await.unwrap());
    let mut late = cp.clone();
    late.now = T0 + 1_050;
    let err = s.checkpoint(late, held("a", 1_000)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(s.get_history("t").await.unwrap().is_empty(), "nothing of A's episode");
    // B's checkpoint commits, and keeps B's lease until `lease_until`.
    let mut mine = cp;
    mine.now = T0 + 1_050;
    mine.lease_until = Some(T0 + 5_000);
    s.checkpoint(mine, held("b", 1_000)).await.unwrap();
    assert_eq!(s.get_history("t").await.unwrap().len(), 3);
    assert!(!s.lease_instance("t", &held("a", 1_000), T0 + 4_999).await.unwrap());
    assert!(s.lease_instance("t", &held("a", 1_000), T0 + 5_000).await.unwrap());
    // A checkpoint without `lease_until` releases the lease.
    let row = s.get_instance("t").await.unwrap().unwrap();
    let cp = checkpoint(
        &row,
        Vec::new(),
        vec![Event::OrchestratorStarted, Event::OrchestratorCompleted],
        RuntimeStatus::Running,
        Vec::new(),
        T0 + 5_001,
    );
    s.checkpoint(cp, held("a", 1_000)).await.unwrap();
    assert!(s.lease_instance("t", &held("c", 1_000), T0 + 5_002).await.unwrap());
}

async fn due_instances_skip_instances_leased_to_others(s: Store) {
    start(&s, "d", T0).await;
    assert!(s.lease_instance("d", &held("a", 1_000), T0).await.unwrap());
    assert_eq!(s.due_instances(T0 + 1, 10, "a").await.unwrap(), ["d"]);
    assert!(s.due_instances(T0 + 1, 10, "b").await.unwrap().is_empty());
    assert_eq!(s.due_instances(T0 + 1_000, 10, "b").await.unwrap(), ["d"], "expired");
    for i in 0..5 {
        start(&s, &format!("m{i}"), T0).await;
    }
    assert_eq!(s.due_instances(T0 + 1, 3, "a").await.unwrap().len(), 3, "limit");
}

async fn releasing_and_reclaiming_leases(s: Store) {
    start(&s, "r1", T0).await;
    start(&s, "r2", T0).await;
    assert!(s.lease_instance("r1", &held("a", 10_000), T0).await.unwrap());
    assert!(s.lease_instance("r2", &held("b", 10_000), T0).await.unwrap());
    s.release_instance("r1", "b").await.unwrap();
    assert!(
        !s.lease_instance("r1", &held("c", 1_000), T0 + 1).await.unwrap(),
        "only the holder releases"
    );
    s.release_instance("r1", "a").await.unwrap();
    assert!(s.lease_instance("r1", &held("c", 1_000), T0 + 1).await.unwrap());
    // The only host of a task hub voids everyone else's leases.
    s.reclaim_leases("c").await.unwrap();
    assert!(
        s.lease_instance("r2", &held("d", 1_000), T0 + 2).await.unwrap(),
        "b's lease is void"
    );
    assert!(
        !s.lease_instance("r1", &held("d", 1_000), T0 + 2).await.unwrap(),
        "c's own lease stays"
    );
    s.release_leases("c".into()).await.unwrap();
    assert!(s.lease_instance("r1", &held("d", 1_000), T0 + 3).await.unwrap());
}
