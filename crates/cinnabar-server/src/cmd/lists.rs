//! List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LINSERT LREM
//! LTRIM LPOS LMOVE RPOPLPUSH LMPOP. Every push goes through [`push_values`], which ends with
//! [`signal_list_ready`] — the single hook where blocked clients (BLPOP & co.) will be woken.

use bytes::Bytes;

use super::coll::{get_list, int_arg, list_fill, numkeys_at, positive_arg};
use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::notify::{self, notify};
use crate::types::list::List;
use crate::types::Value;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
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

/// Hook called after elements were pushed onto `key` (creation included). Blocking list
/// commands will serve waiting clients from here.
pub fn signal_list_ready(_ctx: &mut Ctx, _key: &[u8]) {}

/// Pushes `vals` onto `key` (creating it unless `only_existing`); returns the new length,
/// or None when the key is missing and `only_existing`.
pub fn push_values(
    ctx: &mut Ctx,
    key: &[u8],
    vals: &[Bytes],
    end: End,
    only_existing: bool,
) -> Result<Option<usize>, CmdError> {
    let fill = list_fill(ctx);
    let len = match get_list(&mut ctx.db, key, true)? {
        Some(l) => {
            for v in vals {
                match end {
                    End::Left => l.push_front(v, fill),
                    End::Right => l.push_back(v, fill),
                }
            }
            l.len()
        }
        None => {
            if only_existing {
                return Ok(None);
            }
            let mut l = List::new();
            for v in vals {
                match end {
                    End::Left => l.push_front(v, fill),
                    End::Right => l.push_back(v, fill),
                }
            }
            let n = l.len();
            ctx.db.set(key, Value::List(Box::new(l)), 0);
            n
        }
    };
    ctx.db.touch_write();
    let event = match end {
        End::Left => "lpush",
        End::Right => "rpush",
    };
    notify(ctx, notify::LIST, event, key);
    signal_list_ready(ctx, key);
    Ok(Some(len))
}

fn push_cmd(ctx: &mut Ctx, args: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    let n = push_values(ctx, &args[1], &args[2..], end, only_existing)?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn lpush(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    push_cmd(ctx, args, End::Left, false)
}
pub fn rpush(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    push_cmd(ctx, args, End::Right, false)
}
pub fn lpushx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    push_cmd(ctx, args, End::Left, true)
}
pub fn rpushx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    push_cmd(ctx, args, End::Right, true)
}

/// Deletes `key` (and notifies `del`) when its list is empty.
fn delete_if_empty(ctx: &mut Ctx, key: &[u8]) {
    if let Ok(Some(l)) = get_list(&mut ctx.db, key, true) {
        if l.is_empty() {
            ctx.db.remove(key);
            notify(ctx, notify::GENERIC, "del", key);
        }
    }
}

/// Pops up to `count` elements from one end of `key` (which must be a list): notifies
/// `lpop`/`rpop` and deletes the key when it becomes empty.
pub(crate) fn pop_n(ctx: &mut Ctx, key: &[u8], end: End, count: usize) -> Vec<Vec<u8>> {
    let out = pop_raw(ctx, key, end, count);
    if !out.is_empty() {
        finish_pop(ctx, key, end);
    }
    out
}

/// After a pop from `key`: the `lpop`/`rpop` event, then `del` when the list is empty.
fn finish_pop(ctx: &mut Ctx, key: &[u8], end: End) {
    notify(ctx, notify::LIST, pop_event(end), key);
    delete_if_empty(ctx, key);
}

/// The keyspace event of a pop from `end`.
fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

/// Pops up to `count` elements, leaving an emptied list in place (see [`pop_n`]).
fn pop_raw(ctx: &mut Ctx, key: &[u8], end: End, count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Ok(Some(l)) = get_list(&mut ctx.db, key, true) {
        let n = count.min(l.len());
        out.reserve(n);
        for _ in 0..n {
            let v = match end {
                End::Left => l.pop_front(),
                End::Right => l.pop_back(),
            };
            match v {
                Some(v) => out.push(v),
                None => break,
            }
        }
    }
    if !out.is_empty() {
        ctx.db.touch_write();
    }
    out
}

fn pop_cmd(ctx: &mut Ctx, args: &[Bytes], end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Arity(ctx.name.to_string()));
    }
    let count = match args.get(2) {
        Some(a) => Some(positive_arg(a, None)?),
        None => None,
    };
    let key = &args[1];
    let Some(n) = count else {
        return pop_one(ctx, key, end);
    };
    if get_list(&mut ctx.db, key, true)?.is_none() {
        ctx.out.null_array();
        return Ok(());
    }
    let v = pop_n(ctx, key, end, n as usize);
    ctx.out.array(v.len());
    for e in &v {
        ctx.out.bulk(e);
    }
    Ok(())
}

