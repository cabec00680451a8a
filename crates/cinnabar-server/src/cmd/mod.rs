//! Command table and dispatcher.
//!
//! Every command is a [`CommandSpec`]: name, arity (Redis convention: positive = exact,
//! negative = minimum), flags, where its keys are, and a handler. [`execute`] follows the order
//! of Redis's `processCommand`: lookup, arity, authentication, cluster redirection, MULTI
//! queueing, then it locks the slots of the command's keys (in (db, slot) order), runs the
//! handler and records statistics.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use smallvec::SmallVec;

use cinnabar_cluster::slot::key_hash_slot;
use cinnabar_protocol::ReplyBuf;

use crate::client::{Client, MultiState, ReplyMode};
use crate::cluster_glue::Route;
use crate::db::DbView;
use crate::error::{CmdError, CmdResult};
use crate::keyspace::{LockSet, SLOT_COUNT};
use crate::server::Server;

pub mod blocking;
pub mod coll;
pub mod command_meta;
pub mod connection;
pub mod geo;
pub mod hashes;
pub mod hyperloglog;
pub mod keys;
pub mod lists;
pub mod migrate;
pub mod misc_cmds;
pub mod pubsub;
pub mod replication;
pub mod server_cmds;
pub mod sets;
pub mod sort;
pub mod strings;
pub mod strings_ext;
pub mod zsets;

/// Command flags (a subset of Redis's, reported by COMMAND INFO).
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const ALLOW_BUSY: u32 = 1 << 15;
    /// Touches every slot (KEYS, SCAN, DBSIZE, FLUSHDB, RANDOMKEY ...): EXEC locks them all.
    pub const KEYSPACE_WIDE: u32 = 1 << 20;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Where a command's keys are.
#[derive(Clone, Copy)]
pub enum Keys {
    None,
    /// first, last (negative counts from the end), step — as in COMMAND INFO.
    Range(i32, i32, i32),
    /// Computed from the arguments (numkeys-style commands).
    Custom(fn(&[Bytes]) -> SmallVec<[usize; 4]>),
}

pub type Handler = fn(&mut Ctx, &[Bytes]) -> CmdResult;

pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub keys: Keys,
    pub handler: Handler,
    pub subcommands: &'static [CommandSpec],
    /// Index into `Server::cmd_stats` (assigned by the table builder).
    pub group: &'static str,
}

/// Everything a handler gets.
pub struct Ctx<'a> {
    pub srv: &'a Server,
    pub cl: &'a mut Client,
    pub out: &'a mut ReplyBuf,
    pub db: DbView<'a>,
    /// Full command name as stats/errors print it (`get`, `config|get`).
    pub name: &'static str,
}

impl<'a> Ctx<'a> {
    pub fn now_ms(&self) -> i64 {
        self.db.now_ms
    }
}

pub(crate) mod table;
pub use table::{all_specs, command_count, command_index, lookup, COMMANDS};

/// Key argument positions of a command invocation.
pub fn key_positions(spec: &CommandSpec, args: &[Bytes]) -> SmallVec<[usize; 4]> {
    match spec.keys {
        Keys::None => SmallVec::new(),
        Keys::Range(first, last, step) => {
            let argc = args.len() as i32;
            let last = if last < 0 { argc + last } else { last };
            let mut v = SmallVec::new();
            let mut i = first;
            while i <= last && i < argc && step > 0 {
                v.push(i as usize);
                i += step;
            }
            v
        }
        Keys::Custom(f) => f(args),
    }
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    if arity > 0 {
        argc as i32 == arity
    } else {
        argc as i32 >= -arity
    }
}

/// C-string view of an argument: bytes up to the first NUL (Redis formats these with `%s`).
fn c_str(a: &[u8]) -> &[u8] {
    match memchr::memchr(0, a) {
        Some(i) => &a[..i],
        None => a,
    }
}

/// `ERR unknown command '<name>', with args beginning with: '<a1>' '<a2>' ` exactly as Redis 7.0
/// builds it (128-byte budget, `%.*s` truncation at NUL bytes, raw bytes kept).
fn unknown_command_error(args: &[Bytes]) -> CmdError {
    let mut list: Vec<u8> = Vec::new();
    for a in args.iter().skip(1) {
        if list.len() >= 128 {
            break;
        }
        let budget = 128 - list.len();
        let a = c_str(a);
        list.push(b'\'');
        list.extend_from_slice(&a[..a.len().min(budget)]);
        list.extend_from_slice(b"' ");
    }
    let name = c_str(&args[0]);
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(&name[..name.len().min(128)]);
    msg.extend_from_slice(b"', with args beginning with: ");
    msg.extend_from_slice(&list);
    CmdError::Raw(msg)
}

