//! When the dispatcher polls the task hub: at the poll interval while there
//! is work, backing off to [`MAX_IDLE_POLL`] while there is none, and at the
//! instant a timer, retry or delayed start that this engine wrote falls due.
//!
//! Wake-ups of this process's own writes (and, on PostgreSQL, other hosts'
//! writes) arrive as notifications; the poll finds the rest: due timers,
//! expired leases, and writes of other processes such as the CLI on a
//! SQLite file. An idle `cairn serve` thus wakes a few times a second
//! instead of twenty, and a timer fires when it is due instead of at the
//! next tick.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::history::Millis;

/// Longest wait between two polls of an idle task hub.
pub const MAX_IDLE_POLL: Duration = Duration::from_millis(500);

/// The earliest due time this engine knows of (timers and retries it wrote).
#[derive(Debug)]
pub struct DueTimes {
    next: AtomicU64,
    earlier: Notify,
}

const NONE: u64 = u64::MAX;

impl Default for DueTimes {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(NONE),
            earlier: Notify::new(),
        }
    }
}

impl DueTimes {
    /// Something falls due at `at`: the dispatcher polls then at the latest.
    pub fn note(&self, at: Millis) {
        if self.next.fetch_min(at, Ordering::AcqRel) > at {
            self.earlier.notify_one();
        }
    }

    /// The earliest noted due time, if any.
    pub fn next(&self) -> Option<Millis> {
        let at = self.next.load(Ordering::Acquire);
        (at != NONE).then_some(at)
    }

    /// Forgets the earliest due time if it is at or before `now` (the poll
    /// that follows finds what fell due); true when it did.
    pub fn take_due(&self, now: Millis) -> bool {
        let at = self.next.load(Ordering::Acquire);
        at <= now
            && self
                .next
                .compare_exchange(at, NONE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Resolves when a due time earlier than the known one is noted.
    pub async fn earlier(&self) {
        self.earlier.notified().await;
    }
}

/// The wait before the next poll after `idle_polls` polls in a row that
/// found nothing: `base`, doubling up to `max`.
#[must_use]
pub fn backoff(base: Duration, idle_polls: u32, max: Duration) -> Duration {
    base.saturating_mul(1u32 << idle_polls.min(16)).min(max.max(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(50), 0, ms(500)), ms(50));
        assert_eq!(backoff(ms(50), 1, ms(500)), ms(100));
        assert_eq!(backoff(ms(50), 3, ms(500)), ms(400));
        assert_eq!(backoff(ms(50), 4, ms(500)), ms(500));
        assert_eq!(backoff(ms(50), 40, ms(500)), ms(500));
        // A base above the cap wins.
        assert_eq!(backoff(ms(900), 3, ms(500)), ms(900));
    }

    #[test]
    fn the_earliest_due_time_is_kept_and_taken_once_due() {
        let d = DueTimes::default();
        assert_eq!(d.next(), None);
        d.note(500);
        d.note(700);
        assert_eq!(d.next(), Some(500));
        d.note(300);
        assert_eq!(d.next(), Some(300));
        assert!(!d.take_due(299), "not due yet");
        assert!(d.take_due(300));
        assert_eq!(d.next(), None);
        assert!(!d.take_due(1_000));
    }

    #[tokio::test]
    async fn only_an_earlier_due_time_wakes_the_dispatcher() {
        // (A timeout of zero polls the wait once: ready only with a wake-up owed.)
        async fn owed(d: &DueTimes) -> bool {
            tokio::time::timeout(Duration::ZERO, d.earlier()).await.is_ok()
        }
        let d = DueTimes::default();
        assert!(!owed(&d).await);
        d.note(1_000);
        assert!(owed(&d).await, "the first due time wakes");
        assert!(!owed(&d).await, "once");
        d.note(2_000);
        assert!(!owed(&d).await, "a later one does not");
        d.note(10);
        assert!(owed(&d).await, "an earlier one does");
    }
}
