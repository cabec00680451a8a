//! Networking and the threading model: N worker threads, each running its own single-threaded
//! tokio runtime with its own `SO_REUSEPORT` listener(s), so the kernel spreads connections and a
//! connection lives on one thread for its whole life. A connection task reads a batch, parses
//! and executes every complete command in it (commands lock only the slots they touch), and
//! writes all replies with one write — replies are flushed once per read batch.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use cinnabar_protocol::{ParseLimits, ParseOutcome, Parser, ReplyBuf, Resp};

use crate::client::{Client, ClientInfo};
use crate::server::{now_ms, Server};
use crate::settings::Settings;

/// Replies are written out mid-batch once they exceed this many bytes, bounding memory for
/// long pipelines (the rest of the batch continues after the write).
const FLUSH_THRESHOLD_BYTES: usize = 64 * 1024;
/// Read-buffer growth step.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Resolves the `bind` directive into socket addresses: `*` is every IPv4 address, `::*` every
/// IPv6 address; a leading `-` marks an address that may be unavailable.
pub fn bind_addrs(bind: &[String], port: u16) -> Vec<(SocketAddr, bool)> {
    let mut v = Vec::new();
    for b in bind {
        let (optional, a) = match b.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, b.as_str()),
        };
        let ip: std::net::IpAddr = match a {
            "*" => std::net::Ipv4Addr::UNSPECIFIED.into(),
            "::*" => std::net::Ipv6Addr::UNSPECIFIED.into(),
            other => match other.parse() {
                Ok(ip) => ip,
                Err(_) => continue,
            },
        };
        v.push((SocketAddr::new(ip, port), optional));
    }
    v
}

/// Creates one listening socket with SO_REUSEPORT (one per worker thread and address).
pub fn make_listener(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog.max(1))?;
    Ok(s.into())
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Accepts TCP connections forever on one listener.
pub async fn accept_loop(srv: Arc<Server>, listener: tokio::net::TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                crate::warning!("Accepting client connection: {}", e);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let settings = srv.settings();
        let _ = stream.set_nodelay(true);
        if settings.tcp_keepalive_s > 0 {
            let sock = socket2::SockRef::from(&stream);
            let ka = socket2::TcpKeepalive::new()
                .with_time(std::time::Duration::from_secs(settings.tcp_keepalive_s));
            let _ = sock.set_tcp_keepalive(&ka);
        }
        let local = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let fd = {
            use std::os::fd::AsRawFd;
            stream.as_raw_fd()
        };
        let protected = settings.protected_mode
            && settings.requirepass.is_none()
            && settings.bind == ["*", "-::*"]
            && !is_loopback(&peer);
        tokio::spawn(serve(
            srv.clone(),
            stream,
            fmt_addr(&peer),
            local,
            fd,
            false,
            protected,
        ));
    }
}

fn fmt_addr(a: &SocketAddr) -> String {
    match a {
        SocketAddr::V4(v) => format!("{}:{}", v.ip(), v.port()),
        SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
    }
}

/// Accepts unix-socket connections forever.
pub async fn accept_unix(srv: Arc<Server>, listener: tokio::net::UnixListener, path: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let fd = {
            use std::os::fd::AsRawFd;
            stream.as_raw_fd()
        };
        tokio::spawn(serve(
            srv.clone(),
            stream,
            format!("{path}:0"),
            path.clone(),
            fd,
            true,
            false,
        ));
    }
}

const PROTECTED_MODE_MSG: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    srv: Arc<Server>,
    mut stream: S,
    addr: String,
    laddr: String,
    fd: i32,
    is_unix: bool,
    protected: bool,
) {
    srv.stats
        .total_connections_received
        .fetch_add(1, Ordering::Relaxed);
    if protected {
        let _ = stream.write_all(PROTECTED_MODE_MSG.as_bytes()).await;
        srv.stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        return;
    }
    let settings = srv.settings();
    let connected = srv.connected_clients.fetch_add(1, Ordering::AcqRel) + 1;
    if connected > settings.maxclients {
        srv.connected_clients.fetch_sub(1, Ordering::AcqRel);
        srv.stats
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    }
    let id = srv.next_client_id.fetch_add(1, Ordering::Relaxed);
    let info = Arc::new(ClientInfo::new(id, addr, laddr, fd, now_ms(), is_unix));
    srv.clients.lock().insert(id, info.clone());
    let mut client = Client::new(info.clone(), settings.requirepass.is_none());
    connection_loop(&srv, &mut stream, &mut client, settings).await;
    crate::cmd::connection::drop_client_state(&srv, &mut client);
    srv.clients.lock().remove(&id);
    srv.connected_clients.fetch_sub(1, Ordering::AcqRel);
}

