//! Out-of-band delivery to connections: Pub/Sub channel, pattern and shard-channel registries,
//! MONITOR feeds, and the per-client push queue they all write into.
//!
//! Every subscribed or monitoring client owns a [`PushQueue`]: producers encode the frame for
//! the client's protocol and enqueue it; the connection task drains the queue into its socket.
//! The queue is bounded in bytes by `client-output-buffer-limit pubsub` (hard limit; the soft
//! limit is checked by the connection): a client over it is killed, as Redis does.
//!
//! In cluster mode the cluster layer can take shard channels away from clients
//! ([`PubSub::drop_shard_slots`], when a slot leaves this node's shard): the registry entry
//! goes at once, the SUNSUBSCRIBE push is queued, and the channel waits in the queue's
//! `dropped_shard` list until the connection applies it to its own subscription list
//! ([`PushQueue::take_dropped_shard`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::client::ClientInfo;

/// The producer side of a client's push queue.
pub struct PushQueue {
    pub client: Arc<ClientInfo>,
    /// 2 or 3: frames are encoded per subscriber.
    pub resp: AtomicU32,
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes enqueued and not yet written to the socket.
    pub pending_bytes: AtomicU64,
    /// Hard limit in bytes (0 = none), from `client-output-buffer-limit` (pubsub class).
    pub hard_limit_bytes: AtomicU64,
    /// Shard channels the server unsubscribed this client from, not yet removed from the
    /// connection's own list (`has_dropped_shard` avoids the lock when empty).
    dropped_shard: Mutex<Vec<Bytes>>,
    has_dropped_shard: AtomicBool,
}

impl PushQueue {
    pub fn new(
        client: Arc<ClientInfo>,
        resp: u32,
        hard_limit_bytes: u64,
    ) -> (Arc<PushQueue>, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(PushQueue {
                client,
                resp: AtomicU32::new(resp),
                tx,
                pending_bytes: AtomicU64::new(0),
                hard_limit_bytes: AtomicU64::new(hard_limit_bytes),
                dropped_shard: Mutex::new(Vec::new()),
                has_dropped_shard: AtomicBool::new(false),
            }),
            rx,
        )
    }

    pub fn is_resp3(&self) -> bool {
        self.resp.load(Ordering::Relaxed) == 3
    }

    /// Enqueues a frame; returns false (and kills the client) when its limit would be exceeded.
    pub fn send(&self, frame: Bytes) -> bool {
        let limit = self.hard_limit_bytes.load(Ordering::Relaxed);
        let pending = self
            .pending_bytes
            .fetch_add(frame.len() as u64, Ordering::AcqRel)
            + frame.len() as u64;
        if limit > 0 && pending > limit {
            crate::warning!(
                "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                self.client.id,
                self.client.addr
            );
            self.client.kill();
            return false;
        }
        self.tx.send(frame).is_ok()
    }

    /// Called by the connection after writing `n` bytes taken from the queue.
    pub fn written(&self, n: usize) {
        self.pending_bytes.fetch_sub(n as u64, Ordering::AcqRel);
    }

    /// Shard channels the server dropped since the last call (see [`PubSub::drop_shard_slots`]).
    pub fn take_dropped_shard(&self) -> Vec<Bytes> {
        if !self.has_dropped_shard.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.dropped_shard.lock())
    }
}

fn header(buf: &mut Vec<u8>, prefix: u8, n: usize) {
    buf.push(prefix);
    buf.extend_from_slice(n.to_string().as_bytes());
    buf.extend_from_slice(b"\r\n");
}

fn bulk(buf: &mut Vec<u8>, s: &[u8]) {
    header(buf, b'$', s.len());
    buf.extend_from_slice(s);
    buf.extend_from_slice(b"\r\n");
}

/// `message` / `smessage` / `pmessage` frame for one subscriber.
pub fn message_frame(
    resp3: bool,
    kind: &[u8],
    pattern: Option<&[u8]>,
    channel: &[u8],
    msg: &[u8],
) -> Bytes {
    let mut b = Vec::with_capacity(32 + channel.len() + msg.len());
    header(
        &mut b,
        if resp3 { b'>' } else { b'*' },
        if pattern.is_some() { 4 } else { 3 },
    );
    bulk(&mut b, kind);
    if let Some(p) = pattern {
        bulk(&mut b, p);
    }
    bulk(&mut b, channel);
    bulk(&mut b, msg);
    Bytes::from(b)
}

