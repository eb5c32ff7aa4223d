//! The management interface ([`cairn_client::Management`]) on a task hub:
//! what `cairn VERB` runs locally and what the server's own routes answer
//! with, so that the command line prints the same documents with and
//! without `--url`.

use std::sync::Arc;
use std::time::Duration;

use cairn_client::{
    ComponentVersion, Control, DeployReport, DeployedFunction, Description, EntityDocument, EntityKey, EntityPage,
    EntityQuery, EntitySignal, Error, Grants, InstanceStatus, InstanceVerdict, ListQuery, Lock, Management, Page,
    PurgeFilter, ReplayReport, StartRequest, StatusOptions, UpgradeOptions, UpgradeReport, Wait,
};
use serde_json::{Map, Value, json};

use crate::api::http::HttpError;
use crate::clock::iso;
use crate::engine::{Engine, EngineConfig, wait_for_instance};
use crate::history::{Event, Millis};
use crate::hub::{Hub, HubError};
use crate::ids::EntityId;
use crate::status::{history_event_json, status_json};
use crate::store::{Hosting, InstanceRow, RuntimeStatus, StoreError};
use crate::upgrade::Verdict;

/// One mapping from the library's errors to the interface's kinds: the
/// HTTP status the API answers with decides the kind, locally too.
fn kind(e: HttpError) -> Error {
    use hyper::StatusCode as S;
    let m = e.detail;
    match e.status {
        S::NOT_FOUND => Error::NotFound(m),
        S::BAD_REQUEST | S::PAYLOAD_TOO_LARGE | S::UNSUPPORTED_MEDIA_TYPE => Error::BadRequest(m),
        S::CONFLICT | S::GONE | S::PRECONDITION_FAILED => Error::Conflict(m),
        S::UNAUTHORIZED | S::FORBIDDEN => Error::Unauthorized(m),
        S::SERVICE_UNAVAILABLE => Error::Unavailable(m),
        _ => Error::Other(m),
    }
}

fn hub_err(e: HubError) -> Error {
    kind(e.into())
}

fn store_err(e: StoreError) -> Error {
    match e {
        // Another process serves this one-host task hub.
        StoreError::HostBusy(_) => Error::Unavailable(e.to_string()),
        e => kind(e.into()),
    }
}

fn admin_err(e: crate::admin::AdminError) -> Error {
    kind(e.into())
}

/// The interface's error as the HTTP error the API answers with.
impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(m) => Self::not_found(m),
            Error::BadRequest(m) => Self::bad_request(m),
            Error::Conflict(m) => Self::conflict(hyper::StatusCode::CONFLICT, m),
            Error::Unauthorized(m) => Self::forbidden(m),
            Error::Unavailable(m) | Error::Connect(m) => Self::unavailable(m),
            Error::Other(m) => Self::internal(m),
        }
    }
}

fn time(flag: &str, value: Option<&str>) -> Result<Option<Millis>, Error> {
    value
        .map(|v| {
            crate::clock::parse_iso(v).ok_or_else(|| {
                Error::BadRequest(format!(
                    "{flag} {v:?}: expected an ISO 8601 time such as 2024-01-31T12:00:00Z"
                ))
            })
        })
        .transpose()
}

fn statuses(values: &[String]) -> Result<Vec<RuntimeStatus>, Error> {
    values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| {
            RuntimeStatus::parse(v).ok_or_else(|| {
                Error::BadRequest(format!(
                    "runtime status {v:?}: expected Pending, Running, Completed, ContinuedAsNew, Failed, Canceled, Terminated or Suspended"
                ))
            })
        })
        .collect()
}

fn entity_id(name: &str, key: &str) -> Result<EntityId, Error> {
    EntityId::new(name, key).map_err(|e| Error::BadRequest(e.to_string()))
}

fn document<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v)
        .map_err(|e| Error::Other(format!("internal error: a document does not fit its type: {e}")))
}

/// An instance's status document.
fn status_of(
    row: &InstanceRow,
    history: Option<&[(Millis, Event)]>,
    o: StatusOptions,
) -> Result<InstanceStatus, Error> {
    let opts = crate::status::StatusOptions {
        show_input: o.show_input,
        show_output: o.show_output,
        show_history: o.show_history,
        show_history_output: o.show_output,
    };
    document(status_json(row, history, opts))
}

