//! Management queries of the task hub: purge, delete everything, counts,
//! component removal. Writes run in the writer's group-commit transaction
//! like every other write (see the parent module); the outcome types live in
//! [`crate::admin`].

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::ops::status_list;
use crate::history::Millis;
use crate::store::{PurgeOne, RemoveComponent, RuntimeStatus, StoreError};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Deletes everything stored for one instance.
fn delete_rows(c: &Connection, id: &str) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM history WHERE instance_id = ?1",
        "DELETE FROM inbox WHERE instance_id = ?1",
        "DELETE FROM work_items WHERE instance_id = ?1",
        "DELETE FROM instances WHERE instance_id = ?1",
    ] {
        c.prepare_cached(sql)?.execute([id])?;
    }
    Ok(())
}

impl SqliteStore {
    /// Purges one instance if it is terminal.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn purge_instance(&self, instance_id: &str) -> Result<PurgeOne, StoreError> {
        let id = instance_id.to_owned();
        self.write(move |c, _| {
            let status: Option<String> = c
                .prepare_cached("SELECT status FROM instances WHERE instance_id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            let Some(status) = status else {
                return Ok(PurgeOne::NotFound);
            };
            let status = RuntimeStatus::parse(&status)
                .ok_or_else(|| StoreError::Decode(format!("instance {id:?} has unknown status {status:?}")))?;
            if !status.is_terminal() {
                return Ok(PurgeOne::NotTerminal(status));
            }
            delete_rows(c, &id)?;
            Ok(PurgeOne::Purged)
        })
        .await
    }

    /// Purges at most `limit` terminal instances created in `[from, to]`
    /// whose status is in `statuses` (all terminal statuses when empty);
    /// returns how many were purged. Callers repeat until it returns less
    /// than `limit`, so that no single transaction holds the writer long.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn purge_terminal_batch(
        &self,
        from: Millis,
        to: Millis,
        statuses: Vec<RuntimeStatus>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let wanted: Vec<RuntimeStatus> = RuntimeStatus::TERMINAL
            .into_iter()
            .filter(|s| statuses.is_empty() || statuses.contains(s))
            .collect();
        if wanted.is_empty() {
            return Ok(0);
        }
        self.write(move |c, _| {
            let marks = vec!["?"; wanted.len()].join(",");
            let sql = format!(
                "SELECT instance_id FROM instances WHERE created_at >= ? AND created_at <= ? AND status IN ({marks}) ORDER BY created_at LIMIT ?"
            );
            let mut args: Vec<rusqlite::types::Value> = vec![to_i64(from).into(), to_i64(to).into()];
            args.extend(wanted.iter().map(|s| s.as_str().to_owned().into()));
            args.push(i64::from(limit).into());
            let ids: Vec<String> = {
                let mut st = c.prepare(&sql)?;
                let rows = st.query_map(rusqlite::params_from_iter(args), |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for id in &ids {
                delete_rows(c, id)?;
            }
            Ok(ids.len() as u64)
        })
        .await
    }

    /// Deletes every instance, message, work item, lock and component of
    /// the task hub (the schema stays). Returns the number of instances deleted.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn delete_all(&self) -> Result<u64, StoreError> {
        self.write(|c, _| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM instances", [], |r| r.get(0))?;
            c.execute_batch(
                "DELETE FROM history; DELETE FROM inbox; DELETE FROM work_items; DELETE FROM instances;
                 DELETE FROM locks; DELETE FROM lock_requests; DELETE FROM entity_requests;
                 DELETE FROM functions; DELETE FROM components;",
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// Number of instances per runtime status (statuses without instances
    /// are absent).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn instance_counts(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT status, COUNT(*) FROM instances WHERE substr(instance_id, 1, 1) <> '@' GROUP BY status",
            )?;
            Ok(status_counts(st.query([])?)?)
        })
        .await
    }

    /// Removes a deployed component version that no instance that may still
    /// run (not Completed, Terminated or Canceled) is pinned to.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn remove_component(&self, hash: &str) -> Result<RemoveComponent, StoreError> {
        let hash = hash.to_owned();
        self.write(move |c, _| {
            let known = c
                .prepare_cached("SELECT 1 FROM components WHERE hash = ?1")?
                .query_row([&hash], |_| Ok(()))
                .optional()?
                .is_some();
            if !known {
                return Ok(RemoveComponent::NotFound);
            }
            // Completed, Terminated and Canceled instances never run again;
            // a Failed one may be rewound on its version.
            let used: i64 = c
                .prepare_cached(&format!(
                    "SELECT COUNT(*) FROM instances WHERE version = ?1 AND status NOT IN ({})",
                    status_list(&RuntimeStatus::NEVER_AGAIN)
                ))?
                .query_row([&hash], |r| r.get(0))?;
            if used > 0 {
                return Ok(RemoveComponent::InUse(u64::try_from(used).unwrap_or(0)));
            }
            let names: Vec<String> = {
                let mut st = c.prepare_cached("SELECT name FROM functions WHERE hash = ?1 ORDER BY name")?;
                let rows = st.query_map([&hash], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            c.execute("DELETE FROM functions WHERE hash = ?1", params![hash])?;
            c.execute("DELETE FROM components WHERE hash = ?1", params![hash])?;
            Ok(RemoveComponent::Removed(names))
        })
        .await
    }
}

/// `(status, count)` rows as counts per status (unknown statuses skipped).
pub(super) fn status_counts(mut rows: rusqlite::Rows<'_>) -> rusqlite::Result<Vec<(RuntimeStatus, u64)>> {
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        if let Some(s) = RuntimeStatus::parse(&r.get::<_, String>(0)?) {
            out.push((s, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)));
        }
    }
    Ok(out)
}
