//! Critical sections: durable, host-managed locks, with the SQLite
//! backend's semantics (see its `locks` module): a request names its locks
//! in sorted order and acquires them one by one, queueing FIFO (by request
//! id) behind the holder of the next one; when all are held, its grant
//! message goes to the requester's inbox in the same transaction as the
//! change that freed the last lock.
//!
//! SQLite's single writer makes each queue change atomic. Here every change
//! of the lock tables first takes one transaction-scoped advisory lock, so
//! a release never misses a request committed concurrently (which would
//! leave a lock free and its waiter waiting forever). Critical sections are
//! rare; instances that never requested a lock skip it.

use deadpool_postgres::Transaction;

use super::ops::insert_message;
use super::{PostgresStore, col, execute, query, query_opt};
use crate::history::{Event, Millis, TaskId};
use crate::store::{LockInfo, Notes, StoreError};

/// Key of the advisory lock around lock-queue changes ("cairnLks").
const QUEUE_LOCK: i64 = 0x6361_6972_6e4c_6b73;

async fn lock_queues(tx: &Transaction<'_>) -> Result<(), StoreError> {
    execute(tx, "SELECT pg_advisory_xact_lock($1)", &[&QUEUE_LOCK])
        .await
        .map(drop)
}

struct Request {
    id: i64,
    instance_id: String,
    execution_id: String,
    task_id: TaskId,
    names: Vec<String>,
    acquired: usize,
    granted: bool,
    /// The message that grants the request (built by the decision core).
    grant: Option<String>,
}

async fn load(tx: &Transaction<'_>, id: i64) -> Result<Option<Request>, StoreError> {
    let Some(r) = query_opt(
        tx,
        "SELECT id, instance_id, execution_id, task_id, names, acquired, granted, grant_event FROM lock_requests WHERE id = $1",
        &[&id],
    )
    .await?
    else {
        return Ok(None);
    };
    let names: String = col(&r, 4)?;
    let names: Vec<String> =
        serde_json::from_str(&names).map_err(|e| StoreError::Decode(format!("lock request {id}: {e}")))?;
    Ok(Some(Request {
        id: col(&r, 0)?,
        instance_id: col(&r, 1)?,
        execution_id: col(&r, 2)?,
        task_id: TaskId::try_from(col::<i64>(&r, 3)?)
            .map_err(|e| StoreError::Decode(format!("lock request {id}: {e}")))?,
        names,
        acquired: usize::try_from(col::<i64>(&r, 5)?).unwrap_or(0),
        granted: col(&r, 6)?,
        grant: col(&r, 7)?,
    }))
}

/// Records a lock request and acquires what is free; `grant` is delivered
/// when all its locks are held.
#[expect(clippy::too_many_arguments, reason = "one row of lock_requests")]
pub(super) async fn request(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    instance_id: &str,
    execution_id: &str,
    task_id: TaskId,
    names: &[String],
    grant: &Event,
    now: Millis,
) -> Result<(), StoreError> {
    lock_queues(tx).await?;
    let text = serde_json::to_string(names).map_err(|e| StoreError::Decode(e.to_string()))?;
    let id = query_opt(
        tx,
        "INSERT INTO lock_requests (instance_id, execution_id, task_id, names, created_at, grant_event) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING RETURNING id",
        &[
            &instance_id,
            &execution_id,
            &i64::from(task_id),
            &text,
            &super::to_i64(now),
            &grant.encode(),
        ],
    )
    .await?;
    match id {
        Some(r) => advance(tx, notes, col(&r, 0)?, now).await,
        None => Ok(()),
    }
}

/// Acquires the request's next locks while they are free; grants it when
/// it holds them all.
async fn advance(tx: &Transaction<'_>, notes: &mut Notes, id: i64, now: Millis) -> Result<(), StoreError> {
    let Some(mut req) = load(tx, id).await? else {
        return Ok(());
    };
    while req.acquired < req.names.len() {
        let name = &req.names[req.acquired];
        let holder = query_opt(tx, "SELECT request_id FROM locks WHERE name = $1", &[name]).await?;
        match holder.map(|r| col::<i64>(&r, 0)).transpose()? {
            None => {
                execute(
                    tx,
                    "INSERT INTO locks (name, request_id, instance_id, since) VALUES ($1, $2, $3, $4)",
                    &[name, &req.id, &req.instance_id, &super::to_i64(now)],
                )
                .await?;
                req.acquired += 1;
            }
            Some(h) if h == req.id => req.acquired += 1,
            Some(_) => break,
        }
    }
    let all = req.acquired == req.names.len();
    execute(
        tx,
        "UPDATE lock_requests SET acquired = $2, granted = $3 WHERE id = $1",
        &[&req.id, &(req.acquired as i64), &all],
    )
    .await?;
    if all && !req.granted {
        let event = match &req.grant {
            Some(text) => {
                Event::decode(text).map_err(|e| StoreError::Decode(format!("lock request {}: {e}", req.id)))?
            }
            None => crate::decide::lock_granted(req.task_id),
        };
        insert_message(tx, notes, &req.instance_id, Some(&req.execution_id), now, now, &event).await?;
    }
    Ok(())
}

