//! Moving keys between nodes: DUMP, RESTORE, RESTORE-ASKING and MIGRATE (Redis 7.0's
//! `cluster.c` semantics), plus the per-server cache of MIGRATE's outgoing connections.
//!
//! MIGRATE runs in the calling worker with the key's slot locked for the whole transfer, the
//! way Redis blocks its only thread: a concurrent command on those keys runs wholly before
//! (and its result moves) or wholly after (and is redirected with `-ASK`). The connection is
//! blocking with the command's timeout on connect, every write and every read.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use cinnabar_protocol::parser::parse_i64;
use cinnabar_rdb::{dump_payload, restore_payload, DecodeOptions, RdbError};

use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::keyspace::access_clock_s;
use crate::notify::{self, notify};

/// Most cached MIGRATE connections (Redis's `MIGRATE_SOCKET_CACHE_ITEMS`).
pub const MIGRATE_SOCKET_CACHE_ITEMS: usize = 64;
/// A cached connection idle longer than this is closed (`MIGRATE_SOCKET_CACHE_TTL`, 10 s).
pub const MIGRATE_SOCKET_CACHE_TTL_MS: u64 = 10_000;
/// Longest reply line read from the target (AUTH / SELECT / RESTORE replies are short).
const MIGRATE_REPLY_LINE_MAX_BYTES: usize = 64 * 1024;

struct CachedConn {
    reader: BufReader<TcpStream>,
    /// Database the connection last SELECTed (-1: unknown, SELECT next time).
    last_dbid: i64,
    last_use: Instant,
}

/// MIGRATE's connections by `host:port`. A connection is taken out while in use, so two
/// concurrent MIGRATEs to one target use two connections.
#[derive(Default)]
pub struct MigrateCache {
    conns: Mutex<HashMap<String, CachedConn>>,
}

impl MigrateCache {
    fn take(&self, name: &str) -> Option<CachedConn> {
        let c = self.conns.lock().remove(name)?;
        (c.last_use.elapsed() < Duration::from_millis(MIGRATE_SOCKET_CACHE_TTL_MS)).then_some(c)
    }

    fn put(&self, name: String, mut c: CachedConn) {
        c.last_use = Instant::now();
        let mut m = self.conns.lock();
        let ttl = Duration::from_millis(MIGRATE_SOCKET_CACHE_TTL_MS);
        m.retain(|_, c| c.last_use.elapsed() < ttl);
        if m.len() >= MIGRATE_SOCKET_CACHE_ITEMS {
            // Full: drop one (Redis drops a random one).
            if let Some(k) = m.keys().next().cloned() {
                m.remove(&k);
            }
        }
        m.insert(name, c);
    }