/// Result of resolving a command name (with its subcommand).
pub enum Resolved {
    Ok(&'static CommandSpec, &'static str, usize),
    Err(CmdError),
}

/// Finds the spec for `args`, checking arity; `usize` is the stats index.
pub fn resolve(args: &[Bytes]) -> Resolved {
    let Some((idx, spec)) = lookup(&args[0]) else {
        return Resolved::Err(unknown_command_error(args));
    };
    if !spec.subcommands.is_empty() {
        if args.len() < 2 {
            if arity_ok(spec.arity, 1) {
                return Resolved::Ok(spec, spec.group, command_index(idx, None));
            }
            return Resolved::Err(CmdError::Arity(spec.name.to_string()));
        }
        let sub = &args[1];
        let found = spec
            .subcommands
            .iter()
            .position(|s| s.name.as_bytes().eq_ignore_ascii_case(sub));
        let Some(pos) = found else {
            return Resolved::Err(CmdError::Msg(format!(
                "ERR unknown subcommand '{}'. Try {} HELP.",
                String::from_utf8_lossy(&sub[..sub.len().min(128)]),
                spec.name.to_ascii_uppercase()
            )));
        };
        let subspec = &spec.subcommands[pos];
        if !arity_ok(subspec.arity, args.len()) {
            return Resolved::Err(CmdError::Arity(format!("{}|{}", spec.name, subspec.name)));
        }
        return Resolved::Ok(subspec, subspec.group, command_index(idx, Some(pos)));
    }
    if !arity_ok(spec.arity, args.len()) {
        return Resolved::Err(CmdError::Arity(spec.name.to_string()));
    }
    Resolved::Ok(spec, spec.group, command_index(idx, None))
}

/// Redis's `rejectCommand`: the command is refused before it runs — the transaction being
/// queued is flagged (EXEC will answer EXECABORT), the command's `rejected_calls` counts it,
/// and the error is the reply.
fn reject(srv: &Server, cl: &mut Client, out: &mut ReplyBuf, stat_idx: usize, e: &CmdError) {
    if let Some(m) = cl.multi.as_mut() {
        m.dirty_error = true;
    }
    srv.cmd_stats[stat_idx]
        .rejected_calls
        .fetch_add(1, Ordering::Relaxed);
    reply_error(srv, cl, out, e);
}

/// Whether a queued transaction holds a write command (Redis's `mstate.cmd_flags & CMD_WRITE`).
fn multi_writes(cl: &Client) -> bool {
    multi_has_flag(cl, flags::WRITE)
}

/// Whether a queued transaction holds a command with `flag` (Redis's `mstate.cmd_flags`).
fn multi_has_flag(cl: &Client, flag: u32) -> bool {
    cl.multi.as_ref().is_some_and(|m| {
        m.queued
            .iter()
            .any(|q| matches!(resolve(q), Resolved::Ok(s, _, _) if s.flags & flag != 0))
    })
}

/// `rejectCommand` for EXEC (execCommandAbort): the transaction is discarded and the error
/// comes back as `-EXECABORT Transaction discarded because of: <error>`.
fn reject_exec(srv: &Server, cl: &mut Client, out: &mut ReplyBuf, stat_idx: usize, e: &CmdError) {
    cl.multi = None;
    cl.info.in_multi.store(false, Ordering::Relaxed);
    srv.unwatch_all(cl);
    let text = e.text();
    let abort = CmdError::Msg(format!(
        "EXECABORT Transaction discarded because of: {}",
        text.strip_prefix('-').unwrap_or(&text)
    ));
    reject(srv, cl, out, stat_idx, &abort);
}

fn reply_error(srv: &Server, cl: &mut Client, out: &mut ReplyBuf, e: &CmdError) {
    srv.stats.count_error(&e.text());
    if cl.reply_mode == ReplyMode::On {
        out.error_bytes(&e.bytes());
    }
}

/// What routing leaves to be decided once the slot is locked: the slot is open (migrating or
/// importing), so the answer depends on which of the command's keys exist here.
pub struct OpenSlotCheck {
    slot: u16,
    /// Migrating: where missing keys are sent with `-ASK`. None: importing (after ASKING).
    ask_to: Option<(std::sync::Arc<str>, u16)>,
    /// More than one distinct key (TRYAGAIN instead of a partial answer).
    multiple_keys: bool,
    keys: SmallVec<[Bytes; 4]>,
}

