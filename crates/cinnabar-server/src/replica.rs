//! Replication, replica side: the task that connects to the master (handshake: PING, AUTH,
//! REPLCONF listening-port / capa, PSYNC), loads a full sync's RDB (the `$<len>` form or the
//! diskless `$EOF:<mark>` form; spooled to a temp file in `dir`, then decoded by
//! `cinnabar_rdb::RdbDecoder` with memory bounded by one entry), or continues from a partial
//! sync, then applies the command stream through the normal dispatcher as the "master client"
//! (no replies, offsets counted in bytes), sends `REPLCONF ACK` every second, answers
//! `REPLCONF GETACK`, and reconnects with backoff when the link drops.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use std::io::Write;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use cinnabar_protocol::{ParseLimits, ParseOutcome, Parser, ReplyBuf};

use crate::client::{Client, ClientInfo};
use crate::keyspace::SLOT_COUNT;
use crate::repl::encode_command;
use crate::server::{now_ms, Server};

/// Longest status line accepted during the handshake (Redis's PROTO_INLINE_MAX_SIZE).
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Handshake / sync I/O timeout (Redis's default `repl-timeout`).
const REPL_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts (or stops, with None) replicating. Any previous replica task exits.
pub fn start(srv: &Server, master: Option<(String, u16)>) {
    let gen = srv.repl.set_master(master.clone());
    let Some((host, port)) = master else {
        return;
    };
    let Some(arc) = srv.repl.self_ref.get().and_then(|w| w.upgrade()) else {
        crate::warning!("Replication cannot start: server handle not available");
        return;
    };
    let fut = replica_main(arc, host, port, gen);
    match srv.repl.runtime.get() {
        Some(rt) => {
            rt.spawn(fut);
        }
        None => {
            tokio::spawn(fut);
        }
    }
}

async fn replica_main(srv: Arc<Server>, host: String, port: u16, gen: u64) {
    let mut backoff_ms = 100u64;
    loop {
        if srv.repl.generation.load(Ordering::Acquire) != gen
            || srv.shutdown_requested.load(Ordering::Relaxed)
        {
            return;
        }
        crate::notice!("Connecting to MASTER {}:{}", host, port);
        match sync_once(&srv, &host, port, gen).await {
            Ok(()) => return,
            Err(e) => {
                if srv.repl.generation.load(Ordering::Acquire) != gen {
                    return;
                }
                crate::warning!("Master {}:{} link: {}", host, port, e);
                srv.repl.update_master(|m| {
                    if m.link_up {
                        m.down_since_ms = now_ms();
                    }
                    m.link_up = false;
                    m.sync_in_progress = false;
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(1000);
    }
}

type IoResult<T> = Result<T, String>;

async fn read_line(s: &mut TcpStream, buf: &mut BytesMut) -> IoResult<String> {
    loop {
        if let Some(i) = memchr::memchr(b'\n', buf) {
            let line = buf.split_to(i + 1);
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            return Ok(text);
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err("line too long from master".into());
        }
        let n = tokio::time::timeout(REPL_TIMEOUT, s.read_buf(buf))
            .await
            .map_err(|_| "timeout reading from master".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed by master".into());
        }
    }
}

/// Sends a command and reads one status line (skipping the empty keepalive lines).
async fn command(s: &mut TcpStream, buf: &mut BytesMut, args: &[&[u8]]) -> IoResult<String> {
    s.write_all(&encode_command(args))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let l = read_line(s, buf).await?;
        if !l.is_empty() {
            return Ok(l);
        }
    }
}

async fn sync_once(srv: &Arc<Server>, host: &str, port: u16, gen: u64) -> IoResult<()> {
    let mut s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect((host, port)))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| format!("Error condition on socket for SYNC: {e}"))?;
    let _ = s.set_nodelay(true);
    crate::notice!("MASTER <-> REPLICA sync started");
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let settings = srv.settings();
    let pong = command(&mut s, &mut buf, &[b"PING"]).await?;
    if pong.starts_with('-')
        && !pong.starts_with("-NOAUTH")
        && !pong.starts_with("-NOPERM")
        && !pong.starts_with("-ERR operation not permitted")
    {
        return Err(format!("Error reply to PING from master: '{pong}'"));
    }
    crate::notice!("Master replied to PING, replication can continue...");
    if let Some(pass) = &settings.masterauth {
        let r = match &settings.masteruser {
            Some(u) => command(&mut s, &mut buf, &[b"AUTH", u.as_bytes(), pass.as_bytes()]).await?,
            None => command(&mut s, &mut buf, &[b"AUTH", pass.as_bytes()]).await?,
        };
        if r.starts_with('-') {
            return Err(format!("Unable to AUTH to MASTER: {r}"));
        }
    }
    // replica-announce-port / replica-announce-ip: what the master lists (NAT, containers).
    let lp = if settings.replica_announce_port != 0 {
        settings.replica_announce_port
    } else {
        settings.port
    }
    .to_string();
    let _ = command(
        &mut s,
        &mut buf,
        &[b"REPLCONF", b"listening-port", lp.as_bytes()],
    )
    .await?;
    if let Some(ip) = &settings.replica_announce_ip {
        let r = command(
            &mut s,
            &mut buf,
            &[b"REPLCONF", b"ip-address", ip.as_bytes()],
        )
        .await?;
        if r.starts_with('-') {
            crate::notice!("(Non critical) Master does not understand REPLCONF ip-address: {r}");
        }
    }
    let _ = command(
        &mut s,
        &mut buf,
        &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"],
    )
    .await?;
    // PSYNC with our cached history (our own replid/offset continue a partial sync).
    let (replid, offset) = {
        let id = srv.repl.replid();
        let off = srv.repl.offset();
        (id, off)
    };
    let (psync_id, psync_off) = if srv.repl.has_history() {
        (replid.clone(), (offset + 1).to_string())
    } else {
        ("?".to_string(), "-1".to_string())
    };
    crate::notice!(
        "Trying a partial resynchronization (request {}:{}).",
        psync_id,
        psync_off
    );
    let reply = command(
        &mut s,
        &mut buf,
        &[b"PSYNC", psync_id.as_bytes(), psync_off.as_bytes()],
    )
    .await?;
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut it = rest.split_whitespace();
        let id = it.next().unwrap_or_default().to_string();
        let off: i64 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        crate::notice!("Full resync from master: {}:{}", id, off);
        srv.repl.update_master(|m| {
            m.sync_in_progress = true;
            m.transfer = Some((-1, 0, now_ms()));
        });
        let received = receive_rdb(srv, &mut s, &mut buf, gen).await;
        srv.repl.update_master(|m| m.transfer = None);
        received?;
        srv.repl
            .adopt(&id, off, srv.settings().repl_backlog_size_bytes);
        crate::notice!("MASTER <-> REPLICA sync: Finished with success");
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        if !new_id.is_empty() {
            srv.repl.switch_replid(new_id);
        }
        srv.repl
            .keep_backlog(srv.settings().repl_backlog_size_bytes);
        crate::notice!("Successful partial resynchronization with master.");
        crate::notice!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
    } else {
        return Err(format!("Unexpected reply to PSYNC from master: {reply}"));
    }
    srv.repl.update_master(|m| {
        m.link_up = true;
        m.sync_in_progress = false;
        m.last_io_ms = now_ms();
    });
    stream_loop(srv, &mut s, &mut buf, gen).await
}

/// `n` more bytes of the RDB arrived (INFO `master_sync_read_bytes`).
fn transfer_progress(srv: &Server, n: usize) {
    srv.repl.update_master(|m| {
        if let Some(t) = m.transfer.as_mut() {
            t.1 += n as i64;
            t.2 = now_ms();
        }
    });
}

/// Reads the RDB payload after +FULLRESYNC into a temp file, then loads it.
async fn receive_rdb(
    srv: &Arc<Server>,
    s: &mut TcpStream,
    buf: &mut BytesMut,
    gen: u64,
) -> IoResult<()> {
    let header = loop {
        let l = read_line(s, buf).await?;
        if !l.is_empty() {
            break l;
        }
    };
    let Some(spec) = header.strip_prefix('$') else {
        return Err(format!(
            "Bad protocol from MASTER, the first byte is not '$' (we received '{header}'), are you sure the host and port are right?"
        ));
    };
    let dir = srv.settings().dir.clone();
    let path = dir.join(format!(
        "temp-{}.{}.rdb",
        now_ms() / 1000,
        std::process::id()
    ));
    // std::fs (blocking, small sequential writes): the runtime has no async fs support.
    let mut file = std::fs::File::create(&path).map_err(|e| {
        format!("Opening the temp file needed for MASTER <-> REPLICA synchronization: {e}")
    })?;
    let res = async {
        if let Some(mark) = spec.strip_prefix("EOF:") {
            let mark = mark.as_bytes().to_vec();
            if mark.len() != 40 {
                return Err("bad EOF mark from master".to_string());
            }
            crate::notice!(
                "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to disk"
            );
            // Bytes that came with the `$EOF:` line count as read already.
            let already = buf.len() as i64;
            srv.repl
                .update_master(|m| m.transfer = Some((0, already, now_ms())));
            // Keep the last 40 bytes back until the stream ends with the mark.
            loop {
                if buf.len() >= 40 && buf[buf.len() - 40..] == mark[..] {
                    let body = buf.len() - 40;
                    file.write_all(&buf[..body]).map_err(|e| e.to_string())?;
                    buf.clear();
                    break;
                }
                if buf.len() > 40 + 64 * 1024 {
                    let n = buf.len() - 40;
                    file.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                    buf.advance(n);
                }
                let n = tokio::time::timeout(REPL_TIMEOUT, s.read_buf(buf))
                    .await
                    .map_err(|_| "timeout receiving the RDB".to_string())?
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection lost while receiving the RDB".to_string());
                }
                transfer_progress(srv, n);
            }
        } else {
            let total: u64 = spec
                .trim()
                .parse()
                .map_err(|_| format!("bad RDB length from master: {spec}"))?;
            crate::notice!(
                "MASTER <-> REPLICA sync: receiving {} bytes from master to disk",
                total
            );
            let already = (buf.len() as u64).min(total) as i64;
            srv.repl
                .update_master(|m| m.transfer = Some((total as i64, already, now_ms())));
            let mut left = total;
            loop {
                let take = (buf.len() as u64).min(left) as usize;
                if take > 0 {
                    file.write_all(&buf[..take]).map_err(|e| e.to_string())?;
                    buf.advance(take);
                    left -= take as u64;
                }
                if left == 0 {
                    break;
                }
                let n = tokio::time::timeout(REPL_TIMEOUT, s.read_buf(buf))
                    .await
                    .map_err(|_| "timeout receiving the RDB".to_string())?
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection lost while receiving the RDB".to_string());
                }
                transfer_progress(srv, n.min(left as usize));
            }
        }
        file.sync_all().map_err(|e| e.to_string())?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err(e) = res {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    if srv.repl.generation.load(Ordering::Acquire) != gen {
        let _ = std::fs::remove_file(&path);
        return Err("replication target changed".into());
    }
    crate::notice!("MASTER <-> REPLICA sync: Flushing old data");
    let srv2 = srv.clone();
    let p2 = path.clone();
    srv.repl
        .begin_loading(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
    let loaded = tokio::task::spawn_blocking(move || load_rdb_file(&srv2, &p2)).await;
    srv.repl.end_loading();
    let loaded = loaded.map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&path);
    let n = loaded?;
    crate::notice!("MASTER <-> REPLICA sync: Loading DB in memory ({} keys)", n);
    Ok(())
}

/// Empties every database (replica full sync, cluster FlushData).
pub fn flush_all(srv: &Server) {
    let dbs: Vec<usize> = srv.keyspace.existing_dbs().map(|(i, _)| i).collect();
    for d in dbs {
        let db = srv.keyspace.db(d);
        // An empty database needs no walk over its 16384 slot locks: this keeps the
        // -LOADING window of a replica's first full sync (0 keys) to microseconds, as
        // Redis's is (redis-cli --cluster create checks every node right after REPLICATE).
        if db.key_count() == 0 {
            continue;
        }
        for slot in 0..SLOT_COUNT as u16 {
            let mut g = db.lock(slot);
            if g.is_empty() {
                continue;
            }
            let n = g.len() as i64;
            let v = g.volatile() as i64;
            g.clear();
            db.adjust_keys(-n);
            db.adjust_volatile(-v);
        }
    }
    srv.touch_all_watched(None);
}

/// Flushes the keyspace and loads an RDB file; returns the number of keys loaded.
fn load_rdb_file(srv: &Server, path: &std::path::Path) -> IoResult<u64> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map(|m| m.len()).ok();
    let (loaded, _expired) = crate::persist::rdbfile::load_rdb_then(
        srv,
        std::io::BufReader::new(f),
        len,
        "MASTER synchronization DB",
        || flush_all(srv),
    )
    .map_err(|e| format!("Failed trying to load the MASTER synchronization DB from disk: {e}"))?;
    Ok(loaded)
}