    /// Number of cached connections (INFO / tests).
    pub fn len(&self) -> usize {
        self.conns.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn payload_error(e: &RdbError) -> CmdError {
    match e {
        RdbError::UnsupportedVersion(_) | RdbError::ChecksumMismatch { .. } => {
            CmdError::err("DUMP payload version or checksum are wrong")
        }
        _ => CmdError::err("Bad data format"),
    }
}

/// DUMP key.
pub fn dump(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(e) = ctx.db.lookup_read(&args[1]) else {
        ctx.out.null();
        return Ok(());
    };
    let v = crate::repl::to_rdb_value(&e.value);
    let opts = crate::persist::rdbfile::encode_options(ctx.srv);
    let payload = dump_payload(&v, &opts).map_err(|e| CmdError::err(e.to_string()))?;
    ctx.out.bulk(&payload);
    Ok(())
}

/// RESTORE / RESTORE-ASKING key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f].
pub fn restore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut replace, mut absttl) = (false, false);
    let (mut idle_s, mut freq) = (-1i64, -1i64);
    let mut j = 4;
    while j < args.len() {
        let a = &args[j];
        let more = args.len() - j - 1;
        if a.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if a.eq_ignore_ascii_case(b"absttl") {
            absttl = true;
        } else if a.eq_ignore_ascii_case(b"idletime") && more >= 1 && freq == -1 {
            idle_s = parse_i64(&args[j + 1]).ok_or(CmdError::NotInteger)?;
            if idle_s < 0 {
                return Err(CmdError::err("Invalid IDLETIME value, must be >= 0"));
            }
            j += 1;
        } else if a.eq_ignore_ascii_case(b"freq") && more >= 1 && idle_s == -1 {
            freq = parse_i64(&args[j + 1]).ok_or(CmdError::NotInteger)?;
            if !(0..=255).contains(&freq) {
                return Err(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let key = &args[1];
    if !replace && ctx.db.lookup_write(key).is_some() {
        return Err(CmdError::msg("BUSYKEY Target key name already exists."));
    }
    let mut ttl = parse_i64(&args[2]).ok_or(CmdError::NotInteger)?;
    if ttl < 0 {
        return Err(CmdError::err("Invalid TTL value, must be >= 0"));
    }
    // verifyDumpPayload: shorter than the 10-byte footer is a version/checksum error.
    if args[3].len() < 10 {
        return Err(CmdError::err("DUMP payload version or checksum are wrong"));
    }
    let restored =
        restore_payload(&args[3], &DecodeOptions::default()).map_err(|e| payload_error(&e))?;
    let settings = ctx.srv.settings();
    let Some(value) = crate::repl::from_rdb_value(restored.value, &settings) else {
        return Err(CmdError::err("Bad data format"));
    };
    let deleted = replace && ctx.db.remove(key).is_some();
    if ttl != 0 && !absttl {
        ttl = ttl.saturating_add(ctx.db.now_ms);
    }
    // checkAlreadyExpired: a master drops a key whose TTL has passed (replicas and the
    // loader keep it; their master sends the DEL).
    let keep_expired = ctx.cl.is_master || ctx.srv.repl.is_replica();
    if ttl != 0 && ttl <= ctx.db.now_ms && !keep_expired {
        if deleted {
            notify(ctx, notify::GENERIC, "del", key);
            ctx.db.propagate_as = Some(vec![b"DEL".to_vec(), key.to_vec()]);
        }
        ctx.out.ok();
        return Ok(());
    }
    ctx.db.set(key, value, ttl);
    // objectSetLRUOrLFU: IDLETIME sets the LRU clock, FREQ the LFU counter (when an LFU
    // policy is selected).
    if idle_s >= 0 || (freq >= 0 && crate::evict::lfu_on()) {
        if let Some(e) = ctx.db.lookup_write(key) {
            if idle_s >= 0 {
                e.access_s = access_clock_s().saturating_sub(idle_s.min(u32::MAX as i64) as u32);
            } else {
                e.lfu = crate::evict::lfu_with_counter(freq as u32);
            }
        }
    }
    if ttl != 0 && !absttl {
        // Propagated with the absolute expiry, as Redis does.
        let mut c: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        c[2] = ttl.to_string().into_bytes();
        c.push(b"ABSTTL".to_vec());
        ctx.db.propagate_as = Some(c);
    }
    notify(ctx, notify::GENERIC, "restore", key);
    ctx.out.ok();
    Ok(())
}

/// Keys of MIGRATE (`migrateGetKeys`): argument 3, or everything after `KEYS` when argument 3
/// is empty (AUTH / AUTH2 arguments are skipped while looking for it).
pub fn migrate_keys(args: &[Bytes]) -> smallvec::SmallVec<[usize; 4]> {
    let mut first = 3;
    let mut num = 1;
    let mut i = 6;
    while i < args.len() {
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"auth") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"auth2") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"keys") {
            if args.get(3).is_some_and(|k| k.is_empty()) {
                first = i + 1;
                num = args.len() - first;
            }
            break;
        }
        i += 1;
    }
    (first..first + num).filter(|&p| p < args.len()).collect()
}

enum Failure {
    /// Nothing was acknowledged and the error was not a timeout: one retry on a new socket.
    Write {
        timed_out: bool,
    },
    Read {
        timed_out: bool,
    },
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

enum ConnectError {
    /// No address, or `connect()` itself failed at once (e.g. network unreachable):
    /// `IOERR error or timeout connecting to the client`.
    Connecting,
    /// Refused or timed out: Redis's blocking connect ignores the result of its wait, so the
    /// failure surfaces on the first write (`... writing to target instance`, after one retry).
    Refused,
}

fn connect(host: &str, port: &str, timeout: Duration) -> Result<CachedConn, ConnectError> {
    let port: u16 = port.parse().map_err(|_| ConnectError::Connecting)?;
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|_| ConnectError::Connecting)?;
    let mut refused = false;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let conn_err = |_| ConnectError::Connecting;
                s.set_read_timeout(Some(timeout)).map_err(conn_err)?;
                s.set_write_timeout(Some(timeout)).map_err(conn_err)?;
                return Ok(CachedConn {
                    reader: BufReader::new(s),
                    last_dbid: -1,
                    last_use: Instant::now(),
                });
            }
            Err(e) => refused |= timed_out(&e) || e.kind() == std::io::ErrorKind::ConnectionRefused,
        }
    }
    Err(if refused {
        ConnectError::Refused
    } else {
        ConnectError::Connecting
    })
}

