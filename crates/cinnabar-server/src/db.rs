//! `DbView`: what a command handler sees of the keyspace — the slots the dispatcher locked for
//! it, the selected database, the command's clock, and the lazy-expiry / stats bookkeeping
//! every key access goes through.

use std::sync::atomic::Ordering;

use cinnabar_cluster::slot::key_hash_slot;

use crate::keyspace::{access_clock_s, Entry, Keyspace, LockSet, Lookup, Slot, SLOT_COUNT};
use crate::notify::{self, publish_event};
use crate::pubsub::PubSub;
use crate::stats::Stats;
use crate::types::Value;

pub struct DbView<'a> {
    pub ks: &'a Keyspace,
    pub stats: &'a Stats,
    /// Selected database.
    pub index: u32,
    /// Command time (ms since the epoch), fixed for the whole command like Redis's cached clock.
    pub now_ms: i64,
    pub locks: LockSet<'a>,
    /// True when every slot of `index` is held (EXEC with a keyspace-wide command).
    pub all_locked: bool,
    /// Number of keyspace changes made (drives `dirty` counters, later propagation).
    pub dirty: u64,
    /// Set when lazy expiry must not delete (replicas), see Redis's lookupKey.
    pub no_expire_delete: bool,
    /// Keys deleted by lazy expiry during this command, (db, key): propagated as DEL.
    pub expired: Vec<(u32, Vec<u8>)>,
    /// Hash slot of the last key seen, by the key's address and length: handlers pass the
    /// argument slices the dispatcher already hashed, so CRC16 runs once per key.
    slot_cache: (usize, usize, u16),
    /// Where keyspace notifications go (`expired`, `new`, `keymiss`; see `notify.rs`).
    pub pubsub: Option<&'a PubSub>,
    /// Set by a handler whose effect replicates as a different command (MIGRATE → `DEL`
    /// of the moved keys, RESTORE with a relative TTL → `ABSTTL`); an empty vector means
    /// "propagate nothing". Taken by `repl::rewrite`.
    pub propagate_as: Option<Vec<Vec<u8>>>,
}

impl<'a> DbView<'a> {
    pub fn new(
        ks: &'a Keyspace,
        stats: &'a Stats,
        index: u32,
        now_ms: i64,
        locks: LockSet<'a>,
    ) -> Self {
        DbView {
            ks,
            stats,
            index,
            now_ms,
            locks,
            all_locked: false,
            dirty: 0,
            no_expire_delete: false,
            expired: Vec::new(),
            slot_cache: (0, usize::MAX, 0),
            pubsub: None,
            propagate_as: None,
        }
    }

    /// Seeds the slot cache with a key whose slot the caller already computed.
    #[inline]
    pub fn prime_slot(&mut self, key: &[u8], slot: u16) {
        self.slot_cache = (key.as_ptr() as usize, key.len(), slot);
    }

    #[inline]
    fn slot_index(&mut self, key: &[u8]) -> u16 {
        let (p, l, s) = self.slot_cache;
        if p == key.as_ptr() as usize && l == key.len() {
            return s;
        }
        let s = key_hash_slot(key);
        self.slot_cache = (key.as_ptr() as usize, key.len(), s);
        s
    }

    #[inline]
    fn slot_of(&mut self, db: u32, key: &[u8]) -> &mut Slot {
        let slot = self.slot_index(key);
        match self.locks.find(db, slot) {
            Some(s) => s,
            None => {
                panic!("internal error: key slot {slot} of db {db} not locked for this command")
            }
        }
    }

    /// Raw slot access for code that manages its own bookkeeping (COPY/MOVE/RENAME helpers).
    pub fn slot_mut(&mut self, db: u32, key: &[u8]) -> &mut Slot {
        self.slot_of(db, key)
    }

    /// One probe: the live entry, with lazy expiry and its bookkeeping.
    #[inline]
    fn lookup_in(&mut self, db: u32, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now_ms;
        let delete = !self.no_expire_delete;
        let ks = self.ks;
        let stats = self.stats;
        let idx = self.slot_index(key);
        // Borrow only the lock set, so the bookkeeping below can touch other fields.
        let Some(slot) = self.locks.find(db, idx) else {
            panic!("internal error: key slot {idx} of db {db} not locked for this command")
        };
        match slot.lookup_live(key, now, delete) {
            Lookup::Live(e) => {
                e.access_s = access_clock_s();
                if crate::evict::lfu_on() {
                    crate::evict::lfu_touch(&mut e.lfu);
                }
                Some(e)
            }
            Lookup::Missing => None,
            Lookup::Expired => {
                if delete {
                    let d = ks.db(db as usize);
                    d.adjust_keys(-1);
                    d.adjust_volatile(-1);
                    stats.expired_keys.fetch_add(1, Ordering::Relaxed);
                    self.dirty += 1;
                    self.expired.push((db, key.to_vec()));
                    if let Some(ps) = self.pubsub {
                        publish_event(ps, db, notify::EXPIRED, "expired", key);
                    }
                }
                None
            }
        }
    }

    /// Publishes a keyspace event for `key` of database `db` (no-op when disabled).
    #[inline]
    pub fn notify_in(&self, db: u32, class: u32, event: &str, key: &[u8]) {
        if let Some(ps) = self.pubsub {
            publish_event(ps, db, class, event, key);
        }
    }

