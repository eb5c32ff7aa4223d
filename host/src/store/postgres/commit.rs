//! Group commit: checkpoints, activity results and starts submitted at the
//! same time by concurrent episodes share one transaction (one round trip
//! for BEGIN and COMMIT, one WAL flush, one NOTIFY).
//!
//! Why: every transaction that sends a NOTIFY holds PostgreSQL's global
//! notify-queue lock from its pre-commit until its commit record is flushed,
//! so notifying transactions commit one after another, one WAL flush each.
//! Batching turns N flushes into one.
//!
//! How: a caller queues its job and awaits a reply. At most [`LEADERS`]
//! committer tasks run at a time; one is spawned when a job is queued and
//! fewer are running. A committer takes everything queued (up to
//! [`MAX_BATCH`]), applies the jobs one after another in one READ COMMITTED
//! transaction and commits. Each job's result is its own:
//! - a job refused by its guard ([`StoreError::Conflict`] for a checkpoint
//!   from a stale history length or under another owner's lease,
//!   [`StoreError::InstanceExists`] for a start, `false` for a result whose
//!   lease was lost) writes nothing before it is refused: the others of
//!   the batch commit, and the refused caller gets its refusal;
//! - a database error aborts the transaction: nothing of the batch is
//!   committed, and every job is run again in a transaction of its own, so
//!   one bad job never fails the others and a checkpoint is never half
//!   applied;
//! - a failed COMMIT (outcome unknown) is reported to every job of the batch,
//!   as it would be for a single transaction.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::{PostgresStore, announce, pg};
use crate::history::Millis;
use crate::store::{ActivityOutcome, Checkpoint, Lease, NewExecution, Notes, Outbox, StoreError, WorkItem};

/// Most committer tasks (and pooled connections they use) at once.
pub(super) const LEADERS: usize = 3;
/// Most jobs in one transaction.
pub(super) const MAX_BATCH: usize = 256;

/// A write that may share its transaction with others.
pub(super) enum Job {
    Checkpoint(Box<Checkpoint>, Lease),
    Complete {
        item: Box<WorkItem>,
        owner: String,
        outcome: Box<ActivityOutcome>,
        now: Millis,
    },
    Create(Box<NewExecution>, Millis),
}

/// A job's successful result.
pub(super) enum Done {
    Unit,
    Kept(bool),
}

struct Pending {
    job: Job,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// The queue of jobs waiting for a committer.
#[derive(Default)]
pub(super) struct Queue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    jobs: VecDeque<Pending>,
    leaders: usize,
}

/// Whether `e` is a guard's refusal, returned before the job wrote anything.
fn is_refusal(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Conflict(_)
            | StoreError::InstanceExists(_)
            | StoreError::InstanceNotFound(_)
            | StoreError::InstanceFinished { .. }
    )
}

/// A copy of a batch-wide error for each of its jobs.
pub(super) fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Busy(m) => StoreError::Busy(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Full(m) => StoreError::Full(m.clone()),
        StoreError::Closed => StoreError::Closed,
        other => StoreError::Backend(other.to_string()),
    }
}

/// Applies one job inside `tx`, as it would be alone.
async fn apply(tx: &deadpool_postgres::Transaction<'_>, notes: &mut Notes, job: &Job) -> Result<Done, StoreError> {
    match job {
        Job::Checkpoint(cp, lease) => super::ops::apply_checkpoint(tx, notes, cp, lease)
            .await
            .map(|()| Done::Unit),
        Job::Complete {
            item,
            owner,
            outcome,
            now,
        } => super::ops::apply_completion(tx, notes, item, owner, outcome, *now)
            .await
            .map(Done::Kept),
        Job::Create(new, now) => super::ops::insert_start(tx, notes, new, *now)
            .await
            .map(|()| Done::Unit),
    }
}

/// Marks a committer gone, also when its task is dropped mid-batch (its
/// runtime shutting down): the last one fails what is still queued
/// ([`StoreError::Closed`]) rather than leaving it waiting.
struct LeaderGuard {
    store: PostgresStore,
    /// False once the committer left through [`PostgresStore::lead`]'s
    /// empty-queue exit, which already counted it out.
    armed: bool,
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let orphans = match self.store.inner.queue.state.lock() {
            Ok(mut q) => {
                q.leaders = q.leaders.saturating_sub(1);
                if q.leaders == 0 {
                    q.jobs.drain(..).collect()
                } else {
                    Vec::new()
                }
            }
            Err(_) => Vec::new(),
        };
        drop(orphans);
    }
}

