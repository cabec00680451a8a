//! Server commands: INFO CONFIG COMMAND DBSIZE FLUSHDB FLUSHALL TIME LASTSAVE SHUTDOWN MEMORY
//! SLOWLOG DEBUG, and the CLUSTER / READONLY / READWRITE / ASKING entry points.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use cinnabar_protocol::parser::parse_i64;

use super::{all_specs, Ctx};
use crate::client::Client;
use crate::error::{CmdError, CmdResult};
use crate::server::Server;

pub fn info(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sections: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let text = crate::info::render(ctx.srv, &sections, ctx.cl);
    ctx.out.verbatim("txt", text.as_bytes());
    Ok(())
}

pub fn config_get(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let pats: Vec<String> = args[2..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let pairs = {
        let cfg = ctx.srv.config.lock();
        let p: Vec<&str> = pats.iter().map(|s| s.as_str()).collect();
        cfg.get(&p)
    };
    ctx.out.map(pairs.len());
    for (k, v) in pairs {
        ctx.out.bulk(k.as_bytes());
        ctx.out.bulk(v.as_bytes());
    }
    Ok(())
}

pub fn config_set(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::Arity("config|set".into()));
    }
    let pairs: Vec<(String, String)> = args[2..]
        .chunks(2)
        .map(|p| {
            (
                String::from_utf8_lossy(&p[0]).into_owned(),
                String::from_utf8_lossy(&p[1]).into_owned(),
            )
        })
        .collect();
    ctx.srv.config.lock().set(&pairs).map_err(CmdError::Msg)?;
    ctx.srv.reload_settings().map_err(CmdError::err)?;
    ctx.out.ok();
    Ok(())
}

pub fn config_resetstat(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.srv.stats.reset();
    ctx.srv.cmd_stats.reset();
    ctx.srv.slowlog.lock().clear();
    ctx.out.ok();
    Ok(())
}

pub fn config_rewrite(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.srv.config.lock().rewrite().map_err(CmdError::Msg)?;
    ctx.out.ok();
    Ok(())
}

pub fn config_help(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() != 2 {
        return Err(CmdError::Arity("config".into()));
    }
    super::connection::help_reply(
        ctx,
        &[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Prints this help.",
        ],
    );
    Ok(())
}

pub fn command_all(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    super::command_meta::command_all(ctx.out);
    Ok(())
}

pub fn command_count_cmd(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    super::command_meta::command_count(ctx.out);
    Ok(())
}

pub fn command_info(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    super::command_meta::command_info(ctx.out, args);
    Ok(())
}

pub fn command_list(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    super::command_meta::command_list(ctx.out, args)
}

pub fn command_docs(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    super::command_meta::command_docs(ctx.out, args);
    Ok(())
}

pub fn command_getkeys(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    super::command_meta::command_getkeys(ctx.out, args, false)
}

/// COMMAND GETKEYSANDFLAGS (handler for a `command|getkeysandflags` table row, arity -4).
pub fn command_getkeysandflags(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    super::command_meta::command_getkeys(ctx.out, args, true)
}

pub fn command_help(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    super::connection::help_reply(
        ctx,
        &[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
            "HELP",
            "    Prints this help.",
        ],
    );
    Ok(())
}

pub fn dbsize(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let n = ctx.srv.keyspace.db(ctx.db.index as usize).key_count();
    ctx.out.int(n);
    Ok(())
}

fn parse_flush_mode(args: &[Bytes]) -> Result<bool, CmdError> {
    match args.len() {
        1 => Ok(false),
        2 if args[1].eq_ignore_ascii_case(b"ASYNC") => Ok(true),
        2 if args[1].eq_ignore_ascii_case(b"SYNC") => Ok(false),
        _ => Err(CmdError::Syntax),
    }
}

