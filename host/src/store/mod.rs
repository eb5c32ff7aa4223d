//! The task hub behind a provider boundary.
//!
//! [`Provider`] is everything the engine and the management operations
//! need from storage: lock and load an episode, commit a checkpoint guarded
//! by the expected history length, claim and complete activity work,
//! wake-ups, queries, purge, components, locks. Providers store and load;
//! they never create history events or make orchestration decisions: those
//! come from [`crate::decide`], and every event and message a provider
//! writes arrives in the values it is given ([`Checkpoint`], [`Outbox`],
//! [`NewExecution`], [`ActivityOutcome`], [`RewindPlan`]).
//!
//! Errors are backend-neutral ([`StoreError`]): whether a failure is worth
//! retrying is [`StoreError::is_retryable`], whatever the backend.
//!
//! Backends: [`sqlite`] (the embedded default, one file = one task hub) and
//! [`postgres`] (one database = one task hub shared by many hosts), chosen
//! by the address [`open`] is given. Only the backend modules name their database crate or hold SQL text (a
//! test, `tests/e2e/layering.rs`, enforces both).

pub mod postgres;
pub mod sqlite;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::history::{Event, Millis, RetryPolicy, TaskId};

/// A shared handle to the task hub's provider.
pub type Store = Arc<dyn Provider>;

/// Errors of a provider, the same for every backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is busy or locked by another writer: try again.
    #[error("the task hub is busy: {0}")]
    Busy(String),
    /// The database cannot be reached right now (connection lost, server
    /// restarting): try again.
    #[error("the task hub is unavailable: {0}")]
    Unavailable(String),
    /// The disk or database is full: nothing was committed; try again later.
    #[error("the task hub is full: {0}")]
    Full(String),
    /// Any other backend failure (a bug or a damaged database).
    #[error("task hub error: {0}")]
    Backend(String),
    #[error("{name}: expected {expected}, the database reports {got}")]
    Setting {
        name: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("task hub schema version {found} is newer than this cairn supports ({supported}); upgrade cairn")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("task hub is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot open task hub {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("no task hub at {0}; create one with `cairn deploy` or `cairn serve`, or pass --db")]
    Missing(PathBuf),
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
    #[error("the store's writer has stopped")]
    Closed,
    /// The task hub admits one engine host and another process is it
    /// (SQLite's one-host guard).
    #[error(
        "another `cairn serve` is already running on task hub {0} (lock file held); stop it first or use another --db"
    )]
    HostBusy(String),
}

impl StoreError {
    /// Whether the same request may succeed later (busy database, full disk,
    /// a lost connection, a concurrent writer), as opposed to a permanent
    /// refusal.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Busy(_) | Self::Unavailable(_) | Self::Full(_) | Self::Conflict(_) | Self::Closed
        )
    }
}

/// What a committed change means for the engines: wake-ups. A provider
/// publishes them to [`Provider::subscribe`]rs after the commit.
#[derive(Debug, Default)]
pub struct Notes {
    /// Instances that got a message visible now.
    pub inbox: Vec<String>,
    /// Activity work items leased to the committing engine by the change.
    pub work: Vec<WorkItem>,
    /// Instances that reached a terminal status.
    pub finished: Vec<String>,
}

impl Notes {
    /// True when there is nothing to wake.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inbox.is_empty() && self.work.is_empty() && self.finished.is_empty()
    }

    /// Moves `other`'s notes into `self`.
    pub fn append(&mut self, other: &mut Self) {
        self.inbox.append(&mut other.inbox);
        self.work.append(&mut other.work);
        self.finished.append(&mut other.finished);
    }
}

/// Whether `address` names a PostgreSQL task hub (`postgres://...` or
/// `postgresql://...`) rather than a SQLite file.
#[must_use]
pub fn is_postgres(address: impl AsRef<Path>) -> bool {
    address.as_ref().to_str().is_some_and(postgres::is_address)
}

