//! Named crash points for crash testing: `CAIRN_CRASH_AT=<point>` makes the
//! process abort (as if killed) the first time it reaches that point.
//! Points: `before_commit`, `after_commit_before_ack`,
//! `activity_done_before_result_commit`, `timer_due_before_commit`.

use std::sync::OnceLock;

static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();

/// Aborts the process if `CAIRN_CRASH_AT` names `point`.
pub fn point(point: &str) {
    let target = CRASH_AT.get_or_init(|| std::env::var("CAIRN_CRASH_AT").ok().filter(|s| !s.is_empty()));
    if target.as_deref() == Some(point) {
        eprintln!("cairn: crash point {point} reached (CAIRN_CRASH_AT); aborting");
        std::process::abort();
    }
}
