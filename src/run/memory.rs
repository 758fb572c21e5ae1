//! Counting the process's heap and reading its resident memory.
//!
//! [`CountingAllocator`] wraps the system allocator and, only while a
//! `profile: memory` run measures, adds every allocation and free to a few
//! process-wide atomic counters: bytes allocated, allocations, bytes live now
//! (net of frees since counting began) and the peak of those live bytes.
//! Off, it costs one relaxed load of a flag that never changes, so unprofiled
//! runs measure the allocator as it is. On, it costs three or four atomic
//! read-modify-writes per allocation on shared cache lines, which is why
//! profiled runs are kept out of experiments.
//!
//! The library does not install it: a program does, with
//! `#[global_allocator]`, as the `phasebench` binary does. Where another
//! allocator is installed the counters never move, so [`installed`] checks
//! once and a `profile: memory` run says why it counted nothing.
//!
//! [`resident_bytes`] reads the kernel's count of resident pages
//! (`/proc/self/statm`), the figure the endurance test's leak verdict uses.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;

/// The system allocator with counters that can be switched on.
pub struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

#[inline]
fn allocated(size: usize) {
    let size = size as i64;
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    if live > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
    ALLOCATED.fetch_add(size as u64, Ordering::Relaxed);
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
}

#[inline]
fn freed(size: usize) {
    LIVE.fetch_sub(size as i64, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counters only observe sizes and never touch the
// memory, and they allocate nothing themselves.
unsafe impl GlobalAlloc for CountingAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() && COUNTING.load(Ordering::Relaxed) {
            allocated(layout.size());
        }
        pointer
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on as is.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() && COUNTING.load(Ordering::Relaxed) {
            allocated(layout.size());
        }
        pointer
    }

    #[inline]
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { System.dealloc(pointer, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            freed(layout.size());
        }
    }

    #[inline]
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() && COUNTING.load(Ordering::Relaxed) {
            freed(layout.size());
            allocated(new_size);
        }
        moved
    }
}

/// The heap counters at one moment, counted since [`start_counting`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapCounts {
    /// Bytes live now, net of frees (negative when more was freed than allocated).
    pub live: i64,
    /// Highest `live` reached.
    pub peak: i64,
    /// Bytes allocated in total (a reallocation counts its new size).
    pub allocated: u64,
    /// Allocations (a reallocation counts as one).
    pub allocations: u64,
}

/// Zeroes the counters and starts counting every allocation of the process.
///
/// Counting is process-wide: one profiled run at a time.
pub fn start_counting() {
    COUNTING.store(false, Ordering::SeqCst);
    LIVE.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    ALLOCATED.store(0, Ordering::SeqCst);
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
}

/// Stops counting; the counters keep their last values.
pub fn stop_counting() {
    COUNTING.store(false, Ordering::SeqCst);
}

/// The counters now.
pub fn heap_counts() -> HeapCounts {
    HeapCounts {
        live: LIVE.load(Ordering::Relaxed),
        peak: PEAK.load(Ordering::Relaxed),
        allocated: ALLOCATED.load(Ordering::Relaxed),
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
    }
}

/// Whether [`CountingAllocator`] is the process's global allocator: counting
/// is switched on around one allocation of its own, once, to see whether it
/// is counted. Call it outside a counted run (it zeroes the counters).
pub fn installed() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    *INSTALLED.get_or_init(|| {
        start_counting();
        drop(std::hint::black_box(Box::new(0u64)));
        stop_counting();
        heap_counts().allocations > 0
    })
}

/// Why a `profile: memory` run counted no heap where [`installed`] is false.
pub const NOT_INSTALLED: &str = "the heap was not counted: the counting allocator is not installed \
     (`#[global_allocator] static ALLOCATOR: phasebench::run::memory::CountingAllocator`)";

/// Resident memory of this process in bytes, from `/proc/self/statm`; `None`
/// where the kernel does not provide it.
pub fn resident_bytes() -> Option<u64> {
    use std::io::Read;
    // Read into a stack buffer: the sampler runs while the heap is counted.
    let mut buffer = [0u8; 128];
    let mut file = std::fs::File::open("/proc/self/statm").ok()?;
    let length = file.read(&mut buffer).ok()?;
    let text = std::str::from_utf8(&buffer[..length]).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads a system constant.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 {
            return size as u64;
        }
    }
    4096
}
