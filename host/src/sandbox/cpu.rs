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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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

/// Polls of guest code running now, in the whole process.
static GUESTS_RUNNING: AtomicUsize = AtomicUsize::new(0);
/// Some epoch ticker waits in [`wait_for_guests`].
static TICKER_PARKED: AtomicBool = AtomicBool::new(false);
static TICKER: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());

/// Waits (at most `timeout`) until guest code runs somewhere in the
/// process; true if it does. The epoch ticker sleeps here, so that an idle
/// host does not wake 200 times a second: epochs only matter to running
/// guests, and every guest runs inside a [`Metered`] poll.
pub(super) fn wait_for_guests(timeout: Duration) -> bool {
    if GUESTS_RUNNING.load(Ordering::SeqCst) > 0 {
        return true;
    }
    let Ok(guard) = TICKER.0.lock() else { return true };
    TICKER_PARKED.store(true, Ordering::SeqCst);
    // A guest that started before the flag was seen is seen here.
    if GUESTS_RUNNING.load(Ordering::SeqCst) > 0 {
        TICKER_PARKED.store(false, Ordering::SeqCst);
        return true;
    }
    let woken = TICKER.1.wait_timeout(guard, timeout);
    TICKER_PARKED.store(false, Ordering::SeqCst);
    drop(woken);
    GUESTS_RUNNING.load(Ordering::SeqCst) > 0
}

/// Guest code is polled until the guard drops.
struct Running;

impl Running {
    fn enter() -> Self {
        GUESTS_RUNNING.fetch_add(1, Ordering::SeqCst);
        if TICKER_PARKED.load(Ordering::SeqCst)
            && let Ok(_guard) = TICKER.0.lock()
        {
            TICKER.1.notify_all();
        }
        Self
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        GUESTS_RUNNING.fetch_sub(1, Ordering::SeqCst);
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
        let _running = Running::enter();
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

    #[tokio::test(flavor = "current_thread")]
    async fn a_guest_poll_wakes_the_parked_epoch_ticker() {
        let (tx, rx) = std::sync::mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let ticker_done = done.clone();
        let ticker = std::thread::spawn(move || {
            tx.send(()).ok();
            let busy = wait_for_guests(Duration::from_secs(30));
            done.store(true, Ordering::SeqCst);
            busy
        });
        rx.recv().ok();
        let started = std::time::Instant::now();
        // Guest code runs (polled) until the ticker has seen it.
        Metered::new(CpuMeter::new(), async {
            while !ticker_done.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        })
        .await;
        assert!(started.elapsed() < Duration::from_secs(20), "woken, not timed out");
        assert!(ticker.join().unwrap_or(false), "it saw the guest running");
    }
}
