//! Safe upgrades: replay the history of every unfinished instance of an
//! orchestrator against a candidate component before moving them to it;
//! and replay verification of finished instances (their recorded history,
//! replayed from the start, must reproduce the same actions, with the same
//! inputs, and the same outcome).
//!
//! Both are stricter than the engine, which replays an instance as long as
//! every action has the same kind and name (a changed input is tolerated:
//! the recorded result is returned, as in Durable Functions). A changed
//! input is reported here ([`Verdict::InputChanged`], or a divergence of
//! type [`INPUT_CHANGED`] for `replay`) because the code no longer does what
//! the history says it did.

use std::time::Duration;

use crate::clock::now_ms;
use crate::history::Failure;
use crate::hub::{Hub, HubError};
use std::sync::Arc;

use crate::history::{Event, Millis};
use crate::replay::{EpisodeOutput, Finish, InputChange, Replay};
use crate::sandbox::{Loaded, Yielded, content_hash};
use crate::store::{InstanceQuery, RuntimeStatus};

/// Longest replay of one instance during a check.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// Verdict for one instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Its whole history replays against the candidate.
    ReplaysCleanly,
    /// Every recorded action is scheduled again under the same name, but at
    /// least one with a different input (the first is named). Such an
    /// instance would carry on with results computed for the old inputs, so
    /// an upgrade moves it only when asked to (`--allow-input-changes`).
    InputChanged { message: String },
    /// The first divergence (or failure) the candidate hit.
    Diverges { error_type: String, message: String },
}

/// Error type of the divergence `cairn replay` reports for a changed input.
pub const INPUT_CHANGED: &str = "InputChanged";

/// What [`check`] does besides reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeOptions {
    /// Deploy the candidate and move the instances that replay cleanly to it.
    pub apply: bool,
    /// With `apply`, also move the instances whose only difference is a
    /// changed input ([`Verdict::InputChanged`]).
    pub allow_input_changes: bool,
}

/// One line of an upgrade-check report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceVerdict {
    pub instance_id: String,
    pub from_version: String,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The outcome of [`check`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpgradeReport {
    pub name: String,
    pub candidate: String,
    pub instances: Vec<InstanceVerdict>,
    /// Instances moved to the candidate (with `apply`).
    pub moved: usize,
}

fn diverges(f: Failure) -> Verdict {
    Verdict::Diverges {
        error_type: f.error_type,
        message: f.message,
    }
}

/// Replays every unfinished instance of orchestrator `name` against the
/// candidate component `bytes`. With `options.apply`, the candidate is
/// deployed and the instances that replay cleanly (and, with
/// `options.allow_input_changes`, those whose inputs changed) move to it in
/// one transaction; the others keep their version.
///
/// # Errors
/// Invalid component; store errors.
pub async fn check(hub: &Hub, name: &str, bytes: Vec<u8>, options: UpgradeOptions) -> Result<UpgradeReport, HubError> {
    let candidate = content_hash(&bytes);
    let loaded = hub.load(&candidate, &bytes).await?;
    let exported = hub.sandbox.inspect(&loaded).await?;
    if !exported.iter().any(|(n, _)| n == name) {
        return Err(HubError::Internal(format!(
            "candidate component does not export {name:?}"
        )));
    }
    hub.sandbox.check_orchestrator_imports(&loaded)?;
    let rows = hub
        .store
        .list_instances(InstanceQuery {
            statuses: vec![
                RuntimeStatus::Pending,
                RuntimeStatus::Running,
                RuntimeStatus::Suspended,
                RuntimeStatus::ContinuedAsNew,
            ],
            ..InstanceQuery::default()
        })
        .await?;
    let mut instances = Vec::new();
    for row in rows.into_iter().filter(|r| r.name == name) {
        let history = hub.store.get_history(&row.instance_id).await?;
        let verdict = if history.is_empty() {
            Verdict::ReplaysCleanly
        } else {
            match replay_from_start(hub, &loaded, &row.instance_id, &history, now_ms()).await {
                Ok(out) => match out.finish {
                    None => match out.input_change {
                        Some(change) => Verdict::InputChanged {
                            message: change.message(),
                        },
                        None => Verdict::ReplaysCleanly,
                    },
                    Some(Finish::Failed(f)) => diverges(f),
                    Some(_) => diverges(Failure::new(
                        "NonDeterminism",
                        "the candidate finishes where the recorded run is still waiting",
                    )),
                },
                Err(f) => diverges(f),
            }
        };
        instances.push(InstanceVerdict {
            instance_id: row.instance_id,
            from_version: row.version,
            verdict,
        });
    }
    let mut moved = 0;
    if options.apply {
        hub.deploy(bytes).await?;
        let movable = |v: &Verdict| match v {
            Verdict::ReplaysCleanly => true,
            Verdict::InputChanged { .. } => options.allow_input_changes,
            Verdict::Diverges { .. } => false,
        };
        let ids = instances
            .iter()
            .filter(|i| movable(&i.verdict) && i.from_version != candidate)
            .map(|i| i.instance_id.clone())
            .collect();
        moved = hub
            .store
            .move_instances_to_version(name, ids, &candidate, now_ms())
            .await?;
    }
    Ok(UpgradeReport {
        name: name.to_owned(),
        candidate,
        instances,
        moved,
    })
}

/// Runs `loaded` from the start against `history` (one cold replay of every
/// recorded episode) until the guest blocks (`finish` unset) or finishes.
async fn replay_from_start(
    hub: &Hub,
    loaded: &Arc<Loaded>,
    instance_id: &str,
    history: &[(Millis, Event)],
    now: Millis,
) -> Result<EpisodeOutput, Failure> {
    let mut replay = Replay::from_history(instance_id, history);
    replay.begin_episode(now, []);
    let mut session = hub.sandbox.start_session(loaded.clone(), replay);
    match tokio::time::timeout(REPLAY_TIMEOUT, session.yielded.recv()).await {
        Ok(Some(Yielded::Blocked { output, .. })) => Ok(output),
        Ok(Some(Yielded::Finished(out))) => Ok(out),
        Ok(Some(Yielded::HostExhausted(e))) => Err(Failure::new("HostExhausted", e)),
        Ok(None) | Err(_) => Err(Failure::new("Timeout", "replay did not finish in 30 s")),
    }
}

/// The outcome of [`replay_finished`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    pub instance_id: String,
    /// The component replayed (the instance's own version, or a candidate).
    pub version: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The recorded end of the execution (`ExecutionCompleted`).
    pub recorded: Event,
    /// The end the replay reached, when it reached one.
    pub replayed: Option<Event>,
}