impl OpenSlotCheck {
    /// Redis's `getNodeByQuery` steps 6–7 with the keys counted under the slot's lock:
    /// migrating and some keys missing → TRYAGAIN if others are here, else ASK; importing
    /// with several keys and some missing → TRYAGAIN.
    fn verdict(&self, db: &mut DbView) -> Result<(), CmdError> {
        let (mut missing, mut present) = (0usize, 0usize);
        for k in &self.keys {
            if db.exists(k) {
                present += 1;
            } else {
                missing += 1;
            }
        }
        let tryagain = || CmdError::msg("TRYAGAIN Multiple keys request during rehashing of slot");
        match &self.ask_to {
            Some(_) if missing > 0 && present > 0 => Err(tryagain()),
            Some((ip, port)) if missing > 0 => {
                Err(CmdError::Msg(format!("ASK {} {ip}:{port}", self.slot)))
            }
            None if self.multiple_keys && missing > 0 => Err(tryagain()),
            _ => Ok(()),
        }
    }

    /// The verdict under locks the caller already holds (a script's `redis.call`).
    pub(crate) fn verdict_here(&self, db: &mut DbView) -> Result<(), CmdError> {
        self.verdict(db)
    }

    /// The verdict with a lock of its own, for a command queued in MULTI (EXEC decides again
    /// under its own locks, see `cmd_exec`).
    fn verdict_locked(&self, srv: &Server, db_index: u32, now_ms: i64) -> Result<(), CmdError> {
        let locks = LockSet::lock(&srv.keyspace, [(db_index, self.slot)].into_iter().collect());
        let mut db = DbView::new(&srv.keyspace, &srv.stats, db_index, now_ms, locks);
        self.verdict(&mut db)
    }
}

/// Cluster routing for keyed commands, in the order of Redis's `getNodeByQuery`: unbound first
/// slot, CROSSSLOT, cluster state, MIGRATE in open slots, then ASK / TRYAGAIN (returned as an
/// [`OpenSlotCheck`] to run under the slot lock), READONLY replicas, then MOVED. EXEC is
/// checked over all queued commands.
pub(crate) fn cluster_check(
    srv: &Server,
    cl: &Client,
    spec: &CommandSpec,
    args: &[Bytes],
    keyslots: &[(usize, u16)],
) -> Result<Option<OpenSlotCheck>, CmdError> {
    let Some(cluster) = srv.cluster.as_ref() else {
        return Ok(None);
    };
    if cl.is_master {
        return Ok(None); // the replication stream is never redirected
    }
    // Borrowed: the hot path copies nothing; only an open slot takes owned keys.
    let mut keys: SmallVec<[(&[u8], u16); 4]> = SmallVec::new();
    let mut is_write = spec.flags & flags::WRITE != 0;
    let mut asking_cmd = spec.name == "restore-asking";
    let is_shard_pubsub = |name: &str| matches!(name, "spublish" | "ssubscribe" | "sunsubscribe");
    let mut pubsubshard = is_shard_pubsub(spec.name);
    if spec.name == "exec" {
        if let Some(m) = cl.multi.as_ref() {
            for q in &m.queued {
                if let Resolved::Ok(qs, _, _) = resolve(q) {
                    is_write |= qs.flags & flags::WRITE != 0;
                    asking_cmd |= qs.name == "restore-asking";
                    pubsubshard |= is_shard_pubsub(qs.name);
                    for p in key_positions(qs, q) {
                        keys.push((&q[p], key_hash_slot(&q[p])));
                    }
                }
            }
        }
    } else {
        keys.extend(keyslots.iter().map(|&(p, s)| (&args[p][..], s)));
    }
    let Some(&(first, slot)) = keys.first() else {
        return Ok(None);
    };
    let route = cluster.route(slot);
    if route == Route::Unassigned {
        return Err(CmdError::msg("CLUSTERDOWN Hash slot not served"));
    }
    // Keys in another slot are necessarily different keys: CROSSSLOT.
    if keys[1..].iter().any(|&(_, s)| s != slot) {
        return Err(CmdError::msg(
            "CROSSSLOT Keys in request don't hash to the same slot",
        ));
    }
    if !cluster.is_ok() {
        if pubsubshard {
            if !srv.settings().cluster_allow_pubsubshard_when_down {
                return Err(CmdError::msg("CLUSTERDOWN The cluster is down"));
            }
        } else if !srv.settings().cluster_allow_reads_when_down {
            return Err(CmdError::msg("CLUSTERDOWN The cluster is down"));
        } else if is_write {
            return Err(CmdError::msg(
                "CLUSTERDOWN The cluster is down and only accepts read commands",
            ));
        }
    }
    // Only an open slot needs to know whether several distinct keys are involved.
    let multiple_keys = || keys[1..].iter().any(|&(k, _)| k != first);
    let open = |ask_to| OpenSlotCheck {
        slot,
        ask_to,
        multiple_keys: multiple_keys(),
        keys: keys
            .iter()
            .map(|&(k, _)| Bytes::copy_from_slice(k))
            .collect(),
    };
    match route {
        Route::Myself | Route::Unassigned => Ok(None),
        // MIGRATE works locally while the slot is open: keys move freely between the two.
        Route::Migrating { .. } | Route::Importing { .. } if spec.name == "migrate" => Ok(None),
        // Shard channels are not keys: no ASK / TRYAGAIN for them (Redis skips the count).
        Route::Migrating { .. } if pubsubshard => Ok(None),
        Route::Importing { .. } if pubsubshard && (cl.asking || asking_cmd) => Ok(None),
        Route::Migrating { ip, port } => Ok(Some(open(Some((ip, port))))),
        Route::Importing { .. } if cl.asking || asking_cmd => {
            Ok(multiple_keys().then(|| open(None)))
        }
        Route::Moved { ip, port } | Route::Importing { ip, port } => {
            // READONLY clients (and shard pub/sub) may read from a replica of the slot's master.
            if (cl.readonly || pubsubshard) && !is_write && cluster.serves_reads_for(slot) {
                return Ok(None);
            }
            Err(CmdError::Msg(format!("MOVED {slot} {ip}:{port}")))
        }
    }
}

