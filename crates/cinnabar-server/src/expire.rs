//! Active expiry: a background cycle that, like Redis's `activeExpireCycle`, visits slots that
//! hold volatile keys and deletes expired ones, bounded in time per run so that expiring
//! millions of keys never stalls clients (each slot lock is held only while that slot is swept).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::keyspace::SLOT_COUNT;
use crate::server::{now_ms, Server};

/// Where the next cycle resumes, per database.
pub struct ExpireCursor {
    next_slot: Vec<usize>,
}

impl ExpireCursor {
    pub fn new(dbs: usize) -> Self {
        ExpireCursor {
            next_slot: vec![0; dbs],
        }
    }
}

/// Runs one cycle with a time budget; returns the number of keys removed.
pub fn active_expire_cycle(srv: &Server, cursor: &mut ExpireCursor, budget: Duration) -> u64 {
    // Replicas never expire keys themselves: they wait for the master's DEL.
    if !srv.active_expire_enabled.load(Ordering::Acquire) || srv.repl.is_replica() {
        return 0;
    }
    let started = Instant::now();
    let now = now_ms();
    let mut removed_total = 0u64;
    let dbs: Vec<usize> = srv.keyspace.existing_dbs().map(|(i, _)| i).collect();
    for dbi in dbs {
        let db = srv.keyspace.db(dbi);
        if db.volatile_count() == 0 {
            continue;
        }
        let mut visited = 0;
        while visited < SLOT_COUNT {
            let slot = cursor.next_slot[dbi];
            cursor.next_slot[dbi] = (slot + 1) % SLOT_COUNT;
            visited += 1;
            let removed = {
                // A held slot is skipped, not waited for: a script can hold its slots for
                // long, and this loop also serves shutdown; the next pass gets the slot.
                let Some(mut g) = db.try_lock(slot as u16) else {
                    continue;
                };
                if g.volatile() == 0 {
                    continue;
                }
                // Re-checked under the slot lock: a cycle that started before `DEBUG
                // SET-ACTIVE-EXPIRE 0` or REPLICAOF (and was descheduled) must not expire keys
                // written after that command returned; the lock orders us after those writes.
                if !srv.active_expire_enabled.load(Ordering::Acquire) || srv.repl.is_replica() {
                    return removed_total;
                }
                crate::notify::expired_in_slot(&srv.pubsub, dbi as u32, &g, now);
                if srv.repl.needs_feed() {
                    // Propagate a DEL per expired key, under the slot lock (stream order).
                    let mut gone: Vec<(u32, Vec<Vec<u8>>)> = Vec::new();
                    let n = g.retain_not(|e| {
                        let dead = e.expire_at_ms != 0 && e.expire_at_ms <= now;
                        if dead {
                            gone.push((
                                dbi as u32,
                                vec![b"DEL".to_vec(), e.key.as_bytes().to_vec()],
                            ));
                        }
                        dead
                    });
                    srv.repl.propagate_batch(&gone, false);
                    n
                } else {
                    g.retain_not(|e| e.expire_at_ms != 0 && e.expire_at_ms <= now)
                }
            };
            if removed > 0 {
                db.adjust_keys(-(removed as i64));
                db.adjust_volatile(-(removed as i64));
                srv.stats
                    .expired_keys
                    .fetch_add(removed as u64, Ordering::Relaxed);
                removed_total += removed as u64;
            }
            if visited % 64 == 0 && started.elapsed() >= budget {
                return removed_total;
            }
        }
    }
    removed_total
}
