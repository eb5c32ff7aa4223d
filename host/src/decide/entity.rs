//! Entities: which queued requests a batch runs, parks or drops, and what
//! the batch commits (the new state, replies to callers, the signals and
//! orchestration starts its operations sent). PURE, like the rest of
//! [`crate::decide`].
//!
//! The rules:
//! - requests run one at a time in arrival (inbox) order;
//! - while an orchestration holds the entity's lock (`@name@key`), only
//!   requests it sent run; the others are parked, in order, and become
//!   due again when the lock is released;
//! - a batch runs at most `max_batch` requests; the rest wait, in order,
//!   for the next batch;
//! - anything in an entity's inbox that is not a request is dropped;
//! - every request a batch consumes must still be queued when it commits
//!   (the provider checks), so each is applied exactly once.

use std::collections::HashMap;

use super::new_execution;
use crate::history::{EntityReply, Event, Failure, Millis};
use crate::ids::EntityId;
use crate::store::{EntityCommit, InboxMessage, Message, Outbox};

/// A request a batch runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Its inbox message.
    pub message_id: i64,
    pub request_id: String,
    pub operation: String,
    pub input: String,
    pub reply: Option<EntityReply>,
}

/// What a batch does with the entity's queue.
#[derive(Debug, Default, PartialEq)]
pub struct EntityPlan {
    /// Requests to run, in order.
    pub run: Vec<Request>,
    /// Requests set aside behind the lock of `holder`.
    pub parked: Vec<i64>,
    /// Messages that are not requests.
    pub dropped: Vec<i64>,
    /// The lock holder the plan was made under.
    pub holder: Option<String>,
}

/// Plans a batch over the entity's visible `inbox` (oldest first), read
/// before `holder`, the instance holding the entity's lock.
#[must_use]
pub fn plan_entity(inbox: &[InboxMessage], holder: Option<&str>, max_batch: usize) -> EntityPlan {
    let mut plan = EntityPlan {
        holder: holder.map(str::to_owned),
        ..EntityPlan::default()
    };
    for m in inbox {
        let Event::EntityRequest {
            request_id,
            operation,
            input,
            from,
            reply,
        } = &m.event
        else {
            plan.dropped.push(m.id);
            continue;
        };
        if let Some(h) = holder
            && from.as_deref() != Some(h)
        {
            plan.parked.push(m.id);
            continue;
        }
        if plan.run.len() >= max_batch {
            // Later requests keep their place for the next batch.
            break;
        }
        plan.run.push(Request {
            message_id: m.id,
            request_id: request_id.clone(),
            operation: operation.clone(),
            input: input.clone(),
            reply: reply.clone(),
        });
    }
    plan
}

/// A signal or an orchestration start sent by an entity operation.
#[derive(Debug, Clone, PartialEq)]
pub enum EntityEffect {
    Signal {
        entity: EntityId,
        operation: String,
        input: String,
        scheduled_at: Option<Millis>,
    },
    Start {
        name: String,
        input: String,
        instance_id: String,
    },
}

/// What one operation did: its result or failure, and (when it succeeded)
/// what it sent.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationDone {
    pub outcome: Result<String, Failure>,
    pub effects: Vec<EntityEffect>,
}

/// The request that carries an orchestration's call or signal of an
/// entity operation, or `None` when `e` is neither (or names no valid
/// entity).
#[must_use]
pub fn request_for(instance_id: &str, execution_id: &str, e: &Event, now: Millis) -> Option<Outbox> {
    let (task_id, entity, operation, input, scheduled_at, call) = match e {
        Event::EntityOperationCalled {
            task_id,
            entity,
            operation,
            input,
        } => (*task_id, entity, operation, input, None, true),
        Event::EntityOperationSignaled {
            task_id,
            entity,
            operation,
            input,
            scheduled_at,
        } => (*task_id, entity, operation, input, *scheduled_at, false),
        _ => return None,
    };
    let target = EntityId::parse(entity).ok()?;
    Some(to_entity(
        &target,
        scheduled_at.unwrap_or(now),
        Event::EntityRequest {
            request_id: format!("{instance_id}:{execution_id}:{task_id}"),
            operation: operation.clone(),
            input: input.clone(),
            from: Some(instance_id.to_owned()),
            reply: call.then(|| EntityReply {
                instance_id: instance_id.to_owned(),
                execution_id: execution_id.to_owned(),
                task_id,
            }),
        },
    ))
}

