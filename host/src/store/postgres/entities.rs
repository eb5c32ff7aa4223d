//! Entities on PostgreSQL: rows of `instances` with the id `@name@key`,
//! their requests in `inbox`, clients' idempotency keys in
//! `entity_requests`. Row locks stand in for SQLite's single writer: the
//! entity's row (`FOR UPDATE`) orders its commits; its lock row
//! (`FOR SHARE`) orders parking against the lock's release.

use deadpool_postgres::Transaction;

use super::ops::{INSTANCE_COLS, apply_outbox_of, insert_message, instance_from_row};
use super::{PostgresStore, col, execute, query, query_opt, to_i64, write_tx};
use crate::history::Millis;
use crate::store::{
    DEDUP_WINDOW_MS, EntityCommit, EntityQuery, InstanceRow, Lease, Message, Notes, PARKED_AT, StoreError,
};

/// Queues a request for an entity, creating its row.
pub(super) async fn deliver_to_entity(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    name: &str,
    m: &Message,
    now: Millis,
) -> Result<(), StoreError> {
    execute(
        tx,
        "INSERT INTO instances (instance_id, execution_id, name, version, status, created_at, updated_at, history_len)
         VALUES ($1, '', $2, '', 'Running', $3, $3, 0) ON CONFLICT (instance_id) DO NOTHING",
        &[&m.instance_id, &name, &to_i64(now)],
    )
    .await?;
    insert_message(
        tx,
        notes,
        &m.instance_id,
        m.execution_id.as_deref(),
        m.visible_at,
        now,
        &m.event,
    )
    .await
}

/// Makes the requests parked behind lock `name` (when it is an entity's)
/// due again: the lock was released.
pub(super) async fn unpark(tx: &Transaction<'_>, notes: &mut Notes, name: &str, now: Millis) -> Result<(), StoreError> {
    if !crate::ids::EntityId::is_entity_instance(name) {
        return Ok(());
    }
    let n = execute(
        tx,
        "UPDATE inbox SET visible_at = $3 WHERE instance_id = $1 AND visible_at = $2",
        &[&name, &to_i64(PARKED_AT), &to_i64(now)],
    )
    .await?;
    if n > 0 {
        notes.inbox.push(name.to_owned());
    }
    Ok(())
}

async fn apply_entity_commit(
    tx: &Transaction<'_>,
    notes: &mut Notes,
    e: &EntityCommit,
    lease: &Lease,
) -> Result<(), StoreError> {
    let conflict = || StoreError::Conflict(e.entity_id.clone());
    let stored = query_opt(
        tx,
        "SELECT lease_owner, lease_expires FROM instances WHERE instance_id = $1 FOR UPDATE",
        &[&e.entity_id],
    )
    .await?
    .ok_or_else(conflict)?;
    let (holder, expires): (Option<String>, Option<i64>) = (col(&stored, 0)?, col(&stored, 1)?);
    if !(holder.is_none()
        || holder.as_deref() == Some(lease.owner.as_str())
        || expires.is_none_or(|x| x <= to_i64(e.now)))
    {
        return Err(conflict());
    }
    // Every consumed request must still be queued: a batch that another
    // host applied first is refused whole.
    let deleted = execute(
        tx,
        "DELETE FROM inbox WHERE id = ANY($1) AND instance_id = $2",
        &[&e.consumed, &e.entity_id],
    )
    .await?;
    if deleted != e.consumed.len() as u64 {
        return Err(conflict());
    }
    if !e.parked.is_empty() {
        let now_holder: Option<String> = query_opt(
            tx,
            "SELECT instance_id FROM locks WHERE name = $1 FOR SHARE",
            &[&e.entity_id],
        )
        .await?
        .map(|r| col(&r, 0))
        .transpose()?;
        if now_holder != e.holder {
            return Err(conflict());
        }
        let parked = execute(
            tx,
            "UPDATE inbox SET visible_at = $3 WHERE id = ANY($1) AND instance_id = $2",
            &[&e.parked, &e.entity_id, &to_i64(PARKED_AT)],
        )
        .await?;
        if parked != e.parked.len() as u64 {
            return Err(conflict());
        }
    }
    let until = e.lease_until;
    execute(
        tx,
        "UPDATE instances SET output = $2, updated_at = CASE WHEN $3 THEN $4 ELSE updated_at END,
                lease_owner = $5, lease_expires = $6
          WHERE instance_id = $1",
        &[
            &e.entity_id,
            &e.state,
            &!e.consumed.is_empty(),
            &to_i64(e.now),
            &until.map(|_| lease.owner.as_str()),
            &until.map(to_i64),
        ],
    )
    .await?;
    for item in &e.outbox {
        apply_outbox_of(tx, notes, item, e.now).await?;
    }
    Ok(())
}

