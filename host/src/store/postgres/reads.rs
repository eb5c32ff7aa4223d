//! Grouped episode reads: the lease takes, episode loads and lease
//! releases that concurrent episodes ask for at the same time are answered
//! by one statement per kind (rows passed as arrays), as [`super::commit`]
//! does for writes. The server's cost is mostly per statement; a thousand
//! instances running at once otherwise cost a thousand lease UPDATEs, a
//! thousand snapshot transactions and a thousand row reads.
//!
//! Each request keeps its own answer, exactly as the one-instance statement
//! would give it when run after the request was made:
//! - a lease take is one autocommitted UPDATE for the batch, each row under
//!   its own condition (free, expired, or already the caller's);
//! - a load reads each instance's row and visible messages in one statement
//!   (hot: the caller holds the history) or, in one REPEATABLE READ
//!   snapshot, row, messages and history (cold, or a hot copy found stale);
//! - a release clears the lease only where the caller holds it.
//!
//! A request for an instance already in the batch waits for the next one,
//! so that one statement never touches a row twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use tokio::sync::oneshot;
use tokio_postgres::Row;

use super::ops::{INSTANCE_COLS, instance_from_row_at, snapshot};
use super::{PostgresStore, col, execute, query, to_i64, to_u64};
use crate::history::{Event, Millis};
use crate::store::{EpisodeInput, InboxMessage, Lease, StoreError};

/// Most concurrent batches of one kind.
const LEADERS: usize = 2;
/// Most requests in one batch.
const MAX_BATCH: usize = 512;
/// Most messages one episode reads (as the one-instance read).
const MAX_MESSAGES: i64 = 10_000;
// The message reads below compare `visible_at + 0`, not `visible_at`: the
// planner otherwise ANDs the `inbox_by_visible` index into each instance's
// lookup, which scans every visible message of the hub per instance.

/// A request to take a lease.
pub(super) struct Take {
    pub id: String,
    pub owner: String,
    pub until: Millis,
    pub now: Millis,
}

/// A request to load an episode.
pub(super) struct Load {
    pub id: String,
    pub now: Millis,
    pub hot: Option<(String, u64, String)>,
}

/// A request to end a lease.
pub(super) struct Release {
    pub id: String,
    pub owner: String,
}

type Reply<A> = oneshot::Sender<Result<A, StoreError>>;

/// Requests of one kind waiting for a batch.
pub(super) struct Group<Q, A> {
    state: Mutex<GroupState<Q, A>>,
}

impl<Q, A> Default for Group<Q, A> {
    fn default() -> Self {
        Self {
            state: Mutex::new(GroupState {
                jobs: VecDeque::new(),
                leaders: 0,
            }),
        }
    }
}

struct GroupState<Q, A> {
    jobs: VecDeque<(Q, Reply<A>)>,
    leaders: usize,
}

/// The three groups of a handle.
#[derive(Default)]
pub(super) struct Groups {
    takes: Group<Take, bool>,
    loads: Group<Load, Option<EpisodeInput>>,
    releases: Group<Release, ()>,
}

/// A kind of request: how its group is found and how a batch is answered.
trait Kind: Send + Sync + Sized + 'static {
    type Answer: Send + 'static;
    fn group(groups: &Groups) -> &Group<Self, Self::Answer>;
    /// The instance the request is about (one per batch).
    fn key(&self) -> &str;
    fn run(
        store: &PostgresStore,
        batch: &[Self],
    ) -> impl std::future::Future<Output = Result<Vec<Result<Self::Answer, StoreError>>, StoreError>> + Send;
}

impl Kind for Take {
    type Answer = bool;
    fn group(groups: &Groups) -> &Group<Self, bool> {
        &groups.takes
    }
    fn key(&self) -> &str {
        &self.id
    }
    async fn run(store: &PostgresStore, batch: &[Self]) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let order = by_id(batch);
        let ids: Vec<&str> = order.iter().map(|t| t.id.as_str()).collect();
        let owners: Vec<&str> = order.iter().map(|t| t.owner.as_str()).collect();
        let untils: Vec<i64> = order.iter().map(|t| to_i64(t.until)).collect();
        let nows: Vec<i64> = order.iter().map(|t| to_i64(t.now)).collect();
        let c = store.client().await?;
        let rows = query(
            &c,
            "UPDATE instances i SET lease_owner = q.owner, lease_expires = q.until
               FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS q(id, owner, until, now)
              WHERE i.instance_id = q.id
                AND (i.lease_owner IS NULL OR i.lease_owner = q.owner OR i.lease_expires <= q.now)
              RETURNING i.instance_id",
            &[&ids, &owners, &untils, &nows],
        )
        .await?;
        let taken: HashSet<String> = rows.iter().map(|r| col(r, 0)).collect::<Result<_, _>>()?;
        Ok(batch.iter().map(|t| Ok(taken.contains(&t.id))).collect())
    }
}