/// Releases the locks of one request (`lock` = its task id) or of every
/// request of the instance (`None`: the holder finished), withdrawing its
/// waiting requests, and hands freed locks to the oldest waiters.
pub(super) async fn release(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    instance_id: &str,
    lock: Option<TaskId>,
    now: Millis,
) -> Result<(), StoreError> {
    // The instance's own requests change only in its checkpoints, which
    // its row lock serialises: none visible means none at all.
    let lock = lock.map(i64::from);
    let mine =
        "SELECT id FROM lock_requests WHERE instance_id = $1 AND ($2::bigint IS NULL OR task_id = $2) ORDER BY id";
    if query(tx, mine, &[&instance_id, &lock]).await?.is_empty() {
        return Ok(());
    }
    lock_queues(tx).await?;
    let ids: Vec<i64> = query(tx, mine, &[&instance_id, &lock])
        .await?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_, _>>()?;
    // In the order SQLite frees them: by request, each in acquisition
    // (= name) order.
    let freed: Vec<String> = query(
        tx,
        "SELECT name FROM locks WHERE request_id = ANY($1) ORDER BY request_id, name",
        &[&ids],
    )
    .await?
    .iter()
    .map(|r| col(r, 0))
    .collect::<Result<_, _>>()?;
    execute(tx, "DELETE FROM locks WHERE request_id = ANY($1)", &[&ids]).await?;
    execute(tx, "DELETE FROM lock_requests WHERE id = ANY($1)", &[&ids]).await?;
    for name in freed {
        // Requests parked behind an entity's lock are due again.
        super::entities::unpark(tx, notes, &name, now).await?;
        let waiting = query(
            tx,
            "SELECT id, names, acquired FROM lock_requests WHERE NOT granted ORDER BY id",
            &[],
        )
        .await?;
        let mut next = None;
        for r in &waiting {
            let names: String = col(r, 1)?;
            let acquired = usize::try_from(col::<i64>(r, 2)?).unwrap_or(usize::MAX);
            let wants = serde_json::from_str::<Vec<String>>(&names)
                .ok()
                .and_then(|n| n.get(acquired).cloned())
                .is_some_and(|n| n == name);
            if wants {
                next = Some(col::<i64>(r, 0)?);
                break;
            }
        }
        if let Some(id) = next {
            advance(tx, notes, id, now).await?;
        }
    }
    Ok(())
}

/// Releases everything an instance holds or waits for.
pub(super) async fn release_all(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    instance_id: &str,
    now: Millis,
) -> Result<(), StoreError> {
    release(tx, notes, instance_id, None, now).await
}

impl PostgresStore {
    /// Every held or awaited lock, by name (one snapshot).
    ///
    /// # Errors
    /// PostgreSQL and decode errors.
    pub async fn list_locks(&self) -> Result<Vec<LockInfo>, StoreError> {
        let mut c = self.client().await?;
        let tx = super::ops::snapshot(&mut c).await?;
        let mut out: std::collections::BTreeMap<String, LockInfo> = std::collections::BTreeMap::new();
        for r in &query(&tx, "SELECT name, instance_id, since FROM locks", &[]).await? {
            let name: String = col(r, 0)?;
            out.entry(name.clone())
                .or_insert_with(|| LockInfo {
                    name,
                    holder: None,
                    waiting: Vec::new(),
                })
                .holder = Some((col(r, 1)?, super::to_u64(col(r, 2)?)));
        }
        let waiting = query(
            &tx,
            "SELECT instance_id, names, acquired FROM lock_requests WHERE NOT granted ORDER BY id",
            &[],
        )
        .await?;
        tx.commit().await.map_err(super::pg)?;
        for r in &waiting {
            let inst: String = col(r, 0)?;
            let names: String = col(r, 1)?;
            let acquired: i64 = col(r, 2)?;
            let names: Vec<String> = serde_json::from_str(&names).map_err(|e| StoreError::Decode(e.to_string()))?;
            if let Some(name) = names.get(usize::try_from(acquired).unwrap_or(usize::MAX)) {
                out.entry(name.clone())
                    .or_insert_with(|| LockInfo {
                        name: name.clone(),
                        holder: None,
                        waiting: Vec::new(),
                    })
                    .waiting
                    .push(inst);
            }
        }
        Ok(out.into_values().collect())
    }
}