/// `clusterRedirectBlockedClientIfNeeded`: a client blocked on `keys` (BLPOP & co.) is
/// unblocked with CLUSTERDOWN when the cluster fails, or with MOVED / CLUSTERDOWN unbound when
/// the keys' slot is no longer served here (and not being imported). Checked about once a
/// second, like Redis's clientsCron.
pub fn blocked_redirect(srv: &Server, cl: &Client, keys: &[Bytes]) -> Option<CmdError> {
    let cluster = srv.cluster.as_ref()?;
    if cl.is_master {
        return None;
    }
    if !cluster.is_ok() {
        return Some(CmdError::msg("CLUSTERDOWN The cluster is down"));
    }
    let slot = key_hash_slot(keys.first()?);
    match cluster.route(slot) {
        Route::Myself | Route::Migrating { .. } | Route::Importing { .. } => None,
        Route::Unassigned => Some(CmdError::msg("CLUSTERDOWN Hash slot not served")),
        Route::Moved { ip, port } => Some(CmdError::Msg(format!("MOVED {slot} {ip}:{port}"))),
    }
}

/// Locks what `spec` needs for `args` in database `db`; None when a slot stayed held while a
/// script went past `busy-reply-threshold` (the command then gets -BUSY).
fn lock_for<'a>(
    srv: &'a Server,
    db: u32,
    spec: &CommandSpec,
    args: &[Bytes],
    keyslots: &[(usize, u16)],
) -> Option<LockSet<'a>> {
    if spec.flags & flags::KEYSPACE_WIDE != 0 {
        return Some(LockSet::empty());
    }
    let mut wanted: SmallVec<[(u32, u16); 4]> = keyslots.iter().map(|&(_, s)| (db, s)).collect();
    if let Some(target) = extra_db(spec, args, srv.keyspace.db_count()) {
        for &(_, s) in keyslots {
            wanted.push((target, s));
        }
    }
    LockSet::lock_polling(&srv.keyspace, wanted, || srv.scripts.is_busy())
}

/// Key positions of a command with each key's hash slot, computed once per command.
pub fn key_slots(spec: &CommandSpec, args: &[Bytes]) -> SmallVec<[(usize, u16); 4]> {
    key_positions(spec, args)
        .into_iter()
        .map(|p| (p, key_hash_slot(&args[p])))
        .collect()
}

/// Full command name (`get`, `config|get`) of a statistics slot, for CLIENT LIST's `cmd=`.
pub fn stat_name(idx: usize) -> &'static str {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut v = vec![""; command_count()];
        for (i, spec) in all_specs() {
            v[i] = spec.group;
        }
        v
    });
    names.get(idx).copied().unwrap_or("NULL")
}

/// Commands that also touch another database (MOVE key db, COPY ... DB n).
pub(crate) fn extra_db(spec: &CommandSpec, args: &[Bytes], db_count: usize) -> Option<u32> {
    match spec.name {
        "move" => keys::parse_db_index(args.get(2)?)
            .ok()
            .filter(|d| (*d as usize) < db_count),
        "copy" => {
            let mut i = 3;
            while i < args.len() {
                if args[i].eq_ignore_ascii_case(b"db") {
                    return keys::parse_db_index(args.get(i + 1)?)
                        .ok()
                        .filter(|d| (*d as usize) < db_count);
                }
                i += 1;
            }
            None
        }
        _ => None,
    }
}

