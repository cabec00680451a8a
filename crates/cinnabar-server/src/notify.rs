//! Keyspace notifications (`notify-keyspace-events`), as Redis's `notifyKeyspaceEvent`: for an
//! event of a class enabled in the flags, publish `__keyspace@<db>__:<key>` → event (flag `K`)
//! and `__keyevent@<db>__:<event>` → key (flag `E`) through the Pub/Sub registry.
//!
//! The flags live in [`PubSub::keyspace_events`] (mirrored from the settings on every CONFIG
//! SET), so a disabled notification costs one relaxed atomic load and no allocation.

use std::sync::atomic::Ordering;

use crate::cmd::Ctx;
use crate::pubsub::PubSub;

pub use cinnabar_config::values::notify::*;

/// Publishes one event for `key` of database `db` if its class is enabled.
#[inline]
pub fn publish_event(ps: &PubSub, db: u32, class: u32, event: &str, key: &[u8]) {
    let flags = ps.keyspace_events.load(Ordering::Relaxed);
    if flags & class == 0 {
        return;
    }
    publish_slow(ps, flags, db, event, key);
}

#[cold]
fn publish_slow(ps: &PubSub, flags: u32, db: u32, event: &str, key: &[u8]) {
    let db = db.to_string();
    if flags & KEYSPACE != 0 {
        let mut chan = Vec::with_capacity(16 + db.len() + key.len());
        chan.extend_from_slice(b"__keyspace@");
        chan.extend_from_slice(db.as_bytes());
        chan.extend_from_slice(b"__:");
        chan.extend_from_slice(key);
        ps.publish(false, &chan, event.as_bytes());
    }
    if flags & KEYEVENT != 0 {
        let mut chan = Vec::with_capacity(16 + db.len() + event.len());
        chan.extend_from_slice(b"__keyevent@");
        chan.extend_from_slice(db.as_bytes());
        chan.extend_from_slice(b"__:");
        chan.extend_from_slice(event.as_bytes());
        ps.publish(false, &chan, key);
    }
}

/// Notifies an event on `key` of the selected database.
#[inline]
pub fn notify(ctx: &mut Ctx, class: u32, event: &str, key: &[u8]) {
    publish_event(&ctx.srv.pubsub, ctx.db.index, class, event, key);
}

/// Notifies an event on `key` of database `db` (MOVE, COPY ... DB).
#[inline]
pub fn notify_in(ctx: &mut Ctx, db: u32, class: u32, event: &str, key: &[u8]) {
    publish_event(&ctx.srv.pubsub, db, class, event, key);
}

/// Active expiry: publishes `expired` for every key of `slot` (database `db`) that has expired
/// at `now_ms`, just before the cycle deletes them under the same slot lock.
pub fn expired_in_slot(ps: &PubSub, db: u32, slot: &crate::keyspace::Slot, now_ms: i64) {
    if ps.keyspace_events.load(Ordering::Relaxed) & EXPIRED == 0 {
        return;
    }
    for e in slot.iter() {
        if e.expire_at_ms != 0 && e.expire_at_ms <= now_ms {
            publish_event(ps, db, EXPIRED, "expired", e.key.as_bytes());
        }
    }
}
