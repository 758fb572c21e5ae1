//! The read cache: a byte-bounded CLOCK cache (second-chance FIFO) in one
//! shard behind one lock (`global`), or in several shards each padded to its
//! own cache lines (`sharded`), so readers of different keys neither wait on
//! one lock nor bounce one cache line between cores.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// How the cache is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheLayout {
    /// One map behind one lock.
    Global,
    /// Lock striping: shards chosen by key hash, each on its own cache lines.
    Sharded,
}

/// Aligns its content to 128 bytes: two 64-byte lines, as the adjacent-line
/// prefetcher of x86 CPUs pulls pairs (the choice crossbeam's `CachePadded` makes).
#[repr(align(128))]
struct Padded<T>(T);

struct Entry {
    value: Arc<[u8]>,
    seq: u64,
    referenced: bool,
}

/// One shard: entries and the clock hand's queue.
#[derive(Default)]
struct Clock {
    entries: HashMap<Vec<u8>, Entry>,
    ring: VecDeque<Vec<u8>>,
    bytes: usize,
}

/// Bytes an entry is charged: key, value and bookkeeping.
fn charge(key: &[u8], value: &[u8]) -> usize {
    key.len() * 2 + value.len() + 64
}

impl Clock {
    fn evict_to(&mut self, capacity: usize) {
        while self.bytes > capacity {
            let Some(key) = self.ring.pop_front() else { break };
            match self.entries.get_mut(&key) {
                Some(entry) if entry.referenced => {
                    entry.referenced = false;
                    self.ring.push_back(key);
                }
                Some(_) => {
                    if let Some(entry) = self.entries.remove(&key) {
                        self.bytes -= charge(&key, &entry.value);
                    }
                }
                // Removed earlier; its ring slot was stale.
                None => {}
            }
        }
    }
}

/// A byte-bounded read cache. Entries carry the sequence number of the
/// record they came from, so an older value never replaces a newer one.
pub struct ReadCache {
    shards: Vec<Padded<Mutex<Clock>>>,
    capacity_per_shard: usize,
}

impl ReadCache {
    /// A cache of about `capacity` bytes in the given layout.
    pub fn new(capacity: usize, layout: CacheLayout, shards: usize) -> ReadCache {
        let count = match layout {
            CacheLayout::Global => 1,
            CacheLayout::Sharded => shards.max(1),
        };
        ReadCache {
            shards: (0..count).map(|_| Padded(Mutex::new(Clock::default()))).collect(),
            capacity_per_shard: capacity / count,
        }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, Clock> {
        let index =
            if self.shards.len() == 1 { 0 } else { (super::format_hash(key) % self.shards.len() as u64) as usize };
        // A poisoned shard only means a reader panicked mid-update of plain data; keep serving.
        self.shards[index].0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<Arc<[u8]>> {
        let mut shard = self.shard(key);
        let entry = shard.entries.get_mut(key)?;
        entry.referenced = true;
        Some(Arc::clone(&entry.value))
    }

    /// Caches `value` of `key` from the record with sequence `seq`, unless a
    /// newer one is cached. Runs `still_current` under the shard lock after
    /// inserting and drops the entry again if it says the index moved on.
    pub fn insert(&self, key: &[u8], value: Arc<[u8]>, seq: u64, still_current: impl FnOnce() -> bool) {
        if charge(key, &value) > self.capacity_per_shard {
            return;
        }
        let capacity = self.capacity_per_shard;
        let mut shard = self.shard(key);
        if shard.entries.get(key).is_some_and(|entry| entry.seq >= seq) {
            return;
        }
        let added = charge(key, &value);
        if let Some(old) = shard.entries.insert(key.to_vec(), Entry { value, seq, referenced: false }) {
            shard.bytes -= charge(key, &old.value);
        } else {
            shard.ring.push_back(key.to_vec());
        }
        shard.bytes += added;
        if !still_current() {
            if let Some(entry) = shard.entries.remove(key) {
                shard.bytes -= charge(key, &entry.value);
            }
        }
        shard.evict_to(capacity);
    }

    /// Forgets `key` (after a write or delete with sequence `seq`).
    pub fn invalidate(&self, key: &[u8], seq: u64) {
        let mut shard = self.shard(key);
        if shard.entries.get(key).is_some_and(|entry| entry.seq < seq) {
            if let Some(entry) = shard.entries.remove(key) {
                shard.bytes -= charge(key, &entry.value);
            }
        }
    }

    /// Bytes held, over all shards.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|shard| shard.0.lock().map_or(0, |clock| clock.bytes)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: usize) -> Arc<[u8]> {
        vec![7_u8; n].into()
    }

    #[test]
    fn bounded_by_bytes_and_keeps_referenced_entries() {
        for layout in [CacheLayout::Global, CacheLayout::Sharded] {
            let cache = ReadCache::new(16 * 1024, layout, 4);
            for i in 0..200 {
                cache.insert(format!("k{i}").as_bytes(), value(100), 1, || true);
            }
            assert!(cache.bytes() <= 16 * 1024, "{layout:?}: {}", cache.bytes());
            assert!(cache.get(b"k199").is_some());
        }
    }

    #[test]
    fn older_values_never_replace_newer_ones() {
        let cache = ReadCache::new(1 << 20, CacheLayout::Global, 1);
        cache.insert(b"k", value(1), 5, || true);
        cache.insert(b"k", value(2), 4, || true);
        assert_eq!(cache.get(b"k").unwrap().len(), 1);
        cache.invalidate(b"k", 6);
        assert!(cache.get(b"k").is_none());
        cache.insert(b"k", value(3), 7, || false);
        assert!(cache.get(b"k").is_none(), "an entry the index moved past is dropped");
    }

    #[test]
    fn shards_sit_on_their_own_cache_lines() {
        assert_eq!(std::mem::align_of::<Padded<Mutex<Clock>>>(), 128);
    }
}