impl PostgresStore {
    /// Queues `job` for the next group commit and waits for its result.
    pub(super) async fn submit(&self, job: Job) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut q = self.inner.queue.state.lock().map_err(|_| StoreError::Closed)?;
            q.jobs.push_back(Pending { job, reply });
            let lead = q.leaders < LEADERS;
            if lead {
                q.leaders += 1;
            }
            lead
        };
        if lead {
            let store = self.clone();
            tokio::spawn(async move {
                let mut guard = LeaderGuard { store, armed: true };
                let store = guard.store.clone();
                store.lead(&mut guard.armed).await;
                drop(guard);
            });
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// A committer: commits batches until the queue is empty, then counts
    /// itself out (under the queue's lock: a job queued later spawns a new
    /// committer) and clears `armed`.
    async fn lead(&self, armed: &mut bool) {
        loop {
            let batch: Vec<Pending> = {
                let Ok(mut q) = self.inner.queue.state.lock() else {
                    return;
                };
                let n = q.jobs.len().min(MAX_BATCH);
                if n == 0 {
                    q.leaders = q.leaders.saturating_sub(1);
                    *armed = false;
                    return;
                }
                q.jobs.drain(..n).collect()
            };
            self.commit_batch(batch).await;
        }
    }

    /// Commits `batch` in one transaction (see the module documentation).
    async fn commit_batch(&self, batch: Vec<Pending>) {
        let mut tries: u32 = 0;
        loop {
            let (mut connected, mut committing) = (false, false);
            let outcome: Result<(Vec<Result<Done, StoreError>>, Notes), StoreError> = async {
                let mut client = self.client().await?;
                connected = true;
                let txn = client.transaction().await.map_err(pg)?;
                let (results, notes) = apply_batch(&txn, &batch).await?;
                announce(&txn, &notes).await?;
                committing = true;
                txn.commit().await.map_err(pg)?;
                Ok((results, notes))
            }
            .await;
            match outcome {
                Ok((results, notes)) => {
                    self.publish(notes);
                    for (p, r) in batch.into_iter().zip(results) {
                        let _ = p.reply.send(r);
                    }
                    return;
                }
                Err(StoreError::Busy(_) | StoreError::Unavailable(_))
                    if connected && !committing && tries < super::retries() =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 << tries)).await;
                }
                Err(_) if !committing && batch.len() > 1 => {
                    // Nothing was committed: each job alone, so that the
                    // failure stays with the job that caused it.
                    for p in batch {
                        let r = super::write_tx!(self, |tx, notes| apply(&tx, notes, &p.job).await);
                        let _ = p.reply.send(r);
                    }
                    return;
                }
                Err(e) => {
                    for p in batch {
                        let _ = p.reply.send(Err(copy(&e)));
                    }
                    return;
                }
            }
        }
    }
}

