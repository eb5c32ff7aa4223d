//! Safe upgrades: replay the history of every unfinished instance of an
//! orchestrator against a candidate component before moving them to it.

use std::time::Duration;

use crate::clock::now_ms;
use crate::history::Failure;
use crate::hub::{Hub, HubError};
use crate::replay::{Finish, Replay};
use crate::sandbox::{Yielded, content_hash};
use crate::store::{InstanceQuery, RuntimeStatus};

/// Longest replay of one instance during a check.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// Verdict for one instance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Its whole history replays against the candidate.
    ReplaysCleanly,
    /// The first divergence (or failure) the candidate hit.
    Diverges { error_type: String, message: String },
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
/// candidate component `bytes`. With `apply`, the candidate is deployed and
/// the instances that replay cleanly move to it in one transaction; the
/// others keep their version.
///
/// # Errors
/// Invalid component; store errors.
pub async fn check(hub: &Hub, name: &str, bytes: Vec<u8>, apply: bool) -> Result<UpgradeReport, HubError> {
    let candidate = content_hash(&bytes);
    let sandbox = hub.sandbox.clone();
    let (h, b) = (candidate.clone(), bytes.clone());
    let loaded = tokio::task::spawn_blocking(move || sandbox.load(&h, &b))
        .await
        .map_err(|e| HubError::Internal(e.to_string()))??;
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
            let mut replay = Replay::from_history(&row.instance_id, &history);
            replay.begin_episode(now_ms(), []);
            let mut session = hub.sandbox.start_session(loaded.clone(), replay);
            match tokio::time::timeout(REPLAY_TIMEOUT, session.yielded.recv()).await {
                Ok(Some(Yielded::Blocked { .. })) => Verdict::ReplaysCleanly,
                Ok(Some(Yielded::Finished(out))) => match out.finish {
                    Some(Finish::Failed(f)) => diverges(f),
                    _ => diverges(Failure::new(
                        "NonDeterminism",
                        "the candidate finishes where the recorded run is still waiting",
                    )),
                },
                Ok(None) | Err(_) => diverges(Failure::new("Timeout", "replay did not finish in 30 s")),
            }
        };
        instances.push(InstanceVerdict {
            instance_id: row.instance_id,
            from_version: row.version,
            verdict,
        });
    }
    let mut moved = 0;
    if apply {
        hub.deploy(bytes).await?;
        let ids = instances
            .iter()
            .filter(|i| i.verdict == Verdict::ReplaysCleanly && i.from_version != candidate)
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
