//! The provider contract, run against every backend: each case is one
//! `async fn(Store)` written once, and [`conformance!`] instantiates it as
//! `<topic>::sqlite::<case>` (a temporary file) and
//! `<topic>::postgres::<case>` (a fresh database on the server named by
//! `CAIRN_TEST_PG`; `scripts/pg.sh start` runs one, `make test` does it for
//! you). Without `CAIRN_TEST_PG`, or with an unreachable server, the
//! PostgreSQL cases FAIL: they are never skipped silently.
//!
//! No case sleeps: time is the `now` every provider call takes. Values are
//! built by hand or with `cairn::decide`, as the engine builds them.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../common/mod.rs"]
mod common;

mod batches;
mod checkpoints;
mod engines;
mod entities;
mod instances;
mod leases;
mod locks;
mod postgres;
mod queries;
mod work;

use std::sync::Arc;
use std::time::Duration;

use cairn::decide;
use cairn::history::{CompletionStatus, Event, Millis};
use cairn::store::postgres::PostgresStore;
use cairn::store::{Checkpoint, InstanceRow, Lease, NewExecution, Notes, Outbox, RuntimeStatus, Store};
use common::TempDir;
use tokio::sync::mpsc;

/// An arbitrary fixed "now" (2023-11-14T22:13:20Z); cases add to it.
pub const T0: Millis = 1_700_000_000_000;

/// Instantiates `async fn case(store: Store)` functions once per backend.
#[macro_export]
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fx = $crate::Fixture::sqlite();
                    super::$case(fx.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fx = $crate::Fixture::postgres(stringify!($case)).await;
                    super::$case(fx.store.clone()).await;
                    fx.finish().await;
                }
            )*
        }
    };
}

/// A fresh, empty task hub on one backend.
pub struct Fixture {
    pub store: Store,
    /// SQLite: the directory of the file.
    dir: Option<TempDir>,
    /// PostgreSQL: the server, the database made for this test, its URL.
    pg: Option<(String, String, String)>,
}

impl Fixture {
    pub fn sqlite() -> Self {
        let dir = TempDir::new("conformance");
        let store = cairn::store::open(dir.0.join("hub.db")).unwrap();
        Self {
            store,
            dir: Some(dir),
            pg: None,
        }
    }

    /// A new database on the test server, opened through `store::open`
    /// (as `--db postgres://...` is).
    pub async fn postgres(case: &str) -> Self {
        let (url, name) = new_database(case).await;
        let store = cairn::store::open(&url).unwrap_or_else(|e| panic!("opening {url}: {e}"));
        Self {
            store,
            dir: None,
            pg: Some((server_url(), name, url)),
        }
    }

    /// The URL of this fixture's PostgreSQL database.
    pub fn pg_url(&self) -> String {
        self.pg.as_ref().expect("a PostgreSQL fixture").2.clone()
    }

    /// Drops the test's database (SQLite: the directory goes on drop).
    pub async fn finish(self) {
        let Self { store, pg, .. } = self;
        drop(store);
        if let Some((server, name, _)) = pg {
            PostgresStore::drop_database(&server, &name).await.unwrap();
        }
    }
}

/// The test server's URL, from `CAIRN_TEST_PG`.
pub fn server_url() -> String {
    match std::env::var("CAIRN_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "CAIRN_TEST_PG is not set: the PostgreSQL conformance tests need a server. \
             Run `scripts/pg.sh start` and `export CAIRN_TEST_PG=$(scripts/pg.sh url)` \
             (`make test` does both)"
        ),
    }
}

/// Creates an empty database for `case`; returns (its URL, its name).
pub async fn new_database(case: &str) -> (String, String) {
    let server = server_url();
    let tag: String = case.chars().filter(char::is_ascii_alphanumeric).take(30).collect();
    let name = format!(
        "cairn_t_{}_{}",
        tag.to_ascii_lowercase(),
        &cairn::ids::random_hex()[..10]
    );
    let url = PostgresStore::create_database(&server, &name)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a test database on CAIRN_TEST_PG={server}: {e}; \
                 is the server running? (`scripts/pg.sh start`)"
            )
        });
    (url, name)
}

// ---- values the engine would build ------------------------------------

pub fn lease(owner: &str) -> Lease {
    Lease {
        owner: owner.to_owned(),
        duration_ms: 1_000,
    }
}