/// Executes one command and writes its reply to `out`.
pub fn execute(srv: &Server, cl: &mut Client, args: &[Bytes], out: &mut ReplyBuf, now_ms: i64) {
    if cl.reply_mode == ReplyMode::SkipNext {
        cl.reply_mode = ReplyMode::Skipping;
    }
    let mark = out.len();
    execute_inner(srv, cl, args, out, now_ms);
    // ASKING holds for the next command only (or the whole MULTI), as Redis's resetClient.
    if cl.asking && cl.multi.is_none() && !args[0].eq_ignore_ascii_case(b"asking") {
        cl.asking = false;
    }
    match cl.reply_mode {
        ReplyMode::Off => out.buf.truncate(mark),
        ReplyMode::Skipping => {
            out.buf.truncate(mark);
            cl.reply_mode = ReplyMode::On;
        }
        _ => {}
    }
}

fn execute_inner(srv: &Server, cl: &mut Client, args: &[Bytes], out: &mut ReplyBuf, now_ms: i64) {
    let (spec, group, stat_idx) = match resolve(args) {
        Resolved::Ok(s, g, i) => (s, g, i),
        Resolved::Err(e) => {
            if let Some(m) = cl.multi.as_mut() {
                m.dirty_error = true;
            }
            reply_error(srv, cl, out, &e);
            return;
        }
    };
    let _ = group;
    if !cl.authenticated && spec.flags & flags::NO_AUTH == 0 {
        let e = CmdError::msg("NOAUTH Authentication required.");
        return reject(srv, cl, out, stat_idx, &e);
    }
    let keyslots = key_slots(spec, args);
    cl.exec_open_check = None; // never left over from an EXEC that was refused
    let open_check = match (
        cluster_check(srv, cl, spec, args, &keyslots),
        cl.multi.is_some(),
    ) {
        // EXEC decides under the transaction's own locks (see cmd_exec), so no key can move
        // between the verdict and the execution.
        (Ok(Some(chk)), true) if spec.name == "exec" => {
            cl.exec_open_check = Some(chk);
            Ok(None)
        }
        // Queueing in MULTI: checked now with a short lock of its own (EXEC checks again).
        (Ok(Some(chk)), true) => chk.verdict_locked(srv, cl.db, now_ms).map(|()| None),
        (other, _) => other,
    };
    let open_check = match open_check {
        Ok(chk) => chk,
        Err(e) => {
            if spec.name == "exec" {
                // A redirected EXEC discards the transaction (processCommand).
                cl.multi = None;
                cl.info.in_multi.store(false, Ordering::Relaxed);
            }
            return reject(srv, cl, out, stat_idx, &e);
        }
    };
    // maxmemory (processCommand): evict first; when still over the limit, refuse commands that
    // may grow memory, and anything but EXEC/DISCARD/QUIT/RESET inside MULTI (queueing costs
    // memory too). The replication link is never refused.
    cl.script_oom = srv.evict.maxmemory_bytes.load(Ordering::Relaxed) != 0
        && !cl.is_master
        && crate::evict::perform(srv) == crate::evict::Outcome::OutOfMemory;
    if cl.script_oom {
        let is_exec = spec.name == "exec";
        let denyoom =
            spec.flags & flags::DENYOOM != 0 || (is_exec && multi_has_flag(cl, flags::DENYOOM));
        let in_multi_queueing =
            cl.multi.is_some() && !matches!(spec.name, "exec" | "discard" | "quit" | "reset");
        if denyoom || in_multi_queueing {
            let e = CmdError::msg("OOM command not allowed when used memory > 'maxmemory'.");
            if is_exec {
                return reject_exec(srv, cl, out, stat_idx, &e);
            }
            return reject(srv, cl, out, stat_idx, &e);
        }
    }
    let is_write = spec.flags & flags::WRITE != 0;
    // Disk errors (writeCommandsDeniedByDiskError): a failed BGSAVE with
    // stop-writes-on-bgsave-error, or a failed AOF write/fsync, refuse writes (and PING).
    if (is_write || spec.name == "ping" || spec.name == "exec") && !cl.is_master {
        let disk_err = if !srv.persist.rdb.last_bgsave_ok.load(Ordering::Relaxed)
            && crate::persist::rdbfile::writes_refused(srv)
        {
            Some(CmdError::msg("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error."))
        } else {
            srv.persist
                .aof
                .write_error()
                .map(|e| CmdError::Msg(format!("MISCONF Errors writing to the AOF file: {e}")))
        };
        if let Some(e) = disk_err {
            if spec.name != "exec" {
                return reject(srv, cl, out, stat_idx, &e);
            }
            if multi_writes(cl) {
                return reject_exec(srv, cl, out, stat_idx, &e);
            }
        }
    }
    // min-replicas-to-write: a write (or an EXEC whose queue writes) needs enough good
    // replicas (processCommand's checkGoodReplicasStatus).
    if (is_write || spec.name == "exec")
        && !cl.is_master
        && srv.repl.min_replicas_refuse()
        && (is_write || multi_writes(cl))
    {
        let e = CmdError::msg("NOREPLICAS Not enough good replicas to write.");
        if spec.name == "exec" {
            return reject_exec(srv, cl, out, stat_idx, &e);
        }
        return reject(srv, cl, out, stat_idx, &e);
    }
    if spec.flags & flags::WRITE != 0
        && !cl.is_master
        && srv.repl.is_replica()
        && srv.settings().replica_read_only
    {
        let e = CmdError::msg("READONLY You can't write against a read only replica.");
        return reject(srv, cl, out, stat_idx, &e);
    }
    if spec.flags & flags::STALE == 0
        && !cl.is_master
        && srv.repl.is_replica()
        && !srv.settings().replica_serve_stale_data
        && !srv.repl.master_link_up()
    {
        let e = CmdError::msg(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        );
        return reject(srv, cl, out, stat_idx, &e);
    }
    if spec.flags & flags::LOADING == 0
        && !cl.is_master
        && srv.repl.is_loading()
        && srv.repl.loading_refuses()
    {
        let e = CmdError::msg("LOADING Redis is loading the dataset in memory");
        return reject(srv, cl, out, stat_idx, &e);
    }
    if cl.resp == cinnabar_protocol::Resp::V2
        && cl.in_pubsub_context()
        && !matches!(
            spec.name,
            "subscribe"
                | "ssubscribe"
                | "unsubscribe"
                | "sunsubscribe"
                | "psubscribe"
                | "punsubscribe"
                | "ping"
                | "quit"
                | "reset"
        )
    {
        let e = CmdError::Msg(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec_full_name(args, spec)
        ));
        reply_error(srv, cl, out, &e);
        return;
    }
    // A script running past busy-reply-threshold: only `allow_busy` commands (SCRIPT KILL,
    // SHUTDOWN, the transaction commands ...) are served (processCommand's
    // isInsideYieldingLongCommand check).
    if spec.flags & flags::ALLOW_BUSY == 0 && !cl.is_master && srv.scripts.is_busy() {
        if spec.name == "exec" {
            return reject_exec(srv, cl, out, stat_idx, &srv.scripts.busy_error());
        }
        return reject(srv, cl, out, stat_idx, &srv.scripts.busy_error());
    }
    if cl.multi.is_some()
        && !matches!(
            spec.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        )
    {
        if spec.flags & flags::NO_MULTI != 0 {
            reply_error(
                srv,
                cl,
                out,
                &CmdError::err("Command not allowed inside a transaction"),
            );
            return;
        }
        if let Some(m) = cl.multi.as_mut() {
            m.queued.push(args.to_vec());
        }
        out.simple("QUEUED");
        return;
    }
    cl.info.last_cmd.store(stat_idx as u32, Ordering::Relaxed);
    let started = std::time::Instant::now();
    // With replicas attached, FLUSHDB / FLUSHALL hold every slot so that no concurrent write
    // lands between the flush and its place in the replication stream.
    let flush_all_locked = srv.repl.needs_feed() && matches!(spec.name, "flushdb" | "flushall");
    let locks = if flush_all_locked {
        crate::repl::lock_whole_dbs(srv, (spec.name == "flushdb").then_some(cl.db))
    } else {
        match lock_for(srv, cl.db, spec, args, &keyslots) {
            Some(l) => l,
            None => return reject(srv, cl, out, stat_idx, &srv.scripts.busy_error()),
        }
    };
    let mut db = DbView::new(&srv.keyspace, &srv.stats, cl.db, now_ms, locks);
    // An open slot (resharding): ASK / TRYAGAIN decided under the slot's lock, so a
    // concurrent MIGRATE of these keys is either wholly before or wholly after this command.
    if let Some(chk) = &open_check {
        if let Err(e) = chk.verdict(&mut db) {
            drop(db);
            return reject(srv, cl, out, stat_idx, &e);
        }
    }
    db.all_locked = flush_all_locked;
    db.pubsub = Some(&srv.pubsub);
    db.no_expire_delete = srv.repl.is_replica();
    let mark = out.len();
    if let Some(&(p, s)) = keyslots.first() {
        db.prime_slot(&args[p], s);
    }
    let mut ctx = Ctx {
        srv,
        cl,
        out,
        db,
        name: spec.name,
    };
    let res = (spec.handler)(&mut ctx, args);
    let dirty = ctx.db.dirty;
    let db_after = ctx.db.index;
    // Replication: appended while this command's slot locks are still held.
    if dirty > 0 && srv.repl.needs_feed() && !srv.repl.is_replica() && spec.name != "exec" {
        let is_write = spec.flags & flags::WRITE != 0 && res.is_ok();
        let cmds =
            crate::repl::rewrite(spec.name, is_write, args, &mut ctx.db, &ctx.out.buf[mark..]);
        srv.repl.propagate_batch(&cmds, false);
    }
    drop(ctx);
    if dirty > 0 {
        srv.stats.dirty.fetch_add(dirty, Ordering::Relaxed);
        if spec.flags & flags::WRITE != 0 {
            for &(p, _) in &keyslots {
                srv.touch_watched(db_after, &args[p]);
                srv.signal_ready(db_after, &args[p]);
            }
        }
    }
    if srv.pubsub.has_monitors()
        && spec.flags & (flags::ADMIN | flags::SKIP_MONITOR) == 0
        && spec.name != "auth"
    {
        srv.pubsub.feed_monitors(db_after, &cl.info, args);
    }
    let elapsed_us = started.elapsed().as_micros() as u64;
    let st = &srv.cmd_stats[stat_idx];
    st.record(elapsed_us);
    srv.stats
        .total_commands_processed
        .fetch_add(1, Ordering::Relaxed);
    if let Err(e) = res {
        st.failed_calls.fetch_add(1, Ordering::Relaxed);
        reply_error(srv, cl, out, &e);
    }
    server_cmds::slowlog_record(srv, cl, args, elapsed_us, now_ms);
    // Redis 7.0 sets `c->woff = server.master_repl_offset` after every executed command
    // (EXEC included): a later WAIT of this client covers everything the master had streamed
    // by then, this command's own propagation included (published under the log's lock).
    if srv.repl.is_active() {
        cl.woff = srv.repl.offset_relaxed();
    }
}

