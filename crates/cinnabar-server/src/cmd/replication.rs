//! Replication commands: REPLCONF, PSYNC, SYNC, WAIT, REPLICAOF / SLAVEOF. PSYNC, SYNC and a
//! WAIT that has to wait hand the connection an [`AsyncOp`] that `net.rs` runs after the
//! command (see `repl.rs`).

use bytes::Bytes;

use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::repl::AsyncOp;

fn int_arg(a: &[u8]) -> Result<i64, CmdError> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| CmdError::err("value is not an integer or out of range"))
}

/// REPLCONF <option> <value> [<option> <value> ...]
pub fn replconf(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let mut i = 1;
    while i + 1 < args.len() {
        let opt = &args[i];
        let val = &args[i + 1];
        if opt.eq_ignore_ascii_case(b"listening-port") {
            let p = int_arg(val)?;
            ctx.cl.repl_port = p.clamp(0, 65535) as u16;
        } else if opt.eq_ignore_ascii_case(b"capa") {
            if val.eq_ignore_ascii_case(b"eof") {
                ctx.cl.repl_capa_eof = true;
            }
        } else if opt.eq_ignore_ascii_case(b"ip-address") {
            ctx.cl.repl_ip = Some(String::from_utf8_lossy(val).into_owned());
        } else if opt.eq_ignore_ascii_case(b"capa")
            || opt.eq_ignore_ascii_case(b"rdb-only")
            || opt.eq_ignore_ascii_case(b"rdb-filter-only")
        {
        } else if opt.eq_ignore_ascii_case(b"ack") || opt.eq_ignore_ascii_case(b"getack") {
            // ACK outside a replica link and GETACK outside the master link: no reply.
            return Ok(());
        } else {
            return Err(CmdError::Msg(format!(
                "ERR Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(opt)
            )));
        }
        i += 2;
    }
    ctx.out.ok();
    Ok(())
}

fn check_can_sync(ctx: &Ctx) -> CmdResult {
    if ctx.srv.repl.is_replica() {
        let up = ctx
            .srv
            .repl
            .master_info()
            .map(|m| m.link_up)
            .unwrap_or(false);
        if !up {
            return Err(CmdError::msg(
                "NOMASTERLINK Can't SYNC while not connected with my master",
            ));
        }
    }
    if ctx.cl.is_master {
        return Err(CmdError::msg("ERR Replica can't be a master client"));
    }
    Ok(())
}

/// PSYNC <replid> <offset>
pub fn psync(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    check_can_sync(ctx)?;
    let off = int_arg(&args[2])?;
    let id = String::from_utf8_lossy(&args[1]).into_owned();
    ctx.cl.pending_async = Some(AsyncOp::Psync(Some((id, off))));
    Ok(())
}

/// SYNC (the pre-PSYNC protocol: the RDB without a +FULLRESYNC line).
pub fn sync(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    check_can_sync(ctx)?;
    ctx.cl.pending_async = Some(AsyncOp::Psync(None));
    Ok(())
}

/// WAIT numreplicas timeout
pub fn wait(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.srv.repl.is_replica() {
        return Err(CmdError::err("WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated."));
    }
    let num = int_arg(&args[1])?;
    let timeout = std::str::from_utf8(&args[2])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| CmdError::err("timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    // The master offset as of this client's previous command (0 before its first one: every
    // online replica counts), Redis's c->woff.
    let offset = ctx.cl.woff;
    let (acked, _) = ctx.srv.repl.acked(offset);
    if ctx.cl.in_exec || acked as i64 >= num {
        ctx.out.int(acked as i64);
        return Ok(());
    }
    ctx.cl.pending_async = Some(AsyncOp::Wait {
        offset,
        num: num.max(0) as usize,
        deadline_ms: if timeout > 0 {
            ctx.now_ms() + timeout
        } else {
            0
        },
    });
    Ok(())
}

/// REPLICAOF host port | NO ONE (also SLAVEOF).
pub fn replicaof(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.srv.is_cluster() {
        return Err(CmdError::err("REPLICAOF not allowed in cluster mode."));
    }
    if args[1].eq_ignore_ascii_case(b"no") && args[2].eq_ignore_ascii_case(b"one") {
        if ctx.srv.repl.is_replica() {
            ctx.srv.repl.set_master(None);
            crate::notice!(
                "MASTER MODE enabled (user request from 'id={} addr={}')",
                ctx.cl.id,
                ctx.cl.info.addr
            );
        }
        ctx.out.ok();
        return Ok(());
    }
    let port = match int_arg(&args[2]) {
        Ok(p) if (0..=65535).contains(&p) => p,
        _ => return Err(CmdError::err("Invalid master port")),
    };
    let host = String::from_utf8_lossy(&args[1]).into_owned();
    if let Some(m) = ctx.srv.repl.master_info() {
        if m.host.eq_ignore_ascii_case(&host) && m.port == port as u16 {
            crate::notice!("REPLICAOF would result into synchronization with the master we are already connected with. No operation performed.");
            ctx.out.simple("OK Already connected to specified master");
            return Ok(());
        }
    }
    crate::replica::start(ctx.srv, Some((host.clone(), port as u16)));
    crate::notice!(
        "REPLICAOF {}:{} enabled (user request from 'id={} addr={}')",
        host,
        port,
        ctx.cl.id,
        ctx.cl.info.addr
    );
    ctx.out.ok();
    Ok(())
}

/// ROLE
pub fn role(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    ctx.srv.repl.role(ctx.out);
    Ok(())
}
