//! Typed operations on the task hub. Every write runs in one transaction
//! (see [`super::write_tx`]); the comments say which row locks stand in for
//! SQLite's single writer.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::commit::{Done, Job};
use super::{PostgresStore, col, execute, query, query_opt, to_i64, to_u64, write_tx};
use crate::history::{Event, Millis};
use crate::store::{
    ActivityOutcome, Checkpoint, EpisodeInput, FunctionKind, FunctionVersion, InstanceQuery, InstanceRow, Lease,
    Message, NewExecution, Notes, Outbox, RewindPlan, RuntimeStatus, StoreError, WorkItem,
};

pub(super) const INSTANCE_COLS: &str = "instance_id, execution_id, name, version, status, input, output, custom_status, created_at, updated_at, parent_instance, history_len";

pub(super) fn instance_from_row(r: &Row) -> Result<InstanceRow, StoreError> {
    instance_from_row_at(r, 0)
}

/// The instance in columns `at..` of `r` ([`INSTANCE_COLS`]).
pub(super) fn instance_from_row_at(r: &Row, at: usize) -> Result<InstanceRow, StoreError> {
    let status: String = col(r, at + 4)?;
    Ok(InstanceRow {
        instance_id: col(r, at)?,
        execution_id: col(r, at + 1)?,
        name: col(r, at + 2)?,
        version: col(r, at + 3)?,
        status: RuntimeStatus::parse(&status).unwrap_or(RuntimeStatus::Failed),
        input: col(r, at + 5)?,
        output: col(r, at + 6)?,
        custom_status: col(r, at + 7)?,
        created_at: to_u64(col(r, at + 8)?),
        updated_at: to_u64(col(r, at + 9)?),
        parent_instance: col(r, at + 10)?,
        history_len: to_u64(col(r, at + 11)?),
    })
}

pub(super) const WORK_COLS: &str =
    "id, instance_id, execution_id, task_id, name, input, retry, attempt, first_scheduled";

pub(super) fn work_from_row(r: &Row) -> Result<WorkItem, StoreError> {
    let retry: Option<String> = col(r, 6)?;
    Ok(WorkItem {
        id: col(r, 0)?,
        instance_id: col(r, 1)?,
        execution_id: col(r, 2)?,
        task_id: u32::try_from(col::<i64>(r, 3)?).map_err(|e| StoreError::Decode(format!("task id: {e}")))?,
        name: col(r, 4)?,
        input: col(r, 5)?,
        retry: retry.and_then(|t| serde_json::from_str(&t).ok()),
        attempt: u32::try_from(col::<i64>(r, 7)?).unwrap_or(u32::MAX),
        first_scheduled: to_u64(col(r, 8)?),
    })
}

/// Status names as a TEXT[] parameter.
pub(super) fn status_names(statuses: &[RuntimeStatus]) -> Vec<&'static str> {
    statuses.iter().map(|s| s.as_str()).collect()
}

/// Inserts a message into an inbox (no existence checks).
pub(super) async fn insert_message(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    instance_id: &str,
    execution_id: Option<&str>,
    visible_at: Millis,
    now: Millis,
    event: &Event,
) -> Result<(), StoreError> {
    execute(
        tx,
        "INSERT INTO inbox (instance_id, execution_id, kind, visible_at, created_at, data) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &instance_id,
            &execution_id,
            &event.type_name(),
            &to_i64(visible_at),
            &to_i64(now),
            &event.encode(),
        ],
    )
    .await?;
    if visible_at <= now {
        notes.inbox.push(instance_id.to_owned());
    }
    Ok(())
}

async fn newest_version<C: GenericClient>(c: &C, name: &str, kind: FunctionKind) -> Result<Option<String>, StoreError> {
    query_opt(
        c,
        "SELECT hash FROM functions WHERE name = $1 AND kind = $2 ORDER BY seq DESC LIMIT 1",
        &[&name, &kind.as_str()],
    )
    .await?
    .map(|r| col(&r, 0))
    .transpose()
}

/// Whether `hash` is a version of orchestrator `name`.
async fn version_exists<C: GenericClient>(c: &C, name: &str, hash: &str) -> Result<bool, StoreError> {
    Ok(query_opt(
        c,
        "SELECT 1 FROM functions WHERE name = $1 AND hash = $2 AND kind = 'orchestrator'",
        &[&name, &hash],
    )
    .await?
    .is_some())
}

/// Key of the advisory lock that serialises the changes of which versions
/// are in use and which exist ("cairnVer"): a move to a version and the
/// removal of versions (prune, remove) see each other's commits.
const VERSIONS_LOCK: i64 = 0x6361_6972_6e56_6572;

/// Takes the versions lock until the end of the transaction.
pub(super) async fn lock_versions(tx: &Transaction<'_>) -> Result<(), StoreError> {
    execute(tx, "SELECT pg_advisory_xact_lock($1)", &[&VERSIONS_LOCK])
        .await
        .map(drop)
}

/// The status of an instance, its row share-locked until the commit (it
/// cannot finish or be replaced meanwhile).
async fn status_for_share(tx: &Transaction<'_>, id: &str) -> Result<Option<RuntimeStatus>, StoreError> {
    let row = query_opt(
        tx,
        "SELECT status FROM instances WHERE instance_id = $1 FOR SHARE",
        &[&id],
    )
    .await?;
    Ok(match row {
        Some(r) => RuntimeStatus::parse(&col::<String>(&r, 0)?),
        None => None,
    })
}

