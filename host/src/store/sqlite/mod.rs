//! The task hub on SQLite: one file, WAL, `synchronous=FULL`.
//!
//! All writes go through ONE writer thread that batches whatever requests
//! are waiting into one transaction (group commit): every request runs in
//! its own SAVEPOINT, so one failing request does not undo the others, and
//! replies are sent only after the COMMIT is durable. Reads use a small pool
//! of separate connections (WAL readers never block the writer).
//!
//! This module is the only one that touches rusqlite. One task hub file is
//! served by one engine process at a time: [`Provider::claim_host`] takes
//! that guard (an flock on `<db>.lock`, see [`lock_path`]), which the handle
//! holds until it is dropped (or the process dies).

mod admin;
mod console;
mod entities;
mod leases;
mod locks;
mod ops;
mod schema;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

pub use leases::lock_path;
pub use schema::SCHEMA_VERSION;

use super::{
    ActivityOutcome, BrowseQuery, Checkpoint, EpisodeInput, FunctionKind, FunctionVersion, Hosting, InstanceLease,
    InstanceQuery, InstanceRow, Lease, LockInfo, NewExecution, Notes, Provider, PurgeOne, QueueStats, RemoveComponent,
    RewindPlan, RuntimeStatus, StoreError, WorkItem,
};
use crate::history::{Event, Millis};

/// Read connections kept open (and reads run at once).
const READERS: usize = 8;

/// Most requests one group-commit transaction takes.
const MAX_BATCH: usize = 512;

fn is_retryable_code(e: &rusqlite::Error) -> Option<&'static str> {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => Some("busy"),
        Some(rusqlite::ErrorCode::DiskFull) => Some("full"),
        _ => None,
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match is_retryable_code(&e) {
            Some("busy") => Self::Busy(e.to_string()),
            Some(_) => Self::Full(e.to_string()),
            None => Self::Backend(format!("sqlite: {e}")),
        }
    }
}

type JobResult = Result<Box<dyn Any + Send>, StoreError>;
type JobFn = Box<dyn FnOnce(&Connection, &mut Notes) -> JobResult + Send>;

struct Job {
    run: JobFn,
    reply: oneshot::Sender<JobResult>,
}

/// The SQLite provider. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: mpsc::UnboundedSender<Job>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled read connection: reads beyond them wait for
    /// one instead of opening (and closing) a connection each.
    read_slots: Arc<tokio::sync::Semaphore>,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<Notes>>>>>,
    /// The one-host guard, once [`Provider::claim_host`] took it.
    guard: Mutex<Option<std::fs::File>>,
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_owned(),
        reason: source.to_string(),
    })?;
    schema::configure(&conn)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the task hub at `path`, migrates it and
    /// starts the writer thread.
    ///
    /// # Errors
    /// Open, PRAGMA, corruption and schema-version errors.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = open_conn(path)?;
        schema::migrate(&mut conn)?;
        let (jobs, rx) = mpsc::unbounded_channel();
        let subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<Notes>>>>> = Arc::default();
        let subs = subscribers.clone();
        std::thread::Builder::new()
            .name("cairn-store-writer".into())
            .spawn(move || writer_loop(&conn, rx, &subs))
            .map_err(|e| StoreError::Decode(format!("cannot start writer thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                jobs,
                readers: Mutex::new(Vec::new()),
                read_slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
                subscribers,
                guard: Mutex::new(None),
            }),
        })
    }

    /// Path of the task hub file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Receives the [`Notes`] of every committed batch from now on.
    #[must_use]
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Notes>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.inner.subscribers.lock() {
            subs.push(tx);
        }
        rx
    }

    /// Runs `f` inside the next group-commit transaction.
    ///
    /// # Errors
    /// Whatever `f` returns, or the commit's error.
    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &mut Notes) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let run: JobFn = Box::new(move |c, n| f(c, n).map(|r| Box::new(r) as Box<dyn Any + Send>));
        self.inner
            .jobs
            .send(Job { run, reply })
            .map_err(|_| StoreError::Closed)?;
        let out = rx.await.map_err(|_| StoreError::Closed)??;
        out.downcast::<R>()
            .map(|b| *b)
            .map_err(|_| StoreError::Decode("writer returned an unexpected type".into()))
    }

    /// Runs `f` on a read connection (a consistent snapshot when `f` uses a
    /// transaction) on the blocking pool.
    ///
    /// # Errors
    /// Whatever `f` returns.
    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        let slot = inner
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
            let mut conn = match pooled {
                Some(c) => c,
                None => open_conn(&inner.path)?,
            };
            let out = f(&mut conn);
            if let Ok(mut p) = inner.readers.lock()
                && p.len() < READERS
            {
                p.push(conn);
            }
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

