//! The memory limit: `maxmemory`, the eviction policies (`maxmemory-policy`) and the LFU
//! access counters — Redis 7.0's `performEvictions` and `evict.c`.
//!
//! Before every command (when `maxmemory` is set) the dispatcher calls [`perform`]: while the
//! allocator-level used memory (INFO `used_memory`, less the replica output queues and the
//! AOF buffer as Redis's `freeMemoryGetNotCountedMemory`) is above the limit, keys are evicted by the policy; with
//! `noeviction`, or when nothing evictable is left, the result is [`Outcome::OutOfMemory`] and
//! the dispatcher refuses commands flagged `denyoom` with
//! `-OOM command not allowed when used memory > 'maxmemory'.` An eviction round is time-boxed
//! by `maxmemory-eviction-tenacity` as in Redis; the cron continues it (Redis's eviction
//! time proc).
//!
//! Candidate selection is approximated by sampling, as Redis does: for LRU / LFU / TTL,
//! `maxmemory-samples` keys are drawn per database (each from a random non-empty slot) and the
//! best is evicted (Redis also keeps a pool of good candidates between rounds; we do not, so
//! our approximation is the one of Redis 2.8 — same idea, slightly less precise). LRU idle time
//! uses the entries' one-second access clock (Redis's LRU clock also has a 1 s resolution).
//! LFU keeps Redis's 24-bit layout in `Entry::lfu`: 16 bits of "last decrement time" in
//! minutes and an 8-bit logarithmic counter (`lfu-log-factor`, `lfu-decay-time`); counters are
//! maintained only while an LFU policy is selected (like Redis, switching policies at run time
//! takes a while to adjust).
//!
//! Evicted keys are deleted as Redis does: `DEL` propagated to replicas and the AOF (under the
//! slot lock, so in stream order), `evicted` keyspace event, WATCH invalidated, INFO
//! `evicted_keys`. Replicas do not evict by default (`replica-ignore-maxmemory yes`): their
//! master's DELs keep them in step.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::keyspace::{Entry, SLOT_COUNT};
use crate::server::Server;
use crate::settings::Settings;

/// `maxmemory-policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    NoEviction,
}

impl Policy {
    /// Every policy with its `maxmemory-policy` name; the index is the stored `u8`.
    const ALL: [(Policy, &'static str); 8] = [
        (Policy::VolatileLru, "volatile-lru"),
        (Policy::VolatileLfu, "volatile-lfu"),
        (Policy::VolatileRandom, "volatile-random"),
        (Policy::VolatileTtl, "volatile-ttl"),
        (Policy::AllkeysLru, "allkeys-lru"),
        (Policy::AllkeysLfu, "allkeys-lfu"),
        (Policy::AllkeysRandom, "allkeys-random"),
        (Policy::NoEviction, "noeviction"),
    ];

    /// The policy named `s` (the config layer has validated it; anything else is noeviction).
    pub fn parse(s: &str) -> Policy {
        Self::ALL
            .iter()
            .find(|(_, name)| name.eq_ignore_ascii_case(s))
            .map_or(Policy::NoEviction, |&(p, _)| p)
    }

    fn from_u8(v: u8) -> Policy {
        Self::ALL
            .get(v as usize)
            .map_or(Policy::NoEviction, |&(p, _)| p)
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::VolatileLfu | Policy::AllkeysLfu)
    }
}

/// Result of an eviction round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Under the limit (or evicting is not this node's job).
    Ok,
    /// Over the limit and nothing (more) can be evicted: `denyoom` commands are refused.
    OutOfMemory,
}

/// The eviction settings, mirrored from the settings snapshot on every change so the
/// command path reads one atomic when no limit is set.
#[derive(Default)]
pub struct Evictor {
    pub maxmemory_bytes: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    tenacity: AtomicU32,
    ignore_on_replica: AtomicBool,
    /// Round-robin database cursor of the random policies (Redis's `next_db`).
    next_db: AtomicUsize,
    /// Evictions ran while over the limit (INFO's `total_eviction_exceeded_time` is not kept).
    pub over_limit: AtomicBool,
    /// The best candidates seen so far, ascending by score (Redis's EvictionPoolLRU): each
    /// round adds fresh samples and evicts the best, so a good candidate found by an earlier
    /// round is not forgotten.
    pool: parking_lot::Mutex<Vec<Candidate>>,
}

/// Candidates kept between rounds (Redis's EVPOOL_SIZE).
const POOL_SIZE: usize = 16;

fn pool_insert(pool: &mut Vec<Candidate>, c: Candidate) {
    if let Some(i) = pool.iter().position(|p| p.db == c.db && p.key == c.key) {
        pool.remove(i); // re-sampled: keep the fresh score
    } else if pool.len() >= POOL_SIZE {
        if c.score <= pool[0].score {
            return;
        }
        pool.remove(0);
    }
    let at = pool.partition_point(|p| p.score <= c.score);
    pool.insert(at, c);
}