enum Wake {
    Read(std::io::Result<usize>),
    Push(Option<Bytes>),
    Killed,
    Shutdown,
    Idle,
}

async fn connection_loop<S: AsyncRead + AsyncWrite + Unpin>(
    srv: &Arc<Server>,
    stream: &mut S,
    client: &mut Client,
    mut settings: Arc<Settings>,
) {
    let mut version = srv.settings_version.load(Ordering::Acquire);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut out = ReplyBuf::new(Resp::V2);
    let mut parser = Parser::new();
    let mut args: Vec<Bytes> = Vec::with_capacity(8);
    let info = client.info.clone();
    // When the reply buffer first went over the soft limit (0 = it is not over).
    let mut soft_since_ms: i64 = 0;
    // Created once per connection: re-creating them per read costs a lock on the shared Notify.
    let killed = info.kill_notify.notified();
    tokio::pin!(killed);
    let shutdown = srv.shutdown_notify.notified();
    tokio::pin!(shutdown);
    let idle_sleep = tokio::time::sleep(std::time::Duration::from_secs(3600));
    tokio::pin!(idle_sleep);
    loop {
        let want = parser
            .pending_need_bytes()
            .saturating_sub(rbuf.len())
            .max(READ_CHUNK_BYTES);
        if rbuf.capacity() - rbuf.len() < want / 2 {
            rbuf.reserve(want);
        }
        let idle = settings.timeout_s;
        if idle > 0 {
            idle_sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + std::time::Duration::from_secs(idle));
        }
        let wake = tokio::select! {
            biased;
            r = stream.read_buf(&mut rbuf) => Wake::Read(r),
            m = recv_push(&mut client.push_rx) => Wake::Push(m),
            _ = &mut killed => Wake::Killed,
            _ = &mut shutdown => Wake::Shutdown,
            _ = &mut idle_sleep, if idle > 0 => Wake::Idle,
        };
        let n = match wake {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) | Wake::Killed | Wake::Shutdown => return,
            Wake::Idle => {
                crate::verbose!("Closing idle client");
                return;
            }
            Wake::Read(Ok(n)) => n,
            Wake::Push(None) => {
                client.push_rx = None;
                continue;
            }
            Wake::Push(Some(frame)) => {
                // Deliver this frame and whatever else is queued (bounded per round).
                let mut taken = frame.len();
                out.raw(&frame);
                if let Some(rx) = client.push_rx.as_mut() {
                    while out.len() < FLUSH_THRESHOLD_BYTES {
                        match rx.try_recv() {
                            Ok(f) => {
                                taken += f.len();
                                out.raw(&f);
                            }
                            Err(_) => break,
                        }
                    }
                }
                let r = flush(srv, stream, &mut out).await;
                if let Some(q) = &client.push {
                    q.written(taken);
                }
                if r.is_err() || info.killed.load(Ordering::Relaxed) {
                    return;
                }
                continue;
            }
        };
        if info.killed.load(Ordering::Relaxed) {
            return;
        }
        srv.stats
            .net_input_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        let v = srv.settings_version.load(Ordering::Acquire);
        if v != version {
            version = v;
            settings = srv.settings();
        }
        let now = now_ms();
        info.last_interaction_ms.store(now, Ordering::Relaxed);
        let limits = |c: &Client| ParseLimits {
            max_bulk_len_bytes: settings.proto_max_bulk_len_bytes,
            authenticated: c.authenticated,
        };
        // Commands left in the window whose key lookups were prefetched (see `prefetch`).
        let mut prefetched_ahead = 0usize;
        loop {
            if prefetched_ahead == 0 {
                prefetched_ahead = crate::prefetch::window(&srv.keyspace, client.db, &rbuf).max(1);
            }
            prefetched_ahead -= 1;
            if rbuf.len() as u64 > settings.client_query_buffer_limit_bytes {
                crate::warning!(
                    "Closing client that reached max query buffer length: id={} addr={} qbuf={} (qbuf initial bytes: {:?})",
                    client.id,
                    info.addr,
                    rbuf.len(),
                    String::from_utf8_lossy(&rbuf[..rbuf.len().min(64)])
                );
                srv.stats
                    .client_qbuf_limit_disconnections
                    .fetch_add(1, Ordering::Relaxed);
                let _ = flush(srv, stream, &mut out).await;
                return;
            }
            match parser.parse(&mut rbuf, &limits(client), &mut args) {
                Ok(ParseOutcome::Command) => {
                    let mut now = now;
                    if srv.pause_until_ms.load(Ordering::Relaxed) != 0
                        && wait_if_paused(srv, &args).await
                    {
                        now = now_ms();
                    }
                    crate::cmd::execute(srv, client, &args, &mut out, now);
                    if let Some(op) = client.pending_async.take() {
                        if !crate::repl::run_async(srv, stream, client, &mut rbuf, &mut out, op)
                            .await
                        {
                            return;
                        }
                    }
                    if client.block.is_some() {
                        if flush(srv, stream, &mut out).await.is_err() {
                            return;
                        }
                        if !wait_blocked(
                            srv,
                            stream,
                            client,
                            &mut rbuf,
                            &mut out,
                            killed.as_mut(),
                            shutdown.as_mut(),
                        )
                        .await
                        {
                            return;
                        }
                    }
                    if client.close_after_reply {
                        let _ = flush(srv, stream, &mut out).await;
                        return;
                    }
                    if out.len() >= FLUSH_THRESHOLD_BYTES {
                        // Hand the socket what it takes now, keep executing; a client that
                        // does not read lets the reply buffer grow up to its limit.
                        if write_now(srv, stream, &mut out).is_err() {
                            return;
                        }
                        if over_output_limit(srv, client, &settings, &out, &mut soft_since_ms, now)
                        {
                            return;
                        }
                    }
                }
                Ok(ParseOutcome::Incomplete) => break,
                Err(e) => {
                    let msg = e.message();
                    srv.stats.count_error(&format!("ERR {msg}"));
                    out.error(&format!("ERR {msg}"));
                    let _ = flush(srv, stream, &mut out).await;
                    crate::verbose!(
                        "Protocol error ({}) from client: id={} addr={}",
                        msg,
                        client.id,
                        info.addr
                    );
                    return;
                }
            }
        }
        info.qbuf_bytes.store(rbuf.len() as u64, Ordering::Relaxed);
        if over_output_limit(srv, client, &settings, &out, &mut soft_since_ms, now) {
            return;
        }
        soft_since_ms = 0;
        if !out.is_empty() && flush(srv, stream, &mut out).await.is_err() {
            return;
        }
        if srv.shutdown_requested.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// Writes as much of `out` as the socket accepts right now, without waiting.
