//! The task hub on PostgreSQL: one database = one task hub, shared by many
//! `cairn serve` hosts.
//!
//! Every write operation is ONE transaction at READ COMMITTED on a pooled
//! connection (deadpool): a checkpoint, an activity's completion, a start.
//! Where the SQLite backend relies on its single writer, this one takes row
//! locks: the instance row `FOR UPDATE` before a checkpoint's history-length
//! and lease check (so two checkpoints from the same length serialise and
//! the second sees the first's length: [`StoreError::Conflict`]), `FOR
//! SHARE` on an addressee's row before a message is delivered (it cannot
//! finish in between), `FOR UPDATE SKIP LOCKED` for claims of work items
//! (two hosts never claim the same item), and one transaction-scoped
//! advisory lock around lock-queue changes (critical sections are rare;
//! one mutex keeps their FIFO queues exactly as SQLite's). Deadlocks and
//! serialization failures are retried here a few times, then surface as
//! [`StoreError::Busy`].
//!
//! Wake-ups: the [`Notes`] of a commit go to this handle's subscribers right
//! after it, as with SQLite; and the transaction itself sends `NOTIFY
//! cairn_inbox` / `cairn_finished` with the instance id, which PostgreSQL
//! delivers to other hosts only if it commits. A background task per handle
//! (started by the first [`Provider::subscribe`]) LISTENs on one dedicated
//! connection and forwards other hosts' notifications; it reconnects with
//! backoff, and the engine's poll covers what a lost connection missed.
//!
//! This module is the only one that touches tokio-postgres.

mod admin;
mod batch;
mod commit;
mod entities;
mod leases;
mod locks;
mod ops;
mod reads;
mod schema;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{AsyncMessage, NoTls, Row};

pub use schema::SCHEMA_VERSION;

use super::{
    ActivityOutcome, Checkpoint, EpisodeInput, FunctionKind, FunctionVersion, Hosting, InstanceLease, InstanceQuery,
    InstanceRow, Lease, LockInfo, NewExecution, Notes, Provider, PurgeOne, RemoveComponent, RewindPlan, RuntimeStatus,
    StoreError, WorkItem,
};
use crate::history::{Event, Millis};

/// Most connections one handle opens.
const POOL_SIZE: usize = 16;
/// Longest wait for a pooled connection before the request fails as busy.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for a new connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Times a transaction that hit a deadlock or serialization failure is run
/// again before the error reaches the caller.
const RETRIES: u32 = 4;
/// Channels of the cross-host wake-ups (payload: the instance id).
const CHANNEL_INBOX: &str = "cairn_inbox";
const CHANNEL_FINISHED: &str = "cairn_finished";

/// Whether `address` names a PostgreSQL task hub.
#[must_use]
pub fn is_address(address: &str) -> bool {
    address.starts_with("postgres://") || address.starts_with("postgresql://")
}

/// Maps a PostgreSQL error to the backend-neutral [`StoreError`].
pub(crate) fn pg(e: tokio_postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        let text = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| format!("{} ({})", d.message(), code.code()));
        return match code {
            c if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::LOCK_NOT_AVAILABLE =>
            {
                StoreError::Busy(text)
            }
            c if *c == SqlState::DISK_FULL => StoreError::Full(text),
            c if *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::OUT_OF_MEMORY
                || c.code().starts_with("08") =>
            {
                StoreError::Unavailable(text)
            }
            _ => StoreError::Backend(format!("postgres: {text}")),
        };
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(format!("postgres: {e}"))
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        deadpool_postgres::PoolError::Timeout(t) => {
            StoreError::Unavailable(format!("no connection to PostgreSQL within the time limit ({t:?})"))
        }
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Reads column `i` of `row`.
pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i)
        .map_err(|e| StoreError::Decode(format!("column {i}: {e}")))
}

/// Millis as stored (BIGINT).
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored BIGINT as millis or a count.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) type Param<'a> = &'a (dyn ToSql + Sync);

/// Runs a statement (prepared once per connection) and returns its rows.
pub(crate) async fn query<C: GenericClient>(c: &C, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.query(&st, params).await.map_err(pg)
}

/// Runs a statement and returns its only row, if any.
pub(crate) async fn query_opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<Row>, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.query_opt(&st, params).await.map_err(pg)
}

/// Runs a statement and returns the rows it changed.
pub(crate) async fn execute<C: GenericClient>(c: &C, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
    let st = c.prepare_cached(sql).await.map_err(pg)?;
    c.execute(&st, params).await.map_err(pg)
}

