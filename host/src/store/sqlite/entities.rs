//! Entities on SQLite: rows of `instances` with the id `@name@key`, their
//! requests in `inbox`, clients' idempotency keys in `entity_requests`.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::ops::{INSTANCE_COLS, insert_message, instance_rows, to_i64};
use crate::history::Millis;
use crate::store::{
    DEDUP_WINDOW_MS, EntityCommit, EntityQuery, InstanceRow, Lease, Message, Notes, PARKED_AT, StoreError,
};

/// Creates entity `name`'s row (`id` = `@name@key`) unless it exists.
fn ensure_entity(c: &Connection, id: &str, name: &str, now: Millis) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO instances (instance_id, execution_id, name, version, status, created_at, updated_at, history_len)
         VALUES (?1, '', ?2, '', 'Running', ?3, ?3, 0) ON CONFLICT (instance_id) DO NOTHING",
    )?
    .execute(params![id, name, to_i64(now)])?;
    Ok(())
}

/// Queues a request for an entity, creating its row.
pub(super) fn deliver_to_entity(
    c: &Connection,
    notes: &mut Notes,
    name: &str,
    m: &Message,
    now: Millis,
) -> Result<(), StoreError> {
    ensure_entity(c, &m.instance_id, name, now)?;
    insert_message(
        c,
        notes,
        &m.instance_id,
        m.execution_id.as_deref(),
        m.visible_at,
        now,
        &m.event,
    )
}

/// Makes the requests parked behind lock `name` (when it is an entity's)
/// due again: the lock was released.
pub(super) fn unpark(c: &Connection, notes: &mut Notes, name: &str, now: Millis) -> Result<(), StoreError> {
    if !crate::ids::EntityId::is_entity_instance(name) {
        return Ok(());
    }
    let n = c
        .prepare_cached("UPDATE inbox SET visible_at = ?3 WHERE instance_id = ?1 AND visible_at = ?2")?
        .execute(params![name, to_i64(PARKED_AT), to_i64(now)])?;
    if n > 0 {
        notes.inbox.push(name.to_owned());
    }
    Ok(())
}