impl ReplayReport {
    /// Every recorded action was reproduced and the execution ended the same way.
    #[must_use]
    pub fn is_identical(&self) -> bool {
        self.verdict == Verdict::ReplaysCleanly && self.replayed.as_ref() == Some(&self.recorded)
    }
}

/// Replays a finished (completed or failed) instance's whole history from
/// the start against its own version, or against `candidate` when given,
/// the way a cold start replays it: every recorded action must be scheduled
/// again in the same order, nothing new may be scheduled, and the report
/// says whether the execution ends the same way.
///
/// # Errors
/// Unknown instance; an instance that is not completed or failed; an
/// invalid candidate; store errors.
pub async fn replay_finished(
    hub: &Hub,
    instance_id: &str,
    candidate: Option<Vec<u8>>,
) -> Result<ReplayReport, HubError> {
    let id = crate::ids::InstanceId::parse(instance_id)?;
    let row = hub
        .store
        .get_instance(id.as_str())
        .await?
        .ok_or_else(|| HubError::NotReplayable(format!("no instance {instance_id:?}")))?;
    if !matches!(row.status, RuntimeStatus::Completed | RuntimeStatus::Failed) {
        return Err(HubError::NotReplayable(format!(
            "instance {instance_id:?} is {}; replay checks completed or failed instances (use upgrade-check for unfinished ones)",
            row.status
        )));
    }
    let mut history = hub.store.get_history(id.as_str()).await?;
    let Some((ended_at, recorded)) = history
        .pop()
        .filter(|(_, e)| matches!(e, Event::ExecutionCompleted { .. }))
    else {
        return Err(HubError::NotReplayable(format!(
            "instance {instance_id:?} has no recorded end in its history"
        )));
    };
    let (version, bytes) = match candidate {
        Some(bytes) => (content_hash(&bytes), bytes),
        None => (row.version.clone(), hub.store.component_bytes(&row.version).await?),
    };
    let loaded = hub.load(&version, &bytes).await?;
    hub.sandbox.check_orchestrator_imports(&loaded)?;
    let (verdict, replayed) = match replay_from_start(hub, &loaded, id.as_str(), &history, ended_at).await {
        Err(f) => (diverges(f), None),
        Ok(out) if out.finish.is_none() => (
            diverges(Failure::new(
                "NonDeterminism",
                "the replay waits for more work where the recorded run finished",
            )),
            None,
        ),
        Ok(out) => {
            let new_action = out.events.iter().find(|(_, e)| {
                !matches!(
                    e,
                    Event::OrchestratorStarted | Event::OrchestratorCompleted | Event::ExecutionCompleted { .. }
                )
            });
            let end = out
                .events
                .iter()
                .find(|(_, e)| matches!(e, Event::ExecutionCompleted { .. }))
                .map(|(_, e)| e.clone());
            let verdict = match (&out.finish, new_action) {
                (Some(Finish::Failed(f)), _) if f.error_type == crate::replay::NON_DETERMINISM => diverges(f.clone()),
                // Same actions, other inputs: not what the recorded run did.
                _ if out.input_change.is_some() => Verdict::Diverges {
                    error_type: INPUT_CHANGED.to_owned(),
                    message: out.input_change.as_ref().map(InputChange::message).unwrap_or_default(),
                },
                (_, Some((_, e))) => diverges(Failure::new(
                    "NonDeterminism",
                    format!(
                        "the replay creates a new {} that the recorded run did not",
                        e.type_name()
                    ),
                )),
                _ => Verdict::ReplaysCleanly,
            };
            (verdict, end)
        }
    };
    Ok(ReplayReport {
        instance_id: instance_id.to_owned(),
        version,
        verdict,
        recorded,
        replayed,
    })
}