fn verdict_parts(v: &Verdict) -> (&'static str, Option<String>, Option<String>) {
    match v {
        Verdict::ReplaysCleanly => ("replays-cleanly", None, None),
        Verdict::InputChanged { message } => (
            "input-changed",
            Some(crate::upgrade::INPUT_CHANGED.to_owned()),
            Some(message.clone()),
        ),
        Verdict::Diverges { error_type, message } => ("diverges", Some(error_type.clone()), Some(message.clone())),
    }
}

/// The management interface on a task hub.
#[derive(Clone)]
pub struct Local {
    hub: Hub,
    /// The engine serving the task hub in this process (a server); without
    /// one, [`Management::wait`] runs the engine itself when nothing serves
    /// the task hub.
    engine: Option<Arc<Engine>>,
}

impl Local {
    /// On `hub`, without an engine of this process.
    #[must_use]
    pub fn new(hub: Hub) -> Self {
        Self { hub, engine: None }
    }

    /// On `hub`, served by `engine` in this process.
    #[must_use]
    pub fn served(hub: Hub, engine: Arc<Engine>) -> Self {
        Self {
            hub,
            engine: Some(engine),
        }
    }

    /// The task hub.
    #[must_use]
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// True when no host serves this task hub (known only for one-host
    /// backends: SQLite; a shared PostgreSQL hub may have hosts anywhere).
    /// Claims nothing: a server may start right after.
    #[must_use]
    pub fn nobody_serves(&self) -> bool {
        self.engine.is_none() && self.hub.store.served_elsewhere() == Some(false)
    }

    async fn row(&self, id: &str) -> Result<InstanceRow, Error> {
        self.hub
            .store
            .get_instance(id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| Error::NotFound(format!("instance {id:?} not found")))
    }

    async fn history_of(&self, id: &str) -> Result<Vec<(Millis, Event)>, Error> {
        self.hub.store.get_history(id).await.map_err(store_err)
    }
}

#[async_trait::async_trait]
impl Management for Local {
    async fn start(&self, r: &StartRequest) -> Result<String, Error> {
        let input = r.input.as_ref().map(Value::to_string);
        let id = self
            .hub
            .start(
                &r.name,
                input.as_deref(),
                r.instance_id.as_deref(),
                r.version.as_deref(),
            )
            .await
            .map_err(hub_err)?;
        Ok(id.as_str().to_owned())
    }

    async fn status(&self, id: &str, options: StatusOptions) -> Result<InstanceStatus, Error> {
        let row = self.row(id).await?;
        let history = if options.show_history {
            Some(self.history_of(id).await?)
        } else {
            None
        };
        status_of(&row, history.as_deref(), options)
    }

    async fn wait(&self, id: &str, timeout: Duration) -> Result<InstanceStatus, Error> {
        let all = StatusOptions {
            show_input: true,
            show_output: true,
            show_history: false,
        };
        let row = if let Some(engine) = &self.engine {
            engine.wait_for(id, timeout).await.map_err(store_err)?
        } else {
            match self.hub.store.claim_host() {
                // Nothing serves the task hub: run the engine here until the
                // instance finishes (on a shared hub, beside the servers).
                Ok(hosting) => {
                    let config = EngineConfig {
                        exclusive: hosting == Hosting::Exclusive,
                        ..EngineConfig::default()
                    };
                    let engine = Engine::new(self.hub.store.clone(), self.hub.sandbox.clone(), config);
                    let running = engine.run();
                    let row = engine.wait_for(id, timeout).await;
                    running.shutdown(&engine, Duration::from_secs(5)).await;
                    row.map_err(store_err)?
                }
                Err(StoreError::HostBusy(_)) => wait_for_instance(&self.hub.store, None, id, timeout)
                    .await
                    .map_err(store_err)?,
                Err(e) => return Err(store_err(e)),
            }
        };
        status_of(&row, None, all)
    }

