//! Queries of the console and the metrics: instance pages newest first with
//! a name filter, counts per status under a filter, instances per version,
//! queue statistics. Each is one indexed query (the console stays fast
//! with hundreds of thousands of instances).

use rusqlite::types::Value;

use super::SqliteStore;
use super::ops::{INSTANCE_COLS, instance_rows, to_i64};
use crate::history::Millis;
use crate::store::{BrowseQuery, InstanceQuery, InstanceRow, QueueStats, RuntimeStatus, StoreError};

/// `WHERE …` of an instance filter (statuses only when `with_statuses`),
/// and its arguments.
fn filter_sql(q: &InstanceQuery, name: Option<&str>, with_statuses: bool) -> (String, Vec<Value>) {
    let mut sql = String::from(" WHERE substr(instance_id, 1, 1) <> '@'");
    let mut args: Vec<Value> = Vec::new();
    if let Some(name) = name {
        sql.push_str(" AND name = ?");
        args.push(name.to_owned().into());
    }
    if let Some(from) = q.created_from {
        sql.push_str(" AND created_at >= ?");
        args.push(to_i64(from).into());
    }
    if let Some(to) = q.created_to {
        sql.push_str(" AND created_at <= ?");
        args.push(to_i64(to).into());
    }
    if with_statuses && !q.statuses.is_empty() {
        let marks = vec!["?"; q.statuses.len()].join(",");
        sql.push_str(&format!(" AND status IN ({marks})"));
        args.extend(q.statuses.iter().map(|s| s.as_str().to_owned().into()));
    }
    if let Some(prefix) = &q.id_prefix {
        // A range on the primary key (uses its index), then the exact test
        // (the range alone would also take ids after the prefix's last byte).
        sql.push_str(" AND instance_id >= ? AND substr(instance_id, 1, ?) = ?");
        args.push(prefix.clone().into());
        args.push((prefix.chars().count() as i64).into());
        args.push(prefix.clone().into());
    }
    (sql, args)
}

impl SqliteStore {
    /// See [`crate::store::Provider::browse_instances`].
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn browse_instances(&self, q: BrowseQuery) -> Result<Vec<InstanceRow>, StoreError> {
        self.read(move |c| {
            let (mut filter, mut args) = filter_sql(&q.base, q.name.as_deref(), true);
            let (cmp, dir) = if q.newest_first { ("<", "DESC") } else { (">", "ASC") };
            if let Some((at, id)) = &q.base.after {
                filter.push_str(&format!(
                    " AND (created_at {cmp} ? OR (created_at = ? AND instance_id {cmp} ?))"
                ));
                args.push(to_i64(*at).into());
                args.push(to_i64(*at).into());
                args.push(id.clone().into());
            }
            let mut sql =
                format!("SELECT {INSTANCE_COLS} FROM instances{filter} ORDER BY created_at {dir}, instance_id {dir}");
            if let Some(top) = q.base.top {
                sql.push_str(&format!(" LIMIT {top}"));
            }
            Ok(instance_rows(c, &sql, args)?)
        })
        .await
    }

    /// See [`crate::store::Provider::count_instances`].
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn count_instances(
        &self,
        q: InstanceQuery,
        name: Option<String>,
    ) -> Result<Vec<(RuntimeStatus, u64)>, StoreError> {
        self.read(move |c| {
            let (filter, args) = filter_sql(&q, name.as_deref(), false);
            let mut st = c.prepare(&format!(
                "SELECT status, COUNT(*) FROM instances{filter} GROUP BY status"
            ))?;
            Ok(super::admin::status_counts(
                st.query(rusqlite::params_from_iter(args))?,
            )?)
        })
        .await
    }

    /// See [`crate::store::Provider::instances_per_version`].
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn instances_per_version(&self) -> Result<Vec<(String, RuntimeStatus, u64)>, StoreError> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT version, status, COUNT(*) FROM instances WHERE substr(instance_id, 1, 1) <> '@' GROUP BY version, status")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (version, status, n) = row?;
                if let Some(s) = RuntimeStatus::parse(&status) {
                    out.push((version, s, u64::try_from(n).unwrap_or(0)));
                }
            }
            Ok(out)
        })
        .await
    }

    /// See [`crate::store::Provider::queue_stats`].
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn queue_stats(&self, now: Millis) -> Result<QueueStats, StoreError> {
        self.read(move |c| {
            let now = to_i64(now);
            let (ready, delayed, oldest): (i64, i64, Option<i64>) = c
                .prepare_cached(
                    "SELECT COALESCE(SUM(visible_at <= ?1), 0), COALESCE(SUM(visible_at > ?1), 0),
                            MIN(CASE WHEN visible_at <= ?1 THEN visible_at END)
                     FROM inbox",
                )?
                .query_row([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let (w_ready, w_delayed, w_leased, w_oldest): (i64, i64, i64, Option<i64>) = c
                .prepare_cached(
                    "SELECT
                        COALESCE(SUM(leased = 0 AND visible_at <= ?1), 0),
                        COALESCE(SUM(leased = 0 AND visible_at > ?1), 0),
                        COALESCE(SUM(leased), 0),
                        MIN(CASE WHEN leased = 0 AND visible_at <= ?1 THEN visible_at END)
                     FROM (SELECT visible_at,
                                  (lease_owner IS NOT NULL AND lease_expires > ?1) AS leased
                           FROM work_items)",
                )?
                .query_row([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            let age = |oldest: Option<i64>| oldest.map_or(0, |t| u64::try_from(now - t).unwrap_or(0));
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(QueueStats {
                inbox_ready: n(ready),
                inbox_delayed: n(delayed),
                inbox_oldest_ready_ms: age(oldest),
                work_ready: n(w_ready),
                work_delayed: n(w_delayed),
                work_leased: n(w_leased),
                work_oldest_ready_ms: age(w_oldest),
            })
        })
        .await
    }
}