/// Applies the master's command stream until the link drops or REPLICAOF changes.
async fn stream_loop(
    srv: &Arc<Server>,
    s: &mut TcpStream,
    buf: &mut BytesMut,
    gen: u64,
) -> IoResult<()> {
    let id = srv.next_client_id.fetch_add(1, Ordering::Relaxed);
    let addr = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let laddr = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let info = Arc::new(ClientInfo::new(id, addr, laddr, -1, now_ms(), false));
    // Listed in CLIENT LIST (flags=M, type master) and counted in connected_clients while
    // the link streams, as Redis's server.master client; CLIENT KILL TYPE MASTER drops it.
    info.is_master_link.store(true, Ordering::Relaxed);
    struct Registered<'a>(&'a Server, u64);
    impl Drop for Registered<'_> {
        fn drop(&mut self) {
            self.0.clients.lock().remove(&self.1);
            self.0.connected_clients.fetch_sub(1, Ordering::AcqRel);
        }
    }
    srv.clients.lock().insert(id, info.clone());
    srv.connected_clients.fetch_add(1, Ordering::AcqRel);
    let _registered = Registered(srv, id);
    let mut mc = Client::new(info.clone(), true);
    mc.is_master = true;
    let mut parser = Parser::new();
    let mut args: Vec<Bytes> = Vec::new();
    let mut out = ReplyBuf::new(cinnabar_protocol::Resp::V2);
    let mut ack_tick = tokio::time::interval(Duration::from_secs(1));
    let settings = srv.settings();
    let limits = ParseLimits {
        max_bulk_len_bytes: settings.proto_max_bulk_len_bytes,
        authenticated: true,
    };
    loop {
        // Apply every complete command already buffered.
        loop {
            let before = buf.len();
            match parser.parse(buf, &limits, &mut args) {
                Ok(ParseOutcome::Command) => {
                    let consumed = before - buf.len();
                    if args.len() >= 2
                        && args[0].eq_ignore_ascii_case(b"REPLCONF")
                        && args[1].eq_ignore_ascii_case(b"GETACK")
                    {
                        let off = srv.repl.offset().to_string();
                        s.write_all(&encode_command(&[b"REPLCONF", b"ACK", off.as_bytes()]))
                            .await
                            .map_err(|e| e.to_string())?;
                        srv.repl.feed_from_master(consumed, &[]);
                        continue;
                    }
                    crate::cmd::execute(srv, &mut mc, &args, &mut out, now_ms());
                    out.clear();
                    srv.repl.feed_from_master(consumed, &args);
                }
                Ok(ParseOutcome::Incomplete) => break,
                Err(e) => return Err(format!("protocol error from master: {}", e.message())),
            }
        }
        if buf.len() as u64 > settings.client_query_buffer_limit_bytes {
            return Err("master query buffer over client-query-buffer-limit".into());
        }
        tokio::select! {
            r = tokio::time::timeout(REPL_TIMEOUT, s.read_buf(buf)) => {
                let n = r.map_err(|_| "MASTER timeout: no data nor PING received...".to_string())?
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("Connection with master lost.".into());
                }
                srv.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            _ = ack_tick.tick() => {
                if srv.repl.generation.load(Ordering::Acquire) != gen {
                    return Ok(());
                }
                let off = srv.repl.offset().to_string();
                s.write_all(&encode_command(&[b"REPLCONF", b"ACK", off.as_bytes()]))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            _ = srv.shutdown_notify.notified() => return Ok(()),
            _ = info.kill_notify.notified() => {
                return Err("the master link was killed (CLIENT KILL)".into());
            }
        }
    }
}
