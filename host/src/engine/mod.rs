//! The dispatcher: runs episodes (hot or by replay), checkpoints them, runs
//! activity work items, and redelivers expired leases.
//!
//! Wake-ups come in-process from the store's commit notes (no polling
//! latency on the hot path) and, for timers, retries and messages written by
//! other processes (the CLI), from a short poll of the inbox.

pub mod durable_http;
mod entity;
mod hot;
mod pace;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, broadcast, watch};

use crate::clock::now_ms;
use crate::decide;
pub use crate::decide::failure_json;
use crate::history::{Event, Failure, Millis, ParentRef};
use crate::replay::{EpisodeOutput, Replay};
use crate::sandbox::{ActivityCtx, Loaded, Resume, Sandbox, SandboxError, Session, Yielded};
use crate::store::{Checkpoint, FunctionKind, Lease, RuntimeStatus, Store, StoreError, WorkItem};
use hot::{HotCache, HotEntry};

/// Engine settings. Every field has a documented default.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Keep suspended guests in memory between episodes. `false` forces a
    /// full replay at every episode (correctness never depends on the cache).
    pub hot_cache: bool,
    /// Most instances kept hot (default 10,000).
    pub max_hot_instances: usize,
    /// Resident memory of the process above which hot instances are
    /// evicted, bytes (default 2 GiB; see `engine::hot`).
    pub max_hot_memory: usize,
    /// Activities running at once (default 64).
    pub activity_concurrency: usize,
    /// Lease of an activity work item, ms (default: activity time limit + 60 s).
    /// On a shared task hub (`exclusive: false`) work items are leased for
    /// `instance_lease_ms` instead and renewed while this engine has them
    /// queued or running, so that a dead host's activities run elsewhere
    /// after that expiry; `lease_ms` then only bounds how long a result's
    /// commit is retried.
    pub lease_ms: u64,
    /// Inbox poll interval for other processes' messages and expired leases
    /// while there is work (default 50 ms); an idle engine backs off to
    /// 500 ms, and polls when a timer or retry it wrote falls due.
    pub poll_interval: Duration,
    /// Deliveries of one work item before it is failed as poison (default 10).
    pub max_deliveries: u32,
    /// Longest wall time of one episode before the instance fails (default 30 s).
    pub episode_timeout: Duration,
    /// Lease on an instance this engine runs or keeps hot, ms (default
    /// 30 s): renewed while held; another engine takes the instance over
    /// only after it expires.
    pub instance_lease_ms: u64,
    /// This engine is the only one on its task hub (default true: the
    /// SQLite backend's one-host guard proves it). Leases of other owners
    /// are void at start-up, and no lease is taken before an episode (the
    /// checkpoint takes it). False on a task hub shared by many hosts.
    pub exclusive: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            hot_cache: true,
            max_hot_instances: 10_000,
            max_hot_memory: 2 << 30,
            activity_concurrency: 64,
            lease_ms: 360_000,
            poll_interval: Duration::from_millis(50),
            max_deliveries: 10,
            episode_timeout: Duration::from_secs(30),
            instance_lease_ms: 30_000,
            exclusive: true,
        }
    }
}

/// Errors of the engine's own operations.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{0}")]
    Invalid(String),
}

/// Counters exported as metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub episodes: AtomicU64,
    pub replays: AtomicU64,
    pub hot_resumes: AtomicU64,
    pub activities: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_micros: AtomicU64,
    pub evictions: AtomicU64,
}

#[derive(Default)]
struct Dispatch {
    in_flight: HashSet<String>,
    dirty: HashSet<String>,
}

/// The orchestration engine of one task hub.
pub struct Engine {
    store: Store,
    sandbox: Arc<Sandbox>,
    config: EngineConfig,
    owner: String,
    dispatch: Mutex<Dispatch>,
    hot: Mutex<HotCache>,
    /// Work items leased to this engine whose attempt has not ended
    /// (queued for a slot or running): their leases are renewed.
    held_work: Mutex<HashSet<i64>>,
    activity_slots: Arc<Semaphore>,
    finished: broadcast::Sender<String>,
    /// Callers of [`Engine::wait_for`], by instance: woken when that
    /// instance, and only it, finishes.
    waiters: Mutex<HashMap<String, Vec<tokio::sync::oneshot::Sender<()>>>>,
    versions: Mutex<HashMap<String, (String, Instant)>>,
    /// The earliest timer or retry this engine wrote: the dispatcher polls then.
    due: pace::DueTimes,
    grants: Mutex<HashMap<String, (crate::sandbox::Grants, Instant)>>,
    pub metrics: Metrics,
    /// Histograms and per-function counters exported at `/metrics`.
    pub telemetry: crate::metrics::Telemetry,
}

/// Handle to the running engine's background tasks.
pub struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops dispatching, lets in-flight work end (bounded by `grace`), and
    /// releases this process's leases.
    pub async fn shutdown(self, engine: &Engine, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            let busy = engine.dispatch.lock().map(|d| !d.in_flight.is_empty()).unwrap_or(false)
                || engine.activity_slots.available_permits() < engine.config.activity_concurrency;
            if !busy {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = engine.release_leases().await;
        if let Ok(mut hot) = engine.hot.lock() {
            hot.clear();
        }
    }
}