/// Opens the task hub at `address`, creating it: a `postgres://` or
/// `postgresql://` URL opens a PostgreSQL database (its schema is migrated;
/// this blocks while it connects), anything else is the path of a SQLite
/// file.
///
/// # Errors
/// The backend's open, migration and setting errors.
pub fn open(address: impl AsRef<Path>) -> Result<Store, StoreError> {
    let address = address.as_ref();
    match address.to_str() {
        Some(url) if postgres::is_address(url) => Ok(Arc::new(postgres::PostgresStore::open(url)?)),
        _ => Ok(Arc::new(sqlite::SqliteStore::open(address)?)),
    }
}

/// Opens an existing task hub; a missing SQLite file is
/// [`StoreError::Missing`] (for verbs that only read). A PostgreSQL
/// database is opened as by [`open`].
///
/// # Errors
/// As [`open`], and [`StoreError::Missing`].
pub fn open_existing(address: impl AsRef<Path>) -> Result<Store, StoreError> {
    let address = address.as_ref();
    if !is_postgres(address) && !address.exists() {
        return Err(StoreError::Missing(address.to_owned()));
    }
    open(address)
}

/// The storage interface of a task hub. See the module documentation.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Names the backend and the task hub, e.g. `sqlite:/var/lib/cairn.db`.
    fn describe(&self) -> String;

    /// The backend itself, for its own tools and white-box tests
    /// (e.g. [`sqlite::SqliteStore`]'s fault injection).
    fn as_any(&self) -> &dyn std::any::Any;

    /// Receives the [`Notes`] of every change committed through this
    /// handle from now on.
    fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Notes>>;

    /// Checks that the task hub answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Prepares this handle to run an engine and says how the task hub is
    /// shared. SQLite admits one engine host per file: this takes its guard
    /// (a lock file beside the database), held until the handle's last
    /// clone is dropped, and answers [`Hosting::Exclusive`];
    /// [`StoreError::HostBusy`] when another process holds it. PostgreSQL
    /// admits any number of hosts (they coordinate through leases):
    /// [`Hosting::Shared`]. Handles that only read or manage (the CLI's
    /// verbs) never claim, and work while a server runs.
    fn claim_host(&self) -> Result<Hosting, StoreError>;

    /// Whether another process serves this task hub now, where the backend
    /// can tell (SQLite: its guard is held); `None` where it cannot (a
    /// PostgreSQL hub may have hosts anywhere). Claims nothing: a probe of
    /// the guard is released at once, so a server starting later is not
    /// refused.
    fn served_elsewhere(&self) -> Option<bool> {
        None
    }

    // ---- components ---------------------------------------------------

    /// Stores a component and registers its functions as the newest
    /// versions of their names. Idempotent for the same bytes.
    async fn deploy_component(
        &self,
        hash: String,
        bytes: Vec<u8>,
        functions: Vec<(String, FunctionKind)>,
        grants: String,
        now: Millis,
    ) -> Result<(), StoreError>;
    /// The bytes of a deployed component ([`StoreError::VersionNotFound`]).
    async fn component_bytes(&self, hash: &str) -> Result<Vec<u8>, StoreError>;
    /// The capabilities (JSON) granted to a deployed component.
    async fn component_grants(&self, hash: &str) -> Result<String, StoreError>;
    /// The newest deployed version (component hash) of a function
    /// ([`StoreError::FunctionNotFound`]).
    async fn resolve_function(&self, name: &str, kind: FunctionKind) -> Result<String, StoreError>;
    /// Whether `hash` is a deployed version of orchestrator `name`.
    async fn orchestrator_version_exists(&self, name: &str, hash: &str) -> Result<bool, StoreError>;
    /// Every deployed function version, newest first per name.
    async fn list_functions(&self) -> Result<Vec<FunctionVersion>, StoreError>;
    /// Removes a component version no instance that may run again uses.
    async fn remove_component(&self, hash: &str) -> Result<RemoveComponent, StoreError>;
    /// Deletes component versions that no instance that may run again
    /// ([`RuntimeStatus::may_run_again`]) uses and that are not the newest
    /// version of any of their functions. Returns the pruned hashes.
    async fn prune_unused_versions(&self) -> Result<Vec<String>, StoreError>;
    /// Moves unfinished instances of orchestrator `name` among `ids` to
    /// version `to`, in one transaction; returns how many moved.
    async fn move_instances_to_version(
        &self,
        name: &str,
        ids: Vec<String>,
        to: &str,
        now: Millis,
    ) -> Result<usize, StoreError>;

    // ---- instances ----------------------------------------------------

    /// Creates an instance in Pending with its `ExecutionStarted` message,
    /// replacing a terminal one with the same id.
    /// [`StoreError::InstanceExists`] for an unfinished one.
    async fn create_instance(&self, new: NewExecution, now: Millis) -> Result<(), StoreError>;
    /// Delivers a message to an unfinished instance's current execution
    /// ([`StoreError::InstanceNotFound`], [`StoreError::InstanceFinished`]).
    async fn send_message(&self, instance_id: &str, event: Event, now: Millis) -> Result<(), StoreError>;
    /// One instance row.
    async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceRow>, StoreError>;
    /// The current execution's history ([`StoreError::InstanceNotFound`]).
    async fn get_history(&self, instance_id: &str) -> Result<Vec<(Millis, Event)>, StoreError>;
    /// Instances matching `q`, ordered by creation time then id.
    async fn list_instances(&self, q: InstanceQuery) -> Result<Vec<InstanceRow>, StoreError>;
    /// Number of instances per status (statuses without any left out).
    async fn instance_counts(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError>;
    /// Purges one instance if it is terminal.
    async fn purge_instance(&self, instance_id: &str) -> Result<PurgeOne, StoreError>;
    /// Purges at most `limit` terminal instances created in `[from, to]`
    /// whose status is in `statuses` (all terminal ones when empty).
    async fn purge_terminal_batch(
        &self,
        from: Millis,
        to: Millis,
        statuses: Vec<RuntimeStatus>,
        limit: u32,
    ) -> Result<u64, StoreError>;
    /// Deletes every instance, message, work item, lock and component.
    /// Returns the number of instances deleted.
    async fn delete_all(&self) -> Result<u64, StoreError>;
    /// Applies a rewind plan: the instance must still be Failed with the
    /// plan's history length ([`StoreError::Conflict`] otherwise).
    async fn rewind(&self, plan: RewindPlan) -> Result<(), StoreError>;
    /// Stores an instance exactly as recorded (its row and current
    /// execution's history), replacing one with the same id; no message is
    /// queued. For fixtures (canned histories in tests, the golden corpus)
    /// and for moving instances between task hubs.
    async fn import_instance(&self, row: InstanceRow, history: Vec<(Millis, Event)>) -> Result<(), StoreError>;
    /// Every held or awaited lock, by name.
    async fn list_locks(&self) -> Result<Vec<LockInfo>, StoreError>;

    // ---- entities -----------------------------------------------------
    // An entity is an instance with the id `@name@key` (status Running,
    // its state in `output`, its last operation time in `updated_at`),
    // its requests ([`Event::EntityRequest`]) in its inbox. Instance
    // listings and counts leave entities out.

    /// Queues `message` for entity `name` (`message.instance_id` is its
    /// instance id), creating the entity's row when it has none. With
    /// `dedup` (a client's idempotency key), a request already received
    /// under that key in the last [`DEDUP_WINDOW_MS`] is not queued again:
    /// `Ok(false)`.
    async fn send_to_entity(
        &self,
        name: &str,
        message: Message,
        dedup: Option<String>,
        now: Millis,
    ) -> Result<bool, StoreError>;
    /// The instance holding lock `name` (an entity's is its instance id).
    async fn lock_holder(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Commits an entity batch (see [`EntityCommit`]); guarded like a
    /// checkpoint by the instance lease.
    async fn commit_entity(&self, c: EntityCommit, lease: Lease) -> Result<(), StoreError>;
    /// Entities matching `q`.
    async fn list_entities(&self, q: EntityQuery) -> Result<Vec<InstanceRow>, StoreError>;
    /// Deletes entities that have no state, no queued request and no
    /// lock (all of them, or those named `name`); returns how many.
    async fn purge_empty_entities(&self, name: Option<String>) -> Result<u64, StoreError>;
    /// Deletes one entity with its state and queued requests; false when
    /// there is none. Its lock, if held, stays with its holder.
    async fn delete_entity(&self, entity_id: &str) -> Result<bool, StoreError>;
    /// Rows of the queues: (inbox messages, work items).
    async fn queue_depths(&self) -> Result<(u64, u64), StoreError>;

    // ---- queries with default implementations ---------------------------
    // Built from the methods above so that every backend has them; a
    // backend overrides them with one query.

    /// The queues at `now`: ready, delayed (timers and retries not yet
    /// due) and leased rows, and the age of the oldest ready row. The
    /// default counts every row as ready, with no age.
    async fn queue_stats(&self, now: Millis) -> Result<QueueStats, StoreError> {
        let _ = now;
        let (inbox, work) = self.queue_depths().await?;
        Ok(QueueStats {
            inbox_ready: inbox,
            work_ready: work,
            ..QueueStats::default()
        })
    }

    /// One page of instances for the console: `q`'s filters, plus an
    /// orchestrator name, newest first when `newest_first` (then `q.after`
    /// continues *before* that position). The default pages through
    /// [`Provider::list_instances`] (a full scan when newest first or
    /// filtered by name).
    async fn browse_instances(&self, q: BrowseQuery) -> Result<Vec<InstanceRow>, StoreError> {
        if q.name.is_none() && !q.newest_first {
            return self.list_instances(q.base).await;
        }
        let top = q.base.top.map_or(usize::MAX, |t| t as usize);
        let mut all = scan_instances(self, &q.base, q.name.as_deref()).await?;
        if let Some((at, id)) = &q.base.after {
            let after = (*at, id.as_str());
            all.retain(|r| ((r.created_at, r.instance_id.as_str()) < after) == q.newest_first);
        }
        if q.newest_first {
            all.reverse();
        }
        all.truncate(top);
        Ok(all)
    }

    /// Number of instances per status among those matching `q` (its
    /// statuses, `after` and `top` ignored) and `name`. The default scans.
    async fn count_instances(
        &self,
        q: InstanceQuery,
        name: Option<String>,
    ) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        let unfiltered = q.created_from.is_none() && q.created_to.is_none() && q.id_prefix.is_none();
        if unfiltered && name.is_none() {
            return self.instance_counts().await;
        }
        let base = InstanceQuery {
            statuses: Vec::new(),
            after: None,
            top: None,
            ..q
        };
        let mut out: Vec<(RuntimeStatus, u64)> = Vec::new();
        for row in scan_instances(self, &base, name.as_deref()).await? {
            match out.iter_mut().find(|(s, _)| *s == row.status) {
                Some((_, n)) => *n += 1,
                None => out.push((row.status, 1)),
            }
        }
        Ok(out)
    }

    /// Number of instances per component version and status. The default scans.
    async fn instances_per_version(&self) -> Result<Vec<(String, RuntimeStatus, u64)>, StoreError> {
        let mut out: Vec<(String, RuntimeStatus, u64)> = Vec::new();
        for row in scan_instances(self, &InstanceQuery::default(), None).await? {
            match out.iter_mut().find(|(v, s, _)| *v == row.version && *s == row.status) {
                Some((_, _, n)) => *n += 1,
                None => out.push((row.version, row.status, 1)),
            }
        }
        Ok(out)
    }

    // ---- the engine ---------------------------------------------------

    /// Instances with a message visible at `now` that can be processed
    /// (a suspended instance only for resume / terminate) and that no
    /// other owner than `owner` holds an unexpired lease on.
    async fn due_instances(&self, now: Millis, limit: u32, owner: &str) -> Result<Vec<String>, StoreError>;
    /// Takes or renews `lease` on instance `instance_id` until
    /// `now + lease.duration_ms`: granted when the instance is unleased,
    /// its lease expired, or `lease.owner` holds it already. `Ok(false)`:
    /// another owner holds an unexpired lease (or the instance is unknown).
    async fn lease_instance(&self, instance_id: &str, lease: &Lease, now: Millis) -> Result<bool, StoreError>;
    /// Renews `lease` on every instance of `ids` it holds; returns the ids
    /// whose lease it no longer holds (expired and taken, or released).
    async fn renew_instance_leases(
        &self,
        ids: Vec<String>,
        lease: &Lease,
        now: Millis,
    ) -> Result<Vec<String>, StoreError>;
    /// The unexpired instance leases at `now` (only `owner`'s when given),
    /// ordered by instance id: for `/metrics` and operators.
    async fn instance_leases(&self, owner: Option<String>, now: Millis) -> Result<Vec<InstanceLease>, StoreError>;
    /// Renews `lease` on the work items among `ids` that `lease.owner`
    /// still holds (a host heartbeats the activities it runs or has queued,
    /// so that their lease can be short); returns the ids it no longer
    /// holds (expired and claimed by another host, or completed).
    async fn renew_work_leases(&self, ids: Vec<i64>, lease: &Lease, now: Millis) -> Result<Vec<i64>, StoreError>;
    /// Ends `owner`'s lease on `instance_id` (nothing when it holds none).
    async fn release_instance(&self, instance_id: &str, owner: &str) -> Result<(), StoreError>;
    /// Voids every instance lease not held by `owner`: for the only engine
    /// of a single-host task hub at start-up, whose guard proves the other
    /// owners dead (their work items come back through
    /// [`Provider::claim_work_items`] with `reclaim_all`, attempt + 1).
    async fn reclaim_leases(&self, owner: &str) -> Result<(), StoreError>;
    /// Reads what an episode of `instance_id` needs, in one snapshot. The
    /// history is left out when `hot` (execution id, history length,
    /// version) matches the stored row. `Ok(None)`: unknown instance.
    async fn load_episode(
        &self,
        instance_id: &str,
        now: Millis,
        hot: Option<(String, u64, String)>,
    ) -> Result<Option<EpisodeInput>, StoreError>;
    /// Commits an episode: history, outbox, consumed messages and the
    /// instance row in one transaction ([`StoreError::Conflict`] when the
    /// stored history length is not the expected one, or when another owner
    /// than `lease.owner` holds an unexpired lease on the instance). The
    /// instance lease then belongs to `lease.owner` until `cp.lease_until`,
    /// or is released (`None`). Work items it creates are leased to
    /// `lease.owner` for `lease.duration_ms` and announced in its notes.
    async fn checkpoint(&self, cp: Checkpoint, lease: Lease) -> Result<(), StoreError>;
    /// Drops inbox messages without an episode (e.g. for a finished instance).
    async fn discard_messages(&self, ids: Vec<i64>) -> Result<(), StoreError>;
    /// Leases visible work items that are unleased or whose lease expired
    /// (with `reclaim_all`, also those leased by another owner: for the
    /// only engine of a single-host task hub at start-up). A redelivered
    /// item's attempt is incremented.
    async fn claim_work_items(
        &self,
        lease: Lease,
        now: Millis,
        reclaim_all: bool,
        limit: u32,
    ) -> Result<Vec<WorkItem>, StoreError>;
    /// Commits an activity attempt's end: delivers `outcome.message` and
    /// deletes the item, or keeps it for `outcome.retry_at`. Returns false
    /// when `owner` no longer holds the lease (nothing is written).
    async fn complete_work_item(
        &self,
        item: WorkItem,
        owner: String,
        outcome: ActivityOutcome,
        now: Millis,
    ) -> Result<bool, StoreError>;
    /// Releases every lease `owner` holds, instances and work items (a
    /// clean shutdown).
    async fn release_leases(&self, owner: String) -> Result<(), StoreError>;
}

