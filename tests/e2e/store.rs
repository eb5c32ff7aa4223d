//! SQLite operations: PRAGMAs, concurrent writers, schema versions, corruption.

use std::time::Duration;

use crate::common::*;
use cairn::store::{Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pragmas_are_durable_and_asserted() {
    let dir = TempDir::new("pragma");
    let db = dir.0.join("hub.db");
    let _store = Store::open(&db).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, cairn::store::SCHEMA_VERSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_holding_the_lock_for_two_seconds_is_waited_out() {
    let t = TestHub::new(true).await;
    t.deploy("hello-cities").await;
    let db = t.db();
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("BEGIN IMMEDIATE; UPDATE instances SET updated_at = updated_at;")
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        c.execute_batch("COMMIT").unwrap();
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
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
    drop(Store::open(&db).unwrap());
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let err = Store::open(&db).err().unwrap();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 999, .. }), "{err}");
    assert!(err.to_string().contains("upgrade cairn"));

    let bad = dir.0.join("garbage.db");
    std::fs::write(&bad, vec![0x42u8; 64 * 1024]).unwrap();
    let err = Store::open(&bad).err().unwrap();
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
    let c = rusqlite::Connection::open(t.db()).unwrap();
    for task in 0..3 {
        c.execute(
            "INSERT INTO inbox (instance_id, execution_id, kind, visible_at, created_at, data) VALUES ('dups', ?1, 'TaskCompleted', 0, 0, ?2)",
            rusqlite::params![row.execution_id, format!(r#"{{"EventType":"TaskCompleted","TaskScheduledId":{task},"Result":"\"dup\""}}"#)],
        )
        .unwrap();
    }
    drop(c);
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
