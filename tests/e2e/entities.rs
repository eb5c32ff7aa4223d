//! Durable entities, end to end in every language: the `entities` example
//! (target/guests/<lang>/entities.wasm: entities `Counter` and `Account`,
//! orchestrator `Transfer`) with the hot cache and with forced replay.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::common::*;
use cairn::ids::EntityId;
use cairn::store::RuntimeStatus;

/// The languages whose SDK implements entities.
const LANGUAGES: [&str; 3] = ["rust", "js", "python"];

fn id(raw: &str) -> EntityId {
    EntityId::parse(raw).unwrap()
}

/// The entity's state as JSON (`None`: no state).
async fn state(t: &TestHub, entity: &str) -> Option<serde_json::Value> {
    t.hub
        .entity_state(&id(entity))
        .await
        .unwrap()
        .and_then(|e| e.state)
        .map(|s| serde_json::from_str(&s).unwrap())
}

/// Waits until `entity`'s state is `want` (`None`: no state).
async fn wait_state(t: &TestHub, entity: &str, want: Option<serde_json::Value>) {
    let mut last = None;
    for _ in 0..3000 {
        last = state(t, entity).await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{entity} never reached {want:?}; last {last:?}");
}

async fn signal(t: &TestHub, entity: &str, op: &str, input: serde_json::Value) {
    assert!(
        t.hub
            .signal_entity(&id(entity), op, Some(&input.to_string()), None)
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_applies_every_signal_in_order() {
    for lang in LANGUAGES {
        for hot in [true, false] {
            let t = TestHub::new(hot).await;
            t.deploy_in(lang, "entities").await;
            // 200 signals; a reset in the middle drops what came before it.
            for i in 1..=100 {
                signal(&t, "Counter@c", "add", json!(i)).await;
            }
            signal(&t, "Counter@c", "reset", json!(null)).await;
            for i in 1..=100 {
                signal(&t, "Counter@c", "add", json!(i)).await;
            }
            wait_state(&t, "Counter@c", Some(json!(5050))).await;
            // An unknown operation fails and leaves the state as it was.
            signal(&t, "Counter@c", "multiply", json!(2)).await;
            signal(&t, "Counter@c", "add", json!(1)).await;
            wait_state(&t, "Counter@c", Some(json!(5051))).await;
            // Other keys are other entities.
            signal(&t, "Counter@other", "add", json!(7)).await;
            wait_state(&t, "Counter@other", Some(json!(7))).await;
            assert_eq!(state(&t, "Counter@c").await, Some(json!(5051)), "{lang} hot={hot}");
            // `delete` removes the state: the entity reads as absent.
            signal(&t, "Counter@other", "delete", json!(null)).await;
            wait_state(&t, "Counter@other", None).await;
            t.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_twice_with_one_idempotency_key_is_applied_once() {
    let t = TestHub::new(true).await;
    t.deploy("entities").await;
    let counter = id("Counter@dedup");
    for (key, n, fresh) in [("k1", 1, true), ("k1", 1, false), ("k2", 10, true), ("k1", 1, false)] {
        let queued = t
            .hub
            .signal_entity(&counter, "add", Some(&n.to_string()), Some(key))
            .await
            .unwrap();
        assert_eq!(queued, fresh, "{key}");
    }
    wait_state(&t, "Counter@dedup", Some(json!(11))).await;
    // The same key on another entity is another signal.
    assert!(
        t.hub
            .signal_entity(&id("Counter@dedup2"), "add", Some("5"), Some("k1"))
            .await
            .unwrap()
    );
    wait_state(&t, "Counter@dedup2", Some(json!(5))).await;
    t.stop().await;
}

/// 50 concurrent transfers between 3 accounts, each in a critical section
/// over both accounts: the total never changes, no balance goes negative,
/// and no transfer fails (without the lock, two transfers from one account
/// could both pass the balance check and the second withdrawal would fail
/// with InsufficientFunds). Deposits signalled by a client meanwhile wait
/// (parked) while a transfer holds the account, and all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_keep_the_total() {
    for lang in LANGUAGES {
        for hot in [true, false] {
            let t = TestHub::new(hot).await;
            t.deploy_in(lang, "entities").await;
            let accounts = ["a", "b", "c"];
            for a in accounts {
                signal(&t, &format!("Account@{a}"), "deposit", json!(100)).await;
            }
            for a in accounts {
                wait_state(&t, &format!("Account@{a}"), Some(json!(100))).await;
            }
            let mut ids = Vec::new();
            for i in 0..50u32 {
                let from = accounts[(i % 3) as usize];
                let to = accounts[((i / 3 + 1 + i) % 3) as usize];
                let to = if to == from {
                    accounts[((i + 1) % 3) as usize]
                } else {
                    to
                };
                let amount = 40 + (i * 7) % 50;
                let input = json!({"from": from, "to": to, "amount": amount}).to_string();
                ids.push(t.start("Transfer", &input, &format!("transfer-{i}")).await);
            }
            // Client deposits while they run: parked behind the locks.
            for _ in 0..10 {
                for a in accounts {
                    signal(&t, &format!("Account@{a}"), "deposit", json!(1)).await;
                }
            }
            let total = 330;
            // While they run, no balance is ever negative and the sum
            // never exceeds the total (mid-transfer, money is in flight).
            let mut moved = 0;
            for id in &ids {
                loop {
                    let mut sum = 0;
                    for a in accounts {
                        let b = state(&t, &format!("Account@{a}"))
                            .await
                            .and_then(|v| v.as_i64())
                            .unwrap_or(0);
                        assert!(b >= 0, "{lang} hot={hot}: Account@{a} went negative: {b}");
                        sum += b;
                    }
                    assert!(sum <= total, "{lang} hot={hot}: the accounts hold {sum} > {total}");
                    let row = t.hub.store.get_instance(id).await.unwrap().unwrap();
                    if row.status.is_terminal() {
                        assert_completed(&row);
                        if output(&row)["transferred"] == json!(true) {
                            moved += 1;
                        }
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            assert!(moved > 0, "{lang} hot={hot}: no transfer moved money");
            // Every deposit arrives: the total is reached (a request parked
            // for good would keep it below).
            let mut balances = HashMap::new();
            for _ in 0..3000 {
                balances.clear();
                for a in accounts {
                    let b = state(&t, &format!("Account@{a}"))
                        .await
                        .and_then(|v| v.as_i64())
                        .unwrap_or(0);
                    assert!(b >= 0);
                    balances.insert(a, b);
                }
                if balances.values().sum::<i64>() == total {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(balances.values().sum::<i64>(), total, "{lang} hot={hot}: {balances:?}");
            // Every lock was released: a fresh transfer runs at once.
            let row = t
                .run(
                    "Transfer",
                    &json!({"from": "a", "to": "b", "amount": 1}).to_string(),
                    "after",
                )
                .await;
            assert_completed(&row);
            assert!(t.hub.store.list_locks().await.unwrap().is_empty());
            t.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_itself_fails_and_one_without_funds_moves_nothing() {
    for lang in LANGUAGES {
        let t = TestHub::new(true).await;
        t.deploy_in(lang, "entities").await;
        let row = t
            .run(
                "Transfer",
                &json!({"from": "a", "to": "a", "amount": 1}).to_string(),
                "self",
            )
            .await;
        assert_eq!(row.status, RuntimeStatus::Failed, "{lang}");
        assert!(row.output.unwrap_or_default().contains("InvalidInput"), "{lang}");
        // Nothing to move: the transfer says so and changes nothing.
        let row = t
            .run(
                "Transfer",
                &json!({"from": "x", "to": "y", "amount": 5}).to_string(),
                "empty",
            )
            .await;
        assert_completed(&row);
        assert_eq!(output(&row), json!({"transferred": false, "from_balance": 0}), "{lang}");
        assert_eq!(state(&t, "Account@y").await, None, "{lang}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_are_listed_apart_from_instances() {
    let t = TestHub::new(true).await;
    t.deploy("entities").await;
    signal(&t, "Counter@one", "add", json!(1)).await;
    signal(&t, "Counter@two", "add", json!(2)).await;
    signal(&t, "Account@x", "deposit", json!(3)).await;
    wait_state(&t, "Counter@two", Some(json!(2))).await;
    wait_state(&t, "Account@x", Some(json!(3))).await;
    wait_state(&t, "Counter@one", Some(json!(1))).await;
    let all = t
        .hub
        .list_entities(cairn::entities::EntityFilter::default(), None, None)
        .await
        .unwrap();
    let names: Vec<String> = all.entities.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(names, ["Account@x", "Counter@one", "Counter@two"]);
    // Paged, by name.
    let filter = cairn::entities::EntityFilter {
        name: Some("Counter".into()),
        ..Default::default()
    };
    let first = t.hub.list_entities(filter.clone(), Some(1), None).await.unwrap();
    assert_eq!(first.entities.len(), 1);
    let next = t
        .hub
        .list_entities(filter, Some(1), first.continuation.as_deref())
        .await
        .unwrap();
    assert_eq!(next.entities[0].id.to_string(), "Counter@two");
    assert!(next.continuation.is_none());
    // Orchestration listings and counts leave entities out.
    assert!(t.hub.store.list_instances(Default::default()).await.unwrap().is_empty());
    assert!(t.hub.store.instance_counts().await.unwrap().is_empty());
    t.stop().await;
}
