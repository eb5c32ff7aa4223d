//! The decision core: PURE. It turns what happened (a history, the guest's
//! episode, an activity's outcome, an operator's rewind) into what must be
//! stored: the checkpoint with its new events, outbox and instance row
//! change. No I/O, no clock, no randomness: the time, the newest component
//! versions and fresh execution ids are inputs ([`Inputs`]).
//!
//! Providers store what this module returns and decide nothing themselves;
//! the engine gathers the inputs, runs the guest, and calls in here. One
//! rule per question lives here:
//! - which statuses are terminal and which may run again
//!   ([`RuntimeStatus::is_terminal`], [`RuntimeStatus::may_run_again`]);
//! - what each new event schedules ([`outbox_for`]), shared by checkpoints
//!   and rewinds so the two can never disagree (a rewound child keeps its
//!   retry policy);
//! - continue-as-new and a failed child's retry ([`checkpoint`]);
//! - an activity attempt's result, retry or poison ([`activity_outcome`]);
//! - rewind plans ([`rewind`]); lock grants ([`lock_granted`]).

pub mod entity;
#[cfg(test)]
mod tests;

pub use entity::{EntityEffect, EntityPlan, OperationDone, entity_commit, plan_entity};

use std::collections::{HashMap, HashSet};

use crate::history::{Event, Failure, Millis, ParentRef, TaskId};
use crate::replay::{EpisodeOutput, Finish};
use crate::store::{
    ActivityOutcome, Checkpoint, InboxMessage, InstanceRow, Message, NewExecution, Outbox, RewindPlan, RuntimeStatus,
    StoreError, WorkItem,
};

/// What a decision needs from outside the history: the newest deployed
/// version of each orchestrator it may start (children, continue-as-new),
/// and fresh execution ids.
pub struct Inputs<'a> {
    /// Newest orchestrator version by name; a missing name is not deployed.
    pub versions: &'a HashMap<String, String>,
    /// Makes a new execution id (random in the host, a counter in tests).
    pub new_execution_id: &'a mut (dyn FnMut() -> String + Send),
}

/// Orchestrator names whose newest version a checkpoint of `out` may need
/// (`own` is the instance's orchestrator, for continue-as-new and retries).
#[must_use]
pub fn versions_needed(out: &EpisodeOutput, own: &str) -> Vec<String> {
    let mut names = children_named(&out.events);
    // Only a continue-as-new or a failure (retried by a parent's policy)
    // starts a new execution of its own orchestrator.
    if matches!(out.finish, Some(Finish::ContinuedAsNew { .. } | Finish::Failed(_))) {
        names.push(own.to_owned());
    }
    names.sort();
    names.dedup();
    names
}