fn write_now<S: AsyncWrite + Unpin>(
    srv: &Server,
    stream: &mut S,
    out: &mut ReplyBuf,
) -> std::io::Result<()> {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    aof_barrier(srv);
    let mut cx = Context::from_waker(Waker::noop());
    let mut written = 0;
    while written < out.buf.len() {
        match Pin::new(&mut *stream).poll_write(&mut cx, &out.buf[written..]) {
            Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    srv.stats
        .net_output_bytes
        .fetch_add(written as u64, Ordering::Relaxed);
    out.buf.drain(..written);
    Ok(())
}

/// `client-output-buffer-limit` for normal clients: true when the connection must be closed
/// (hard limit exceeded, or soft limit exceeded for longer than its seconds).
fn over_output_limit(
    srv: &Server,
    client: &Client,
    settings: &Settings,
    out: &ReplyBuf,
    soft_since_ms: &mut i64,
    now_ms: i64,
) -> bool {
    let lim = settings.output_limit_normal;
    let pending = out.len() as u64;
    client.info.omem_bytes.store(pending, Ordering::Relaxed);
    let hard = lim.hard_bytes > 0 && pending >= lim.hard_bytes;
    let mut soft = false;
    if lim.soft_bytes > 0 && pending >= lim.soft_bytes {
        if *soft_since_ms == 0 {
            *soft_since_ms = now_ms;
        } else if (now_ms - *soft_since_ms) as u64 / 1000 > lim.soft_seconds {
            soft = true;
        }
    } else {
        *soft_since_ms = 0;
    }
    if hard || soft {
        crate::warning!(
            "Client id={} addr={} laddr={} fd={} omem={} scheduled to be closed ASAP for overcoming of output buffer limits.",
            client.id,
            client.info.addr,
            client.info.laddr,
            client.info.fd,
            pending
        );
        srv.stats
            .client_outbuf_limit_disconnections
            .fetch_add(1, Ordering::Relaxed);
        return true;
    }
    false
}

/// How often a blocked client re-checks that its keys' slot is still served here.
const BLOCKED_CLUSTER_CHECK_MS: u64 = 1000;

/// Waits while the client is blocked (BLPOP & co.): until a write wakes it and its command
/// can be served, its timeout passes, CLIENT UNBLOCK, or the connection goes away. Input that
/// arrives meanwhile is buffered, not executed. Returns false when the connection must close.
async fn wait_blocked<S: AsyncRead + AsyncWrite + Unpin>(
    srv: &Server,
    stream: &mut S,
    client: &mut Client,
    rbuf: &mut BytesMut,
    out: &mut ReplyBuf,
    mut killed: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    mut shutdown: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
) -> bool {
    use crate::cmd::blocking::TimeoutReply;
    let Some(req) = client.block.take() else {
        return true;
    };
    let info = client.info.clone();
    info.unblock_req.store(0, Ordering::Release);
    srv.block_register(req.db, &req.keys, &info);
    let timeout_reply = |out: &mut ReplyBuf| match req.timeout_reply {
        TimeoutReply::NullArray => out.null_array(),
        TimeoutReply::Null => out.null(),
    };
    let mut served = false;
    let keep = loop {
        let wait_ms = if req.deadline_ms > 0 {
            (req.deadline_ms - now_ms()).max(0) as u64
        } else {
            0
        };
        enum Ev {
            Woken,
            Timeout,
            Input,
            Gone,
            ClusterCheck,
        }
        let ev = tokio::select! {
            biased;
            _ = info.block_notify.notified() => Ev::Woken,
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait_ms)), if req.deadline_ms > 0 => Ev::Timeout,
            r = stream.read_buf(rbuf) => match r {
                Ok(0) | Err(_) => Ev::Gone,
                Ok(_) => Ev::Input,
            },
            _ = killed.as_mut() => Ev::Gone,
            _ = shutdown.as_mut() => Ev::Gone,
            _ = tokio::time::sleep(std::time::Duration::from_millis(BLOCKED_CLUSTER_CHECK_MS)), if srv.cluster.is_some() => Ev::ClusterCheck,
        };
        match ev {
            Ev::Woken => {
                match info.unblock_req.swap(0, Ordering::AcqRel) {
                    1 => {
                        timeout_reply(out);
                        break true;
                    }
                    2 => {
                        out.error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
                        break true;
                    }
                    _ => {}
                }
                crate::cmd::execute(srv, client, &req.args, out, now_ms());
                if client.block.take().is_some() {
                    continue; // someone else got the data first: keep waiting, same deadline
                }
                served = true;
                break true;
            }
            Ev::Timeout => {
                timeout_reply(out);
                break true;
            }
            Ev::Input => {
                if rbuf.len() as u64 > srv.settings().client_query_buffer_limit_bytes {
                    break false;
                }
            }
            Ev::Gone => break false,
            Ev::ClusterCheck => {
                if let Some(e) = crate::cmd::blocked_redirect(srv, client, &req.keys) {
                    srv.stats.count_error(&e.text());
                    out.error_bytes(&e.bytes());
                    break true;
                }
            }
        }
    };
    srv.block_unregister(req.db, &req.keys, &info);
    if served {
        // Pass the turn on: the next waiter may find data too.
        for k in &req.keys {
            srv.signal_ready(req.db, k);
        }
    }
    keep
}

