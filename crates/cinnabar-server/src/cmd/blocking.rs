//! Blocking commands: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP, and
//! CLIENT UNBLOCK.
//!
//! Model: a blocking command first tries its non-blocking form. When every key is empty it
//! records a [`BlockRequest`] on the client instead of replying; the connection registers the
//! client as a waiter on those keys (FIFO per key) and sleeps. Any write command that modifies
//! a key wakes the first waiter on it (`Server::signal_ready`), which re-runs its command; a
//! waiter that gets served wakes the next one. Inside MULTI/EXEC a blocking command never
//! blocks: it answers as if it had timed out, like Redis.

use bytes::Bytes;

use super::lists::{move_one, mpop_first, parse_mpop, pop_n, End};
use super::{coll::get_list, Ctx};
use crate::error::{CmdError, CmdResult};

/// How a timed-out blocking command answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutReply {
    NullArray,
    Null,
}

/// What a blocked client waits for.
pub struct BlockRequest {
    pub db: u32,
    pub keys: Vec<Bytes>,
    /// Absolute deadline in ms since the epoch; 0 = wait forever.
    pub deadline_ms: i64,
    pub timeout_reply: TimeoutReply,
    /// The command to re-run when woken.
    pub args: Vec<Bytes>,
}

/// Parses a blocking timeout (seconds, fractional allowed) into an absolute deadline in ms
/// (0 = forever), with Redis's error texts.
pub fn parse_timeout(a: &[u8], now_ms: i64) -> Result<i64, CmdError> {
    let not_float = || CmdError::err("timeout is not a float or out of range");
    let s = std::str::from_utf8(a).map_err(|_| not_float())?;
    if s.is_empty()
        || s.starts_with(|c: char| c.is_whitespace())
        || s.ends_with(|c: char| c.is_whitespace())
    {
        return Err(not_float());
    }
    let v: f64 = s.parse().map_err(|_| not_float())?;
    if v.is_nan() {
        return Err(not_float());
    }
    let ms = (v * 1000.0).ceil();
    if ms > i64::MAX as f64 {
        return Err(CmdError::err("timeout is out of range"));
    }
    if ms < 0.0 {
        return Err(CmdError::err("timeout is negative"));
    }
    let ms = ms as i64;
    if ms == 0 {
        return Ok(0);
    }
    ms.checked_add(now_ms)
        .ok_or_else(|| CmdError::err("timeout is out of range"))
}

/// Either blocks the client or (inside EXEC) answers with the timeout reply.
fn block(
    ctx: &mut Ctx,
    args: &[Bytes],
    keys: Vec<Bytes>,
    deadline_ms: i64,
    reply: TimeoutReply,
) -> CmdResult {
    if ctx.cl.in_exec {
        match reply {
            TimeoutReply::NullArray => ctx.out.null_array(),
            TimeoutReply::Null => ctx.out.null(),
        }
        return Ok(());
    }
    ctx.cl.block = Some(BlockRequest {
        db: ctx.db.index,
        keys,
        deadline_ms,
        // A timed-out list or zset block answers with a null array, even for BLMOVE (Redis 7.0).
        timeout_reply: TimeoutReply::NullArray,
        args: args.to_vec(),
    });
    Ok(())
}

fn bpop(ctx: &mut Ctx, args: &[Bytes], end: End) -> CmdResult {
    let deadline = parse_timeout(&args[args.len() - 1], ctx.now_ms())?;
    let keys = &args[1..args.len() - 1];
    for k in keys {
        let non_empty = get_list(&mut ctx.db, k, true)?.is_some_and(|l| !l.is_empty());
        if non_empty {
            let v = pop_n(ctx, k, end, 1);
            if let Some(v) = v.first() {
                ctx.out.array(2);
                ctx.out.bulk(k);
                ctx.out.bulk(v);
                return Ok(());
            }
        }
    }
    block(ctx, args, keys.to_vec(), deadline, TimeoutReply::NullArray)
}

pub fn blpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    bpop(ctx, args, End::Left)
}

pub fn brpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    bpop(ctx, args, End::Right)
}