/// Names of the sub-orchestrations `events` create.
#[must_use]
pub fn children_named(events: &[(Millis, Event)]) -> Vec<String> {
    let mut names: Vec<String> = events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::SubOrchestrationInstanceCreated { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The message that grants a lock request made with task `task_id`.
#[must_use]
pub fn lock_granted(task_id: TaskId) -> Event {
    Event::LockGranted { task_id }
}

/// The JSON stored as the output of a failed instance.
#[must_use]
pub fn failure_json(f: &Failure) -> String {
    serde_json::json!({
        "ErrorType": f.error_type,
        "Message": f.message,
        "Details": f.details,
    })
    .to_string()
}

/// A new execution with its `ExecutionStarted` message.
#[expect(clippy::too_many_arguments, reason = "every field of ExecutionStarted")]
#[must_use]
pub fn new_execution(
    instance_id: &str,
    execution_id: String,
    name: &str,
    version: &str,
    input: &str,
    parent: Option<ParentRef>,
    carried_events: Vec<(String, String)>,
    visible_at: Millis,
) -> NewExecution {
    NewExecution {
        instance_id: instance_id.to_owned(),
        execution_id: execution_id.clone(),
        name: name.to_owned(),
        version: version.to_owned(),
        input: input.to_owned(),
        parent_instance: parent.as_ref().map(|p| p.instance_id.clone()),
        started: Event::ExecutionStarted {
            name: name.to_owned(),
            input: input.to_owned(),
            execution_id,
            version: version.to_owned(),
            parent,
            carried_events,
        },
        visible_at,
    }
}

/// What the new event `e` of execution (`row`) schedules, if anything.
/// `attempt` is the first delivery's attempt number of a work item.
#[must_use]
pub fn outbox_for(row: &InstanceRow, e: &Event, attempt: u32, now: Millis, inputs: &mut Inputs<'_>) -> Option<Outbox> {
    let to_self = |visible_at: Millis, event: Event| {
        Outbox::Message(Message {
            instance_id: row.instance_id.clone(),
            execution_id: Some(row.execution_id.clone()),
            visible_at,
            event,
        })
    };
    match e {
        Event::TaskScheduled {
            task_id,
            name,
            input,
            retry,
        } => Some(Outbox::WorkItem {
            task_id: *task_id,
            name: name.clone(),
            input: input.clone(),
            retry: retry.clone(),
            attempt,
        }),
        Event::TimerCreated { task_id, fire_at } => Some(to_self(
            *fire_at,
            Event::TimerFired {
                task_id: *task_id,
                fire_at: *fire_at,
            },
        )),
        Event::SubOrchestrationInstanceCreated {
            task_id,
            name,
            instance_id,
            input,
            retry,
        } => {
            let Some(version) = inputs.versions.get(name) else {
                return Some(to_self(
                    now,
                    Event::SubOrchestrationInstanceFailed {
                        task_id: *task_id,
                        failure: Failure::new("NotFound", format!("no orchestrator named {name:?} is deployed")),
                    },
                ));
            };
            let parent = ParentRef {
                instance_id: row.instance_id.clone(),
                execution_id: row.execution_id.clone(),
                task_id: *task_id,
                retry: retry.clone(),
                attempt: 1,
                first_scheduled: now,
            };
            let child = new_execution(
                instance_id,
                (inputs.new_execution_id)(),
                name,
                version,
                input,
                Some(parent),
                Vec::new(),
                now,
            );
            let refused = Message {
                instance_id: row.instance_id.clone(),
                execution_id: Some(row.execution_id.clone()),
                visible_at: now,
                event: Event::SubOrchestrationInstanceFailed {
                    task_id: *task_id,
                    failure: Failure::new(
                        "InstanceExists",
                        format!("sub-orchestration instance {instance_id:?} already exists and is not finished"),
                    ),
                },
            };
            Some(Outbox::StartChild { child, refused })
        }
        Event::LockRequested { task_id, names } => Some(Outbox::AcquireLocks {
            task_id: *task_id,
            names: names.clone(),
            granted: lock_granted(*task_id),
        }),
        Event::LockReleased { lock, .. } => Some(Outbox::ReleaseLocks { lock: *lock }),
        Event::EntityOperationCalled { .. } | Event::EntityOperationSignaled { .. } => {
            entity::request_for(&row.instance_id, &row.execution_id, e, now)
        }
        _ => None,
    }
}

/// The status and stored output of an execution that ended with `finish`.
#[must_use]
pub fn finished_status(finish: &Finish) -> (RuntimeStatus, Option<String>) {
    match finish {
        Finish::Completed(o) => (RuntimeStatus::Completed, Some(o.clone())),
        Finish::Failed(f) => (RuntimeStatus::Failed, Some(failure_json(f))),
        Finish::Terminated(r) => (
            RuntimeStatus::Terminated,
            r.as_ref().map(|r| serde_json::Value::from(r.as_str()).to_string()),
        ),
        Finish::ContinuedAsNew { .. } => (RuntimeStatus::ContinuedAsNew, None),
    }
}

/// The checkpoint of an episode of the execution in `row`: its events, the
/// status and output, and the outbox derived from the new events and from
/// how the execution ended (result to the parent, continue-as-new, a
/// failed child's retry). `parent` is the execution's parent reference
/// (from its `ExecutionStarted`).
#[must_use]
pub fn checkpoint(
    row: &InstanceRow,
    consumed: Vec<i64>,
    out: EpisodeOutput,
    parent: Option<&ParentRef>,
    now: Millis,
    inputs: &mut Inputs<'_>,
) -> Checkpoint {
    let mut outbox = Vec::new();
    let (status, output) = match &out.finish {
        None => (RuntimeStatus::Running, None),
        Some(f) => {
            let (s, o) = finished_status(f);
            (
                s,
                if s == RuntimeStatus::ContinuedAsNew {
                    None
                } else {
                    Some(o)
                },
            )
        }
    };
    if out.finish.is_none() {
        outbox.extend(
            out.events
                .iter()
                .filter_map(|(_, e)| outbox_for(row, e, 1, now, inputs)),
        );
    }
    // continue-as-new and a child's retry move to the newest version.
    let next_version = inputs
        .versions
        .get(&row.name)
        .cloned()
        .unwrap_or_else(|| row.version.clone());
    // A failed child whose parent gave a retry policy runs again (a new
    // execution with the original input, after the policy's delay); the
    // parent sees the failed attempt as TaskRetrying.
    let retry_at = match (&out.finish, parent) {
        (Some(Finish::Failed(_)), Some(p)) => p.retry.as_ref().and_then(|policy| {
            policy
                .delay_before(p.attempt + 1, p.first_scheduled, now)
                .map(|d| now.saturating_add(d))
        }),
        _ => None,
    };
    let (status, output) = if retry_at.is_some() {
        (RuntimeStatus::Pending, Some(None))
    } else {
        (status, output)
    };
    match (&out.finish, retry_at, parent) {
        (Some(Finish::Failed(failure)), Some(at), Some(p)) => {
            outbox.push(Outbox::Message(Message {
                instance_id: p.instance_id.clone(),
                execution_id: Some(p.execution_id.clone()),
                visible_at: now,
                event: Event::TaskRetrying {
                    task_id: p.task_id,
                    attempt: p.attempt,
                    failure: failure.clone(),
                    next_attempt_at: at,
                },
            }));
            outbox.push(Outbox::NextExecution(new_execution(
                &row.instance_id,
                (inputs.new_execution_id)(),
                &row.name,
                &next_version,
                row.input.as_deref().unwrap_or("null"),
                Some(ParentRef {
                    attempt: p.attempt + 1,
                    ..p.clone()
                }),
                Vec::new(),
                at,
            )));
        }
        (Some(Finish::ContinuedAsNew { input, carried_events }), _, _) => {
            outbox.push(Outbox::NextExecution(new_execution(
                &row.instance_id,
                (inputs.new_execution_id)(),
                &row.name,
                &next_version,
                input,
                parent.cloned(),
                carried_events.clone(),
                now,
            )));
        }
        (Some(finish), _, Some(p)) => {
            let event = match finish {
                Finish::Completed(o) => Event::SubOrchestrationInstanceCompleted {
                    task_id: p.task_id,
                    result: o.clone(),
                },
                Finish::Failed(f) => Event::SubOrchestrationInstanceFailed {
                    task_id: p.task_id,
                    failure: f.clone(),
                },
                _ => Event::SubOrchestrationInstanceFailed {
                    task_id: p.task_id,
                    failure: Failure::new(
                        "Terminated",
                        format!("sub-orchestration {} was terminated", row.instance_id),
                    ),
                },
            };
            outbox.push(Outbox::Message(Message {
                instance_id: p.instance_id.clone(),
                execution_id: Some(p.execution_id.clone()),
                visible_at: now,
                event,
            }));
        }
        _ => {}
    }
    Checkpoint {
        instance_id: row.instance_id.clone(),
        execution_id: row.execution_id.clone(),
        expected_history_len: row.history_len,
        consumed,
        events: out.events,
        status,
        output,
        custom_status: out.custom_status,
        outbox,
        now,
        lease_until: None,
    }
}

/// The messages that wake a suspended instance (the others wait until it
/// is resumed). Backends select ready instances with this list.
pub const WAKES_SUSPENDED: [&str; 2] = ["ExecutionResumed", "ExecutionTerminated"];

/// What an episode does with the inbox messages it read.
#[derive(Debug, PartialEq)]
pub enum InboxPlan {
    /// A terminate request wins over everything else in the batch; every
    /// message read is consumed.
    Terminate { reason: Option<String> },
    /// The instance is (or stays) suspended: only the suspend and resume
    /// requests are recorded, with messages of earlier executions dropped;
    /// the rest wait in the inbox.
    Suspended {
        messages: Vec<(Millis, Event)>,
        consumed: Vec<i64>,
    },
    /// The guest runs with these messages (suspend/resume first, so that
    /// what waited out a suspension follows the resume that released it);
    /// every message read is consumed.
    Run {
        messages: Vec<(Millis, Event)>,
        consumed: Vec<i64>,
    },
}

/// Plans an episode over `inbox` for `row` (messages addressed to another
/// execution than the current one are stale: consumed, never delivered).
#[must_use]
pub fn plan_inbox(row: &InstanceRow, inbox: &[InboxMessage]) -> InboxPlan {
    let consumed_all: Vec<i64> = inbox.iter().map(|m| m.id).collect();
    let (current, stale): (Vec<&InboxMessage>, Vec<&InboxMessage>) = inbox
        .iter()
        .partition(|m| m.execution_id.as_deref().is_none_or(|e| e == row.execution_id));
    if let Some(reason) = current.iter().find_map(|m| match &m.event {
        Event::ExecutionTerminated { reason } => Some(reason.clone()),
        _ => None,
    }) {
        return InboxPlan::Terminate { reason };
    }
    let control = |m: &&InboxMessage| {
        matches!(
            m.event,
            Event::ExecutionSuspended { .. } | Event::ExecutionResumed { .. }
        )
    };
    let mut suspended = row.status == RuntimeStatus::Suspended;
    for m in &current {
        match m.event {
            Event::ExecutionSuspended { .. } => suspended = true,
            Event::ExecutionResumed { .. } => suspended = false,
            _ => {}
        }
    }
    if suspended {
        let recorded: Vec<&InboxMessage> = current.iter().copied().filter(control).collect();
        let mut consumed: Vec<i64> = recorded.iter().map(|m| m.id).collect();
        consumed.extend(stale.iter().map(|m| m.id));
        return InboxPlan::Suspended {
            messages: recorded.iter().map(|m| (m.timestamp, m.event.clone())).collect(),
            consumed,
        };
    }
    let mut ordered = current;
    ordered.sort_by_key(|m| !control(m));
    InboxPlan::Run {
        messages: ordered.iter().map(|m| (m.timestamp, m.event.clone())).collect(),
        consumed: consumed_all,
    }
}

/// The checkpoint that records suspend/resume messages while the instance
/// stays suspended (the guest does not run).
#[must_use]
pub fn suspension(row: &InstanceRow, consumed: Vec<i64>, messages: Vec<(Millis, Event)>, now: Millis) -> Checkpoint {
    Checkpoint {
        instance_id: row.instance_id.clone(),
        execution_id: row.execution_id.clone(),
        expected_history_len: row.history_len,
        consumed,
        events: messages,
        status: RuntimeStatus::Suspended,
        output: None,
        custom_status: None,
        outbox: Vec::new(),
        now,
        lease_until: None,
    }
}

/// What the end of an activity attempt does: its result or failure to the
/// instance, or (when its retry policy allows another attempt) a
/// `TaskRetrying` and the item kept for `retry_at`. An item delivered more
/// than `max_deliveries` times fails as poison and is not retried.
#[must_use]
pub fn activity_outcome(
    item: &WorkItem,
    outcome: Result<String, Failure>,
    now: Millis,
    max_deliveries: u32,
) -> ActivityOutcome {
    let retry_at = match (&outcome, &item.retry) {
        (Err(_), Some(policy)) if item.attempt <= max_deliveries => policy
            .delay_before(item.attempt + 1, item.first_scheduled, now)
            .map(|d| now.saturating_add(d)),
        _ => None,
    };
    let message = match (outcome, retry_at) {
        (Err(failure), Some(at)) => Event::TaskRetrying {
            task_id: item.task_id,
            attempt: item.attempt,
            failure,
            next_attempt_at: at,
        },
        (Ok(result), _) => Event::TaskCompleted {
            task_id: item.task_id,
            result,
        },
        (Err(failure), None) => Event::TaskFailed {
            task_id: item.task_id,
            failure,
        },
    };
    ActivityOutcome { message, retry_at }
}

/// The failure of an item delivered more than `max_deliveries` times.
#[must_use]
pub fn poison(item: &WorkItem) -> Failure {
    Failure::new(
        "PoisonMessage",
        format!(
            "activity {:?} was delivered {} times without completing (engine.max_deliveries)",
            item.name,
            item.attempt.saturating_sub(1)
        ),
    )
}

/// Plans the rewind of a Failed instance: its failure and the failed task
/// results leave the history, every task without a result is scheduled
/// again exactly as a checkpoint would have scheduled it ([`outbox_for`]:
/// a child keeps its retry policy; an activity's attempts keep counting),
/// and an `ExecutionRewound` message makes it run from its last good state.
///
/// # Errors
/// [`StoreError::NotFailed`] for an instance that is not Failed.
pub fn rewind(
    row: &InstanceRow,
    history: &[(Millis, Event)],
    reason: Option<String>,
    now: Millis,
    inputs: &mut Inputs<'_>,
) -> Result<RewindPlan, StoreError> {
    if row.status != RuntimeStatus::Failed {
        return Err(StoreError::NotFailed {
            id: row.instance_id.clone(),
            status: row.status,
        });
    }
    let kept: Vec<(Millis, Event)> = history
        .iter()
        .filter(|(_, e)| {
            !matches!(
                e,
                Event::TaskFailed { .. }
                    | Event::SubOrchestrationInstanceFailed { .. }
                    | Event::ExecutionCompleted { .. }
            )
        })
        .cloned()
        .collect();
    let done: HashSet<TaskId> = kept
        .iter()
        .filter_map(|(_, e)| match e {
            Event::TaskCompleted { task_id, .. }
            | Event::TimerFired { task_id, .. }
            | Event::SubOrchestrationInstanceCompleted { task_id, .. } => Some(*task_id),
            _ => None,
        })
        .collect();
    let mut outbox = Vec::new();
    for (_, e) in &kept {
        let pending = match e {
            Event::TaskScheduled { task_id, .. }
            | Event::TimerCreated { task_id, .. }
            | Event::SubOrchestrationInstanceCreated { task_id, .. } => !done.contains(task_id),
            _ => false,
        };
        if !pending {
            continue;
        }
        // Attempts keep counting across a rewind.
        let attempt = match e {
            Event::TaskScheduled { task_id, .. } => {
                let earlier = history
                    .iter()
                    .filter(|(_, h)| {
                        matches!(h, Event::TaskRetrying { task_id: t, .. } | Event::TaskFailed { task_id: t, .. } if t == task_id)
                    })
                    .count();
                u32::try_from(earlier).unwrap_or(u32::MAX - 1) + 1
            }
            _ => 1,
        };
        if let Some(item) = outbox_for(row, e, attempt, now, inputs) {
            outbox.push(item);
        }
    }
    Ok(RewindPlan {
        instance_id: row.instance_id.clone(),
        execution_id: row.execution_id.clone(),
        expected_history_len: row.history_len,
        history: kept,
        outbox,
        message: Message {
            instance_id: row.instance_id.clone(),
            execution_id: Some(row.execution_id.clone()),
            visible_at: now,
            event: Event::ExecutionRewound { reason },
        },
        now,
    })
}
