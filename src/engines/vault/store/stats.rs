//! The counters a run reports: vault-wide atomics, and per-thread tallies so
//! that a shared sync is counted once, by the thread that performed it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters a run reports.
#[derive(Debug, Default)]
pub struct Stats {
    /// Key and value bytes written by callers.
    pub user_bytes: AtomicU64,
    /// Bytes written to disk: records, compaction rewrites, hints.
    pub disk_bytes: AtomicU64,
    /// fsync calls.
    pub syncs: AtomicU64,
    /// Reads served by the cache.
    pub cache_hits: AtomicU64,
    /// Reads that went to disk while a cache was configured.
    pub cache_misses: AtomicU64,
    /// Compactions finished.
    pub compactions: AtomicU64,
}

/// What the calling thread's vault operations did since it last asked: an
/// engine worker reads it after each call, so a shared sync is counted once,
/// by the thread that performed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// Key and value bytes written.
    pub user_bytes: u64,
    /// Bytes written to disk.
    pub disk_bytes: u64,
    /// fsync calls made.
    pub syncs: u64,
    /// Reads served by the cache.
    pub cache_hits: u64,
    /// Reads that missed the cache.
    pub cache_misses: u64,
    /// Compactions finished.
    pub compactions: u64,
}

impl ThreadStats {
    /// Both tallies together.
    pub fn add(&mut self, other: ThreadStats) {
        self.user_bytes += other.user_bytes;
        self.disk_bytes += other.disk_bytes;
        self.syncs += other.syncs;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.compactions += other.compactions;
    }
}

thread_local! {
    static THREAD_STATS: std::cell::Cell<ThreadStats> = const { std::cell::Cell::new(ThreadStats {
        user_bytes: 0, disk_bytes: 0, syncs: 0, cache_hits: 0, cache_misses: 0, compactions: 0,
    }) };
}

/// Takes (and resets) what this thread's vault operations did.
pub fn take_thread_stats() -> ThreadStats {
    THREAD_STATS.with(|cell| cell.replace(ThreadStats::default()))
}

/// Adds to the vault-wide atomic and to this thread's tally.
pub(super) fn tally(counter: &AtomicU64, amount: u64, field: fn(&mut ThreadStats) -> &mut u64) {
    counter.fetch_add(amount, Ordering::Relaxed);
    THREAD_STATS.with(|cell| {
        let mut stats = cell.get();
        *field(&mut stats) += amount;
        cell.set(stats);
    });
}

/// Puts back a tally taken with [`take_thread_stats`].
pub(super) fn restore_thread_stats(stats: ThreadStats) {
    THREAD_STATS.with(|cell| cell.set(stats));
}