/// Deletes everything stored for an instance (history, inbox, work, row).
pub(super) async fn delete_instance_rows(tx: &Transaction<'_>, id: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM history WHERE instance_id = $1",
        "DELETE FROM inbox WHERE instance_id = $1",
        "DELETE FROM work_items WHERE instance_id = $1",
        "DELETE FROM instances WHERE instance_id = $1",
    ] {
        execute(tx, sql, &[&id]).await?;
    }
    Ok(())
}

/// Creates (or re-creates a finished) instance and its ExecutionStarted
/// message. The existing row is locked first; a concurrent creation of a
/// new id is caught by the primary key (`ON CONFLICT DO NOTHING`).
pub(super) async fn insert_start(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    new: &NewExecution,
    now: Millis,
) -> Result<(), StoreError> {
    // A new id (the common case): the row and its ExecutionStarted in one
    // statement; the message is inserted only if the row was.
    let created = execute(
        tx,
        "WITH i AS (
           INSERT INTO instances (instance_id, execution_id, name, version, status, input, created_at, updated_at, parent_instance, history_len)
           VALUES ($1, $2, $3, $4, 'Pending', $5, $6, $6, $7, 0) ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id)
         INSERT INTO inbox (instance_id, execution_id, kind, visible_at, created_at, data)
         SELECT $1, $2, $8, $9, $6, $10 FROM i",
        &[
            &new.instance_id,
            &new.execution_id,
            &new.name,
            &new.version,
            &new.input,
            &to_i64(now),
            &new.parent_instance,
            &new.started.type_name(),
            &to_i64(new.visible_at),
            &new.started.encode(),
        ],
    )
    .await?;
    if created == 1 {
        if new.visible_at <= now {
            notes.inbox.push(new.instance_id.clone());
        }
        return Ok(());
    }
    // The id exists: replace it if it is finished.
    let existing = query_opt(
        tx,
        "SELECT status FROM instances WHERE instance_id = $1 FOR UPDATE",
        &[&new.instance_id],
    )
    .await?;
    if let Some(r) = existing {
        let status = RuntimeStatus::parse(&col::<String>(&r, 0)?);
        if status.is_some_and(|s| !s.is_terminal()) {
            return Err(StoreError::InstanceExists(new.instance_id.clone()));
        }
        delete_instance_rows(tx, &new.instance_id).await?;
    }
    let inserted = execute(
        tx,
        "INSERT INTO instances (instance_id, execution_id, name, version, status, input, created_at, updated_at, parent_instance, history_len)
         VALUES ($1, $2, $3, $4, 'Pending', $5, $6, $6, $7, 0) ON CONFLICT (instance_id) DO NOTHING",
        &[
            &new.instance_id,
            &new.execution_id,
            &new.name,
            &new.version,
            &new.input,
            &to_i64(now),
            &new.parent_instance,
        ],
    )
    .await?;
    if inserted == 0 {
        // Another transaction created it since our snapshot.
        return Err(StoreError::InstanceExists(new.instance_id.clone()));
    }
    insert_message(
        tx,
        notes,
        &new.instance_id,
        Some(&new.execution_id),
        new.visible_at,
        now,
        &new.started,
    )
    .await
}

impl PostgresStore {
    // ---- components ----------------------------------------------------

