//! Connected clients: the per-connection state a connection task owns (`Client`) and the
//! shared, registry-visible part (`ClientInfo`) that CLIENT LIST / KILL / INFO read.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use cinnabar_protocol::Resp;

/// Shared view of one client.
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub created_ms: i64,
    pub name: Mutex<Option<Bytes>>,
    pub lib_name: Mutex<Option<String>>,
    pub last_interaction_ms: AtomicI64,
    pub db: AtomicU32,
    pub resp: AtomicU32,
    /// Statistics slot of the last command (see `cmd::stat_name`); u32::MAX = none yet.
    pub last_cmd: AtomicU32,
    pub qbuf_bytes: AtomicU64,
    pub omem_bytes: AtomicU64,
    pub in_multi: AtomicBool,
    pub is_unix: bool,
    /// Set when a WATCHed key is modified (EXEC then aborts).
    pub dirty_cas: AtomicBool,
    /// True while the client waits in a blocking command.
    pub blocked: AtomicBool,
    /// Woken when a key the client waits on may have data (or by CLIENT UNBLOCK).
    pub block_notify: tokio::sync::Notify,
    /// CLIENT UNBLOCK request: 0 none, 1 as timeout, 2 with an UNBLOCKED error.
    pub unblock_req: std::sync::atomic::AtomicU8,
    pub sub_count: AtomicU32,
    pub psub_count: AtomicU32,
    pub ssub_count: AtomicU32,
    /// Set by CLIENT KILL; the connection task closes as soon as it sees it.
    pub killed: AtomicBool,
    pub kill_notify: tokio::sync::Notify,
    /// This connection is a replica's link (CLIENT LIST flag `S`).
    pub is_replica_link: AtomicBool,
    /// This is our link to our master (CLIENT LIST flag `M`, type `master`).
    pub is_master_link: AtomicBool,
}

/// Redis's client types (getClientType), for CLIENT LIST / CLIENT KILL `TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientType {
    Normal,
    Replica,
    Master,
    PubSub,
}

impl ClientType {
    /// getClientTypeByName: `normal`, `slave` / `replica`, `master`, `pubsub`.
    pub fn parse(name: &[u8]) -> Option<ClientType> {
        match name.to_ascii_lowercase().as_slice() {
            b"normal" => Some(ClientType::Normal),
            b"slave" | b"replica" => Some(ClientType::Replica),
            b"master" => Some(ClientType::Master),
            b"pubsub" => Some(ClientType::PubSub),
            _ => None,
        }
    }
}

impl ClientInfo {
    pub fn new(id: u64, addr: String, laddr: String, fd: i32, now_ms: i64, is_unix: bool) -> Self {
        ClientInfo {
            id,
            addr,
            laddr,
            fd,
            created_ms: now_ms,
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            last_interaction_ms: AtomicI64::new(now_ms),
            db: AtomicU32::new(0),
            resp: AtomicU32::new(2),
            last_cmd: AtomicU32::new(u32::MAX),
            qbuf_bytes: AtomicU64::new(0),
            omem_bytes: AtomicU64::new(0),
            in_multi: AtomicBool::new(false),
            is_unix,
            dirty_cas: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            block_notify: tokio::sync::Notify::new(),
            unblock_req: std::sync::atomic::AtomicU8::new(0),
            sub_count: AtomicU32::new(0),
            psub_count: AtomicU32::new(0),
            ssub_count: AtomicU32::new(0),
            killed: AtomicBool::new(false),
            kill_notify: tokio::sync::Notify::new(),
            is_replica_link: AtomicBool::new(false),
            is_master_link: AtomicBool::new(false),
        }
    }

    /// getClientType: master link, replica link, subscriber, or normal.
    pub fn client_type(&self) -> ClientType {
        if self.is_master_link.load(Ordering::Relaxed) {
            ClientType::Master
        } else if self.is_replica_link.load(Ordering::Relaxed) {
            ClientType::Replica
        } else if self.sub_count.load(Ordering::Relaxed)
            + self.psub_count.load(Ordering::Relaxed)
            + self.ssub_count.load(Ordering::Relaxed)
            > 0
        {
            ClientType::PubSub
        } else {
            ClientType::Normal
        }
    }

    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        self.kill_notify.notify_one();
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis 7.0's field order.
    pub fn list_line(&self, now_ms: i64) -> String {
        let name = self
            .name
            .lock()
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        let age_s = (now_ms - self.created_ms).max(0) / 1000;
        let idle_s = (now_ms - self.last_interaction_ms.load(Ordering::Relaxed)).max(0) / 1000;
        let multi = if self.in_multi.load(Ordering::Relaxed) {
            0
        } else {
            -1
        };
        let subscribed = self.sub_count.load(Ordering::Relaxed)
            + self.psub_count.load(Ordering::Relaxed)
            + self.ssub_count.load(Ordering::Relaxed)
            > 0;
        let master_link = self.is_master_link.load(Ordering::Relaxed);
        let flags = if master_link {
            "M"
        } else if self.is_replica_link.load(Ordering::Relaxed) {
            "S"
        } else if self.in_multi.load(Ordering::Relaxed) {
            "x"
        } else if self.blocked.load(Ordering::Relaxed) {
            "b"
        } else if subscribed {
            "P"
        } else {
            "N"
        };
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem={} tot-mem=0 events=r cmd={} user={} redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            name,
            age_s,
            idle_s,
            flags,
            self.db.load(Ordering::Relaxed),
            self.sub_count.load(Ordering::Relaxed),
            self.psub_count.load(Ordering::Relaxed),
            self.ssub_count.load(Ordering::Relaxed),
            multi,
            self.qbuf_bytes.load(Ordering::Relaxed),
            self.omem_bytes.load(Ordering::Relaxed),
            match self.last_cmd.load(Ordering::Relaxed) {
                u32::MAX => "NULL",
                i => crate::cmd::stat_name(i as usize),
            },
            // The master link runs without a user, as Redis's "(superuser)".
            if master_link { "(superuser)" } else { "default" },
            self.resp.load(Ordering::Relaxed),
        )
    }
}

