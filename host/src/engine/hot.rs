//! The hot instance cache: parked guests, bounded by count and memory, LRU.

use std::num::NonZeroUsize;

use lru::LruCache;

use crate::history::ParentRef;
use crate::sandbox::Session;

/// A parked orchestrator and the store position it reflects.
pub struct HotEntry {
    pub session: Session,
    pub execution_id: String,
    pub history_len: u64,
    /// Component version the guest runs (an upgrade makes it stale).
    pub version: String,
    pub parent: Option<ParentRef>,
    /// Guest linear memory, bytes.
    pub memory: usize,
}

pub struct HotCache {
    entries: LruCache<String, HotEntry>,
    max_memory: usize,
    memory: usize,
}

impl HotCache {
    pub fn new(max_count: usize, max_memory: usize) -> Self {
        Self {
            entries: LruCache::new(NonZeroUsize::new(max_count).unwrap_or(NonZeroUsize::MIN)),
            max_memory,
            memory: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes and returns the entry (the episode owns it while it runs).
    pub fn take(&mut self, id: &str) -> Option<HotEntry> {
        let e = self.entries.pop(id)?;
        self.memory = self.memory.saturating_sub(e.memory);
        Some(e)
    }

    pub fn remove(&mut self, id: &str) {
        drop(self.take(id));
    }

    /// Inserts an entry; returns the ids of the entries evicted for room
    /// (their instances are no longer hot here: the engine releases their
    /// leases). Replacing an entry of the same id evicts nothing.
    pub fn put(&mut self, id: String, entry: HotEntry) -> Vec<String> {
        let mut evicted = Vec::new();
        self.memory += entry.memory;
        if let Some((old_id, old)) = self.entries.push(id.clone(), entry) {
            self.memory = self.memory.saturating_sub(old.memory);
            if old_id != id {
                evicted.push(old_id);
            }
        }
        while self.memory > self.max_memory && self.entries.len() > 1 {
            match self.entries.pop_lru() {
                Some((old_id, old)) => {
                    self.memory = self.memory.saturating_sub(old.memory);
                    evicted.push(old_id);
                }
                None => break,
            }
        }
        evicted
    }

    /// Ids of every hot instance.
    pub fn ids(&self) -> Vec<String> {
        self.entries.iter().map(|(id, _)| id.clone()).collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.memory = 0;
    }
}