impl PostgresStore {
    /// See [`crate::store::Provider::send_to_entity`].
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn send_to_entity(
        &self,
        name: &str,
        message: Message,
        dedup: Option<String>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        write_tx!(self, |tx, notes| {
            if let Some(key) = &dedup {
                execute(
                    &tx,
                    "DELETE FROM entity_requests WHERE received_at < $1",
                    &[&to_i64(now.saturating_sub(DEDUP_WINDOW_MS))],
                )
                .await?;
                let fresh = execute(
                    &tx,
                    "INSERT INTO entity_requests (request_key, received_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[key, &to_i64(now)],
                )
                .await?;
                if fresh == 0 {
                    return Ok(false);
                }
            }
            deliver_to_entity(&tx, notes, name, &message, now).await?;
            Ok(true)
        })
    }

    /// See [`crate::store::Provider::lock_holder`].
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let c = self.client().await?;
        query_opt(&c, "SELECT instance_id FROM locks WHERE name = $1", &[&name])
            .await?
            .map(|r| col(&r, 0))
            .transpose()
    }

    /// See [`crate::store::Provider::commit_entity`].
    ///
    /// # Errors
    /// [`StoreError::Conflict`]; PostgreSQL errors.
    pub async fn commit_entity(&self, e: EntityCommit, lease: Lease) -> Result<(), StoreError> {
        write_tx!(self, |tx, notes| apply_entity_commit(&tx, notes, &e, &lease).await)
    }

    /// See [`crate::store::Provider::list_entities`].
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn list_entities(&self, q: EntityQuery) -> Result<Vec<InstanceRow>, StoreError> {
        let c = self.client().await?;
        let from = q.last_op_from.map(to_i64);
        let to = q.last_op_to.map(to_i64);
        let top = q.top.map(i64::from);
        let rows = query(
            &c,
            &format!(
                "SELECT {INSTANCE_COLS} FROM instances
                  WHERE instance_id >= '@' AND instance_id < 'A'
                    AND ($1::text IS NULL OR name = $1)
                    AND ($2::bigint IS NULL OR updated_at >= $2)
                    AND ($3::bigint IS NULL OR updated_at <= $3)
                    AND ($4 OR output IS NOT NULL)
                    AND ($5::text IS NULL OR instance_id > $5)
                  ORDER BY instance_id LIMIT $6"
            ),
            &[&q.name, &from, &to, &q.include_empty, &q.after, &top],
        )
        .await?;
        rows.iter().map(instance_from_row).collect()
    }

    /// See [`crate::store::Provider::purge_empty_entities`].
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn purge_empty_entities(&self, name: Option<String>) -> Result<u64, StoreError> {
        write_tx!(self, |tx, _notes| {
            execute(
                &tx,
                "DELETE FROM instances i
                  WHERE i.instance_id >= '@' AND i.instance_id < 'A' AND i.output IS NULL
                    AND ($1::text IS NULL OR i.name = $1)
                    AND NOT EXISTS (SELECT 1 FROM inbox m WHERE m.instance_id = i.instance_id)
                    AND NOT EXISTS (SELECT 1 FROM locks l WHERE l.name = i.instance_id)",
                &[&name],
            )
            .await
        })
    }

    /// See [`crate::store::Provider::delete_entity`].
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn delete_entity(&self, entity_id: &str) -> Result<bool, StoreError> {
        write_tx!(self, |tx, _notes| {
            execute(&tx, "DELETE FROM inbox WHERE instance_id = $1", &[&entity_id]).await?;
            Ok(execute(&tx, "DELETE FROM instances WHERE instance_id = $1", &[&entity_id]).await? > 0)
        })
    }
}
