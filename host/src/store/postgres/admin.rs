//! Management queries of the task hub (purge, delete everything, counts,
//! component removal), and the fixtures tests use to get a fresh database.

use std::str::FromStr;

use tokio_postgres::NoTls;

use super::ops::{delete_instance_rows, lock_versions, status_names};
use super::{PostgresStore, col, execute, pg, query, query_opt, to_i64, to_u64, write_tx};
use crate::history::Millis;
use crate::store::{PurgeOne, RemoveComponent, RuntimeStatus, StoreError};

impl PostgresStore {
    /// Purges one instance if it is terminal.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn purge_instance(&self, instance_id: &str) -> Result<PurgeOne, StoreError> {
        write_tx!(self, |tx, _notes| {
            let row = query_opt(
                &tx,
                "SELECT status FROM instances WHERE instance_id = $1 FOR UPDATE",
                &[&instance_id],
            )
            .await?;
            let Some(row) = row else {
                return Ok(PurgeOne::NotFound);
            };
            let status: String = col(&row, 0)?;
            let status = RuntimeStatus::parse(&status)
                .ok_or_else(|| StoreError::Decode(format!("instance {instance_id:?} has unknown status {status:?}")))?;
            if !status.is_terminal() {
                return Ok(PurgeOne::NotTerminal(status));
            }
            delete_instance_rows(&tx, instance_id).await?;
            Ok(PurgeOne::Purged)
        })
    }

    /// Purges at most `limit` terminal instances created in `[from, to]`
    /// whose status is in `statuses` (all terminal statuses when empty);
    /// returns how many were purged.
    ///
    /// # Errors
    /// PostgreSQL errors.
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
        write_tx!(self, |tx, _notes| {
            // Locked rows are re-checked against the filter after a
            // concurrent change (a restart makes one Pending again).
            let ids: Vec<String> = query(
                &tx,
                "SELECT instance_id FROM instances WHERE created_at >= $1 AND created_at <= $2 AND status = ANY($3::text[])
                 ORDER BY created_at LIMIT $4 FOR UPDATE",
                &[&to_i64(from), &to_i64(to), &status_names(&wanted), &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_, _>>()?;
            for sql in [
                "DELETE FROM history WHERE instance_id = ANY($1)",
                "DELETE FROM inbox WHERE instance_id = ANY($1)",
                "DELETE FROM work_items WHERE instance_id = ANY($1)",
                "DELETE FROM instances WHERE instance_id = ANY($1)",
            ] {
                execute(&tx, sql, &[&ids]).await?;
            }
            Ok(ids.len() as u64)
        })
    }

    /// Deletes every instance, message, work item, lock and component of
    /// the task hub (the schema stays). Returns the number of instances
    /// deleted.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn delete_all(&self) -> Result<u64, StoreError> {
        // TRUNCATE, not DELETE: a deleted row stays behind as a dead
        // tuple until VACUUM, and every index scan of the next workload on
        // the emptied hub (inbox polls, instance reads) wades through them.
        // The tables are locked first so that the count is what is removed.
        write_tx!(self, |tx, _notes| {
            tx.batch_execute(
                "LOCK TABLE instances, history, inbox, work_items, locks, lock_requests, entity_requests, functions, components
                   IN ACCESS EXCLUSIVE MODE",
            )
            .await
            .map_err(super::pg)?;
            let n: i64 = match super::query_opt(&tx, "SELECT COUNT(*) FROM instances", &[]).await? {
                Some(r) => col(&r, 0)?,
                None => 0,
            };
            tx.batch_execute(
                "TRUNCATE instances, history, inbox, work_items, locks, lock_requests, entity_requests, functions, components",
            )
            .await
            .map_err(super::pg)?;
            Ok(to_u64(n))
        })
    }

    /// Number of instances per runtime status (statuses without instances
    /// are absent).
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn instance_counts(&self) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        let c = self.client().await?;
        let rows = query(
            &c,
            "SELECT status, COUNT(*) FROM instances WHERE left(instance_id, 1) <> '@' GROUP BY status",
            &[],
        )
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let status: String = col(r, 0)?;
            if let Some(s) = RuntimeStatus::parse(&status) {
                out.push((s, to_u64(col(r, 1)?)));
            }
        }
        Ok(out)
    }

    /// Removes a deployed component version that no instance that may
    /// still run (not Completed, Terminated or Canceled) is pinned to.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn remove_component(&self, hash: &str) -> Result<RemoveComponent, StoreError> {
        write_tx!(self, |tx, _notes| {
            lock_versions(&tx).await?;
            if query_opt(&tx, "SELECT 1 FROM components WHERE hash = $1", &[&hash])
                .await?
                .is_none()
            {
                return Ok(RemoveComponent::NotFound);
            }
            let used: i64 = col(
                &query(
                    &tx,
                    "SELECT COUNT(*) FROM instances WHERE version = $1 AND status <> ALL($2::text[])",
                    &[&hash, &status_names(&RuntimeStatus::NEVER_AGAIN)],
                )
                .await?[0],
                0,
            )?;
            if used > 0 {
                return Ok(RemoveComponent::InUse(to_u64(used)));
            }
            let names: Vec<String> = query(
                &tx,
                "SELECT name FROM functions WHERE hash = $1 ORDER BY name",
                &[&hash],
            )
            .await?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_, _>>()?;
            execute(&tx, "DELETE FROM functions WHERE hash = $1", &[&hash]).await?;
            execute(&tx, "DELETE FROM components WHERE hash = $1", &[&hash]).await?;
            Ok(RemoveComponent::Removed(names))
        })
    }
}

