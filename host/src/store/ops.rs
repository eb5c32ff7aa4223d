//! Typed operations on the task hub. Every write here runs inside the
//! writer's group-commit transaction (see the parent module).

use std::fmt;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{Notes, Store, StoreError};
use crate::history::{Event, Failure, Millis, ParentRef, RetryPolicy, TaskId};

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

    /// Completed, Failed, Canceled or Terminated: nothing more will happen.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled | Self::Terminated)
    }
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
}

impl FunctionKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orchestrator => "orchestrator",
            Self::Activity => "activity",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "orchestrator" => Ok(Self::Orchestrator),
            "activity" => Ok(Self::Activity),
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

const INSTANCE_COLS: &str = "instance_id, execution_id, name, version, status, input, output, custom_status, created_at, updated_at, parent_instance, history_len";

fn instance_from_row(r: &Row<'_>) -> rusqlite::Result<InstanceRow> {
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

/// Everything an episode needs, read in one snapshot.
#[derive(Debug)]
pub struct EpisodeInput {
    pub instance: InstanceRow,
    pub messages: Vec<InboxMessage>,
    /// The current execution's history, unless the caller's hot copy is current.
    pub history: Option<Vec<(Millis, Event)>>,
}

/// Side effects of a checkpoint, committed with it.
#[derive(Debug, Clone)]
pub enum Outbox {
    /// An activity work item for this instance.
    WorkItem {
        task_id: TaskId,
        name: String,
        input: String,
        retry: Option<RetryPolicy>,
    },
    /// A message to an instance (a timer to self, a result to the parent).
    Message {
        instance_id: String,
        execution_id: Option<String>,
        visible_at: Millis,
        event: Event,
    },
    /// Start a child orchestration.
    StartChild {
        instance_id: String,
        name: String,
        input: String,
        parent: ParentRef,
    },
    /// Request the locks of a critical section (names sorted).
    AcquireLocks { task_id: TaskId, names: Vec<String> },
    /// Release the locks of the section entered with task `lock`.
    ReleaseLocks { lock: TaskId },
    /// Start the next execution of this instance (continue-as-new).
    NextExecution {
        input: String,
        carried_events: Vec<(String, String)>,
        parent: Option<ParentRef>,
        /// When the next execution starts (later for a retry's delay).
        visible_at: Millis,
    },
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
}

/// Lease given to activity work items created by a checkpoint.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub duration_ms: u64,
}

/// Filter of [`Store::list_instances`].
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    pub created_from: Option<Millis>,
    pub created_to: Option<Millis>,
    pub statuses: Vec<RuntimeStatus>,
    pub id_prefix: Option<String>,
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

/// A request to start an instance.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub instance_id: String,
    pub name: String,
    pub input: String,
    /// Pin to this component hash instead of the newest version.
    pub version: Option<String>,
    pub now: Millis,
}

fn to_i64(v: u64) -> i64 {
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

/// Creates (or re-creates a finished) instance and its ExecutionStarted message.
#[expect(
    clippy::too_many_arguments,
    reason = "one internal call shape shared by start, child start and restart"
)]
fn insert_start(
    c: &Connection,
    notes: &mut Notes,
    instance_id: &str,
    name: &str,
    version: &str,
    input: &str,
    parent: Option<ParentRef>,
    now: Millis,
) -> Result<(), StoreError> {
    match status_of(c, instance_id)? {
        Some(s) if !s.is_terminal() => return Err(StoreError::InstanceExists(instance_id.to_owned())),
        Some(_) => delete_instance_rows(c, instance_id)?,
        None => {}
    }
    let execution_id = crate::ids::random_hex();
    c.prepare_cached(
        "INSERT INTO instances (instance_id, execution_id, name, version, status, input, created_at, updated_at, parent_instance, history_len)
         VALUES (?1, ?2, ?3, ?4, 'Pending', ?5, ?6, ?6, ?7, 0)",
    )?
    .execute(params![
        instance_id,
        execution_id,
        name,
        version,
        input,
        to_i64(now),
        parent.as_ref().map(|p| p.instance_id.as_str())
    ])?;
    let started = Event::ExecutionStarted {
        name: name.to_owned(),
        input: input.to_owned(),
        execution_id: execution_id.clone(),
        version: version.to_owned(),
        parent,
        carried_events: Vec::new(),
    };
    insert_message(c, notes, instance_id, Some(&execution_id), now, now, &started)
}