    /// Stores a component and registers its functions as the newest
    /// versions of their names. Idempotent for the same bytes.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn deploy_component(
        &self,
        hash: String,
        bytes: Vec<u8>,
        functions: Vec<(String, FunctionKind)>,
        grants: String,
        now: Millis,
    ) -> Result<(), StoreError> {
        write_tx!(self, |tx, _notes| {
            execute(
                &tx,
                "INSERT INTO components (hash, bytes, size, deployed_at, grants) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (hash) DO UPDATE SET grants = excluded.grants",
                &[&hash, &bytes, &(bytes.len() as i64), &to_i64(now), &grants],
            )
            .await?;
            for (name, kind) in &functions {
                // Re-deploying an older build makes it the newest again.
                execute(
                    &tx,
                    "INSERT INTO functions (name, kind, hash, deployed_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name, hash) DO UPDATE
                        SET kind = excluded.kind, deployed_at = excluded.deployed_at, seq = nextval('functions_seq')",
                    &[name, &kind.as_str(), &hash, &to_i64(now)],
                )
                .await?;
            }
            Ok(())
        })
    }

    /// The bytes of a deployed component.
    ///
    /// # Errors
    /// [`StoreError::VersionNotFound`] when no such component is stored.
    pub async fn component_bytes(&self, hash: &str) -> Result<Vec<u8>, StoreError> {
        let c = self.client().await?;
        match query_opt(&c, "SELECT bytes FROM components WHERE hash = $1", &[&hash]).await? {
            Some(r) => col(&r, 0),
            None => Err(StoreError::VersionNotFound(hash.to_owned())),
        }
    }

    /// The capabilities (JSON) granted to a deployed component.
    ///
    /// # Errors
    /// [`StoreError::VersionNotFound`].
    pub async fn component_grants(&self, hash: &str) -> Result<String, StoreError> {
        let c = self.client().await?;
        match query_opt(&c, "SELECT grants FROM components WHERE hash = $1", &[&hash]).await? {
            Some(r) => col(&r, 0),
            None => Err(StoreError::VersionNotFound(hash.to_owned())),
        }
    }

    /// The newest deployed version (component hash) of a function.
    ///
    /// # Errors
    /// [`StoreError::FunctionNotFound`].
    pub async fn resolve_function(&self, name: &str, kind: FunctionKind) -> Result<String, StoreError> {
        let c = self.client().await?;
        newest_version(&c, name, kind)
            .await?
            .ok_or_else(|| StoreError::FunctionNotFound {
                kind,
                name: name.to_owned(),
            })
    }

    /// Every deployed function version, newest first per name.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn list_functions(&self) -> Result<Vec<FunctionVersion>, StoreError> {
        let c = self.client().await?;
        let rows = query(
            &c,
            "SELECT name, kind, hash, deployed_at FROM functions ORDER BY name, seq DESC",
            &[],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FunctionVersion {
                    name: col(r, 0)?,
                    kind: FunctionKind::parse(&col::<String>(r, 1)?)?,
                    hash: col(r, 2)?,
                    deployed_at: to_u64(col(r, 3)?),
                })
            })
            .collect()
    }

    /// Whether `hash` is a deployed version of orchestrator `name`.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn orchestrator_version_exists(&self, name: &str, hash: &str) -> Result<bool, StoreError> {
        let c = self.client().await?;
        version_exists(&c, name, hash).await
    }

    // ---- instances -----------------------------------------------------

    /// Creates an instance in Pending with its ExecutionStarted message.
    ///
    /// # Errors
    /// [`StoreError::InstanceExists`] for an unfinished instance with that id.
    pub async fn create_instance(&self, new: NewExecution, now: Millis) -> Result<(), StoreError> {
        self.submit(Job::Create(Box::new(new), now)).await.map(drop)
    }

    /// Stores an instance as recorded, replacing one with the same id.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn import_instance(&self, row: InstanceRow, history: Vec<(Millis, Event)>) -> Result<(), StoreError> {
        write_tx!(self, |tx, _notes| {
            query_opt(
                &tx,
                "SELECT 1 FROM instances WHERE instance_id = $1 FOR UPDATE",
                &[&row.instance_id],
            )
            .await?;
            delete_instance_rows(&tx, &row.instance_id).await?;
            execute(
                &tx,
                "INSERT INTO instances (instance_id, execution_id, name, version, status, input, output, custom_status, created_at, updated_at, parent_instance, history_len)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &row.instance_id,
                    &row.execution_id,
                    &row.name,
                    &row.version,
                    &row.status.as_str(),
                    &row.input,
                    &row.output,
                    &row.custom_status,
                    &to_i64(row.created_at),
                    &to_i64(row.updated_at),
                    &row.parent_instance,
                    &(history.len() as i64),
                ],
            )
            .await?;
            insert_history(&tx, &row.instance_id, &row.execution_id, 0, &history).await
        })
    }

    /// Sends a message to a running instance (event, terminate, suspend, resume).
    ///
    /// # Errors
    /// [`StoreError::InstanceNotFound`]; [`StoreError::InstanceFinished`].
    pub async fn send_message(&self, instance_id: &str, event: Event, now: Millis) -> Result<(), StoreError> {
        write_tx!(self, |tx, notes| {
            match status_for_share(&tx, instance_id).await? {
                None => Err(StoreError::InstanceNotFound(instance_id.to_owned())),
                Some(status) if status.is_terminal() => Err(StoreError::InstanceFinished {
                    id: instance_id.to_owned(),
                    status,
                }),
                Some(_) => insert_message(&tx, notes, instance_id, None, now, now, &event).await,
            }
        })
    }

    /// One instance row.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn get_instance(&self, instance_id: &str) -> Result<Option<InstanceRow>, StoreError> {
        let c = self.client().await?;
        query_opt(
            &c,
            &format!("SELECT {INSTANCE_COLS} FROM instances WHERE instance_id = $1"),
            &[&instance_id],
        )
        .await?
        .map(|r| instance_from_row(&r))
        .transpose()
    }

    /// The current execution's history of an instance (one snapshot).
    ///
    /// # Errors
    /// [`StoreError::InstanceNotFound`]; decode errors.
    pub async fn get_history(&self, instance_id: &str) -> Result<Vec<(Millis, Event)>, StoreError> {
        let mut c = self.client().await?;
        let tx = snapshot(&mut c).await?;
        let exec: String = match query_opt(
            &tx,
            "SELECT execution_id FROM instances WHERE instance_id = $1",
            &[&instance_id],
        )
        .await?
        {
            Some(r) => col(&r, 0)?,
            None => return Err(StoreError::InstanceNotFound(instance_id.to_owned())),
        };
        let history = load_history(&tx, instance_id, &exec).await?;
        tx.commit().await.map_err(super::pg)?;
        Ok(history)
    }

    /// Instances matching `q`, ordered by creation time then id.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn list_instances(&self, q: InstanceQuery) -> Result<Vec<InstanceRow>, StoreError> {
        let mut sql = format!("SELECT {INSTANCE_COLS} FROM instances WHERE left(instance_id, 1) <> '@'");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut arg = |sql: &mut String, text: &str, v: Box<dyn ToSql + Sync + Send>| {
            args.push(v);
            sql.push_str(&text.replace('?', &format!("${}", args.len())));
        };
        if let Some(from) = q.created_from {
            arg(&mut sql, " AND created_at >= ?", Box::new(to_i64(from)));
        }
        if let Some(to) = q.created_to {
            arg(&mut sql, " AND created_at <= ?", Box::new(to_i64(to)));
        }
        if !q.statuses.is_empty() {
            arg(
                &mut sql,
                " AND status = ANY(?::text[])",
                Box::new(status_names(&q.statuses)),
            );
        }
        if let Some(prefix) = &q.id_prefix {
            arg(
                &mut sql,
                " AND starts_with(instance_id, ?::text)",
                Box::new(prefix.clone()),
            );
        }
        if let Some(name) = &q.name {
            arg(&mut sql, " AND name = ?::text", Box::new(name.clone()));
        }
        if let Some((at, id)) = &q.after {
            arg(&mut sql, " AND (created_at, instance_id) > (?", Box::new(to_i64(*at)));
            arg(&mut sql, ", ?::text)", Box::new(id.clone()));
        }
        sql.push_str(" ORDER BY created_at, instance_id");
        if let Some(top) = q.top {
            // A parameter, not a literal: one prepared statement per filter shape.
            arg(&mut sql, " LIMIT ?", Box::new(i64::from(top)));
        }
        let c = self.client().await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = query(&c, &sql, &params).await?;
        rows.iter().map(instance_from_row).collect()
    }

    // ---- engine --------------------------------------------------------

    /// Instances with a message visible at `now` that can be processed
    /// (a suspended instance only for resume / terminate) and that no other
    /// owner holds an unexpired lease on.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn due_instances(&self, now: Millis, limit: u32, owner: &str) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        let rows = query(
            &c,
            "SELECT DISTINCT m.instance_id FROM inbox m JOIN instances i ON i.instance_id = m.instance_id
              WHERE m.visible_at <= $1
                AND (i.status <> 'Suspended' OR m.kind = ANY($4))
                AND (i.lease_owner IS NULL OR i.lease_owner = $3 OR i.lease_expires <= $1)
              LIMIT $2",
            // Which messages wake a suspended instance is the decision core's rule.
            &[
                &to_i64(now),
                &i64::from(limit),
                &owner,
                &&crate::decide::WAKES_SUSPENDED[..],
            ],
        )
        .await?;
        rows.iter().map(|r| col(r, 0)).collect()
    }

    /// Takes or renews a lease on one instance.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn lease_instance(&self, instance_id: &str, lease: &Lease, now: Millis) -> Result<bool, StoreError> {
        // Grouped with this handle's other episodes' takes: one
        // autocommitted UPDATE for all of them (see [`super::reads`]).
        self.take_grouped(instance_id, lease, now).await
    }

    /// Renews the leases `lease.owner` holds among `ids`; returns the lost ones.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn renew_instance_leases(
        &self,
        ids: Vec<String>,
        lease: &Lease,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let kept = write_tx!(self, |tx, _notes| {
            query(
            &tx,
            "UPDATE instances SET lease_expires = $3 WHERE instance_id = ANY($1) AND lease_owner = $2 RETURNING instance_id",
            &[&ids, &lease.owner, &to_i64(now.saturating_add(lease.duration_ms))],
        )
        .await
        })?;
        let kept: std::collections::HashSet<String> =
            kept.iter().map(|r| col(r, 0)).collect::<Result<_, StoreError>>()?;
        Ok(ids.into_iter().filter(|id| !kept.contains(id)).collect())
    }

    /// Ends `owner`'s lease on one instance.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn release_instance(&self, instance_id: &str, owner: &str) -> Result<(), StoreError> {
        self.release_grouped(instance_id, owner).await
    }

    /// Voids every instance lease not held by `owner`.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn reclaim_leases(&self, owner: &str) -> Result<(), StoreError> {
        write_tx!(self, |tx, _notes| execute(
            &tx,
            "UPDATE instances SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner IS NOT NULL AND lease_owner <> $1",
            &[&owner],
        )
        .await)
        .map(drop)
    }

    /// Reads what an episode of `instance_id` needs, in one snapshot. The
    /// history is left out when `hot` (execution id, history length,
    /// version) matches the stored row.
    ///
    /// # Errors
    /// PostgreSQL and decode errors. `Ok(None)` when the instance is unknown.
    pub async fn load_episode(
        &self,
        instance_id: &str,
        now: Millis,
        hot: Option<(String, u64, String)>,
    ) -> Result<Option<EpisodeInput>, StoreError> {
        // Grouped with the other episodes' loads (see [`super::reads`]).
        self.load_grouped(instance_id, now, hot).await
    }

    /// Commits an episode: history, outbox, consumed messages and the
    /// instance row in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the stored history length is not
    /// `expected_history_len` or another owner holds the lease.
    pub async fn checkpoint(&self, cp: Checkpoint, lease: Lease) -> Result<(), StoreError> {
        self.submit(Job::Checkpoint(Box::new(cp), lease)).await.map(drop)
    }

    /// Drops inbox messages without an episode (e.g. for a finished instance).
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn discard_messages(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        write_tx!(self, |tx, _notes| execute(
            &tx,
            "DELETE FROM inbox WHERE id = ANY($1)",
            &[&ids]
        )
        .await)
        .map(drop)
    }

    /// Leases work items that are visible and unleased or whose lease
    /// expired (or, with `reclaim_all`, any lease not held by `owner`). A
    /// redelivered item's attempt is incremented. Items another host is
    /// claiming right now are skipped (`FOR UPDATE SKIP LOCKED`).
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn claim_work_items(
        &self,
        lease: Lease,
        now: Millis,
        reclaim_all: bool,
        limit: u32,
    ) -> Result<Vec<WorkItem>, StoreError> {
        let rows = write_tx!(self, |tx, _notes| query(
            &tx,
            &format!(
                "UPDATE work_items w
                    SET attempt = w.attempt + CASE WHEN w.lease_owner IS NULL THEN 0 ELSE 1 END,
                        lease_owner = $1, lease_expires = $2
                  WHERE w.id IN (SELECT id FROM work_items
                                  WHERE visible_at <= $3
                                    AND (lease_owner IS NULL OR lease_expires <= $3 OR ($4 AND lease_owner <> $1))
                                  ORDER BY id LIMIT $5
                                  FOR UPDATE SKIP LOCKED)
                  RETURNING {}",
                WORK_COLS
                    .split(", ")
                    .map(|c| format!("w.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[
                &lease.owner,
                &to_i64(now.saturating_add(lease.duration_ms)),
                &to_i64(now),
                &reclaim_all,
                &i64::from(limit)
            ],
        )
        .await)?;
        let mut items: Vec<WorkItem> = rows.iter().map(work_from_row).collect::<Result<_, _>>()?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Commits an activity attempt's end: delivers the outcome's message
    /// and deletes the item, or keeps it for the retry. Returns false when
    /// the lease was lost (nothing is written).
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn complete_work_item(
        &self,
        item: WorkItem,
        owner: String,
        outcome: ActivityOutcome,
        now: Millis,
    ) -> Result<bool, StoreError> {
        match self
            .submit(Job::Complete {
                item: Box::new(item),
                owner,
                outcome: Box::new(outcome),
                now,
            })
            .await?
        {
            Done::Kept(kept) => Ok(kept),
            Done::Unit => Ok(true),
        }
    }

    /// Releases every lease `owner` holds, instances and work items.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn release_leases(&self, owner: String) -> Result<(), StoreError> {
        write_tx!(self, |tx, _notes| {
            execute(
                &tx,
                "UPDATE work_items SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = $1",
                &[&owner],
            )
            .await?;
            execute(
                &tx,
                "UPDATE instances SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = $1",
                &[&owner],
            )
            .await
            .map(drop)
        })
    }

    /// Applies a rewind plan to a Failed instance: its history is replaced,
    /// the plan's work scheduled (unleased) and its message queued.
    ///
    /// # Errors
    /// [`StoreError::InstanceNotFound`]; [`StoreError::NotFailed`];
    /// [`StoreError::Conflict`] when the history changed since the plan.
    pub async fn rewind(&self, plan: RewindPlan) -> Result<(), StoreError> {
        write_tx!(self, |tx, notes| apply_rewind(&tx, notes, &plan).await)
    }

    /// Moves unfinished instances of orchestrator `name` among `ids` to
    /// version `to`, in one transaction. Returns how many moved.
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
        write_tx!(self, |tx, _notes| {
            lock_versions(&tx).await?;
            if !version_exists(&tx, name, to).await? {
                return Err(StoreError::VersionNotFound(to.to_owned()));
            }
            let moved = execute(
                &tx,
                "UPDATE instances SET version = $3, updated_at = $4
                  WHERE instance_id = ANY($1) AND name = $2 AND status <> ALL($5::text[])",
                &[&ids, &name, &to, &to_i64(now), &status_names(&RuntimeStatus::TERMINAL)],
            )
            .await?;
            Ok(usize::try_from(moved).unwrap_or(usize::MAX))
        })
    }

    /// Deletes component versions that no instance that may run again uses
    /// and that are not the newest version of any of their functions.
    /// Returns the pruned hashes.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn prune_unused_versions(&self) -> Result<Vec<String>, StoreError> {
        write_tx!(self, |tx, _notes| {
            lock_versions(&tx).await?;
            let rows = query(
                &tx,
                "SELECT c.hash FROM components c WHERE
                   NOT EXISTS (SELECT 1 FROM instances i WHERE i.version = c.hash AND i.status <> ALL($1::text[]))
                   AND NOT EXISTS (SELECT 1 FROM functions f WHERE f.hash = c.hash
                                     AND f.seq = (SELECT MAX(g.seq) FROM functions g WHERE g.name = f.name))
                 ORDER BY c.hash",
                &[&status_names(&RuntimeStatus::NEVER_AGAIN)],
            )
            .await?;
            let hashes: Vec<String> = rows.iter().map(|r| col(r, 0)).collect::<Result<_, _>>()?;
            execute(&tx, "DELETE FROM functions WHERE hash = ANY($1)", &[&hashes]).await?;
            execute(&tx, "DELETE FROM components WHERE hash = ANY($1)", &[&hashes]).await?;
            Ok(hashes)
        })
    }

    /// Counts rows of the queue tables: (inbox, work items).
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn queue_depths(&self) -> Result<(u64, u64), StoreError> {
        let c = self.client().await?;
        let r = query_opt(
            &c,
            "SELECT (SELECT COUNT(*) FROM inbox), (SELECT COUNT(*) FROM work_items)",
            &[],
        )
        .await?
        .ok_or_else(|| StoreError::Backend("no row".into()))?;
        Ok((to_u64(col(&r, 0)?), to_u64(col(&r, 1)?)))
    }
}

