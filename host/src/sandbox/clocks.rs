//! Guest clocks: the virtual, deterministic clock of orchestrators, and the
//! guard that refuses a blocking wait on it.
//!
//! An orchestrator's clocks read the episode's time, which stands still
//! while its code runs. A blocking wait on the monotonic clock
//! (`std::thread::sleep`, a `poll` with a timeout, a wait until a wall-clock
//! time, all of which subscribe to `wasi:clocks/monotonic-clock`) would
//! therefore hold a host thread for real time on every run and every
//! replay, while the orchestration's own time does not move. The guard
//! fails such an orchestrator at the subscription, before anything waits,
//! and says to use a durable timer. A zero-length subscription (how a
//! non-blocking `poll` is written) is ready at once and allowed.
//! Activities' clocks are real and unguarded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::clocks::{WasiClocksCtxView, WasiClocksView};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Duration as WasiDuration, Instant};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

use super::host::GuestAbort;
use super::{GuestState, Role};
use crate::history::Failure;

/// Error type of an orchestrator's blocking wait on a clock.
pub const BLOCKING_WAIT: &str = "BlockingWait";

/// Deterministic clocks for orchestrators: both read the episode's time.
pub(super) struct VirtualClock(pub(super) Arc<AtomicU64>);

impl HostWallClock for VirtualClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Relaxed))
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed).saturating_mul(1_000_000)
    }
}

/// Replaces WASI's `wasi:clocks/monotonic-clock` in `linker` (already
/// holding WASI p2) with the guarded one.
///
/// # Errors
/// When the linker refuses the definitions.
pub(super) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = monotonic_clock::add_to_linker::<GuestState, GuardedClocks>(linker, guarded);
    linker.allow_shadowing(false);
    added
}

struct GuardedClocks;

impl HasData for GuardedClocks {
    type Data<'a> = GuardedView<'a>;
}

/// WASI's monotonic clock of one guest, and whether that guest is an
/// orchestrator.
struct GuardedView<'a> {
    clocks: WasiClocksCtxView<'a>,
    orchestrator: bool,
}

fn guarded(state: &mut GuestState) -> GuardedView<'_> {
    let orchestrator = matches!(state.role, Role::Orchestrator(_));
    GuardedView {
        clocks: state.clocks(),
        orchestrator,
    }
}

fn blocking_wait(nanos: u64) -> wasmtime::Error {
    let ms = nanos.div_ceil(1_000_000);
    wasmtime::Error::new(GuestAbort(Failure::new(
        BLOCKING_WAIT,
        format!(
            "the orchestrator started a blocking wait of {ms} ms on the clock (a sleep, or a poll with a timeout): \
             orchestration time stands still while orchestrator code runs, so the wait would only hold the host \
             for real time on every run and replay. Wait with a durable timer instead (create-timer: \
             ctx.create_timer_after in Rust, context.create_timer in Python, ctx.createTimer in JavaScript), \
             or do the waiting in an activity"
        ),
    )))
}

impl monotonic_clock::Host for GuardedView<'_> {
    fn now(&mut self) -> wasmtime::Result<Instant> {
        monotonic_clock::Host::now(&mut self.clocks)
    }

    fn resolution(&mut self) -> wasmtime::Result<Instant> {
        monotonic_clock::Host::resolution(&mut self.clocks)
    }

    fn subscribe_instant(&mut self, when: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        if self.orchestrator {
            let now = monotonic_clock::Host::now(&mut self.clocks)?;
            if when > now {
                return Err(blocking_wait(when - now));
            }
        }
        monotonic_clock::Host::subscribe_instant(&mut self.clocks, when)
    }

    fn subscribe_duration(&mut self, duration: WasiDuration) -> wasmtime::Result<Resource<DynPollable>> {
        if self.orchestrator && duration > 0 {
            return Err(blocking_wait(duration));
        }
        monotonic_clock::Host::subscribe_duration(&mut self.clocks, duration)
    }
}
