//! Replication, master side: the replication stream ([`ReplicationLog`]: replid, offset,
//! bounded backlog, the attached replicas), command propagation with Redis's rewrites, full
//! sync (`+FULLRESYNC` + RDB from `cinnabar-rdb`) and partial sync (`+CONTINUE` from the
//! backlog), the per-replica link task, and WAIT. The replica side lives in `replica.rs`.
//!
//! Ordering: a command is appended to the stream by the dispatcher *while the slot locks of
//! the command are still held*, so two commands touching a common slot are appended in the
//! order they executed. Lock order is slot locks, then the log mutex.
//!
//! Full-sync snapshot: forkless (persist/snapshot.rs) — the replica is attached to the stream
//! at the snapshot's cut, and the image is streamed (`$EOF:<mark>` to replicas with
//! `capa eof`) while clients keep being served; memory grows only by the copies of slots
//! written before the walk reaches them. One snapshot runs at a time (BGSAVE, AOF rewrite
//! and full syncs take turns).
//!
//! Bounds: the backlog is `repl-backlog-size`; each replica's unsent stream is bounded by the
//! hard limit of `client-output-buffer-limit replica` (exceeding it disconnects the replica).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use cinnabar_rdb::RdbValue;

use crate::client::Client;
use crate::keyspace::{LockSet, SLOT_COUNT};
use crate::server::{now_ms, Server};
use crate::types::Value;

/// One attached replica, as the master sees it.
pub struct ReplicaLink {
    pub client_id: u64,
    pub ip: String,
    pub port: u16,
    /// Bytes queued for this replica and not yet written to its socket.
    pub pending_bytes: AtomicU64,
    /// Last `REPLCONF ACK` offset.
    pub ack_offset: AtomicI64,
    pub last_ack_ms: AtomicI64,
    /// False while the RDB is being sent.
    pub online: AtomicBool,
    /// Since when (ms) the unsent stream has been over the soft limit (0: it is not).
    soft_since_ms: AtomicI64,
}

struct Attached {
    link: Arc<ReplicaLink>,
    tx: tokio::sync::mpsc::UnboundedSender<Bytes>,
    /// `client-output-buffer-limit replica` when the replica attached.
    limit: crate::settings::OutputLimit,
}

/// Who this server replicates from (replica role).
#[derive(Clone, Debug)]
pub struct MasterInfo {
    pub host: String,
    pub port: u16,
    pub link_up: bool,
    pub last_io_ms: i64,
    pub sync_in_progress: bool,
    pub down_since_ms: i64,
    /// While the RDB of a full sync is being received: (announced size, 0 for an `$EOF:`
    /// stream as Redis's repl_transfer_size; bytes read; last read ms) for INFO's
    /// `master_sync_*` fields.
    pub transfer: Option<(i64, i64, i64)>,
}

/// The AOF side of the propagation stream, appended under the same lock as the replication
/// stream (so both see writes in one order); persist/aof.rs writes it to the incr file.
#[derive(Default)]
pub(crate) struct AofFeed {
    pub on: bool,
    /// Bytes not yet written to the file.
    pub buf: Vec<u8>,
    /// Database of the last command in the AOF (-1: the next command emits SELECT).
    pub last_db: i64,
    /// Bytes ever appended to the feed (a position writers wait on before replying).
    pub appended: u64,
    /// `aof-timestamp-enabled`: a `#TS:<unix s>` annotation whenever the second changes.
    pub ts_enabled: bool,
    pub last_ts_s: i64,
}

impl AofFeed {
    fn select(&mut self, db: u32) {
        if self.last_db != db as i64 {
            let d = db.to_string();
            encode_command_into(&mut self.buf, &[b"SELECT", d.as_bytes()]);
            self.last_db = db as i64;
        }
    }

    fn stamp(&mut self) {
        if self.ts_enabled {
            let now_s = now_ms() / 1000;
            if now_s != self.last_ts_s {
                self.last_ts_s = now_s;
                self.buf
                    .extend_from_slice(format!("#TS:{now_s}\r\n").as_bytes());
            }
        }
    }

    fn command(&mut self, db: u32, args: &[&[u8]]) {
        self.select(db);
        encode_command_into(&mut self.buf, args);
    }

    /// Records the end of this append as the position the current thread's replies need.
    fn done(&mut self, before: usize) {
        self.appended += (self.buf.len() - before) as u64;
        let pos = self.appended;
        AOF_NEED.with(|n| n.set(n.get().max(pos)));
    }
}

thread_local! {
    /// Highest AOF feed position written by commands on this thread and not yet made
    /// durable for their replies (see `take_aof_need`).
    static AOF_NEED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Takes the AOF position the replies about to be sent from this thread depend on (0: none).
#[inline]
pub fn take_aof_need() -> u64 {
    AOF_NEED.with(|n| n.replace(0))
}

pub(crate) struct LogInner {
    pub(crate) aof: AofFeed,
    replid: String,
    replid2: String,
    second_offset: i64,
    /// master_repl_offset: bytes ever appended to the stream.
    offset: i64,
    backlog: VecDeque<u8>,
    backlog_size: usize,
    /// Database of the last propagated command (-1: the next command emits SELECT).
    last_db: i64,
    replicas: Vec<Attached>,
    master: Option<MasterInfo>,
}

/// The replication state of the process.
pub struct ReplicationLog {
    pub(crate) inner: Mutex<LogInner>,
    /// True when anything consumes the propagation stream (replication backlog or AOF).
    feed: AtomicBool,
    /// True once the backlog exists (first replica attached): the dispatcher skips all
    /// propagation work while it is false.
    active: AtomicBool,
    /// True while this server is a replica (read-only checks, no expiry deletes).
    replica: AtomicBool,
    /// Bumped on every REPLICAOF; a replica task exits when it no longer matches.
    pub generation: AtomicU64,
    /// The background runtime replica tasks run on.
    pub runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// Woken when a replica acknowledges (WAIT).
    pub ack_notify: tokio::sync::Notify,
    /// The server itself (set at start-up), for spawning the replica task from a command.
    pub self_ref: std::sync::OnceLock<std::sync::Weak<Server>>,
    /// True once this server loaded a master's history (PSYNC then asks to continue it).
    synced: AtomicBool,
    /// Non-zero (the start time, ms) while a replica flushes and loads its master's RDB or
    /// the server loads its own files: commands without the `loading` flag get -LOADING,
    /// as in Redis (see `loading_refuses`).
    loading_since_ms: AtomicU64,
    /// INFO stats: full syncs served, partial syncs accepted / refused.
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// `min-replicas-to-write` / `min-replicas-max-lag` (0 disables the check), copied from
    /// the settings at start-up and on CONFIG SET.
    min_to_write: AtomicU64,
    min_max_lag_s: AtomicU64,
    /// Online replicas that acknowledged within `min-replicas-max-lag` seconds, refreshed
    /// once a second and when a replica comes online or goes (Redis's repl_good_slaves_count).
    good_replicas: AtomicU64,
    /// `inner.offset`, republished after every change, for readers that must not take the
    /// lock on the command path (WAIT's per-client offset).
    offset_now: AtomicI64,
    /// Progress of the load in progress, for INFO's `loading_*` fields (Redis's
    /// server.loading_total_bytes / loading_loaded_bytes / loading_rdb_used_mem).
    pub loading_total_bytes: AtomicU64,
    pub loading_loaded_bytes: AtomicU64,
    pub loading_rdb_used_mem: AtomicU64,
    /// Set while the server starts: the loading state lasts from before the workers accept
    /// clients until the loaded data is verified, across the individual files' loads.
    startup_hold: AtomicBool,
}

/// How long a command waits for a load in progress before it gets -LOADING.
pub const LOADING_GRACE_MS: u64 = 250;

pub fn random_replid() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
        .collect()
}

