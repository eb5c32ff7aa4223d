//! Management operations beyond the everyday ones of [`crate::hub`]:
//! purge (one instance or by filter), delete the task hub, restart,
//! paged listing with continuation tokens, component removal. Shared by the
//! CLI and the HTTP API.

use crate::clock::now_ms;
use crate::history::Millis;
use crate::hub::{Hub, HubError};
use crate::ids::InstanceId;
use crate::store::{InstanceQuery, InstanceRow, RuntimeStatus, StoreError};
pub use crate::store::{PurgeOne, RemoveComponent};

/// Most instances one page of [`Hub::list_page`] returns.
pub const MAX_PAGE: u32 = 1000;
/// Instances purged per write transaction by [`Hub::purge_instances`].
const PURGE_BATCH: u32 = 500;

/// Errors of management operations.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("instance {id:?} is {status}; only Completed, Failed, Terminated or Canceled instances can be purged")]
    NotTerminal { id: String, status: RuntimeStatus },
    #[error("the continuation token is not one this server issued")]
    BadContinuationToken,
    #[error("component version {0:?} is not deployed")]
    ComponentNotFound(String),
    #[error("component version {hash:?} is still used by {instances} instance(s) that may run again; purge them first")]
    ComponentInUse { hash: String, instances: u64 },
}

/// Which instances [`Hub::purge_instances`] purges.
#[derive(Debug, Clone, Default)]
pub struct PurgeFilter {
    pub created_from: Millis,
    /// Default: now.
    pub created_to: Option<Millis>,
    /// Only these statuses (non-terminal ones are ignored); all terminal
    /// statuses when empty.
    pub statuses: Vec<RuntimeStatus>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub instances: Vec<InstanceRow>,
    /// Token of the next page; `None` on the last page.
    pub continuation: Option<String>,
}

/// Encodes the position after `row` as an opaque continuation token.
#[must_use]
pub fn encode_token(created_at: Millis, instance_id: &str) -> String {
    hex::encode(format!("{created_at}:{instance_id}"))
}

/// Decodes a token of [`encode_token`].
///
/// # Errors
/// [`AdminError::BadContinuationToken`].
pub fn decode_token(token: &str) -> Result<(Millis, String), AdminError> {
    let bytes = hex::decode(token.trim()).map_err(|_| AdminError::BadContinuationToken)?;
    let text = String::from_utf8(bytes).map_err(|_| AdminError::BadContinuationToken)?;
    let (at, id) = text.split_once(':').ok_or(AdminError::BadContinuationToken)?;
    let at: Millis = at.parse().map_err(|_| AdminError::BadContinuationToken)?;
    InstanceId::parse(id).map_err(|_| AdminError::BadContinuationToken)?;
    Ok((at, id.to_owned()))
}

impl Hub {
    /// Purges one terminal instance (history, messages, row).
    ///
    /// # Errors
    /// Invalid id; [`StoreError::InstanceNotFound`]; [`AdminError::NotTerminal`].
    pub async fn purge_instance(&self, id: &str) -> Result<(), AdminError> {
        let id = InstanceId::parse(id).map_err(HubError::from)?;
        match self.store.purge_instance(id.as_str()).await? {
            PurgeOne::Purged => Ok(()),
            PurgeOne::NotFound => Err(StoreError::InstanceNotFound(id.as_str().to_owned()).into()),
            PurgeOne::NotTerminal(status) => Err(AdminError::NotTerminal {
                id: id.as_str().to_owned(),
                status,
            }),
        }
    }

    /// Purges every terminal instance matching `filter`, in batches;
    /// returns how many were purged.
    ///
    /// # Errors
    /// Store errors (instances purged before the error stay purged).
    pub async fn purge_instances(&self, filter: &PurgeFilter) -> Result<u64, AdminError> {
        let to = filter.created_to.unwrap_or_else(now_ms);
        let mut total = 0;
        loop {
            let n = self
                .store
                .purge_terminal_batch(filter.created_from, to, filter.statuses.clone(), PURGE_BATCH)
                .await?;
            total += n;
            if n < u64::from(PURGE_BATCH) {
                return Ok(total);
            }
        }
    }

    /// Deletes all instances, messages and components of the task hub.
    /// Returns the number of instances deleted.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_task_hub(&self) -> Result<u64, AdminError> {
        Ok(self.store.delete_all().await?)
    }

    /// Starts instance `id` again with its input, under a new generated id
    /// (`new_id`) or the same one (which must be finished). Runs on the
    /// newest version of its orchestrator.
    ///
    /// # Errors
    /// Invalid id; [`StoreError::InstanceNotFound`]; with the same id,
    /// [`StoreError::InstanceExists`] while it has not finished.
    pub async fn restart(&self, id: &str, new_id: bool) -> Result<InstanceId, AdminError> {
        let id = InstanceId::parse(id).map_err(HubError::from)?;
        let row = self
            .store
            .get_instance(id.as_str())
            .await?
            .ok_or_else(|| StoreError::InstanceNotFound(id.as_str().to_owned()))?;
        let target = if new_id { None } else { Some(id.as_str()) };
        Ok(self.start(&row.name, row.input.as_deref(), target, None).await?)
    }

    /// One page of instances matching `query` (its `after` is replaced by
    /// `continuation`), at most `top` (capped at [`MAX_PAGE`]).
    ///
    /// # Errors
    /// [`AdminError::BadContinuationToken`]; store errors.
    pub async fn list_page(
        &self,
        mut query: InstanceQuery,
        top: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<Page, AdminError> {
        let page = top.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        query.after = match continuation.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Some(decode_token(t)?),
            None => None,
        };
        // One extra row tells whether another page follows.
        query.top = Some(page + 1);
        let mut instances = self.store.list_instances(query).await?;
        let more = instances.len() > page as usize;
        instances.truncate(page as usize);
        let continuation = if more {
            instances.last().map(|r| encode_token(r.created_at, &r.instance_id))
        } else {
            None
        };
        Ok(Page {
            instances,
            continuation,
        })
    }

    /// Removes a component version no instance that may run again uses.
    /// Returns the functions it provided.
    ///
    /// # Errors
    /// [`AdminError::ComponentNotFound`]; [`AdminError::ComponentInUse`].
    pub async fn remove_component(&self, hash: &str) -> Result<Vec<String>, AdminError> {
        match self.store.remove_component(hash).await? {
            RemoveComponent::Removed(names) => Ok(names),
            RemoveComponent::NotFound => Err(AdminError::ComponentNotFound(hash.to_owned())),
            RemoveComponent::InUse(instances) => Err(AdminError::ComponentInUse {
                hash: hash.to_owned(),
                instances,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode_token(1_700_000_000_123, "abc:é");
        assert_eq!(decode_token(&t).ok(), Some((1_700_000_000_123, "abc:é".to_owned())));
        for bad in [
            "",
            "zz",
            "00",
            &hex::encode("x:abc"),
            &hex::encode("1:@x"),
            &hex::encode("1"),
        ] {
            assert!(decode_token(bad).is_err(), "{bad:?}");
        }
    }
}