/// Empties database `db`; with `lazy` the memory is released on a background thread.
pub fn flush_db(ctx: &mut Ctx, db: u32, lazy: bool) {
    let mut taken: Vec<crate::keyspace::Slot> = Vec::new();
    let saved = ctx.db.index;
    ctx.db.index = db;
    let mut removed = 0i64;
    let mut removed_volatile = 0i64;
    ctx.db.for_each_slot(|_, slot, _| {
        if !slot.is_empty() {
            removed += slot.len() as i64;
            removed_volatile += slot.volatile() as i64;
            taken.push(slot.take_all());
        }
        true
    });
    ctx.db.index = saved;
    ctx.srv.keyspace.db(db as usize).adjust_keys(-removed);
    ctx.srv
        .keyspace
        .db(db as usize)
        .adjust_volatile(-removed_volatile);
    ctx.srv.touch_all_watched(Some(db));
    ctx.db.dirty += removed.max(1) as u64;
    if lazy && !taken.is_empty() {
        std::thread::spawn(move || drop(taken));
    }
}

pub fn flushdb(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let lazy = parse_flush_mode(args)?;
    let db = ctx.db.index;
    flush_db(ctx, db, lazy);
    ctx.out.ok();
    Ok(())
}

pub fn flushall(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let lazy = parse_flush_mode(args)?;
    let dbs: Vec<u32> = ctx
        .srv
        .keyspace
        .existing_dbs()
        .map(|(i, _)| i as u32)
        .collect();
    for d in dbs {
        flush_db(ctx, d, lazy);
    }
    ctx.out.ok();
    Ok(())
}

pub fn time(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let us = crate::server::now_us();
    ctx.out.array(2);
    ctx.out.bulk((us / 1_000_000).to_string().as_bytes());
    ctx.out.bulk((us % 1_000_000).to_string().as_bytes());
    Ok(())
}

pub fn lastsave(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.out.int(ctx.srv.lastsave_s.load(Ordering::Relaxed));
    Ok(())
}

/// SAVE.
pub fn save(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if ctx
        .srv
        .persist
        .rdb
        .bgsave_in_progress
        .load(Ordering::Acquire)
    {
        return Err(CmdError::err("Background save already in progress"));
    }
    crate::persist::rdbfile::save(ctx.srv).map_err(CmdError::err)?;
    ctx.out.ok();
    Ok(())
}

/// BGSAVE [SCHEDULE].
pub fn bgsave(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let schedule = match args.len() {
        1 => false,
        2 if args[1].eq_ignore_ascii_case(b"schedule") => true,
        _ => return Err(CmdError::Syntax),
    };
    let p = &ctx.srv.persist;
    if p.rdb.bgsave_in_progress.load(Ordering::Acquire) {
        return Err(CmdError::err("Background save already in progress"));
    }
    if p.aof.rewrite_running() {
        if schedule {
            p.rdb.bgsave_scheduled.store(true, Ordering::Release);
            ctx.out.simple("Background saving scheduled");
            return Ok(());
        }
        return Err(CmdError::err("An AOF log rewriting in progress: can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."));
    }
    crate::persist::rdbfile::bgsave(ctx.srv).map_err(CmdError::err)?;
    ctx.out.simple("Background saving started");
    Ok(())
}

/// BGREWRITEAOF.
pub fn bgrewriteaof(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let p = &ctx.srv.persist;
    if p.aof.rewrite_running() {
        return Err(CmdError::err(
            "Background append only file rewriting already in progress",
        ));
    }
    if p.rdb.bgsave_in_progress.load(Ordering::Acquire) {
        p.aof.rewrite_scheduled.store(true, Ordering::Release);
        ctx.out
            .simple("Background append only file rewriting scheduled");
        return Ok(());
    }
    crate::persist::aof::start_rewrite(ctx.srv).map_err(CmdError::err)?;
    ctx.out
        .simple("Background append only file rewriting started");
    Ok(())
}

pub fn shutdown(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut abort = false;
    let mut save = None;
    for a in &args[1..] {
        let l = a.to_ascii_lowercase();
        match l.as_slice() {
            b"nosave" => save = Some(false),
            b"save" => save = Some(true),
            b"now" | b"force" => {}
            b"abort" => abort = true,
            _ => return Err(CmdError::Syntax),
        }
    }
    if abort {
        return Err(CmdError::err("No shutdown in progress."));
    }
    if ctx.srv.repl.startup_loading() {
        // As Redis: a shutdown while loading never saves (the dataset is incomplete) and does
        // not wait for the load; nothing has been written to the data files yet.
        crate::warning!("User requested shutdown...");
        let s = ctx.srv.settings();
        if !s.pidfile.is_empty() {
            crate::notice!("Removing the pid file.");
            let _ = std::fs::remove_file(&s.pidfile);
        }
        if !s.unixsocket.is_empty() {
            let _ = std::fs::remove_file(&s.unixsocket);
        }
        crate::warning!("Cinnabar is now ready to exit, bye bye...");
        std::process::exit(0);
    }
    *ctx.srv.shutdown_save.lock() = save;
    ctx.srv.request_shutdown();
    ctx.cl.close_after_reply = true;
    Ok(())
}

