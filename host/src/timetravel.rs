//! Time travel: the orchestrator replayed up to any event of its history,
//! with the replay engine (nothing is sent, scheduled or committed): which
//! tasks were open then, its custom status then, the lines it logged up to
//! then. `cairn replay ID --until N` and the console's time travel both
//! call [`replay_until`].
//!
//! A replay up to event N is a replay against the history cut after N,
//! with no new message: the guest re-runs every recorded episode and then
//! goes as far as event N lets it (when N is a completion, the episode that
//! consumes it runs; what it would schedule then is listed as `next`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::clock::iso;
use crate::engine::durable_http::HTTP_ACTIVITY;
use crate::history::{Event, Failure, Millis, TaskId};
use crate::hub::{Hub, HubError};
use crate::ids::InstanceId;
use crate::replay::{Finish, Replay};
use crate::sandbox::Yielded;
use crate::sandbox::probe::{EventWait, GuestLine, Probe};
use crate::status::history_event_json;

/// Longest replay of one time travel.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// A task open at the travelled-to event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingTask {
    pub task_id: TaskId,
    /// `activity`, `http`, `sub-orchestration`, `timer`, `lock` or `event`.
    pub kind: &'static str,
    pub name: String,
    /// History index of the event that scheduled it; `None` for event waits
    /// (never recorded) and for tasks the guest schedules only after event N.
    pub scheduled_index: Option<usize>,
}

/// What the orchestrator looked like at one event of its history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeTravel {
    pub instance_id: String,
    /// The component version replayed.
    pub version: String,
    /// The event travelled to (index in the current execution's history).
    pub until: usize,
    /// Events in the history.
    pub history_len: usize,
    /// The event, in the Durable Functions JSON shape.
    pub event: Value,
    pub time: String,
    /// `waiting` (the guest blocked on open tasks), `finished` (it
    /// returned), or `diverged` (the replay failed: see `error`).
    pub state: &'static str,
    pub pending: Vec<PendingTask>,
    /// Events the guest produces after event N that history up to N does
    /// not hold (what it does next), in the Durable Functions JSON shape.
    pub next: Vec<Value>,
    /// The custom status as the guest had set it by then (`null`: never).
    pub custom_status: Value,
    /// Every line the guest logged or printed up to then.
    pub logs: Vec<GuestLine>,
    /// The event waits the guest had made.
    pub waits: Vec<EventWait>,
    /// The execution's end, when the guest finished.
    pub output: Option<Value>,
    /// Why the replay failed (non-determinism, a trap, a timeout).
    pub error: Option<Failure>,
}

