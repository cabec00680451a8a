//! The keyspace: databases, each partitioned into 16384 hash-slot tables behind their own lock.
//!
//! Layout (see docs/ARCHITECTURE.md):
//! * a [`Db`] is 16384 [`Slot`]s, each a `parking_lot::Mutex` around a `hashbrown::HashTable`
//!   of boxed [`Entry`]s — counting, listing, flushing, migrating and snapshotting one slot
//!   costs O(keys in that slot), and there is no global lock on the command path;
//! * an [`Entry`] holds the key inline when short ([`SmallBytes`]), the [`Value`], the absolute
//!   expiry time in ms (0 = none) and an access clock for OBJECT IDLETIME;
//! * expiry is lazy (checked on every lookup) plus the active cycle in `expire.rs`.
//!
//! Point-in-time snapshots without fork (persistence/snapshot.rs): while a snapshot with epoch
//! E is active, the first lock of any slot whose `snap_epoch` is not E hands the slot's
//! pre-lock contents to the snapshot's [`SlotCapture`] and marks it E ("serialise before
//! write"); every path to a slot goes through [`Db::lock`], so no write can reach a slot
//! before its snapshot image is taken.
//!
//! Lock order: (db index, slot) ascending. Any code that holds more than one slot lock must take
//! them in that order ([`LockSet`] does it); nothing may await while holding a slot lock.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hashbrown::HashTable;
use parking_lot::{Mutex, MutexGuard};

use crate::types::Value;

/// Number of hash slots (Redis Cluster's 16384).
pub const SLOT_COUNT: usize = 16384;

/// Byte string stored inline when at most [`SmallBytes::INLINE_CAP`] bytes long, on the heap
/// otherwise. 24 bytes in size.
#[derive(Clone)]
pub enum SmallBytes {
    Inline {
        len: u8,
        data: [u8; SmallBytes::INLINE_CAP],
    },
    Heap(Box<[u8]>),
}

impl SmallBytes {
    pub const INLINE_CAP: usize = 22;

    pub fn new(s: &[u8]) -> Self {
        if s.len() <= Self::INLINE_CAP {
            let mut data = [0u8; Self::INLINE_CAP];
            data[..s.len()].copy_from_slice(s);
            SmallBytes::Inline {
                len: s.len() as u8,
                data,
            }
        } else {
            SmallBytes::Heap(s.into())
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, data } => &data[..*len as usize],
            SmallBytes::Heap(b) => b,
        }
    }

    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes owned beyond the 24-byte handle (for MEMORY USAGE / used_memory).
    pub fn heap_bytes(&self) -> usize {
        match self {
            SmallBytes::Inline { .. } => 0,
            SmallBytes::Heap(b) => b.len(),
        }
    }
}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One key with its value and metadata.
pub struct Entry {
    pub key: SmallBytes,
    pub value: Value,
    /// Absolute unix time in ms at which the key expires; 0 = persistent.
    pub expire_at_ms: i64,
    /// Seconds clock (server start relative) of the last access, for OBJECT IDLETIME.
    pub access_s: u32,
    /// LFU data as Redis keeps it (16-bit minutes of the last decrement, 8-bit log counter),
    /// maintained while an LFU `maxmemory-policy` is selected (`evict.rs`). Fits the padding:
    /// the entry stays 64 bytes.
    pub lfu: u32,
}

static HASHER: OnceLock<hashbrown::DefaultHashBuilder> = OnceLock::new();

/// Hash of a key for the per-slot tables (random seed per process).
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    HASHER
        .get_or_init(hashbrown::DefaultHashBuilder::default)
        .hash_one(key)
}

/// Where the access clock starts: idle times up to this many seconds (Redis's 24-bit LRU clock
/// range, ~194 days) can be represented right after start-up (RESTORE ... IDLETIME).
const ACCESS_CLOCK_BASE_S: u32 = 1 << 24;

static ACCESS_CLOCK_S: std::sync::atomic::AtomicU32 =
    std::sync::atomic::AtomicU32::new(ACCESS_CLOCK_BASE_S);

