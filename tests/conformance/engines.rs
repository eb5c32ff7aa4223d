//! Two engines on one PostgreSQL task hub (as two `cairn serve` hosts):
//! every instance completes once, with a valid history.

use std::time::Duration;

use cairn::engine::{Engine, EngineConfig};
use cairn::hub::Hub;
use cairn::sandbox::Limits;
use cairn::store::RuntimeStatus;

use crate::common::{assert_history_invariants, compiled_cache, guest, output};
use crate::*;

/// Two hubs with an engine each (as two hosts) on the fixture's database.
fn two_hosts(fx: &Fixture) -> (Vec<Hub>, Vec<std::sync::Arc<Engine>>, Vec<cairn::engine::Running>) {
    let url = fx.pg_url();
    let hosts: Vec<Hub> = (0..2)
        .map(|_| Hub::open_with(std::path::Path::new(&url), Limits::default(), Some(compiled_cache())).unwrap())
        .collect();
    let config = EngineConfig {
        exclusive: false,
        poll_interval: Duration::from_millis(20),
        ..EngineConfig::default()
    };
    let engines: Vec<_> = hosts
        .iter()
        .map(|h| Engine::new(h.store.clone(), h.sandbox.clone(), config.clone()))
        .collect();
    let running = engines.iter().map(|e| e.run()).collect();
    (hosts, engines, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_postgres_hub_complete_every_instance_once() {
    let fx = Fixture::postgres("two_engines").await;
    let (hosts, engines, running) = two_hosts(&fx);
    hosts[0].deploy(guest("hello-cities")).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..50 {
        let id = hosts[0]
            .start("HelloCities", Some("null"), Some(&format!("hello-{i}")), None)
            .await
            .unwrap();
        ids.push(id.to_string());
    }
    for id in &ids {
        let row = engines[1].wait_for(id, Duration::from_secs(120)).await.unwrap();
        assert_eq!(row.status, RuntimeStatus::Completed, "{row:?}");
        assert_eq!(
            output(&row),
            serde_json::json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
        );
        let history = hosts[1].store.get_history(id).await.unwrap();
        assert_history_invariants(&history);
    }
    let episodes: Vec<u64> = engines
        .iter()
        .map(|e| e.metrics.episodes.load(std::sync::atomic::Ordering::Relaxed))
        .collect();
    eprintln!("episodes per engine: {episodes:?}");
    for (r, e) in running.into_iter().zip(&engines) {
        r.shutdown(e, Duration::from_secs(5)).await;
    }
    assert_eq!(hosts[0].store.queue_depths().await.unwrap(), (0, 0));
    drop(engines);
    drop(hosts);
    fx.finish().await;
}

/// Entities on two engines sharing one PostgreSQL task hub: signals sent
/// through either host are each applied once, and 20 concurrent transfers
/// (critical sections over two accounts, started on both hosts) keep the
/// total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_apply_entity_signals_once_and_keep_transfers_consistent() {
    let fx = Fixture::postgres("two_engines_entities").await;
    let (hosts, engines, running) = two_hosts(&fx);
    hosts[0].deploy(guest("entities")).await.unwrap();
    let id = |raw: &str| cairn::ids::EntityId::parse(raw).unwrap();
    for i in 0..200 {
        let host = &hosts[i % 2];
        host.signal_entity(&id(&format!("Counter@c{}", i % 4)), "add", Some("1"), None)
            .await
            .unwrap();
    }
    // A retried deposit (the same idempotency key, through the other
    // host) counts once.
    for a in ["a", "b", "c"] {
        for (n, host) in hosts.iter().enumerate() {
            let queued = host
                .signal_entity(&id(&format!("Account@{a}")), "deposit", Some("100"), Some("open"))
                .await
                .unwrap();
            assert_eq!(queued, n == 0, "Account@{a} through host {n}");
        }
    }
    let state = |h: &Hub, e: String| {
        let h = h.clone();
        async move { h.entity_state(&id(&e)).await.unwrap().and_then(|s| s.state) }
    };
    for a in ["a", "b", "c"] {
        for _ in 0..2000 {
            if state(&hosts[0], format!("Account@{a}")).await.as_deref() == Some("100") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut ids = Vec::new();
    for i in 0..20u32 {
        let accounts = ["a", "b", "c"];
        let (from, to) = (accounts[(i % 3) as usize], accounts[((i + 1) % 3) as usize]);
        let input = serde_json::json!({"from": from, "to": to, "amount": 30 + i}).to_string();
        let started = hosts[(i % 2) as usize]
            .start("Transfer", Some(&input), Some(&format!("t-{i}")), None)
            .await
            .unwrap();
        ids.push(started.to_string());
    }
    for t in &ids {
        let row = engines[0].wait_for(t, Duration::from_secs(120)).await.unwrap();
        assert_eq!(row.status, RuntimeStatus::Completed, "{row:?}");
    }
    let mut counts = 0;
    for _ in 0..2000 {
        counts = 0;
        for k in 0..4 {
            counts += state(&hosts[1], format!("Counter@c{k}"))
                .await
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if counts == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counts, 200, "every signal applied once");
    let mut total = 0;
    for a in ["a", "b", "c"] {
        let b: i64 = state(&hosts[0], format!("Account@{a}")).await.unwrap().parse().unwrap();
        assert!(b >= 0, "Account@{a} is {b}");
        total += b;
    }
    assert_eq!(total, 300);
    for (r, e) in running.into_iter().zip(&engines) {
        r.shutdown(e, Duration::from_secs(5)).await;
    }
    assert_eq!(hosts[0].store.queue_depths().await.unwrap(), (0, 0));
    assert!(hosts[0].store.list_locks().await.unwrap().is_empty());
    drop(engines);
    drop(hosts);
    fx.finish().await;
}
