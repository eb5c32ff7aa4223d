//! The hot instance cache: parked guests, bounded by count and memory, LRU.
//!
//! A parked guest costs what it dirtied: its linear memory is declared at
//! a megabyte or more, but untouched pages cost nothing, and its fiber
//! stack and store cost what they touched (about 65 KiB in all for a Rust
//! orchestrator: BENCHMARKS.md, "Dense parked instances"). Counting
//! declared memory would evict sixteen times too early, and wasmtime
//! cannot say what one instance holds; so the budget is held against what
//! the process really has resident. Every [`CHECK_EVERY`] insertions, the resident memory is
//! read; above the budget, the least recently used instances are evicted,
//! as many as the excess divided by the average cost of a hot instance
//! (resident memory above the level of an empty cache, per instance).
//! Where resident memory can't be read, declared memory is counted.

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
    /// Guest linear memory, bytes (declared, not resident).
    pub memory: usize,
}

pub struct HotCache {
    entries: LruCache<String, HotEntry>,
    max_memory: usize,
    /// Declared memory of the entries (the budget where `resident` is None).
    memory: usize,
    /// The process's resident memory, bytes (injected by tests).
    resident: fn() -> Option<usize>,
    /// Resident memory when the cache was last empty.
    empty_level: Option<usize>,
    /// Insertions since resident memory was last read.
    since_check: usize,
}

/// Resident memory is read once per this many insertions.
pub const CHECK_EVERY: usize = 64;

/// The resident memory of this process, bytes.
#[must_use]
pub fn process_resident() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(rustix::param::page_size()))
}

impl HotCache {
    pub fn new(max_count: usize, max_memory: usize) -> Self {
        Self::with_resident(max_count, max_memory, process_resident)
    }