// LFU parameters, global so the lookup path reads them without the settings snapshot.
static LFU_ON: AtomicBool = AtomicBool::new(false);
static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_MIN: AtomicU32 = AtomicU32::new(1);
/// Redis's LFU_INIT_VAL: a new key starts with this counter, so it is not evicted at once.
pub const LFU_INIT_VAL: u32 = 5;

impl Evictor {
    pub fn configure(&self, s: &Settings) {
        let p = Policy::parse(&s.maxmemory_policy);
        if self.policy.swap(p as u8, Ordering::Relaxed) != p as u8 {
            self.pool.lock().clear(); // scores of another policy
        }
        self.samples
            .store(s.maxmemory_samples.max(1), Ordering::Relaxed);
        self.tenacity
            .store(s.maxmemory_eviction_tenacity, Ordering::Relaxed);
        self.ignore_on_replica
            .store(s.replica_ignore_maxmemory, Ordering::Relaxed);
        LFU_LOG_FACTOR.store(s.lfu_log_factor, Ordering::Relaxed);
        LFU_DECAY_MIN.store(s.lfu_decay_time_min, Ordering::Relaxed);
        LFU_ON.store(p.is_lfu(), Ordering::Relaxed);
        self.maxmemory_bytes
            .store(s.maxmemory_bytes, Ordering::Release);
    }

    pub fn policy(&self) -> Policy {
        Policy::from_u8(self.policy.load(Ordering::Relaxed))
    }

    /// Whether Redis would use its shared integer objects (OBJECT REFCOUNT of 0..9999): not
    /// when a limit with an LRU / LFU policy is set (MAXMEMORY_FLAG_NO_SHARED_INTEGERS), as
    /// each key then needs its own access data.
    pub fn shares_integers(&self) -> bool {
        use Policy::*;
        self.maxmemory_bytes.load(Ordering::Relaxed) == 0
            || !matches!(
                self.policy(),
                VolatileLru | VolatileLfu | AllkeysLru | AllkeysLfu
            )
    }

    /// Redis's evictionTimeLimitUs: how long one round may evict before yielding.
    fn time_limit(&self) -> Option<Duration> {
        let t = self.tenacity.load(Ordering::Relaxed);
        if t >= 100 {
            return None;
        }
        let us = if t <= 10 {
            50.0 * t as f64
        } else {
            500.0 * 1.15f64.powi(t as i32 - 10)
        };
        Some(Duration::from_micros(us.max(1.0) as u64))
    }
}

/// Memory the limit applies to, as Redis's getMaxmemoryState: INFO's `used_memory` when
/// that is under `max` (the cheap check), else `used_memory` minus what is not counted
/// (replica output queues and the AOF buffer, `mem_not_counted_for_evict`).
fn counted_memory_bytes(srv: &Server, max: u64) -> u64 {
    let used = crate::alloc::allocated_bytes();
    if used <= max {
        return used;
    }
    used.saturating_sub(srv.repl.not_counted_for_evict_bytes())
}

/// True when the LFU counters are kept (an LFU policy is selected).
#[inline]
pub fn lfu_on() -> bool {
    LFU_ON.load(Ordering::Relaxed)
}

/// The LFU minute clock: the cached one-second access clock in minutes, 16 bits (Redis uses
/// unixtime/60; only differences are ever observed).
#[inline]
fn minutes_now() -> u32 {
    (crate::keyspace::access_clock_s() / 60) & 0xFFFF
}

/// A new key's LFU field (counter LFU_INIT_VAL, decremented "now").
#[inline]
pub fn lfu_init() -> u32 {
    (minutes_now() << 8) | LFU_INIT_VAL
}

/// An LFU field with counter `counter` (0-255), decremented "now" (RESTORE ... FREQ).
pub fn lfu_with_counter(counter: u32) -> u32 {
    (minutes_now() << 8) | counter.min(255)
}

/// The counter after the decay for the minutes elapsed (Redis's LFUDecrAndReturn).
pub fn lfu_counter(lfu: u32) -> u32 {
    counter_at(lfu, minutes_now())
}

fn counter_at(lfu: u32, now_min: u32) -> u32 {
    let ldt = lfu >> 8;
    let counter = lfu & 0xFF;
    let elapsed = if now_min >= ldt {
        now_min - ldt
    } else {
        65535 - ldt + now_min
    };
    let periods = elapsed
        .checked_div(LFU_DECAY_MIN.load(Ordering::Relaxed))
        .unwrap_or(0);
    counter.saturating_sub(periods)
}

