//! A probe on an orchestrator session, for time travel and the console's
//! timeline: it records what the guest did while it ran, replayed episodes
//! included (log lines, output lines, event waits) and, when the guest
//! stops, the tasks still open. A probed session is a side run: nothing it
//! produces is committed or logged by the host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::history::{Millis, TaskId};
use crate::replay::OpenTask;

/// Lines kept per probe (a guest printing in a loop does not grow it further).
const MAX_LINES: usize = 10_000;

/// One line a guest wrote: a `log` call, or a line of stdout / stderr.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuestLine {
    /// Deterministic time of the episode the guest was in.
    pub time: Millis,
    /// `trace` … `error` for `log` calls; `stdout` / `stderr` for output.
    pub level: String,
    pub message: String,
    /// Written while re-executing recorded history (the host's log skips it).
    pub replaying: bool,
}

/// A `wait-for-event` call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventWait {
    pub task_id: TaskId,
    pub name: String,
    /// Deterministic time of the episode of the call.
    pub at: Millis,
}

/// What the probe saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProbeReport {
    pub lines: Vec<GuestLine>,
    pub waits: Vec<EventWait>,
    /// Tasks created and not completed when the guest stopped.
    pub open_tasks: Vec<OpenTask>,
}

/// Shared between the session's host state and the caller.
#[derive(Debug, Default)]
pub struct Probe {
    report: Mutex<ProbeReport>,
    /// The episode time, for output lines (set by the session).
    now: AtomicU64,
    replaying: std::sync::atomic::AtomicBool,
}

impl Probe {
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A copy of what was recorded so far.
    #[must_use]
    pub fn report(&self) -> ProbeReport {
        self.report.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub(super) fn set_position(&self, now: Millis, replaying: bool) {
        self.now.store(now, Ordering::Relaxed);
        self.replaying.store(replaying, Ordering::Relaxed);
    }

    pub(super) fn line(&self, level: &str, message: &str) {
        if let Ok(mut r) = self.report.lock()
            && r.lines.len() < MAX_LINES
        {
            r.lines.push(GuestLine {
                time: self.now.load(Ordering::Relaxed),
                level: level.to_owned(),
                message: message.to_owned(),
                replaying: self.replaying.load(Ordering::Relaxed),
            });
        }
    }

    pub(super) fn wait(&self, task_id: TaskId, name: &str) {
        if let Ok(mut r) = self.report.lock() {
            r.waits.push(EventWait {
                task_id,
                name: name.to_owned(),
                at: self.now.load(Ordering::Relaxed),
            });
        }
    }

    pub(super) fn stopped(&self, open: Vec<OpenTask>) {
        if let Ok(mut r) = self.report.lock() {
            r.open_tasks = open;
        }
    }
}