impl Kind for Release {
    type Answer = ();
    fn group(groups: &Groups) -> &Group<Self, ()> {
        &groups.releases
    }
    fn key(&self) -> &str {
        &self.id
    }
    async fn run(store: &PostgresStore, batch: &[Self]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let order = by_id(batch);
        let ids: Vec<&str> = order.iter().map(|t| t.id.as_str()).collect();
        let owners: Vec<&str> = order.iter().map(|t| t.owner.as_str()).collect();
        let c = store.client().await?;
        execute(
            &c,
            "UPDATE instances i SET lease_owner = NULL, lease_expires = NULL
               FROM unnest($1::text[], $2::text[]) AS q(id, owner)
              WHERE i.instance_id = q.id AND i.lease_owner = q.owner",
            &[&ids, &owners],
        )
        .await?;
        Ok(batch.iter().map(|_| Ok(())).collect())
    }
}

impl Kind for Load {
    type Answer = Option<EpisodeInput>;
    fn group(groups: &Groups) -> &Group<Self, Option<EpisodeInput>> {
        &groups.loads
    }
    fn key(&self) -> &str {
        &self.id
    }
    async fn run(
        store: &PostgresStore,
        batch: &[Self],
    ) -> Result<Vec<Result<Option<EpisodeInput>, StoreError>>, StoreError> {
        let mut out: Vec<Option<Result<Option<EpisodeInput>, StoreError>>> = batch.iter().map(|_| None).collect();
        let mut c = store.client().await?;
        // Hot copies: row and visible messages in one statement; a copy
        // found stale is read again below, with its history.
        let hot: Vec<usize> = (0..batch.len()).filter(|&i| batch[i].hot.is_some()).collect();
        let mut cold: Vec<usize> = (0..batch.len()).filter(|&i| batch[i].hot.is_none()).collect();
        if !hot.is_empty() {
            let ids: Vec<&str> = hot.iter().map(|&i| batch[i].id.as_str()).collect();
            let nows: Vec<i64> = hot.iter().map(|&i| to_i64(batch[i].now)).collect();
            let rows = query(
                &c,
                &format!(
                    "SELECT q.o, {}, m.id, m.execution_id, m.created_at, m.data
                       FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS q(id, now, o)
                       JOIN instances i ON i.instance_id = q.id
                       LEFT JOIN LATERAL (
                         SELECT m.id, m.execution_id, m.created_at, m.data FROM inbox m
                          WHERE m.instance_id = q.id AND m.visible_at + 0 <= q.now ORDER BY m.id LIMIT $3) m ON true
                      ORDER BY q.o, m.id",
                    prefixed("i")
                ),
                &[&ids, &nows, &MAX_MESSAGES],
            )
            .await?;
            let mut found: HashMap<usize, (crate::store::InstanceRow, Vec<InboxMessage>)> = HashMap::new();
            for r in &rows {
                let o = ordinal(r)?;
                let entry = match found.entry(o) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => v.insert((instance_from_row_at(r, 1)?, Vec::new())),
                };
                if let Some(m) = message(r, 13)? {
                    entry.1.push(m);
                }
            }
            for (k, &i) in hot.iter().enumerate() {
                let Some((instance, messages)) = found.remove(&(k + 1)) else {
                    out[i] = Some(Ok(None));
                    continue;
                };
                if current(batch[i].hot.as_ref(), &instance) {
                    out[i] = Some(Ok(Some(EpisodeInput {
                        instance,
                        messages,
                        history: None,
                    })));
                } else {
                    cold.push(i);
                }
            }
        }
        if !cold.is_empty() {
            cold.sort_unstable();
            let ids: Vec<&str> = cold.iter().map(|&i| batch[i].id.as_str()).collect();
            let nows: Vec<i64> = cold.iter().map(|&i| to_i64(batch[i].now)).collect();
            let tx = snapshot(&mut c).await?;
            let row_sql = format!(
                "SELECT q.o, {} FROM unnest($1::text[]) WITH ORDINALITY AS q(id, o) JOIN instances i ON i.instance_id = q.id",
                prefixed("i")
            );
            let by_id: [super::Param<'_>; 1] = [&ids];
            let visible: [super::Param<'_>; 3] = [&ids, &nows, &MAX_MESSAGES];
            // Three reads of one snapshot, pipelined.
            let (rows, messages, history) = tokio::try_join!(
                query(&tx, &row_sql, &by_id),
                query(
                    &tx,
                    "SELECT q.o, m.id, m.execution_id, m.created_at, m.data
                       FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS q(id, now, o)
                       CROSS JOIN LATERAL (
                         SELECT m.id, m.execution_id, m.created_at, m.data FROM inbox m
                          WHERE m.instance_id = q.id AND m.visible_at + 0 <= q.now ORDER BY m.id LIMIT $3) m
                      ORDER BY q.o, m.id",
                    &visible,
                ),
                query(
                    &tx,
                    "SELECT q.o, h.seq, h.timestamp, h.data
                       FROM unnest($1::text[]) WITH ORDINALITY AS q(id, o)
                       JOIN instances i ON i.instance_id = q.id
                       JOIN history h ON h.instance_id = q.id AND h.execution_id = i.execution_id
                      ORDER BY q.o, h.seq",
                    &by_id,
                ),
            )?;
            tx.commit().await.map_err(super::pg)?;
            let mut instances: HashMap<usize, crate::store::InstanceRow> = HashMap::new();
            for r in &rows {
                instances.insert(ordinal(r)?, instance_from_row_at(r, 1)?);
            }
            let mut inbox: HashMap<usize, Vec<InboxMessage>> = HashMap::new();
            for r in &messages {
                if let Some(m) = message(r, 1)? {
                    inbox.entry(ordinal(r)?).or_default().push(m);
                }
            }
            let mut events: HashMap<usize, Vec<(Millis, Event)>> = HashMap::new();
            for r in &history {
                let o = ordinal(r)?;
                let seq: i64 = col(r, 1)?;
                let data: String = col(r, 3)?;
                let id = ids.get(o.wrapping_sub(1)).copied().unwrap_or_default();
                let event = Event::decode(&data).map_err(|e| StoreError::Decode(format!("history {id}#{seq}: {e}")))?;
                events.entry(o).or_default().push((to_u64(col(r, 2)?), event));
            }
            for (k, &i) in cold.iter().enumerate() {
                let o = k + 1;
                let Some(instance) = instances.remove(&o) else {
                    out[i] = Some(Ok(None));
                    continue;
                };
                let history = if current(batch[i].hot.as_ref(), &instance) {
                    None
                } else {
                    Some(events.remove(&o).unwrap_or_default())
                };
                out[i] = Some(Ok(Some(EpisodeInput {
                    instance,
                    messages: inbox.remove(&o).unwrap_or_default(),
                    history,
                })));
            }
        }
        Ok(out.into_iter().map(|r| r.unwrap_or(Err(StoreError::Closed))).collect())
    }
}

/// A batch's requests in instance id order. The UPDATEs of a batch walk
/// the array (a nested loop over `unnest` into the primary key), so they
/// lock rows in that order, as the group commit's checkpoints do:
/// concurrent batches then wait for each other rather than deadlock (a
/// deadlock that still happens is retried).
fn by_id<Q: Kind>(batch: &[Q]) -> Vec<&Q> {
    let mut order: Vec<&Q> = batch.iter().collect();
    order.sort_by(|a, b| a.key().cmp(b.key()));
    order
}

/// The instance columns qualified by `alias`.
fn prefixed(alias: &str) -> String {
    INSTANCE_COLS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the caller's hot copy (execution, history length, version) is
/// the stored one.
fn current(hot: Option<&(String, u64, String)>, row: &crate::store::InstanceRow) -> bool {
    hot.is_some_and(|(exec, len, version)| {
        *exec == row.execution_id && *len == row.history_len && *version == row.version
    })
}

/// The request's position (1-based) in its batch: column 0.
fn ordinal(r: &Row) -> Result<usize, StoreError> {
    usize::try_from(col::<i64>(r, 0)?).map_err(|e| StoreError::Decode(format!("ordinal: {e}")))
}

/// The inbox message in columns `at..at + 4` (id, execution, created, data),
/// if any.
fn message(r: &Row, at: usize) -> Result<Option<InboxMessage>, StoreError> {
    let Some(id) = col::<Option<i64>>(r, at)? else {
        return Ok(None);
    };
    let data: String = col(r, at + 3)?;
    let event = Event::decode(&data).map_err(|e| StoreError::Decode(format!("inbox message {id}: {e}")))?;
    Ok(Some(InboxMessage {
        id,
        execution_id: col(r, at + 1)?,
        timestamp: to_u64(col(r, at + 2)?),
        event,
    }))
}

impl PostgresStore {
    /// Takes or renews a lease on one instance, in a group.
    pub(super) async fn take_grouped(&self, id: &str, lease: &Lease, now: Millis) -> Result<bool, StoreError> {
        self.grouped(Take {
            id: id.to_owned(),
            owner: lease.owner.clone(),
            until: now.saturating_add(lease.duration_ms),
            now,
        })
        .await
    }

    /// Loads an episode, in a group.
    pub(super) async fn load_grouped(
        &self,
        id: &str,
        now: Millis,
        hot: Option<(String, u64, String)>,
    ) -> Result<Option<EpisodeInput>, StoreError> {
        self.grouped(Load {
            id: id.to_owned(),
            now,
            hot,
        })
        .await
    }

    /// Ends `owner`'s lease on one instance, in a group.
    pub(super) async fn release_grouped(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        self.grouped(Release {
            id: id.to_owned(),
            owner: owner.to_owned(),
        })
        .await
    }

    /// Queues `q` and waits for its answer; leads batches when fewer than
    /// [`LEADERS`] do.
    async fn grouped<Q: Kind>(&self, q: Q) -> Result<Q::Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut g = Q::group(&self.inner.reads)
                .state
                .lock()
                .map_err(|_| StoreError::Closed)?;
            g.jobs.push_back((q, reply));
            let lead = g.leaders < LEADERS;
            if lead {
                g.leaders += 1;
            }
            lead
        };
        if lead {
            let store = self.clone();
            tokio::spawn(async move {
                let mut guard = Leader::<Q> {
                    store,
                    armed: true,
                    _kind: std::marker::PhantomData,
                };
                let store = guard.store.clone();
                store.lead_reads::<Q>(&mut guard.armed).await;
                drop(guard);
            });
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Answers batches until the queue is empty, then counts itself out
    /// (under the queue's lock: a request queued later starts a new
    /// leader) and clears `armed`.
    async fn lead_reads<Q: Kind>(&self, armed: &mut bool) {
        loop {
            let batch: Vec<(Q, Reply<Q::Answer>)> = {
                let Ok(mut g) = Q::group(&self.inner.reads).state.lock() else {
                    return;
                };
                // One request per instance; the others wait in order.
                let mut seen: HashSet<String> = HashSet::new();
                let mut batch = Vec::new();
                let mut later = VecDeque::new();
                while let Some((q, reply)) = g.jobs.pop_front() {
                    if batch.len() >= MAX_BATCH {
                        later.push_back((q, reply));
                        break;
                    }
                    if seen.insert(q.key().to_owned()) {
                        batch.push((q, reply));
                    } else {
                        later.push_back((q, reply));
                    }
                }
                later.append(&mut g.jobs);
                g.jobs = later;
                if batch.is_empty() {
                    g.leaders = g.leaders.saturating_sub(1);
                    *armed = false;
                    return;
                }
                batch
            };
            let (qs, replies): (Vec<Q>, Vec<Reply<Q::Answer>>) = batch.into_iter().unzip();
            match run_with_retries(self, &qs).await {
                Ok(answers) => {
                    for (reply, a) in replies.into_iter().zip(answers) {
                        let _ = reply.send(a);
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(super::commit::copy(&e)));
                    }
                }
            }
        }
    }
}

/// Runs a batch, again a few times after a deadlock or a dead pooled
/// connection (reads and lease changes are safe to repeat).
async fn run_with_retries<Q: Kind>(
    store: &PostgresStore,
    qs: &[Q],
) -> Result<Vec<Result<Q::Answer, StoreError>>, StoreError> {
    let mut tries: u32 = 0;
    loop {
        match Q::run(store, qs).await {
            Err(StoreError::Busy(_) | StoreError::Unavailable(_)) if tries < super::retries() => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5 << tries)).await;
            }
            other => return other,
        }
    }
}

/// Counts a leader out when its task is dropped mid-batch (its runtime
/// shutting down): the last one fails what is still queued
/// ([`StoreError::Closed`]) rather than leaving it waiting.
struct Leader<Q: Kind> {
    store: PostgresStore,
    /// False once [`PostgresStore::lead`] counted itself out.
    armed: bool,
    _kind: std::marker::PhantomData<fn() -> Q>,
}

impl<Q: Kind> Drop for Leader<Q> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let orphans = match Q::group(&self.store.inner.reads).state.lock() {
            Ok(mut g) => {
                g.leaders = g.leaders.saturating_sub(1);
                if g.leaders == 0 {
                    g.jobs.drain(..).collect()
                } else {
                    Vec::new()
                }
            }
            Err(_) => Vec::new(),
        };
        drop(orphans);
    }
}