/// Applies every job of `batch` in `tx`: the results per job (in order)
/// and the notes of those that were applied. `Err`: a database error, the
/// transaction is void.
///
/// The common jobs go through multi-row statements ([`super::batch`]): one
/// for the starts of new ids, a few for the checkpoints, one for the
/// activity results. The rest (checkpoints with child starts, lock
/// requests or a next execution; starts of ids that exist; a second job on
/// an instance or work item already in the batch) run after them, one by
/// one, each as it would alone.
async fn apply_batch(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[Pending],
) -> Result<(Vec<Result<Done, StoreError>>, Notes), StoreError> {
    use std::collections::HashSet;
    let mut notes = Notes::default();
    let mut results: Vec<Option<Result<Done, StoreError>>> = batch.iter().map(|_| None).collect();
    let (mut cps, mut comps, mut creates, mut rest) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    {
        let (mut seen_cp, mut seen_item, mut seen_new) = (HashSet::new(), HashSet::new(), HashSet::new());
        for (i, p) in batch.iter().enumerate() {
            match &p.job {
                Job::Checkpoint(cp, _) if super::batch::batchable(cp) && seen_cp.insert(cp.instance_id.as_str()) => {
                    cps.push(i);
                }
                Job::Complete { item, .. } if seen_item.insert(item.id) => comps.push(i),
                Job::Create(new, _) if seen_new.insert(new.instance_id.as_str()) => creates.push(i),
                _ => rest.push(i),
            }
        }
    }
    // Starts of new ids; an id that exists goes the one-job way.
    let jobs: Vec<(&NewExecution, Millis)> = creates
        .iter()
        .filter_map(|&i| match &batch[i].job {
            Job::Create(new, now) => Some((new.as_ref(), *now)),
            _ => None,
        })
        .collect();
    let created = super::batch::creates(tx, &mut notes, &jobs).await?;
    for (&i, made) in creates.iter().zip(created) {
        if made {
            results[i] = Some(Ok(Done::Unit));
        } else {
            rest.push(i);
        }
    }
    // Checkpoints, in instance id order: concurrent batches (other hosts',
    // grouped lease takes and releases) lock instance rows in the same
    // order, so they wait for each other rather than deadlock.
    cps.sort_by(|&a, &b| job_key(&batch[a].job).cmp(job_key(&batch[b].job)));
    let jobs: Vec<(&Checkpoint, &Lease)> = cps
        .iter()
        .filter_map(|&i| match &batch[i].job {
            Job::Checkpoint(cp, lease) => Some((cp.as_ref(), lease)),
            _ => None,
        })
        .collect();
    let (applied, with_locks) = super::batch::checkpoints(tx, &mut notes, &jobs).await?;
    // Their messages, pipelined on the connection.
    let delivered = futures_util::future::join_all(jobs.iter().zip(&applied).filter(|(_, ok)| **ok).flat_map(
        |((cp, _), _)| {
            cp.outbox.iter().filter_map(move |o| match o {
                Outbox::Message(m) => Some(async move {
                    let mut own = Notes::default();
                    super::ops::deliver(tx, &mut own, m, cp.now).await.map(|()| own)
                }),
                _ => None,
            })
        },
    ))
    .await;
    for d in delivered {
        notes.append(&mut d?);
    }
    // The lock queues of the executions they ended, one at a time.
    for (&i, ok) in cps.iter().zip(&applied) {
        results[i] = Some(if *ok {
            Ok(Done::Unit)
        } else if let Job::Checkpoint(cp, _) = &batch[i].job {
            Err(StoreError::Conflict(cp.instance_id.clone()))
        } else {
            Err(StoreError::Closed)
        });
    }
    for (cp, _) in &jobs {
        if with_locks.contains(&cp.instance_id) {
            super::locks::release_all(tx, &mut notes, &cp.instance_id, cp.now).await?;
        }
    }
    // Activity results, in work item order (as above).
    comps.sort_by_key(|&i| match &batch[i].job {
        Job::Complete { item, .. } => item.id,
        _ => 0,
    });
    let jobs: Vec<(&WorkItem, &str, &ActivityOutcome, Millis)> = comps
        .iter()
        .filter_map(|&i| match &batch[i].job {
            Job::Complete {
                item,
                owner,
                outcome,
                now,
            } => Some((item.as_ref(), owner.as_str(), outcome.as_ref(), *now)),
            _ => None,
        })
        .collect();
    let kept = super::batch::completions(tx, &mut notes, &jobs).await?;
    for (&i, k) in comps.iter().zip(kept) {
        results[i] = Some(Ok(Done::Kept(k)));
    }
    // The rest, one by one, in submission order.
    rest.sort_unstable();
    for i in rest {
        let mut own = Notes::default();
        match apply(tx, &mut own, &batch[i].job).await {
            Ok(done) => {
                notes.append(&mut own);
                results[i] = Some(Ok(done));
            }
            Err(e) if is_refusal(&e) => results[i] = Some(Err(e)),
            Err(e) => return Err(e),
        }
    }
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or(Err(StoreError::Closed)))
        .collect();
    Ok((results, notes))
}

/// The instance a checkpoint is for (the order in which a batch locks rows).
fn job_key(job: &Job) -> &str {
    match job {
        Job::Checkpoint(cp, _) => &cp.instance_id,
        _ => "",
    }
}
