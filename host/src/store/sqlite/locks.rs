//! Critical sections: durable, host-managed locks.
//!
//! A request names its locks in sorted order and acquires them one by one,
//! queueing FIFO (by request id) behind the holder of the next one. Sorted
//! acquisition means two requests can never wait on each other. When all are
//! held, a `LockGranted` message goes to the requester's inbox — in the same
//! transaction as the change that freed the last lock.

use rusqlite::{Connection, OptionalExtension, params};

use super::ops::insert_message;
use crate::history::{Event, Millis, TaskId};
use crate::store::{LockInfo, Notes, StoreError};

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

fn load(c: &Connection, id: i64) -> Result<Option<Request>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT id, instance_id, execution_id, task_id, names, acquired, granted, grant_event FROM lock_requests WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, TaskId>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })
        .optional()?;
    row.map(
        |(id, instance_id, execution_id, task_id, names, acquired, granted, grant)| {
            let names: Vec<String> =
                serde_json::from_str(&names).map_err(|e| StoreError::Decode(format!("lock request {id}: {e}")))?;
            Ok(Request {
                id,
                instance_id,
                execution_id,
                task_id,
                names,
                acquired: usize::try_from(acquired).unwrap_or(0),
                granted,
                grant,
            })
        },
    )
    .transpose()
}

/// Records a lock request and acquires what is free; `grant` is delivered
/// when all its locks are held.
#[expect(clippy::too_many_arguments, reason = "one row of lock_requests")]
pub(super) fn request(
    c: &Connection,
    notes: &mut Notes,
    instance_id: &str,
    execution_id: &str,
    task_id: TaskId,
    names: &[String],
    grant: &Event,
    now: Millis,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(names).map_err(|e| StoreError::Decode(e.to_string()))?;
    let id: Option<i64> = c
        .prepare_cached(
            "INSERT INTO lock_requests (instance_id, execution_id, task_id, names, created_at, grant_event) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT DO NOTHING RETURNING id",
        )?
        .query_row(
            params![instance_id, execution_id, task_id, text, now as i64, grant.encode()],
            |r| r.get(0),
        )
        .optional()?;
    match id {
        Some(id) => advance(c, notes, id, now),
        None => Ok(()),
    }
}

/// Acquires the request's next locks while they are free; grants it when
/// it holds them all.
fn advance(c: &Connection, notes: &mut Notes, id: i64, now: Millis) -> Result<(), StoreError> {
    let Some(mut req) = load(c, id)? else { return Ok(()) };
    while req.acquired < req.names.len() {
        let name = &req.names[req.acquired];
        let holder: Option<i64> = c
            .prepare_cached("SELECT request_id FROM locks WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        match holder {
            None => {
                c.prepare_cached("INSERT INTO locks (name, request_id, instance_id, since) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![name, req.id, req.instance_id, now as i64])?;
                req.acquired += 1;
            }
            Some(h) if h == req.id => req.acquired += 1,
            Some(_) => break,
        }
    }
    let all = req.acquired == req.names.len();
    c.prepare_cached("UPDATE lock_requests SET acquired = ?2, granted = ?3 WHERE id = ?1")?
        .execute(params![req.id, req.acquired as i64, all])?;
    if all && !req.granted {
        // Requests stored before schema 4 carry no grant message: theirs is
        // the decision core's lock grant for the task.
        let event = match &req.grant {
            Some(text) => {
                Event::decode(text).map_err(|e| StoreError::Decode(format!("lock request {}: {e}", req.id)))?
            }
            None => crate::decide::lock_granted(req.task_id),
        };
        insert_message(c, notes, &req.instance_id, Some(&req.execution_id), now, now, &event)?;
    }
    Ok(())
}

/// Releases the locks of one request (`lock` = its task id) or of every
/// request of the instance (`None`: the holder finished), withdrawing its
/// waiting requests, and hands freed locks to the oldest waiters.
pub(super) fn release(
    c: &Connection,
    notes: &mut Notes,
    instance_id: &str,
    lock: Option<TaskId>,
    now: Millis,
) -> Result<(), StoreError> {
    let ids: Vec<i64> = {
        let mut st = c.prepare_cached(
            "SELECT id FROM lock_requests WHERE instance_id = ?1 AND (?2 IS NULL OR task_id = ?2) ORDER BY id",
        )?;
        let rows = st.query_map(params![instance_id, lock], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut freed = Vec::new();
    for id in ids {
        {
            let mut st = c.prepare_cached("SELECT name FROM locks WHERE request_id = ?1")?;
            let rows = st.query_map([id], |r| r.get::<_, String>(0))?;
            for name in rows {
                freed.push(name?);
            }
        }
        c.prepare_cached("DELETE FROM locks WHERE request_id = ?1")?
            .execute([id])?;
        c.prepare_cached("DELETE FROM lock_requests WHERE id = ?1")?
            .execute([id])?;
    }
    for name in freed {
        // Requests parked behind an entity's lock are due again.
        super::entities::unpark(c, notes, &name, now)?;
        let waiting: Vec<(i64, String, i64)> = {
            let mut st =
                c.prepare_cached("SELECT id, names, acquired FROM lock_requests WHERE granted = 0 ORDER BY id")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let next = waiting.into_iter().find(|(_, names, acquired)| {
            serde_json::from_str::<Vec<String>>(names)
                .ok()
                .and_then(|n| n.get(usize::try_from(*acquired).unwrap_or(usize::MAX)).cloned())
                .is_some_and(|n| n == name)
        });
        if let Some((id, _, _)) = next {
            advance(c, notes, id, now)?;
        }
    }
    Ok(())
}

/// Releases everything an instance holds or waits for.
pub(super) fn release_all(c: &Connection, notes: &mut Notes, instance_id: &str, now: Millis) -> Result<(), StoreError> {
    release(c, notes, instance_id, None, now)
}

impl super::SqliteStore {
    /// Every held or awaited lock, by name.
    ///
    /// # Errors
    /// SQLite and decode errors.
    pub async fn list_locks(&self) -> Result<Vec<LockInfo>, StoreError> {
        self.read(|c| {
            let mut out: std::collections::BTreeMap<String, LockInfo> = std::collections::BTreeMap::new();
            {
                let mut st = c.prepare("SELECT name, instance_id, since FROM locks")?;
                let rows = st.query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })?;
                for row in rows {
                    let (name, inst, since) = row?;
                    out.entry(name.clone())
                        .or_insert_with(|| LockInfo {
                            name,
                            holder: None,
                            waiting: Vec::new(),
                        })
                        .holder = Some((inst, u64::try_from(since).unwrap_or(0)));
                }
            }
            let mut st =
                c.prepare("SELECT instance_id, names, acquired FROM lock_requests WHERE granted = 0 ORDER BY id")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            for row in rows {
                let (inst, names, acquired) = row?;
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
        })
        .await
    }
}
