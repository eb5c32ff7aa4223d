//! The SQLite backend through its own interface: PRAGMAs, concurrent
//! writers, schema versions, corruption, duplicate deliveries. No SQL here:
//! the backend's fault-injection methods do what another process would.

use std::time::Duration;

use crate::common::*;
use cairn::history::Event;
use cairn::store::StoreError;
use cairn::store::sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pragmas_are_durable_and_asserted() {
    let dir = TempDir::new("pragma");
    let db = dir.0.join("hub.db");
    let store = SqliteStore::open(&db).unwrap();
    let (mode, version) = store.file_settings().await.unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(version, cairn::store::sqlite::SCHEMA_VERSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_holding_the_lock_for_two_seconds_is_waited_out() {
    let t = TestHub::new(true).await;
    t.deploy("hello-cities").await;
    let holder = SqliteStore::hold_write_lock(&t.db(), Duration::from_secs(2)).unwrap();
    let started = std::time::Instant::now();
    let row = t.run("HelloCities", "null", "patient").await;
    assert_completed(&row);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the write really waited"
    );
    holder.join().unwrap();
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_refuses_to_start_and_a_corrupt_file_is_diagnosed() {
    let dir = TempDir::new("schema");
    let db = dir.0.join("hub.db");
    SqliteStore::open(&db).unwrap().set_schema_version(999).await.unwrap();
    let err = cairn::store::open(&db).err().unwrap();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 999, .. }), "{err}");
    assert!(err.to_string().contains("upgrade cairn"));

    let bad = dir.0.join("garbage.db");
    std::fs::write(&bad, vec![0x42u8; 64 * 1024]).unwrap();
    let err = cairn::store::open(&bad).err().unwrap();
    let text = err.to_string();
    assert!(text.contains("not a database") || text.contains("corrupt"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_completions_injected_into_the_inbox_change_nothing() {
    let mut t = TestHub::with(true, cairn::engine::EngineConfig::default(), false).await;
    t.deploy("hello-cities").await;
    t.start("HelloCities", "null", "dups").await;
    t.running = Some(t.engine.run());
    let row = t.wait("dups").await;
    let before = t.history("dups").await;
    t.halt().await;
    // A finished instance: duplicates of its completions are dropped.
    let sqlite = t.hub.store.as_any().downcast_ref::<SqliteStore>().unwrap();
    for task in 0..3 {
        let dup = Event::TaskCompleted {
            task_id: task,
            result: "\"dup\"".into(),
        };
        sqlite.inject_message("dups", &row.execution_id, dup).await.unwrap();
    }
    t.running = Some(t.engine.run());
    for _ in 0..200 {
        if t.hub.store.queue_depths().await.unwrap().0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(t.hub.store.queue_depths().await.unwrap().0, 0, "duplicates consumed");
    assert_eq!(t.history("dups").await, before, "history unchanged");
    t.stop().await;
}
