//! Forkless point-in-time snapshots of the whole keyspace (BGSAVE, SAVE, the AOF rewrite's
//! new base).
//!
//! Redis forks and lets copy-on-write pages freeze the dataset. We instead publish a snapshot
//! epoch in the keyspace's [`SnapHook`](crate::keyspace::SnapHook): from then on the first
//! lock of each slot hands the slot's contents, as they were before that lock's holder
//! changed anything, to this snapshot ("serialise before write"), and marks the slot. A
//! walker thread locks every slot in turn (capturing those nobody touched) and encodes the
//! captured chunks into an RDB stream. Memory grows only by the copies of slots written to
//! during the walk that the walker has not reached yet, never by a second dataset; clients
//! keep being served.
//!
//! The cut: the epoch is published while the publisher holds every slot lock of every
//! existing database and the replication lock, so every write either completed before the
//! cut (it is in the image, and its propagation precedes whatever `at_cut` records, e.g.
//! the switch to a new AOF incr file) or starts after it (its slot is captured before it
//! changes, and its propagation follows). A database created during the cut makes the start
//! retry (`dbs_created`); one created after it starts out marked as captured-empty.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use cinnabar_rdb::{RdbEncoder, RdbEntry};

use crate::keyspace::{Slot, SlotCapture, SLOT_COUNT};
use crate::repl::LogInner;
use crate::server::Server;

/// The entries of one slot of one database, as of the cut.
struct Chunk {
    db: u32,
    entries: Vec<RdbEntry>,
}

struct Sink {
    tx: parking_lot::Mutex<Sender<Chunk>>,
}

/// Converts one slot's entries to RDB entries (expired ones included, as Redis saves them;
/// loaders drop them).
fn slot_entries(db: u32, contents: &Slot) -> Vec<RdbEntry> {
    contents
        .iter()
        .map(|e| {
            let re = RdbEntry::new(db, e.key.as_bytes(), crate::repl::to_rdb_value(&e.value));
            if e.expire_at_ms != 0 {
                re.with_expire_at_ms(e.expire_at_ms)
            } else {
                re
            }
        })
        .collect()
}

impl SlotCapture for Sink {
    fn capture(&self, db: u32, _slot: u16, contents: &Slot) {
        if contents.is_empty() {
            return;
        }
        let chunk = Chunk {
            db,
            entries: slot_entries(db, contents),
        };
        // A closed receiver means the snapshot was abandoned: nothing to keep.
        let _ = self.tx.lock().send(chunk);
    }
}

/// An active snapshot. Dropping it (finished or not) retires the epoch.
pub struct Snapshot<'a> {
    srv: &'a Server,
    dbs: Vec<u32>,
    rx: Receiver<Chunk>,
    /// Keys written so far.
    pub keys_written: u64,
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        self.srv.keyspace.snap.retire();
    }
}

/// Starts a snapshot. `at_cut` runs under the replication lock at the cut (e.g. to switch
/// the AOF to a new incr file); its result is returned with the snapshot. The caller makes
/// sure only one snapshot is active at a time.
pub(crate) fn begin<R>(
    srv: &Server,
    mut at_cut: impl FnMut(&mut LogInner) -> R,
) -> (Snapshot<'_>, R) {
    let hook = &srv.keyspace.snap;
    assert_eq!(hook.active_epoch(), 0, "one snapshot at a time");
    loop {
        let created_before = hook.dbs_created();
        let dbs: Vec<u32> = srv.keyspace.existing_dbs().map(|(i, _)| i as u32).collect();
        let locks = crate::repl::lock_whole_dbs(srv, None);
        let mut inner = srv.repl.inner.lock();
        let (tx, rx) = channel();
        hook.publish(Arc::new(Sink {
            tx: parking_lot::Mutex::new(tx),
        }));
        if hook.dbs_created() != created_before || locks.len() != dbs.len() * SLOT_COUNT {
            // A database appeared while we were locking: its writes may have been in
            // neither the image nor after the cut. Start over.
            hook.retire();
            continue;
        }
        let r = at_cut(&mut inner);
        drop(inner);
        drop(locks);
        return (
            Snapshot {
                srv,
                dbs,
                rx,
                keys_written: 0,
            },
            r,
        );
    }
}

impl Snapshot<'_> {
    /// Walks every slot and writes the image's entries to `enc` (the caller writes the
    /// header/AUX before and `finish`es after). Returns the number of keys written.
    pub fn write_entries<W: std::io::Write>(
        &mut self,
        enc: &mut RdbEncoder<W>,
    ) -> Result<u64, String> {
        let dbs = self.dbs.clone();
        // `rdb-key-save-delay`: Redis's debugging knob for slow saves (µs per key).
        let delay_us = self.srv.settings().rdb_key_save_delay_us;
        for d in dbs {
            let db = self.srv.keyspace.db(d as usize);
            for slot in 0..SLOT_COUNT as u16 {
                // Locking captures the slot unless a writer already did.
                drop(db.lock(slot));
                self.drain(enc, delay_us)?;
            }
        }
        self.drain(enc, delay_us)?;
        Ok(self.keys_written)
    }

    fn drain<W: std::io::Write>(
        &mut self,
        enc: &mut RdbEncoder<W>,
        delay_us: i64,
    ) -> Result<(), String> {
        while let Ok(chunk) = self.rx.try_recv() {
            debug_assert!(chunk.entries.iter().all(|e| e.db == chunk.db));
            for e in &chunk.entries {
                enc.write_entry(e).map_err(|e| e.to_string())?;
                if delay_us > 0 {
                    std::thread::sleep(std::time::Duration::from_micros(delay_us as u64));
                }
            }
            self.keys_written += chunk.entries.len() as u64;
        }
        Ok(())
    }
}