/// Runtime status of an instance, as Durable Functions names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuntimeStatus {
    Pending,
    Running,
    Completed,
    ContinuedAsNew,
    Failed,
    Canceled,
    Terminated,
    Suspended,
}

impl RuntimeStatus {
    pub const ALL: [Self; 8] = [
        Self::Pending,
        Self::Running,
        Self::Completed,
        Self::ContinuedAsNew,
        Self::Failed,
        Self::Canceled,
        Self::Terminated,
        Self::Suspended,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Completed => "Completed",
            Self::ContinuedAsNew => "ContinuedAsNew",
            Self::Failed => "Failed",
            Self::Canceled => "Canceled",
            Self::Terminated => "Terminated",
            Self::Suspended => "Suspended",
        }
    }

    /// Parses a status name, case-insensitively.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Completed, Failed, Canceled or Terminated: the execution is over and
    /// takes no more messages (a new start may replace it).
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled | Self::Terminated)
    }

    /// The statuses of [`Self::is_terminal`].
    pub const TERMINAL: [Self; 4] = [Self::Completed, Self::Failed, Self::Canceled, Self::Terminated];

    /// Whether the instance can ever run its code again: everything but
    /// Completed, Canceled and Terminated (a Failed instance can be
    /// rewound). An instance that may run again keeps its component version
    /// from being removed or pruned.
    #[must_use]
    pub fn may_run_again(self) -> bool {
        !Self::NEVER_AGAIN.contains(&self)
    }

    /// The statuses for which [`Self::may_run_again`] is false.
    pub const NEVER_AGAIN: [Self; 3] = [Self::Completed, Self::Canceled, Self::Terminated];
}