/// Seconds since process start plus [`ACCESS_CLOCK_BASE_S`], the coarse clock stored in
/// `Entry::access_s` (like Redis's LRU clock: a cached value refreshed by the cron, so lookups
/// do not read the system clock).
#[inline]
pub fn access_clock_s() -> u32 {
    ACCESS_CLOCK_S.load(std::sync::atomic::Ordering::Relaxed)
}

/// Refreshes the cached access clock (called by the cron every tick).
pub fn update_access_clock() {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let s = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs() as u32;
    ACCESS_CLOCK_S.store(
        s.saturating_add(ACCESS_CLOCK_BASE_S),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Result of a lookup with lazy expiry ([`Slot::lookup_live`]).
pub enum Lookup<'a> {
    Live(&'a mut Entry),
    /// The key existed but had expired (it was deleted unless deletion was suppressed).
    Expired,
    Missing,
}

/// The keys of one hash slot of one database.
#[derive(Default)]
pub struct Slot {
    table: HashTable<Box<Entry>>,
    /// Keys in this slot with an expiry set.
    volatile: u32,
    /// Epoch of the last snapshot that captured this slot (see the module doc).
    snap_epoch: u32,
}

/// Receives the contents of a slot the first time it is locked during a snapshot.
pub trait SlotCapture: Send + Sync {
    fn capture(&self, db: u32, slot: u16, contents: &Slot);
}

/// The keyspace side of the forkless snapshot: the active epoch (0 = none) and its sink.
#[derive(Default)]
pub struct SnapHook {
    epoch: AtomicU32,
    /// Bumped whenever a database is created (the snapshot start re-checks it).
    dbs_created: AtomicU64,
    sink: parking_lot::RwLock<Option<Arc<dyn SlotCapture>>>,
    next_epoch: AtomicU32,
}

impl SnapHook {
    pub fn active_epoch(&self) -> u32 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub fn dbs_created(&self) -> u64 {
        self.dbs_created.load(Ordering::SeqCst)
    }

    /// Publishes a new epoch with its sink; returns it. The caller holds every slot lock of
    /// every existing database (so no slot is mid-write) — see persistence/snapshot.rs.
    pub fn publish(&self, sink: Arc<dyn SlotCapture>) -> u32 {
        let e = self.next_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(e != 0, "snapshot epoch wrapped");
        *self.sink.write() = Some(sink);
        self.epoch.store(e, Ordering::SeqCst);
        e
    }

    /// Ends the active snapshot (slots keep their marks; the next epoch differs).
    pub fn retire(&self) {
        self.epoch.store(0, Ordering::SeqCst);
        *self.sink.write() = None;
    }

    #[cold]
    fn capture(&self, db: u32, slot: u16, g: &mut Slot, epoch: u32) {
        if let Some(sink) = self.sink.read().as_ref() {
            sink.capture(db, slot, g);
        }
        g.snap_epoch = epoch;
    }
}

/// What a lookup found, after lazy expiry.
impl Slot {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn volatile(&self) -> u32 {
        self.volatile
    }

    /// Finds `key` without checking expiry.
    #[inline]
    pub fn raw_get(&self, key: &[u8]) -> Option<&Entry> {
        let h = key_hash(key);
        self.table
            .find(h, |e| e.key.as_bytes() == key)
            .map(|b| &**b)
    }

    #[inline]
    pub fn raw_get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let h = key_hash(key);
        self.table
            .find_mut(h, |e| e.key.as_bytes() == key)
            .map(|b| &mut **b)
    }

    /// One-probe lookup with lazy expiry: an expired entry is removed (unless `delete_expired`
    /// is false, as on replicas) and reported as [`Lookup::Expired`].
    #[inline]
    pub fn lookup_live(&mut self, key: &[u8], now_ms: i64, delete_expired: bool) -> Lookup<'_> {
        let h = key_hash(key);
        match self.table.find_entry(h, |e| e.key.as_bytes() == key) {
            Err(_) => Lookup::Missing,
            Ok(occ) => {
                let exp = occ.get().expire_at_ms;
                if exp != 0 && exp <= now_ms {
                    if delete_expired {
                        let _ = occ.remove();
                        self.volatile -= 1;
                    }
                    Lookup::Expired
                } else {
                    Lookup::Live(occ.into_mut())
                }
            }
        }
    }

    /// Inserts or replaces; returns the previous entry.
    pub fn insert(&mut self, entry: Box<Entry>) -> Option<Box<Entry>> {
        let h = key_hash(entry.key.as_bytes());
        if entry.expire_at_ms != 0 {
            self.volatile += 1;
        }
        match self.table.entry(
            h,
            |e| e.key.as_bytes() == entry.key.as_bytes(),
            |e| key_hash(e.key.as_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                let old = std::mem::replace(o.get_mut(), entry);
                if old.expire_at_ms != 0 {
                    self.volatile -= 1;
                }
                Some(old)
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(entry);
                None
            }
        }
    }

    /// Sets `key` to `value` with one probe: an existing entry keeps its allocation and key
    /// and gets the new value, expiry and access time (Redis's dbOverwrite); a new key gets a
    /// new entry. Returns the previous value and expiry when the key existed.
    #[inline]
    pub fn upsert(
        &mut self,
        key: &[u8],
        value: Value,
        expire_at_ms: i64,
        access_s: u32,
    ) -> Option<(Value, i64)> {
        let h = key_hash(key);
        if expire_at_ms != 0 {
            self.volatile += 1;
        }
        match self.table.entry(
            h,
            |e| e.key.as_bytes() == key,
            |e| key_hash(e.key.as_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                let e = o.get_mut();
                let old_exp = std::mem::replace(&mut e.expire_at_ms, expire_at_ms);
                e.access_s = access_s;
                if crate::evict::lfu_on() {
                    crate::evict::lfu_touch(&mut e.lfu);
                }
                let old = std::mem::replace(&mut e.value, value);
                if old_exp != 0 {
                    self.volatile -= 1;
                }
                Some((old, old_exp))
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(Box::new(Entry {
                    key: SmallBytes::new(key),
                    value,
                    expire_at_ms,
                    access_s,
                    lfu: crate::evict::lfu_init(),
                }));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Box<Entry>> {
        let h = key_hash(key);
        match self.table.find_entry(h, |e| e.key.as_bytes() == key) {
            Ok(o) => {
                let (e, _) = o.remove();
                if e.expire_at_ms != 0 {
                    self.volatile -= 1;
                }
                Some(e)
            }
            Err(_) => None,
        }
    }

    /// Sets or clears the expiry of an existing key, keeping the volatile count right.
    pub fn set_expire(&mut self, key: &[u8], expire_at_ms: i64) -> bool {
        let Some(e) = self.raw_get_mut(key) else {
            return false;
        };
        let was = e.expire_at_ms != 0;
        e.expire_at_ms = expire_at_ms;
        let is = expire_at_ms != 0;
        match (was, is) {
            (false, true) => self.volatile += 1,
            (true, false) => self.volatile -= 1,
            _ => {}
        }
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.table.iter().map(|b| &**b)
    }

    /// Removes every entry for which `f` returns true; returns how many were removed.
    pub fn retain_not(&mut self, mut f: impl FnMut(&Entry) -> bool) -> usize {
        let mut removed = 0usize;
        let mut vol_removed = 0u32;
        self.table.retain(|e| {
            if f(e) {
                removed += 1;
                if e.expire_at_ms != 0 {
                    vol_removed += 1;
                }
                false
            } else {
                true
            }
        });
        self.volatile -= vol_removed;
        removed
    }

    /// Drops every key; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.table.len();
        self.table = HashTable::new();
        self.volatile = 0;
        n
    }

    /// Moves every key out (the snapshot mark stays with this slot).
    pub fn take_all(&mut self) -> Slot {
        let epoch = self.snap_epoch;
        let mut taken = std::mem::take(self);
        self.snap_epoch = epoch;
        taken.snap_epoch = 0;
        taken
    }

    /// Bytes of this slot's hash table itself (buckets and control bytes), without entries —
    /// MEMORY STATS's `overhead.hashtable.main`.
    pub fn table_overhead_bytes(&self) -> usize {
        if self.table.capacity() == 0 {
            0
        } else {
            self.table.capacity() * (std::mem::size_of::<Box<Entry>>() + 1)
        }
    }

    /// Approximate bytes held by this slot's table and entries.
    pub fn memory_bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<Box<Entry>>() + 1)
            + self
                .table
                .iter()
                .map(|e| entry_memory_bytes(e))
                .sum::<usize>()
    }
}

