//! A channel of capacity one between the engine and a parked guest.
//!
//! A parked instance holds two channels for its whole life. tokio's `mpsc`
//! allocates a block of 32 slots up front whatever the capacity: with
//! [`Yielded`](super::Yielded) in them, about 11 KiB per parked instance.
//! A session never has more than one message in flight each way, so one
//! slot does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

struct Shared<T> {
    /// The message in flight, and whether the receiver is gone.
    slot: Mutex<(Option<T>, bool)>,
    senders: AtomicUsize,
    /// Wakes the receiver (a message, or the last sender gone).
    filled: Notify,
    /// Wakes senders (the slot emptied, or the receiver gone).
    emptied: Notify,
}

/// The sending half (cloneable).
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving half.
pub struct Receiver<T>(Arc<Shared<T>>);

/// The receiver is gone; the message comes back.
#[derive(Debug)]
pub struct Closed<T>(pub T);

/// A channel holding at most one message.
#[must_use]
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new((None, false)),
        senders: AtomicUsize::new(1),
        filled: Notify::new(),
        emptied: Notify::new(),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the slot is full.
    ///
    /// # Errors
    /// [`Closed`] when the receiver is gone.
    pub async fn send(&self, value: T) -> Result<(), Closed<T>> {
        loop {
            let emptied = self.0.emptied.notified();
            {
                let mut slot = self.0.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if slot.1 {
                    return Err(Closed(value));
                }
                if slot.0.is_none() {
                    slot.0 = Some(value);
                    drop(slot);
                    self.0.filled.notify_one();
                    return Ok(());
                }
            }
            emptied.await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::SeqCst);
        Self(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.filled.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and the slot is
    /// empty.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            let filled = self.0.filled.notified();
            {
                let mut slot = self.0.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(v) = slot.0.take() {
                    drop(slot);
                    self.0.emptied.notify_one();
                    return Some(v);
                }
                if self.0.senders.load(Ordering::SeqCst) == 0 {
                    return None;
                }
            }
            filled.await;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut slot = self.0.slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.1 = true;
        // A message never received is dropped now, not with the last sender.
        let undelivered = slot.0.take();
        drop(slot);
        drop(undelivered);
        self.0.emptied.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn messages_pass_one_at_a_time_in_order() {
        let (tx, mut rx) = channel();
        let sender = tokio::spawn(async move {
            for i in 0..100 {
                tx.send(i).await.expect("receiver alive");
            }
        });
        for i in 0..100 {
            assert_eq!(rx.recv().await, Some(i));
        }
        sender.await.expect("sender");
        assert_eq!(rx.recv().await, None, "every sender gone");
    }

    #[tokio::test]
    async fn a_full_slot_waits_for_the_receiver() {
        let (tx, mut rx) = channel();
        tx.send(1).await.expect("room");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), tx.send(2))
                .await
                .is_err(),
            "full"
        );
        assert_eq!(rx.recv().await, Some(1));
    }

    #[tokio::test]
    async fn a_closed_receiver_fails_senders_even_waiting_ones() {
        let (tx, rx) = channel();
        tx.send(1).await.expect("room");
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(2).await.map_err(|Closed(v)| v) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert_eq!(waiting.await.expect("task"), Err(2));
        assert!(tx.send(3).await.is_err());
    }

    #[tokio::test]
    async fn a_waiting_receiver_sees_the_last_sender_go() {
        let (tx, mut rx) = channel::<u8>();
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(tx);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "one sender left");
        drop(tx2);
        assert_eq!(waiting.await.expect("task"), None);
    }
}