    /// A cache that reads resident memory with `resident`.
    pub fn with_resident(max_count: usize, max_memory: usize, resident: fn() -> Option<usize>) -> Self {
        Self {
            entries: LruCache::new(NonZeroUsize::new(max_count).unwrap_or(NonZeroUsize::MIN)),
            max_memory,
            memory: 0,
            resident,
            empty_level: resident(),
            since_check: 0,
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
        if self.entries.is_empty() {
            self.empty_level = (self.resident)();
        }
        self.memory += entry.memory;
        if let Some((old_id, old)) = self.entries.push(id.clone(), entry) {
            self.memory = self.memory.saturating_sub(old.memory);
            if old_id != id {
                evicted.push(old_id);
            }
        }
        self.since_check += 1;
        let excess = match self.empty_level {
            Some(empty) if self.since_check >= CHECK_EVERY => {
                self.since_check = 0;
                match (self.resident)() {
                    Some(now) if now > self.max_memory => {
                        // What one hot instance costs, on average.
                        let each = (now.saturating_sub(empty) / self.entries.len().max(1)).max(1);
                        (now - self.max_memory).div_ceil(each)
                    }
                    _ => 0,
                }
            }
            Some(_) => 0,
            None => usize::from(self.memory > self.max_memory),
        };
        let mut to_evict = excess;
        while to_evict > 0 && self.entries.len() > 1 {
            let Some((old_id, old)) = self.entries.pop_lru() else {
                break;
            };
            self.memory = self.memory.saturating_sub(old.memory);
            evicted.push(old_id);
            to_evict -= 1;
            // Counting declared memory: evict until it fits.
            if self.empty_level.is_none() && self.memory > self.max_memory {
                to_evict += 1;
            }
        }
        evicted
    }

    /// The host ran out of memory or memory mappings with this many hot
    /// instances: from now on, keep at most 7/8 of them; evicts the rest
    /// and returns their ids.
    pub fn shrink_after_exhaustion(&mut self) -> Vec<String> {
        let keep = self.entries.len() - self.entries.len() / 8;
        let mut evicted = Vec::new();
        while self.entries.len() > keep {
            let Some((id, old)) = self.entries.pop_lru() else { break };
            self.memory = self.memory.saturating_sub(old.memory);
            evicted.push(id);
        }
        self.entries
            .resize(NonZeroUsize::new(keep).unwrap_or(NonZeroUsize::MIN));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn entry(memory: usize) -> HotEntry {
        HotEntry {
            session: Session {
                resume: crate::sandbox::mailbox::channel().0,
                yielded: crate::sandbox::mailbox::channel().1,
                task: tokio::spawn(async {}),
            },
            execution_id: String::new(),
            history_len: 0,
            version: String::new(),
            parent: None,
            memory,
        }
    }

    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    /// A process at 100 MiB with an empty cache, 70 KiB per hot instance.
    const EMPTY: usize = 100 * MIB;
    const EACH: usize = 70 * KIB;

    fn fill(cache: &mut HotCache, hot: &AtomicUsize, n: usize, declared: usize) {
        for i in 0..n {
            // Resident memory follows what the cache holds.
            hot.store(cache.len() + 1, Ordering::SeqCst);
            cache.put(format!("i{i}"), entry(declared));
        }
    }

    #[tokio::test]
    async fn resident_memory_bounds_the_cache_not_declared_memory() {
        static HOT: AtomicUsize = AtomicUsize::new(0);
        fn resident() -> Option<usize> {
            Some(EMPTY + HOT.load(Ordering::SeqCst) * EACH)
        }
        // 1 MiB declared each, 2,000 within 240 MiB resident: declared
        // accounting would keep about 140.
        let mut cache = HotCache::with_resident(10_000, EMPTY + 2_000 * EACH, resident);
        fill(&mut cache, &HOT, 1_500, MIB);
        assert_eq!(cache.len(), 1_500, "all fit");
        fill(&mut cache, &HOT, 3_000, MIB);
        let len = cache.len();
        assert!(
            (2_000 - CHECK_EVERY..=2_000 + CHECK_EVERY).contains(&len),
            "held near the budget: {len}"
        );
    }

    #[tokio::test]
    async fn without_resident_memory_declared_memory_is_counted() {
        fn unknown() -> Option<usize> {
            None
        }
        let mut cache = HotCache::with_resident(10_000, 10 * MIB, unknown);
        let hot = AtomicUsize::new(0);
        fill(&mut cache, &hot, 50, MIB);
        assert_eq!(cache.len(), 10);
    }

    #[tokio::test]
    async fn the_count_bound_holds() {
        static HOT: AtomicUsize = AtomicUsize::new(0);
        fn resident() -> Option<usize> {
            Some(EMPTY + HOT.load(Ordering::SeqCst) * EACH)
        }
        let mut cache = HotCache::with_resident(100, usize::MAX, resident);
        fill(&mut cache, &HOT, 250, MIB);
        assert_eq!(cache.len(), 100);
        assert!(cache.take("i249").is_some(), "the newest stays");
        assert!(cache.take("i0").is_none(), "the oldest went");
    }

    #[test]
    fn resident_memory_is_read_from_the_process() {
        let r = process_resident().expect("/proc/self/statm");
        assert!(r > MIB, "{r}");
    }

    #[tokio::test]
    async fn running_out_of_memory_keeps_seven_eighths_from_then_on() {
        static HOT: AtomicUsize = AtomicUsize::new(0);
        fn resident() -> Option<usize> {
            Some(EMPTY + HOT.load(Ordering::SeqCst) * EACH)
        }
        let mut cache = HotCache::with_resident(10_000, usize::MAX, resident);
        fill(&mut cache, &HOT, 800, MIB);
        assert_eq!(cache.shrink_after_exhaustion().len(), 100);
        assert_eq!(cache.len(), 700);
        fill(&mut cache, &HOT, 100, MIB);
        assert_eq!(cache.len(), 700, "the lower bound stays");
    }
}