pub fn memory_usage(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        if args.len() == 5 && args[3].eq_ignore_ascii_case(b"SAMPLES") {
            parse_i64(&args[4]).ok_or(CmdError::NotInteger)?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    match ctx.db.lookup_write(&args[2]) {
        Some(e) => {
            let n = crate::keyspace::entry_memory_bytes(e) + std::mem::size_of::<usize>();
            ctx.out.int(n as i64)
        }
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn memory_help(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() != 2 {
        return Err(CmdError::Arity("memory".into()));
    }
    super::connection::help_reply(
        ctx,
        &[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Prints this help.",
        ],
    );
    Ok(())
}

/// MEMORY STATS: Redis's memory overhead report, field for field (from our accounting:
/// allocator-level bytes, the slot tables as the main hash table overhead; no Lua/functions).
pub fn memory_stats(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let m = crate::info::MemOverhead::compute(ctx.srv);
    let out = &mut *ctx.out;
    // Redis keeps these ratios as C floats.
    let f = |x: f64| x as f32 as f64;
    let ratio = |a: u64, b: u64| if b > 0 { f(a as f64 / b as f64) } else { 0.0 };
    let net = m.total.saturating_sub(m.startup);
    out.map(27 + m.dbs.len());
    for (name, v) in [
        ("peak.allocated", m.peak),
        ("total.allocated", m.total),
        ("startup.allocated", m.startup),
        ("replication.backlog", m.repl_backlog),
        ("clients.slaves", m.clients_replicas),
        ("clients.normal", m.clients_normal),
        ("cluster.links", 0),
        ("aof.buffer", m.aof_buffer),
        ("lua.caches", 0),
        ("functions.caches", 0),
    ] {
        out.bulk(name.as_bytes());
        out.int(v as i64);
    }
    for &(db, tables) in &m.dbs {
        out.bulk(format!("db.{db}").as_bytes());
        out.map(3);
        out.bulk(b"overhead.hashtable.main");
        out.int(tables as i64);
        out.bulk(b"overhead.hashtable.expires");
        out.int(0); // expiry lives in the entry: no second table
        out.bulk(b"overhead.hashtable.slot-to-keys");
        out.int(0); // the tables are per slot already
    }
    out.bulk(b"overhead.total");
    out.int(m.overhead_total as i64);
    out.bulk(b"keys.count");
    out.int(m.keys as i64);
    out.bulk(b"keys.bytes-per-key");
    out.int(net.checked_div(m.keys).unwrap_or(0) as i64);
    out.bulk(b"dataset.bytes");
    out.int(m.dataset as i64);
    out.bulk(b"dataset.percentage");
    out.double(f(if net > 0 {
        m.dataset as f64 * 100.0 / net as f64
    } else {
        0.0
    }));
    out.bulk(b"peak.percentage");
    out.double(f(if m.peak > 0 {
        m.total as f64 * 100.0 / m.peak as f64
    } else {
        0.0
    }));
    // The counting allocator knows requested bytes; "active" and "resident" are the RSS, as
    // in INFO memory's allocator_* fields.
    for (name, v) in [
        ("allocator.allocated", m.total),
        ("allocator.active", m.rss),
        ("allocator.resident", m.rss),
    ] {
        out.bulk(name.as_bytes());
        out.int(v as i64);
    }
    let frag_bytes = m.rss as i64 - m.total as i64;
    for (name, r, b) in [
        ("allocator-fragmentation", ratio(m.rss, m.total), frag_bytes),
        ("allocator-rss", 1.0, 0),
        ("rss-overhead", 1.0, 0),
    ] {
        out.bulk(format!("{name}.ratio").as_bytes());
        out.double(r);
        out.bulk(format!("{name}.bytes").as_bytes());
        out.int(b);
    }
    out.bulk(b"fragmentation");
    out.double(ratio(m.rss, m.total));
    out.bulk(b"fragmentation.bytes");
    out.int(frag_bytes);
    Ok(())
}

/// MEMORY PURGE: asks the allocator to return freed memory to the system now (Redis asks
/// jemalloc; here mimalloc's collect).
pub fn memory_purge(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    crate::alloc::purge();
    ctx.out.ok();
    Ok(())
}

/// MEMORY MALLOC-STATS: what Redis answers when not built with jemalloc.
pub fn memory_malloc_stats(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.out
        .bulk(b"Stats not supported for the current allocator");
    Ok(())
}

/// Records a command in the slow log when it ran longer than `slowlog-log-slower-than`.
pub fn slowlog_record(srv: &Server, cl: &Client, args: &[Bytes], elapsed_us: u64, now_ms: i64) {
    let s = srv.settings();
    if s.slowlog_log_slower_than_us < 0 || (elapsed_us as i64) < s.slowlog_log_slower_than_us {
        return;
    }
    let mut log = srv.slowlog.lock();
    let id = srv.slowlog_next_id.fetch_add(1, Ordering::Relaxed);
    let mut argv: Vec<Vec<u8>> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i == 31 && args.len() > 32 {
            argv.push(format!("... ({} more arguments)", args.len() - 31).into_bytes());
            break;
        }
        if a.len() > 128 {
            let mut v = a[..128].to_vec();
            v.extend_from_slice(format!("... ({} more bytes)", a.len() - 128).as_bytes());
            argv.push(v);
        } else {
            argv.push(a.to_vec());
        }
    }
    log.push_front(crate::server::SlowEntry {
        id,
        time_s: now_ms / 1000,
        duration_us: elapsed_us,
        args: argv,
        peer: cl.info.addr.clone(),
        name: cl
            .info
            .name
            .lock()
            .as_ref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default(),
    });
    while log.len() as u64 > s.slowlog_max_len {
        log.pop_back();
    }
}

pub fn slowlog_get(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut count: i64 = 10;
    if args.len() == 3 {
        count = match parse_i64(&args[2]) {
            Some(n) if n >= -1 => n,
            _ => return Err(CmdError::err("count should be greater than or equal to -1")),
        };
    } else if args.len() > 3 {
        return Err(CmdError::Arity("slowlog|get".into()));
    }
    let log = ctx.srv.slowlog.lock();
    let n = if count == -1 {
        log.len()
    } else {
        (count as usize).min(log.len())
    };
    ctx.out.array(n);
    for e in log.iter().take(n) {
        ctx.out.array(6);
        ctx.out.int(e.id as i64);
        ctx.out.int(e.time_s);
        ctx.out.int(e.duration_us as i64);
        ctx.out.array(e.args.len());
        for a in &e.args {
            ctx.out.bulk(a);
        }
        ctx.out.bulk(e.peer.as_bytes());
        ctx.out.bulk(e.name.as_bytes());
    }
    Ok(())
}

pub fn slowlog_len(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let n = ctx.srv.slowlog.lock().len();
    ctx.out.int(n as i64);
    Ok(())
}

pub fn slowlog_reset(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.srv.slowlog.lock().clear();
    ctx.out.ok();
    Ok(())
}

pub fn slowlog_help(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() != 2 {
        return Err(CmdError::Arity("slowlog".into()));
    }
    super::connection::help_reply(
        ctx,
        &[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Prints this help.",
        ],
    );
    Ok(())
}

fn debug_allowed(ctx: &Ctx) -> bool {
    match ctx.srv.settings().enable_debug_command.as_str() {
        "yes" => true,
        "local" => {
            ctx.cl.info.is_unix
                || ctx.cl.info.addr.starts_with("127.")
                || ctx.cl.info.addr.starts_with("[::1]")
        }
        _ => false,
    }
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: save the RDB, empty the dataset, load the RDB.
/// Other clients wait (or get -LOADING) meanwhile, as Redis blocks them.
fn debug_reload(ctx: &mut Ctx, opts: &[Bytes]) -> CmdResult {
    let (mut flush, mut save) = (true, true);
    for o in opts {
        match o.to_ascii_lowercase().as_slice() {
            b"merge" | b"noflush" => flush = false,
            b"nosave" => save = false,
            _ => {
                return Err(CmdError::err(
                    "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                ))
            }
        }
    }
    let srv = ctx.srv;
    if save {
        crate::persist::rdbfile::save(srv)
            .map_err(|e| CmdError::err(format!("Error trying to save the DB: {e}")))?;
    }
    let file = srv.settings().dbfilename.clone();
    let f = std::fs::File::open(&file)
        .map_err(|_| CmdError::err("Error trying to load the RDB dump, check server logs."))?;
    let len = f.metadata().map(|m| m.len()).ok();
    srv.repl.begin_loading(len.unwrap_or(0));
    if flush {
        crate::replica::flush_all(srv);
    }
    let progress = crate::persist::LoadProgress { inner: f, srv };
    let res = crate::persist::rdbfile::load_rdb(srv, std::io::BufReader::new(progress), len, &file);
    srv.repl.end_loading();
    if let Err(e) = res {
        crate::warning!("{}", e);
        return Err(CmdError::err(
            "Error trying to load the RDB dump, check server logs.",
        ));
    }
    crate::notice!("DB reloaded by DEBUG RELOAD");
    ctx.out.ok();
    Ok(())
}

pub fn debug(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if !debug_allowed(ctx) {
        return Err(CmdError::msg(
            "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.",
        ));
    }
    let sub = args[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"sleep" if args.len() == 3 => {
            let secs: f64 = std::str::from_utf8(&args[2])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0);
            if secs > 0.0 && secs.is_finite() {
                std::thread::sleep(std::time::Duration::from_secs_f64(secs.min(3600.0)));
            }
            ctx.out.ok();
        }
        b"set-active-expire" if args.len() == 3 => {
            let on = parse_i64(&args[2]).ok_or(CmdError::NotInteger)? != 0;
            ctx.srv.active_expire_enabled.store(on, Ordering::Release);
            ctx.out.ok();
        }
        b"object" if args.len() == 3 => {
            let key = &args[2];
            let found = {
                // The key's slot is not pre-locked for DEBUG: lock it here (a logically
                // expired key is reported missing).
                let slot = cinnabar_cluster::slot::key_hash_slot(key);
                ctx.db.with_slot(slot, |s, now| {
                    s.raw_get(key)
                        .filter(|e| e.expire_at_ms == 0 || e.expire_at_ms > now)
                        .map(|e| {
                        let len = e.value.string_len().unwrap_or(0);
                        format!(
                            "Value at:0x{:x} refcount:1 encoding:{} serializedlength:{} lru:0 lru_seconds_idle:{}",
                            e as *const _ as usize,
                            e.value.encoding_name(),
                            len.max(1),
                            crate::keyspace::access_clock_s().saturating_sub(e.access_s)
                        )
                    })
                })
            };
            match found {
                Some(s) => ctx.out.simple(&s),
                None => return Err(CmdError::NoSuchKey),
            }
        }
        b"digest" if args.len() == 2 => {
            // Slot by slot under each slot's lock; a logically expired key still counts,
            // as in Redis (no lookup, no lazy expiry).
            let mut dd = crate::digest::DatasetDigest::default();
            let mut dbs: Vec<u32> = ctx
                .srv
                .keyspace
                .existing_dbs()
                .map(|(i, _)| i as u32)
                .collect();
            dbs.sort_unstable();
            let saved = ctx.db.index;
            for d in dbs {
                ctx.db.index = d;
                for slot in 0..crate::keyspace::SLOT_COUNT as u16 {
                    ctx.db
                        .with_slot(slot, |s, _| s.iter().for_each(|e| dd.key(e)));
                }
                dd.end_db(d);
            }
            ctx.db.index = saved;
            ctx.out.simple(&crate::digest::hex(&dd.digest));
        }
        b"digest-value" => {
            ctx.out.array(args.len() - 2);
            for key in &args[2..] {
                let slot = cinnabar_cluster::slot::key_hash_slot(key);
                let d = ctx
                    .db
                    .with_slot(slot, |s, _| crate::digest::value_digest(s.raw_get(key)));
                ctx.out.simple(&crate::digest::hex(&d));
            }
        }
        b"protocol" if args.len() == 3 => debug_protocol(ctx, &args[2])?,
        b"reload" => debug_reload(ctx, &args[2..])?,
        b"help" => {
            super::connection::help_reply(ctx, &[
                "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DIGEST",
                "    Output a hex signature representing the current DB content.",
                "DIGEST-VALUE <key> [<key> ...]",
                "    Output a hex signature of the values of all the specified keys.",
                "OBJECT <key>",
                "    Show low level info about `key` and associated value.",
                "SET-ACTIVE-EXPIRE <0|1>",
                "    Setting it to 0 disables expiring keys in background when they are not",
                "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
                "    default.",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
                "HELP",
                "    Prints this help.",
            ]);
        }
        _ => {
            return Err(CmdError::Msg(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
                String::from_utf8_lossy(&args[1])
            )))
        }
    }
    Ok(())
}

/// DEBUG PROTOCOL <type>: a sample reply of each RESP type, as Redis's debug.c sends it.
fn debug_protocol(ctx: &mut Ctx, name: &[u8]) -> CmdResult {
    let resp3 = ctx.out.is_resp3();
    match name.to_ascii_lowercase().as_slice() {
        b"string" => ctx.out.bulk(b"Hello World"),
        b"integer" => ctx.out.int(12345),
        // The sample value Redis sends (not an approximation of pi).
        #[allow(clippy::approx_constant)]
        b"double" => ctx.out.double(3.141),
        b"bignum" => {
            let n = b"1234567999999999999999999999999999999";
            if resp3 {
                ctx.out.raw(b"(");
                ctx.out.raw(n);
                ctx.out.raw(b"\r\n");
            } else {
                ctx.out.bulk(n);
            }
        }
        b"null" => ctx.out.null(),
        b"array" => {
            ctx.out.array(3);
            for j in 0..3 {
                ctx.out.int(j);
            }
        }
        b"set" => {
            ctx.out.set(3);
            for j in 0..3 {
                ctx.out.int(j);
            }
        }
        b"map" => {
            ctx.out.map(3);
            for j in 0..3 {
                ctx.out.int(j);
                ctx.out.boolean(j == 1);
            }
        }
        b"attrib" => {
            if resp3 {
                ctx.out.raw(b"|1\r\n");
                ctx.out.bulk(b"key-popularity");
                ctx.out.array(2);
                ctx.out.bulk(b"key:123");
                ctx.out.int(90);
            }
            ctx.out.bulk(b"Some real reply following the attribute");
        }
        b"push" => {
            if !resp3 {
                return Err(CmdError::err("RESP2 is not supported by this command"));
            }
            ctx.out.push(2);
            ctx.out.bulk(b"server-cpu-usage");
            ctx.out.int(42);
            ctx.out.bulk(b"Some real reply following the push reply");
        }
        b"true" => ctx.out.boolean(true),
        b"false" => ctx.out.boolean(false),
        b"verbatim" => ctx.out.verbatim("txt", b"This is a verbatim\nstring"),
        _ => {
            return Err(CmdError::err(
                "Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
            ))
        }
    }
    Ok(())
}

pub fn cluster(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(cluster) = ctx.srv.cluster.clone() else {
        return Err(CmdError::err("This instance has cluster support disabled"));
    };
    // COUNTKEYSINSLOT / GETKEYSINSLOT are answered by the cluster layer through its view of
    // the keyspace (it validates arguments with Redis's exact errors).
    cluster.command(&args[1..], &ctx.srv.keyspace, ctx.out);
    Ok(())
}

pub fn readonly(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if !ctx.srv.is_cluster() {
        return Err(CmdError::err("This instance has cluster support disabled"));
    }
    ctx.cl.readonly = true;
    ctx.out.ok();
    Ok(())
}

pub fn readwrite(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if !ctx.srv.is_cluster() {
        return Err(CmdError::err("This instance has cluster support disabled"));
    }
    ctx.cl.readonly = false;
    ctx.out.ok();
    Ok(())
}

pub fn asking(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    if !ctx.srv.is_cluster() {
        return Err(CmdError::err("This instance has cluster support disabled"));
    }
    ctx.cl.asking = true;
    ctx.out.ok();
    Ok(())
}

/// Every (name, stats) pair for INFO commandstats.
pub fn command_stat_names() -> Vec<(usize, String)> {
    let mut v = Vec::new();
    for (idx, spec) in all_specs() {
        v.push((idx, spec.group.to_string()));
    }
    v
}