/// CLIENT REPLY mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// Skip the reply of the next command only.
    SkipNext,
    /// Currently skipping this command's reply.
    Skipping,
}

/// MULTI state: the queued commands and whether a queue-time error happened.
#[derive(Default)]
pub struct MultiState {
    pub queued: Vec<Vec<Bytes>>,
    pub dirty_error: bool,
}

/// State owned by the connection task.
pub struct Client {
    pub id: u64,
    pub db: u32,
    pub resp: Resp,
    pub authenticated: bool,
    pub info: Arc<ClientInfo>,
    pub multi: Option<MultiState>,
    pub close_after_reply: bool,
    pub reply_mode: ReplyMode,
    /// Cluster READONLY mode.
    pub readonly: bool,
    /// Cluster ASKING flag (one command).
    pub asking: bool,
    /// EXEC in an open slot (resharding): the ASK / TRYAGAIN verdict, run by EXEC under the
    /// transaction's own slot locks.
    pub exec_open_check: Option<crate::cmd::OpenSlotCheck>,
    /// MONITOR mode.
    pub monitor: bool,
    /// Pub/Sub subscriptions (channels, patterns, shard channels).
    pub subs: Vec<Bytes>,
    pub psubs: Vec<Bytes>,
    pub ssubs: Vec<Bytes>,
    /// Push queue for Pub/Sub messages and MONITOR lines (created on first use).
    pub push: Option<Arc<crate::pubsub::PushQueue>>,
    pub push_rx: Option<tokio::sync::mpsc::UnboundedReceiver<Bytes>>,
    /// WATCHed keys: (db, key, existed and was live at WATCH time).
    pub watched: Vec<(u32, Bytes, bool)>,
    /// Set by a blocking command that found nothing to serve (the connection then waits).
    pub block: Option<crate::cmd::blocking::BlockRequest>,
    /// True while EXEC runs queued commands (blocking commands must not block then).
    pub in_exec: bool,
    /// Replication offset right after this client's last propagated write (Redis's
    /// `c->woff`): WAIT waits for replicas to acknowledge this much.
    pub woff: i64,
    /// Replication: this is the master's link on a replica (no replies, no read-only check).
    pub is_master: bool,
    /// REPLCONF listening-port / ip-address of a replica connection.
    pub repl_port: u16,
    pub repl_ip: Option<String>,
    /// REPLCONF capa eof: the replica takes the RDB streamed with an EOF mark.
    pub repl_capa_eof: bool,
    /// Set by PSYNC / SYNC / WAIT: work the connection task does after the command.
    pub pending_async: Option<crate::repl::AsyncOp>,
    /// Whether used memory was over `maxmemory` when this command started (Redis's
    /// `server.script_oom`, read by scripts).
    pub script_oom: bool,
    /// Effects of a script run inside EXEC, collected by EXEC in order (`script/`).
    pub script_effects: Vec<(u32, Vec<Vec<u8>>)>,
}

impl Client {
    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> Self {
        Client {
            id: info.id,
            db: 0,
            resp: Resp::V2,
            authenticated,
            info,
            multi: None,
            close_after_reply: false,
            reply_mode: ReplyMode::On,
            readonly: false,
            asking: false,
            exec_open_check: None,
            monitor: false,
            subs: Vec::new(),
            psubs: Vec::new(),
            ssubs: Vec::new(),
            push: None,
            push_rx: None,
            watched: Vec::new(),
            block: None,
            in_exec: false,
            woff: 0,
            is_master: false,
            repl_port: 0,
            repl_ip: None,
            repl_capa_eof: false,
            pending_async: None,
            script_oom: false,
            script_effects: Vec::new(),
        }
    }

    /// Subscriptions that count for the (P)UNSUBSCRIBE replies.
    pub fn sub_total(&self) -> usize {
        self.subs.len() + self.psubs.len()
    }

    /// True when the client is in RESP2 subscribed mode restrictions. Shard subscriptions
    /// are counted from `info.ssub_count`, which also reflects the shard channels the
    /// cluster layer dropped (slot moved away) before this connection applied them.
    pub fn in_pubsub_context(&self) -> bool {
        self.sub_total() > 0 || self.info.ssub_count.load(Ordering::Acquire) > 0
    }

    /// Removes from `ssubs` the shard channels the server unsubscribed this client from
    /// (`PubSub::drop_shard_slots`); their registry entries and pushes are already done.
    pub fn apply_dropped_shard_channels(&mut self) {
        let Some(q) = &self.push else { return };
        for ch in q.take_dropped_shard() {
            if let Some(pos) = self.ssubs.iter().position(|c| *c == ch) {
                self.ssubs.remove(pos);
            }
        }
    }

    /// The client's push queue, created on first use.
    pub fn push_queue(&mut self, hard_limit_bytes: u64) -> Arc<crate::pubsub::PushQueue> {
        if let Some(q) = &self.push {
            return q.clone();
        }
        let resp = if self.resp == Resp::V3 { 3 } else { 2 };
        let (q, rx) = crate::pubsub::PushQueue::new(self.info.clone(), resp, hard_limit_bytes);
        self.push = Some(q.clone());
        self.push_rx = Some(rx);
        q
    }
}