/// RESP array encoding of a command.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    encode_command_into(&mut v, args);
    v
}

/// Appends the RESP array encoding of a command to `v`.
pub fn encode_command_into(v: &mut Vec<u8>, args: &[&[u8]]) {
    let mut num = itoa::Buffer::new();
    v.push(b'*');
    v.extend_from_slice(num.format(args.len()).as_bytes());
    v.extend_from_slice(b"\r\n");
    for a in args {
        v.push(b'$');
        v.extend_from_slice(num.format(a.len()).as_bytes());
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
}

impl Default for ReplicationLog {
    fn default() -> Self {
        ReplicationLog {
            inner: Mutex::new(LogInner {
                aof: AofFeed {
                    last_db: -1,
                    ..AofFeed::default()
                },
                replid: random_replid(),
                replid2: "0".repeat(40),
                second_offset: -1,
                offset: 0,
                backlog: VecDeque::new(),
                backlog_size: 1 << 20,
                last_db: -1,
                replicas: Vec::new(),
                master: None,
            }),
            active: AtomicBool::new(false),
            feed: AtomicBool::new(false),
            replica: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            runtime: std::sync::OnceLock::new(),
            ack_notify: tokio::sync::Notify::new(),
            self_ref: std::sync::OnceLock::new(),
            synced: AtomicBool::new(false),
            loading_since_ms: AtomicU64::new(0),
            loading_total_bytes: AtomicU64::new(0),
            loading_loaded_bytes: AtomicU64::new(0),
            loading_rdb_used_mem: AtomicU64::new(0),
            startup_hold: AtomicBool::new(false),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            min_to_write: AtomicU64::new(0),
            min_max_lag_s: AtomicU64::new(10),
            good_replicas: AtomicU64::new(0),
            offset_now: AtomicI64::new(0),
        }
    }
}

impl ReplicationLog {
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// True when writes must be propagated (to replicas, to the AOF, or both).
    #[inline]
    pub fn needs_feed(&self) -> bool {
        self.feed.load(Ordering::Acquire)
    }

    pub(crate) fn refresh_feed(&self, inner: &LogInner) {
        self.feed
            .store(self.is_active() || inner.aof.on, Ordering::Release);
    }

    /// Turns the AOF feed on (clearing whatever it held) or off.
    pub(crate) fn set_aof_feed(&self, on: bool, ts_enabled: bool) {
        let mut inner = self.inner.lock();
        inner.aof.on = on;
        inner.aof.buf = Vec::new();
        inner.aof.last_db = -1;
        inner.aof.ts_enabled = ts_enabled;
        inner.aof.last_ts_s = 0;
        self.refresh_feed(&inner);
    }

    #[inline]
    pub fn is_loading(&self) -> bool {
        self.loading_since_ms.load(Ordering::Relaxed) != 0
    }

    /// Marks the start of a dataset load (flush + RDB/AOF load) of `total_bytes` (0 when
    /// unknown); progress is reported with [`Self::loading_progress`].
    pub fn begin_loading(&self, total_bytes: u64) {
        self.loading_total_bytes
            .store(total_bytes, Ordering::Relaxed);
        self.loading_loaded_bytes.store(0, Ordering::Relaxed);
        self.loading_rdb_used_mem.store(0, Ordering::Relaxed);
        self.loading_since_ms
            .store(now_ms().max(1) as u64, Ordering::Release);
    }

    /// `n` more bytes of the dataset were read (INFO `loading_loaded_bytes`).
    #[inline]
    pub fn loading_progress(&self, n: u64) {
        self.loading_loaded_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// INFO persistence's `loading_*` lines while a load is in progress (genRedisInfoString).
    pub fn loading_info_fields(&self, o: &mut String) {
        use std::fmt::Write as _;
        let since_ms = self.loading_since_ms.load(Ordering::Acquire);
        if since_ms == 0 {
            return;
        }
        let total = self.loading_total_bytes.load(Ordering::Relaxed);
        let loaded = self.loading_loaded_bytes.load(Ordering::Relaxed);
        let loaded = if total > 0 { loaded.min(total) } else { loaded };
        let (perc, remaining) = if total > 0 {
            (loaded as f64 / total as f64 * 100.0, total - loaded)
        } else {
            (0.0, 1)
        };
        let start_s = since_ms / 1000;
        let elapsed_s = (now_ms() as u64 / 1000).saturating_sub(start_s);
        let eta_s = if elapsed_s == 0 {
            1 // Redis's "fake 1 second figure if we don't have enough info"
        } else {
            elapsed_s.saturating_mul(remaining) / (loaded + 1)
        };
        let _ = write!(
            o,
            "loading_start_time:{}\r\nloading_total_bytes:{}\r\nloading_rdb_used_mem:{}\r\nloading_loaded_bytes:{}\r\nloading_loaded_perc:{:.2}\r\nloading_eta_seconds:{}\r\n",
            start_s,
            total,
            self.loading_rdb_used_mem.load(Ordering::Relaxed),
            loaded,
            perc,
            eta_s
        );
    }

    pub fn end_loading(&self) {
        if !self.startup_hold.load(Ordering::Acquire) {
            self.loading_since_ms.store(0, Ordering::Release);
        }
    }

    /// Start-up: the server is loading from now until [`Self::finish_startup_loading`], whatever
    /// the individual loads in between report (clients get -LOADING meanwhile, as with Redis).
    pub fn begin_startup_loading(&self) {
        self.startup_hold.store(true, Ordering::Release);
        self.begin_loading(0);
    }

    /// True while the server is still loading its dataset at start-up.
    pub fn startup_loading(&self) -> bool {
        self.startup_hold.load(Ordering::Acquire)
    }

    pub fn finish_startup_loading(&self) {
        self.startup_hold.store(false, Ordering::Release);
        self.end_loading();
    }

    /// Whether a command that may not run during loading gets -LOADING now. Redis loads in
    /// its only thread and answers clients (with -LOADING) only between chunks of the load,
    /// so a small dataset loads before any client sees an error. We load on another thread
    /// while workers keep serving, so a command arriving in the first
    /// `LOADING_GRACE_MS` of a load waits for the load to end instead (blocking its worker
    /// briefly, as Redis blocks every client); a longer load answers -LOADING.
    pub fn loading_refuses(&self) -> bool {
        loop {
            let since = self.loading_since_ms.load(Ordering::Acquire);
            if since == 0 {
                return false;
            }
            if (now_ms() as u64).saturating_sub(since) >= LOADING_GRACE_MS {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[inline]
    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Acquire)
    }

    /// Replica role: whether the link to the master is up.
    pub fn master_link_up(&self) -> bool {
        self.inner.lock().master.as_ref().is_some_and(|m| m.link_up)
    }

    /// True when PSYNC may ask to continue our history (we synced before, or wrote some).
    pub fn has_history(&self) -> bool {
        self.synced.load(Ordering::Acquire) || self.inner.lock().offset > 0
    }

    pub fn offset(&self) -> i64 {
        self.inner.lock().offset
    }

    /// The replication offset without the lock (may trail a concurrent append).
    #[inline]
    pub fn offset_relaxed(&self) -> i64 {
        self.offset_now.load(Ordering::Acquire)
    }

    pub fn replid(&self) -> String {
        self.inner.lock().replid.clone()
    }

    pub fn master_info(&self) -> Option<MasterInfo> {
        self.inner.lock().master.clone()
    }

    pub fn update_master(&self, f: impl FnOnce(&mut MasterInfo)) {
        if let Some(m) = self.inner.lock().master.as_mut() {
            f(m);
        }
    }

    /// Appends bytes to the stream: backlog, offset, every attached replica. Caller holds
    /// the inner lock.
    fn append(inner: &mut LogInner, bytes: &[u8]) {
        inner.offset += bytes.len() as i64;
        inner.backlog.extend(bytes.iter().copied());
        let excess = inner.backlog.len().saturating_sub(inner.backlog_size);
        if excess > 0 {
            inner.backlog.drain(..excess);
        }
        if inner.replicas.is_empty() {
            return;
        }
        let frame = Bytes::copy_from_slice(bytes);
        inner.replicas.retain(|a| {
            let pending = a
                .link
                .pending_bytes
                .fetch_add(frame.len() as u64, Ordering::AcqRel)
                + frame.len() as u64;
            let lim = a.limit;
            let mut over = lim.hard_bytes > 0 && pending > lim.hard_bytes;
            if lim.soft_bytes > 0 && pending > lim.soft_bytes {
                let now = now_ms();
                let since = a.link.soft_since_ms.load(Ordering::Acquire);
                if since == 0 {
                    a.link.soft_since_ms.store(now, Ordering::Release);
                } else if (now - since) as u64 / 1000 > lim.soft_seconds {
                    over = true;
                }
            } else {
                a.link.soft_since_ms.store(0, Ordering::Release);
            }
            if over {
                crate::warning!(
                    "Client id={} addr={}:{} omem={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                    a.link.client_id,
                    a.link.ip,
                    a.link.port,
                    pending
                );
                return false; // dropping the sender closes the link task
            }
            a.tx.send(frame.clone()).is_ok()
        });
    }

    /// Propagates one command executed in `db` (SELECT first when the db changes).
    pub fn propagate(&self, db: u32, args: &[&[u8]]) {
        if !self.needs_feed() {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.aof.on {
            let before = inner.aof.buf.len();
            inner.aof.stamp();
            inner.aof.command(db, args);
            inner.aof.done(before);
        }
        if !self.is_active() {
            return;
        }
        if inner.last_db != db as i64 {
            let d = db.to_string();
            Self::append(&mut inner, &encode_command(&[b"SELECT", d.as_bytes()]));
            inner.last_db = db as i64;
        }
        Self::append(&mut inner, &encode_command(args));
        self.offset_now.store(inner.offset, Ordering::Release);
    }

    /// Propagates commands (each with its db) in order; `wrap` puts them in MULTI ... EXEC
    /// (a transaction), when there is more than one.
    pub fn propagate_batch(&self, cmds: &[(u32, Vec<Vec<u8>>)], wrap: bool) {
        if !self.needs_feed() || cmds.is_empty() {
            return;
        }
        let wrap = wrap && cmds.len() > 1;
        let mut inner = self.inner.lock();
        if inner.aof.on {
            let aof = &mut inner.aof;
            let before = aof.buf.len();
            aof.stamp();
            if wrap {
                aof.command(cmds[0].0, &[b"MULTI"]);
            }
            for (db, c) in cmds {
                let refs: smallvec::SmallVec<[&[u8]; 8]> = c.iter().map(|a| a.as_slice()).collect();
                aof.command(*db, &refs);
            }
            if wrap {
                encode_command_into(&mut aof.buf, &[b"EXEC"]);
            }
            aof.done(before);
        }
        if !self.is_active() {
            return;
        }
        let select = |inner: &mut LogInner, db: u32| {
            if inner.last_db != db as i64 {
                let d = db.to_string();
                Self::append(inner, &encode_command(&[b"SELECT", d.as_bytes()]));
                inner.last_db = db as i64;
            }
        };
        if wrap {
            select(&mut inner, cmds[0].0);
            Self::append(&mut inner, &encode_command(&[b"MULTI"]));
        }
        for (db, c) in cmds {
            select(&mut inner, *db);
            let refs: Vec<&[u8]> = c.iter().map(|a| a.as_slice()).collect();
            Self::append(&mut inner, &encode_command(&refs));
        }
        if wrap {
            Self::append(&mut inner, &encode_command(&[b"EXEC"]));
        }
        self.offset_now.store(inner.offset, Ordering::Release);
    }

    /// Raw bytes that do not belong to a database (PING, REPLCONF GETACK).
    pub fn feed_raw(&self, bytes: &[u8]) {
        if !self.is_active() {
            return;
        }
        let mut inner = self.inner.lock();
        Self::append(&mut inner, bytes);
        self.offset_now.store(inner.offset, Ordering::Release);
    }

    /// Replica role: one command of `consumed` bytes from the master was applied; the offset
    /// follows the master's, and the command is proxied to our own replicas.
    pub fn feed_from_master(&self, consumed: usize, args: &[Bytes]) {
        let mut inner = self.inner.lock();
        // The AOF of a replica gets the master's commands, not its pings and acks.
        if inner.aof.on
            && !args.is_empty()
            && !args[0].eq_ignore_ascii_case(b"PING")
            && !args[0].eq_ignore_ascii_case(b"REPLCONF")
        {
            let aof = &mut inner.aof;
            let before = aof.buf.len();
            aof.stamp();
            let refs: smallvec::SmallVec<[&[u8]; 8]> = args.iter().map(|a| a.as_ref()).collect();
            if args[0].eq_ignore_ascii_case(b"SELECT") {
                aof.last_db = args
                    .get(1)
                    .and_then(|d| cinnabar_protocol::parser::parse_i64(d))
                    .unwrap_or(-1);
            }
            encode_command_into(&mut aof.buf, &refs);
            aof.done(before);
        }
        if self.is_active() {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
            let enc = encode_command(&refs);
            let before = inner.offset;
            Self::append(&mut inner, &enc);
            inner.offset = before + consumed as i64;
        } else {
            inner.offset += consumed as i64;
        }
        self.offset_now.store(inner.offset, Ordering::Release);
        if let Some(m) = inner.master.as_mut() {
            m.last_io_ms = now_ms();
        }
    }

    fn ensure_backlog(&self, inner: &mut LogInner, size: u64) {
        inner.backlog_size = size as usize;
        if !self.is_active() {
            inner.backlog = VecDeque::new();
            self.active.store(true, Ordering::Release);
            self.refresh_feed(inner);
        }
    }

    /// Becomes a replica of `host:port` (None: becomes a master, keeping the data and
    /// shifting the replication id as Redis's `shiftReplicationId`).
    pub fn set_master(&self, master: Option<(String, u16)>) -> u64 {
        let gen = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut inner = self.inner.lock();
        match master {
            Some((host, port)) => {
                inner.master = Some(MasterInfo {
                    host,
                    port,
                    link_up: false,
                    last_io_ms: 0,
                    sync_in_progress: false,
                    down_since_ms: 0,
                    transfer: None,
                });
                // Our replicas must resync from the new history.
                inner.replicas.clear();
                self.replica.store(true, Ordering::Release);
            }
            None => {
                if inner.master.take().is_some() {
                    inner.replid2 = std::mem::replace(&mut inner.replid, random_replid());
                    inner.second_offset = inner.offset + 1;
                }
                self.replica.store(false, Ordering::Release);
            }
        }
        gen
    }

    /// Replica role: adopts the master's history after a full sync.
    ///
    /// The replica keeps a backlog of its master's stream from now on (as Redis 7.0 creates
    /// one after a sync), so that once promoted it can accept the old master's — or a
    /// sibling's — PSYNC continuation instead of forcing a full sync.
    pub fn adopt(&self, replid: &str, offset: i64, backlog_size_bytes: u64) {
        let mut inner = self.inner.lock();
        inner.replid = replid.to_string();
        inner.replid2 = "0".repeat(40);
        inner.second_offset = -1;
        inner.offset = offset;
        self.offset_now.store(offset, Ordering::Release);
        inner.backlog.clear();
        inner.last_db = -1;
        inner.replicas.clear();
        self.ensure_backlog(&mut inner, backlog_size_bytes);
        self.synced.store(true, Ordering::Release);
    }

    /// Replica role after `+CONTINUE`: make sure the backlog exists (see `adopt`).
    pub fn keep_backlog(&self, backlog_size_bytes: u64) {
        let mut inner = self.inner.lock();
        self.ensure_backlog(&mut inner, backlog_size_bytes);
    }

    /// Replica role: `+CONTINUE <newid>` switched the history id.
    pub fn switch_replid(&self, new_id: &str) {
        let mut inner = self.inner.lock();
        if inner.replid != new_id {
            inner.replid2 = std::mem::replace(&mut inner.replid, new_id.to_string());
            inner.second_offset = inner.offset + 1;
        }
    }

    fn detach(&self, client_id: u64) {
        let mut inner = self.inner.lock();
        inner.replicas.retain(|a| a.link.client_id != client_id);
        self.refresh_good_replicas_locked(&inner);
    }

    /// Takes `min-replicas-to-write` / `min-replicas-max-lag` from the settings and recounts
    /// (Redis's updateGoodSlaves on CONFIG SET).
    pub fn set_min_replicas(&self, to_write: u64, max_lag_s: u64) {
        self.min_to_write.store(to_write, Ordering::Release);
        self.min_max_lag_s.store(max_lag_s, Ordering::Release);
        self.refresh_good_replicas();
    }

    /// Recounts the good replicas: online, and acknowledged within `min-replicas-max-lag`
    /// seconds (whole seconds, as Redis's `server.unixtime - repl_ack_time`).
    pub fn refresh_good_replicas(&self) {
        let inner = self.inner.lock();
        self.refresh_good_replicas_locked(&inner);
    }

    fn refresh_good_replicas_locked(&self, inner: &LogInner) {
        let max_lag_s = self.min_max_lag_s.load(Ordering::Acquire) as i64;
        let now_s = now_ms() / 1000;
        let good = inner
            .replicas
            .iter()
            .filter(|a| {
                a.link.online.load(Ordering::Acquire)
                    && now_s - a.link.last_ack_ms.load(Ordering::Acquire) / 1000 <= max_lag_s
            })
            .count();
        self.good_replicas.store(good as u64, Ordering::Release);
    }

    /// Whether `min-replicas-to-write` refuses writes now (`-NOREPLICAS`): a master with
    /// both settings non-zero and fewer good replicas than required (checkGoodReplicasStatus).
    #[inline]
    pub fn min_replicas_refuse(&self) -> bool {
        self.min_replicas_configured()
            && !self.is_replica()
            && self.good_replicas.load(Ordering::Acquire)
                < self.min_to_write.load(Ordering::Relaxed)
    }

    /// Both `min-replicas-to-write` and `min-replicas-max-lag` are non-zero.
    #[inline]
    fn min_replicas_configured(&self) -> bool {
        self.min_to_write.load(Ordering::Relaxed) > 0
            && self.min_max_lag_s.load(Ordering::Relaxed) > 0
    }

    /// Memory that `maxmemory` does not count (Redis's freeMemoryGetNotCountedMemory): the
    /// stream frames queued for replicas and the AOF buffer. Evicting keys to make room for
    /// them would only feed them more DELs.
    pub fn not_counted_for_evict_bytes(&self) -> u64 {
        let (_, queued, aof) = self.memory_bytes();
        queued + aof
    }

    /// (replication backlog bytes, bytes queued for replicas — shared between replicas, so the
    /// largest queue —, AOF buffer bytes) for MEMORY STATS / INFO memory.
    pub fn memory_bytes(&self) -> (u64, u64, u64) {
        let inner = self.inner.lock();
        let queued = inner
            .replicas
            .iter()
            .map(|a| a.link.pending_bytes.load(Ordering::Acquire))
            .max()
            .unwrap_or(0);
        (
            inner.backlog.capacity() as u64,
            queued,
            inner.aof.buf.capacity() as u64,
        )
    }

    /// Online replicas whose acknowledged offset is at least `offset`, and how many are
    /// attached.
    pub fn acked(&self, offset: i64) -> (usize, usize) {
        let inner = self.inner.lock();
        let n = inner
            .replicas
            .iter()
            .filter(|a| {
                a.link.online.load(Ordering::Acquire)
                    && a.link.ack_offset.load(Ordering::Acquire) >= offset
            })
            .count();
        (n, inner.replicas.len())
    }

    /// Once a second from the cron: PING the replicas every 10 s (`repl-ping-replica-period`).
    pub fn cron(&self, tick: u64) {
        self.refresh_good_replicas();
        if tick.is_multiple_of(10) && self.is_active() && !self.is_replica() {
            let has = !self.inner.lock().replicas.is_empty();
            if has {
                self.feed_raw(&encode_command(&[b"PING"]));
            }
        }
    }

    /// ROLE's reply.
    pub fn role(&self, out: &mut cinnabar_protocol::ReplyBuf) {
        let inner = self.inner.lock();
        match &inner.master {
            Some(m) => {
                out.array(5);
                out.bulk(b"slave");
                out.bulk(m.host.as_bytes());
                out.int(m.port as i64);
                out.bulk(if m.link_up {
                    b"connected".as_slice()
                } else if m.sync_in_progress {
                    b"sync".as_slice()
                } else {
                    b"connect".as_slice()
                });
                out.int(if m.link_up { inner.offset } else { -1 });
            }
            None => {
                out.array(3);
                out.bulk(b"master");
                out.int(inner.offset);
                let online: Vec<&Attached> = inner
                    .replicas
                    .iter()
                    .filter(|a| a.link.online.load(Ordering::Acquire))
                    .collect();
                out.array(online.len());
                for a in online {
                    out.array(3);
                    out.bulk(a.link.ip.as_bytes());
                    out.bulk(a.link.port.to_string().as_bytes());
                    out.bulk(
                        a.link
                            .ack_offset
                            .load(Ordering::Acquire)
                            .to_string()
                            .as_bytes(),
                    );
                }
            }
        }
    }

    /// The `# Replication` section of INFO, in Redis 7.0's field order.
    pub fn info(&self, srv: &Server, cluster_replica: bool) -> String {
        use std::fmt::Write;
        let inner = self.inner.lock();
        let now = now_ms();
        let mut o = String::from("# Replication\r\n");
        let s = srv.settings();
        match &inner.master {
            Some(m) => {
                let _ = write!(
                    o,
                    "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\nslave_read_repl_offset:{}\r\nslave_repl_offset:{}\r\n",
                    m.host,
                    m.port,
                    if m.link_up { "up" } else { "down" },
                    if m.link_up { (now - m.last_io_ms).max(0) / 1000 } else { -1 },
                    m.sync_in_progress as u8,
                    inner.offset,
                    inner.offset,
                );
                if let Some((total, read, last_io_ms)) = m.transfer {
                    let perc = if total > 0 {
                        read as f64 / total as f64 * 100.0
                    } else {
                        0.0
                    };
                    let _ = write!(
                        o,
                        "master_sync_total_bytes:{}\r\nmaster_sync_read_bytes:{}\r\nmaster_sync_left_bytes:{}\r\nmaster_sync_perc:{:.2}\r\nmaster_sync_last_io_seconds_ago:{}\r\n",
                        total,
                        read,
                        total - read,
                        perc,
                        (now / 1000 - last_io_ms / 1000).max(0),
                    );
                }
                if !m.link_up {
                    let _ = write!(
                        o,
                        "master_link_down_since_seconds:{}\r\n",
                        if m.down_since_ms == 0 {
                            -1
                        } else {
                            (now - m.down_since_ms).max(0) / 1000
                        }
                    );
                }
                let _ = write!(
                    o,
                    "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:1\r\n",
                    s.replica_priority, s.replica_read_only as u8
                );
            }
            None => {
                o.push_str(if cluster_replica {
                    "role:slave\r\n"
                } else {
                    "role:master\r\n"
                });
            }
        }
        let _ = write!(o, "connected_slaves:{}\r\n", inner.replicas.len());
        if self.min_replicas_configured() {
            let good = self.good_replicas.load(Ordering::Acquire);
            let _ = write!(o, "min_slaves_good_slaves:{good}\r\n");
        }
        for (i, a) in inner.replicas.iter().enumerate() {
            let l = &a.link;
            let online = l.online.load(Ordering::Acquire);
            let _ = write!(
                o,
                "slave{}:ip={},port={},state={},offset={},lag={}\r\n",
                i,
                l.ip,
                l.port,
                if online { "online" } else { "send_bulk" },
                l.ack_offset.load(Ordering::Acquire).max(0),
                (now - l.last_ack_ms.load(Ordering::Acquire)).max(0) / 1000
            );
        }
        let first = if self.is_active() {
            inner.offset - inner.backlog.len() as i64 + 1
        } else {
            0
        };
        let _ = write!(
            o,
            "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
            inner.replid,
            inner.replid2,
            inner.offset,
            inner.second_offset,
            self.is_active() as u8,
            s.repl_backlog_size_bytes,
            first,
            inner.backlog.len(),
        );
        o
    }
}

/// What the connection task must do after a command (set by PSYNC / SYNC / WAIT).
pub enum AsyncOp {
    /// Serve this connection as a replica: PSYNC replid offset (None for SYNC).
    Psync(Option<(String, i64)>),
    /// WAIT: reply once `num` replicas acked `offset`, or at `deadline_ms` (0 = never).
    Wait {
        offset: i64,
        num: usize,
        deadline_ms: i64,
    },
}

/// Converts a stored value to the RDB model.
pub fn to_rdb_value(v: &Value) -> RdbValue {
    match v {
        Value::Int(_) | Value::Str(_) | Value::Raw(_) => {
            RdbValue::String(v.string_bytes().map(|b| b.into_owned()).unwrap_or_default())
        }
        Value::List(l) => RdbValue::List(l.iter().map(|e| e.to_vec()).collect()),
        Value::Hash(h) => {
            let mut pairs = Vec::with_capacity(h.len());
            h.for_each(|f, v| pairs.push((f.to_vec(), v.to_vec())));
            RdbValue::Hash(pairs)
        }
        Value::Set(s) => RdbValue::Set(s.members()),
        Value::ZSet(z) => {
            let mut pairs = Vec::with_capacity(z.len());
            z.for_each(|m, s| pairs.push((m.to_vec(), s)));
            RdbValue::ZSet(pairs)
        }
    }
}

/// Converts an RDB value into the server's types under the current encoding settings.
/// None for an empty collection.
pub fn from_rdb_value(v: RdbValue, s: &crate::settings::Settings) -> Option<Value> {
    use crate::types::{hash, list, set, zset};
    Some(match v {
        RdbValue::String(b) => Value::string(&b),
        RdbValue::List(items) => {
            let mut l = list::List::new();
            for i in &items {
                l.push_back(i, s.list_max_listpack_size);
            }
            if l.is_empty() {
                return None;
            }
            Value::List(Box::new(l))
        }
        RdbValue::Hash(pairs) => {
            let lim = hash::HashLimits {
                max_entries: s.hash_max_listpack_entries,
                max_value: s.hash_max_listpack_value,
            };
            let mut h = hash::Hash::new();
            for (f, v) in &pairs {
                h.set(f, v, lim);
            }
            if h.is_empty() {
                return None;
            }
            Value::Hash(Box::new(h))
        }
        RdbValue::Set(members) => {
            let first = members.first()?;
            let mut st = set::Set::for_member(first);
            for m in &members {
                st.add(m, s.set_max_intset_entries);
            }
            Value::Set(Box::new(st))
        }
        RdbValue::ZSet(pairs) => {
            if pairs.is_empty() {
                return None;
            }
            let lim = zset::ZLimits {
                max_entries: s.zset_max_listpack_entries,
                max_value: s.zset_max_listpack_value,
            };
            Value::ZSet(Box::new(zset::ZSet::from_pairs(pairs, lim)))
        }
    })
}

/// Attaches a new replica at the current end of the stream (called at a snapshot's cut, so
/// the stream it receives starts exactly after the image). Returns the replid, the offset
/// and the stream receiver.
fn attach_at_cut(
    srv: &Server,
    inner: &mut LogInner,
    link: Arc<ReplicaLink>,
) -> (String, i64, tokio::sync::mpsc::UnboundedReceiver<Bytes>) {
    let settings = srv.settings();
    srv.repl
        .ensure_backlog(inner, settings.repl_backlog_size_bytes);
    inner.last_db = -1;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    link.ack_offset.store(0, Ordering::Release);
    inner.replicas.push(Attached {
        link,
        tx,
        limit: settings.output_limit_replica,
    });
    (inner.replid.clone(), inner.offset, rx)
}

/// An `io::Write` that hands 64 KiB chunks to the task sending the RDB to a replica
/// (bounded channel: a slow replica slows the snapshot walk, not memory).
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    const CHUNK_BYTES: usize = 64 * 1024;

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(Self::CHUNK_BYTES));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "replica gone"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Full sync without fork and without a second copy of the dataset: a thread takes a
/// forkless snapshot (persist/snapshot.rs) whose cut attaches the replica to the stream,
/// and streams the RDB image in chunks. Returns the replid, offset, stream receiver and
/// the chunk receiver (closed after the last chunk; an Err on a failed snapshot).
#[allow(clippy::type_complexity)]
async fn start_full_sync(
    srv: &Arc<Server>,
    link: Arc<ReplicaLink>,
) -> Option<(
    String,
    i64,
    tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    tokio::sync::mpsc::Receiver<Vec<u8>>,
    tokio::sync::oneshot::Receiver<Result<u64, String>>,
)> {
    let (chunk_tx, chunk_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let (attach_tx, attach_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let srv2 = srv.clone();
    let spawned = std::thread::Builder::new()
        .name("cinnabar-fullsync".into())
        .spawn(move || {
            let srv = &*srv2;
            let _g = srv.persist.snapshot_lock.lock();
            let (mut snap, attached) = crate::persist::snapshot::begin(srv, |inner| {
                attach_at_cut(srv, inner, link.clone())
            });
            if attach_tx.send(attached).is_err() {
                return;
            }
            let w = ChunkWriter {
                tx: chunk_tx,
                buf: Vec::with_capacity(ChunkWriter::CHUNK_BYTES),
            };
            let res = crate::persist::rdbfile::write_image(srv, &mut snap, w, false);
            drop(snap);
            let _ = done_tx.send(res);
        });
    if spawned.is_err() {
        return None;
    }
    let (replid, offset, rx) = attach_rx.await.ok()?;
    Some((replid, offset, rx, chunk_rx, done_rx))
}

/// Locks every slot of database `db` (None: of every existing database).
pub fn lock_whole_dbs(srv: &Server, db: Option<u32>) -> LockSet<'_> {
    let dbs: Vec<u32> = match db {
        Some(d) => vec![d],
        None => srv.keyspace.existing_dbs().map(|(i, _)| i as u32).collect(),
    };
    let mut wanted: smallvec::SmallVec<[(u32, u16); 4]> = smallvec::SmallVec::new();
    for d in dbs {
        for s in 0..SLOT_COUNT as u16 {
            wanted.push((d, s));
        }
    }
    LockSet::lock(&srv.keyspace, wanted)
}

/// Serves a connection that sent PSYNC/SYNC until the link ends.
pub async fn serve_replica<S: AsyncRead + AsyncWrite + Unpin>(
    srv: &Arc<Server>,
    stream: &mut S,
    client: &mut Client,
    rbuf: &mut BytesMut,
    req: Option<(String, i64)>,
) {
    let ip = client
        .repl_ip
        .clone()
        .unwrap_or_else(|| peer_ip(&client.info.addr));
    let link = Arc::new(ReplicaLink {
        client_id: client.id,
        ip,
        port: client.repl_port,
        pending_bytes: AtomicU64::new(0),
        ack_offset: AtomicI64::new(0),
        last_ack_ms: AtomicI64::new(now_ms()),
        online: AtomicBool::new(false),
        soft_since_ms: AtomicI64::new(0),
    });
    let settings = srv.settings();
    let addr = client.info.addr.clone();
    client.info.is_replica_link.store(true, Ordering::Relaxed);
    // Partial resynchronisation from the backlog.
    let mut rx = None;
    if let Some((id, off)) = &req {
        let mut inner = srv.repl.inner.lock();
        let first = inner.offset - inner.backlog.len() as i64 + 1;
        let id_ok = *id == inner.replid || (*id == inner.replid2 && *off <= inner.second_offset);
        if srv.repl.is_active() && id_ok && *off >= first && *off <= inner.offset + 1 {
            let skip = (*off - first) as usize;
            let mut data = format!("+CONTINUE {}\r\n", inner.replid).into_bytes();
            data.extend(inner.backlog.range(skip..).copied());
            let (tx, r) = tokio::sync::mpsc::unbounded_channel();
            link.pending_bytes
                .store(data.len() as u64, Ordering::Release);
            let _ = tx.send(Bytes::from(data));
            link.ack_offset.store(*off - 1, Ordering::Release);
            link.online.store(true, Ordering::Release);
            inner.replicas.push(Attached {
                link: link.clone(),
                tx,
                limit: settings.output_limit_replica,
            });
            srv.repl.refresh_good_replicas_locked(&inner);
            crate::notice!(
                "Partial resynchronization request from {} accepted. Sending {} bytes of backlog starting from offset {}.",
                addr,
                inner.offset + 1 - *off,
                off
            );
            rx = Some(r);
            srv.repl.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
        } else if *id != "?"
            && id_ok
            && (!srv.repl.is_active() || *off < first || *off > inner.offset + 1)
        {
            srv.repl.sync_partial_err.fetch_add(1, Ordering::Relaxed);
            crate::notice!(
                "Unable to partial resync with replica {} for lack of backlog (Replica request was: {}).",
                addr,
                off
            );
        } else if *id != "?" {
            srv.repl.sync_partial_err.fetch_add(1, Ordering::Relaxed);
            crate::notice!(
                "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{}', my replication IDs are '{}' and '{}')",
                id,
                inner.replid,
                inner.replid2
            );
        }
    }
    // After a streamed ($EOF:) RDB the replica must see the mark as the last bytes it reads,
    // so the command stream starts only after its first REPLCONF ACK (as Redis 7.0 does).
    let mut stream_on = true;
    let mut rx = match rx {
        Some(r) => r,
        None => {
            crate::notice!("Replica {} asks for synchronization", addr);
            srv.repl.sync_full.fetch_add(1, Ordering::Relaxed);
            let Some((replid, offset, r, mut chunks, done)) =
                start_full_sync(srv, link.clone()).await
            else {
                crate::warning!("Can't start the snapshot for replica {}", addr);
                srv.repl.detach(client.id);
                return;
            };
            let mut head = Vec::new();
            if req.is_some() {
                head.extend_from_slice(format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes());
            }
            crate::notice!(
                "Starting BGSAVE for SYNC with target: replicas sockets (forkless snapshot)"
            );
            let mut sent = 0u64;
            let ok = if client.repl_capa_eof {
                stream_on = false;
                // Streamed: $EOF:<mark>, the image as it is produced, the mark.
                let mark = random_replid();
                head.extend_from_slice(format!("$EOF:{mark}\r\n").as_bytes());
                let mut ok = stream.write_all(&head).await.is_ok();
                while ok {
                    let Some(c) = chunks.recv().await else { break };
                    sent += c.len() as u64;
                    ok = stream.write_all(&c).await.is_ok();
                }
                ok && matches!(done.await, Ok(Ok(_)))
                    && stream.write_all(mark.as_bytes()).await.is_ok()
            } else {
                // A replica without `capa eof` (plain SYNC) gets the length first, so the
                // image is gathered before sending.
                let mut img = Vec::new();
                while let Some(c) = chunks.recv().await {
                    img.extend_from_slice(&c);
                }
                sent = img.len() as u64;
                head.extend_from_slice(format!("${}\r\n", img.len()).as_bytes());
                matches!(done.await, Ok(Ok(_)))
                    && stream.write_all(&head).await.is_ok()
                    && stream.write_all(&img).await.is_ok()
            };
            if !ok {
                crate::warning!("Full synchronization with replica {} failed", addr);
                srv.repl.detach(client.id);
                return;
            }
            srv.stats
                .net_output_bytes
                .fetch_add(head.len() as u64 + sent, Ordering::Relaxed);
            link.online.store(true, Ordering::Release);
            srv.repl.refresh_good_replicas();
            if stream_on {
                crate::notice!("Synchronization with replica {} succeeded", addr);
            } else {
                crate::notice!(
                    "Streamed RDB transfer with replica {} succeeded (socket). Waiting for REPLCONF ACK from replica to enable streaming",
                    addr
                );
            }
            r
        }
    };
    let killed = client.info.kill_notify.notified();
    tokio::pin!(killed);
    let shutdown = srv.shutdown_notify.notified();
    tokio::pin!(shutdown);
    let mut parser = cinnabar_protocol::Parser::new();
    let mut args: Vec<Bytes> = Vec::new();
    let mut wbuf: Vec<u8> = Vec::new();
    // CLIENT KILL notifies the connection loop's own waiter, so the flag is polled too.
    let mut check = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        if client.info.killed.load(Ordering::Relaxed) {
            break;
        }
        tokio::select! {
            _ = check.tick() => {}
            m = rx.recv(), if stream_on => {
                let Some(first) = m else { break };
                wbuf.clear();
                wbuf.extend_from_slice(&first);
                while wbuf.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(b) => wbuf.extend_from_slice(&b),
                        Err(_) => break,
                    }
                }
                if stream.write_all(&wbuf).await.is_err() {
                    break;
                }
                srv.stats.net_output_bytes.fetch_add(wbuf.len() as u64, Ordering::Relaxed);
                let n = wbuf.len() as u64;
                let _ = link.pending_bytes.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                    Some(p.saturating_sub(n))
                });
            }
            r = stream.read_buf(rbuf) => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if rbuf.len() as u64 > settings.client_query_buffer_limit_bytes {
                    break;
                }
                let limits = cinnabar_protocol::ParseLimits {
                    max_bulk_len_bytes: settings.proto_max_bulk_len_bytes,
                    authenticated: true,
                };
                loop {
                    match parser.parse(rbuf, &limits, &mut args) {
                        Ok(cinnabar_protocol::ParseOutcome::Command) => {
                            if args.len() >= 3
                                && args[0].eq_ignore_ascii_case(b"REPLCONF")
                                && args[1].eq_ignore_ascii_case(b"ACK")
                            {
                                if !stream_on {
                                    stream_on = true;
                                    crate::notice!(
                                        "Synchronization with replica {} succeeded",
                                        addr
                                    );
                                }
                                if let Some(off) = std::str::from_utf8(&args[2]).ok().and_then(|s| s.parse::<i64>().ok()) {
                                    link.ack_offset.fetch_max(off, Ordering::AcqRel);
                                    link.last_ack_ms.store(now_ms(), Ordering::Release);
                                    srv.repl.ack_notify.notify_waiters();
                                }
                            }
                        }
                        Ok(cinnabar_protocol::ParseOutcome::Incomplete) => break,
                        Err(_) => {
                            srv.repl.detach(client.id);
                            return;
                        }
                    }
                }
            }
            _ = &mut killed => break,
            _ = &mut shutdown => break,
        }
    }
    srv.repl.detach(client.id);
    crate::notice!("Connection with replica {} lost.", addr);
}

