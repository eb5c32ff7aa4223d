//! The durable history of an orchestration, as events named after the
//! Durable Task Framework's history table. PURE: no I/O, no wasmtime, no
//! SQLite. The JSON encoding of [`Event`] is the on-disk format (see
//! [`CODEC_VERSION`]); change it only by adding optional fields or variants.

use serde::{Deserialize, Serialize};

/// Version of the event encoding written to the store.
pub const CODEC_VERSION: u32 = 1;

/// Id of a task inside one execution (the guest's `task-id`).
pub type TaskId = u32;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = u64;

/// A typed failure (the WIT `failure` record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(rename = "ErrorType")]
    pub error_type: String,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "Details", default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl Failure {
    #[must_use]
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            details: None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

/// Retry policy for activities and sub-orchestrations (the WIT record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_interval_ms: u64,
    pub backoff_coefficient: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_timeout_ms: Option<u64>,
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2 = first retry), or `None`
    /// when the policy allows no further attempt at `now` for a task first
    /// scheduled at `first_scheduled`.
    #[must_use]
    pub fn delay_before(&self, next_attempt: u32, first_scheduled: Millis, now: Millis) -> Option<u64> {
        if next_attempt > self.max_attempts || next_attempt < 2 {
            return None;
        }
        let exp = i32::try_from(next_attempt - 2).unwrap_or(i32::MAX);
        let raw = self.first_interval_ms as f64 * self.backoff_coefficient.max(1.0).powi(exp);
        let mut delay = if raw.is_finite() { raw as u64 } else { u64::MAX };
        if let Some(max) = self.max_interval_ms {
            delay = delay.min(max);
        }
        if let Some(timeout) = self.retry_timeout_ms
            && now.saturating_add(delay) > first_scheduled.saturating_add(timeout)
        {
            return None;
        }
        Some(delay)
    }
}

/// Terminal (or transitional) status written by `ExecutionCompleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompletionStatus {
    Completed,
    Failed,
    ContinuedAsNew,
    Terminated,
}

/// Parent link of a sub-orchestration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentRef {
    pub instance_id: String,
    pub execution_id: String,
    pub task_id: TaskId,
    /// The parent's retry policy for this child (the host re-runs a failed
    /// child while the policy allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Attempt number of this run of the child, from 1.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// When the parent first scheduled the child (retry timeout origin).
    #[serde(default)]
    pub first_scheduled: Millis,
}

fn first_attempt() -> u32 {
    1
}

/// Where the result of an entity call goes: the calling execution's task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityReply {
    #[serde(rename = "InstanceId")]
    pub instance_id: String,
    #[serde(rename = "ExecutionId")]
    pub execution_id: String,
    #[serde(rename = "TaskScheduledId")]
    pub task_id: TaskId,
}