/// A read-only REPEATABLE READ transaction: one snapshot for several reads.
pub(super) async fn snapshot(c: &mut deadpool_postgres::Object) -> Result<Transaction<'_>, StoreError> {
    c.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(super::pg)
}

async fn load_history<C: GenericClient>(c: &C, id: &str, exec: &str) -> Result<Vec<(Millis, Event)>, StoreError> {
    let rows = query(
        c,
        "SELECT seq, timestamp, data FROM history WHERE instance_id = $1 AND execution_id = $2 ORDER BY seq",
        &[&id, &exec],
    )
    .await?;
    decode_history(id, &rows)
}

/// History rows (seq, timestamp, data) as events.
fn decode_history(id: &str, rows: &[Row]) -> Result<Vec<(Millis, Event)>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let seq: i64 = col(r, 0)?;
        let data: String = col(r, 2)?;
        let event = Event::decode(&data).map_err(|e| StoreError::Decode(format!("history {id}#{seq}: {e}")))?;
        out.push((to_u64(col(r, 1)?), event));
    }
    Ok(out)
}

/// Appends `events` to an execution's history from position `from`, in one
/// statement.
async fn insert_history(
    tx: &Transaction<'_>,
    id: &str,
    exec: &str,
    from: u64,
    events: &[(Millis, Event)],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = (0..events.len()).map(|i| to_i64(from + i as u64)).collect();
    let types: Vec<&str> = events.iter().map(|(_, e)| e.type_name()).collect();
    let stamps: Vec<i64> = events.iter().map(|(ts, _)| to_i64(*ts)).collect();
    let data: Vec<String> = events.iter().map(|(_, e)| e.encode()).collect();
    execute(
        tx,
        "INSERT INTO history (instance_id, execution_id, seq, event_type, timestamp, data)
         SELECT $1, $2, s, t, ts, d FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::text[]) AS u(s, t, ts, d)",
        &[&id, &exec, &seqs, &types, &stamps, &data],
    )
    .await
    .map(drop)
}