fn peer_ip(addr: &str) -> String {
    match addr.rfind(':') {
        Some(i) => addr[..i].trim_matches(|c| c == '[' || c == ']').to_string(),
        None => addr.to_string(),
    }
}

/// Runs the connection-level part of PSYNC/SYNC/WAIT. Returns false when the connection
/// must close.
pub async fn run_async<S: AsyncRead + AsyncWrite + Unpin>(
    srv: &Arc<Server>,
    stream: &mut S,
    client: &mut Client,
    rbuf: &mut BytesMut,
    out: &mut cinnabar_protocol::ReplyBuf,
    op: AsyncOp,
) -> bool {
    match op {
        AsyncOp::Psync(req) => {
            if !out.is_empty() {
                if stream.write_all(&out.buf).await.is_err() {
                    return false;
                }
                out.clear();
            }
            serve_replica(srv, stream, client, rbuf, req).await;
            false
        }
        AsyncOp::Wait {
            offset,
            num,
            deadline_ms,
        } => {
            srv.repl
                .feed_raw(&encode_command(&[b"REPLCONF", b"GETACK", b"*"]));
            loop {
                let notified = srv.repl.ack_notify.notified();
                let (n, _) = srv.repl.acked(offset);
                let now = now_ms();
                if n >= num || (deadline_ms > 0 && now >= deadline_ms) {
                    out.int(n as i64);
                    return true;
                }
                let wait = if deadline_ms > 0 {
                    (deadline_ms - now).clamp(1, 100)
                } else {
                    100
                };
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(std::time::Duration::from_millis(wait as u64)) => {}
                }
                if client.info.killed.load(Ordering::Relaxed)
                    || srv.shutdown_requested.load(Ordering::Relaxed)
                {
                    return false;
                }
            }
        }
    }
}

