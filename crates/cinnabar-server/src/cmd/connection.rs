//! Connection commands: PING ECHO HELLO AUTH QUIT RESET SELECT and the CLIENT family.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use cinnabar_protocol::parser::parse_i64;
use cinnabar_protocol::Resp;

use super::Ctx;
use crate::client::{ClientType, ReplyMode};
use crate::error::{CmdError, CmdResult};

pub const REDIS_VERSION: &str = "7.0.15";

pub fn ping(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(CmdError::Arity("ping".into()));
    }
    if ctx.cl.resp == Resp::V2 && ctx.cl.in_pubsub_context() {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(args.get(1).map(|b| b.as_ref()).unwrap_or(b""));
        return Ok(());
    }
    match args.get(1) {
        Some(m) => ctx.out.bulk(m),
        None => ctx.out.simple("PONG"),
    }
    Ok(())
}

pub fn echo(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    ctx.out.bulk(&args[1]);
    Ok(())
}

fn check_password(ctx: &Ctx, user: &[u8], pass: &[u8]) -> bool {
    if !user.eq_ignore_ascii_case(b"default") && user != b"default" {
        return false;
    }
    match &ctx.srv.settings().requirepass {
        Some(p) => p.as_bytes() == pass,
        None => true,
    }
}

pub fn auth(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let (user, pass): (&[u8], &[u8]) = if args.len() == 2 {
        (b"default", &args[1])
    } else {
        (&args[1], &args[2])
    };
    if args.len() == 2 && ctx.srv.settings().requirepass.is_none() {
        return Err(CmdError::msg(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    if check_password(ctx, user, pass) {
        ctx.cl.authenticated = true;
        ctx.out.ok();
        Ok(())
    } else {
        Err(CmdError::msg(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

pub fn hello(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut ver: Option<i64> = None;
    let mut i = 1;
    if args.len() >= 2 {
        match parse_i64(&args[1]) {
            Some(v) => ver = Some(v),
            None => {
                return Err(CmdError::msg(
                    "ERR Protocol version is not an integer or out of range",
                ))
            }
        }
        i = 2;
        if let Some(v) = ver {
            if !(2..=3).contains(&v) {
                return Err(CmdError::msg("NOPROTO unsupported protocol version"));
            }
        }
    }
    let mut setname: Option<Bytes> = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if args[i].eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            if !check_password(ctx, &args[i + 1], &args[i + 2]) {
                return Err(CmdError::msg(
                    "WRONGPASS invalid username-password pair or user is disabled.",
                ));
            }
            ctx.cl.authenticated = true;
            i += 3;
        } else if args[i].eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            validate_name(&args[i + 1])?;
            setname = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(CmdError::Msg(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if !ctx.cl.authenticated {
        return Err(CmdError::msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(n) = setname {
        *ctx.cl.info.name.lock() = if n.is_empty() { None } else { Some(n) };
    }
    if let Some(v) = ver {
        let resp = if v == 3 { Resp::V3 } else { Resp::V2 };
        ctx.cl.resp = resp;
        ctx.out.resp = resp;
        ctx.cl.info.resp.store(v as u32, Ordering::Relaxed);
        if let Some(q) = &ctx.cl.push {
            q.resp.store(v as u32, Ordering::Relaxed);
        }
    }
    let cluster = ctx.srv.is_cluster();
    let replica = ctx
        .srv
        .cluster
        .as_ref()
        .map(|c| c.myself_is_replica())
        .unwrap_or(false)
        || ctx.srv.repl.is_replica();
    ctx.out.map(7);
    ctx.out.bulk(b"server");
    ctx.out.bulk(b"redis");
    ctx.out.bulk(b"version");
    ctx.out.bulk(REDIS_VERSION.as_bytes());
    ctx.out.bulk(b"proto");
    ctx.out.int(if ctx.cl.resp == Resp::V3 { 3 } else { 2 });
    ctx.out.bulk(b"id");
    ctx.out.int(ctx.cl.id as i64);
    ctx.out.bulk(b"mode");
    ctx.out
        .bulk(if cluster { b"cluster" } else { b"standalone" });
    ctx.out.bulk(b"role");
    ctx.out.bulk(if replica { b"replica" } else { b"master" });
    ctx.out.bulk(b"modules");
    ctx.out.array(0);
    Ok(())
}

pub fn quit(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.cl.close_after_reply = true;
    ctx.out.ok();
    Ok(())
}

/// Drops a client's subscriptions, MONITOR registration and WATCHes (RESET, disconnect).
pub fn drop_client_state(srv: &crate::server::Server, cl: &mut crate::client::Client) {
    srv.pubsub
        .remove_client(cl.id, &cl.subs, &cl.psubs, &cl.ssubs);
    cl.subs.clear();
    cl.psubs.clear();
    cl.ssubs.clear();
    cl.info.sub_count.store(0, Ordering::Relaxed);
    cl.info.psub_count.store(0, Ordering::Relaxed);
    cl.info.ssub_count.store(0, Ordering::Relaxed);
    cl.monitor = false;
    srv.unwatch_all(cl);
}

pub fn reset(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    drop_client_state(ctx.srv, ctx.cl);
    ctx.cl.multi = None;
    ctx.cl.info.in_multi.store(false, Ordering::Relaxed);
    ctx.cl.db = 0;
    ctx.cl.info.db.store(0, Ordering::Relaxed);
    ctx.cl.resp = Resp::V2;
    ctx.out.resp = Resp::V2;
    ctx.cl.info.resp.store(2, Ordering::Relaxed);
    ctx.cl.reply_mode = ReplyMode::On;
    ctx.cl.readonly = false;
    ctx.cl.asking = false;
    ctx.cl.monitor = false;
    *ctx.cl.info.name.lock() = None;
    ctx.cl.authenticated = ctx.srv.settings().requirepass.is_none();
    ctx.out.simple("RESET");
    Ok(())
}

pub fn select(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(n) = parse_i64(&args[1]) else {
        return Err(CmdError::NotInteger);
    };
    if ctx.srv.is_cluster() && n != 0 {
        return Err(CmdError::err("SELECT is not allowed in cluster mode"));
    }
    if n < 0 || n >= ctx.srv.keyspace.db_count() as i64 {
        return Err(CmdError::err("DB index is out of range"));
    }
    ctx.cl.db = n as u32;
    ctx.db.index = n as u32;
    ctx.cl.info.db.store(n as u32, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

fn validate_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

pub fn client_id(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.out.int(ctx.cl.id as i64);
    Ok(())
}

pub fn client_setname(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    validate_name(&args[2])?;
    *ctx.cl.info.name.lock() = if args[2].is_empty() {
        None
    } else {
        Some(args[2].clone())
    };
    ctx.out.ok();
    Ok(())
}

pub fn client_getname(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let name = ctx.cl.info.name.lock().clone();
    match name {
        Some(n) => ctx.out.bulk(&n),
        None => ctx.out.null(),
    }
    Ok(())
}

/// A `TYPE` argument of CLIENT LIST / CLIENT KILL.
fn client_type_arg(name: &[u8]) -> Result<ClientType, CmdError> {
    ClientType::parse(name).ok_or_else(|| {
        CmdError::Msg(format!(
            "ERR Unknown client type '{}'",
            String::from_utf8_lossy(name)
        ))
    })
}

pub fn client_list(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    let mut of_type: Option<ClientType> = None;
    let mut i = 2;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"TYPE") && i + 1 < args.len() {
            of_type = Some(client_type_arg(&args[i + 1])?);
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"ID") && i + 1 < args.len() {
            let mut v = Vec::new();
            for a in &args[i + 1..] {
                match parse_i64(a) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return Err(CmdError::err("Invalid client ID")),
                }
            }
            ids = Some(v);
            i = args.len();
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now_ms();
    let mut clients: Vec<_> = ctx.srv.clients.lock().values().cloned().collect();
    clients.sort_by_key(|c| c.id);
    let mut s = String::new();
    for c in clients {
        if let Some(ids) = &ids {
            if !ids.contains(&c.id) {
                continue;
            }
        }
        if of_type.is_some_and(|t| t != c.client_type()) {
            continue;
        }
        s.push_str(&c.list_line(now));
        s.push('\n');
    }
    ctx.out.verbatim("txt", s.as_bytes());
    Ok(())
}

pub fn client_info(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let mut s = ctx.cl.info.list_line(ctx.now_ms());
    s.push('\n');
    ctx.out.verbatim("txt", s.as_bytes());
    Ok(())
}

pub fn client_kill(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let clients: Vec<_> = ctx.srv.clients.lock().values().cloned().collect();
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port
        let addr = String::from_utf8_lossy(&args[2]);
        for c in &clients {
            if c.addr == addr {
                c.kill();
                ctx.out.ok();
                return Ok(());
            }
        }
        return Err(CmdError::err("No such client"));
    }
    let mut id: Option<u64> = None;
    let mut addr: Option<String> = None;
    let mut laddr: Option<String> = None;
    let mut of_type: Option<ClientType> = None;
    // Only the default user exists (no ACL users): USER default selects every client but the
    // master link (which runs as Redis's superuser), any other name is unknown.
    let mut default_user_only = false;
    let mut skipme = true;
    let mut i = 2;
    while i + 1 < args.len() {
        let v = &args[i + 1];
        match args[i].to_ascii_lowercase().as_slice() {
            b"id" => match parse_i64(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Err(CmdError::err("client-id should be greater than 0")),
            },
            b"addr" => addr = Some(String::from_utf8_lossy(v).into_owned()),
            b"laddr" => laddr = Some(String::from_utf8_lossy(v).into_owned()),
            b"skipme" => {
                if v.eq_ignore_ascii_case(b"yes") {
                    skipme = true
                } else if v.eq_ignore_ascii_case(b"no") {
                    skipme = false
                } else {
                    return Err(CmdError::Syntax);
                }
            }
            b"type" => of_type = Some(client_type_arg(v)?),
            b"user" => {
                if v.as_ref() != b"default" {
                    return Err(CmdError::Msg(format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(v)
                    )));
                }
                default_user_only = true;
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 2;
    }
    if i != args.len() {
        return Err(CmdError::Syntax);
    }
    let mut killed = 0;
    for c in &clients {
        if id.is_some_and(|x| x != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.addr)
            || laddr.as_ref().is_some_and(|a| *a != c.laddr)
            || of_type.is_some_and(|t| t != c.client_type())
            || (default_user_only && c.client_type() == ClientType::Master)
        {
            continue;
        }
        if c.id == ctx.cl.id {
            if skipme {
                continue;
            }
            ctx.cl.close_after_reply = true;
        } else {
            c.kill();
        }
        killed += 1;
    }
    ctx.out.int(killed);
    Ok(())
}

pub fn client_pause(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let ms = match parse_i64(&args[2]) {
        Some(n) if n >= 0 => n,
        _ => return Err(CmdError::err("timeout is not an integer or out of range")),
    };
    let mut writes_only = false;
    if args.len() == 4 {
        if args[3].eq_ignore_ascii_case(b"WRITE") {
            writes_only = true;
        } else if !args[3].eq_ignore_ascii_case(b"ALL") {
            return Err(CmdError::err("CLIENT PAUSE mode must be WRITE or ALL"));
        }
    } else if args.len() > 4 {
        return Err(CmdError::err(
            "unknown subcommand or wrong number of arguments for 'pause'. Try CLIENT HELP.",
        ));
    }
    ctx.srv
        .pause_writes_only
        .store(writes_only, Ordering::Relaxed);
    ctx.srv
        .pause_until_ms
        .store(ctx.now_ms() + ms, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

pub fn client_unpause(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.srv.pause_until_ms.store(0, Ordering::Relaxed);
    ctx.srv.pause_notify.notify_waiters();
    ctx.out.ok();
    Ok(())
}

pub fn client_reply(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let a = &args[2];
    if a.eq_ignore_ascii_case(b"ON") {
        ctx.cl.reply_mode = ReplyMode::On;
        ctx.out.ok();
    } else if a.eq_ignore_ascii_case(b"OFF") {
        ctx.cl.reply_mode = ReplyMode::Off;
    } else if a.eq_ignore_ascii_case(b"SKIP") {
        if ctx.cl.reply_mode == ReplyMode::On || ctx.cl.reply_mode == ReplyMode::Skipping {
            ctx.cl.reply_mode = ReplyMode::SkipNext;
        }
    } else {
        return Err(CmdError::Syntax);
    }
    Ok(())
}

pub fn client_no_evict(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args[2].eq_ignore_ascii_case(b"ON") || args[2].eq_ignore_ascii_case(b"OFF") {
        ctx.out.ok();
        Ok(())
    } else {
        Err(CmdError::Syntax)
    }
}

pub fn help_reply(ctx: &mut Ctx, lines: &[&str]) {
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.simple(l);
    }
}

pub fn client_help(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() != 2 {
        return Err(CmdError::Arity("client".into()));
    }
    help_reply(
        ctx,
        &[
            // Redis 7.0.15's text, less the client-side caching subcommands (not implemented).
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "HELP",
            "    Prints this help.",
        ],
    );
    Ok(())
}