/// Commits an activity attempt's end inside `tx`: the item is deleted (or
/// kept for its retry) and the outcome's message delivered, in one
/// statement. `false` when `owner` no longer holds the item's lease
/// (nothing is written).
pub(super) async fn apply_completion(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    item: &WorkItem,
    owner: &str,
    outcome: &ActivityOutcome,
    now: Millis,
) -> Result<bool, StoreError> {
    let deliver = "INSERT INTO inbox (instance_id, execution_id, kind, visible_at, created_at, data)
                   SELECT $3, $4, $5, $6, $6, $7 FROM k";
    let event = &outcome.message;
    let delivered = match outcome.retry_at {
        Some(at) => {
            execute(
                tx,
                &format!(
                    "WITH k AS (UPDATE work_items SET attempt = attempt + 1, visible_at = $8, lease_owner = NULL, lease_expires = NULL
                                 WHERE id = $1 AND lease_owner = $2 RETURNING id)
                     {deliver}"
                ),
                &[
                    &item.id,
                    &owner,
                    &item.instance_id,
                    &item.execution_id,
                    &event.type_name(),
                    &to_i64(now),
                    &event.encode(),
                    &to_i64(at),
                ],
            )
            .await?
        }
        None => {
            execute(
                tx,
                &format!("WITH k AS (DELETE FROM work_items WHERE id = $1 AND lease_owner = $2 RETURNING id) {deliver}"),
                &[
                    &item.id,
                    &owner,
                    &item.instance_id,
                    &item.execution_id,
                    &event.type_name(),
                    &to_i64(now),
                    &event.encode(),
                ],
            )
            .await?
        }
    };
    if delivered == 0 {
        return Ok(false);
    }
    notes.inbox.push(item.instance_id.clone());
    Ok(true)
}