/// The bulk strings of a reply (a bulk, or an array / set of bulks), for SPOP → SREM.
fn reply_bulks(mut r: &[u8]) -> Vec<Vec<u8>> {
    fn line(r: &mut &[u8]) -> Option<Vec<u8>> {
        let i = memchr::memchr(b'\n', r)?;
        let l = r[..i].strip_suffix(b"\r").unwrap_or(&r[..i]).to_vec();
        *r = &r[i + 1..];
        Some(l)
    }
    fn bulk(r: &mut &[u8]) -> Option<Vec<u8>> {
        let l = line(r)?;
        if l.first() != Some(&b'$') {
            return None;
        }
        let n: usize = std::str::from_utf8(&l[1..]).ok()?.parse().ok()?;
        if r.len() < n + 2 {
            return None;
        }
        let v = r[..n].to_vec();
        *r = &r[n + 2..];
        Some(v)
    }
    let mut v = Vec::new();
    match r.first() {
        Some(b'$') => v.extend(bulk(&mut r)),
        Some(b'*') | Some(b'~') => {
            if let Some(l) = line(&mut r) {
                let n: usize = std::str::from_utf8(&l[1..])
                    .ok()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                for _ in 0..n {
                    match bulk(&mut r) {
                        Some(b) => v.push(b),
                        None => break,
                    }
                }
            }
        }
        _ => {}
    }
    v
}