impl Engine {
    /// Creates an engine over `store`.
    #[must_use]
    pub fn new(store: Store, sandbox: Arc<Sandbox>, config: EngineConfig) -> Arc<Self> {
        let (finished, _) = broadcast::channel(4096);
        Arc::new(Self {
            activity_slots: Arc::new(Semaphore::new(config.activity_concurrency)),
            hot: Mutex::new(HotCache::new(config.max_hot_instances, config.max_hot_memory)),
            store,
            sandbox,
            owner: format!("{}-{}", std::process::id(), crate::ids::random_hex()),
            config,
            dispatch: Mutex::default(),
            held_work: Mutex::default(),
            finished,
            waiters: Mutex::default(),
            versions: Mutex::default(),
            due: pace::DueTimes::default(),
            grants: Mutex::default(),
            metrics: Metrics::default(),
            telemetry: crate::metrics::Telemetry::new(),
        })
    }

    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    #[must_use]
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Number of instances currently hot.
    #[must_use]
    pub fn hot_count(&self) -> usize {
        self.hot.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Receives the id of every instance that reaches a terminal status.
    #[must_use]
    pub fn subscribe_finished(&self) -> broadcast::Receiver<String> {
        self.finished.subscribe()
    }

    /// This engine's lease owner id (`<pid>-<random>`), as stored with the
    /// leases it holds.
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Instance leases this engine holds now (a query of the task hub).
    ///
    /// # Errors
    /// Store errors.
    pub async fn instance_leases_held(&self) -> Result<u64, StoreError> {
        let held = self.store.instance_leases(Some(self.owner.clone()), now_ms()).await?;
        Ok(held.len() as u64)
    }

    /// The lease of the activity work items this engine claims or creates.
    fn lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            duration_ms: if self.config.exclusive {
                self.config.lease_ms
            } else {
                self.config.instance_lease_ms.min(self.config.lease_ms)
            },
        }
    }

    /// Starts the dispatcher. Work items leased by an earlier (dead) process
    /// are reclaimed at once when `config.exclusive`: the caller guarantees
    /// it is the only engine on this task hub (see
    /// [`crate::store::Provider::claim_host`]).
    pub fn run(self: &Arc<Self>) -> Running {
        let (stop, mut stop_rx) = watch::channel(false);
        let engine = self.clone();
        let mut notes = self.store.subscribe();
        let task = tokio::spawn(async move {
            if engine.config.exclusive
                && let Err(e) = engine.store.reclaim_leases(&engine.owner).await
            {
                tracing::warn!(error = %e, "reclaiming leases failed");
            }
            engine.claim_work(engine.config.exclusive).await;
            if !engine.config.exclusive {
                // Renewals run on their own: a slow inbox poll or claim
                // must not let this host's leases lapse.
                let renewer = engine.clone();
                let mut stop = stop_rx.clone();
                let every = Duration::from_millis((engine.config.instance_lease_ms / 3).max(1));
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = stop.changed() => break,
                            _ = tick.tick() => renewer.renew_leases().await,
                        }
                    }
                });
            }
            let renew_every = (engine.config.instance_lease_ms / 3).max(1);
            let base = engine.config.poll_interval;
            // Idle, poll at least twice per lease renewal period.
            let max_idle = pace::MAX_IDLE_POLL.min(Duration::from_millis(renew_every / 2));
            let mut idle_polls: u32 = 0;
            let mut next_poll = tokio::time::Instant::now() + base;
            let mut claimed_at = tokio::time::Instant::now();
            loop {
                let wake = match engine.due.next() {
                    Some(at) => {
                        next_poll.min(tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())))
                    }
                    None => next_poll,
                };
                tokio::select! {
                    _ = stop_rx.changed() => break,
                    n = notes.recv() => {
                        let Some(n) = n else { break };
                        for id in &n.inbox {
                            engine.schedule(id);
                        }
                        for item in &n.work {
                            engine.spawn_activity(item.clone());
                        }
                        for id in &n.finished {
                            engine.wake_waiters(id);
                            let _ = engine.finished.send(id.clone());
                        }
                        // Busy again: poll at the base interval.
                        idle_polls = 0;
                        next_poll = next_poll.min(tokio::time::Instant::now() + base);
                    }
                    () = engine.due.earlier() => {}
                    () = tokio::time::sleep_until(wake) => {
                        let due = engine.due.take_due(now_ms());
                        let mut found = false;
                        match engine.store.due_instances(now_ms(), 1024, &engine.owner).await {
                            Ok(ids) => {
                                found = !ids.is_empty();
                                ids.iter().for_each(|id| engine.schedule_polled(id));
                            }
                            Err(e) => tracing::warn!(error = %e, "polling the inbox failed"),
                        }
                        // Retries whose delay passed, and expired leases.
                        if due || claimed_at.elapsed() >= base.saturating_mul(4) {
                            claimed_at = tokio::time::Instant::now();
                            found |= engine.claim_work(false).await > 0;
                        }
                        idle_polls = if found { 0 } else { idle_polls.saturating_add(1) };
                        next_poll = tokio::time::Instant::now() + pace::backoff(base, idle_polls, max_idle);
                    }
                }
            }
        });
        Running { stop, task }
    }

    /// Claims ready work items and runs them; returns how many.
    async fn claim_work(self: &Arc<Self>, reclaim_all: bool) -> usize {
        match self
            .store
            .claim_work_items(self.lease(), now_ms(), reclaim_all, 1024)
            .await
        {
            Ok(items) => {
                let n = items.len();
                items.into_iter().for_each(|i| self.spawn_activity(i));
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming work items failed");
                0
            }
        }
    }

    /// Renews the leases of the hot instances (those lost to another
    /// engine stop being hot here) and of the work items queued or running
    /// here (an attempt whose lease was lost runs on, but its result is
    /// refused: the new owner delivers the item again).
    async fn renew_leases(&self) {
        let work: Vec<i64> = self
            .held_work
            .lock()
            .map(|w| w.iter().copied().collect())
            .unwrap_or_default();
        if !work.is_empty() {
            match self.store.renew_work_leases(work, &self.lease(), now_ms()).await {
                Ok(lost) if !lost.is_empty() => {
                    tracing::debug!(items = lost.len(), "work item leases lost to another host");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "renewing work item leases failed"),
            }
        }
        let mut ids: HashSet<String> = self
            .hot
            .lock()
            .map(|h| h.ids())
            .unwrap_or_default()
            .into_iter()
            .collect();
        // Episodes in flight hold the lease they took, and keep it however
        // long they run (a replay of a long history, a slow database):
        // otherwise another host would run the same episode meanwhile and
        // one of the two commits would be refused.
        if let Ok(d) = self.dispatch.lock() {
            ids.extend(d.in_flight.iter().cloned());
        }
        let ids: Vec<String> = ids.into_iter().collect();
        if ids.is_empty() {
            return;
        }
        match self
            .store
            .renew_instance_leases(ids, &self.instance_lease(), now_ms())
            .await
        {
            Ok(lost) => {
                if let Ok(mut hot) = self.hot.lock() {
                    for id in &lost {
                        hot.remove(id);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing instance leases failed"),
        }
    }

    fn instance_lease(&self) -> Lease {
        Lease {
            owner: self.owner.clone(),
            duration_ms: self.config.instance_lease_ms,
        }
    }

    async fn release_leases(&self) -> Result<(), StoreError> {
        self.store.release_leases(self.owner.clone()).await
    }

    /// Ends the lease an episode of `id` took when it committed nothing
    /// that keeps the instance here (on a shared task hub; a checkpoint
    /// sets or ends the lease itself). A lease left behind would keep other
    /// hosts off the instance until it expires, were this host to die.
    async fn let_go(&self, id: &str) {
        if self.config.exclusive {
            return;
        }
        if let Err(e) = self.store.release_instance(id, &self.owner).await {
            tracing::debug!(instance = %id, error = %e, "releasing an instance lease failed");
        }
    }

    /// Puts `entry` in the hot cache; the instances it evicts for room are
    /// no longer hot here, so their leases are released (unless an episode
    /// of theirs is in flight here: it holds the lease and ends it).
    fn keep_hot(self: &Arc<Self>, id: &str, entry: HotEntry) {
        let evicted = match self.hot.lock() {
            Ok(mut cache) => cache.put(id.to_owned(), entry),
            Err(_) => return,
        };
        self.release_evicted(evicted);
    }

    /// Counts instances evicted from the hot cache and releases the leases
    /// of those without an episode in flight here.
    fn release_evicted(self: &Arc<Self>, evicted: Vec<String>) {
        if evicted.is_empty() {
            return;
        }
        self.metrics
            .evictions
            .fetch_add(evicted.len() as u64, Ordering::Relaxed);
        let idle: Vec<String> = match self.dispatch.lock() {
            Ok(d) => evicted.into_iter().filter(|e| !d.in_flight.contains(e)).collect(),
            Err(_) => return,
        };
        if idle.is_empty() {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            for id in idle {
                if let Err(e) = engine.store.release_instance(&id, &engine.owner).await {
                    tracing::debug!(instance = %id, error = %e, "releasing an evicted instance's lease failed");
                }
            }
        });
    }

    /// Queues an episode for `id`, found by the inbox poll, unless one is
    /// in flight. The poll is the fallback for wake-ups nobody announced;
    /// what it sees of an instance in flight was mostly announced already
    /// (and read, or queued as a rerun), so a rerun for it would usually be
    /// an empty episode. A message the episode in flight did miss is still
    /// visible at the next poll, which schedules it then.
    fn schedule_polled(self: &Arc<Self>, id: &str) {
        if self.dispatch.lock().is_ok_and(|d| d.in_flight.contains(id)) {
            return;
        }
        self.schedule(id);
    }

    /// Queues an episode for `id` (coalescing with one in flight).
    fn schedule(self: &Arc<Self>, id: &str) {
        {
            let Ok(mut d) = self.dispatch.lock() else { return };
            if d.in_flight.contains(id) {
                d.dirty.insert(id.to_owned());
                return;
            }
            d.in_flight.insert(id.to_owned());
        }
        let engine = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            loop {
                if let Err(e) = engine.episode(&id).await {
                    tracing::warn!(instance = %id, error = %e, "episode failed; it will be retried");
                    if let Ok(mut hot) = engine.hot.lock() {
                        hot.remove(&id);
                    }
                    engine.let_go(&id).await;
                    if e.is_retryable() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                let Ok(mut d) = engine.dispatch.lock() else { return };
                if !d.dirty.remove(&id) {
                    d.in_flight.remove(&id);
                    return;
                }
            }
        });
    }

    /// Resolves the newest version of a function (cached for one second).
    async fn version_of(&self, name: &str, kind: FunctionKind) -> Result<String, StoreError> {
        let key = format!("{kind}:{name}");
        if let Some((hash, at)) = self.versions.lock().ok().and_then(|v| v.get(&key).cloned())
            && at.elapsed() < Duration::from_secs(1)
        {
            return Ok(hash);
        }
        let hash = self.store.resolve_function(name, kind).await?;
        if let Ok(mut v) = self.versions.lock() {
            v.insert(key, (hash.clone(), Instant::now()));
        }
        Ok(hash)
    }

    /// Capabilities granted to a component version (cached for one second;
    /// none when unreadable).
    async fn grants_of(&self, hash: &str) -> crate::sandbox::Grants {
        if let Some((g, at)) = self.grants.lock().ok().and_then(|m| m.get(hash).cloned())
            && at.elapsed() < Duration::from_secs(1)
        {
            return g;
        }
        let grants: crate::sandbox::Grants = match self.store.component_grants(hash).await {
            Ok(text) => serde_json::from_str(&text).unwrap_or_default(),
            Err(_) => crate::sandbox::Grants::default(),
        };
        if let Ok(mut m) = self.grants.lock() {
            m.insert(hash.to_owned(), (grants.clone(), Instant::now()));
        }
        grants
    }

    /// Loads a component version (compiled cache, then store).
    ///
    /// # Errors
    /// The version is not stored, or does not load.
    pub async fn load_version(&self, hash: &str) -> Result<Arc<Loaded>, EngineError> {
        if let Some(l) = self.sandbox.get_loaded(hash) {
            return Ok(l);
        }
        let bytes = self.store.component_bytes(hash).await?;
        let sandbox = self.sandbox.clone();
        let hash = hash.to_owned();
        tokio::task::spawn_blocking(move || sandbox.load(&hash, &bytes))
            .await
            .map_err(|e| EngineError::Invalid(e.to_string()))?
            .map_err(EngineError::from)
    }

    /// One episode of instance `id`: read, run, checkpoint.
    async fn episode(self: &Arc<Self>, id: &str) -> Result<(), StoreError> {
        if let Some(entity) = crate::ids::EntityId::from_instance_id(id) {
            return self.entity_episode(id, entity).await;
        }
        let now = now_ms();
        let hot = if self.config.hot_cache {
            self.hot.lock().ok().and_then(|mut h| h.take(id))
        } else {
            None
        };
        // A hot instance is leased to this engine already (its last
        // checkpoint kept the lease, the renewals extend it, a lost one
        // evicts it): no lease write. A cold one is leased first, so that
        // two hosts do not both run it; either way the checkpoint's guard
        // (lease and history length) refuses a host that lost the lease.
        if !self.config.exclusive
            && hot.is_none()
            && !self.store.lease_instance(id, &self.instance_lease(), now).await?
        {
            // Another engine runs it.
            return Ok(());
        }
        let key = hot
            .as_ref()
            .map(|h| (h.execution_id.clone(), h.history_len, h.version.clone()));
        let Some(input) = self.store.load_episode(id, now, key).await? else {
            self.let_go(id).await;
            return Ok(());
        };
        if input.messages.is_empty() {
            match hot {
                Some(h) => self.keep_hot(id, h),
                None => self.let_go(id).await,
            }
            return Ok(());
        }
        let row = &input.instance;
        if row.status.is_terminal() {
            self.store
                .discard_messages(input.messages.iter().map(|m| m.id).collect())
                .await?;
            self.let_go(id).await;
            return Ok(());
        }
        self.metrics.episodes.fetch_add(1, Ordering::Relaxed);
        let episode_started = Instant::now();
        if input
            .messages
            .iter()
            .any(|m| matches!(m.event, Event::ExecutionStarted { .. }))
        {
            crate::metrics::Telemetry::count(&self.telemetry.starts, "orchestrator", &row.name);
        }
        if input
            .messages
            .iter()
            .any(|m| matches!(m.event, Event::TimerFired { .. }))
        {
            crate::crash::point("timer_due_before_commit");
        }
        let consumed_all: Vec<i64> = input.messages.iter().map(|m| m.id).collect();
        let (messages, consumed) = match decide::plan_inbox(row, &input.messages) {
            decide::InboxPlan::Terminate { reason } => {
                drop(hot);
                return self.terminate(&input, consumed_all, reason, now).await;
            }
            decide::InboxPlan::Suspended { messages, consumed } => {
                return self.record_suspension(&input, hot, messages, consumed, now).await;
            }
            decide::InboxPlan::Run { messages, consumed } => (messages, consumed),
        };

        let replayed = hot.is_none() || input.history.is_some();
        // Run the guest: resume the hot session, or replay.
        let (mut entry, first) = match hot.filter(|_| input.history.is_none()) {
            Some(mut h) => {
                self.metrics.hot_resumes.fetch_add(1, Ordering::Relaxed);
                let sent = h.session.resume.send(Resume { now, messages }).await;
                if sent.is_err() {
                    return Err(StoreError::Conflict(id.to_owned()));
                }
                let y = self.wait_yield(&mut h.session).await;
                (h, y)
            }
            None => {
                let history = match input.history {
                    Some(h) => h,
                    None => self.store.get_history(id).await?,
                };
                let mut replay = Replay::from_history(id, &history);
                replay.begin_episode(now, messages);
                if !replay.is_started() {
                    // Messages for an instance whose ExecutionStarted is gone.
                    self.store.discard_messages(consumed).await?;
                    self.let_go(id).await;
                    return Ok(());
                }
                self.metrics.replays.fetch_add(1, Ordering::Relaxed);
                let parent = replay.parent().cloned();
                // The row's version, not the one in ExecutionStarted: an
                // upgrade moves instances to a new version by updating it.
                let version = row.version.clone();
                let execution_id = replay.execution_id().to_owned();
                let loaded = match self.load_version(&version).await {
                    Ok(l) => l,
                    Err(e) => {
                        let f = Failure::new(
                            "VersionUnavailable",
                            format!("component {version} cannot be loaded: {e}"),
                        );
                        let finish = replay.finish(Err(f));
                        let out = replay.take_episode(Some(finish));
                        let cp = self.checkpoint_of(row, consumed, out, parent.as_ref(), now).await;
                        return self.commit(cp, false, &row.name).await;
                    }
                };
                let mut session = self.sandbox.start_session(loaded, replay);
                let y = self.wait_yield(&mut session).await;
                (
                    HotEntry {
                        session,
                        version: row.version.clone(),
                        execution_id,
                        history_len: row.history_len,
                        parent,
                        memory: 0,
                    },
                    y,
                )
            }
        };
        let output = match first {
            Some(Yielded::Blocked { output, memory }) => {
                entry.memory = memory;
                output
            }
            Some(Yielded::Finished(output)) => output,
            Some(Yielded::HostExhausted(error)) => {
                // Nothing is recorded: the inbox keeps the messages, and a
                // later poll runs the episode again, with room made now.
                drop(entry);
                let evicted = self
                    .hot
                    .lock()
                    .map(|mut h| h.shrink_after_exhaustion())
                    .unwrap_or_default();
                tracing::warn!(
                    instance = %id,
                    evicted = evicted.len(),
                    "the host ran out of memory for a guest; hot instances evicted, the episode will run again: {error}"
                );
                self.release_evicted(evicted);
                self.let_go(id).await;
                return Ok(());
            }
            None => {
                // The guest hung in a host call or the session died.
                drop(entry);
                return self
                    .fail_by_replay(
                        id,
                        consumed,
                        Failure::new(
                            "Timeout",
                            format!(
                                "episode exceeded {:?} (engine.episode_timeout)",
                                self.config.episode_timeout
                            ),
                        ),
                        now,
                    )
                    .await;
            }
        };
        let max_history = self.sandbox.limits().max_history_events;
        if output.finish.is_none() && row.history_len + output.events.len() as u64 > max_history {
            drop(entry);
            let f = Failure::new(
                "LimitExceeded",
                format!(
                    "the execution's history would exceed {max_history} events (limits.history); use continue-as-new"
                ),
            );
            return self.fail_by_replay(id, consumed, f, now).await;
        }
        if let Some(p) = &entry.parent {
            crate::traces::set_parent_execution(id, &p.instance_id, &p.execution_id);
        }
        let finished = output.finish.is_some();
        let outcome = output.finish.as_ref().map(crate::replay::Finish::status);
        let timers: Vec<(crate::history::TaskId, Millis)> = if crate::traces::enabled() {
            output
                .events
                .iter()
                .filter_map(|(_, e)| match e {
                    Event::TimerCreated { task_id, fire_at } => Some((*task_id, *fire_at)),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };

        let added = output.events.len() as u64;
        let cp = self
            .checkpoint_of(row, consumed, output, entry.parent.as_ref(), now)
            .await;
        // A failed child that its parent's policy runs again stays Pending.
        let retried = finished && cp.status == RuntimeStatus::Pending;
        self.commit(cp, !finished && self.config.hot_cache, &row.name).await?;
        self.telemetry
            .episode_seconds
            .get_or_create(&crate::metrics::NameLabels { name: row.name.clone() })
            .observe(episode_started.elapsed().as_secs_f64());
        if crate::traces::enabled() {
            use opentelemetry::KeyValue;
            let span = |name: String, start: Millis, end: Millis, attributes: Vec<KeyValue>| {
                crate::traces::span(crate::traces::SpanRecord {
                    instance: &row.instance_id,
                    execution: &row.execution_id,
                    name,
                    start,
                    end,
                    attributes,
                    error: None,
                });
            };
            span(
                format!("episode {}", row.name),
                now,
                now_ms(),
                vec![
                    KeyValue::new("cairn.replayed", replayed),
                    KeyValue::new("cairn.events_added", i64::try_from(added).unwrap_or(i64::MAX)),
                ],
            );
            for (task, fire_at) in timers {
                span(
                    "timer".to_owned(),
                    now,
                    fire_at,
                    vec![KeyValue::new("cairn.task_id", i64::from(task))],
                );
            }
        }
        if retried {
            crate::metrics::Telemetry::count(&self.telemetry.retries, "orchestrator", &row.name);
        } else if let Some(status) = outcome {
            self.count_finish(row, status);
        }
        if !finished && self.config.hot_cache {
            entry.history_len = row.history_len + added;
            self.keep_hot(id, entry);
        }
        Ok(())
    }

    /// Counts an execution's end in the metrics.
    fn count_finish(&self, row: &crate::store::InstanceRow, status: crate::history::CompletionStatus) {
        use crate::history::CompletionStatus as C;
        let (family, label) = match status {
            C::Completed => (Some(&self.telemetry.completions), "Completed"),
            C::Failed => (Some(&self.telemetry.failures), "Failed"),
            C::Terminated => (None, "Terminated"),
            C::ContinuedAsNew => (None, "ContinuedAsNew"),
        };
        if let Some(f) = family {
            crate::metrics::Telemetry::count(f, "orchestrator", &row.name);
        }
        let end = now_ms();
        crate::traces::root(crate::traces::SpanRecord {
            instance: &row.instance_id,
            execution: &row.execution_id,
            name: format!("orchestration {}", row.name),
            start: row.created_at,
            end,
            attributes: vec![
                opentelemetry::KeyValue::new("cairn.orchestrator", row.name.clone()),
                opentelemetry::KeyValue::new("cairn.status", label),
            ],
            error: (label == "Failed").then(|| "the orchestration failed".to_owned()),
        });
        let secs = end.saturating_sub(row.created_at) as f64 / 1000.0;
        self.telemetry
            .orchestration_seconds
            .get_or_create(&crate::metrics::OutcomeLabels {
                name: row.name.clone(),
                status: label,
            })
            .observe(secs);
    }

    async fn wait_yield(&self, session: &mut Session) -> Option<Yielded> {
        tokio::time::timeout(self.config.episode_timeout, session.yielded.recv())
            .await
            .ok()
            .flatten()
    }

    /// Commits `cp`, a checkpoint of orchestrator `name`; with `keep_lease`
    /// the instance stays leased to this engine (it stays hot here), else
    /// its lease is released. A failed execution is logged once, after its
    /// commit.
    async fn commit(&self, mut cp: Checkpoint, keep_lease: bool, name: &str) -> Result<(), StoreError> {
        cp.lease_until = keep_lease.then(|| cp.now.saturating_add(self.config.instance_lease_ms));
        let started = Instant::now();
        // (A failed sub-orchestration whose parent retries it stays Pending.)
        let failed = cp.events.iter().find_map(|(_, e)| match e {
            Event::ExecutionCompleted { failure: Some(f), .. } => {
                Some((cp.instance_id.clone(), f.clone(), cp.status != RuntimeStatus::Failed))
            }
            _ => None,
        });
        // What falls due later: the dispatcher polls then.
        let due = cp
            .outbox
            .iter()
            .filter_map(|o| match o {
                crate::store::Outbox::Message(m) | crate::store::Outbox::ToEntity { message: m, .. } => {
                    Some(m.visible_at)
                }
                crate::store::Outbox::StartChild { child: n, .. } | crate::store::Outbox::NextExecution(n) => {
                    Some(n.visible_at)
                }
                _ => None,
            })
            .filter(|at| *at > cp.now)
            .min();
        let r = self.store.checkpoint(cp, self.lease()).await;
        if let (Ok(()), Some(at)) = (&r, due) {
            self.due.note(at);
        }
        self.telemetry
            .checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.metrics.checkpoint_micros.fetch_add(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if let (Ok(()), Some((instance, f, retry))) = (&r, failed) {
            tracing::warn!(
                %instance,
                name,
                retry,
                error_type = %f.error_type,
                "orchestration failed: {}",
                f.message
            );
        }
        r
    }

    /// Builds the checkpoint of an episode with the decision core, after
    /// resolving the versions it may start (children, continue-as-new).
    async fn checkpoint_of(
        &self,
        row: &crate::store::InstanceRow,
        consumed: Vec<i64>,
        out: EpisodeOutput,
        parent: Option<&ParentRef>,
        now: Millis,
    ) -> Checkpoint {
        let versions = self.newest_versions(decide::versions_needed(&out, &row.name)).await;
        let mut ids = crate::ids::random_hex;
        let mut inputs = decide::Inputs {
            versions: &versions,
            new_execution_id: &mut ids,
        };
        decide::checkpoint(row, consumed, out, parent, now, &mut inputs)
    }

    /// The newest deployed version of each orchestrator in `names` (names
    /// that are not deployed are left out).
    async fn newest_versions(&self, names: Vec<String>) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for name in names {
            if let Ok(hash) = self.store.resolve_function(&name, FunctionKind::Orchestrator).await {
                out.insert(name, hash);
            }
        }
        out
    }

    async fn terminate(
        &self,
        input: &crate::store::EpisodeInput,
        consumed: Vec<i64>,
        reason: Option<String>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let row = &input.instance;
        if let Ok(mut h) = self.hot.lock() {
            h.remove(&row.instance_id);
        }
        let history = match &input.history {
            Some(h) => h.clone(),
            None => self.store.get_history(&row.instance_id).await?,
        };
        let mut replay = Replay::from_history(&row.instance_id, &history);
        let parent = replay.parent().cloned();
        replay.record_event(now, Event::ExecutionTerminated { reason: reason.clone() });
        replay.begin_episode(now, []);
        let finish = replay.terminate(reason);
        let out = replay.take_episode(Some(finish));
        let cp = self.checkpoint_of(row, consumed, out, parent.as_ref(), now).await;
        self.commit(cp, false, &row.name).await?;
        self.count_finish(row, crate::history::CompletionStatus::Terminated);
        Ok(())
    }

    async fn record_suspension(
        self: &Arc<Self>,
        input: &crate::store::EpisodeInput,
        hot: Option<HotEntry>,
        messages: Vec<(Millis, Event)>,
        consumed: Vec<i64>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let row = &input.instance;
        let added = messages.len() as u64;
        let cp = decide::suspension(row, consumed, messages, now);
        let keep = hot.is_some() && input.history.is_none();
        self.commit(cp, keep, &row.name).await?;
        // The guest did not run: a hot session stays valid, only the
        // position moved.
        if let (Some(mut h), true) = (hot, input.history.is_none()) {
            h.history_len = row.history_len + added;
            self.keep_hot(&row.instance_id, h);
        }
        Ok(())
    }

    /// Fails an instance whose session could not finish its episode.
    async fn fail_by_replay(
        &self,
        id: &str,
        consumed: Vec<i64>,
        failure: Failure,
        now: Millis,
    ) -> Result<(), StoreError> {
        let Some(row) = self.store.get_instance(id).await? else {
            return Ok(());
        };
        let history = self.store.get_history(id).await?;
        let mut replay = Replay::from_history(id, &history);
        let parent = replay.parent().cloned();
        replay.begin_episode(now, []);
        let finish = replay.finish(Err(failure));
        let out = replay.take_episode(Some(finish));
        let cp = self.checkpoint_of(&row, consumed, out, parent.as_ref(), now).await;
        self.commit(cp, false, &row.name).await
    }

    fn spawn_activity(self: &Arc<Self>, item: WorkItem) {
        let engine = self.clone();
        if let Ok(mut held) = self.held_work.lock() {
            held.insert(item.id);
        }
        tokio::spawn(async move {
            let item_id = item.id;
            engine.run_activity(item).await;
            if let Ok(mut held) = engine.held_work.lock() {
                held.remove(&item_id);
            }
        });
    }

    /// One attempt of a work item: waits for an activity slot, runs it and
    /// commits its outcome.
    async fn run_activity(self: &Arc<Self>, item: WorkItem) {
        let engine = self;
        {
            let Ok(_permit) = engine.activity_slots.clone().acquire_owned().await else {
                return;
            };
            engine.metrics.activities.fetch_add(1, Ordering::Relaxed);
            let t = &engine.telemetry;
            crate::metrics::Telemetry::count(&t.starts, "activity", &item.name);
            let started = Instant::now();
            let started_ms = now_ms();
            let outcome = if item.attempt > engine.config.max_deliveries {
                Err(decide::poison(&item))
            } else {
                engine.execute_activity(&item).await
            };
            t.activity_seconds
                .get_or_create(&crate::metrics::NameLabels {
                    name: item.name.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            let now = now_ms();
            let outcome = decide::activity_outcome(&item, outcome, now, engine.config.max_deliveries);
            if let Event::TaskFailed { failure: f, .. } | Event::TaskRetrying { failure: f, .. } = &outcome.message {
                tracing::warn!(
                    instance = %item.instance_id,
                    name = %item.name,
                    task = item.task_id,
                    attempt = item.attempt,
                    retry = outcome.retry_at.is_some(),
                    error_type = %f.error_type,
                    "activity failed: {}",
                    f.message
                );
            }
            let family = match outcome.message {
                Event::TaskCompleted { .. } => &t.completions,
                Event::TaskRetrying { .. } => &t.retries,
                _ => &t.failures,
            };
            crate::metrics::Telemetry::count(family, "activity", &item.name);
            if crate::traces::enabled() {
                let (name, kind) = if item.name == durable_http::HTTP_ACTIVITY {
                    (format!("http {}", crate::timeline::http_label(&item.input)), "http")
                } else {
                    (format!("activity {}", item.name), "activity")
                };
                let error = match &outcome.message {
                    Event::TaskFailed { failure, .. } | Event::TaskRetrying { failure, .. } => {
                        Some(failure.to_string())
                    }
                    _ => None,
                };
                crate::traces::span(crate::traces::SpanRecord {
                    instance: &item.instance_id,
                    execution: &item.execution_id,
                    name,
                    start: started_ms,
                    end: now,
                    attributes: vec![
                        opentelemetry::KeyValue::new("cairn.kind", kind),
                        opentelemetry::KeyValue::new("cairn.function", item.name.clone()),
                        opentelemetry::KeyValue::new("cairn.attempt", i64::from(item.attempt)),
                        opentelemetry::KeyValue::new("cairn.task_id", i64::from(item.task_id)),
                        opentelemetry::KeyValue::new(
                            "cairn.retrying",
                            matches!(outcome.message, Event::TaskRetrying { .. }),
                        ),
                    ],
                    error,
                });
            }
            crate::crash::point("activity_done_before_result_commit");
            // A busy or full database is retried here (the result is not
            // lost to a 6-minute lease); anything else leaves the item to
            // its lease, which redelivers it.
            let mut delay = Duration::from_millis(50);
            let give_up = Instant::now() + Duration::from_millis(engine.config.lease_ms / 2);
            loop {
                let commit = engine
                    .store
                    .complete_work_item(item.clone(), engine.owner.clone(), outcome.clone(), now)
                    .await;
                match commit {
                    Ok(_) => {
                        if let Some(at) = outcome.retry_at {
                            engine.due.note(at);
                        }
                        break;
                    }
                    Err(e) if e.is_retryable() && Instant::now() + delay < give_up => {
                        tracing::warn!(error = %e, "committing an activity result failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "committing an activity result failed; the lease will redeliver it");
                        break;
                    }
                }
            }
        }
    }

    async fn execute_activity(&self, item: &WorkItem) -> Result<String, Failure> {
        if item.name == durable_http::HTTP_ACTIVITY {
            // Durable HTTP runs in the host, under the grant of the
            // orchestrator's own component.
            let version = match self.store.get_instance(&item.instance_id).await {
                Ok(Some(row)) => row.version,
                Ok(None) => return Err(Failure::new("NotFound", format!("no instance {:?}", item.instance_id))),
                Err(e) => return Err(Failure::new("VersionUnavailable", e.to_string())),
            };
            let grants = self.grants_of(&version).await;
            let limits = self.sandbox.limits();
            return durable_http::send(&item.input, &grants, limits.max_payload_bytes, limits.activity_cpu).await;
        }
        let version = self
            .version_of(&item.name, FunctionKind::Activity)
            .await
            .map_err(|e| Failure::new("NotFound", e.to_string()))?;
        let loaded = self
            .load_version(&version)
            .await
            .map_err(|e| Failure::new("VersionUnavailable", e.to_string()))?;
        let ctx = ActivityCtx {
            instance_id: item.instance_id.clone(),
            function_name: item.name.clone(),
            idempotency_key: format!("{}:{}:{}", item.instance_id, item.execution_id, item.task_id),
            attempt: item.attempt,
        };
        let grants = self.grants_of(&version).await;
        self.sandbox.run_activity(&loaded, ctx, &item.input, &grants).await
    }

    fn wake_waiters(&self, id: &str) {
        let woken = self.waiters.lock().ok().and_then(|mut w| w.remove(id));
        for tx in woken.into_iter().flatten() {
            let _ = tx.send(());
        }
    }

    fn add_waiter(&self, id: &str) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut w) = self.waiters.lock() {
            let list = w.entry(id.to_owned()).or_default();
            list.retain(|t| !t.is_closed());
            list.push(tx);
        }
        rx
    }

    fn drop_waiter(&self, id: &str) {
        if let Ok(mut w) = self.waiters.lock()
            && let Some(list) = w.get_mut(id)
        {
            list.retain(|t| !t.is_closed());
            if list.is_empty() {
                w.remove(id);
            }
        }
    }

    /// Waits until `id` is terminal (or `timeout` passes); returns its row.
    /// The waiter is woken by that instance's own completion (in this
    /// process or, through the provider's wake-ups, another host): no
    /// re-reads when other instances finish. A slow poll (every 2 s) covers
    /// completions no wake-up reports.
    ///
    /// # Errors
    /// Store errors; [`StoreError::InstanceNotFound`].
    pub async fn wait_for(&self, id: &str, timeout: Duration) -> Result<crate::store::InstanceRow, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let result = async {
            loop {
                let mut woken = self.add_waiter(id);
                let row = self
                    .store
                    .get_instance(id)
                    .await?
                    .ok_or_else(|| StoreError::InstanceNotFound(id.to_owned()))?;
                if row.status.is_terminal() || tokio::time::Instant::now() >= deadline {
                    return Ok(row);
                }
                let nap = deadline.min(tokio::time::Instant::now() + Duration::from_secs(2));
                tokio::select! {
                    _ = &mut woken => {}
                    () = tokio::time::sleep_until(nap) => {}
                }
            }
        }
        .await;
        self.drop_waiter(id);
        result
    }
}

/// Waits until instance `id` is terminal or `timeout` passes, polling the
/// store (and woken early by `finished` when given).
///
/// # Errors
/// Store errors; [`StoreError::InstanceNotFound`].
pub async fn wait_for_instance(
    store: &Store,
    mut finished: Option<broadcast::Receiver<String>>,
    id: &str,
    timeout: Duration,
) -> Result<crate::store::InstanceRow, StoreError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let row = store
            .get_instance(id)
            .await?
            .ok_or_else(|| StoreError::InstanceNotFound(id.to_owned()))?;
        if row.status.is_terminal() || tokio::time::Instant::now() >= deadline {
            return Ok(row);
        }
        let nap = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)));
        match finished.as_mut() {
            Some(rx) => {
                tokio::select! {
                    _ = nap => {}
                    got = rx.recv() => {
                        if let Ok(done) = got && done != id {
                            continue;
                        }
                    }
                }
            }
            None => nap.await,
        }
    }
}