/// The work items of a checkpoint's outbox, in ONE statement (a fan-out of
/// a thousand activities is one round trip), leased to `lease.owner` and
/// announced in `notes` in creation order.
async fn insert_work_items(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    cp: &Checkpoint,
    lease: &Lease,
) -> Result<(), StoreError> {
    let mut task_ids: Vec<i64> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut inputs: Vec<&str> = Vec::new();
    let mut retries: Vec<Option<String>> = Vec::new();
    let mut attempts: Vec<i64> = Vec::new();
    for item in &cp.outbox {
        if let Outbox::WorkItem {
            task_id,
            name,
            input,
            retry,
            attempt,
        } = item
        {
            task_ids.push(i64::from(*task_id));
            names.push(name);
            inputs.push(input);
            retries.push(retry.as_ref().and_then(|r| serde_json::to_string(r).ok()));
            attempts.push(i64::from(*attempt));
        }
    }
    if task_ids.is_empty() {
        return Ok(());
    }
    let rows = query(
        tx,
        &format!(
            "INSERT INTO work_items (instance_id, execution_id, task_id, name, input, retry, attempt, first_scheduled, visible_at, lease_owner, lease_expires)
             SELECT $1, $2, u.t, u.n, u.i, u.r, u.a, $3, $3, $4, $5
               FROM unnest($6::bigint[], $7::text[], $8::text[], $9::text[], $10::bigint[]) WITH ORDINALITY AS u(t, n, i, r, a, o)
              ORDER BY u.o
             ON CONFLICT DO NOTHING RETURNING {WORK_COLS}"
        ),
        &[
            &cp.instance_id,
            &cp.execution_id,
            &to_i64(cp.now),
            &lease.owner,
            &to_i64(cp.now.saturating_add(lease.duration_ms)),
            &task_ids,
            &names,
            &inputs,
            &retries,
            &attempts,
        ],
    )
    .await?;
    let mut items: Vec<WorkItem> = rows.iter().map(work_from_row).collect::<Result<_, _>>()?;
    items.sort_by_key(|i| i.id);
    notes.work.extend(items);
    Ok(())
}