impl fmt::Display for RuntimeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kind of a deployed function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    Orchestrator,
    Activity,
    Entity,
}

impl FunctionKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orchestrator => "orchestrator",
            Self::Activity => "activity",
            Self::Entity => "entity",
        }
    }

    /// Parses a stored kind.
    ///
    /// # Errors
    /// [`StoreError::Decode`] for an unknown kind.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "orchestrator" => Ok(Self::Orchestrator),
            "activity" => Ok(Self::Activity),
            "entity" => Ok(Self::Entity),
            other => Err(StoreError::Decode(format!("unknown function kind {other:?}"))),
        }
    }
}

impl fmt::Display for FunctionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `instances`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub instance_id: String,
    pub execution_id: String,
    pub name: String,
    pub version: String,
    pub status: RuntimeStatus,
    pub input: Option<String>,
    pub output: Option<String>,
    pub custom_status: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub parent_instance: Option<String>,
    pub history_len: u64,
}

/// A message in an instance's inbox.
#[derive(Debug, Clone)]
pub struct InboxMessage {
    pub id: i64,
    /// The execution it is addressed to; `None` = the current one.
    pub execution_id: Option<String>,
    pub timestamp: Millis,
    pub event: Event,
}

/// An activity work item.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    pub id: i64,
    pub instance_id: String,
    pub execution_id: String,
    pub task_id: TaskId,
    pub name: String,
    pub input: String,
    pub retry: Option<RetryPolicy>,
    pub attempt: u32,
    pub first_scheduled: Millis,
}