    async fn list(&self, q: &ListQuery) -> Result<Page, Error> {
        let query = crate::store::InstanceQuery {
            created_from: time("createdTimeFrom", q.created_from.as_deref())?,
            created_to: time("createdTimeTo", q.created_to.as_deref())?,
            statuses: statuses(&q.statuses)?,
            id_prefix: q.id_prefix.clone().filter(|p| !p.is_empty()),
            name: q.name.clone().filter(|n| !n.is_empty()),
            top: None,
            after: None,
        };
        let page = self
            .hub
            .list_page(query, q.top, q.continuation.as_deref())
            .await
            .map_err(admin_err)?;
        let opts = StatusOptions {
            show_input: q.show_input,
            show_output: true,
            show_history: false,
        };
        Ok(Page {
            instances: page
                .instances
                .iter()
                .map(|r| status_of(r, None, opts))
                .collect::<Result<_, _>>()?,
            continuation: page.continuation,
        })
    }

    async fn history(&self, id: &str) -> Result<Vec<Value>, Error> {
        self.row(id).await?;
        Ok(self
            .history_of(id)
            .await?
            .iter()
            .map(|(ts, e)| history_event_json(*ts, e, true))
            .collect())
    }

    async fn raise_event(&self, id: &str, event: &str, data: Option<Value>) -> Result<(), Error> {
        let data = data.map(|d| d.to_string());
        self.hub.raise_event(id, event, data.as_deref()).await.map_err(hub_err)
    }

    async fn control(&self, id: &str, action: Control, reason: Option<&str>) -> Result<(), Error> {
        let reason = reason.map(str::to_owned);
        let event = match action {
            Control::Terminate => Event::ExecutionTerminated { reason },
            Control::Suspend => Event::ExecutionSuspended { reason },
            Control::Resume => Event::ExecutionResumed { reason },
            Control::Rewind => return self.hub.rewind(id, reason.as_deref()).await.map_err(hub_err),
        };
        self.hub.control(id, event).await.map_err(hub_err)
    }

    async fn restart(&self, id: &str, new_instance_id: bool) -> Result<String, Error> {
        let id = self.hub.restart(id, new_instance_id).await.map_err(admin_err)?;
        Ok(id.as_str().to_owned())
    }

    async fn purge_instance(&self, id: &str) -> Result<(), Error> {
        self.hub.purge_instance(id).await.map_err(admin_err)
    }

    async fn purge(&self, f: &PurgeFilter) -> Result<u64, Error> {
        let filter = crate::admin::PurgeFilter {
            created_from: time("createdTimeFrom", f.created_from.as_deref())?.unwrap_or(0),
            created_to: time("createdTimeTo", f.created_to.as_deref())?,
            statuses: statuses(&f.statuses)?,
        };
        self.hub.purge_instances(&filter).await.map_err(admin_err)
    }

    async fn deploy(&self, wasm: Vec<u8>, grants: &Grants) -> Result<DeployReport, Error> {
        let grants = crate::sandbox::Grants::from_specs(grants.env.clone(), &grants.dirs, grants.http.clone())
            .map_err(Error::BadRequest)?;
        let report = self.hub.deploy_with(wasm, grants).await.map_err(hub_err)?;
        Ok(DeployReport {
            hash: report.hash,
            size: report.size as u64,
            functions: report
                .functions
                .into_iter()
                .map(|(name, kind)| DeployedFunction {
                    name,
                    kind: kind.to_string(),
                })
                .collect(),
        })
    }