fn parse_end(a: &[u8]) -> Result<End, CmdError> {
    if a.eq_ignore_ascii_case(b"left") {
        Ok(End::Left)
    } else if a.eq_ignore_ascii_case(b"right") {
        Ok(End::Right)
    } else {
        Err(CmdError::Syntax)
    }
}

fn bmove(ctx: &mut Ctx, args: &[Bytes], from: End, to: End, timeout_idx: usize) -> CmdResult {
    let deadline = parse_timeout(&args[timeout_idx], ctx.now_ms())?;
    let (src, dst) = (&args[1], &args[2]);
    if get_list(&mut ctx.db, src, true)?.is_none() {
        return block(ctx, args, vec![src.clone()], deadline, TimeoutReply::Null);
    }
    match move_one(ctx, src, dst, from, to)? {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn blmove(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let from = parse_end(&args[3])?;
    let to = parse_end(&args[4])?;
    bmove(ctx, args, from, to, 5)
}

pub fn brpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    bmove(ctx, args, End::Right, End::Left, 3)
}

pub fn blmpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let deadline = parse_timeout(&args[1], ctx.now_ms())?;
    let (keys, end, count) = parse_mpop(args, 2)?;
    if mpop_first(ctx, &keys, end, count)? {
        return Ok(());
    }
    block(ctx, args, keys, deadline, TimeoutReply::NullArray)
}

pub fn blmpop_keys(args: &[Bytes]) -> smallvec::SmallVec<[usize; 4]> {
    super::coll::numkeys_at(args, 2)
}

fn bzpop(ctx: &mut Ctx, args: &[Bytes], max: bool) -> CmdResult {
    let deadline = parse_timeout(&args[args.len() - 1], ctx.now_ms())?;
    let keys = &args[1..args.len() - 1];
    for k in keys {
        if super::coll::get_zset(&mut ctx.db, k, true)?.is_some() {
            return super::zsets::zpop_generic(
                ctx,
                std::slice::from_ref(k),
                max,
                true,
                -1,
                false,
                true,
            );
        }
    }
    block(ctx, args, keys.to_vec(), deadline, TimeoutReply::NullArray)
}

pub fn bzpopmin(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    bzpop(ctx, args, false)
}

pub fn bzpopmax(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    bzpop(ctx, args, true)
}

pub fn bzmpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let deadline = parse_timeout(&args[1], ctx.now_ms())?;
    let (keys, max, count) = super::zsets::parse_zmpop(args, 2)?;
    for k in &keys {
        if super::coll::get_zset(&mut ctx.db, k, true)?.is_some() {
            return super::zsets::zpop_generic(
                ctx,
                std::slice::from_ref(k),
                max,
                true,
                count,
                true,
                true,
            );
        }
    }
    block(ctx, args, keys, deadline, TimeoutReply::NullArray)
}

pub fn bzmpop_keys(args: &[Bytes]) -> smallvec::SmallVec<[usize; 4]> {
    super::coll::numkeys_at(args, 2)
}

/// CLIENT UNBLOCK <id> [TIMEOUT|ERROR].
pub fn client_unblock(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let id = match cinnabar_protocol::parser::parse_i64(&args[2]) {
        Some(n) => n,
        None => return Err(CmdError::NotInteger),
    };
    let mode = match args.get(3) {
        None => 1,
        Some(a) if a.eq_ignore_ascii_case(b"TIMEOUT") => 1,
        Some(a) if a.eq_ignore_ascii_case(b"ERROR") => 2,
        Some(_) => {
            return Err(CmdError::err(
                "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    if args.len() > 4 {
        return Err(CmdError::Syntax);
    }
    let target = ctx.srv.clients.lock().get(&(id as u64)).cloned();
    match target {
        Some(c) if c.blocked.load(std::sync::atomic::Ordering::Acquire) => {
            c.unblock_req
                .store(mode, std::sync::atomic::Ordering::Release);
            c.block_notify.notify_one();
            ctx.out.int(1);
        }
        _ => ctx.out.int(0),
    }
    Ok(())
}
