//! Typed operations on the task hub. Every write here runs inside the
//! writer's group-commit transaction (see the parent module).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::history::{Event, Millis};
use crate::store::{
    ActivityOutcome, Checkpoint, EpisodeInput, FunctionKind, FunctionVersion, InboxMessage, InstanceQuery, InstanceRow,
    Lease, Message, NewExecution, Notes, Outbox, RewindPlan, RuntimeStatus, StoreError, WorkItem,
};

pub(super) const INSTANCE_COLS: &str = "instance_id, execution_id, name, version, status, input, output, custom_status, created_at, updated_at, parent_instance, history_len";

/// The instance rows `sql` (a `SELECT {INSTANCE_COLS} ...` with `LIMIT`
/// already appended) selects with `args`.
pub(super) fn instance_rows(
    c: &rusqlite::Connection,
    sql: &str,
    args: Vec<rusqlite::types::Value>,
) -> rusqlite::Result<Vec<InstanceRow>> {
    let mut st = c.prepare(sql)?;
    let rows = st.query_map(rusqlite::params_from_iter(args), instance_from_row)?;
    rows.collect()
}

pub(super) fn instance_from_row(r: &Row<'_>) -> rusqlite::Result<InstanceRow> {
    let status: String = r.get(4)?;
    Ok(InstanceRow {
        instance_id: r.get(0)?,
        execution_id: r.get(1)?,
        name: r.get(2)?,
        version: r.get(3)?,
        status: RuntimeStatus::parse(&status).unwrap_or(RuntimeStatus::Failed),
        input: r.get(5)?,
        output: r.get(6)?,
        custom_status: r.get(7)?,
        created_at: r.get::<_, i64>(8)? as u64,
        updated_at: r.get::<_, i64>(9)? as u64,
        parent_instance: r.get(10)?,
        history_len: r.get::<_, i64>(11)? as u64,
    })
}

const WORK_COLS: &str = "id, instance_id, execution_id, task_id, name, input, retry, attempt, first_scheduled";

fn work_from_row(r: &Row<'_>) -> rusqlite::Result<WorkItem> {
    let retry: Option<String> = r.get(6)?;
    Ok(WorkItem {
        id: r.get(0)?,
        instance_id: r.get(1)?,
        execution_id: r.get(2)?,
        task_id: r.get(3)?,
        name: r.get(4)?,
        input: r.get(5)?,
        retry: retry.and_then(|t| serde_json::from_str(&t).ok()),
        attempt: r.get(7)?,
        first_scheduled: r.get::<_, i64>(8)? as u64,
    })
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn message_kind(event: &Event) -> &'static str {
    event.type_name()
}

/// Inserts a message into an inbox (no existence checks).
pub(super) fn insert_message(
    c: &Connection,
    notes: &mut Notes,
    instance_id: &str,
    execution_id: Option<&str>,
    visible_at: Millis,
    now: Millis,
    event: &Event,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO inbox (instance_id, execution_id, kind, visible_at, created_at, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        instance_id,
        execution_id,
        message_kind(event),
        to_i64(visible_at),
        to_i64(now),
        event.encode()
    ])?;
    if visible_at <= now {
        notes.inbox.push(instance_id.to_owned());
    }
    Ok(())
}

fn newest_version(c: &Connection, name: &str, kind: FunctionKind) -> Result<Option<String>, StoreError> {
    Ok(
        c.prepare_cached("SELECT hash FROM functions WHERE name = ?1 AND kind = ?2 ORDER BY seq DESC LIMIT 1")?
            .query_row(params![name, kind.as_str()], |r| r.get(0))
            .optional()?,
    )
}

fn version_exists(c: &Connection, name: &str, hash: &str) -> Result<bool, StoreError> {
    Ok(
        c.prepare_cached("SELECT 1 FROM functions WHERE name = ?1 AND hash = ?2 AND kind = 'orchestrator'")?
            .query_row(params![name, hash], |_| Ok(()))
            .optional()?
            .is_some(),
    )
}