fn spec_full_name(args: &[Bytes], spec: &CommandSpec) -> String {
    let top = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    if top != spec.name {
        format!("{}|{}", top, spec.name)
    } else {
        top
    }
}

/// MULTI.
pub fn cmd_multi(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if ctx.cl.multi.is_some() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    ctx.cl.multi = Some(MultiState::default());
    ctx.cl.info.in_multi.store(true, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

/// DISCARD.
pub fn cmd_discard(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if ctx.cl.multi.take().is_none() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    ctx.cl.info.in_multi.store(false, Ordering::Relaxed);
    ctx.srv.unwatch_all(ctx.cl);
    ctx.out.ok();
    Ok(())
}

/// EXEC: runs the queued commands atomically — every slot any of them touches is locked for
/// the whole transaction (all slots when one of them is keyspace-wide).
pub fn cmd_exec(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let open_check = ctx.cl.exec_open_check.take();
    let Some(multi) = ctx.cl.multi.take() else {
        return Err(CmdError::err("EXEC without MULTI"));
    };
    ctx.cl.info.in_multi.store(false, Ordering::Relaxed);
    if multi.dirty_error {
        ctx.srv.unwatch_all(ctx.cl);
        return Err(CmdError::msg(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    let srv = ctx.srv;
    // Resolve all, gather the slots to lock.
    let mut specs = Vec::with_capacity(multi.queued.len());
    let mut wanted: SmallVec<[(u32, u16); 4]> = SmallVec::new();
    let mut all = false;
    let mut db_index = ctx.cl.db;
    for q in &multi.queued {
        match resolve(q) {
            Resolved::Ok(spec, _, idx) => {
                if spec.flags & flags::KEYSPACE_WIDE != 0
                    || spec.name == "select"
                    || spec.name == "swapdb"
                {
                    all = true;
                }
                if spec.name == "select" {
                    if let Some(Ok(n)) = q.get(1).map(keys::parse_db_index) {
                        db_index = n;
                    }
                }
                for p in key_positions(spec, q) {
                    wanted.push((db_index, key_hash_slot(&q[p])));
                }
                if let Some(t) = extra_db(spec, q, srv.keyspace.db_count()) {
                    for p in key_positions(spec, q) {
                        wanted.push((t, key_hash_slot(&q[p])));
                    }
                }
                specs.push(Some((spec, idx)));
            }
            Resolved::Err(_) => specs.push(None),
        }
    }
    for (d, k, _) in &ctx.cl.watched {
        wanted.push((*d, key_hash_slot(k)));
    }
    // Release the (empty) lock set of EXEC itself before taking the transaction's locks.
    ctx.db.locks = LockSet::empty();
    let locks = if all {
        let mut w: SmallVec<[(u32, u16); 4]> = SmallVec::new();
        let dbs: Vec<u32> = {
            let mut v: Vec<u32> = wanted.iter().map(|(d, _)| *d).collect();
            v.push(ctx.cl.db);
            v.push(db_index);
            v.sort_unstable();
            v.dedup();
            v
        };
        for d in dbs {
            for s in 0..SLOT_COUNT as u16 {
                w.push((d, s));
            }
        }
        LockSet::lock_polling(&srv.keyspace, w, || srv.scripts.is_busy())
    } else {
        LockSet::lock_polling(&srv.keyspace, wanted, || srv.scripts.is_busy())
    };
    let Some(locks) = locks else {
        ctx.srv.unwatch_all(ctx.cl);
        return Err(srv.scripts.busy_error());
    };
    ctx.db.locks = locks;
    ctx.db.all_locked = all;
    // An open slot (resharding): -ASK / -TRYAGAIN decided under the transaction's locks, as
    // Redis decides it for EXEC before running it. The transaction is discarded, as there.
    // (Counted as a failed EXEC in commandstats, where Redis counts a rejected one.)
    if let Some(chk) = open_check {
        if let Err(e) = chk.verdict(&mut ctx.db) {
            ctx.srv.unwatch_all(ctx.cl);
            ctx.db.locks = LockSet::empty();
            ctx.db.all_locked = false;
            return Err(e);
        }
    }
    // WATCH: abort when a watched key was modified, or was live at WATCH time and is gone now
    // (deleted or expired).
    let mut aborted = ctx.cl.info.dirty_cas.load(Ordering::Acquire);
    if !aborted {
        let watched = ctx.cl.watched.clone();
        let saved = ctx.db.index;
        for (d, k, live) in watched {
            ctx.db.index = d;
            if live && !ctx.db.exists(&k) {
                aborted = true;
                break;
            }
        }
        ctx.db.index = saved;
    }
    ctx.srv.unwatch_all(ctx.cl);
    if aborted {
        ctx.db.locks = LockSet::empty();
        ctx.db.all_locked = false;
        ctx.out.null_array();
        return Ok(());
    }
    ctx.out.array(multi.queued.len());
    let propagate = srv.repl.needs_feed() && !srv.repl.is_replica();
    let mut replicated: Vec<(u32, Vec<Vec<u8>>)> = Vec::new();
    for (q, spec) in multi.queued.iter().zip(specs) {
        let Some((spec, idx)) = spec else {
            ctx.out.error("ERR unknown command");
            continue;
        };
        ctx.db.index = ctx.cl.db;
        let name = ctx.name;
        ctx.name = spec.name;
        let started = std::time::Instant::now();
        let dirty_before = ctx.db.dirty;
        ctx.cl.in_exec = true;
        let mark = ctx.out.len();
        let res = (spec.handler)(ctx, q);
        ctx.cl.in_exec = false;
        ctx.name = name;
        // A script's effects, already rewritten, in their place in the transaction.
        replicated.append(&mut ctx.cl.script_effects);
        if propagate && ctx.db.dirty > dirty_before {
            let is_write = spec.flags & flags::WRITE != 0 && res.is_ok();
            replicated.extend(crate::repl::rewrite(
                spec.name,
                is_write,
                q,
                &mut ctx.db,
                &ctx.out.buf[mark..],
            ));
        }
        if ctx.db.dirty > dirty_before && spec.flags & flags::WRITE != 0 {
            for p in key_positions(spec, q) {
                srv.touch_watched(ctx.db.index, &q[p]);
                srv.signal_ready(ctx.db.index, &q[p]);
            }
        }
        if srv.pubsub.has_monitors() && spec.flags & (flags::ADMIN | flags::SKIP_MONITOR) == 0 {
            srv.pubsub.feed_monitors(ctx.db.index, &ctx.cl.info, q);
        }
        let st = &srv.cmd_stats[idx];
        st.record(started.elapsed().as_micros() as u64);
        srv.stats
            .total_commands_processed
            .fetch_add(1, Ordering::Relaxed);
        if let Err(e) = res {
            st.failed_calls.fetch_add(1, Ordering::Relaxed);
            srv.stats.count_error(&e.text());
            ctx.out.error_bytes(&e.bytes());
        }
    }
    srv.repl.propagate_batch(&replicated, true);
    ctx.db.locks = LockSet::empty();
    ctx.db.all_locked = false;
    Ok(())
}