/// Everything an episode needs, read in one snapshot.
#[derive(Debug)]
pub struct EpisodeInput {
    pub instance: InstanceRow,
    pub messages: Vec<InboxMessage>,
    /// The current execution's history, unless the caller's hot copy is current.
    pub history: Option<Vec<(Millis, Event)>>,
}

/// A message for an instance's inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub instance_id: String,
    /// The execution it is for; `None` = whichever is current.
    pub execution_id: Option<String>,
    pub visible_at: Millis,
    pub event: Event,
}

/// A new execution of an instance (a start, a child start, continue-as-new,
/// a child's retry), with its `ExecutionStarted` message as the decision
/// core built it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExecution {
    pub instance_id: String,
    pub execution_id: String,
    pub name: String,
    pub version: String,
    pub input: String,
    pub parent_instance: Option<String>,
    /// The `ExecutionStarted` event, delivered at `visible_at`.
    pub started: Event,
    pub visible_at: Millis,
}

/// Side effects of a checkpoint, committed with it. Built by
/// [`crate::decide`]; a provider stores them as they are.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "a handful per checkpoint, built and consumed at once; boxing buys nothing"
)]
pub enum Outbox {
    /// An activity work item for this instance.
    WorkItem {
        task_id: TaskId,
        name: String,
        input: String,
        retry: Option<RetryPolicy>,
        /// Attempt number of its first delivery (more than 1 after a rewind).
        attempt: u32,
    },
    /// A message to an instance (a timer to self, a result to the parent).
    /// Dropped when the addressee is gone or finished.
    Message(Message),
    /// Create a child instance; when an unfinished instance with its id
    /// exists, deliver `refused` (to the parent) instead.
    StartChild { child: NewExecution, refused: Message },
    /// Request the locks of a critical section (names sorted); `granted` is
    /// delivered to this instance when all are held.
    AcquireLocks {
        task_id: TaskId,
        names: Vec<String>,
        granted: Event,
    },
    /// Release the locks of the section entered with task `lock`.
    ReleaseLocks { lock: TaskId },
    /// Replace this instance's execution (continue-as-new, a child's retry):
    /// its history is dropped and `next` becomes current.
    NextExecution(NewExecution),
    /// A request to entity `name` (`message.instance_id` is its `@name@key`
    /// instance id); the entity's row is created when it has none.
    ToEntity { name: String, message: Message },
    /// Start an orchestration (an entity's start): nothing happens when an
    /// unfinished instance with its id exists.
    Start(NewExecution),
}