/// What the replicas receive for one executed command, as Redis propagates it: DEL for each
/// key lazily expired by the command, then the command itself, rewritten when it is relative
/// or non-deterministic (relative TTLs → absolute PEXPIREAT / SET PXAT, SPOP → SREM, blocking
/// pops → their non-blocking form). Called with the command's slot locks still held.
pub fn rewrite(
    name: &str,
    is_write: bool,
    args: &[Bytes],
    db: &mut crate::db::DbView,
    reply: &[u8],
) -> Vec<(u32, Vec<Vec<u8>>)> {
    let idx = db.index;
    let mut cmds: Vec<(u32, Vec<Vec<u8>>)> = db
        .expired
        .drain(..)
        .map(|(d, k)| (d, vec![b"DEL".to_vec(), k]))
        .collect();
    if let Some(c) = db.propagate_as.take() {
        if !c.is_empty() {
            cmds.push((idx, c));
        }
        return cmds;
    }
    if !is_write {
        return cmds;
    }
    let now = db.now_ms;
    let a = |i: usize| args.get(i).map(|x| x.to_vec()).unwrap_or_default();
    let mut exp_of = |key: &[u8]| -> Option<i64> {
        let e = db.slot_mut(idx, key).raw_get(key)?;
        if e.expire_at_ms != 0 && e.expire_at_ms <= now {
            return None;
        }
        Some(e.expire_at_ms)
    };
    let cmd: Vec<Vec<u8>> = match name {
        "expire" | "pexpire" | "expireat" | "pexpireat" => match exp_of(&args[1]) {
            Some(t) if t > 0 => vec![b"PEXPIREAT".to_vec(), a(1), t.to_string().into_bytes()],
            Some(_) => vec![b"PERSIST".to_vec(), a(1)],
            None => vec![b"DEL".to_vec(), a(1)],
        },
        "setex" | "psetex" => match exp_of(&args[1]) {
            Some(t) if t > 0 => vec![
                b"SET".to_vec(),
                a(1),
                a(3),
                b"PXAT".to_vec(),
                t.to_string().into_bytes(),
            ],
            _ => vec![b"DEL".to_vec(), a(1)],
        },
        "set" if args.len() > 3 => match exp_of(&args[1]) {
            Some(t) if t > 0 => vec![
                b"SET".to_vec(),
                a(1),
                a(2),
                b"PXAT".to_vec(),
                t.to_string().into_bytes(),
            ],
            Some(_) => vec![b"SET".to_vec(), a(1), a(2)],
            None => vec![b"DEL".to_vec(), a(1)],
        },
        "getex" => match exp_of(&args[1]) {
            Some(t) if t > 0 => vec![b"PEXPIREAT".to_vec(), a(1), t.to_string().into_bytes()],
            Some(_) => vec![b"PERSIST".to_vec(), a(1)],
            None => vec![b"DEL".to_vec(), a(1)],
        },
        "spop" => {
            let members = reply_bulks(reply);
            if members.is_empty() {
                return cmds;
            }
            let mut c = vec![b"SREM".to_vec(), a(1)];
            c.extend(members);
            c
        }
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => {
            let keys = &args[1..args.len() - 1];
            let mut c = vec![
                if name.starts_with("bl") || name.starts_with("br") {
                    b"LMPOP".to_vec()
                } else {
                    b"ZMPOP".to_vec()
                },
                keys.len().to_string().into_bytes(),
            ];
            c.extend(keys.iter().map(|k| k.to_vec()));
            c.push(
                match name {
                    "blpop" => "LEFT",
                    "brpop" => "RIGHT",
                    "bzpopmin" => "MIN",
                    _ => "MAX",
                }
                .as_bytes()
                .to_vec(),
            );
            c
        }
        "blmove" => {
            let mut c: Vec<Vec<u8>> = args[..args.len() - 1].iter().map(|x| x.to_vec()).collect();
            c[0] = b"LMOVE".to_vec();
            c
        }
        "brpoplpush" => vec![b"RPOPLPUSH".to_vec(), a(1), a(2)],
        "blmpop" | "bzmpop" => {
            let mut c = vec![if name == "blmpop" {
                b"LMPOP".to_vec()
            } else {
                b"ZMPOP".to_vec()
            }];
            c.extend(args[2..].iter().map(|x| x.to_vec()));
            c
        }
        _ => args.iter().map(|x| x.to_vec()).collect(),
    };
    cmds.push((idx, cmd));
    cmds
}