/// Applies one checkpoint inside `tx` (the one-job path; a group commit
/// writes most checkpoints with [`super::batch::checkpoints`]). Its guard is the instance row's
/// UPDATE itself (execution, history length, lease), which writes nothing
/// when it does not hold: [`StoreError::Conflict`] before anything else of
/// the checkpoint is written. The UPDATE's row lock serialises checkpoints
/// of one instance: a second one from the same history length waits, then
/// finds the first's length (READ COMMITTED re-checks the condition on the
/// newest row version) and changes nothing.
pub(super) async fn apply_checkpoint(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    cp: &Checkpoint,
    lease: &Lease,
) -> Result<(), StoreError> {
    let new_len = cp.expected_history_len + cp.events.len() as u64;
    let until = cp.lease_until.filter(|_| !cp.status.is_terminal());
    let output = cp.output.clone().flatten();
    let custom = cp.custom_status.clone().flatten();
    let owner = until.map(|_| lease.owner.as_str());
    // Guard, row update, history and consumed messages in ONE statement:
    // the history insert and the inbox delete act only when the guarded
    // UPDATE changed the row (data-modifying CTEs all run, each gated on it).
    let seqs: Vec<i64> = (0..cp.events.len())
        .map(|i| to_i64(cp.expected_history_len + i as u64))
        .collect();
    let types: Vec<&str> = cp.events.iter().map(|(_, e)| e.type_name()).collect();
    let stamps: Vec<i64> = cp.events.iter().map(|(ts, _)| to_i64(*ts)).collect();
    let data: Vec<String> = cp.events.iter().map(|(_, e)| e.encode()).collect();
    let guarded = query_opt(
        tx,
        "WITH g AS (
           UPDATE instances SET status = $2, history_len = $3, updated_at = $4,
                  output = CASE WHEN $5 THEN $6 ELSE output END,
                  custom_status = CASE WHEN $7 THEN $8 ELSE custom_status END,
                  lease_owner = $9, lease_expires = $10
            WHERE instance_id = $1 AND execution_id = $11 AND history_len = $12
              AND (lease_owner IS NULL OR lease_owner = $13 OR lease_expires IS NULL OR lease_expires <= $4)
            RETURNING instance_id),
         h AS (
           INSERT INTO history (instance_id, execution_id, seq, event_type, timestamp, data)
           SELECT $1, $11, s, t, ts, d FROM unnest($14::bigint[], $15::text[], $16::bigint[], $17::text[]) AS u(s, t, ts, d)
            WHERE EXISTS (SELECT 1 FROM g)),
         d AS (
           DELETE FROM inbox WHERE id = ANY($18) AND EXISTS (SELECT 1 FROM g))
         SELECT count(*) FROM g",
        &[
            &cp.instance_id,
            &cp.status.as_str(),
            &to_i64(new_len),
            &to_i64(cp.now),
            &cp.output.is_some(),
            &output,
            &cp.custom_status.is_some(),
            &custom,
            &owner,
            &until.map(to_i64),
            &cp.execution_id,
            &to_i64(cp.expected_history_len),
            &lease.owner,
            &seqs,
            &types,
            &stamps,
            &data,
            &cp.consumed,
        ],
    )
    .await?;
    let updated: i64 = match &guarded {
        Some(r) => col(r, 0)?,
        None => 0,
    };
    if updated != 1 {
        return Err(StoreError::Conflict(cp.instance_id.clone()));
    }
    if cp.status.is_terminal() || cp.status == RuntimeStatus::ContinuedAsNew {
        // Locks never outlive their holder's execution.
        super::locks::release_all(tx, notes, &cp.instance_id, cp.now).await?;
    }
    if cp.status.is_terminal() {
        notes.finished.push(cp.instance_id.clone());
        // Pending work of a finished execution is moot.
        execute(tx, "DELETE FROM work_items WHERE instance_id = $1", &[&cp.instance_id]).await?;
    }
    insert_work_items(tx, notes, cp, lease).await?;
    for item in &cp.outbox {
        if !matches!(item, Outbox::WorkItem { .. }) {
            apply_outbox(tx, notes, cp, Some(lease), item).await?;
        }
    }
    Ok(())
}