fn writer_loop(
    conn: &Connection,
    mut rx: mpsc::UnboundedReceiver<Job>,
    subs: &Mutex<Vec<mpsc::UnboundedSender<Arc<Notes>>>>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut notes = Notes::default();
        let results = run_batch(conn, &mut batch, &mut notes);
        match results {
            Ok(replies) => {
                crate::crash::point("after_commit_before_ack");
                if !notes.is_empty() {
                    let notes = Arc::new(notes);
                    if let Ok(mut s) = subs.lock() {
                        s.retain(|tx| tx.send(notes.clone()).is_ok());
                    }
                }
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            Err((replies, err)) => {
                let msg = err.to_string();
                let retryable = err.is_retryable();
                for reply in replies {
                    let e = if retryable {
                        StoreError::Busy(msg.clone())
                    } else {
                        StoreError::Decode(format!("commit failed: {msg}"))
                    };
                    let _ = reply.send(Err(e));
                }
            }
        }
    }
}

type Replies = Vec<(oneshot::Sender<JobResult>, JobResult)>;

/// One group-commit transaction over `batch` (drained).
fn run_batch(
    conn: &Connection,
    batch: &mut Vec<Job>,
    notes: &mut Notes,
) -> Result<Replies, (Vec<oneshot::Sender<JobResult>>, StoreError)> {
    let begin = retry_busy(|| conn.execute_batch("BEGIN IMMEDIATE"));
    if let Err(e) = begin {
        return Err((batch.drain(..).map(|j| j.reply).collect(), e.into()));
    }
    let mut replies = Vec::with_capacity(batch.len());
    let mut jobs = batch.drain(..);
    while let Some(job) = jobs.next() {
        let result = match conn.execute_batch("SAVEPOINT job") {
            Err(e) => Err(e.into()),
            Ok(()) => {
                let mut job_notes = Notes::default();
                let r = (job.run)(conn, &mut job_notes);
                let end = if r.is_ok() {
                    conn.execute_batch("RELEASE job")
                } else {
                    conn.execute_batch("ROLLBACK TO job; RELEASE job")
                };
                match (r, end) {
                    (Ok(v), Ok(())) => {
                        notes.append(&mut job_notes);
                        Ok(v)
                    }
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(e.into()),
                }
            }
        };
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (a full disk, an I/O
            // error): nothing of this batch is committed, so every request
            // in it, done or not, gets a retryable error.
            let err = match result {
                Err(e) if e.is_retryable() => e,
                Err(e) => StoreError::Full(format!("the transaction was rolled back: {e}")),
                Ok(_) => StoreError::Full("the transaction was rolled back".into()),
            };
            let mut senders: Vec<_> = replies.into_iter().map(|(r, _)| r).collect();
            senders.push(job.reply);
            senders.extend(jobs.map(|j| j.reply));
            return Err((senders, err));
        }
        replies.push((job.reply, result));
    }
    drop(jobs);
    crate::crash::point("before_commit");
    if let Err(e) = retry_busy(|| conn.execute_batch("COMMIT")) {
        let _ = conn.execute_batch("ROLLBACK");
        return Err((replies.into_iter().map(|(r, _)| r).collect(), e.into()));
    }
    Ok(replies)
}

