//! Lease reads and heartbeats of the hosts sharing the task hub.

use super::{PostgresStore, col, query, to_i64, to_u64, write_tx};
use crate::history::Millis;
use crate::store::{InstanceLease, Lease, StoreError};

impl PostgresStore {
    /// The unexpired instance leases at `now` (only `owner`'s when given).
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn instance_leases(&self, owner: Option<String>, now: Millis) -> Result<Vec<InstanceLease>, StoreError> {
        let c = self.client().await?;
        let rows = query(
            &c,
            "SELECT instance_id, lease_owner, lease_expires FROM instances
              WHERE lease_owner IS NOT NULL AND lease_expires > $1
                AND ($2::text IS NULL OR lease_owner = $2)
              ORDER BY instance_id",
            &[&to_i64(now), &owner],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InstanceLease {
                    instance_id: col(r, 0)?,
                    owner: col(r, 1)?,
                    expires: to_u64(col(r, 2)?),
                })
            })
            .collect()
    }

    /// Renews `lease` on the work items among `ids` it still holds;
    /// returns the others.
    ///
    /// # Errors
    /// PostgreSQL errors.
    pub async fn renew_work_leases(&self, ids: Vec<i64>, lease: &Lease, now: Millis) -> Result<Vec<i64>, StoreError> {
        let kept = write_tx!(self, |tx, _notes| {
            query(
                &tx,
                "UPDATE work_items SET lease_expires = $3 WHERE id = ANY($1) AND lease_owner = $2 RETURNING id",
                &[&ids, &lease.owner, &to_i64(now.saturating_add(lease.duration_ms))],
            )
            .await
        })?;
        let kept: std::collections::HashSet<i64> = kept.iter().map(|r| col(r, 0)).collect::<Result<_, StoreError>>()?;
        Ok(ids.into_iter().filter(|id| !kept.contains(id)).collect())
    }
}