fn holder_of(c: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(c.prepare_cached("SELECT instance_id FROM locks WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

fn apply_entity_commit(c: &Connection, notes: &mut Notes, e: &EntityCommit, lease: &Lease) -> Result<(), StoreError> {
    let conflict = || StoreError::Conflict(e.entity_id.clone());
    let stored: Option<(Option<String>, Option<i64>)> = c
        .prepare_cached("SELECT lease_owner, lease_expires FROM instances WHERE instance_id = ?1")?
        .query_row([&e.entity_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match stored {
        Some((holder, expires))
            if holder.is_none()
                || holder.as_deref() == Some(lease.owner.as_str())
                || expires.is_none_or(|x| x <= to_i64(e.now)) => {}
        _ => return Err(conflict()),
    }
    // Every consumed request must still be queued: a batch that another
    // engine applied first is refused whole.
    {
        let mut st = c.prepare_cached("DELETE FROM inbox WHERE id = ?1 AND instance_id = ?2")?;
        for id in &e.consumed {
            if st.execute(params![id, e.entity_id])? != 1 {
                return Err(conflict());
            }
        }
    }
    if !e.parked.is_empty() {
        if holder_of(c, &e.entity_id)? != e.holder {
            return Err(conflict());
        }
        let mut st = c.prepare_cached("UPDATE inbox SET visible_at = ?3 WHERE id = ?1 AND instance_id = ?2")?;
        for id in &e.parked {
            if st.execute(params![id, e.entity_id, to_i64(PARKED_AT)])? != 1 {
                return Err(conflict());
            }
        }
    }
    let until = e.lease_until;
    c.prepare_cached(
        "UPDATE instances SET output = ?2, updated_at = CASE WHEN ?3 THEN ?4 ELSE updated_at END,
                lease_owner = ?5, lease_expires = ?6
          WHERE instance_id = ?1",
    )?
    .execute(params![
        e.entity_id,
        e.state,
        !e.consumed.is_empty(),
        to_i64(e.now),
        until.map(|_| lease.owner.as_str()),
        until.map(to_i64),
    ])?;
    for item in &e.outbox {
        super::ops::apply_outbox_of(c, notes, item, e.now)?;
    }
    Ok(())
}

impl SqliteStore {
    /// See [`crate::store::Provider::send_to_entity`].
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn send_to_entity(
        &self,
        name: &str,
        message: Message,
        dedup: Option<String>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(move |c, notes| {
            if let Some(key) = &dedup {
                c.prepare_cached("DELETE FROM entity_requests WHERE received_at < ?1")?
                    .execute([to_i64(now.saturating_sub(DEDUP_WINDOW_MS))])?;
                let fresh = c
                    .prepare_cached(
                        "INSERT INTO entity_requests (request_key, received_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![key, to_i64(now)])?;
                if fresh == 0 {
                    return Ok(false);
                }
            }
            deliver_to_entity(c, notes, &name, &message, now)?;
            Ok(true)
        })
        .await
    }

    /// See [`crate::store::Provider::lock_holder`].
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| holder_of(c, &name)).await
    }

    /// See [`crate::store::Provider::commit_entity`].
    ///
    /// # Errors
    /// [`StoreError::Conflict`]; SQLite errors.
    pub async fn commit_entity(&self, e: EntityCommit, lease: Lease) -> Result<(), StoreError> {
        self.write(move |c, notes| apply_entity_commit(c, notes, &e, &lease))
            .await
    }

    /// See [`crate::store::Provider::list_entities`].
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn list_entities(&self, q: EntityQuery) -> Result<Vec<InstanceRow>, StoreError> {
        self.read(move |c| {
            let mut sql =
                format!("SELECT {INSTANCE_COLS} FROM instances WHERE instance_id >= '@' AND instance_id < 'A'");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(name) = &q.name {
                sql.push_str(" AND name = ?");
                args.push(name.clone().into());
            }
            if let Some(from) = q.last_op_from {
                sql.push_str(" AND updated_at >= ?");
                args.push(to_i64(from).into());
            }
            if let Some(to) = q.last_op_to {
                sql.push_str(" AND updated_at <= ?");
                args.push(to_i64(to).into());
            }
            if !q.include_empty {
                sql.push_str(" AND output IS NOT NULL");
            }
            if let Some(after) = &q.after {
                sql.push_str(" AND instance_id > ?");
                args.push(after.clone().into());
            }
            sql.push_str(" ORDER BY instance_id");
            if let Some(top) = q.top {
                sql.push_str(&format!(" LIMIT {top}"));
            }
            Ok(instance_rows(c, &sql, args)?)
        })
        .await
    }

    /// See [`crate::store::Provider::purge_empty_entities`].
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn purge_empty_entities(&self, name: Option<String>) -> Result<u64, StoreError> {
        self.write(move |c, _| {
            let n = c
                .prepare_cached(
                    "DELETE FROM instances
                      WHERE instance_id >= '@' AND instance_id < 'A' AND output IS NULL
                        AND (?1 IS NULL OR name = ?1)
                        AND NOT EXISTS (SELECT 1 FROM inbox m WHERE m.instance_id = instances.instance_id)
                        AND NOT EXISTS (SELECT 1 FROM locks l WHERE l.name = instances.instance_id)",
                )?
                .execute([name])?;
            Ok(n as u64)
        })
        .await
    }

    /// See [`crate::store::Provider::delete_entity`].
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn delete_entity(&self, entity_id: &str) -> Result<bool, StoreError> {
        let id = entity_id.to_owned();
        self.write(move |c, _| {
            c.prepare_cached("DELETE FROM inbox WHERE instance_id = ?1")?
                .execute([&id])?;
            let n = c
                .prepare_cached("DELETE FROM instances WHERE instance_id = ?1")?
                .execute([&id])?;
            Ok(n > 0)
        })
        .await
    }
}