    /// Looks a key up in database `db` for writing (no hit/miss accounting).
    #[inline]
    pub fn lookup_write_in(&mut self, db: u32, key: &[u8]) -> Option<&mut Entry> {
        self.lookup_in(db, key)
    }

    /// Looks a key up for writing in the selected database.
    #[inline]
    pub fn lookup_write(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.lookup_in(self.index, key)
    }

    /// Looks a key up for reading: counts keyspace hits/misses.
    #[inline]
    pub fn lookup_read(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let stats = self.stats;
        let (ps, db) = (self.pubsub, self.index);
        let r = self.lookup_in(db, key);
        if r.is_some() {
            stats.keyspace_hits.fetch_add(1, Ordering::Relaxed);
            return r;
        }
        stats.keyspace_misses.fetch_add(1, Ordering::Relaxed);
        if let Some(ps) = ps {
            publish_event(ps, db, notify::KEY_MISS, "keymiss", key);
        }
        None
    }

    /// Existence check without touching hit/miss stats or the access clock (EXISTS touches
    /// stats in Redis; callers decide).
    pub fn exists(&mut self, key: &[u8]) -> bool {
        let db = self.index;
        let now = self.now_ms;
        match self.slot_of(db, key).raw_get(key) {
            Some(e) => e.expire_at_ms == 0 || e.expire_at_ms > now,
            None => false,
        }
    }

    /// Stores `value` at `key` in database `db`, replacing any previous value.
    /// `expire_at_ms` 0 = persistent.
    pub fn set_in(&mut self, db: u32, key: &[u8], value: Value, expire_at_ms: i64) {
        let access_s = access_clock_s();
        let slot = self.slot_of(db, key);
        let before = slot.volatile();
        let old = slot.upsert(key, value, expire_at_ms, access_s);
        let delta = slot.volatile() as i64 - before as i64;
        let d = self.ks.db(db as usize);
        d.adjust_volatile(delta);
        match old {
            None => {
                d.adjust_keys(1);
                self.notify_in(db, notify::NEW, "new", key);
            }
            // Replacing a key that had expired: Redis deletes it first (`expired`), then adds.
            Some((_, old_exp)) if old_exp != 0 && old_exp <= self.now_ms => {
                self.notify_in(db, notify::EXPIRED, "expired", key);
                self.notify_in(db, notify::NEW, "new", key);
            }
            Some(_) => {}
        }
        self.dirty += 1;
    }

    #[inline]
    pub fn set(&mut self, key: &[u8], value: Value, expire_at_ms: i64) {
        self.set_in(self.index, key, value, expire_at_ms)
    }

    /// Replaces the value of a key, keeping its TTL.
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value) {
        let db = self.index;
        let exp = self
            .lookup_write_in(db, key)
            .map(|e| e.expire_at_ms)
            .unwrap_or(0);
        self.set_in(db, key, value, exp);
    }

    /// Removes a key from `db`; returns the entry if it existed (and had not expired).
    pub fn remove_in(&mut self, db: u32, key: &[u8]) -> Option<Box<Entry>> {
        self.lookup_in(db, key)?;
        let e = self.slot_of(db, key).remove(key)?;
        let d = self.ks.db(db as usize);
        d.adjust_keys(-1);
        if e.expire_at_ms != 0 {
            d.adjust_volatile(-1);
        }
        self.dirty += 1;
        Some(e)
    }

    #[inline]
    pub fn remove(&mut self, key: &[u8]) -> Option<Box<Entry>> {
        self.remove_in(self.index, key)
    }

    /// Sets (or clears with 0) the expiry of an existing key.
    pub fn set_expire(&mut self, key: &[u8], expire_at_ms: i64) -> bool {
        let db = self.index;
        let slot = self.slot_of(db, key);
        let before = slot.volatile();
        let ok = slot.set_expire(key, expire_at_ms);
        let delta = slot.volatile() as i64 - before as i64;
        self.ks.db(db as usize).adjust_volatile(delta);
        if ok {
            self.dirty += 1;
        }
        ok
    }

    /// Records that a value was modified in place.
    #[inline]
    pub fn touch_write(&mut self) {
        self.dirty += 1;
    }

    /// Visits every slot of the selected database with its lock held (one slot at a time
    /// unless all are already held). `f` returns false to stop early.
    pub fn for_each_slot(&mut self, mut f: impl FnMut(u16, &mut Slot, i64) -> bool) {
        let now = self.now_ms;
        let db = self.index;
        if self.all_locked {
            for slot in 0..SLOT_COUNT as u16 {
                if let Some(s) = self.locks.find(db, slot) {
                    if !f(slot, s, now) {
                        return;
                    }
                }
            }
        } else {
            let d = self.ks.db(db as usize);
            for slot in 0..SLOT_COUNT as u16 {
                let mut g = d.lock(slot);
                if !f(slot, &mut g, now) {
                    return;
                }
            }
        }
    }

    /// Visits one slot of the selected database with its lock held.
    pub fn with_slot<R>(&mut self, slot: u16, f: impl FnOnce(&mut Slot, i64) -> R) -> R {
        let now = self.now_ms;
        let db = self.index;
        if let Some(s) = self.locks.find(db, slot) {
            return f(s, now);
        }
        let d = self.ks.db(db as usize);
        let mut g = d.lock(slot);
        f(&mut g, now)
    }
}