fn retry_busy(mut f: impl FnMut() -> rusqlite::Result<()>) -> rusqlite::Result<()> {
    let mut delay = std::time::Duration::from_millis(2);
    let mut tries = 0;
    loop {
        match f() {
            Err(e)
                if tries < 60
                    && matches!(
                        e.sqlite_error_code(),
                        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                    ) =>
            {
                tries += 1;
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Fault injection and inspection for tests of this backend (full disk,
/// damaged files, duplicate deliveries). Not for production use.
impl SqliteStore {
    /// Caps the writer's database size (`PRAGMA max_page_count`): writes
    /// past it fail as a full disk would. Returns the cap SQLite applied.
    ///
    /// # Errors
    /// SQLite errors (retryable while a full batch rolls back).
    pub async fn set_max_pages(&self, pages: i64) -> Result<i64, StoreError> {
        self.write(move |c, _| Ok(c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0))?))
            .await
    }

    /// Pages the database uses now.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn page_count(&self) -> Result<i64, StoreError> {
        self.read(|c| Ok(c.query_row("PRAGMA page_count", [], |r| r.get(0))?))
            .await
    }

    /// SQLite's own integrity check (`ok` when healthy).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        self.read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
            .await
    }

    /// The journal mode and schema version the file has.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn file_settings(&self) -> Result<(String, i64), StoreError> {
        self.read(|c| {
            let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok((mode, version))
        })
        .await
    }

    /// Puts `event` into an inbox directly, with no checks: a duplicate or
    /// stray delivery, as a crash or a buggy peer could leave.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn inject_message(&self, instance_id: &str, execution_id: &str, event: Event) -> Result<(), StoreError> {
        let (id, exec) = (instance_id.to_owned(), execution_id.to_owned());
        self.write(move |c, notes| ops::insert_message(c, notes, &id, Some(&exec), 0, 0, &event))
            .await
    }

    /// Rows in the history table, every execution of every instance.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn history_rows(&self) -> Result<i64, StoreError> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0))?))
            .await
    }

    /// The largest payload stored anywhere: a history event, an inbox
    /// message, an output or a custom status (bytes).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn largest_payload(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT MAX(m) FROM (SELECT MAX(length(data)) AS m FROM history UNION ALL
                                     SELECT MAX(length(data)) FROM inbox UNION ALL
                                     SELECT MAX(length(COALESCE(custom_status, ''))) FROM instances UNION ALL
                                     SELECT MAX(length(COALESCE(output, ''))) FROM instances)",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .unwrap_or(0))
        })
        .await
    }

    /// Writes the schema version of the file (to test a newer one).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn set_schema_version(&self, version: i64) -> Result<(), StoreError> {
        self.write(move |c, _| Ok(c.execute_batch(&format!("PRAGMA user_version = {version}"))?))
            .await
    }

    /// Holds SQLite's write lock from another connection for `hold`, as
    /// another process writing the file would; returns once it is held.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn hold_write_lock(path: &Path, hold: std::time::Duration) -> Result<std::thread::JoinHandle<()>, StoreError> {
        let c = open_conn(path)?;
        c.execute_batch("BEGIN IMMEDIATE; UPDATE instances SET updated_at = updated_at;")?;
        Ok(std::thread::spawn(move || {
            std::thread::sleep(hold);
            let _ = c.execute_batch("COMMIT");
        }))
    }
}