/// Approximate bytes used by one entry (key, value and the box).
pub fn entry_memory_bytes(e: &Entry) -> usize {
    std::mem::size_of::<Entry>() + e.key.heap_bytes() + e.value.heap_bytes()
}

/// One logical database (SELECT n).
pub struct Db {
    slots: Box<[Mutex<Slot>]>,
    index: u32,
    snap: Arc<SnapHook>,
    /// Total keys (maintained by `DbView` on every insert/remove).
    keys: AtomicI64,
    /// Keys with an expiry (maintained by `DbView`; lets active expiry skip idle databases).
    volatile: AtomicI64,
}

impl Db {
    fn new(index: u32, snap: Arc<SnapHook>) -> Self {
        // Created while a snapshot is active: the database held nothing at the snapshot's
        // cut (the start protocol retries when a database appears during the cut), so its
        // slots count as already captured (empty).
        let epoch = snap.active_epoch();
        let slots: Vec<Mutex<Slot>> = (0..SLOT_COUNT)
            .map(|_| {
                Mutex::new(Slot {
                    snap_epoch: epoch,
                    ..Slot::default()
                })
            })
            .collect();
        Db {
            slots: slots.into_boxed_slice(),
            index,
            snap,
            keys: AtomicI64::new(0),
            volatile: AtomicI64::new(0),
        }
    }

