//! Server-wide counters reported by INFO (stats, commandstats, errorstats). Counters are
//! relaxed atomics: they are read for reporting only, never for synchronisation.
//!
//! Counters bumped on every command are sharded by thread ([`ShardedCounter`], and one
//! [`CommandStats`] table per shard in [`CmdStatsTable`]) so that worker threads do not bounce
//! the same cache line between cores; INFO adds the shards up.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Number of counter shards; threads are assigned round-robin.
const STAT_SHARDS: usize = 4;

static NEXT_STAT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STAT_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's counter shard.
#[inline]
pub fn stat_shard() -> usize {
    STAT_SHARD
        .try_with(|c| {
            let v = c.get();
            if v != usize::MAX {
                return v;
            }
            let n = NEXT_STAT_SHARD.fetch_add(1, Ordering::Relaxed) % STAT_SHARDS;
            c.set(n);
            n
        })
        .unwrap_or(0)
}

#[repr(align(64))]
#[derive(Default)]
struct PaddedU64(AtomicU64);

/// A counter split into per-thread shards; the `fetch_add`/`load`/`store` names mirror
/// `AtomicU64` so call sites read the same.
#[derive(Default)]
pub struct ShardedCounter {
    shards: [PaddedU64; STAT_SHARDS],
}

impl ShardedCounter {
    #[inline]
    pub fn fetch_add(&self, v: u64, order: Ordering) {
        self.shards[stat_shard()].0.fetch_add(v, order);
    }

    pub fn load(&self, order: Ordering) -> u64 {
        self.shards.iter().map(|s| s.0.load(order)).sum()
    }

    /// Resets to `v` (CONFIG RESETSTAT uses 0).
    pub fn store(&self, v: u64, order: Ordering) {
        for (i, s) in self.shards.iter().enumerate() {
            s.0.store(if i == 0 { v } else { 0 }, order);
        }
    }
}

#[derive(Default)]
pub struct Stats {
    pub total_connections_received: AtomicU64,
    pub total_commands_processed: ShardedCounter,
    pub rejected_connections: AtomicU64,
    pub expired_keys: AtomicU64,
    pub evicted_keys: AtomicU64,
    pub keyspace_hits: ShardedCounter,
    pub keyspace_misses: ShardedCounter,
    pub net_input_bytes: ShardedCounter,
    pub net_output_bytes: ShardedCounter,
    pub total_error_replies: AtomicU64,
    pub unexpected_error_replies: AtomicU64,
    pub client_qbuf_limit_disconnections: AtomicU64,
    pub client_outbuf_limit_disconnections: AtomicU64,
    pub dirty: ShardedCounter,
    pub errors_by_code: Mutex<HashMap<String, u64>>,
}

/// Latency histogram buckets: bucket b holds durations below 2^b microseconds.
const LATENCY_BUCKETS: usize = 40;

/// Per-command counters (INFO commandstats and latencystats).
pub struct CommandStats {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected_calls: AtomicU64,
    pub failed_calls: AtomicU64,
    latency_hist: [AtomicU64; LATENCY_BUCKETS],
}

impl Stats {
    pub fn count_error(&self, text: &str) {
        self.total_error_replies.fetch_add(1, Ordering::Relaxed);
        let code = crate::error::error_code(text).to_string();
        *self.errors_by_code.lock().entry(code).or_insert(0) += 1;
    }

    pub fn reset(&self) {
        for c in [
            &self.total_commands_processed,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.net_input_bytes,
            &self.net_output_bytes,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for c in [
            &self.total_connections_received,
            &self.rejected_connections,
            &self.expired_keys,
            &self.evicted_keys,
            &self.total_error_replies,
            &self.unexpected_error_replies,
            &self.client_qbuf_limit_disconnections,
            &self.client_outbuf_limit_disconnections,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.errors_by_code.lock().clear();
    }
}

impl Default for CommandStats {
    fn default() -> Self {
        CommandStats {
            calls: AtomicU64::new(0),
            usec: AtomicU64::new(0),
            rejected_calls: AtomicU64::new(0),
            failed_calls: AtomicU64::new(0),
            latency_hist: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl CommandStats {
    /// Records one call that took `usec` microseconds.
    #[inline]
    pub fn record(&self, usec: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.usec.fetch_add(usec, Ordering::Relaxed);
        let b = (64 - usec.leading_zeros() as usize).min(LATENCY_BUCKETS - 1);
        self.latency_hist[b].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        for h in &self.latency_hist {
            h.store(0, Ordering::Relaxed);
        }
        self.calls.store(0, Ordering::Relaxed);
        self.usec.store(0, Ordering::Relaxed);
        self.rejected_calls.store(0, Ordering::Relaxed);
        self.failed_calls.store(0, Ordering::Relaxed);
    }
}

/// Per-command statistics, one table per counter shard. Indexing gives this thread's shard
/// (for updates); [`CmdStatsTable::total`] adds the shards up (for INFO).
pub struct CmdStatsTable {
    shards: Vec<Vec<CommandStats>>,
}

/// Totals of one command across shards.
pub struct CommandTotals {
    pub calls: u64,
    pub usec: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
    hist: [u64; LATENCY_BUCKETS],
}

impl CommandTotals {
    /// Approximate latency percentiles in microseconds (bucket upper bounds).
    pub fn percentiles_us<const N: usize>(&self, ps: [f64; N]) -> [f64; N] {
        percentiles(&self.hist, ps)
    }
}

impl CmdStatsTable {
    pub fn new(commands: usize) -> Self {
        CmdStatsTable {
            shards: (0..STAT_SHARDS)
                .map(|_| (0..commands).map(|_| CommandStats::default()).collect())
                .collect(),
        }
    }

    pub fn total(&self, idx: usize) -> CommandTotals {
        let mut t = CommandTotals {
            calls: 0,
            usec: 0,
            rejected_calls: 0,
            failed_calls: 0,
            hist: [0; LATENCY_BUCKETS],
        };
        for shard in &self.shards {
            let s = &shard[idx];
            t.calls += s.calls.load(Ordering::Relaxed);
            t.usec += s.usec.load(Ordering::Relaxed);
            t.rejected_calls += s.rejected_calls.load(Ordering::Relaxed);
            t.failed_calls += s.failed_calls.load(Ordering::Relaxed);
            for (a, b) in t.hist.iter_mut().zip(s.latency_hist.iter()) {
                *a += b.load(Ordering::Relaxed);
            }
        }
        t
    }

    pub fn reset(&self) {
        for shard in &self.shards {
            for s in shard {
                s.reset();
            }
        }
    }
}

impl std::ops::Index<usize> for CmdStatsTable {
    type Output = CommandStats;

    #[inline]
    fn index(&self, idx: usize) -> &CommandStats {
        &self.shards[stat_shard()][idx]
    }
}

fn percentiles<const N: usize>(counts: &[u64], ps: [f64; N]) -> [f64; N] {
    let total: u64 = counts.iter().sum();
    let mut out = [0.0; N];
    for (i, p) in ps.iter().enumerate() {
        let want = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (b, c) in counts.iter().enumerate() {
            acc += c;
            if acc >= want {
                out[i] = if b == 0 { 1.0 } else { (1u64 << b) as f64 };
                break;
            }
        }
    }
    out
}
