//! The task hub on SQLite: one file, WAL, `synchronous=FULL`.
//!
//! All writes go through ONE writer thread that batches whatever requests
//! are waiting into one transaction (group commit): every request runs in
//! its own SAVEPOINT, so one failing request does not undo the others, and
//! replies are sent only after the COMMIT is durable. Reads use a small pool
//! of separate connections (WAL readers never block the writer).
//!
//! This module is the only one that touches rusqlite.

mod admin;
mod locks;
mod ops;
mod schema;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

pub use locks::LockInfo;
pub use ops::*;
pub use schema::SCHEMA_VERSION;

/// Most requests one group-commit transaction takes.
const MAX_BATCH: usize = 512;

/// Errors of the store. [`StoreError::is_retryable`] tells callers whether
/// trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PRAGMA {name}: expected {expected}, SQLite reports {got}")]
    Pragma {
        name: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("task hub schema version {found} is newer than this cairn supports ({supported}); upgrade cairn")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("task hub file is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot open task hub {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("instance {0:?} not found")]
    InstanceNotFound(String),
    #[error("an instance with id {0:?} already exists and is not finished")]
    InstanceExists(String),
    #[error("instance {id:?} is {status}; it accepts no more messages")]
    InstanceFinished { id: String, status: RuntimeStatus },
    #[error("instance {id:?} is {status}; only Failed instances can be rewound")]
    NotFailed { id: String, status: RuntimeStatus },
    #[error("no {kind} named {name:?} is deployed; deploy a component that exports it")]
    FunctionNotFound { kind: FunctionKind, name: String },
    #[error("component version {0:?} is not deployed")]
    VersionNotFound(String),
    #[error("instance {0:?} changed underneath this episode (another writer); the episode is retried")]
    Conflict(String),
    #[error("stored data could not be decoded: {0}")]
    Decode(String),
    #[error("the store's writer thread has stopped")]
    Closed,
}

impl StoreError {
    /// Whether the same request may succeed later (busy database, full disk,
    /// a concurrent writer), as opposed to a permanent refusal.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                )
            ),
            Self::Conflict(_) | Self::Closed => true,
            _ => false,
        }
    }
}

/// What a committed batch changed, for the engine's in-process wake-ups.
#[derive(Debug, Default)]
pub struct Notes {
    /// Instances that got a message visible now.
    pub inbox: Vec<String>,
    /// Activity work items leased to this process by the batch.
    pub work: Vec<WorkItem>,
    /// Instances that reached a terminal status.
    pub finished: Vec<String>,
}

impl Notes {
    fn is_empty(&self) -> bool {
        self.inbox.is_empty() && self.work.is_empty() && self.finished.is_empty()
    }
}

type JobResult = Result<Box<dyn Any + Send>, StoreError>;
type JobFn = Box<dyn FnOnce(&Connection, &mut Notes) -> JobResult + Send>;

struct Job {
    run: JobFn,
    reply: oneshot::Sender<JobResult>,
}

/// Handle to a task hub. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: mpsc::UnboundedSender<Job>,
    readers: Mutex<Vec<Connection>>,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<Notes>>>>>,
}

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    schema::configure(&conn)?;
    Ok(conn)
}

impl Store {
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
                subscribers,
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
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
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
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
            let mut conn = match pooled {
                Some(c) => c,
                None => open_conn(&inner.path)?,
            };
            let out = f(&mut conn);
            if let Ok(mut p) = inner.readers.lock()
                && p.len() < 8
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
                        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some(msg.clone()),
                        ))
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
                        notes.inbox.append(&mut job_notes.inbox);
                        notes.work.append(&mut job_notes.work);
                        notes.finished.append(&mut job_notes.finished);
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
                Err(e) => StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                    Some(format!("the transaction was rolled back: {e}")),
                )),
                Ok(_) => StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                    Some("the transaction was rolled back".into()),
                )),
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