    #[inline]
    pub fn lock(&self, slot: u16) -> MutexGuard<'_, Slot> {
        let mut g = self.slots[slot as usize].lock();
        // Relaxed is enough: the epoch changes only while the publisher holds this slot's
        // lock, so the mutex orders it (see the module doc).
        let epoch = self.snap.epoch.load(Ordering::Relaxed);
        if epoch != 0 && g.snap_epoch != epoch {
            self.snap.capture(self.index, slot, &mut g, epoch);
        }
        g
    }

    /// `lock` without waiting: None when the slot is held.
    #[inline]
    pub fn try_lock(&self, slot: u16) -> Option<MutexGuard<'_, Slot>> {
        let mut g = self.slots[slot as usize].try_lock()?;
        let epoch = self.snap.epoch.load(Ordering::Relaxed);
        if epoch != 0 && g.snap_epoch != epoch {
            self.snap.capture(self.index, slot, &mut g, epoch);
        }
        Some(g)
    }

    /// `lock` with a deadline: None when the slot stayed busy until `deadline`.
    pub fn try_lock_until(
        &self,
        slot: u16,
        deadline: std::time::Instant,
    ) -> Option<MutexGuard<'_, Slot>> {
        let mut g = self.slots[slot as usize].try_lock_until(deadline)?;
        let epoch = self.snap.epoch.load(Ordering::Relaxed);
        if epoch != 0 && g.snap_epoch != epoch {
            self.snap.capture(self.index, slot, &mut g, epoch);
        }
        Some(g)
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    /// Bytes of `slot`'s table (see [`Slot::table_overhead_bytes`]) if its lock is free now.
    /// Never waits: INFO / MEMORY STATS may run inside an EXEC that holds slot locks.
    pub fn try_table_overhead_bytes(&self, slot: u16) -> Option<usize> {
        let g = self.slots.get(slot as usize)?.try_lock()?;
        Some(g.table_overhead_bytes())
    }

    /// Cache hint: the header of `slot` (its mutex and table header) will be needed soon.
    #[inline]
    pub fn prefetch_slot(&self, slot: u16) {
        if let Some(m) = self.slots.get(slot as usize) {
            crate::prefetch::hint(m as *const Mutex<Slot>);
        }
    }

    /// Cache hint: probes the tables of `keys` (slot, key) and prefetches the matching entries
    /// without reading them. The slots are taken with `try_lock` (never waits; a busy slot, or
    /// one already taken for an earlier key of the batch, is skipped) and all held while probing,
    /// so that the probes' cache misses overlap — a lock acquisition between two probes would
    /// serialise them. Held for a few hundred nanoseconds; modifies nothing.
    pub fn prefetch_entries<'k>(&self, keys: impl Iterator<Item = (u16, &'k [u8])>) {
        let mut held: smallvec::SmallVec<[(MutexGuard<'_, Slot>, u64); 64]> =
            smallvec::SmallVec::new();
        for (slot, key) in keys {
            if let Some(g) = self.slots.get(slot as usize).and_then(|m| m.try_lock()) {
                held.push((g, key_hash(key)));
            }
        }
        for (g, h) in &held {
            let _ = g.table.find(*h, |e| {
                crate::prefetch::hint(&**e as *const Entry);
                false
            });
        }
    }

    pub fn key_count(&self) -> i64 {
        self.keys.load(Ordering::Relaxed).max(0)
    }

    #[inline]
    pub fn adjust_keys(&self, delta: i64) {
        if delta != 0 {
            self.keys.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// Keys with an expiry set.
    pub fn volatile_count(&self) -> u64 {
        self.volatile.load(Ordering::Relaxed).max(0) as u64
    }

    #[inline]
    pub fn adjust_volatile(&self, delta: i64) {
        if delta != 0 {
            self.volatile.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

/// All databases. Database 0 always exists; others are created on first use.
pub struct Keyspace {
    dbs: Box<[OnceLock<Db>]>,
    pub snap: Arc<SnapHook>,
}

impl Keyspace {
    pub fn new(databases: usize) -> Self {
        let dbs: Vec<OnceLock<Db>> = (0..databases.max(1)).map(|_| OnceLock::new()).collect();
        let ks = Keyspace {
            dbs: dbs.into_boxed_slice(),
            snap: Arc::new(SnapHook::default()),
        };
        ks.db(0);
        ks
    }

    pub fn db_count(&self) -> usize {
        self.dbs.len()
    }

    #[inline]
    pub fn db(&self, index: usize) -> &Db {
        self.dbs[index].get_or_init(|| {
            self.snap.dbs_created.fetch_add(1, Ordering::SeqCst);
            Db::new(index as u32, self.snap.clone())
        })
    }

    /// Database `index` if it has been touched (never creates it).
    #[inline]
    pub fn get_db(&self, index: usize) -> Option<&Db> {
        self.dbs.get(index)?.get()
    }

    /// Databases that have been touched, with their index.
    pub fn existing_dbs(&self) -> impl Iterator<Item = (usize, &Db)> {
        self.dbs
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.get().map(|d| (i, d)))
    }
}

/// Slots locked for one command (or one EXEC), in (db, slot) order.
pub struct LockSet<'a> {
    guards: smallvec::SmallVec<[(u32, u16, MutexGuard<'a, Slot>); 2]>,
}

impl<'a> LockSet<'a> {
    pub fn empty() -> Self {
        LockSet {
            guards: smallvec::SmallVec::new(),
        }
    }

    /// Locks the given (db, slot) pairs; duplicates are fine; order is fixed here.
    pub fn lock(ks: &'a Keyspace, mut wanted: smallvec::SmallVec<[(u32, u16); 4]>) -> Self {
        wanted.sort_unstable();
        wanted.dedup();
        let mut guards = smallvec::SmallVec::new();
        for (db, slot) in wanted {
            guards.push((db, slot, ks.db(db as usize).lock(slot)));
        }
        LockSet { guards }
    }

    /// `lock` for the command path: a slot that stays held is waited for in 10 ms rounds, and
    /// the wait is abandoned (None, nothing held) as soon as `give_up()` says so — a script
    /// running past `busy-reply-threshold` holds its slots until it ends, and the waiting
    /// worker must stay free to answer -BUSY, SCRIPT KILL and SHUTDOWN.
    pub fn lock_polling(
        ks: &'a Keyspace,
        mut wanted: smallvec::SmallVec<[(u32, u16); 4]>,
        give_up: impl Fn() -> bool,
    ) -> Option<Self> {
        wanted.sort_unstable();
        wanted.dedup();
        let mut guards = smallvec::SmallVec::new();
        for (db, slot) in wanted {
            let d = ks.db(db as usize);
            let g = match d.try_lock(slot) {
                Some(g) => g,
                None => loop {
                    let round = std::time::Instant::now() + std::time::Duration::from_millis(10);
                    if let Some(g) = d.try_lock_until(slot, round) {
                        break g;
                    }
                    if give_up() {
                        return None;
                    }
                },
            };
            guards.push((db, slot, g));
        }
        Some(LockSet { guards })
    }

    pub fn len(&self) -> usize {
        self.guards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// The guards stay sorted by (db, slot) (`lock` sorts, `acquire_more` inserts in
    /// place): small sets are scanned, big ones (EXEC / scripts holding every slot)
    /// binary-searched.
    #[inline]
    fn position(&self, db: u32, slot: u16) -> Option<usize> {
        if self.guards.len() <= 8 {
            self.guards
                .iter()
                .position(|(d, s, _)| *d == db && *s == slot)
        } else {
            self.guards
                .binary_search_by(|(d, s, _)| (*d, *s).cmp(&(db, slot)))
                .ok()
        }
    }

    #[inline]
    pub fn find(&mut self, db: u32, slot: u16) -> Option<&mut Slot> {
        let i = self.position(db, slot)?;
        Some(&mut *self.guards[i].2)
    }

    pub fn holds(&self, db: u32, slot: u16) -> bool {
        self.position(db, slot).is_some()
    }

    /// Adds the (db, slot) pairs not held yet, for a script whose commands reach keys it
    /// did not declare. Deadlock-free with every other locker, which all lock in ascending
    /// (db, slot) order and never wait while holding a higher slot: a pair above every
    /// held one is waited for, one below is tried until `deadline` (a cycle is possible
    /// only there, and the deadline breaks it). When a pair stays busy the pairs
    /// taken before stay held, nothing is released. None when a pair stayed busy.
    pub fn acquire_more(
        &mut self,
        ks: &'a Keyspace,
        wanted: &[(u32, u16)],
        deadline: std::time::Instant,
    ) -> Option<()> {
        let mut wanted: smallvec::SmallVec<[(u32, u16); 4]> = wanted.iter().copied().collect();
        wanted.sort_unstable();
        wanted.dedup();
        for (db, slot) in wanted {
            let pos = match self
                .guards
                .binary_search_by(|(d, s, _)| (*d, *s).cmp(&(db, slot)))
            {
                Ok(_) => continue,
                Err(pos) => pos,
            };
            let d = ks.db(db as usize);
            let guard = if pos == self.guards.len() {
                d.lock(slot)
            } else {
                d.try_lock_until(slot, deadline)?
            };
            self.guards.insert(pos, (db, slot, guard));
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory per key depends on these sizes (BENCHMARKS.md, memory tables): one 64-byte
    /// entry per key, and a 32/24-byte handle for a small hash / set.
    #[test]
    fn handles_stay_compact() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
        assert_eq!(std::mem::size_of::<Entry>(), 64);
        assert!(std::mem::size_of::<crate::types::hash::Hash>() <= 32);
        assert!(std::mem::size_of::<crate::types::set::Set>() <= 32);
    }

    #[test]
    fn small_bytes_is_compact() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        assert_eq!(SmallBytes::new(b"hello").as_bytes(), b"hello");
        let long = vec![7u8; 100];
        assert_eq!(SmallBytes::new(&long).as_bytes(), &long[..]);
    }

    #[test]
    fn slot_insert_remove_and_volatile() {
        let mut s = Slot::default();
        let mk = |k: &[u8], exp| {
            Box::new(Entry {
                key: SmallBytes::new(k),
                value: Value::Int(1),
                expire_at_ms: exp,
                access_s: 0,
                lfu: 0,
            })
        };
        assert!(s.insert(mk(b"a", 0)).is_none());
        assert!(s.insert(mk(b"b", 5)).is_none());
        assert_eq!(s.volatile(), 1);
        assert!(s.insert(mk(b"b", 0)).is_some());
        assert_eq!(s.volatile(), 0);
        assert!(s.set_expire(b"a", 10));
        assert_eq!(s.volatile(), 1);
        assert!(s.remove(b"a").is_some());
        assert_eq!(s.volatile(), 0);
        assert_eq!(s.len(), 1);
    }
}