/// One history event (also the payload of inbox messages that become
/// history when an episode consumes them). Variant names are the DTFx
/// `EventType` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "EventType")]
pub enum Event {
    ExecutionStarted {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Input")]
        input: String,
        #[serde(rename = "ExecutionId")]
        execution_id: String,
        /// Content hash of the orchestrator component this execution runs.
        #[serde(rename = "Version")]
        version: String,
        #[serde(rename = "ParentInstance", default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentRef>,
        /// Events carried over by continue-as-new.
        #[serde(rename = "CarriedEvents", default, skip_serializing_if = "Vec::is_empty")]
        carried_events: Vec<(String, String)>,
    },
    OrchestratorStarted,
    TaskScheduled {
        #[serde(rename = "EventId")]
        task_id: TaskId,
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Input")]
        input: String,
        #[serde(rename = "RetryPolicy", default, skip_serializing_if = "Option::is_none")]
        retry: Option<RetryPolicy>,
    },
    TaskCompleted {
        #[serde(rename = "TaskScheduledId")]
        task_id: TaskId,
        #[serde(rename = "Result")]
        result: String,
    },
    TaskFailed {
        #[serde(rename = "TaskScheduledId")]
        task_id: TaskId,
        #[serde(rename = "Failure")]
        failure: Failure,
    },
    /// A failed attempt that the host's retry policy will retry; the task
    /// stays pending. Informational: replay ignores it.
    TaskRetrying {
        #[serde(rename = "TaskScheduledId")]
        task_id: TaskId,
        #[serde(rename = "Attempt")]
        attempt: u32,
        #[serde(rename = "Failure")]
        failure: Failure,
        #[serde(rename = "NextAttemptAt")]
        next_attempt_at: Millis,
    },
    TimerCreated {
        #[serde(rename = "EventId")]
        task_id: TaskId,
        #[serde(rename = "FireAt")]
        fire_at: Millis,
    },
    TimerFired {
        #[serde(rename = "TimerId")]
        task_id: TaskId,
        #[serde(rename = "FireAt")]
        fire_at: Millis,
    },
    SubOrchestrationInstanceCreated {
        #[serde(rename = "EventId")]
        task_id: TaskId,
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "InstanceId")]
        instance_id: String,
        #[serde(rename = "Input")]
        input: String,
        #[serde(rename = "RetryPolicy", default, skip_serializing_if = "Option::is_none")]
        retry: Option<RetryPolicy>,
    },
    SubOrchestrationInstanceCompleted {
        #[serde(rename = "TaskScheduledId")]
        task_id: TaskId,
        #[serde(rename = "Result")]
        result: String,
    },
    SubOrchestrationInstanceFailed {
        #[serde(rename = "TaskScheduledId")]
        task_id: TaskId,
        #[serde(rename = "Failure")]
        failure: Failure,
    },
    EventRaised {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Input")]
        input: String,
    },
    ExecutionSuspended {
        #[serde(rename = "Reason", default)]
        reason: Option<String>,
    },
    ExecutionResumed {
        #[serde(rename = "Reason", default)]
        reason: Option<String>,
    },
    ExecutionTerminated {
        #[serde(rename = "Reason", default)]
        reason: Option<String>,
    },
    OrchestratorCompleted,
    /// The orchestrator asked for a critical section over `names`.
    LockRequested {
        #[serde(rename = "EventId")]
        task_id: TaskId,
        #[serde(rename = "LockNames")]
        names: Vec<String>,
    },
    /// Every lock of request `task_id` is now held by this instance.
    LockGranted {
        #[serde(rename = "TaskScheduledId")]
        task_id: TaskId,
    },
    /// The orchestrator left the critical section entered by `lock`.
    LockReleased {
        #[serde(rename = "EventId")]
        task_id: TaskId,
        #[serde(rename = "LockId")]
        lock: TaskId,
    },
    /// The orchestrator called an operation of entity `entity` (`name@key`);
    /// its result arrives as `EntityOperationCompleted` / `EntityOperationFailed`.
    EntityOperationCalled {
        #[serde(rename = "EventId")]
        task_id: TaskId,
        #[serde(rename = "TargetInstanceId")]
        entity: String,
        #[serde(rename = "Operation")]
        operation: String,
        #[serde(rename = "Input")]
        input: String,
    },
    /// The orchestrator signalled an operation of entity `entity` (one way).
    EntityOperationSignaled {
        #[serde(rename = "EventId")]
        task_id: TaskId,
        #[serde(rename = "TargetInstanceId")]
        entity: String,
        #[serde(rename = "Operation")]
        operation: String,
        #[serde(rename = "Input")]
        input: String,
        #[serde(rename = "ScheduledTime", default, skip_serializing_if = "Option::is_none")]
        scheduled_at: Option<Millis>,
    },
    EntityOperationCompleted {
        #[serde(rename = "TaskScheduledId")]
        task_id: TaskId,
        #[serde(rename = "Result")]
        result: String,
    },
    EntityOperationFailed {
        #[serde(rename = "TaskScheduledId")]
        task_id: TaskId,
        #[serde(rename = "Failure")]
        failure: Failure,
    },
    /// An operation request in an entity's queue (a signal, or a call with
    /// `reply` naming the caller's task). Never part of an orchestration's
    /// history.
    EntityRequest {
        /// Unique per request: `<instance>:<execution>:<task>` from an
        /// orchestration, `<entity>:<operation number>:<n>` from an entity,
        /// a client's idempotency key or a random id from the API.
        #[serde(rename = "RequestId")]
        request_id: String,
        #[serde(rename = "Operation")]
        operation: String,
        #[serde(rename = "Input")]
        input: String,
        /// The orchestration instance that sent it (it may hold the
        /// entity's lock); `None` from clients and entities.
        #[serde(rename = "ParentInstanceId", default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(rename = "Reply", default, skip_serializing_if = "Option::is_none")]
        reply: Option<EntityReply>,
    },
    /// A failed instance was rewound: its failed tasks run again.
    ExecutionRewound {
        #[serde(rename = "Reason", default)]
        reason: Option<String>,
    },
    ExecutionCompleted {
        #[serde(rename = "OrchestrationStatus")]
        status: CompletionStatus,
        #[serde(rename = "Result", default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        #[serde(rename = "Failure", default, skip_serializing_if = "Option::is_none")]
        failure: Option<Failure>,
    },
}

