//! Managing durable entities from outside (the HTTP API, the CLI):
//! signal, read, list, purge. Entities themselves run in the engine
//! ([`crate::engine`]) under the rules of [`crate::decide::entity`].

use serde_json::{Value, json};

use crate::admin::{AdminError, MAX_PAGE};
use crate::clock::now_ms;
use crate::history::Millis;
use crate::hub::{Hub, HubError};
use crate::ids::{EntityId, IdError, random_hex, validate_name};
use crate::store::{EntityQuery, InstanceRow};

/// Longest idempotency key accepted with a signal (bytes).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;

/// An entity and its state, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityState {
    pub id: EntityId,
    /// Time of its last operation (or its creation).
    pub last_operation: Millis,
    /// The state (JSON); `None` when it has none.
    pub state: Option<String>,
}

impl EntityState {
    fn from_row(row: InstanceRow) -> Option<Self> {
        Some(Self {
            id: EntityId::from_instance_id(&row.instance_id)?,
            last_operation: row.updated_at,
            state: row.output,
        })
    }

    /// The Durable Functions JSON of a listed entity: `entityId`,
    /// `lastOperationTime` (ISO 8601) and, with `with_state`, `state`.
    #[must_use]
    pub fn to_json(&self, with_state: bool) -> Value {
        let mut v = json!({
            "entityId": { "name": self.id.name(), "key": self.id.key() },
            "lastOperationTime": crate::clock::iso(self.last_operation),
        });
        if with_state {
            let state = self
                .state
                .as_deref()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .unwrap_or(Value::Null);
            v["state"] = state;
        }
        v
    }
}

/// One page of [`Hub::list_entities`].
#[derive(Debug, Clone)]
pub struct EntityPage {
    pub entities: Vec<EntityState>,
    /// Give it back to get the next page.
    pub continuation: Option<String>,
}

/// Filter of [`Hub::list_entities`].
#[derive(Debug, Clone, Default)]
pub struct EntityFilter {
    pub name: Option<String>,
    pub last_op_from: Option<Millis>,
    pub last_op_to: Option<Millis>,
    /// Include entities without state.
    pub include_empty: bool,
}

fn encode_entity_token(instance_id: &str) -> String {
    hex::encode(instance_id)
}

fn decode_entity_token(token: &str) -> Result<String, AdminError> {
    let bytes = hex::decode(token.trim()).map_err(|_| AdminError::BadContinuationToken)?;
    let id = String::from_utf8(bytes).map_err(|_| AdminError::BadContinuationToken)?;
    EntityId::from_instance_id(&id).ok_or(AdminError::BadContinuationToken)?;
    Ok(id)
}

impl Hub {
    /// Signals operation `operation` of entity `id` with `input` (JSON;
    /// `None` is `null`). With an `idempotency_key`, a signal already
    /// received under the same key for this entity (in the last
    /// [`crate::store::DEDUP_WINDOW_MS`]) is not queued again: `Ok(false)`.
    ///
    /// # Errors
    /// A bad operation name, input or key.
    pub async fn signal_entity(
        &self,
        id: &EntityId,
        operation: &str,
        input: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<bool, HubError> {
        validate_name("entity operation name", operation)?;
        let input = input.map_or("null", str::trim);
        let input = if input.is_empty() { "null" } else { input };
        self.check_json("entity operation input", input)?;
        if let Some(k) = idempotency_key
            && (k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY_BYTES || k.chars().any(char::is_control))
        {
            return Err(HubError::Id(IdError::BadName {
                what: "idempotency key",
                max: MAX_IDEMPOTENCY_KEY_BYTES,
                got: k.chars().take(64).collect(),
            }));
        }
        let request_id = idempotency_key.map_or_else(random_hex, |k| format!("key:{k}"));
        // `#` never occurs in an entity id: the pair is unambiguous (and
        // holds no NUL, which PostgreSQL text refuses).
        let dedup = idempotency_key.map(|k| format!("{}#{k}", id.instance_id()));
        let now = now_ms();
        let crate::store::Outbox::ToEntity { name, message } =
            crate::decide::entity::client_signal(id, request_id, operation, input, now)
        else {
            return Err(HubError::Internal("a client signal is a request to an entity".into()));
        };
        Ok(self.store.send_to_entity(&name, message, dedup, now).await?)
    }

    /// Entity `id` with its state; `None` when it does not exist or has no
    /// state.
    ///
    /// # Errors
    /// Store errors.
    pub async fn entity_state(&self, id: &EntityId) -> Result<Option<EntityState>, HubError> {
        Ok(self
            .store
            .get_instance(&id.instance_id())
            .await?
            .filter(|row| row.output.is_some())
            .and_then(EntityState::from_row))
    }

    /// One page of entities matching `filter`, ordered by id, at most
    /// `top` (capped at [`MAX_PAGE`]).
    ///
    /// # Errors
    /// [`AdminError::BadContinuationToken`]; store errors.
    pub async fn list_entities(
        &self,
        filter: EntityFilter,
        top: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<EntityPage, AdminError> {
        let page = top.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let after = match continuation.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Some(decode_entity_token(t)?),
            None => None,
        };
        let rows = self
            .store
            .list_entities(EntityQuery {
                name: filter.name,
                last_op_from: filter.last_op_from,
                last_op_to: filter.last_op_to,
                include_empty: filter.include_empty,
                top: Some(page + 1),
                after,
            })
            .await?;
        let more = rows.len() > page as usize;
        let mut entities: Vec<EntityState> = rows.into_iter().filter_map(EntityState::from_row).collect();
        entities.truncate(page as usize);
        let continuation = if more {
            entities.last().map(|e| encode_entity_token(&e.id.instance_id()))
        } else {
            None
        };
        Ok(EntityPage { entities, continuation })
    }

    /// Deletes entities (all, or those named `name`) that have no state,
    /// no queued request and no lock; returns how many.
    ///
    /// # Errors
    /// Store errors.
    pub async fn purge_empty_entities(&self, name: Option<&str>) -> Result<u64, HubError> {
        Ok(self.store.purge_empty_entities(name.map(str::to_owned)).await?)
    }

    /// Deletes entity `id` with its state and queued requests; false when
    /// there is none.
    ///
    /// # Errors
    /// Store errors.
    pub async fn delete_entity(&self, id: &EntityId) -> Result<bool, HubError> {
        Ok(self.store.delete_entity(&id.instance_id()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tokens_round_trip_and_reject_garbage() {
        let t = encode_entity_token("@Counter@a b");
        assert_eq!(decode_entity_token(&t).ok().as_deref(), Some("@Counter@a b"));
        for bad in ["", "zz", &hex::encode("plain"), &hex::encode("@nokey")] {
            assert!(decode_entity_token(bad).is_err(), "{bad:?}");
        }
    }
}