    async fn components(&self) -> Result<Vec<ComponentVersion>, Error> {
        Ok(self
            .hub
            .store
            .list_functions()
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|v| ComponentVersion {
                name: v.name,
                kind: v.kind.as_str().to_owned(),
                hash: v.hash,
                deployed_at: iso(v.deployed_at),
            })
            .collect())
    }

    async fn upgrade_check(&self, name: &str, wasm: Vec<u8>, o: UpgradeOptions) -> Result<UpgradeReport, Error> {
        let options = crate::upgrade::UpgradeOptions {
            apply: o.apply,
            allow_input_changes: o.allow_input_changes,
        };
        let report = crate::upgrade::check(&self.hub, name, wasm, options)
            .await
            .map_err(hub_err)?;
        Ok(UpgradeReport {
            name: report.name,
            candidate: report.candidate,
            moved: report.moved,
            instances: report
                .instances
                .into_iter()
                .map(|i| {
                    let (verdict, error_type, message) = verdict_parts(&i.verdict);
                    InstanceVerdict {
                        instance_id: i.instance_id,
                        from_version: i.from_version,
                        verdict: verdict.to_owned(),
                        error_type,
                        message,
                    }
                })
                .collect(),
        })
    }

    async fn replay(&self, id: &str, component: Option<Vec<u8>>, until: Option<usize>) -> Result<ReplayReport, Error> {
        if let Some(until) = until {
            let travel = crate::timetravel::replay_until(&self.hub, id, until, component)
                .await
                .map_err(hub_err)?;
            let mut details = match serde_json::to_value(&travel) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            for k in ["instanceId", "version", "until", "state"] {
                details.remove(k);
            }
            return Ok(ReplayReport {
                instance_id: travel.instance_id,
                version: travel.version,
                verdict: travel.state.to_owned(),
                identical: travel.error.is_none(),
                until: Some(until),
                details,
            });
        }
        let report = crate::upgrade::replay_finished(&self.hub, id, component)
            .await
            .map_err(hub_err)?;
        let (verdict, error_type, message) = verdict_parts(&report.verdict);
        let mut details = Map::new();
        if let Some(t) = error_type {
            details.insert("errorType".into(), json!(t));
        }
        if let Some(m) = message {
            details.insert("message".into(), json!(m));
        }
        details.insert(
            "recorded".into(),
            serde_json::to_value(&report.recorded).unwrap_or(Value::Null),
        );
        details.insert(
            "replayed".into(),
            serde_json::to_value(&report.replayed).unwrap_or(Value::Null),
        );
        Ok(ReplayReport {
            identical: report.is_identical(),
            instance_id: report.instance_id,
            version: report.version,
            verdict: verdict.to_owned(),
            until: None,
            details,
        })
    }

    async fn describe(&self, id: &str) -> Result<Description, Error> {
        let row = self.row(id).await?;
        let history = self.history_of(id).await?;
        let locks = self.hub.store.list_locks().await.map_err(store_err)?;
        let locks_held: Vec<String> = locks
            .iter()
            .filter(|l| l.holder.as_ref().is_some_and(|(h, _)| h == id))
            .map(|l| l.name.clone())
            .collect();
        let mut waiting_for = Vec::new();
        let mut note = None;
        let unfinished = !row.status.is_terminal() && row.status != RuntimeStatus::ContinuedAsNew;
        if unfinished && !history.is_empty() {
            match crate::timetravel::replay_until(&self.hub, id, history.len() - 1, None).await {
                Ok(travel) if travel.error.is_none() => {
                    waiting_for = waits(&history, &travel, &locks, id);
                }
                Ok(travel) => {
                    note = travel.error.map(|f| {
                        format!(
                            "the replay that finds the waits failed: {}: {}",
                            f.error_type, f.message
                        )
                    });
                }
                Err(e) => note = Some(format!("the replay that finds the waits failed: {e}")),
            }
        }
        let custom_status = row
            .custom_status
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        Ok(Description {
            instance_id: row.instance_id,
            name: row.name,
            runtime_status: row.status.as_str().to_owned(),
            version: row.version,
            created_time: crate::clock::iso_seconds(row.created_at),
            last_updated_time: crate::clock::iso_seconds(row.updated_at),
            history_events: history.len(),
            custom_status,
            waiting_for,
            locks_held,
            note,
        })
    }

    async fn locks(&self) -> Result<Vec<Lock>, Error> {
        Ok(self
            .hub
            .store
            .list_locks()
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|l| Lock {
                name: l.name,
                held_since: l.holder.as_ref().map(|(_, at)| iso(*at)),
                holder: l.holder.map(|(h, _)| h),
                waiting: l.waiting,
            })
            .collect())
    }

    async fn prune_versions(&self) -> Result<Vec<String>, Error> {
        self.hub.store.prune_unused_versions().await.map_err(store_err)
    }

    async fn delete_task_hub(&self) -> Result<u64, Error> {
        if self.engine.is_none() {
            // Not under a running server of a one-host task hub.
            self.hub.store.claim_host().map_err(store_err)?;
        }
        self.hub.delete_task_hub().await.map_err(admin_err)
    }

    async fn signal_entity(&self, s: &EntitySignal) -> Result<bool, Error> {
        let id = entity_id(&s.name, &s.key)?;
        let input = s.input.as_ref().map(Value::to_string);
        self.hub
            .signal_entity(&id, &s.operation, input.as_deref(), s.idempotency_key.as_deref())
            .await
            .map_err(hub_err)
    }

    async fn entity_state(&self, name: &str, key: &str) -> Result<Value, Error> {
        let id = entity_id(name, key)?;
        let state = self
            .hub
            .entity_state(&id)
            .await
            .map_err(hub_err)?
            .and_then(|e| e.state)
            .ok_or_else(|| Error::NotFound(format!("entity {id} does not exist (it has no state)")))?;
        Ok(serde_json::from_str(&state).unwrap_or(Value::String(state)))
    }

    async fn list_entities(&self, q: &EntityQuery) -> Result<EntityPage, Error> {
        if let Some(n) = &q.name {
            entity_id(n, "")?;
        }
        let filter = crate::entities::EntityFilter {
            name: q.name.clone(),
            ..crate::entities::EntityFilter::default()
        };
        let page = self
            .hub
            .list_entities(filter, q.top, q.continuation.as_deref())
            .await
            .map_err(admin_err)?;
        Ok(EntityPage {
            entities: page
                .entities
                .iter()
                .map(|e| EntityDocument {
                    entity_id: EntityKey {
                        name: e.id.name().to_owned(),
                        key: e.id.key().to_owned(),
                    },
                    last_operation_time: iso(e.last_operation),
                    state: q.fetch_state.then(|| {
                        e.state
                            .as_deref()
                            .and_then(|s| serde_json::from_str(s).ok())
                            .unwrap_or(Value::Null)
                    }),
                })
                .collect(),
            continuation: page.continuation,
        })
    }

    async fn purge_entities(&self, name: Option<&str>) -> Result<u64, Error> {
        if let Some(n) = name {
            entity_id(n, "")?;
        }
        self.hub.purge_empty_entities(name).await.map_err(hub_err)
    }
}