/// Replays instance `instance_id` up to history event `until` (0-based)
/// against its own component version, or `candidate` when given.
///
/// # Errors
/// Unknown instance; `until` past the end of the history; a version that
/// cannot be loaded; store errors.
pub async fn replay_until(
    hub: &Hub,
    instance_id: &str,
    until: usize,
    candidate: Option<Vec<u8>>,
) -> Result<TimeTravel, HubError> {
    let id = InstanceId::parse(instance_id)?;
    let row = hub
        .store
        .get_instance(id.as_str())
        .await?
        .ok_or_else(|| HubError::NotReplayable(format!("no instance {instance_id:?}")))?;
    let history = hub.store.get_history(id.as_str()).await?;
    if until >= history.len() {
        return Err(HubError::NotReplayable(format!(
            "event {until} is past the end of the history of {instance_id:?} ({} events, 0 to {})",
            history.len(),
            history.len().saturating_sub(1)
        )));
    }
    let (version, bytes) = match candidate {
        Some(bytes) => (crate::sandbox::content_hash(&bytes), bytes),
        None => (row.version.clone(), hub.store.component_bytes(&row.version).await?),
    };
    let loaded = hub.load(&version, &bytes).await?;
    hub.sandbox.check_orchestrator_imports(&loaded)?;
    let cut = &history[..=until];
    let (at, event) = &cut[until];
    let probe = Probe::new();
    let (state, out, error) = run(hub, loaded, id.as_str(), cut, *at, probe.clone()).await;
    let report = probe.report();
    let scheduled: std::collections::HashMap<TaskId, usize> = cut
        .iter()
        .enumerate()
        .filter_map(|(i, (_, e))| match e {
            Event::TaskScheduled { task_id, .. }
            | Event::TimerCreated { task_id, .. }
            | Event::SubOrchestrationInstanceCreated { task_id, .. }
            | Event::LockRequested { task_id, .. } => Some((*task_id, i)),
            _ => None,
        })
        .collect();
    let pending = report
        .open_tasks
        .iter()
        .map(|t| PendingTask {
            task_id: t.task_id,
            kind: if t.kind == "activity" && t.name == HTTP_ACTIVITY {
                "http"
            } else {
                t.kind
            },
            name: t.name.clone(),
            scheduled_index: scheduled.get(&t.task_id).copied(),
        })
        .collect();
    let (next, custom_status, output) = match &out {
        Some(o) => (
            o.events
                .iter()
                .filter(|(_, e)| !matches!(e, Event::OrchestratorStarted | Event::OrchestratorCompleted))
                .map(|(ts, e)| history_event_json(*ts, e, true))
                .collect(),
            o.custom_status
                .clone()
                .flatten()
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(Value::Null),
            o.finish.as_ref().map(|f| match f {
                Finish::Completed(v) => serde_json::from_str(v).unwrap_or(Value::Null),
                Finish::Failed(f) => serde_json::to_value(f).unwrap_or(Value::Null),
                Finish::ContinuedAsNew { input, .. } => {
                    serde_json::json!({ "continuedAsNew": serde_json::from_str::<Value>(input).unwrap_or(Value::Null) })
                }
                Finish::Terminated(reason) => serde_json::json!({ "terminated": reason }),
            }),
        ),
        None => (Vec::new(), Value::Null, None),
    };
    Ok(TimeTravel {
        instance_id: id.as_str().to_owned(),
        version,
        until,
        history_len: history.len(),
        event: history_event_json(*at, event, true),
        time: iso(*at),
        state,
        pending,
        next,
        custom_status,
        logs: report.lines,
        waits: report.waits,
        output,
        error,
    })
}

/// The event waits of the whole current execution (for the timeline), by
/// a probed replay of its history; `None` when it cannot be replayed.
pub async fn event_waits(hub: &Hub, instance_id: &str) -> Option<Vec<EventWait>> {
    let row = hub.store.get_instance(instance_id).await.ok()??;
    let history = hub.store.get_history(instance_id).await.ok()?;
    let (at, _) = history.last()?;
    let bytes = hub.store.component_bytes(&row.version).await.ok()?;
    let loaded = hub.load(&row.version, &bytes).await.ok()?;
    let probe = Probe::new();
    let (state, _, _) = run(hub, loaded, instance_id, &history, *at, probe.clone()).await;
    (state != "diverged").then(|| probe.report().waits)
}

/// One probed run of the guest against `history` with no new message.
async fn run(
    hub: &Hub,
    loaded: Arc<crate::sandbox::Loaded>,
    instance_id: &str,
    history: &[(Millis, Event)],
    at: Millis,
    probe: Arc<Probe>,
) -> (&'static str, Option<crate::replay::EpisodeOutput>, Option<Failure>) {
    let mut replay = Replay::from_history(instance_id, history);
    replay.begin_episode(at, []);
    let mut session = hub.sandbox.start_probed_session(loaded, replay, probe);
    let yielded = tokio::time::timeout(REPLAY_TIMEOUT, session.yielded.recv()).await;
    drop(session);
    match yielded {
        Ok(Some(Yielded::Blocked { output, .. })) => ("waiting", Some(output), None),
        Ok(Some(Yielded::Finished(output))) => match &output.finish {
            Some(Finish::Failed(f)) if f.error_type == crate::replay::NON_DETERMINISM => {
                let f = f.clone();
                ("diverged", Some(output), Some(f))
            }
            _ => ("finished", Some(output), None),
        },
        Ok(None) => (
            "diverged",
            None,
            Some(Failure::new("Trap", "the replay stopped without an answer")),
        ),
        Ok(Some(Yielded::HostExhausted(e))) => ("diverged", None, Some(Failure::new("HostExhausted", e))),
        Err(_) => (
            "diverged",
            None,
            Some(Failure::new(
                "Timeout",
                format!("the replay did not stop within {} s", REPLAY_TIMEOUT.as_secs()),
            )),
        ),
    }
}