async fn apply_rewind(tx: &Transaction<'_>, notes: &mut Notes, plan: &RewindPlan) -> Result<(), StoreError> {
    let id = plan.instance_id.clone();
    let row = query_opt(
        tx,
        &format!("SELECT {INSTANCE_COLS} FROM instances WHERE instance_id = $1 FOR UPDATE"),
        &[&id],
    )
    .await?
    .map(|r| instance_from_row(&r))
    .transpose()?
    .ok_or_else(|| StoreError::InstanceNotFound(id.clone()))?;
    if row.status != RuntimeStatus::Failed {
        return Err(StoreError::NotFailed { id, status: row.status });
    }
    if row.execution_id != plan.execution_id || row.history_len != plan.expected_history_len {
        return Err(StoreError::Conflict(id));
    }
    execute(
        tx,
        "DELETE FROM history WHERE instance_id = $1 AND execution_id = $2",
        &[&id, &row.execution_id],
    )
    .await?;
    insert_history(tx, &id, &row.execution_id, 0, &plan.history).await?;
    // A Failed execution has no pending work; what the plan schedules
    // replaces anything left.
    execute(tx, "DELETE FROM work_items WHERE instance_id = $1", &[&id]).await?;
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
        apply_outbox(tx, notes, &cp, None, item).await?;
    }
    execute(
        tx,
        "UPDATE instances SET status = 'Running', output = NULL, history_len = $2, updated_at = $3 WHERE instance_id = $1",
        &[&id, &(plan.history.len() as i64), &to_i64(plan.now)],
    )
    .await?;
    let m = &plan.message;
    insert_message(
        tx,
        notes,
        &m.instance_id,
        m.execution_id.as_deref(),
        m.visible_at,
        plan.now,
        &m.event,
    )
    .await
}

/// Delivers a message unless its addressee is gone or finished.
pub(super) async fn deliver(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    m: &Message,
    now: Millis,
) -> Result<(), StoreError> {
    if status_for_share(tx, &m.instance_id)
        .await?
        .is_some_and(|s| !s.is_terminal())
    {
        insert_message(
            tx,
            notes,
            &m.instance_id,
            m.execution_id.as_deref(),
            m.visible_at,
            now,
            &m.event,
        )
        .await?;
    }
    Ok(())
}

/// Stores an outbox item that is not tied to the sending instance: a
/// message, a request to an entity, an orchestration start (an entity
/// batch's outbox has only these).
pub(super) async fn apply_outbox_of(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    item: &Outbox,
    now: Millis,
) -> Result<(), StoreError> {
    match item {
        Outbox::Message(m) => deliver(tx, notes, m, now).await,
        Outbox::ToEntity { name, message } => super::entities::deliver_to_entity(tx, notes, name, message, now).await,
        Outbox::Start(new) => {
            tx.batch_execute("SAVEPOINT start").await.map_err(super::pg)?;
            let mut start_notes = Notes::default();
            match insert_start(tx, &mut start_notes, new, now).await {
                Ok(()) => {
                    tx.batch_execute("RELEASE SAVEPOINT start").await.map_err(super::pg)?;
                    notes.append(&mut start_notes);
                    Ok(())
                }
                // An unfinished instance with that id runs already.
                Err(StoreError::InstanceExists(_)) => tx
                    .batch_execute("ROLLBACK TO SAVEPOINT start; RELEASE SAVEPOINT start")
                    .await
                    .map_err(super::pg),
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
async fn apply_outbox(
    tx: &Transaction<'_>,
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
            let rows = query(
                tx,
                &format!(
                    "INSERT INTO work_items (instance_id, execution_id, task_id, name, input, retry, attempt, first_scheduled, visible_at, lease_owner, lease_expires)
                     VALUES ($1, $2, $3, $4, $5, $6, $10, $7, $7, $8, $9)
                     ON CONFLICT DO NOTHING RETURNING {WORK_COLS}"
                ),
                &[
                    &cp.instance_id,
                    &cp.execution_id,
                    &i64::from(*task_id),
                    name,
                    input,
                    &retry_text,
                    &to_i64(cp.now),
                    &lease.map(|l| l.owner.as_str()),
                    &lease.map(|l| to_i64(cp.now.saturating_add(l.duration_ms))),
                    &i64::from(*attempt),
                ],
            )
            .await?;
            if lease.is_some() {
                for r in &rows {
                    notes.work.push(work_from_row(r)?);
                }
            }
        }
        Outbox::Message(_) | Outbox::ToEntity { .. } | Outbox::Start(_) => {
            apply_outbox_of(tx, notes, item, cp.now).await?;
        }
        Outbox::StartChild { child, refused } => {
            tx.batch_execute("SAVEPOINT child").await.map_err(super::pg)?;
            let mut child_notes = Notes::default();
            match insert_start(tx, &mut child_notes, child, cp.now).await {
                Ok(()) => {
                    tx.batch_execute("RELEASE SAVEPOINT child").await.map_err(super::pg)?;
                    notes.append(&mut child_notes);
                }
                Err(StoreError::InstanceExists(_)) => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT child; RELEASE SAVEPOINT child")
                        .await
                        .map_err(super::pg)?;
                    deliver(tx, notes, refused, cp.now).await?;
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
                tx,
                notes,
                &cp.instance_id,
                &cp.execution_id,
                *task_id,
                names,
                granted,
                cp.now,
            )
            .await?;
        }
        Outbox::ReleaseLocks { lock } => {
            super::locks::release(tx, notes, &cp.instance_id, Some(*lock), cp.now).await?;
        }
        Outbox::NextExecution(next) => {
            execute(tx, "DELETE FROM history WHERE instance_id = $1", &[&next.instance_id]).await?;
            execute(
                tx,
                "UPDATE instances SET execution_id = $2, version = $3, input = $4, history_len = 0, output = NULL WHERE instance_id = $1",
                &[&next.instance_id, &next.execution_id, &next.version, &next.input],
            )
            .await?;
            insert_message(
                tx,
                notes,
                &next.instance_id,
                Some(&next.execution_id),
                next.visible_at,
                cp.now,
                &next.started,
            )
            .await?;
        }
    }
    Ok(())
}