/// A request from a client (the API, the CLI): a signal, one way.
#[must_use]
pub fn client_signal(
    target: &EntityId,
    request_id: String,
    operation: &str,
    input: &str,
    visible_at: Millis,
) -> Outbox {
    to_entity(
        target,
        visible_at,
        Event::EntityRequest {
            request_id,
            operation: operation.to_owned(),
            input: input.to_owned(),
            from: None,
            reply: None,
        },
    )
}

fn to_entity(target: &EntityId, visible_at: Millis, event: Event) -> Outbox {
    Outbox::ToEntity {
        name: target.name().to_owned(),
        message: Message {
            instance_id: target.instance_id(),
            execution_id: None,
            visible_at,
            event,
        },
    }
}

/// Names of the orchestrators the operations in `done` start.
#[must_use]
pub fn started_names(done: &[OperationDone]) -> Vec<String> {
    let mut names: Vec<String> = done
        .iter()
        .flat_map(|d| &d.effects)
        .filter_map(|e| match e {
            EntityEffect::Start { name, .. } => Some(name.clone()),
            EntityEffect::Signal { .. } => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The commit of a batch planned by [`plan_entity`] whose operations ran
/// with results `done` (one per `plan.run`, in order) and left `state`.
/// Starts of orchestrators missing from `versions` are left out and named
/// in the second value (for the log).
#[must_use]
pub fn entity_commit(
    entity: &EntityId,
    plan: EntityPlan,
    state: Option<String>,
    done: Vec<OperationDone>,
    now: Millis,
    versions: &HashMap<String, String>,
    new_execution_id: &mut dyn FnMut() -> String,
) -> (EntityCommit, Vec<String>) {
    let mut outbox = Vec::new();
    let mut skipped = Vec::new();
    let mut consumed: Vec<i64> = plan.run.iter().map(|r| r.message_id).collect();
    consumed.extend(&plan.dropped);
    for (request, d) in plan.run.iter().zip(done) {
        if let Some(reply) = &request.reply {
            let event = match d.outcome {
                Ok(result) => Event::EntityOperationCompleted {
                    task_id: reply.task_id,
                    result,
                },
                Err(failure) => Event::EntityOperationFailed {
                    task_id: reply.task_id,
                    failure,
                },
            };
            outbox.push(Outbox::Message(Message {
                instance_id: reply.instance_id.clone(),
                execution_id: Some(reply.execution_id.clone()),
                visible_at: now,
                event,
            }));
        }
        for (n, effect) in d.effects.into_iter().enumerate() {
            match effect {
                EntityEffect::Signal {
                    entity: target,
                    operation,
                    input,
                    scheduled_at,
                } => outbox.push(to_entity(
                    &target,
                    scheduled_at.unwrap_or(now),
                    Event::EntityRequest {
                        request_id: format!("{}>{}:{n}", entity, request.request_id),
                        operation,
                        input,
                        from: None,
                        reply: None,
                    },
                )),
                EntityEffect::Start {
                    name,
                    input,
                    instance_id,
                } => match versions.get(&name) {
                    Some(version) => outbox.push(Outbox::Start(new_execution(
                        &instance_id,
                        new_execution_id(),
                        &name,
                        version,
                        &input,
                        None,
                        Vec::new(),
                        now,
                    ))),
                    None => skipped.push(format!(
                        "entity {entity} (request {}) started orchestrator {name:?}, which is not deployed",
                        request.request_id
                    )),
                },
            }
        }
    }
    (
        EntityCommit {
            entity_id: entity.instance_id(),
            consumed,
            parked: plan.parked,
            holder: plan.holder,
            state,
            outbox,
            now,
            lease_until: None,
        },
        skipped,
    )
}