/// How long a client's idempotency key of an entity signal is remembered.
pub const DEDUP_WINDOW_MS: Millis = 24 * 60 * 60 * 1000;

/// `visible_at` of an entity request parked behind the lock of another
/// orchestration: never due, until the lock is released (then the
/// provider makes the entity's parked requests visible again).
pub const PARKED_AT: Millis = 1 << 62;

/// An entity batch's state change, committed atomically (built by
/// [`crate::decide::entity_commit`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityCommit {
    /// The entity's instance id (`@name@key`).
    pub entity_id: String,
    /// Requests applied (or dropped) by the batch: each must still be in
    /// the inbox, else the batch was applied by someone else and is
    /// refused ([`StoreError::Conflict`]). This is what applies every
    /// request exactly once.
    pub consumed: Vec<i64>,
    /// Requests set aside ([`PARKED_AT`]) while `holder` holds the entity's lock.
    pub parked: Vec<i64>,
    /// The lock holder the batch was planned under; checked when parking.
    pub holder: Option<String>,
    /// The state after the batch (`None`: no state, deleted).
    pub state: Option<String>,
    /// Replies, signals and starts.
    pub outbox: Vec<Outbox>,
    pub now: Millis,
    /// As [`Checkpoint::lease_until`].
    pub lease_until: Option<Millis>,
}