fn status_of(c: &Connection, id: &str) -> Result<Option<RuntimeStatus>, StoreError> {
    let s: Option<String> = c
        .prepare_cached("SELECT status FROM instances WHERE instance_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(s.and_then(|s| RuntimeStatus::parse(&s)))
}

/// Deletes everything stored for an instance (history, inbox, work, row).
fn delete_instance_rows(c: &Connection, id: &str) -> Result<(), StoreError> {
    c.prepare_cached("DELETE FROM history WHERE instance_id = ?1")?
        .execute([id])?;
    c.prepare_cached("DELETE FROM inbox WHERE instance_id = ?1")?
        .execute([id])?;
    c.prepare_cached("DELETE FROM work_items WHERE instance_id = ?1")?
        .execute([id])?;
    c.prepare_cached("DELETE FROM instances WHERE instance_id = ?1")?
        .execute([id])?;
    Ok(())
}

/// The statuses `list` as an SQL list of literals: `'Completed','Failed'`.
pub(super) fn status_list(statuses: &[RuntimeStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates (or re-creates a finished) instance and its ExecutionStarted message.
fn insert_start(c: &Connection, notes: &mut Notes, new: &NewExecution, now: Millis) -> Result<(), StoreError> {
    match status_of(c, &new.instance_id)? {
        Some(s) if !s.is_terminal() => return Err(StoreError::InstanceExists(new.instance_id.clone())),
        Some(_) => delete_instance_rows(c, &new.instance_id)?,
        None => {}
    }
    c.prepare_cached(
        "INSERT INTO instances (instance_id, execution_id, name, version, status, input, created_at, updated_at, parent_instance, history_len)
         VALUES (?1, ?2, ?3, ?4, 'Pending', ?5, ?6, ?6, ?7, 0)",
    )?
    .execute(params![
        new.instance_id,
        new.execution_id,
        new.name,
        new.version,
        new.input,
        to_i64(now),
        new.parent_instance
    ])?;
    insert_message(
        c,
        notes,
        &new.instance_id,
        Some(&new.execution_id),
        new.visible_at,
        now,
        &new.started,
    )
}

impl SqliteStore {
    // ---- components ----------------------------------------------------

    /// Stores a component and registers its functions as the newest
    /// versions of their names. Idempotent for the same bytes.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn deploy_component(
        &self,
        hash: String,
        bytes: Vec<u8>,
        functions: Vec<(String, FunctionKind)>,
        grants: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |c, _| {
            c.execute(
                "INSERT INTO components (hash, bytes, size, deployed_at, grants) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (hash) DO UPDATE SET grants = excluded.grants",
                params![hash, bytes, bytes.len() as i64, to_i64(now), grants],
            )?;
            for (name, kind) in &functions {
                // Re-deploying an older build makes it the newest again.
                c.execute(
                    "DELETE FROM functions WHERE name = ?1 AND hash = ?2",
                    params![name, hash],
                )?;
                c.execute(
                    "INSERT INTO functions (name, kind, hash, deployed_at) VALUES (?1, ?2, ?3, ?4)",
                    params![name, kind.as_str(), hash, to_i64(now)],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// The bytes of a deployed component.
    ///
    /// # Errors
    /// [`StoreError::VersionNotFound`] when no such component is stored.
    pub async fn component_bytes(&self, hash: &str) -> Result<Vec<u8>, StoreError> {
        let hash = hash.to_owned();
        self.read(move |c| {
            c.query_row("SELECT bytes FROM components WHERE hash = ?1", [&hash], |r| r.get(0))
                .optional()?
                .ok_or(StoreError::VersionNotFound(hash))
        })
        .await
    }

    /// The capabilities (JSON) granted to a deployed component.
    ///
    /// # Errors
    /// [`StoreError::VersionNotFound`].
    pub async fn component_grants(&self, hash: &str) -> Result<String, StoreError> {
        let hash = hash.to_owned();
        self.read(move |c| {
            c.query_row("SELECT grants FROM components WHERE hash = ?1", [&hash], |r| r.get(0))
                .optional()?
                .ok_or(StoreError::VersionNotFound(hash))
        })
        .await
    }

    /// The newest deployed version (component hash) of a function.
    ///
    /// # Errors
    /// [`StoreError::FunctionNotFound`].
    pub async fn resolve_function(&self, name: &str, kind: FunctionKind) -> Result<String, StoreError> {
        let name = name.to_owned();
        self.read(move |c| newest_version(c, &name, kind)?.ok_or(StoreError::FunctionNotFound { kind, name }))
            .await
    }

    /// Every deployed function version, newest first per name.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn list_functions(&self) -> Result<Vec<FunctionVersion>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare("SELECT name, kind, hash, deployed_at FROM functions ORDER BY name, seq DESC")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (name, kind, hash, at) = row?;
                out.push(FunctionVersion {
                    name,
                    kind: FunctionKind::parse(&kind)?,
                    hash,
                    deployed_at: at as u64,
                });
            }
            Ok(out)
        })
        .await
    }

    // ---- instances -----------------------------------------------------

    /// Creates an instance in Pending with its ExecutionStarted message.
    ///
    /// # Errors
    /// [`StoreError::InstanceExists`] for an unfinished instance with that id.
    pub async fn create_instance(&self, new: NewExecution, now: Millis) -> Result<(), StoreError> {
        self.write(move |c, notes| insert_start(c, notes, &new, now)).await
    }

    /// Stores an instance as recorded, replacing one with the same id.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn import_instance(&self, row: InstanceRow, history: Vec<(Millis, Event)>) -> Result<(), StoreError> {
        self.write(move |c, _| {
            delete_instance_rows(c, &row.instance_id)?;
            c.prepare_cached(
                "INSERT INTO instances (instance_id, execution_id, name, version, status, input, output, custom_status, created_at, updated_at, parent_instance, history_len)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                row.instance_id,
                row.execution_id,
                row.name,
                row.version,
                row.status.as_str(),
                row.input,
                row.output,
                row.custom_status,
                to_i64(row.created_at),
                to_i64(row.updated_at),
                row.parent_instance,
                history.len() as i64
            ])?;
            insert_history(c, &row.instance_id, &row.execution_id, 0, &history)
        })
        .await
    }

    /// Whether `hash` is a deployed version of orchestrator `name`.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn orchestrator_version_exists(&self, name: &str, hash: &str) -> Result<bool, StoreError> {
        let (name, hash) = (name.to_owned(), hash.to_owned());
        self.read(move |c| version_exists(c, &name, &hash)).await
    }

    /// Sends a message to a running instance (event, terminate, suspend, resume).
    ///
    /// # Errors
    /// [`StoreError::InstanceNotFound`]; [`StoreError::InstanceFinished`].
    pub async fn send_message(&self, instance_id: &str, event: Event, now: Millis) -> Result<(), StoreError> {
        let id = instance_id.to_owned();
        self.write(move |c, notes| {
            match status_of(c, &id)? {
                None => return Err(StoreError::InstanceNotFound(id)),
                Some(status) if status.is_terminal() => return Err(StoreError::InstanceFinished { id, status }),
                Some(_) => {}
            }
            insert_message(c, notes, &id, None, now, now, &event)
        })
        .await
    }

    /// One instance row.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceRow>, StoreError> {
        let id = instance_id.to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {INSTANCE_COLS} FROM instances WHERE instance_id = ?1"))?
                    .query_row([&id], instance_from_row)
                    .optional()?,
            )
        })
        .await
    }

    /// The current execution's history of an instance.
    ///
    /// # Errors
    /// [`StoreError::InstanceNotFound`]; decode errors.
    pub async fn get_history(&self, instance_id: &str) -> Result<Vec<(Millis, Event)>, StoreError> {
        let id = instance_id.to_owned();
        self.read(move |c| {
            let tx = c.transaction()?;
            let exec: String = tx
                .query_row(
                    "SELECT execution_id FROM instances WHERE instance_id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| StoreError::InstanceNotFound(id.clone()))?;
            load_history(&tx, &id, &exec)
        })
        .await
    }

    /// Instances matching `q`, ordered by creation time then id.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn list_instances(&self, q: InstanceQuery) -> Result<Vec<InstanceRow>, StoreError> {
        self.read(move |c| {
            let mut sql = format!("SELECT {INSTANCE_COLS} FROM instances WHERE substr(instance_id, 1, 1) <> '@'");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(from) = q.created_from {
                sql.push_str(" AND created_at >= ?");
                args.push(to_i64(from).into());
            }
            if let Some(to) = q.created_to {
                sql.push_str(" AND created_at <= ?");
                args.push(to_i64(to).into());
            }
            if !q.statuses.is_empty() {
                let marks = vec!["?"; q.statuses.len()].join(",");
                sql.push_str(&format!(" AND status IN ({marks})"));
                args.extend(q.statuses.iter().map(|s| s.as_str().to_owned().into()));
            }
            if let Some(prefix) = &q.id_prefix {
                sql.push_str(" AND substr(instance_id, 1, ?) = ?");
                args.push((prefix.chars().count() as i64).into());
                args.push(prefix.clone().into());
            }
            if let Some(name) = &q.name {
                sql.push_str(" AND name = ?");
                args.push(name.clone().into());
            }
            if let Some((at, id)) = &q.after {
                sql.push_str(" AND (created_at > ? OR (created_at = ? AND instance_id > ?))");
                args.push(to_i64(*at).into());
                args.push(to_i64(*at).into());
                args.push(id.clone().into());
            }
            sql.push_str(" ORDER BY created_at, instance_id");
            if let Some(top) = q.top {
                sql.push_str(&format!(" LIMIT {top}"));
            }
            Ok(instance_rows(c, &sql, args)?)
        })
        .await
    }

    // ---- engine --------------------------------------------------------

    /// Instances with a message visible at `now` that can be processed
    /// (a suspended instance only for resume / terminate).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn due_instances(&self, now: Millis, limit: u32, owner: &str) -> Result<Vec<String>, StoreError> {
        let owner = owner.to_owned();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT m.instance_id FROM inbox m JOIN instances i ON i.instance_id = m.instance_id
                 WHERE m.visible_at <= ?1
                   AND (i.status != 'Suspended' OR m.kind IN (?4, ?5))
                   AND (i.lease_owner IS NULL OR i.lease_owner = ?3 OR i.lease_expires <= ?1)
                 LIMIT ?2",
            )?;
            // Which messages wake a suspended instance is the decision core's rule.
            let [resumed, terminated] = crate::decide::WAKES_SUSPENDED;
            let rows = st.query_map(params![to_i64(now), limit, owner, resumed, terminated], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    /// Takes or renews a lease on one instance.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn lease_instance(&self, instance_id: &str, lease: &Lease, now: Millis) -> Result<bool, StoreError> {
        let (id, lease) = (instance_id.to_owned(), lease.clone());
        self.write(move |c, _| {
            let n = c
                .prepare_cached(
                    "UPDATE instances SET lease_owner = ?2, lease_expires = ?3
                      WHERE instance_id = ?1 AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_expires <= ?4)",
                )?
                .execute(params![
                    id,
                    lease.owner,
                    to_i64(now.saturating_add(lease.duration_ms)),
                    to_i64(now)
                ])?;
            Ok(n == 1)
        })
        .await
    }

    /// Renews the leases `lease.owner` holds among `ids`; returns the lost ones.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn renew_instance_leases(
        &self,
        ids: Vec<String>,
        lease: &Lease,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let lease = lease.clone();
        self.write(move |c, _| {
            let mut st = c.prepare_cached(
                "UPDATE instances SET lease_expires = ?3 WHERE instance_id = ?1 AND lease_owner = ?2",
            )?;
            let mut lost = Vec::new();
            for id in ids {
                let n = st.execute(params![id, lease.owner, to_i64(now.saturating_add(lease.duration_ms))])?;
                if n == 0 {
                    lost.push(id);
                }
            }
            Ok(lost)
        })
        .await
    }

    /// Ends `owner`'s lease on one instance.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn release_instance(&self, instance_id: &str, owner: &str) -> Result<(), StoreError> {
        let (id, owner) = (instance_id.to_owned(), owner.to_owned());
        self.write(move |c, _| {
            c.prepare_cached(
                "UPDATE instances SET lease_owner = NULL, lease_expires = NULL WHERE instance_id = ?1 AND lease_owner = ?2",
            )?
            .execute(params![id, owner])?;
            Ok(())
        })
        .await
    }

    /// Voids every instance lease not held by `owner`.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn reclaim_leases(&self, owner: &str) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.write(move |c, _| {
            c.prepare_cached(
                "UPDATE instances SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner IS NOT NULL AND lease_owner != ?1",
            )?
            .execute([&owner])?;
            Ok(())
        })
        .await
    }

    /// Reads what an episode of `instance_id` needs. The history is left out
    /// when `hot` (execution id, history length) matches the stored row.
    ///
    /// # Errors
    /// SQLite and decode errors. `Ok(None)` when the instance is unknown.
    pub async fn load_episode(
        &self,
        instance_id: &str,
        now: Millis,
        hot: Option<(String, u64, String)>,
    ) -> Result<Option<EpisodeInput>, StoreError> {
        let id = instance_id.to_owned();
        self.read(move |c| {
            let tx = c.transaction()?;
            let Some(instance) = tx
                .prepare_cached(&format!("SELECT {INSTANCE_COLS} FROM instances WHERE instance_id = ?1"))?
                .query_row([&id], instance_from_row)
                .optional()?
            else {
                return Ok(None);
            };
            let mut messages = Vec::new();
            {
                let mut st = tx.prepare_cached(
                    "SELECT id, execution_id, created_at, data FROM inbox WHERE instance_id = ?1 AND visible_at <= ?2 ORDER BY id LIMIT 10000",
                )?;
                let rows = st.query_map(params![&id, to_i64(now)], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
                })?;
                for row in rows {
                    let (mid, exec, ts, data) = row?;
                    let event = Event::decode(&data).map_err(|e| StoreError::Decode(format!("inbox message {mid}: {e}")))?;
                    messages.push(InboxMessage {
                        id: mid,
                        execution_id: exec,
                        timestamp: ts as u64,
                        event,
                    });
                }
            }
            let current = hot.is_some_and(|(exec, len, version)| {
                exec == instance.execution_id && len == instance.history_len && version == instance.version
            });
            let history = if current {
                None
            } else {
                Some(load_history(&tx, &id, &instance.execution_id)?)
            };
            Ok(Some(EpisodeInput {
                instance,
                messages,
                history,
            }))
        })
        .await
    }

    /// Commits an episode: history, outbox, consumed messages and the
    /// instance row in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the stored history length is not
    /// `expected_history_len`; SQLite errors.
    pub async fn checkpoint(&self, cp: Checkpoint, lease: Lease) -> Result<(), StoreError> {
        self.write(move |c, notes| apply_checkpoint(c, notes, &cp, &lease))
            .await
    }

    /// Drops inbox messages without an episode (e.g. for a finished instance).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn discard_messages(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |c, _| {
            let mut st = c.prepare_cached("DELETE FROM inbox WHERE id = ?1")?;
            for id in ids {
                st.execute([id])?;
            }
            Ok(())
        })
        .await
    }

    /// Leases work items that are visible and unleased or whose lease expired
    /// (or, with `reclaim_all`, any lease not held by `owner`: used at start-up
    /// by the only server of the task hub). A redelivered item's attempt is
    /// incremented.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn claim_work_items(
        &self,
        lease: Lease,
        now: Millis,
        reclaim_all: bool,
        limit: u32,
    ) -> Result<Vec<WorkItem>, StoreError> {
        self.write(move |c, _| {
            let mut st = c.prepare_cached(&format!(
                "UPDATE work_items
                    SET attempt = attempt + (lease_owner IS NOT NULL),
                        lease_owner = ?1, lease_expires = ?2
                  WHERE id IN (SELECT id FROM work_items
                                WHERE visible_at <= ?3
                                  AND (lease_owner IS NULL OR lease_expires <= ?3 OR (?4 AND lease_owner != ?1))
                                ORDER BY id LIMIT ?5)
                  RETURNING {WORK_COLS}"
            ))?;
            let rows = st.query_map(
                params![
                    lease.owner,
                    to_i64(now.saturating_add(lease.duration_ms)),
                    to_i64(now),
                    reclaim_all,
                    limit
                ],
                work_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Commits an activity attempt's end: delivers the outcome's message
    /// and deletes the item, or keeps it for the retry. Returns false when
    /// the lease was lost (nothing is written: the item's new owner
    /// delivers it).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn complete_work_item(
        &self,
        item: WorkItem,
        owner: String,
        outcome: ActivityOutcome,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.write(move |c, notes| {
            let kept = match outcome.retry_at {
                Some(at) => c
                    .prepare_cached(
                        "UPDATE work_items SET attempt = attempt + 1, visible_at = ?3, lease_owner = NULL, lease_expires = NULL
                          WHERE id = ?1 AND lease_owner = ?2",
                    )?
                    .execute(params![item.id, owner, to_i64(at)])?,
                None => c
                    .prepare_cached("DELETE FROM work_items WHERE id = ?1 AND lease_owner = ?2")?
                    .execute(params![item.id, owner])?,
            };
            if kept == 0 {
                return Ok(false);
            }
            insert_message(
                c,
                notes,
                &item.instance_id,
                Some(&item.execution_id),
                now,
                now,
                &outcome.message,
            )?;
            Ok(true)
        })
        .await
    }

    /// Releases every work item lease `owner` holds.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn release_leases(&self, owner: String) -> Result<(), StoreError> {
        self.write(move |c, _| {
            c.prepare_cached("UPDATE work_items SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?1")?
                .execute([&owner])?;
            c.prepare_cached("UPDATE instances SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?1")?
                .execute([&owner])?;
            Ok(())
        })
        .await
    }

    /// Applies a rewind plan to a Failed instance: its history is replaced,
    /// the plan's work scheduled (unleased) and its message queued.
    ///
    /// # Errors
    /// [`StoreError::InstanceNotFound`]; [`StoreError::NotFailed`];
    /// [`StoreError::Conflict`] when the history changed since the plan.
    pub async fn rewind(&self, plan: RewindPlan) -> Result<(), StoreError> {
        self.write(move |c, notes| {
            let id = plan.instance_id.clone();
            let row = c
                .prepare_cached(&format!("SELECT {INSTANCE_COLS} FROM instances WHERE instance_id = ?1"))?
                .query_row([&id], instance_from_row)
                .optional()?
                .ok_or_else(|| StoreError::InstanceNotFound(id.clone()))?;
            if row.status != RuntimeStatus::Failed {
                return Err(StoreError::NotFailed { id, status: row.status });
            }
            if row.execution_id != plan.execution_id || row.history_len != plan.expected_history_len {
                return Err(StoreError::Conflict(id));
            }
            c.prepare_cached("DELETE FROM history WHERE instance_id = ?1 AND execution_id = ?2")?
                .execute(params![id, row.execution_id])?;
            insert_history(c, &id, &row.execution_id, 0, &plan.history)?;
            // A Failed execution has no pending work; what the plan
            // schedules replaces anything left.
            c.prepare_cached("DELETE FROM work_items WHERE instance_id = ?1")?
                .execute([&id])?;
            let cp = Checkpoint {
                instance_id: id.clone(),
                execution_id: row.execution_id.clone(),
                expected_history_len: plan.history.len() as u64,
                consumed: Vec::new(),
                events: Vec::new(),
                status: RuntimeStatus::Running,
                output: Some(None),
                custom_status: None,
                outbox: Vec::new(),
                now: plan.now,
                lease_until: None,
            };
            for item in &plan.outbox {
                apply_outbox(c, notes, &cp, None, item)?;
            }
            c.prepare_cached(
                "UPDATE instances SET status = 'Running', output = NULL, history_len = ?2, updated_at = ?3 WHERE instance_id = ?1",
            )?
            .execute(params![id, plan.history.len() as i64, to_i64(plan.now)])?;
            let m = &plan.message;
            insert_message(
                c,
                notes,
                &m.instance_id,
                m.execution_id.as_deref(),
                m.visible_at,
                plan.now,
                &m.event,
            )
        })
        .await
    }

    /// Moves unfinished instances of orchestrator `name` from version `from`
    /// to version `to` (an upgrade), in one transaction. Returns how many moved.
    ///
    /// # Errors
    /// [`StoreError::VersionNotFound`] when `to` is not a deployed version of `name`.
    pub async fn move_instances_to_version(
        &self,
        name: &str,
        ids: Vec<String>,
        to: &str,
        now: Millis,
    ) -> Result<usize, StoreError> {
        let (name, to) = (name.to_owned(), to.to_owned());
        self.write(move |c, _| {
            if !version_exists(c, &name, &to)? {
                return Err(StoreError::VersionNotFound(to));
            }
            let mut st = c.prepare_cached(&format!(
                "UPDATE instances SET version = ?3, updated_at = ?4
                  WHERE instance_id = ?1 AND name = ?2 AND status NOT IN ({})",
                status_list(&RuntimeStatus::TERMINAL)
            ))?;
            let mut moved = 0;
            for id in &ids {
                moved += st.execute(params![id, name, to, to_i64(now)])?;
            }
            Ok(moved)
        })
        .await
    }

    /// Deletes component versions that no unfinished instance uses and that
    /// are not the newest version of any of their functions. Returns the
    /// pruned hashes.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn prune_unused_versions(&self) -> Result<Vec<String>, StoreError> {
        self.write(|c, _| {
            let hashes: Vec<String> = {
                let never = status_list(&RuntimeStatus::NEVER_AGAIN);
                let mut st = c.prepare(&format!(
                    "SELECT hash FROM components WHERE
                       hash NOT IN (SELECT version FROM instances WHERE status NOT IN ({never}))
                       AND hash NOT IN (SELECT f.hash FROM functions f WHERE f.seq = (SELECT MAX(g.seq) FROM functions g WHERE g.name = f.name))"
                ))?;
                let rows = st.query_map([], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for h in &hashes {
                c.execute("DELETE FROM functions WHERE hash = ?1", [h])?;
                c.execute("DELETE FROM components WHERE hash = ?1", [h])?;
            }
            Ok(hashes)
        })
        .await
    }

    /// Counts rows of the queue tables: (inbox, work items).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn queue_depths(&self) -> Result<(u64, u64), StoreError> {
        self.read(|c| {
            let inbox: i64 = c.query_row("SELECT COUNT(*) FROM inbox", [], |r| r.get(0))?;
            let work: i64 = c.query_row("SELECT COUNT(*) FROM work_items", [], |r| r.get(0))?;
            Ok((inbox as u64, work as u64))
        })
        .await
    }
}

fn load_history(c: &Connection, id: &str, exec: &str) -> Result<Vec<(Millis, Event)>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT seq, timestamp, data FROM history WHERE instance_id = ?1 AND execution_id = ?2 ORDER BY seq",
    )?;
    let rows = st.query_map(params![id, exec], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, ts, data) = row?;
        let event = Event::decode(&data).map_err(|e| StoreError::Decode(format!("history {id}#{seq}: {e}")))?;
        out.push((ts as u64, event));
    }
    Ok(out)
}

