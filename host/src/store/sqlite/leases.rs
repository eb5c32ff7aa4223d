//! Lease reads and heartbeats shared by every host, and the one-host guard
//! of a SQLite task hub.

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::params;

use super::SqliteStore;
use super::ops::to_i64;
use crate::history::Millis;
use crate::store::{InstanceLease, Lease, StoreError};

/// The guard's lock file beside the database: `<db>.lock`.
#[must_use]
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".lock");
    db.with_file_name(name)
}

/// Takes the exclusive lock (flock) of the task hub at `db`: held while the
/// returned file is open, released by the kernel when the process dies.
///
/// # Errors
/// [`StoreError::HostBusy`] when another process holds it; [`StoreError::Open`]
/// when the lock file cannot be created.
pub(super) fn take_guard(db: &Path) -> Result<File, StoreError> {
    let path = lock_path(db);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Open {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::HostBusy(db.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Open {
            path,
            reason: e.to_string(),
        }),
    }
}

impl SqliteStore {
    /// The unexpired instance leases at `now` (only `owner`'s when given).
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn instance_leases(&self, owner: Option<String>, now: Millis) -> Result<Vec<InstanceLease>, StoreError> {
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT instance_id, lease_owner, lease_expires FROM instances
                  WHERE lease_owner IS NOT NULL AND lease_expires > ?1 AND (?2 IS NULL OR lease_owner = ?2)
                  ORDER BY instance_id",
            )?;
            let rows = st.query_map(params![to_i64(now), owner], |r| {
                Ok(InstanceLease {
                    instance_id: r.get(0)?,
                    owner: r.get(1)?,
                    expires: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Renews `lease` on the work items among `ids` it still holds;
    /// returns the others.
    ///
    /// # Errors
    /// SQLite errors.
    pub async fn renew_work_leases(&self, ids: Vec<i64>, lease: &Lease, now: Millis) -> Result<Vec<i64>, StoreError> {
        let lease = lease.clone();
        self.write(move |c, _| {
            let mut st =
                c.prepare_cached("UPDATE work_items SET lease_expires = ?3 WHERE id = ?1 AND lease_owner = ?2")?;
            let mut lost = Vec::new();
            for id in ids {
                if st.execute(params![id, lease.owner, to_i64(now.saturating_add(lease.duration_ms))])? == 0 {
                    lost.push(id);
                }
            }
            Ok(lost)
        })
        .await
    }
}