/// Filter of [`Provider::list_entities`], ordered by entity instance id.
#[derive(Debug, Clone, Default)]
pub struct EntityQuery {
    /// Only entities of this name.
    pub name: Option<String>,
    /// Last operation at or after.
    pub last_op_from: Option<Millis>,
    /// Last operation at or before.
    pub last_op_to: Option<Millis>,
    /// Include entities without state (deleted, or never given one).
    pub include_empty: bool,
    pub top: Option<u32>,
    /// Continue after this entity instance id.
    pub after: Option<String>,
}

/// One episode's state change, committed atomically.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub instance_id: String,
    pub execution_id: String,
    /// The history length the episode started from; a different stored
    /// value means someone else wrote: the checkpoint is refused.
    pub expected_history_len: u64,
    pub consumed: Vec<i64>,
    pub events: Vec<(Millis, Event)>,
    pub status: RuntimeStatus,
    /// `Some` when the execution finished (its output or failure JSON).
    pub output: Option<Option<String>>,
    pub custom_status: Option<Option<String>>,
    pub outbox: Vec<Outbox>,
    pub now: Millis,
    /// The committing engine keeps the instance's lease until then (it
    /// keeps the instance hot); `None` releases it.
    pub lease_until: Option<Millis>,
}

/// How engines share a task hub ([`Provider::claim_host`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosting {
    /// This engine is the only one (leases of other owners are void at start).
    Exclusive,
    /// Many hosts share the task hub; episodes run under instance leases.
    Shared,
}

/// An unexpired instance lease ([`Provider::instance_leases`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceLease {
    pub instance_id: String,
    pub owner: String,
    pub expires: Millis,
}