impl Store {
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
    /// [`StoreError::InstanceExists`] for an unfinished instance with that
    /// id; [`StoreError::FunctionNotFound`] / [`StoreError::VersionNotFound`].
    pub async fn start_instance(&self, req: StartRequest) -> Result<(), StoreError> {
        self.write(move |c, notes| {
            let version = match req.version {
                Some(v) => {
                    if !version_exists(c, &req.name, &v)? {
                        return Err(StoreError::VersionNotFound(v));
                    }
                    v
                }
                None => newest_version(c, &req.name, FunctionKind::Orchestrator)?.ok_or_else(|| {
                    StoreError::FunctionNotFound {
                        kind: FunctionKind::Orchestrator,
                        name: req.name.clone(),
                    }
                })?,
            };
            insert_start(
                c,
                notes,
                &req.instance_id,
                &req.name,
                &version,
                &req.input,
                None,
                req.now,
            )
        })
        .await
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
            let mut sql = format!("SELECT {INSTANCE_COLS} FROM instances WHERE 1=1");
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
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), instance_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    // ---- engine --------------------------------------------------------

    /// Instances with a message visible at `now` that can be processed
    /// (a suspended instance only for resume / terminate).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn due_instances(&self, now: Millis, limit: u32) -> Result<Vec<String>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT m.instance_id FROM inbox m JOIN instances i ON i.instance_id = m.instance_id
                 WHERE m.visible_at <= ?1
                   AND (i.status != 'Suspended' OR m.kind IN ('ExecutionResumed', 'ExecutionTerminated'))
                 LIMIT ?2",
            )?;
            let rows = st.query_map(params![to_i64(now), limit], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
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

    /// Commits an activity's outcome: deletes the work item and delivers the
    /// result to the instance, or (with `retry_at`) schedules the next attempt.
    /// Returns false when the lease was lost (the result is dropped: the
    /// item's new owner delivers it).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn complete_work_item(
        &self,
        item: WorkItem,
        owner: String,
        outcome: Result<String, Failure>,
        retry_at: Option<Millis>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.write(move |c, notes| {
            let (event, kept) = match (outcome, retry_at) {
                (Err(failure), Some(at)) => {
                    let n = c
                        .prepare_cached(
                            "UPDATE work_items SET attempt = attempt + 1, visible_at = ?3, lease_owner = NULL, lease_expires = NULL
                              WHERE id = ?1 AND lease_owner = ?2",
                        )?
                        .execute(params![item.id, owner, to_i64(at)])?;
                    let e = Event::TaskRetrying {
                        task_id: item.task_id,
                        attempt: item.attempt,
                        failure,
                        next_attempt_at: at,
                    };
                    (e, n)
                }
                (outcome, _) => {
                    let n = c
                        .prepare_cached("DELETE FROM work_items WHERE id = ?1 AND lease_owner = ?2")?
                        .execute(params![item.id, owner])?;
                    let e = match outcome {
                        Ok(result) => Event::TaskCompleted {
                            task_id: item.task_id,
                            result,
                        },
                        Err(failure) => Event::TaskFailed {
                            task_id: item.task_id,
                            failure,
                        },
                    };
                    (e, n)
                }
            };
            if kept == 0 {
                return Ok(false);
            }
            insert_message(c, notes, &item.instance_id, Some(&item.execution_id), now, now, &event)?;
            Ok(true)
        })
        .await
    }

    /// Rewinds a Failed instance: removes its failure and the failed task
    /// results from history, reschedules every task without a result, and
    /// queues an `ExecutionRewound` message so it runs again from its last
    /// good state.
    ///
    /// # Errors
    /// [`StoreError::InstanceNotFound`]; [`StoreError::NotFailed`].
    pub async fn rewind_instance(
        &self,
        instance_id: &str,
        reason: Option<String>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let id = instance_id.to_owned();
        self.write(move |c, notes| {
            let row = c
                .prepare_cached(&format!("SELECT {INSTANCE_COLS} FROM instances WHERE instance_id = ?1"))?
                .query_row([&id], instance_from_row)
                .optional()?
                .ok_or_else(|| StoreError::InstanceNotFound(id.clone()))?;
            if row.status != RuntimeStatus::Failed {
                return Err(StoreError::NotFailed { id, status: row.status });
            }
            let history = load_history(c, &id, &row.execution_id)?;
            let kept: Vec<&(Millis, Event)> = history
                .iter()
                .filter(|(_, e)| {
                    !matches!(
                        e,
                        Event::TaskFailed { .. } | Event::SubOrchestrationInstanceFailed { .. } | Event::ExecutionCompleted { .. }
                    )
                })
                .collect();
            c.prepare_cached("DELETE FROM history WHERE instance_id = ?1 AND execution_id = ?2")?
                .execute(params![id, row.execution_id])?;
            let mut insert = c.prepare_cached(
                "INSERT INTO history (instance_id, execution_id, seq, event_type, timestamp, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (seq, (ts, e)) in kept.iter().enumerate() {
                insert.execute(params![id, row.execution_id, seq as i64, e.type_name(), to_i64(*ts), e.encode()])?;
            }
            let done: std::collections::HashSet<TaskId> = kept
                .iter()
                .filter_map(|(_, e)| match e {
                    Event::TaskCompleted { task_id, .. }
                    | Event::TimerFired { task_id, .. }
                    | Event::SubOrchestrationInstanceCompleted { task_id, .. } => Some(*task_id),
                    _ => None,
                })
                .collect();
            let cp = Checkpoint {
                instance_id: id.clone(),
                execution_id: row.execution_id.clone(),
                expected_history_len: kept.len() as u64,
                consumed: Vec::new(),
                events: Vec::new(),
                status: RuntimeStatus::Running,
                output: Some(None),
                custom_status: None,
                outbox: Vec::new(),
                now,
            };
            let lease = Lease {
                owner: String::new(),
                duration_ms: 0,
            };
            for (_, e) in &kept {
                let item = match e {
                    Event::TaskScheduled { task_id, name, input, retry } if !done.contains(task_id) => Outbox::WorkItem {
                        task_id: *task_id,
                        name: name.clone(),
                        input: input.clone(),
                        retry: retry.clone(),
                    },
                    Event::TimerCreated { task_id, fire_at } if !done.contains(task_id) => Outbox::Message {
                        instance_id: id.clone(),
                        execution_id: Some(row.execution_id.clone()),
                        visible_at: *fire_at,
                        event: Event::TimerFired { task_id: *task_id, fire_at: *fire_at },
                    },
                    Event::SubOrchestrationInstanceCreated { task_id, name, instance_id, input, .. }
                        if !done.contains(task_id) =>
                    {
                        Outbox::StartChild {
                            instance_id: instance_id.clone(),
                            name: name.clone(),
                            input: input.clone(),
                            parent: ParentRef {
                                instance_id: id.clone(),
                                execution_id: row.execution_id.clone(),
                                task_id: *task_id,
                                retry: None,
                                attempt: 1,
                                first_scheduled: now,
                            },
                        }
                    }
                    _ => continue,
                };
                if matches!(item, Outbox::WorkItem { .. }) {
                    // Unleased: any engine's claim loop picks it up.
                    c.prepare_cached("DELETE FROM work_items WHERE instance_id = ?1 AND execution_id = ?2 AND task_id = ?3")?
                        .execute(params![id, row.execution_id, item_task(&item)])?;
                }
                apply_outbox(c, notes, &cp, &lease, &item)?;
                if let Outbox::WorkItem { task_id, .. } = &item {
                    // Attempts keep counting across a rewind.
                    let earlier = history
                        .iter()
                        .filter(|(_, e)| matches!(e, Event::TaskRetrying { task_id: t, .. } | Event::TaskFailed { task_id: t, .. } if t == task_id))
                        .count();
                    c.prepare_cached("UPDATE work_items SET attempt = ?4 WHERE instance_id = ?1 AND execution_id = ?2 AND task_id = ?3")?
                        .execute(params![id, row.execution_id, task_id, earlier as i64 + 1])?;
                }
            }
            c.prepare_cached(
                "UPDATE instances SET status = 'Running', output = NULL, history_len = ?2, updated_at = ?3 WHERE instance_id = ?1",
            )?
            .execute(params![id, kept.len() as i64, to_i64(now)])?;
            // Rescheduled work is unleased: the engines' claim loop takes it.
            c.prepare_cached("UPDATE work_items SET lease_owner = NULL, lease_expires = NULL WHERE instance_id = ?1 AND lease_owner = ''")?
                .execute([&id])?;
            notes.work.clear();
            insert_message(c, notes, &id, Some(&row.execution_id), now, now, &Event::ExecutionRewound { reason })
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
            let mut st = c.prepare_cached(
                "UPDATE instances SET version = ?3, updated_at = ?4
                  WHERE instance_id = ?1 AND name = ?2 AND status NOT IN ('Completed','Failed','Canceled','Terminated')",
            )?;
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
                let mut st = c.prepare(
                    "SELECT hash FROM components WHERE
                       hash NOT IN (SELECT version FROM instances WHERE status NOT IN ('Completed','Failed','Canceled','Terminated'))
                       AND hash NOT IN (SELECT f.hash FROM functions f WHERE f.seq = (SELECT MAX(g.seq) FROM functions g WHERE g.name = f.name))",
                )?;
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

fn item_task(item: &Outbox) -> TaskId {
    match item {
        Outbox::WorkItem { task_id, .. } => *task_id,
        _ => 0,
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

fn apply_checkpoint(c: &Connection, notes: &mut Notes, cp: &Checkpoint, lease: &Lease) -> Result<(), StoreError> {
    let stored: Option<(String, i64)> = c
        .prepare_cached("SELECT execution_id, history_len FROM instances WHERE instance_id = ?1")?
        .query_row([&cp.instance_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match stored {
        Some((exec, len)) if exec == cp.execution_id && len as u64 == cp.expected_history_len => {}
        _ => return Err(StoreError::Conflict(cp.instance_id.clone())),
    }
    {
        let mut st = c.prepare_cached(
            "INSERT INTO history (instance_id, execution_id, seq, event_type, timestamp, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (i, (ts, event)) in cp.events.iter().enumerate() {
            st.execute(params![
                cp.instance_id,
                cp.execution_id,
                to_i64(cp.expected_history_len + i as u64),
                event.type_name(),
                to_i64(*ts),
                event.encode()
            ])?;
        }
    }
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
    if cp.status.is_terminal() {
        notes.finished.push(cp.instance_id.clone());
        // Pending work of a finished execution is moot.
        c.prepare_cached("DELETE FROM work_items WHERE instance_id = ?1")?
            .execute([&cp.instance_id])?;
    }
    for item in &cp.outbox {
        apply_outbox(c, notes, cp, lease, item)?;
    }
    Ok(())
}

fn apply_outbox(
    c: &Connection,
    notes: &mut Notes,
    cp: &Checkpoint,
    lease: &Lease,
    item: &Outbox,
) -> Result<(), StoreError> {
    match item {
        Outbox::WorkItem {
            task_id,
            name,
            input,
            retry,
        } => {
            let retry_text = retry.as_ref().and_then(|r| serde_json::to_string(r).ok());
            let mut st = c.prepare_cached(&format!(
                "INSERT INTO work_items (instance_id, execution_id, task_id, name, input, retry, attempt, first_scheduled, visible_at, lease_owner, lease_expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7, ?8, ?9)
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
                    lease.owner,
                    to_i64(cp.now.saturating_add(lease.duration_ms))
                ],
                work_from_row,
            )?;
            for row in rows {
                notes.work.push(row?);
            }
        }
        Outbox::Message {
            instance_id,
            execution_id,
            visible_at,
            event,
        } => {
            // A parent that is gone (purged) simply does not get the result.
            if status_of(c, instance_id)?.is_some_and(|s| !s.is_terminal()) {
                insert_message(
                    c,
                    notes,
                    instance_id,
                    execution_id.as_deref(),
                    *visible_at,
                    cp.now,
                    event,
                )?;
            }
        }
        Outbox::StartChild {
            instance_id,
            name,
            input,
            parent,
        } => {
            let refuse = |failure: Failure, notes: &mut Notes| {
                let event = Event::SubOrchestrationInstanceFailed {
                    task_id: parent.task_id,
                    failure,
                };
                insert_message(
                    c,
                    notes,
                    &parent.instance_id,
                    Some(&parent.execution_id),
                    cp.now,
                    cp.now,
                    &event,
                )
            };
            match newest_version(c, name, FunctionKind::Orchestrator)? {
                None => refuse(
                    Failure::new("NotFound", format!("no orchestrator named {name:?} is deployed")),
                    notes,
                )?,
                Some(version) => {
                    c.execute_batch("SAVEPOINT child")?;
                    match insert_start(
                        c,
                        notes,
                        instance_id,
                        name,
                        &version,
                        input,
                        Some(parent.clone()),
                        cp.now,
                    ) {
                        Ok(()) => c.execute_batch("RELEASE child")?,
                        Err(StoreError::InstanceExists(id)) => {
                            c.execute_batch("ROLLBACK TO child; RELEASE child")?;
                            refuse(
                                Failure::new(
                                    "InstanceExists",
                                    format!("sub-orchestration instance {id:?} already exists and is not finished"),
                                ),
                                notes,
                            )?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Outbox::AcquireLocks { task_id, names } => {
            super::locks::request(c, notes, &cp.instance_id, &cp.execution_id, *task_id, names, cp.now)?;
        }
        Outbox::ReleaseLocks { lock } => {
            super::locks::release(c, notes, &cp.instance_id, Some(*lock), cp.now)?;
        }
        Outbox::NextExecution {
            input,
            carried_events,
            parent,
            visible_at,
        } => {
            let name: String = c.query_row(
                "SELECT name FROM instances WHERE instance_id = ?1",
                [&cp.instance_id],
                |r| r.get(0),
            )?;
            // continue-as-new moves to the newest version of the orchestrator.
            let version =
                newest_version(c, &name, FunctionKind::Orchestrator)?.ok_or(StoreError::FunctionNotFound {
                    kind: FunctionKind::Orchestrator,
                    name: name.clone(),
                })?;
            let execution_id = crate::ids::random_hex();
            c.prepare_cached("DELETE FROM history WHERE instance_id = ?1")?
                .execute([&cp.instance_id])?;
            c.prepare_cached(
                "UPDATE instances SET execution_id = ?2, version = ?3, input = ?4, history_len = 0, output = NULL WHERE instance_id = ?1",
            )?
            .execute(params![cp.instance_id, execution_id, version, input])?;
            let started = Event::ExecutionStarted {
                name,
                input: input.clone(),
                execution_id: execution_id.clone(),
                version,
                parent: parent.clone(),
                carried_events: carried_events.clone(),
            };
            insert_message(
                c,
                notes,
                &cp.instance_id,
                Some(&execution_id),
                *visible_at,
                cp.now,
                &started,
            )?;
        }
    }
    Ok(())
}