/// Runs `$body` (an expression that may `.await`, using `$tx`, a
/// `&deadpool_postgres::Transaction`, and `$notes`, a `&mut Notes`, and
/// evaluating to `Result<R, StoreError>`) in one READ COMMITTED transaction
/// of `$store` (a `&PostgresStore`). The notes' wake-ups are NOTIFYed inside
/// the transaction and published locally after the commit. A deadlock, a
/// serialization failure or a pooled connection found dead before COMMIT
/// was sent runs the whole transaction again (a few times: nothing of it
/// was committed); a failure to get a connection at all, or of the COMMIT
/// itself (its outcome is unknown), is returned.
macro_rules! write_tx {
    ($store:expr, |$tx:ident, $notes:ident| $body:expr) => {{
        let store: &$crate::store::postgres::PostgresStore = $store;
        let mut tries: u32 = 0;
        loop {
            let mut all_notes = $crate::store::Notes::default();
            let (mut connected, mut committing) = (false, false);
            let result: Result<_, $crate::store::StoreError> = async {
                let mut client = store.client().await?;
                connected = true;
                let $tx = client.transaction().await.map_err($crate::store::postgres::pg)?;
                let value: Result<_, $crate::store::StoreError> = {
                    let $notes = &mut all_notes;
                    $body
                };
                let value = value?;
                $crate::store::postgres::announce(&$tx, &all_notes).await?;
                committing = true;
                $tx.commit().await.map_err($crate::store::postgres::pg)?;
                Ok::<_, $crate::store::StoreError>(value)
            }
            .await;
            match result {
                Err($crate::store::StoreError::Busy(_) | $crate::store::StoreError::Unavailable(_))
                    if connected && !committing && tries < $crate::store::postgres::retries() =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 << tries)).await;
                }
                Err(e) => break Err(e),
                Ok(v) => {
                    store.publish(all_notes);
                    break Ok(v);
                }
            }
        }
    }};
}
pub(crate) use write_tx;

pub(crate) const fn retries() -> u32 {
    RETRIES
}

/// Sends the commit's wake-ups to other hosts: PostgreSQL delivers them
/// only if the transaction commits.
pub(crate) async fn announce(tx: &deadpool_postgres::Transaction<'_>, notes: &Notes) -> Result<(), StoreError> {
    for (channel, ids) in [(CHANNEL_INBOX, &notes.inbox), (CHANNEL_FINISHED, &notes.finished)] {
        if ids.is_empty() {
            continue;
        }
        let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        execute(
            tx,
            "SELECT pg_notify($1, id) FROM unnest($2::text[]) AS t(id)",
            &[&channel, &ids],
        )
        .await?;
    }
    Ok(())
}

type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<Notes>>>>>;

/// The PostgreSQL provider. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    description: String,
    pool: Pool,
    subscribers: Subscribers,
    /// Server process ids of this handle's pooled connections: their
    /// notifications were already published locally.
    own_pids: Arc<Mutex<HashSet<i32>>>,
    listening: AtomicBool,
    /// Writes waiting for a group commit ([`commit`]).
    queue: commit::Queue,
    /// Lease takes, episode loads and releases waiting for a grouped read
    /// ([`reads`]).
    reads: reads::Groups,
    /// Dropped with the handle: stops the listener.
    _stop: watch::Sender<()>,
    stop: watch::Receiver<()>,
}

/// `postgres://user@host:port/db`, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or_else(|| config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    format!(
        "postgres://{user}{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

/// `url` as [`Provider::describe`] shows it: without the password.
#[must_use]
pub fn describe_address(url: &str) -> String {
    parse(url).map_or_else(|_| "postgres://…".to_owned(), |c| describe(&c))
}

