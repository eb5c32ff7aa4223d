//! The documents of the management interface.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A field that is present even when its value is `null` (`"output": null`
/// means the instance returned null; no `output` means it was not asked for).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// An instance's status, in the Durable Functions shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub name: String,
    pub instance_id: String,
    /// `Pending`, `Running`, `Completed`, `ContinuedAsNew`, `Failed`,
    /// `Canceled`, `Terminated` or `Suspended`.
    pub runtime_status: String,
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub custom_status: Value,
    /// The output; absent unless asked for. A Failed instance's output is
    /// the message `"ErrorType: Message"`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// A Failed instance's failure: `{ErrorType, Message, Details}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_details: Option<Value>,
    /// ISO 8601.
    pub created_time: String,
    /// ISO 8601.
    pub last_updated_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_events: Option<Vec<Value>>,
}

impl InstanceStatus {
    /// True once the instance can change no more by itself (Completed,
    /// Failed, Terminated, Canceled).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(
            self.runtime_status.as_str(),
            "Completed" | "Failed" | "Terminated" | "Canceled"
        )
    }
}

/// Which optional parts a status includes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusOptions {
    pub show_input: bool,
    pub show_output: bool,
    pub show_history: bool,
}

/// What [`crate::Management::start`] starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartRequest {
    /// The orchestrator.
    pub name: String,
    /// Input (JSON); `None` = no input.
    pub input: Option<Value>,
    /// Instance id; generated when `None`.
    pub instance_id: Option<String>,
    /// Component version (content hash); the newest when `None`.
    pub version: Option<String>,
}

impl StartRequest {
    /// Starts `name` with no input.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// With this input.
    #[must_use]
    pub fn input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    /// With this instance id.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }
}

/// Filter and page of [`crate::Management::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// ISO 8601: only instances created at or after.
    pub created_from: Option<String>,
    /// ISO 8601: only instances created at or before.
    pub created_to: Option<String>,
    /// Only these statuses.
    pub statuses: Vec<String>,
    /// Only ids starting with this.
    pub id_prefix: Option<String>,
    /// Only instances of this orchestrator.
    pub name: Option<String>,
    /// Most instances in the page (at most 1000).
    pub top: Option<u32>,
    /// The page after the one that returned this token.
    pub continuation: Option<String>,
    pub show_input: bool,
}

/// A page of instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub instances: Vec<InstanceStatus>,
    /// Token of the next page; `None` on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
}

/// Filter of [`crate::Management::purge`]: finished instances created in
/// the range, of these statuses (all finished statuses when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeFilter {
    /// ISO 8601.
    pub created_from: Option<String>,
    /// ISO 8601; now when `None`.
    pub created_to: Option<String>,
    pub statuses: Vec<String>,
}

/// What [`crate::Management::control`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Terminate,
    Suspend,
    Resume,
    /// Runs a Failed instance's failed tasks again.
    Rewind,
}

impl Control {
    /// The verb of the HTTP route (`terminate`, `suspend`, ...).
    #[must_use]
    pub fn verb(self) -> &'static str {
        match self {
            Self::Terminate => "terminate",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Rewind => "rewind",
        }
    }
}

/// Capabilities given to a component's activities at deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Host environment variables they may read.
    pub env: Vec<String>,
    /// Preopened directories: `HOST[:GUEST][:ro|:rw]`.
    pub dirs: Vec<String>,
    /// Hosts they may send HTTP requests to.
    pub http: Vec<String>,
}

/// One function of a deployed component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployedFunction {
    pub name: String,
    /// `orchestrator`, `activity` or `entity`.
    pub kind: String,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployReport {
    /// Content hash: the version.
    pub hash: String,
    pub size: u64,
    pub functions: Vec<DeployedFunction>,
}

/// One version of one deployed function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentVersion {
    pub name: String,
    pub kind: String,
    pub hash: String,
    /// ISO 8601.
    pub deployed_at: String,
}

/// What `upgrade_check` does besides reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpgradeOptions {
    /// Deploy the candidate and move the instances that replay cleanly.
    pub apply: bool,
    /// With `apply`, also move instances whose only change is an input.
    pub allow_input_changes: bool,
}

/// One instance's verdict in an upgrade check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceVerdict {
    pub instance_id: String,
    pub from_version: String,
    /// `replays-cleanly`, `input-changed` or `diverges`.
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The outcome of an upgrade check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeReport {
    pub name: String,
    /// The candidate's content hash.
    pub candidate: String,
    pub instances: Vec<InstanceVerdict>,
    /// Instances moved to the candidate.
    pub moved: usize,
}

impl UpgradeReport {
    /// True when every instance replays cleanly against the candidate.
    #[must_use]
    pub fn all_clean(&self) -> bool {
        self.instances.iter().all(|i| i.verdict == "replays-cleanly")
    }
}

/// The outcome of a replay: a whole replay of a finished instance
/// (`identical` says whether it reproduced its history and end), or a time
/// travel up to one event (`until` set: what was open then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    pub instance_id: String,
    /// The component version replayed.
    pub version: String,
    /// Whole replay: `replays-cleanly`, `input-changed` or `diverges`;
    /// time travel: `waiting`, `finished` or `diverged`.
    pub verdict: String,
    /// Whole replay: every action, its input and the end are identical.
    /// Time travel: the replay up to the event did not fail.
    pub identical: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<usize>,
    /// The rest of the report (recorded and replayed ends; or the open
    /// tasks, custom status, logs and next actions at `until`).
    #[serde(flatten)]
    pub details: serde_json::Map<String, Value>,
}

/// Something an instance waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wait {
    /// `activity`, `http`, `sub-orchestration`, `timer`, `lock`, `event`
    /// or `entity`.
    pub kind: String,
    /// Activity, orchestrator, event or lock name(s).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<u64>,
    /// When it was scheduled (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// A timer's fire time (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire_at: Option<String>,
    /// A sub-orchestration's instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
    /// Retry attempt of an activity (1 = first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

/// What an instance is and what it waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub instance_id: String,
    pub name: String,
    pub runtime_status: String,
    pub version: String,
    pub created_time: String,
    pub last_updated_time: String,
    pub history_events: usize,
    #[serde(default)]
    pub custom_status: Value,
    /// Open tasks, timers, event waits and locks (empty once finished).
    pub waiting_for: Vec<Wait>,
    /// Locks the instance holds.
    pub locks_held: Vec<String>,
    /// Why nothing is listed, when the replay that finds the waits failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A critical-section lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lock {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// When the holder got it (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_since: Option<String>,
    /// Instances waiting, oldest first.
    pub waiting: Vec<String>,
}

/// A signal to an entity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntitySignal {
    pub name: String,
    pub key: String,
    pub operation: String,
    pub input: Option<Value>,
    /// A signal already received under this key (for this entity, in the
    /// last 24 h) is not queued again.
    pub idempotency_key: Option<String>,
}

/// An entity's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityKey {
    pub name: String,
    pub key: String,
}

/// A listed entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityDocument {
    pub entity_id: EntityKey,
    /// ISO 8601.
    pub last_operation_time: String,
    /// Its state, when asked for (`fetch_state`).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub state: Option<Value>,
}

/// Filter and page of [`crate::Management::list_entities`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityQuery {
    pub name: Option<String>,
    pub fetch_state: bool,
    pub top: Option<u32>,
    pub continuation: Option<String>,
}

/// A page of entities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityPage {
    pub entities: Vec<EntityDocument>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<String>,
}