impl Event {
    /// The DTFx event type name.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ExecutionStarted { .. } => "ExecutionStarted",
            Self::OrchestratorStarted => "OrchestratorStarted",
            Self::TaskScheduled { .. } => "TaskScheduled",
            Self::TaskCompleted { .. } => "TaskCompleted",
            Self::TaskFailed { .. } => "TaskFailed",
            Self::TaskRetrying { .. } => "TaskRetrying",
            Self::TimerCreated { .. } => "TimerCreated",
            Self::TimerFired { .. } => "TimerFired",
            Self::SubOrchestrationInstanceCreated { .. } => "SubOrchestrationInstanceCreated",
            Self::SubOrchestrationInstanceCompleted { .. } => "SubOrchestrationInstanceCompleted",
            Self::SubOrchestrationInstanceFailed { .. } => "SubOrchestrationInstanceFailed",
            Self::EventRaised { .. } => "EventRaised",
            Self::ExecutionSuspended { .. } => "ExecutionSuspended",
            Self::ExecutionResumed { .. } => "ExecutionResumed",
            Self::ExecutionTerminated { .. } => "ExecutionTerminated",
            Self::OrchestratorCompleted => "OrchestratorCompleted",
            Self::ExecutionRewound { .. } => "ExecutionRewound",
            Self::LockRequested { .. } => "LockRequested",
            Self::LockGranted { .. } => "LockGranted",
            Self::LockReleased { .. } => "LockReleased",
            Self::ExecutionCompleted { .. } => "ExecutionCompleted",
            Self::EntityOperationCalled { .. } => "EntityOperationCalled",
            Self::EntityOperationSignaled { .. } => "EntityOperationSignaled",
            Self::EntityOperationCompleted { .. } => "EntityOperationCompleted",
            Self::EntityOperationFailed { .. } => "EntityOperationFailed",
            Self::EntityRequest { .. } => "EntityRequest",
        }
    }

    /// Encodes the event for the store.
    #[must_use]
    pub fn encode(&self) -> String {
        // Serializing a plain data enum with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes an event written by [`Event::encode`].
    ///
    /// # Errors
    /// The serde error when the text is not a known event.
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// An event with its position and time, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    /// Position in the execution's history, from 0, contiguous.
    pub seq: u64,
    pub timestamp: Millis,
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden encodings: task hubs written by this version must keep loading.
    #[test]
    fn golden_encodings_decode() {
        let golden = [
            (
                r#"{"EventType":"TaskScheduled","EventId":0,"Name":"SayHello","Input":"\"Tokyo\""}"#,
                Event::TaskScheduled {
                    task_id: 0,
                    name: "SayHello".into(),
                    input: "\"Tokyo\"".into(),
                    retry: None,
                },
            ),
            (
                r#"{"EventType":"TaskCompleted","TaskScheduledId":2,"Result":"\"Hello London!\""}"#,
                Event::TaskCompleted {
                    task_id: 2,
                    result: "\"Hello London!\"".into(),
                },
            ),
            (r#"{"EventType":"OrchestratorStarted"}"#, Event::OrchestratorStarted),
            (
                r#"{"EventType":"ExecutionCompleted","OrchestrationStatus":"Completed","Result":"1"}"#,
                Event::ExecutionCompleted {
                    status: CompletionStatus::Completed,
                    result: Some("1".into()),
                    failure: None,
                },
            ),
        ];
        for (text, event) in golden {
            assert_eq!(Event::decode(text).ok().as_ref(), Some(&event), "{text}");
            assert_eq!(event.encode(), text);
        }
    }

    #[test]
    fn retry_delays_follow_the_policy() {
        let p = RetryPolicy {
            max_attempts: 4,
            first_interval_ms: 100,
            backoff_coefficient: 2.0,
            max_interval_ms: Some(300),
            retry_timeout_ms: None,
        };
        assert_eq!(p.delay_before(2, 0, 0), Some(100));
        assert_eq!(p.delay_before(3, 0, 0), Some(200));
        assert_eq!(p.delay_before(4, 0, 0), Some(300));
        assert_eq!(p.delay_before(5, 0, 0), None);
        let t = RetryPolicy {
            retry_timeout_ms: Some(150),
            ..p
        };
        assert_eq!(t.delay_before(2, 0, 0), Some(100));
        assert_eq!(t.delay_before(2, 0, 100), None);
    }
}