/// A start of orchestrator `Orch` (version `v1`) as instance `id`.
pub fn new_execution(id: &str, exec: &str, visible_at: Millis) -> NewExecution {
    decide::new_execution(
        id,
        exec.to_owned(),
        "Orch",
        "v1",
        "\"in\"",
        None,
        Vec::new(),
        visible_at,
    )
}

/// Starts `id` at `now` and returns its row.
pub async fn start(s: &Store, id: &str, now: Millis) -> InstanceRow {
    s.create_instance(new_execution(id, &format!("{id}-e1"), now), now)
        .await
        .unwrap();
    s.get_instance(id).await.unwrap().unwrap()
}

/// A checkpoint of `row` that consumes `consumed` and appends `events`.
pub fn checkpoint(
    row: &InstanceRow,
    consumed: Vec<i64>,
    events: Vec<Event>,
    status: RuntimeStatus,
    outbox: Vec<Outbox>,
    now: Millis,
) -> Checkpoint {
    let output = status.is_terminal().then(|| Some("\"done\"".to_owned()));
    Checkpoint {
        instance_id: row.instance_id.clone(),
        execution_id: row.execution_id.clone(),
        expected_history_len: row.history_len,
        consumed,
        events: events.into_iter().map(|e| (now, e)).collect(),
        status,
        output,
        custom_status: None,
        outbox,
        now,
        lease_until: None,
    }
}

/// Starts `id` and runs its first episode: consumes its `ExecutionStarted`,
/// records it, and stores `outbox` with status Running.
pub async fn first_episode(s: &Store, id: &str, outbox: Vec<Outbox>, owner: &str, now: Millis) -> InstanceRow {
    start(s, id, now).await;
    let ep = s.load_episode(id, now, None).await.unwrap().unwrap();
    assert_eq!(ep.messages.len(), 1, "{id}: only the start is in the inbox");
    let started = ep.messages[0].event.clone();
    assert!(matches!(started, Event::ExecutionStarted { .. }), "{started:?}");
    let cp = checkpoint(
        &ep.instance,
        vec![ep.messages[0].id],
        vec![Event::OrchestratorStarted, started, Event::OrchestratorCompleted],
        RuntimeStatus::Running,
        outbox,
        now,
    );
    s.checkpoint(cp, lease(owner)).await.unwrap();
    s.get_instance(id).await.unwrap().unwrap()
}

/// The events completing an execution.
pub fn completed() -> Vec<Event> {
    vec![
        Event::OrchestratorStarted,
        Event::ExecutionCompleted {
            status: CompletionStatus::Completed,
            result: Some("\"done\"".into()),
            failure: None,
        },
        Event::OrchestratorCompleted,
    ]
}

/// Ends a running instance as Completed.
pub async fn complete(s: &Store, row: &InstanceRow, owner: &str, now: Millis) {
    let ep = s.load_episode(&row.instance_id, now, None).await.unwrap().unwrap();
    let consumed = ep.messages.iter().map(|m| m.id).collect();
    let cp = checkpoint(
        &ep.instance,
        consumed,
        completed(),
        RuntimeStatus::Completed,
        Vec::new(),
        now,
    );
    s.checkpoint(cp, lease(owner)).await.unwrap();
}

/// The events of the messages visible to `id` at `now`, oldest first.
pub async fn inbox(s: &Store, id: &str, now: Millis) -> Vec<Event> {
    s.load_episode(id, now, None)
        .await
        .unwrap()
        .map(|ep| ep.messages.into_iter().map(|m| m.event).collect())
        .unwrap_or_default()
}

pub fn raised(name: &str) -> Event {
    Event::EventRaised {
        name: name.to_owned(),
        input: "null".to_owned(),
    }
}

/// The next notes on `rx` (a wake-up arrives within 10 s or the test fails).
pub async fn next_notes(rx: &mut mpsc::UnboundedReceiver<Arc<Notes>>) -> Arc<Notes> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no wake-up within 10 s")
        .expect("the provider closed its notes")
}

/// Waits (bounded) for notes on `rx` that satisfy `want`.
pub async fn notes_until(rx: &mut mpsc::UnboundedReceiver<Arc<Notes>>, mut want: impl FnMut(&Notes) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the expected wake-up did not arrive within 10 s")
            .expect("the provider closed its notes");
        if want(&n) {
            return;
        }
    }
}