/// `(s)unsubscribe` push sent by the server itself (`addReplyPubsubUnsubscribed`).
pub fn unsubscribed_frame(resp3: bool, kind: &[u8], channel: &[u8], count: i64) -> Bytes {
    let mut b = Vec::with_capacity(48 + channel.len());
    header(&mut b, if resp3 { b'>' } else { b'*' }, 3);
    bulk(&mut b, kind);
    bulk(&mut b, channel);
    b.push(b':');
    b.extend_from_slice(count.to_string().as_bytes());
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

type Subs = HashMap<Bytes, HashMap<u64, Arc<PushQueue>>>;

/// Subscriptions of the whole server.
#[derive(Default)]
pub struct PubSub {
    channels: Mutex<Subs>,
    patterns: Mutex<Subs>,
    shard_channels: Mutex<Subs>,
    monitors: Mutex<HashMap<u64, Arc<PushQueue>>>,
    monitor_count: AtomicUsize,
    /// `notify-keyspace-events` flags (Redis NOTIFY_* bits), mirrored from the settings so
    /// that write paths check them with one relaxed load (see `notify.rs`).
    pub keyspace_events: AtomicU32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl PubSub {
    fn map(&self, kind: Kind) -> &Mutex<Subs> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    pub fn subscribe(&self, kind: Kind, name: &Bytes, q: &Arc<PushQueue>) {
        self.map(kind)
            .lock()
            .entry(name.clone())
            .or_default()
            .insert(q.client.id, q.clone());
    }

    pub fn unsubscribe(&self, kind: Kind, name: &[u8], client_id: u64) {
        let mut m = self.map(kind).lock();
        if let Some(s) = m.get_mut(name) {
            s.remove(&client_id);
            if s.is_empty() {
                m.remove(name);
            }
        }
    }

    /// PUBLISH / SPUBLISH: returns the number of clients that received the message.
    pub fn publish(&self, shard: bool, channel: &[u8], msg: &[u8]) -> i64 {
        let mut n = 0;
        let (map, kind): (&Mutex<Subs>, &[u8]) = if shard {
            (&self.shard_channels, b"smessage")
        } else {
            (&self.channels, b"message")
        };
        let targets: Vec<Arc<PushQueue>> = map
            .lock()
            .get(channel)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        for q in targets {
            if q.send(message_frame(q.is_resp3(), kind, None, channel, msg)) {
                n += 1;
            }
        }
        if !shard {
            let pats: Vec<(Bytes, Vec<Arc<PushQueue>>)> = self
                .patterns
                .lock()
                .iter()
                .filter(|(p, _)| cinnabar_config::string_match(p, channel, false))
                .map(|(p, s)| (p.clone(), s.values().cloned().collect()))
                .collect();
            for (p, qs) in pats {
                for q in qs {
                    if q.send(message_frame(
                        q.is_resp3(),
                        b"pmessage",
                        Some(&p),
                        channel,
                        msg,
                    )) {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// `removeChannelsInSlot` for every slot in `slots`: each shard channel hashing to one
    /// of them is removed, and each of its subscribers gets `sunsubscribe <channel> <count>`
    /// (count = the client's remaining shard subscriptions). Returns the channels removed.
    pub fn drop_shard_slots(&self, slots: &[u16]) -> usize {
        if slots.is_empty() {
            return 0;
        }
        let mut wanted = vec![false; cinnabar_cluster::slot::SLOT_COUNT];
        for &s in slots {
            if let Some(w) = wanted.get_mut(s as usize) {
                *w = true;
            }
        }
        let removed: Vec<(Bytes, HashMap<u64, Arc<PushQueue>>)> = {
            let mut m = self.shard_channels.lock();
            let names: Vec<Bytes> = m
                .keys()
                .filter(|c| wanted[cinnabar_cluster::slot::key_hash_slot(c) as usize])
                .cloned()
                .collect();
            names
                .into_iter()
                .filter_map(|c| m.remove(&c).map(|subs| (c, subs)))
                .collect()
        };
        for (channel, subs) in &removed {
            for q in subs.values() {
                q.dropped_shard.lock().push(channel.clone());
                q.has_dropped_shard.store(true, Ordering::Release);
                let left = q
                    .client
                    .ssub_count
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        Some(n.saturating_sub(1))
                    })
                    .unwrap_or(0)
                    .saturating_sub(1);
                q.send(unsubscribed_frame(
                    q.is_resp3(),
                    b"sunsubscribe",
                    channel,
                    left as i64,
                ));
            }
        }
        removed.len()
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS [pattern].
    pub fn channel_names(&self, shard: bool, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let m = if shard {
            self.shard_channels.lock()
        } else {
            self.channels.lock()
        };
        m.keys()
            .filter(|c| pattern.is_none_or(|p| cinnabar_config::string_match(p, c, false)))
            .cloned()
            .collect()
    }

    pub fn subscriber_count(&self, shard: bool, channel: &[u8]) -> usize {
        let m = if shard {
            self.shard_channels.lock()
        } else {
            self.channels.lock()
        };
        m.get(channel).map(|s| s.len()).unwrap_or(0)
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.lock().len()
    }

    pub fn channel_count(&self, shard: bool) -> usize {
        if shard {
            self.shard_channels.lock().len()
        } else {
            self.channels.lock().len()
        }
    }

    pub fn add_monitor(&self, q: &Arc<PushQueue>) {
        let mut m = self.monitors.lock();
        m.insert(q.client.id, q.clone());
        self.monitor_count.store(m.len(), Ordering::Release);
    }

    pub fn remove_monitor(&self, id: u64) {
        let mut m = self.monitors.lock();
        m.remove(&id);
        self.monitor_count.store(m.len(), Ordering::Release);
    }

    #[inline]
    pub fn has_monitors(&self) -> bool {
        self.monitor_count.load(Ordering::Acquire) > 0
    }

    /// Sends one MONITOR line (`+<time> [<db> <addr>] "arg" ...`) to every monitor.
    pub fn feed_monitors(&self, db: u32, client: &ClientInfo, args: &[Bytes]) {
        let now_us = crate::server::now_us();
        let mut line =
            format!("+{}.{:06} [{} ", now_us / 1_000_000, now_us % 1_000_000, db).into_bytes();
        if client.is_unix {
            line.extend_from_slice(format!("unix:{}]", client.laddr).as_bytes());
        } else {
            line.extend_from_slice(client.addr.as_bytes());
            line.push(b']');
        }
        for a in args {
            line.push(b' ');
            repr(&mut line, a);
        }
        line.extend_from_slice(b"\r\n");
        let frame = Bytes::from(line);
        let qs: Vec<Arc<PushQueue>> = self.monitors.lock().values().cloned().collect();
        for q in qs {
            q.send(frame.clone());
        }
    }

    /// Drops every subscription of a client (on disconnect or RESET).
    pub fn remove_client(&self, id: u64, channels: &[Bytes], patterns: &[Bytes], shard: &[Bytes]) {
        for c in channels {
            self.unsubscribe(Kind::Channel, c, id);
        }
        for p in patterns {
            self.unsubscribe(Kind::Pattern, p, id);
        }
        for s in shard {
            self.unsubscribe(Kind::Shard, s, id);
        }
        self.remove_monitor(id);
    }
}

/// `sdscatrepr`: a quoted, escaped rendering of `s`.
pub fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use cinnabar_cluster::slot::key_hash_slot;

    fn queue(id: u64, resp: u32) -> (Arc<PushQueue>, mpsc::UnboundedReceiver<Bytes>) {
        let info = Arc::new(ClientInfo::new(
            id,
            "127.0.0.1:1".into(),
            "127.0.0.1:2".into(),
            -1,
            0,
            false,
        ));
        PushQueue::new(info, resp, 0)
    }

    #[test]
    fn unsubscribed_frame_resp2_and_resp3() {
        assert_eq!(
            &unsubscribed_frame(false, b"sunsubscribe", b"ch", 2)[..],
            b"*3\r\n$12\r\nsunsubscribe\r\n$2\r\nch\r\n:2\r\n"
        );
        assert_eq!(
            &unsubscribed_frame(true, b"sunsubscribe", b"ch", 0)[..],
            b">3\r\n$12\r\nsunsubscribe\r\n$2\r\nch\r\n:0\r\n"
        );
    }

    #[test]
    fn drop_shard_slots_removes_only_those_slots_and_pushes_counts() {
        let ps = PubSub::default();
        let (a, mut a_rx) = queue(1, 2);
        let (b, mut b_rx) = queue(2, 3);
        let gone = Bytes::from_static(b"x{a}");
        let kept = Bytes::from_static(b"x{b}");
        assert_ne!(key_hash_slot(&gone), key_hash_slot(&kept));
        ps.subscribe(Kind::Shard, &gone, &a);
        ps.subscribe(Kind::Shard, &kept, &a);
        a.client.ssub_count.store(2, Ordering::Relaxed);
        ps.subscribe(Kind::Shard, &gone, &b);
        b.client.ssub_count.store(1, Ordering::Relaxed);
        // A plain channel with the same name is not a shard channel.
        ps.subscribe(Kind::Channel, &gone, &a);

        assert_eq!(ps.drop_shard_slots(&[key_hash_slot(&gone)]), 1);
        assert_eq!(ps.subscriber_count(true, &gone), 0);
        assert_eq!(ps.subscriber_count(true, &kept), 1);
        assert_eq!(ps.subscriber_count(false, &gone), 1);
        assert_eq!(
            &a_rx.try_recv().expect("push")[..],
            b"*3\r\n$12\r\nsunsubscribe\r\n$4\r\nx{a}\r\n:1\r\n"
        );
        assert_eq!(
            &b_rx.try_recv().expect("push")[..],
            b">3\r\n$12\r\nsunsubscribe\r\n$4\r\nx{a}\r\n:0\r\n"
        );
        assert_eq!(a.client.ssub_count.load(Ordering::Relaxed), 1);
        assert_eq!(a.take_dropped_shard(), vec![gone.clone()]);
        assert!(a.take_dropped_shard().is_empty());
        assert_eq!(b.take_dropped_shard(), vec![gone]);
        // Slots with no channel: nothing happens.
        assert_eq!(ps.drop_shard_slots(&[0, 16383]), 0);
        assert!(a_rx.try_recv().is_err());
    }
}