/// One access (Redis's updateLFU: decay, then a logarithmic increment).
#[inline]
pub fn lfu_touch(lfu: &mut u32) {
    touch_at(lfu, minutes_now())
}

fn touch_at(lfu: &mut u32, now_min: u32) {
    let mut counter = counter_at(*lfu, now_min);
    if counter < 255 {
        let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
        let p = 1.0 / (base * LFU_LOG_FACTOR.load(Ordering::Relaxed) as f64 + 1.0);
        if rand::thread_rng().gen::<f64>() < p {
            counter += 1;
        }
    }
    *lfu = ((now_min & 0xFFFF) << 8) | counter;
}

/// A key chosen for eviction.
struct Candidate {
    db: usize,
    slot: u16,
    key: Vec<u8>,
    /// Higher is evicted first.
    score: u64,
}

/// Score of `e` under `policy` (higher = better to evict).
fn score(policy: Policy, e: &Entry, now_s: u32) -> u64 {
    match policy {
        Policy::AllkeysLru | Policy::VolatileLru => now_s.saturating_sub(e.access_s) as u64,
        Policy::AllkeysLfu | Policy::VolatileLfu => 255 - lfu_counter(e.lfu) as u64,
        // Sooner expiry is better: invert the absolute expiry time.
        Policy::VolatileTtl => u64::MAX - e.expire_at_ms.max(0) as u64,
        _ => 0,
    }
}

/// Draws one key from a random non-empty slot of database `dbi` (a volatile one when
/// `volatile`): the slot scan starts at a random slot and walks forward, so a database with
/// any eligible key always yields one.
fn sample_one(
    srv: &Server,
    dbi: usize,
    volatile: bool,
    policy: Policy,
    now_s: u32,
) -> Option<Candidate> {
    let db = srv.keyspace.get_db(dbi)?;
    let mut rng = rand::thread_rng();
    let start = rng.gen_range(0..SLOT_COUNT);
    for i in 0..SLOT_COUNT {
        let slot = ((start + i) % SLOT_COUNT) as u16;
        // Held slots (a long script holds its slots until it ends) are skipped, not waited for.
        let Some(g) = db.try_lock(slot) else {
            continue;
        };
        let n = if volatile {
            g.volatile() as usize
        } else {
            g.len()
        };
        if n == 0 {
            continue;
        }
        let skip = rng.gen_range(0..g.len());
        let pick = g
            .iter()
            .skip(skip)
            .chain(g.iter())
            .find(|e| !volatile || e.expire_at_ms != 0)?;
        return Some(Candidate {
            db: dbi,
            slot,
            key: pick.key.as_bytes().to_vec(),
            score: score(policy, pick, now_s),
        });
    }
    None
}

/// Picks the next key to evict, or None when nothing is evictable.
fn pick(srv: &Server, ev: &Evictor, policy: Policy) -> Option<Candidate> {
    let volatile = policy.volatile_only();
    let now_s = crate::keyspace::access_clock_s();
    let dbs: Vec<usize> = srv
        .keyspace
        .existing_dbs()
        .filter(|(_, d)| {
            if volatile {
                d.volatile_count() > 0
            } else {
                d.key_count() > 0
            }
        })
        .map(|(i, _)| i)
        .collect();
    if dbs.is_empty() {
        return None;
    }
    if matches!(policy, Policy::AllkeysRandom | Policy::VolatileRandom) {
        // Round-robin over the databases, a random key of each (Redis's next_db).
        let first = ev.next_db.fetch_add(1, Ordering::Relaxed);
        for k in 0..dbs.len() {
            let dbi = dbs[(first + k) % dbs.len()];
            if let Some(c) = sample_one(srv, dbi, volatile, policy, now_s) {
                return Some(c);
            }
        }
        return None;
    }
    let samples = ev.samples.load(Ordering::Relaxed).max(1);
    let mut pool = ev.pool.lock();
    for &dbi in &dbs {
        for _ in 0..samples {
            let Some(c) = sample_one(srv, dbi, volatile, policy, now_s) else {
                break;
            };
            pool_insert(&mut pool, c);
        }
    }
    // The best candidate; one that no longer exists is skipped by the caller (evict_key).
    pool.pop()
}

/// Deletes one evicted key the way Redis's performEvictions does; false if it is gone.
fn evict_key(srv: &Server, c: &Candidate) -> bool {
    let db = srv.keyspace.db(c.db);
    let removed = {
        let Some(mut g) = db.try_lock(c.slot) else {
            return false; // held (e.g. by a long script): another candidate goes instead
        };
        let Some(e) = g.remove(&c.key) else {
            return false;
        };
        if srv.repl.needs_feed() {
            // Under the slot lock: the DEL takes its place in the stream after every write
            // that preceded the eviction.
            srv.repl.propagate(c.db as u32, &[b"DEL", &c.key]);
        }
        e
    };
    db.adjust_keys(-1);
    if removed.expire_at_ms != 0 {
        db.adjust_volatile(-1);
    }
    drop(removed);
    srv.stats.evicted_keys.fetch_add(1, Ordering::Relaxed);
    srv.touch_watched(c.db as u32, &c.key);
    crate::notify::publish_event(
        &srv.pubsub,
        c.db as u32,
        crate::notify::EVICTED,
        "evicted",
        &c.key,
    );
    true
}

