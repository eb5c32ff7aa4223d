//! Connection slots of the API server. At most `max` connections are
//! served at once. When every slot is taken, a new connection takes the
//! slot of the connection that has been idle longest, idle meaning no
//! request in flight: a socket that has sent nothing, one still sending
//! its headers, or a kept-alive connection between requests. So sockets
//! that send nothing cannot lock out other clients (before this, 1,100 such
//! sockets held every slot until the header timeout and an authenticated
//! request waited up to 10 s). Only when every slot has a request in
//! flight does a new connection wait for one to finish.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

/// The table of open connections.
pub(super) struct Slots {
    max: usize,
    /// Time origin of [`Conn::idle_since`].
    epoch: Instant,
    open: Mutex<Open>,
    /// Signalled when a connection's slot is released.
    freed: Notify,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    conns: HashMap<u64, Arc<Conn>>,
}

/// One open connection.
pub(super) struct Conn {
    /// Requests being handled (0 or 1 on HTTP/1.1).
    in_flight: AtomicUsize,
    /// Microseconds since [`Slots::epoch`] at accept or at the end of the
    /// last request.
    idle_since: AtomicU64,
    /// Signalled when the connection lost its slot and must close.
    evict: Notify,
}

/// A held slot; released (and the table updated) on drop.
pub(super) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    pub conn: Arc<Conn>,
}

/// Marks a request in flight on a connection until dropped.
pub(super) struct Busy {
    conn: Arc<Conn>,
    epoch: Instant,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            epoch: Instant::now(),
            open: Mutex::new(Open::default()),
            freed: Notify::new(),
        })
    }

    fn now_micros(epoch: Instant) -> u64 {
        u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// A slot for a new connection, waiting only while every slot has a
    /// request in flight.
    pub async fn take(self: &Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_take() {
                return slot;
            }
            freed.await;
        }
    }

    /// A slot, evicting the connection idle longest when the table is
    /// full; `None` when every connection has a request in flight.
    fn try_take(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.conns.len() >= self.max {
            let victim = open
                .conns
                .iter()
                .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::Relaxed))
                .map(|(id, _)| *id)?;
            if let Some(c) = open.conns.remove(&victim) {
                c.evict.notify_one();
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(Self::now_micros(self.epoch)),
            evict: Notify::new(),
        });
        open.conns.insert(id, conn.clone());
        Some(Slot {
            slots: self.clone(),
            id,
            conn,
        })
    }

    /// Connections holding a slot.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).conns.len()
    }
}

impl Slot {
    /// A handle that marks requests in flight (for the service closure).
    pub fn marker(&self) -> Marker {
        Marker {
            conn: self.conn.clone(),
            epoch: self.slots.epoch,
        }
    }

    /// Completes when the connection lost its slot to a newer one.
    pub async fn evicted(&self) {
        self.conn.evict.notified().await;
    }
}

/// Creates [`Busy`] guards for one connection.
#[derive(Clone)]
pub(super) struct Marker {
    conn: Arc<Conn>,
    epoch: Instant,
}

impl Marker {
    pub fn busy(&self) -> Busy {
        self.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy {
            conn: self.conn.clone(),
            epoch: self.epoch,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(Slots::now_micros(self.epoch), Ordering::Relaxed);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .conns
            .remove(&self.id);
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_table_evicts_the_longest_idle_and_waits_when_all_are_busy() {
        let slots = Slots::new(2);
        let a = slots.take().await;
        let b = slots.take().await;
        let busy_b = b.marker().busy();
        // Full: the idle one (a) is evicted, the busy one (b) kept.
        let c = slots.take().await;
        tokio::time::timeout(std::time::Duration::from_secs(1), a.evicted())
            .await
            .expect("a is told to close");
        assert_eq!(slots.len(), 2);
        // c idle, b busy: the next one evicts c.
        let d = slots.take().await;
        tokio::time::timeout(std::time::Duration::from_secs(1), c.evicted())
            .await
            .expect("c is told to close");
        // Both busy: a new connection waits until one is released.
        let busy_d = d.marker().busy();
        assert!(slots.try_take().is_none());
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await.id }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(busy_d);
        drop(d);
        let id = tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("a released slot is handed to the waiter")
            .expect("no panic");
        assert!(id > 3);
        drop(busy_b);
        drop((a, b, c));
    }
}