/// LPOP / RPOP without a count: one lookup, the reply written straight from the list node.
fn pop_one(ctx: &mut Ctx, key: &[u8], end: End) -> CmdResult {
    let emptied = {
        let Some(l) = get_list(&mut ctx.db, key, true)? else {
            ctx.out.null();
            return Ok(());
        };
        let out = &mut *ctx.out;
        let popped = match end {
            End::Left => l.pop_front_with(|v| out.bulk(v)),
            End::Right => l.pop_back_with(|v| out.bulk(v)),
        };
        if !popped {
            out.null();
            return Ok(());
        }
        l.is_empty()
    };
    ctx.db.touch_write();
    notify(ctx, notify::LIST, pop_event(end), key);
    if emptied {
        ctx.db.remove(key);
        notify(ctx, notify::GENERIC, "del", key);
    }
    Ok(())
}

pub fn lpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    pop_cmd(ctx, args, End::Left)
}
pub fn rpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    pop_cmd(ctx, args, End::Right)
}

pub fn llen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = get_list(&mut ctx.db, &args[1], false)?.map_or(0, |l| l.len());
    ctx.out.int(n as i64);
    Ok(())
}

/// Converts LRANGE-style (start, end) to a clamped inclusive range, None when empty.
pub fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

pub fn lrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let out = &mut *ctx.out;
    match get_list(&mut ctx.db, &args[1], false)? {
        None => out.array(0),
        Some(l) => match clamp_range(start, end, l.len()) {
            None => out.array(0),
            Some((s, e)) => {
                out.array(e - s + 1);
                for v in l.range(s, e) {
                    out.bulk(v);
                }
            }
        },
    }
    Ok(())
}

fn norm_index(idx: i64, len: usize) -> Option<usize> {
    let i = if idx < 0 { len as i64 + idx } else { idx };
    if i < 0 || i >= len as i64 {
        None
    } else {
        Some(i as usize)
    }
}

pub fn lindex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let idx = int_arg(&args[2])?;
    let out = &mut *ctx.out;
    match get_list(&mut ctx.db, &args[1], false)? {
        None => out.null(),
        Some(l) => match norm_index(idx, l.len()).and_then(|i| l.get(i)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        },
    }
    Ok(())
}

pub fn lset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let idx = int_arg(&args[2])?;
    let fill = list_fill(ctx);
    let Some(l) = get_list(&mut ctx.db, &args[1], true)? else {
        return Err(CmdError::NoSuchKey);
    };
    let p = norm_index(idx, l.len())
        .and_then(|i| l.locate(i))
        .ok_or(CmdError::OutOfRangeIndex)?;
    l.set_at(p, &args[3], fill);
    ctx.db.touch_write();
    notify(ctx, notify::LIST, "lset", &args[1]);
    ctx.out.ok();
    Ok(())
}

