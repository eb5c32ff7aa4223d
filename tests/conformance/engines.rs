//! Two engines on one PostgreSQL task hub (as two `cairn serve` hosts):
//! every instance completes once, with a valid history.

use std::time::Duration;

use cairn::engine::{Engine, EngineConfig};
use cairn::hub::Hub;
use cairn::sandbox::Limits;
use cairn::store::RuntimeStatus;

use crate::common::{assert_history_invariants, compiled_cache, guest, output};
use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_postgres_hub_complete_every_instance_once() {
    let fx = Fixture::postgres("two_engines").await;
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
    let running: Vec<_> = engines.iter().map(|e| e.run()).collect();
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
