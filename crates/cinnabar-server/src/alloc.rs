//! The process allocator: mimalloc wrapped with byte accounting, so INFO's `used_memory` is the
//! allocator-level figure Redis reports (bytes requested and not yet freed), not RSS.
//!
//! Counting uses a small array of cache-line-padded atomics indexed by a per-thread slot, so
//! worker threads do not contend on one counter.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

const SHARDS: usize = 16;

#[repr(align(64))]
struct Padded(AtomicIsize);

static COUNTERS: [Padded; SHARDS] = [const { Padded(AtomicIsize::new(0)) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn shard() -> usize {
    SHARD
        .try_with(|s| {
            let v = s.get();
            if v != usize::MAX {
                return v;
            }
            let n = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(n);
            n
        })
        .unwrap_or(0)
}

pub struct CountingAlloc;

unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarding the caller's layout to mimalloc, which upholds GlobalAlloc.
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() {
            COUNTERS[shard()]
                .0
                .fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by this allocator with this layout.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        COUNTERS[shard()]
            .0
            .fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in alloc.
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            COUNTERS[shard()]
                .0
                .fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: ptr/layout come from this allocator; mimalloc upholds realloc's contract.
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            COUNTERS[shard()].0.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

/// Bytes currently allocated through the global allocator (0 if another allocator is in use,
/// e.g. in unit tests).
pub fn allocated_bytes() -> u64 {
    COUNTERS
        .iter()
        .map(|c| c.0.load(Ordering::Relaxed))
        .sum::<isize>()
        .max(0) as u64
}

// Part of the mimalloc library the `mimalloc` crate links in (its C API, mimalloc.h).
unsafe extern "C" {
    fn mi_collect(force: bool);
}

/// Returns freed memory held by the allocator to the system (MEMORY PURGE): mimalloc's
/// `mi_collect(force)` for the calling thread's heap and the abandoned ones.
pub fn purge() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { mi_collect(true) };
}