pub fn linsert(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let after = if args[2].eq_ignore_ascii_case(b"after") {
        true
    } else if args[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let fill = list_fill(ctx);
    let Some(l) = get_list(&mut ctx.db, &args[1], true)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let mut pos = l.first_pos();
    while let Some(p) = pos {
        if l.get_at(p) == args[3].as_ref() {
            break;
        }
        pos = l.next_pos(p);
    }
    match pos {
        None => ctx.out.int(-1),
        Some(p) => {
            l.insert_at(p, &args[4], after, fill);
            let n = l.len();
            ctx.db.touch_write();
            notify(ctx, notify::LIST, "linsert", &args[1]);
            signal_list_ready(ctx, &args[1]);
            ctx.out.int(n as i64);
        }
    }
    Ok(())
}

pub fn lrem(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let count = int_arg(&args[2])?;
    let Some(l) = get_list(&mut ctx.db, &args[1], true)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let removed = l.remove_matching(&args[3], count.unsigned_abs() as usize, count < 0);
    if removed > 0 {
        ctx.db.touch_write();
        notify(ctx, notify::LIST, "lrem", &args[1]);
        delete_if_empty(ctx, &args[1]);
    }
    ctx.out.int(removed as i64);
    Ok(())
}

pub fn ltrim(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let Some(l) = get_list(&mut ctx.db, &args[1], true)? else {
        ctx.out.ok();
        return Ok(());
    };
    let len = l.len();
    let (ltrim, rtrim) = match clamp_range(start, end, len) {
        None => (len, 0),
        Some((s, e)) => (s, len - e - 1),
    };
    l.trim_front(ltrim);
    l.trim_back(rtrim);
    ctx.db.touch_write();
    notify(ctx, notify::LIST, "ltrim", &args[1]);
    delete_if_empty(ctx, &args[1]);
    ctx.out.ok();
    Ok(())
}

pub fn lpos(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut rank: i64 = 1;
    let mut count: i64 = -1;
    let mut maxlen: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j];
        if opt.eq_ignore_ascii_case(b"RANK") && more > 0 {
            j += 1;
            rank = int_arg(&args[j])?;
            if rank == 0 {
                return Err(CmdError::err("RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
            }
        } else if opt.eq_ignore_ascii_case(b"COUNT") && more > 0 {
            j += 1;
            count = positive_arg(&args[j], Some("COUNT can't be negative"))?;
        } else if opt.eq_ignore_ascii_case(b"MAXLEN") && more > 0 {
            j += 1;
            maxlen = positive_arg(&args[j], Some("MAXLEN can't be negative"))?;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let out = &mut *ctx.out;
    let Some(l) = get_list(&mut ctx.db, &args[1], false)? else {
        if count != -1 {
            out.array(0);
        } else {
            out.null();
        }
        return Ok(());
    };
    let from_tail = rank < 0;
    if from_tail {
        rank = rank.wrapping_neg();
    }
    let len = l.len();
    let ele = args[2].as_ref();
    let mut matches: Vec<i64> = Vec::new();
    let mut nmatch: i64 = 0;
    let mut pos = if from_tail {
        l.last_pos()
    } else {
        l.first_pos()
    };
    let mut index: i64 = 0;
    while let Some(p) = pos {
        if maxlen != 0 && index >= maxlen {
            break;
        }
        if l.get_at(p) == ele {
            nmatch += 1;
            if nmatch >= rank {
                matches.push(if from_tail {
                    len as i64 - index - 1
                } else {
                    index
                });
                if count == -1 || (count != 0 && nmatch.wrapping_sub(rank).wrapping_add(1) >= count)
                {
                    break;
                }
            }
        }
        index += 1;
        pos = if from_tail {
            l.prev_pos(p)
        } else {
            l.next_pos(p)
        };
    }
    if count != -1 {
        out.array(matches.len());
        for m in matches {
            out.int(m);
        }
    } else {
        match matches.first() {
            Some(m) => out.int(*m),
            None => out.null(),
        }
    }
    Ok(())
}

/// LMOVE core: pops from `src` at `from`, pushes to `dst` at `to`; None when `src` is missing
/// or empty.
pub fn move_one(
    ctx: &mut Ctx,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Vec<u8>>, CmdError> {
    if get_list(&mut ctx.db, src, true)?.is_none() {
        return Ok(None);
    }
    if src != dst {
        // Destination type is checked before anything is popped.
        get_list(&mut ctx.db, dst, true)?;
    }
    // Redis's order: the push event on `dst`, then the pop event (and `del`) on `src`.
    let v = pop_raw(ctx, src, from, 1);
    let Some(v) = v.into_iter().next() else {
        return Ok(None);
    };
    push_values(ctx, dst, &[Bytes::copy_from_slice(&v)], to, false)?;
    finish_pop(ctx, src, from);
    Ok(Some(v))
}

fn reply_moved(ctx: &mut Ctx, v: Option<Vec<u8>>) {
    match v {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
}

pub fn lmove(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let from = parse_end(&args[3])?;
    let to = parse_end(&args[4])?;
    let v = move_one(ctx, &args[1], &args[2], from, to)?;
    reply_moved(ctx, v);
    Ok(())
}

pub fn rpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let v = move_one(ctx, &args[1], &args[2], End::Right, End::Left)?;
    reply_moved(ctx, v);
    Ok(())
}

/// Parsed LMPOP arguments (shared with BLMPOP later): keys, end, count.
pub fn parse_mpop(
    args: &[Bytes],
    numkeys_idx: usize,
) -> Result<(Vec<Bytes>, End, usize), CmdError> {
    let (keys, end, count) = super::coll::parse_mpop_args(args, numkeys_idx, parse_end)?;
    Ok((keys, end, count as usize))
}

/// LMPOP/BLMPOP core: pops up to `count` elements from the first non-empty list of `keys` and
/// writes the `[key, [elements]]` reply; returns false (nothing written) when all are empty.
pub(crate) fn mpop_first(
    ctx: &mut Ctx,
    keys: &[Bytes],
    end: End,
    count: usize,
) -> Result<bool, CmdError> {
    for k in keys {
        let non_empty = get_list(&mut ctx.db, k, true)?.is_some_and(|l| !l.is_empty());
        if !non_empty {
            continue;
        }
        let v = pop_n(ctx, k, end, count);
        ctx.out.array(2);
        ctx.out.bulk(k);
        ctx.out.array(v.len());
        for e in &v {
            ctx.out.bulk(e);
        }
        return Ok(true);
    }
    Ok(false)
}

pub fn lmpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (keys, end, count) = parse_mpop(args, 1)?;
    if !mpop_first(ctx, &keys, end, count)? {
        ctx.out.null_array();
    }
    Ok(())
}

/// Key positions of LMPOP (`numkeys` at 1).
pub fn lmpop_keys(args: &[Bytes]) -> smallvec::SmallVec<[usize; 4]> {
    numkeys_at(args, 1)
}
