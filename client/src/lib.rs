//! A typed client of Cairn's management interface.
//!
//! [`Management`] is every management operation of a task hub: start,
//! status, wait, list, history, raise, terminate, suspend, resume, rewind,
//! restart, purge, deploy, components, upgrade-check, replay, describe,
//! locks, prune, delete the task hub, and the entity operations. It has two
//! implementations: [`HttpClient`] here, over a `cairn serve`'s HTTP API
//! (`http://` or `https://`, certificates checked), and the task hub itself
//! inside the `cairn` crate. The `cairn` command line is written once
//! against the trait, so `cairn --url URL VERB` and `cairn VERB` print the
//! same documents.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cairn_client::Error> {
//! use cairn_client::{HttpClient, Management, StartRequest};
//! let hub = HttpClient::new("http://127.0.0.1:7071", None)?;
//! let id = hub.start(&StartRequest::new("HelloCities")).await?;
//! let done = hub.wait(&id, std::time::Duration::from_secs(60)).await?;
//! println!("{} {:?}", done.runtime_status, done.output);
//! # Ok(()) }
//! ```
//!
//! # Documents
//!
//! Instance documents ([`InstanceStatus`], [`Page`]) use the Durable
//! Functions keys (camelCase); history events use Durable Functions' event
//! keys (PascalCase: `EventType`, `Timestamp`, `TaskScheduledId`...); every
//! document that is Cairn's own (deploy reports, describe, locks, upgrade
//! and replay reports, entities) uses camelCase.

mod error;
mod http;
mod types;

use std::time::Duration;

pub use error::Error;
pub use http::HttpClient;
pub use types::*;

/// Every management operation of a task hub.
#[async_trait::async_trait]
pub trait Management: Send + Sync {
    /// Starts an orchestration; returns its instance id.
    async fn start(&self, request: &StartRequest) -> Result<String, Error>;

    /// An instance's status ([`Error::NotFound`] when there is none).
    async fn status(&self, id: &str, options: StatusOptions) -> Result<InstanceStatus, Error>;

    /// Waits until the instance finishes or `timeout` passes; returns its
    /// status then (with input and output), finished or not.
    async fn wait(&self, id: &str, timeout: Duration) -> Result<InstanceStatus, Error>;

    /// One page of instances.
    async fn list(&self, query: &ListQuery) -> Result<Page, Error>;

    /// An instance's history, in Durable Functions' event shapes.
    async fn history(&self, id: &str) -> Result<Vec<serde_json::Value>, Error>;

    /// Raises an event to an instance.
    async fn raise_event(&self, id: &str, event: &str, data: Option<serde_json::Value>) -> Result<(), Error>;

    /// Terminates, suspends, resumes or rewinds an instance.
    async fn control(&self, id: &str, action: Control, reason: Option<&str>) -> Result<(), Error>;

    /// Starts an instance again with its input; returns the new id.
    async fn restart(&self, id: &str, new_instance_id: bool) -> Result<String, Error>;

    /// Purges one finished instance.
    async fn purge_instance(&self, id: &str) -> Result<(), Error>;

    /// Purges finished instances matching `filter`; returns how many.
    async fn purge(&self, filter: &PurgeFilter) -> Result<u64, Error>;

    /// Deploys a component.
    async fn deploy(&self, wasm: Vec<u8>, grants: &Grants) -> Result<DeployReport, Error>;

    /// The deployed function versions.
    async fn components(&self) -> Result<Vec<ComponentVersion>, Error>;

    /// Replays the unfinished instances of `name` against a candidate
    /// component (and with `apply`, moves those that replay cleanly).
    async fn upgrade_check(&self, name: &str, wasm: Vec<u8>, options: UpgradeOptions) -> Result<UpgradeReport, Error>;

    /// Replays an instance's history against its version (or `component`):
    /// whole when `until` is `None`, else up to that event (time travel).
    async fn replay(&self, id: &str, component: Option<Vec<u8>>, until: Option<usize>) -> Result<ReplayReport, Error>;

    /// What an instance is, and what it waits for.
    async fn describe(&self, id: &str) -> Result<Description, Error>;

    /// Critical-section locks: holders and waiters.
    async fn locks(&self) -> Result<Vec<Lock>, Error>;

    /// Deletes component versions nothing needs; returns their hashes.
    async fn prune_versions(&self) -> Result<Vec<String>, Error>;

    /// Deletes every instance, message and component; returns how many instances.
    async fn delete_task_hub(&self) -> Result<u64, Error>;

    /// Signals an operation of an entity; false when a signal with the
    /// same idempotency key was received before (and not queued again).
    async fn signal_entity(&self, signal: &EntitySignal) -> Result<bool, Error>;

    /// An entity's state ([`Error::NotFound`] when it has none).
    async fn entity_state(&self, name: &str, key: &str) -> Result<serde_json::Value, Error>;

    /// One page of entities.
    async fn list_entities(&self, query: &EntityQuery) -> Result<EntityPage, Error>;

    /// Deletes the entities (of `name`, or all) that have no state, no
    /// queued request and no lock; returns how many.
    async fn purge_entities(&self, name: Option<&str>) -> Result<u64, Error>;
}