/// Appends `events` to an execution's history from position `from`.
fn insert_history(
    c: &Connection,
    id: &str,
    exec: &str,
    from: u64,
    events: &[(Millis, Event)],
) -> Result<(), StoreError> {
    let mut st = c.prepare_cached(
        "INSERT INTO history (instance_id, execution_id, seq, event_type, timestamp, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (i, (ts, event)) in events.iter().enumerate() {
        st.execute(params![
            id,
            exec,
            to_i64(from + i as u64),
            event.type_name(),
            to_i64(*ts),
            event.encode()
        ])?;
    }
    Ok(())
}

fn apply_checkpoint(c: &Connection, notes: &mut Notes, cp: &Checkpoint, lease: &Lease) -> Result<(), StoreError> {
    type Stored = (String, i64, Option<String>, Option<i64>);
    let stored: Option<Stored> = c
        .prepare_cached(
            "SELECT execution_id, history_len, lease_owner, lease_expires FROM instances WHERE instance_id = ?1",
        )?
        .query_row([&cp.instance_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    match stored {
        Some((exec, len, holder, expires))
            if exec == cp.execution_id
                && len as u64 == cp.expected_history_len
                && (holder.is_none()
                    || holder.as_deref() == Some(lease.owner.as_str())
                    || expires.is_none_or(|e| e <= to_i64(cp.now))) => {}
        _ => return Err(StoreError::Conflict(cp.instance_id.clone())),
    }
    insert_history(
        c,
        &cp.instance_id,
        &cp.execution_id,
        cp.expected_history_len,
        &cp.events,
    )?;
    {
        let mut st = c.prepare_cached("DELETE FROM inbox WHERE id = ?1")?;
        for id in &cp.consumed {
            st.execute([id])?;
        }
    }
    let new_len = cp.expected_history_len + cp.events.len() as u64;
    c.prepare_cached(
        "UPDATE instances SET status = ?2, history_len = ?3, updated_at = ?4,
                output = CASE WHEN ?5 THEN ?6 ELSE output END,
                custom_status = CASE WHEN ?7 THEN ?8 ELSE custom_status END
          WHERE instance_id = ?1",
    )?
    .execute(params![
        cp.instance_id,
        cp.status.as_str(),
        to_i64(new_len),
        to_i64(cp.now),
        cp.output.is_some(),
        cp.output.clone().flatten(),
        cp.custom_status.is_some(),
        cp.custom_status.clone().flatten(),
    ])?;
    if cp.status.is_terminal() || cp.status == RuntimeStatus::ContinuedAsNew {
        // Locks never outlive their holder's execution.
        super::locks::release_all(c, notes, &cp.instance_id, cp.now)?;
    }
    let until = cp.lease_until.filter(|_| !cp.status.is_terminal());
    c.prepare_cached("UPDATE instances SET lease_owner = ?2, lease_expires = ?3 WHERE instance_id = ?1")?
        .execute(params![
            cp.instance_id,
            until.map(|_| lease.owner.as_str()),
            until.map(to_i64)
        ])?;
    if cp.status.is_terminal() {
        notes.finished.push(cp.instance_id.clone());
        // Pending work of a finished execution is moot.
        c.prepare_cached("DELETE FROM work_items WHERE instance_id = ?1")?
            .execute([&cp.instance_id])?;
    }
    for item in &cp.outbox {
        apply_outbox(c, notes, cp, Some(lease), item)?;
    }
    Ok(())
}

/// Delivers a message unless its addressee is gone or finished.
fn deliver(c: &Connection, notes: &mut Notes, m: &Message, now: Millis) -> Result<(), StoreError> {
    if status_of(c, &m.instance_id)?.is_some_and(|s| !s.is_terminal()) {
        insert_message(
            c,
            notes,
            &m.instance_id,
            m.execution_id.as_deref(),
            m.visible_at,
            now,
            &m.event,
        )?;
    }
    Ok(())
}

/// Stores an outbox item that is not tied to the sending instance: a
/// message, a request to an entity, an orchestration start (an entity
/// batch's outbox has only these).
pub(super) fn apply_outbox_of(c: &Connection, notes: &mut Notes, item: &Outbox, now: Millis) -> Result<(), StoreError> {
    match item {
        Outbox::Message(m) => deliver(c, notes, m, now),
        Outbox::ToEntity { name, message } => super::entities::deliver_to_entity(c, notes, name, message, now),
        Outbox::Start(new) => {
            c.execute_batch("SAVEPOINT start")?;
            match insert_start(c, notes, new, now) {
                Ok(()) => Ok(c.execute_batch("RELEASE start")?),
                // An unfinished instance with that id runs already.
                Err(StoreError::InstanceExists(_)) => Ok(c.execute_batch("ROLLBACK TO start; RELEASE start")?),
                Err(e) => Err(e),
            }
        }
        other => Err(StoreError::Backend(format!(
            "{other:?} needs the sending instance's checkpoint"
        ))),
    }
}

/// Stores one outbox item. Work items are leased to `lease` (unleased
/// without one).
fn apply_outbox(
    c: &Connection,
    notes: &mut Notes,
    cp: &Checkpoint,
    lease: Option<&Lease>,
    item: &Outbox,
) -> Result<(), StoreError> {
    match item {
        Outbox::WorkItem {
            task_id,
            name,
            input,
            retry,
            attempt,
        } => {
            let retry_text = retry.as_ref().and_then(|r| serde_json::to_string(r).ok());
            let mut st = c.prepare_cached(&format!(
                "INSERT INTO work_items (instance_id, execution_id, task_id, name, input, retry, attempt, first_scheduled, visible_at, lease_owner, lease_expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?10, ?7, ?7, ?8, ?9)
                 ON CONFLICT DO NOTHING RETURNING {WORK_COLS}"
            ))?;
            let rows = st.query_map(
                params![
                    cp.instance_id,
                    cp.execution_id,
                    task_id,
                    name,
                    input,
                    retry_text,
                    to_i64(cp.now),
                    lease.map(|l| l.owner.as_str()),
                    lease.map(|l| to_i64(cp.now.saturating_add(l.duration_ms))),
                    attempt,
                ],
                work_from_row,
            )?;
            for row in rows {
                let row = row?;
                if lease.is_some() {
                    notes.work.push(row);
                }
            }
        }
        Outbox::Message(_) | Outbox::ToEntity { .. } | Outbox::Start(_) => apply_outbox_of(c, notes, item, cp.now)?,
        Outbox::StartChild { child, refused } => {
            c.execute_batch("SAVEPOINT child")?;
            match insert_start(c, notes, child, cp.now) {
                Ok(()) => c.execute_batch("RELEASE child")?,
                Err(StoreError::InstanceExists(_)) => {
                    c.execute_batch("ROLLBACK TO child; RELEASE child")?;
                    deliver(c, notes, refused, cp.now)?;
                }
                Err(e) => return Err(e),
            }
        }
        Outbox::AcquireLocks {
            task_id,
            names,
            granted,
        } => {
            super::locks::request(
                c,
                notes,
                &cp.instance_id,
                &cp.execution_id,
                *task_id,
                names,
                granted,
                cp.now,
            )?;
        }
        Outbox::ReleaseLocks { lock } => {
            super::locks::release(c, notes, &cp.instance_id, Some(*lock), cp.now)?;
        }
        Outbox::NextExecution(next) => {
            c.prepare_cached("DELETE FROM history WHERE instance_id = ?1")?
                .execute([&next.instance_id])?;
            c.prepare_cached(
                "UPDATE instances SET execution_id = ?2, version = ?3, input = ?4, history_len = 0, output = NULL WHERE instance_id = ?1",
            )?
            .execute(params![next.instance_id, next.execution_id, next.version, next.input])?;
            insert_message(
                c,
                notes,
                &next.instance_id,
                Some(&next.execution_id),
                next.visible_at,
                cp.now,
                &next.started,
            )?;
        }
    }
    Ok(())
}