/// Evicts until used memory is under `maxmemory` (or the round's time is up); see the
/// module doc. Callers must hold no slot lock.
pub fn perform(srv: &Server) -> Outcome {
    let ev = &srv.evict;
    let max = ev.maxmemory_bytes.load(Ordering::Acquire);
    if max == 0 {
        return Outcome::Ok;
    }
    // isSafeToPerformEvictions: not while loading, not on a replica that ignores the limit.
    if srv.repl.is_loading()
        || (srv.repl.is_replica() && ev.ignore_on_replica.load(Ordering::Relaxed))
    {
        return Outcome::Ok;
    }
    if counted_memory_bytes(srv, max) <= max {
        ev.over_limit.store(false, Ordering::Relaxed);
        return Outcome::Ok;
    }
    ev.over_limit.store(true, Ordering::Relaxed);
    let policy = ev.policy();
    if policy == Policy::NoEviction {
        return Outcome::OutOfMemory;
    }
    let started = Instant::now();
    let limit = ev.time_limit();
    let mut evicted = 0u64;
    loop {
        let Some(c) = pick(srv, ev, policy) else {
            return Outcome::OutOfMemory; // nothing (left) to evict
        };
        if evict_key(srv, &c) {
            evicted += 1;
        }
        if counted_memory_bytes(srv, max) <= max {
            ev.over_limit.store(false, Ordering::Relaxed);
            return Outcome::Ok;
        }
        if evicted.is_multiple_of(16) {
            if let Some(l) = limit {
                if started.elapsed() > l {
                    // Redis returns EVICT_RUNNING here: commands go on, the cron continues.
                    return Outcome::Ok;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_round_trip() {
        for (i, &(p, name)) in Policy::ALL.iter().enumerate() {
            assert_eq!(Policy::parse(name), p);
            assert_eq!(Policy::parse(&name.to_ascii_uppercase()), p);
            assert_eq!(p as u8 as usize, i);
            assert_eq!(Policy::from_u8(p as u8), p);
        }
        assert_eq!(Policy::from_u8(200), Policy::NoEviction);
    }

    #[test]
    fn lfu_counter_grows_logarithmically_and_decays() {
        let t0 = 1000;
        let mut v = (t0 << 8) | LFU_INIT_VAL;
        assert_eq!(counter_at(v, t0), LFU_INIT_VAL);
        for _ in 0..100_000 {
            touch_at(&mut v, t0);
        }
        let c = counter_at(v, t0);
        // redis.conf's table: with lfu-log-factor 10, 100K hits give a counter of ~142.
        assert!((120..=170).contains(&c), "counter {c}");
        // One decay period (lfu-decay-time 1 minute) per elapsed minute, across the wrap.
        assert_eq!(counter_at(v, t0 + 3), c - 3);
        assert_eq!(counter_at(v, t0 + 1000), 0);
        let late = (65530 << 8) | 20;
        assert_eq!(counter_at(late, 4), 20 - 9);
    }

    #[test]
    fn pool_keeps_the_best_candidates_sorted() {
        let mut pool = Vec::new();
        let c = |key: u8, score: u64| Candidate {
            db: 0,
            slot: 0,
            key: vec![key],
            score,
        };
        for i in 0..40u8 {
            pool_insert(&mut pool, c(i, (i as u64 * 37) % 41));
        }
        assert_eq!(pool.len(), POOL_SIZE);
        assert!(pool.windows(2).all(|w| w[0].score <= w[1].score));
        assert_eq!(pool.last().map(|b| b.score), Some(40));
        // Re-sampling a key replaces its entry instead of duplicating it.
        let best = pool.last().map(|b| b.key.clone()).unwrap_or_default();
        pool_insert(&mut pool, c(best[0], 1000));
        assert_eq!(pool.iter().filter(|p| p.key == best).count(), 1);
        assert_eq!(pool.last().map(|b| b.score), Some(1000));
    }

    #[test]
    fn time_limit_follows_tenacity() {
        let ev = Evictor::default();
        ev.tenacity.store(10, Ordering::Relaxed);
        assert_eq!(ev.time_limit(), Some(Duration::from_micros(500)));
        ev.tenacity.store(100, Ordering::Relaxed);
        assert_eq!(ev.time_limit(), None);
    }
}