fn push_cmd(buf: &mut Vec<u8>, parts: &[&[u8]]) {
    buf.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for p in parts {
        buf.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        buf.extend_from_slice(p);
        buf.extend_from_slice(b"\r\n");
    }
}

/// One reply line without its CRLF; a status or error (the only replies expected).
fn read_line(r: &mut BufReader<TcpStream>) -> Result<Vec<u8>, std::io::Error> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MIGRATE_REPLY_LINE_MAX_BYTES as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "short reply",
        ));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw]
/// [KEYS key ...].
pub fn migrate(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (mut copy, mut replace) = (false, false);
    let mut auth: Option<(Option<Bytes>, Bytes)> = None;
    let (mut first_key, mut num_keys) = (3usize, 1usize);
    let mut j = 6;
    while j < args.len() {
        let a = &args[j];
        let more = args.len() - 1 - j;
        if a.eq_ignore_ascii_case(b"copy") {
            copy = true;
        } else if a.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if a.eq_ignore_ascii_case(b"auth") {
            if more == 0 {
                return Err(CmdError::Syntax);
            }
            j += 1;
            auth = Some((None, args[j].clone()));
        } else if a.eq_ignore_ascii_case(b"auth2") {
            if more < 2 {
                return Err(CmdError::Syntax);
            }
            auth = Some((Some(args[j + 1].clone()), args[j + 2].clone()));
            j += 2;
        } else if a.eq_ignore_ascii_case(b"keys") {
            if !args[3].is_empty() {
                return Err(CmdError::err(
                    "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            first_key = j + 1;
            num_keys = args.len() - j - 1;
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let mut timeout_ms = parse_i64(&args[5]).ok_or(CmdError::NotInteger)?;
    let dbid = parse_i64(&args[4]).ok_or(CmdError::NotInteger)?;
    if timeout_ms <= 0 {
        timeout_ms = 1000;
    }
    let timeout = Duration::from_millis(timeout_ms as u64);

    // The keys present, with their payloads and remaining TTLs.
    let now = ctx.db.now_ms;
    let opts = crate::persist::rdbfile::encode_options(ctx.srv);
    let mut items: Vec<(Bytes, i64, Vec<u8>)> = Vec::new();
    for k in &args[first_key..first_key + num_keys] {
        let Some(e) = ctx.db.lookup_read(k) else {
            continue;
        };
        let ttl = if e.expire_at_ms != 0 {
            let t = e.expire_at_ms - now;
            if t < 0 {
                continue;
            }
            t.max(1)
        } else {
            0
        };
        let v = crate::repl::to_rdb_value(&e.value);
        let payload = dump_payload(&v, &opts).map_err(|e| CmdError::err(e.to_string()))?;
        items.push((k.clone(), ttl, payload));
    }
    if items.is_empty() {
        ctx.out.simple("NOKEY");
        return Ok(());
    }

    let host = String::from_utf8_lossy(&args[1]).into_owned();
    let port = String::from_utf8_lossy(&args[2]).into_owned();
    let name = format!("{host}:{port}");
    let restore_cmd: &[u8] = if ctx.srv.is_cluster() {
        b"RESTORE-ASKING"
    } else {
        b"RESTORE"
    };
    let cache = &ctx.srv.migrate_cache;
    let mut may_retry = true;
    loop {
        let mut conn = match cache.take(&name) {
            Some(c) => c,
            None => match connect(&host, &port, timeout) {
                Ok(c) => c,
                Err(ConnectError::Connecting) => {
                    return Err(CmdError::msg(
                        "IOERR error or timeout connecting to the client",
                    ))
                }
                Err(ConnectError::Refused) => {
                    if may_retry {
                        may_retry = false;
                        continue;
                    }
                    return Err(CmdError::msg(
                        "IOERR error or timeout writing to target instance",
                    ));
                }
            },
        };
        let select = conn.last_dbid != dbid;
        let mut buf = Vec::new();
        if let Some((user, pw)) = &auth {
            match user {
                Some(u) => push_cmd(&mut buf, &[b"AUTH", u, pw]),
                None => push_cmd(&mut buf, &[b"AUTH", pw]),
            }
        }
        let dbid_text = dbid.to_string();
        if select {
            push_cmd(&mut buf, &[b"SELECT", dbid_text.as_bytes()]);
        }
        for (k, ttl, payload) in &items {
            let ttl_text = ttl.to_string();
            let mut parts: Vec<&[u8]> = vec![restore_cmd, k, ttl_text.as_bytes(), payload];
            if replace {
                parts.push(b"REPLACE");
            }
            push_cmd(&mut buf, &parts);
        }
        let outcome = exchange(&mut conn, &buf, auth.is_some(), select, items.len());
        let (acked, target_error, failure) = match outcome {
            Ok(r) => (r.acked, r.target_error, None),
            Err((acked, f)) => (acked, None, Some(f)),
        };
        // Keys the target acknowledged leave this node (unless COPY), replicated as DEL.
        if !copy && !acked.is_empty() {
            let mut del = vec![b"DEL".to_vec()];
            for &i in &acked {
                let k = &items[i].0;
                if ctx.db.remove(k).is_some() {
                    notify(ctx, notify::GENERIC, "del", k);
                    del.push(k.to_vec());
                }
            }
            if del.len() > 1 {
                ctx.db.propagate_as = Some(del);
            }
        }
        match failure {
            None => {
                if let Some(e) = target_error {
                    conn.last_dbid = -1;
                    cache.put(name, conn);
                    return Err(CmdError::err(format!(
                        "Target instance replied with error: {}",
                        String::from_utf8_lossy(&e[1..])
                    )));
                }
                conn.last_dbid = dbid;
                cache.put(name, conn);
                ctx.out.ok();
                return Ok(());
            }
            Some(f) => {
                drop(conn); // closes the socket: the next MIGRATE reconnects and SELECTs
                let (writing, t_out) = match f {
                    Failure::Write { timed_out } => (true, timed_out),
                    Failure::Read { timed_out } => (false, timed_out),
                };
                if may_retry && acked.is_empty() && !t_out {
                    may_retry = false;
                    continue;
                }
                return Err(CmdError::msg(format!(
                    "IOERR error or timeout {} to target instance",
                    if writing { "writing" } else { "reading" }
                )));
            }
        }
    }
}

struct Exchanged {
    /// Indexes of the RESTOREs the target acknowledged.
    acked: Vec<usize>,
    /// The first error line the target sent (with its leading `-`).
    target_error: Option<Vec<u8>>,
}

/// Sends the pipeline and reads the AUTH, SELECT and RESTORE replies. On a socket error,
/// returns the RESTOREs acknowledged so far.
fn exchange(
    conn: &mut CachedConn,
    buf: &[u8],
    with_auth: bool,
    with_select: bool,
    n: usize,
) -> Result<Exchanged, (Vec<usize>, Failure)> {
    if let Err(e) = conn.reader.get_mut().write_all(buf) {
        return Err((
            Vec::new(),
            Failure::Write {
                timed_out: timed_out(&e),
            },
        ));
    }
    let read_fail = |e: std::io::Error| Failure::Read {
        timed_out: timed_out(&e),
    };
    let mut target_error = None;
    for wanted in [with_auth, with_select] {
        if wanted {
            let line = conn.reader_line().map_err(|e| (Vec::new(), read_fail(e)))?;
            if line.first() == Some(&b'-') && target_error.is_none() {
                target_error = Some(line);
            }
        }
    }
    // An AUTH / SELECT error fails every key, as in Redis; otherwise each RESTORE stands
    // alone (keys after a BUSYKEY are still moved).
    let preamble_failed = target_error.is_some();
    let mut acked = Vec::new();
    for i in 0..n {
        let line = match conn.reader_line() {
            Ok(l) => l,
            Err(e) => return Err((acked, read_fail(e))),
        };
        if preamble_failed || line.first() == Some(&b'-') {
            if target_error.is_none() {
                target_error = Some(line);
            }
        } else {
            acked.push(i);
        }
    }
    Ok(Exchanged {
        acked,
        target_error,
    })
}

impl CachedConn {
    fn reader_line(&mut self) -> Result<Vec<u8>, std::io::Error> {
        read_line(&mut self.reader)
    }
}