#[async_trait::async_trait]
impl Provider for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.inner.path.display())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Notes>> {
        Self::subscribe(self)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(drop)?))
            .await
    }

    fn claim_host(&self) -> Result<Hosting, StoreError> {
        let mut guard = self
            .inner
            .guard
            .lock()
            .map_err(|_| StoreError::Backend("the host guard's mutex is poisoned".into()))?;
        if guard.is_none() {
            *guard = Some(leases::take_guard(&self.inner.path)?);
        }
        Ok(Hosting::Exclusive)
    }

    fn served_elsewhere(&self) -> Option<bool> {
        let held_here = self.inner.guard.lock().ok()?.is_some();
        if held_here {
            return Some(false);
        }
        match leases::take_guard(&self.inner.path) {
            // Dropped at once: the guard is free again.
            Ok(_probe) => Some(false),
            Err(StoreError::HostBusy(_)) => Some(true),
            Err(_) => None,
        }
    }

    async fn deploy_component(
        &self,
        hash: String,
        bytes: Vec<u8>,
        functions: Vec<(String, FunctionKind)>,
        grants: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        Self::deploy_component(self, hash, bytes, functions, grants, now).await
    }
    async fn component_bytes(&self, hash: &str) -> Result<Vec<u8>, StoreError> {
        Self::component_bytes(self, hash).await
    }
    async fn component_grants(&self, hash: &str) -> Result<String, StoreError> {
        Self::component_grants(self, hash).await
    }
    async fn resolve_function(&self, name: &str, kind: FunctionKind) -> Result<String, StoreError> {
        Self::resolve_function(self, name, kind).await
    }
    async fn orchestrator_version_exists(&self, name: &str, hash: &str) -> Result<bool, StoreError> {
        Self::orchestrator_version_exists(self, name, hash).await
    }
    async fn list_functions(&self) -> Result<Vec<FunctionVersion>, StoreError> {
        Self::list_functions(self).await
    }
    async fn remove_component(&self, hash: &str) -> Result<RemoveComponent, StoreError> {
        Self::remove_component(self, hash).await
    }
    async fn prune_unused_versions(&self) -> Result<Vec<String>, StoreError> {
        Self::prune_unused_versions(self).await
    }
    async fn move_instances_to_version(
        &self,
        name: &str,
        ids: Vec<String>,
        to: &str,
        now: Millis,
    ) -> Result<usize, StoreError> {
        Self::move_instances_to_version(self, name, ids, to, now).await
    }
    async fn create_instance(&self, new: NewExecution, now: Millis) -> Result<(), StoreError> {
        Self::create_instance(self, new, now).await
    }
    async fn send_message(&self, instance_id: &str, event: Event, now: Millis) -> Result<(), StoreError> {
        Self::send_message(self, instance_id, event, now).await
    }
    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceRow>, StoreError> {
        Self::get_instance(self, instance_id).await
    }
    async fn get_history(&self, instance_id: &str) -> Result<Vec<(Millis, Event)>, StoreError> {
        Self::get_history(self, instance_id).await
    }
    async fn list_instances(&self, q: InstanceQuery) -> Result<Vec<InstanceRow>, StoreError> {
        Self::list_instances(self, q).await
    }
    async fn instance_counts(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        Self::instance_counts(self).await
    }
    async fn purge_instance(&self, instance_id: &str) -> Result<PurgeOne, StoreError> {
        Self::purge_instance(self, instance_id).await
    }
    async fn purge_terminal_batch(
        &self,
        from: Millis,
        to: Millis,
        statuses: Vec<RuntimeStatus>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        Self::purge_terminal_batch(self, from, to, statuses, limit).await
    }
    async fn delete_all(&self) -> Result<u64, StoreError> {
        Self::delete_all(self).await
    }
    async fn rewind(&self, plan: RewindPlan) -> Result<(), StoreError> {
        Self::rewind(self, plan).await
    }
    async fn list_locks(&self) -> Result<Vec<LockInfo>, StoreError> {
        Self::list_locks(self).await
    }
    async fn send_to_entity(
        &self,
        name: &str,
        message: super::Message,
        dedup: Option<String>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        Self::send_to_entity(self, name, message, dedup, now).await
    }
    async fn lock_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        Self::lock_holder(self, name).await
    }
    async fn commit_entity(&self, c: super::EntityCommit, lease: Lease) -> Result<(), StoreError> {
        Self::commit_entity(self, c, lease).await
    }
    async fn list_entities(&self, q: super::EntityQuery) -> Result<Vec<InstanceRow>, StoreError> {
        Self::list_entities(self, q).await
    }
    async fn purge_empty_entities(&self, name: Option<String>) -> Result<u64, StoreError> {
        Self::purge_empty_entities(self, name).await
    }
    async fn delete_entity(&self, entity_id: &str) -> Result<bool, StoreError> {
        Self::delete_entity(self, entity_id).await
    }
    async fn import_instance(&self, row: InstanceRow, history: Vec<(Millis, Event)>) -> Result<(), StoreError> {
        Self::import_instance(self, row, history).await
    }
    async fn queue_depths(&self) -> Result<(u64, u64), StoreError> {
        Self::queue_depths(self).await
    }
    async fn queue_stats(&self, now: Millis) -> Result<QueueStats, StoreError> {
        Self::queue_stats(self, now).await
    }
    async fn browse_instances(&self, q: BrowseQuery) -> Result<Vec<InstanceRow>, StoreError> {
        Self::browse_instances(self, q).await
    }
    async fn count_instances(
        &self,
        q: InstanceQuery,
        name: Option<String>,
    ) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        Self::count_instances(self, q, name).await
    }
    async fn instances_per_version(&self) -> Result<Vec<(String, RuntimeStatus, u64)>, StoreError> {
        Self::instances_per_version(self).await
    }
    async fn due_instances(&self, now: Millis, limit: u32, owner: &str) -> Result<Vec<String>, StoreError> {
        Self::due_instances(self, now, limit, owner).await
    }
    async fn lease_instance(&self, instance_id: &str, lease: &Lease, now: Millis) -> Result<bool, StoreError> {
        Self::lease_instance(self, instance_id, lease, now).await
    }
    async fn renew_instance_leases(
        &self,
        ids: Vec<String>,
        lease: &Lease,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        Self::renew_instance_leases(self, ids, lease, now).await
    }
    async fn release_instance(&self, instance_id: &str, owner: &str) -> Result<(), StoreError> {
        Self::release_instance(self, instance_id, owner).await
    }
    async fn instance_leases(&self, owner: Option<String>, now: Millis) -> Result<Vec<InstanceLease>, StoreError> {
        Self::instance_leases(self, owner, now).await
    }
    async fn renew_work_leases(&self, ids: Vec<i64>, lease: &Lease, now: Millis) -> Result<Vec<i64>, StoreError> {
        Self::renew_work_leases(self, ids, lease, now).await
    }
    async fn reclaim_leases(&self, owner: &str) -> Result<(), StoreError> {
        Self::reclaim_leases(self, owner).await
    }
    async fn load_episode(
        &self,
        instance_id: &str,
        now: Millis,
        hot: Option<(String, u64, String)>,
    ) -> Result<Option<EpisodeInput>, StoreError> {
        Self::load_episode(self, instance_id, now, hot).await
    }
    async fn checkpoint(&self, cp: Checkpoint, lease: Lease) -> Result<(), StoreError> {
        Self::checkpoint(self, cp, lease).await
    }
    async fn discard_messages(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        Self::discard_messages(self, ids).await
    }
    async fn claim_work_items(
        &self,
        lease: Lease,
        now: Millis,
        reclaim_all: bool,
        limit: u32,
    ) -> Result<Vec<WorkItem>, StoreError> {
        Self::claim_work_items(self, lease, now, reclaim_all, limit).await
    }
    async fn complete_work_item(
        &self,
        item: WorkItem,
        owner: String,
        outcome: ActivityOutcome,
        now: Millis,
    ) -> Result<bool, StoreError> {
        Self::complete_work_item(self, item, owner, outcome, now).await
    }
    async fn release_leases(&self, owner: String) -> Result<(), StoreError> {
        Self::release_leases(self, owner).await
    }
}