/// Fixtures for tests of this backend and of the provider contract: fresh
/// databases on a test server, schema-version and row inspection. Not for
/// production use.
impl PostgresStore {
    /// Creates an empty database named `name` on the server of `url` (any
    /// database of it: the maintenance connection goes to `postgres`) and
    /// returns `url` pointing at it.
    ///
    /// # Errors
    /// Connection errors; a name that is not `[a-z0-9_]+`.
    pub async fn create_database(url: &str, name: &str) -> Result<String, StoreError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::Backend(format!("database name {name:?}: use [a-z0-9_]")));
        }
        maintenance(url, &format!("CREATE DATABASE {name}")).await?;
        Ok(with_dbname(url, name))
    }

    /// Drops database `name` on the server of `url`, disconnecting its
    /// sessions.
    ///
    /// # Errors
    /// Connection errors.
    pub async fn drop_database(url: &str, name: &str) -> Result<(), StoreError> {
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::Backend(format!("database name {name:?}: use [a-z0-9_]")));
        }
        maintenance(url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
    }

    /// Records schema version `version` as applied (to test a newer one).
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn set_schema_version(&self, version: i64) -> Result<(), StoreError> {
        let c = self.client().await?;
        execute(
            &c,
            "INSERT INTO schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&version],
        )
        .await
        .map(drop)
    }

    /// The highest schema version applied.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let c = self.client().await?;
        col(
            &query(&c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?[0],
            0,
        )
    }

    /// Ends every other session on this task hub's database (as a server
    /// restart or a failover would): other hosts' connections, this
    /// handle's other pooled connections and its listener. Returns how many.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn terminate_other_sessions(&self) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let rows = query(
            &c,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await?;
        Ok(rows.len() as u64)
    }

    /// Rows in the history table, every execution of every instance.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn history_rows(&self) -> Result<i64, StoreError> {
        let c = self.client().await?;
        col(&query(&c, "SELECT COUNT(*) FROM history", &[]).await?[0], 0)
    }
}

/// `url` with its database replaced by `name`.
fn with_dbname(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs one statement on the server's `postgres` database.
async fn maintenance(url: &str, sql: &str) -> Result<(), StoreError> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Open {
        path: "postgres://…".into(),
        reason: e.to_string(),
    })?;
    config.dbname("postgres");
    let (client, conn) = config.connect(NoTls).await.map_err(pg)?;
    let driver = tokio::spawn(conn);
    let result = client.batch_execute(sql).await.map_err(pg);
    drop(client);
    let _ = driver.await;
    result
}