/// What an unfinished instance waits for, from a replay of its whole
/// history (the open tasks) and the history (when each was scheduled).
fn waits(
    history: &[(Millis, Event)],
    travel: &crate::timetravel::TimeTravel,
    locks: &[crate::store::LockInfo],
    id: &str,
) -> Vec<Wait> {
    let scheduled_at = |index: Option<usize>| index.and_then(|i| history.get(i)).map(|(ts, _)| iso(*ts));
    travel
        .pending
        .iter()
        .map(|p| {
            let mut w = Wait {
                kind: p.kind.to_owned(),
                name: p.name.clone(),
                task_id: Some(u64::from(p.task_id)),
                since: scheduled_at(p.scheduled_index),
                fire_at: None,
                child: None,
                attempt: None,
            };
            for (_, e) in history {
                match e {
                    Event::TimerCreated { task_id, fire_at } if *task_id == p.task_id => {
                        w.fire_at = Some(iso(*fire_at));
                    }
                    Event::SubOrchestrationInstanceCreated {
                        task_id, instance_id, ..
                    } if *task_id == p.task_id => {
                        w.child = Some(instance_id.clone());
                    }
                    Event::EntityOperationCalled { task_id, entity, .. } if *task_id == p.task_id => {
                        w.child = Some(entity.clone());
                    }
                    Event::TaskRetrying { task_id, attempt, .. } if *task_id == p.task_id => {
                        w.attempt = Some(attempt.saturating_add(1));
                    }
                    _ => {}
                }
            }
            if p.kind == "activity" || p.kind == "http" {
                w.attempt = w.attempt.or(Some(1));
            }
            if p.kind == "event"
                && let Some(wait) = travel.waits.iter().find(|x| x.task_id == p.task_id)
            {
                w.since = Some(iso(wait.at));
            }
            if p.kind == "lock" {
                // Who holds what it waits for.
                let holders: Vec<String> = locks
                    .iter()
                    .filter(|l| l.waiting.iter().any(|x| x == id))
                    .filter_map(|l| l.holder.as_ref().map(|(h, _)| format!("{} (held by {h})", l.name)))
                    .collect();
                if !holders.is_empty() {
                    w.name = holders.join(", ");
                }
            }
            w
        })
        .collect()
}
