//! Entity batches: read an entity's queue, run its requests in order in
//! its component, commit the new state with the replies, signals and starts
//! in one transaction. What runs, what is parked and what is committed is
//! decided by [`crate::decide::entity`]; this drives it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Engine;
use crate::clock::now_ms;
use crate::decide::{self, OperationDone};
use crate::history::Failure;
use crate::ids::EntityId;
use crate::sandbox::{EntityOperation, EntityRunError};
use crate::store::{FunctionKind, StoreError};

/// Most requests one batch runs (the rest follow in the next batch).
pub const MAX_ENTITY_BATCH: usize = 1000;

impl Engine {
    /// One batch of entity `entity` (instance id `id`).
    pub(super) async fn entity_episode(self: &Arc<Self>, id: &str, entity: EntityId) -> Result<(), StoreError> {
        let now = now_ms();
        if !self.config.exclusive && !self.store.lease_instance(id, &self.instance_lease(), now).await? {
            // Another host runs it.
            return Ok(());
        }
        // An entity has no history: the "hot" key of an empty one skips it.
        let key = Some((String::new(), 0, String::new()));
        let Some(input) = self.store.load_episode(id, now, key).await? else {
            self.let_go(id).await;
            return Ok(());
        };
        if input.messages.is_empty() {
            self.let_go(id).await;
            return Ok(());
        }
        // Read after the queue: a request in it from a lock holder was
        // sent while it held the lock, so the holder read here is the one
        // it was sent under (or a later one).
        let holder = self.store.lock_holder(id).await?;
        let plan = decide::plan_entity(&input.messages, holder.as_deref(), MAX_ENTITY_BATCH);
        let state = input.instance.output.clone();
        let (state, done) = if plan.run.is_empty() {
            (state, Vec::new())
        } else {
            self.metrics.episodes.fetch_add(1, Ordering::Relaxed);
            self.run_entity(&entity, state, &plan, now).await?
        };
        for d in &done {
            let outcome = if d.outcome.is_ok() { "completed" } else { "failed" };
            crate::metrics::Telemetry::count_entity_operation(
                &self.telemetry.entity_operations,
                entity.name(),
                outcome,
            );
        }
        let versions = self.newest_versions(decide::entity::started_names(&done)).await;
        let mut ids = crate::ids::random_hex;
        let (commit, skipped) = decide::entity_commit(&entity, plan, state, done, now, &versions, &mut ids);
        for s in skipped {
            tracing::warn!(entity = %entity, "{s}");
        }
        let due = commit
            .outbox
            .iter()
            .filter_map(|o| match o {
                crate::store::Outbox::ToEntity { message, .. } => Some(message.visible_at),
                _ => None,
            })
            .filter(|at| *at > now)
            .min();
        self.store.commit_entity(commit, self.lease()).await?;
        if let Some(at) = due {
            self.due.note(at);
        }
        Ok(())
    }

    /// Runs the planned requests in the newest version of the entity's
    /// component; every request fails with `NotFound` when no component
    /// implements the entity.
    async fn run_entity(
        &self,
        entity: &EntityId,
        state: Option<String>,
        plan: &decide::EntityPlan,
        now: crate::history::Millis,
    ) -> Result<(Option<String>, Vec<OperationDone>), StoreError> {
        let fail_all = |f: Failure| {
            plan.run
                .iter()
                .map(|_| OperationDone {
                    outcome: Err(f.clone()),
                    effects: Vec::new(),
                })
                .collect::<Vec<_>>()
        };
        let hash = match self.version_of(entity.name(), FunctionKind::Entity).await {
            Ok(h) => h,
            Err(StoreError::FunctionNotFound { .. }) => {
                let f = Failure::new(
                    "NotFound",
                    format!(
                        "no entity named {:?} is deployed; deploy a component that implements it",
                        entity.name()
                    ),
                );
                return Ok((state, fail_all(f)));
            }
            Err(e) => return Err(e),
        };
        let loaded = match self.load_version(&hash).await {
            Ok(l) => l,
            Err(e) => return Ok((state, fail_all(Failure::new("VersionUnavailable", e.to_string())))),
        };
        let ops = plan
            .run
            .iter()
            .map(|r| EntityOperation {
                request_id: r.request_id.clone(),
                operation: r.operation.clone(),
                input: r.input.clone(),
            })
            .collect();
        match self
            .sandbox
            .run_entity_batch(&loaded, entity, state.clone(), ops, now)
            .await
        {
            Ok(out) => Ok(out),
            Err(EntityRunError::NotAnEntity(hash)) => Ok((
                state,
                fail_all(Failure::new(
                    "NotFound",
                    format!("component {hash} implements no entity named {:?}", entity.name()),
                )),
            )),
            // Nothing of the batch counts: it runs again.
            Err(EntityRunError::HostExhausted(why)) => Err(StoreError::Busy(why)),
        }
    }
}
