//! CPU time of guest code, for the per-segment CPU limit (`limits.cpu`).
//!
//! Guest code runs inside the poll of its call's future (wasmtime runs it on
//! a fiber inside that poll), and the epoch callback makes it yield to the
//! executor at every tick. Wall time since the segment started would
//! therefore also count the time the guest spent waiting for a core while
//! other tasks ran: under load a healthy instance would fail. A [`Metered`]
//! future instead adds up the CPU time of the polling thread across each of
//! the guest's polls, so only the guest's own execution (and the host calls
//! it makes) counts: load can delay an instance, never fail it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// CPU time used by the current thread, ns (monotonic per thread).
#[cfg(unix)]
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

/// Without per-thread CPU clocks, the time inside polls (still excluding
/// the time spent waiting to be polled).
#[cfg(not(unix))]
fn thread_cpu_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u64::try_from(START.get_or_init(std::time::Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The guest CPU time of one store's current segment (since its last
/// [`reset`](CpuMeter::reset)).
#[derive(Debug, Default)]
pub(super) struct CpuMeter {
    /// CPU time of the segment's finished polls, ns.
    used_ns: AtomicU64,
    /// Thread CPU time when the running poll started (or the segment was
    /// reset inside it), ns; `u64::MAX` when no poll is running.
    slice_start_ns: AtomicU64,
}

const NOT_POLLED: u64 = u64::MAX;

impl CpuMeter {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            used_ns: AtomicU64::new(0),
            slice_start_ns: AtomicU64::new(NOT_POLLED),
        })
    }

    /// CPU time of the segment so far; `None` when the guest is not being
    /// polled through a [`Metered`] future (nothing can be measured).
    /// Called from the thread that polls the guest (the epoch callback).
    pub(super) fn used(&self) -> Option<Duration> {
        let start = self.slice_start_ns.load(Ordering::Relaxed);
        if start == NOT_POLLED {
            return None;
        }
        let running = thread_cpu_ns().saturating_sub(start);
        Some(Duration::from_nanos(
            self.used_ns.load(Ordering::Relaxed).saturating_add(running),
        ))
    }

    /// Starts a new segment (the guest resumed after blocking on the host).
    pub(super) fn reset(&self) {
        self.used_ns.store(0, Ordering::Relaxed);
        if self.slice_start_ns.load(Ordering::Relaxed) != NOT_POLLED {
            self.slice_start_ns.store(thread_cpu_ns(), Ordering::Relaxed);
        }
    }

    fn begin_slice(&self) {
        self.slice_start_ns.store(thread_cpu_ns(), Ordering::Relaxed);
    }

    fn end_slice(&self) {
        let start = self.slice_start_ns.swap(NOT_POLLED, Ordering::Relaxed);
        if start != NOT_POLLED {
            let spent = thread_cpu_ns().saturating_sub(start);
            self.used_ns.fetch_add(spent, Ordering::Relaxed);
        }
    }
}

/// A future that runs guest code, with the CPU time of each poll added to
/// `meter`.
pub(super) struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Arc<CpuMeter>,
}

impl<F: Future> Metered<F> {
    pub(super) fn new(meter: Arc<CpuMeter>, inner: F) -> Self {
        Self {
            inner: Box::pin(inner),
            meter,
        }
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        this.meter.begin_slice();
        let result = this.inner.as_mut().poll(cx);
        this.meter.end_slice();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let start = thread_cpu_ns();
        while thread_cpu_ns() - start < u64::try_from(d.as_nanos()).unwrap_or(u64::MAX) {
            std::hint::black_box(0u64);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn only_time_inside_polls_counts() {
        let meter = CpuMeter::new();
        assert_eq!(meter.used(), None, "nothing is polled yet");
        let m = meter.clone();
        let fut = Metered::new(meter.clone(), async move {
            spin(Duration::from_millis(20));
            let inside = m.used().unwrap_or_default();
            assert!(inside >= Duration::from_millis(20), "{inside:?}");
            // Waiting outside the guest's polls (200 ms of wall time) does not count.
            tokio::time::sleep(Duration::from_millis(200)).await;
            spin(Duration::from_millis(10));
            m.used().unwrap_or_default()
        });
        let used = fut.await;
        assert!(used >= Duration::from_millis(30), "{used:?}");
        assert!(used < Duration::from_millis(150), "the sleep was not counted: {used:?}");
        assert_eq!(meter.used(), None, "no poll running");
    }
}