/// Lease given to activity work items created by a checkpoint.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub duration_ms: u64,
}

/// Filter of [`Provider::list_instances`].
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    pub created_from: Option<Millis>,
    pub created_to: Option<Millis>,
    pub statuses: Vec<RuntimeStatus>,
    pub id_prefix: Option<String>,
    /// Only instances of this orchestrator.
    pub name: Option<String>,
    pub top: Option<u32>,
    /// Continue after this instance (order: created_at, instance_id).
    pub after: Option<(Millis, String)>,
}

/// A deployed function version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionVersion {
    pub name: String,
    pub kind: FunctionKind,
    pub hash: String,
    pub deployed_at: Millis,
}

/// What an activity attempt's end does, decided by [`crate::decide::activity_outcome`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityOutcome {
    /// Delivered to the instance (`TaskCompleted`, `TaskFailed` or `TaskRetrying`).
    pub message: Event,
    /// `Some`: the item stays, with attempt + 1, visible again then.
    pub retry_at: Option<Millis>,
}

/// A rewind of a Failed instance, planned by [`crate::decide::rewind`].
#[derive(Debug, Clone, PartialEq)]
pub struct RewindPlan {
    pub instance_id: String,
    pub execution_id: String,
    /// The stored history length the plan was made from (else: conflict).
    pub expected_history_len: u64,
    /// The history that replaces the execution's history.
    pub history: Vec<(Millis, Event)>,
    /// Work to schedule again (unleased).
    pub outbox: Vec<Outbox>,
    /// The `ExecutionRewound` message that makes the instance run.
    pub message: Message,
    pub now: Millis,
}

/// Outcome of purging one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeOne {
    Purged,
    NotFound,
    NotTerminal(RuntimeStatus),
}

/// Outcome of removing a component version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveComponent {
    /// Removed; the names of the functions it provided.
    Removed(Vec<String>),
    NotFound,
    /// Instances that may still run are pinned to it.
    InUse(u64),
}

/// One lock and its queue, for `cairn locks` and the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockInfo {
    pub name: String,
    /// Instance holding the lock, with the time it got it.
    pub holder: Option<(String, Millis)>,
    /// Instances waiting for it, oldest first.
    pub waiting: Vec<String>,
}

/// The queues of a task hub at one moment ([`Provider::queue_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Inbox messages visible now.
    pub inbox_ready: u64,
    /// Inbox messages visible later (durable timers).
    pub inbox_delayed: u64,
    /// Age of the oldest visible inbox message, ms (0 when none).
    pub inbox_oldest_ready_ms: u64,
    /// Work items visible now and not leased.
    pub work_ready: u64,
    /// Work items visible later (retry delays).
    pub work_delayed: u64,
    /// Work items leased to a worker (running).
    pub work_leased: u64,
    /// Age of the oldest ready work item, ms (0 when none).
    pub work_oldest_ready_ms: u64,
}

/// Filter of [`Provider::browse_instances`].
#[derive(Debug, Clone, Default)]
pub struct BrowseQuery {
    pub base: InstanceQuery,
    /// Only instances of this orchestrator.
    pub name: Option<String>,
    /// Newest first (order: created_at, instance_id, descending).
    pub newest_first: bool,
}

/// Every instance matching `q` (its `top` and `after` ignored) and
/// `name`, oldest first, read in pages: the default implementations'
/// full scan.
async fn scan_instances<P: Provider + ?Sized>(
    p: &P,
    q: &InstanceQuery,
    name: Option<&str>,
) -> Result<Vec<InstanceRow>, StoreError> {
    const PAGE: u32 = 1000;
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = p
            .list_instances(InstanceQuery {
                top: Some(PAGE),
                after: after.take(),
                ..q.clone()
            })
            .await?;
        let n = page.len();
        after = page.last().map(|r| (r.created_at, r.instance_id.clone()));
        out.extend(page.into_iter().filter(|r| name.is_none_or(|n| r.name == n)));
        if n < PAGE as usize {
            return Ok(out);
        }
    }
}