async fn recv_push(rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// CLIENT PAUSE: holds a command until the pause ends (or CLIENT UNPAUSE). In WRITE mode only
/// commands that may write are held. Returns true when it waited.
async fn wait_if_paused(srv: &Server, args: &[Bytes]) -> bool {
    let mut waited = false;
    loop {
        let until = srv.pause_until_ms.load(Ordering::Relaxed);
        let now = now_ms();
        if until == 0 || now >= until {
            return waited;
        }
        if srv.pause_writes_only.load(Ordering::Relaxed) {
            let may_write = match crate::cmd::resolve(args) {
                crate::cmd::Resolved::Ok(spec, _, _) => {
                    spec.flags & (crate::cmd::flags::WRITE | crate::cmd::flags::MAY_REPLICATE) != 0
                }
                crate::cmd::Resolved::Err(_) => false,
            };
            if !may_write {
                return waited;
            }
        }
        waited = true;
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis((until - now) as u64)) => {}
            _ = srv.pause_notify.notified() => {}
        }
    }
}

/// Replies leave only after the AOF holds the writes they acknowledge (`appendfsync`).
#[inline]
fn aof_barrier(srv: &Server) {
    let need = crate::repl::take_aof_need();
    if need != 0 {
        srv.persist.aof.before_reply(srv, need);
    }
}

async fn flush<S: AsyncWrite + Unpin>(
    srv: &Server,
    stream: &mut S,
    out: &mut ReplyBuf,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let need = crate::repl::take_aof_need();
    if need != 0 {
        srv.persist.aof.wait_durable(srv, need).await;
    }
    srv.stats
        .net_output_bytes
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    let r = stream.write_all(&out.buf).await;
    out.clear();
    if out.buf.capacity() > 1 << 20 {
        out.buf.shrink_to(16 * 1024);
    }
    r
}