fn parse(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Open {
        // The address may hold a password: name what was wrong, not the address.
        path: "postgres://…".into(),
        reason: format!("not a PostgreSQL connection URL: {e}"),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name("cairn");
    Ok(config)
}

impl PostgresStore {
    /// Opens the task hub in the database at `url`
    /// (`postgres://user:password@host:port/db`), migrating its schema.
    /// Blocks the calling thread while it connects and migrates (it may be
    /// called inside or outside a tokio runtime); the pooled connections
    /// and the listener run on the runtime that uses the handle.
    ///
    /// # Errors
    /// A bad URL, an unreachable server, a setting that breaks durability,
    /// [`StoreError::SchemaTooNew`].
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let config = parse(url)?;
        let cfg = config.clone();
        std::thread::Builder::new()
            .name("cairn-pg-open".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| StoreError::Backend(format!("cannot start a runtime: {e}")))?;
                rt.block_on(schema::migrate(&cfg))
            })
            .map_err(|e| StoreError::Backend(format!("cannot start a thread: {e}")))?
            .join()
            .map_err(|_| StoreError::Backend("opening the task hub panicked".into()))??;
        Self::with_pool(config)
    }

    /// As [`Self::open`], for async callers.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config = parse(url)?;
        schema::migrate(&config).await?;
        Self::with_pool(config)
    }

    fn with_pool(config: tokio_postgres::Config) -> Result<Self, StoreError> {
        let own_pids: Arc<Mutex<HashSet<i32>>> = Arc::default();
        let pids = own_pids.clone();
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .post_create(Hook::async_fn(move |client, _| {
                let pids = pids.clone();
                Box::pin(async move {
                    // Durable commits whatever the server's default is.
                    let rows = client
                        .simple_query("SET synchronous_commit = on; SELECT pg_backend_pid()")
                        .await
                        .map_err(HookError::Backend)?;
                    for msg in rows {
                        if let tokio_postgres::SimpleQueryMessage::Row(r) = msg
                            && let Some(pid) = r.get(0).and_then(|p| p.parse::<i32>().ok())
                            && let Ok(mut set) = pids.lock()
                        {
                            set.insert(pid);
                        }
                    }
                    Ok(())
                })
            }))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        let (stop_tx, stop) = watch::channel(());
        Ok(Self {
            inner: Arc::new(Inner {
                description: describe(&config),
                config,
                pool,
                subscribers: Arc::default(),
                own_pids,
                listening: AtomicBool::new(false),
                queue: commit::Queue::default(),
                reads: reads::Groups::default(),
                _stop: stop_tx,
                stop,
            }),
        })
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(pool_err)
    }

    /// Publishes a commit's notes to this handle's subscribers.
    pub(crate) fn publish(&self, notes: Notes) {
        publish(&self.inner.subscribers, notes);
    }

    /// Receives the [`Notes`] of every change committed through this handle
    /// and, once the listener is connected, other hosts' wake-ups.
    #[must_use]
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Notes>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut subs) = self.inner.subscribers.lock() {
            subs.push(tx);
        }
        self.start_listener();
        rx
    }

    /// Starts the LISTEN task on the current runtime (once).
    fn start_listener(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        handle.spawn(listen(
            self.inner.config.clone(),
            self.inner.subscribers.clone(),
            self.inner.own_pids.clone(),
            self.inner.stop.clone(),
        ));
    }
}

fn publish(subs: &Mutex<Vec<mpsc::UnboundedSender<Arc<Notes>>>>, notes: Notes) {
    if notes.is_empty() {
        return;
    }
    let notes = Arc::new(notes);
    if let Ok(mut s) = subs.lock() {
        s.retain(|tx| tx.send(notes.clone()).is_ok());
    }
}

/// Forwards other hosts' NOTIFYs to `subs` until `stop` fires,
/// reconnecting with backoff when the connection is lost.
async fn listen(
    config: tokio_postgres::Config,
    subs: Subscribers,
    own: Arc<Mutex<HashSet<i32>>>,
    mut stop: watch::Receiver<()>,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match listen_once(&config, &subs, &own, &mut stop, &mut delay).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "the PostgreSQL wake-up listener lost its connection")
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life: `Ok` when stopped, `Err` when the connection failed.
async fn listen_once(
    config: &tokio_postgres::Config,
    subs: &Subscribers,
    own: &Mutex<HashSet<i32>>,
    stop: &mut watch::Receiver<()>,
    delay: &mut Duration,
) -> Result<(), StoreError> {
    let (client, mut conn) = config.connect(NoTls).await.map_err(pg)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "listener connection ended");
                    return;
                }
                None => return,
            }
        }
    });
    let listening = client
        .batch_execute(&format!("LISTEN {CHANNEL_INBOX}; LISTEN {CHANNEL_FINISHED}"))
        .await
        .map_err(pg);
    if let Err(e) = listening {
        driver.abort();
        return Err(e);
    }
    *delay = Duration::from_millis(100);
    let result = loop {
        tokio::select! {
            _ = stop.changed() => break Ok(()),
            n = rx.recv() => {
                let Some(first) = n else {
                    break Err(StoreError::Unavailable("the LISTEN connection closed".into()));
                };
                let mut notes = Notes::default();
                let own = own.lock().map(|s| s.clone()).unwrap_or_default();
                let mut next = Some(first);
                while let Some(n) = next {
                    if !own.contains(&n.process_id()) {
                        match n.channel() {
                            CHANNEL_INBOX => notes.inbox.push(n.payload().to_owned()),
                            CHANNEL_FINISHED => notes.finished.push(n.payload().to_owned()),
                            _ => {}
                        }
                    }
                    next = rx.try_recv().ok();
                }
                publish(subs, notes);
            }
        }
    };
    driver.abort();
    drop(client);
    result
}

#[async_trait::async_trait]
impl Provider for PostgresStore {
    fn describe(&self) -> String {
        self.inner.description.clone()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<Notes>> {
        Self::subscribe(self)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let c = self.client().await?;
        query(&c, "SELECT 1", &[]).await.map(drop)
    }

    fn claim_host(&self) -> Result<Hosting, StoreError> {
        Ok(Hosting::Shared)
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
    async fn import_instance(&self, row: InstanceRow, history: Vec<(Millis, Event)>) -> Result<(), StoreError> {
        Self::import_instance(self, row, history).await
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
    async fn queue_depths(&self) -> Result<(u64, u64), StoreError> {
        Self::queue_depths(self).await
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
