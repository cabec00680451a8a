//! Sorted-set commands: ZADD ZINCRBY ZRANGE (BYSCORE BYLEX REV LIMIT WITHSCORES) ZRANGESTORE
//! ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREVRANGE ZRANK ZREVRANK ZSCORE
//! ZMSCORE ZREM ZREMRANGEBYRANK/SCORE/LEX ZCARD ZCOUNT ZLEXCOUNT ZPOPMIN ZPOPMAX ZMPOP
//! ZRANDMEMBER ZUNION ZINTER ZDIFF (+STORE) ZINTERCARD ZSCAN — argument order, error texts and
//! reply shapes as Redis 7.0's t_zset.c.

use bytes::Bytes;
use rand::Rng;

use cinnabar_protocol::float::format_double;

use super::coll::{
    double_arg, get_set, get_zset, int_arg, numkeys_at, parse_scan_opts, positive_arg, range_arg,
    reply_scan, strtod, zset_limits,
};
use super::hashes::distinct_indices;
use super::keys::parse_cursor;
use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::notify::{self, notify};
use crate::types::set::Set;
use crate::types::zset::{LexBound, ZSet};
use crate::types::Value;

const NAN_ERR: &str = "ERR resulting score is not a number (NaN)";

// ---------------------------------------------------------------------------------------
// Range parsing

/// One bound of `zslParseRange`: C strtod with only a fully-empty string meaning 0.
fn range_value(a: &[u8]) -> Option<f64> {
    if a.is_empty() {
        return Some(0.0);
    }
    let start = a
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))?;
    let (v, _) = strtod(&a[start..])?;
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// Score range: (min, minex, max, maxex).
pub fn parse_score_range(min: &[u8], max: &[u8]) -> Result<(f64, bool, f64, bool), CmdError> {
    let one = |a: &[u8]| -> Option<(f64, bool)> {
        match a.first() {
            Some(b'(') => range_value(&a[1..]).map(|v| (v, true)),
            _ => range_value(a).map(|v| (v, false)),
        }
    };
    match (one(min), one(max)) {
        (Some((a, ae)), Some((b, be))) => Ok((a, ae, b, be)),
        _ => Err(CmdError::err("min or max is not a float")),
    }
}

fn lex_item(a: &[u8]) -> Option<LexBound> {
    match a.first()? {
        b'+' if a.len() == 1 => Some(LexBound::PosInf),
        b'-' if a.len() == 1 => Some(LexBound::NegInf),
        b'(' => Some(LexBound::Excl(a[1..].to_vec())),
        b'[' => Some(LexBound::Incl(a[1..].to_vec())),
        _ => None,
    }
}

pub fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<(LexBound, LexBound), CmdError> {
    match (lex_item(min), lex_item(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(CmdError::err("min or max not valid string range item")),
    }
}

/// Sanitizes rank indices like Redis; None when the range is empty.
fn rank_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    super::lists::clamp_range(start, end, len)
}

// ---------------------------------------------------------------------------------------
// ZADD / ZINCRBY

fn zadd_generic(ctx: &mut Ctx, args: &[Bytes], force_incr: bool) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, force_incr);
    let mut idx = 2;
    while idx < args.len() {
        let o = &args[idx];
        if o.eq_ignore_ascii_case(b"nx") {
            nx = true;
        } else if o.eq_ignore_ascii_case(b"xx") {
            xx = true;
        } else if o.eq_ignore_ascii_case(b"ch") {
            ch = true;
        } else if o.eq_ignore_ascii_case(b"incr") {
            incr = true;
        } else if o.eq_ignore_ascii_case(b"gt") {
            gt = true;
        } else if o.eq_ignore_ascii_case(b"lt") {
            lt = true;
        } else {
            break;
        }
        idx += 1;
    }
    if force_incr {
        idx = 2;
    }
    let rest = &args[idx..];
    if rest.is_empty() || rest.len() % 2 == 1 {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(CmdError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(CmdError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    let elements = rest.len() / 2;
    if incr && elements > 1 {
        return Err(CmdError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let mut scores = Vec::with_capacity(elements);
    for p in rest.chunks(2) {
        scores.push(double_arg(&p[0])?);
    }
    let lim = zset_limits(ctx);
    let key = &args[1];
    let mut processed = 0;
    let mut added = 0;
    let mut updated = 0;
    let mut last_score = 0.0;
    let exists = get_zset(&mut ctx.db, key, true)?.is_some();
    if !exists && !xx {
        ctx.db.set(
            key,
            Value::ZSet(Box::new(ZSet::new_for(rest[1].len(), lim))),
            0,
        );
    }
    let mut err = None;
    if exists || !xx {
        if let Some(z) = get_zset(&mut ctx.db, key, true)? {
            for (p, &score) in rest.chunks(2).zip(&scores) {
                let m = &p[1];
                match z.score(m) {
                    Some(cur) => {
                        if nx {
                            continue;
                        }
                        let mut s = score;
                        if incr {
                            s += cur;
                            if s.is_nan() {
                                err = Some(CmdError::msg(NAN_ERR));
                                break;
                            }
                        }
                        if (lt && s >= cur) || (gt && s <= cur) {
                            continue;
                        }
                        last_score = s;
                        processed += 1;
                        if s != cur {
                            z.add(m, s, lim);
                            updated += 1;
                        }
                    }
                    None => {
                        if xx {
                            continue;
                        }
                        z.add(m, score, lim);
                        added += 1;
                        processed += 1;
                        last_score = score;
                    }
                }
            }
        }
    }
    if added + updated > 0 {
        ctx.db.touch_write();
        notify(ctx, notify::ZSET, if incr { "zincr" } else { "zadd" }, key);
    }
    if let Some(e) = err {
        return Err(e);
    }
    if incr {
        if processed > 0 {
            ctx.out.double(last_score);
        } else {
            ctx.out.null();
        }
    } else {
        ctx.out.int(if ch { added + updated } else { added });
    }
    Ok(())
}

pub fn zadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, args, false)
}

pub fn zincrby(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, args, true)
}

// ---------------------------------------------------------------------------------------
// ZRANGE family

#[derive(Clone, Copy, PartialEq)]
enum RangeType {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq)]
enum Dir {
    Auto,
    Fwd,
    Rev,
}

/// Computes the (ascending) ranks a range query selects, in emission order.
fn select(
    z: &ZSet,
    rt: RangeType,
    rev: bool,
    a: &[u8],
    b: &[u8],
    offset: i64,
    limit: i64,
) -> Result<(usize, usize), CmdError> {
    let len = z.len();
    let (lo, hi) = match rt {
        RangeType::Rank | RangeType::Auto => {
            let s = int_arg(a)?;
            let e = int_arg(b)?;
            match rank_range(s, e, len) {
                None => return Ok((0, 0)),
                Some((s, e)) => {
                    if rev {
                        (len - 1 - e, len - s)
                    } else {
                        (s, e + 1)
                    }
                }
            }
        }
        RangeType::Score => {
            let (min, minex, max, maxex) = parse_score_range(a, b)?;
            z.score_range(min, minex, max, maxex)
        }
        RangeType::Lex => {
            let (min, max) = parse_lex_range(a, b)?;
            z.lex_range(&min, &max)
        }
    };
    if rt == RangeType::Score || rt == RangeType::Lex {
        if offset < 0 || (offset > 0 && offset as usize >= len) {
            return Ok((0, 0));
        }
        let avail = hi - lo;
        let skip = (offset as usize).min(avail);
        let take = if limit < 0 {
            avail - skip
        } else {
            (limit as usize).min(avail - skip)
        };
        if rev {
            return Ok((hi - skip - take, hi - skip));
        }
        return Ok((lo + skip, lo + skip + take));
    }
    Ok((lo, hi))
}

fn reply_pairs(ctx: &mut Ctx, pairs: &[(Vec<u8>, f64)], withscores: bool) {
    let resp3 = ctx.out.is_resp3();
    ctx.out.array(if withscores && !resp3 {
        pairs.len() * 2
    } else {
        pairs.len()
    });
    for (m, s) in pairs {
        if withscores && resp3 {
            ctx.out.array(2);
        }
        ctx.out.bulk(m);
        if withscores {
            ctx.out.double(*s);
        }
    }
}

fn store_pairs(ctx: &mut Ctx, dst: &[u8], pairs: Vec<(Vec<u8>, f64)>, event: &str) {
    let n = pairs.len();
    if n == 0 {
        if ctx.db.remove(dst).is_some() {
            notify(ctx, notify::GENERIC, "del", dst);
        }
    } else {
        let lim = zset_limits(ctx);
        ctx.db
            .set(dst, Value::ZSet(Box::new(ZSet::from_pairs(pairs, lim))), 0);
        notify(ctx, notify::ZSET, event, dst);
    }
    ctx.out.int(n as i64);
}

fn zrange_generic(
    ctx: &mut Ctx,
    args: &[Bytes],
    argc_start: usize,
    store: Option<&[u8]>,
    mut rt: RangeType,
    mut dir: Dir,
) -> CmdResult {
    let key = &args[argc_start];
    let mut minidx = argc_start + 1;
    let mut maxidx = argc_start + 2;
    let mut withscores = false;
    let mut offset: i64 = 0;
    let mut limit: i64 = -1;
    let mut j = argc_start + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if store.is_none() && a.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
        } else if a.eq_ignore_ascii_case(b"limit") && left >= 2 {
            offset = int_arg(&args[j + 1])?;
            limit = int_arg(&args[j + 2])?;
            j += 2;
        } else if dir == Dir::Auto && a.eq_ignore_ascii_case(b"rev") {
            dir = Dir::Rev;
        } else if rt == RangeType::Auto && a.eq_ignore_ascii_case(b"bylex") {
            rt = RangeType::Lex;
        } else if rt == RangeType::Auto && a.eq_ignore_ascii_case(b"byscore") {
            rt = RangeType::Score;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if dir == Dir::Auto {
        dir = Dir::Fwd;
    }
    if rt == RangeType::Auto {
        rt = RangeType::Rank;
    }
    if limit != -1 && rt == RangeType::Rank {
        return Err(CmdError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && rt == RangeType::Lex {
        return Err(CmdError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let rev = dir == Dir::Rev;
    if rev && rt != RangeType::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    // Validate the range before the lookup, as Redis does.
    match rt {
        RangeType::Rank | RangeType::Auto => {
            int_arg(&args[minidx])?;
            int_arg(&args[maxidx])?;
        }
        RangeType::Score => {
            parse_score_range(&args[minidx], &args[maxidx])?;
        }
        RangeType::Lex => {
            parse_lex_range(&args[minidx], &args[maxidx])?;
        }
    }
    let pairs = match get_zset(&mut ctx.db, key, false)? {
        None => Vec::new(),
        Some(z) => {
            let (s, e) = select(z, rt, rev, &args[minidx], &args[maxidx], offset, limit)?;
            z.collect_ranks(s, e, rev)
        }
    };
    match store {
        Some(dst) => store_pairs(ctx, dst, pairs, "zrangestore"),
        None => reply_pairs(ctx, &pairs, withscores),
    }
    Ok(())
}

pub fn zrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeType::Auto, Dir::Auto)
}
pub fn zrangestore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let dst = args[1].clone();
    zrange_generic(ctx, args, 2, Some(&dst), RangeType::Auto, Dir::Auto)
}
pub fn zrevrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeType::Rank, Dir::Rev)
}
pub fn zrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeType::Score, Dir::Fwd)
}
pub fn zrevrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeType::Score, Dir::Rev)
}
pub fn zrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeType::Lex, Dir::Fwd)
}
pub fn zrevrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeType::Lex, Dir::Rev)
}

// ---------------------------------------------------------------------------------------
// Point queries

fn rank_generic(ctx: &mut Ctx, args: &[Bytes], rev: bool) -> CmdResult {
    let out = &mut *ctx.out;
    match get_zset(&mut ctx.db, &args[1], false)? {
        None => out.null(),
        Some(z) => match z.rank(&args[2]) {
            None => out.null(),
            Some(r) => out.int(if rev { z.len() - 1 - r } else { r } as i64),
        },
    }
    Ok(())
}

pub fn zrank(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    rank_generic(ctx, args, false)
}
pub fn zrevrank(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    rank_generic(ctx, args, true)
}

pub fn zscore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let out = &mut *ctx.out;
    match get_zset(&mut ctx.db, &args[1], false)?.and_then(|z| z.score(&args[2])) {
        Some(s) => out.double(s),
        None => out.null(),
    }
    Ok(())
}

pub fn zmscore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let out = &mut *ctx.out;
    let z = get_zset(&mut ctx.db, &args[1], false)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        match z.as_ref().and_then(|z| z.score(m)) {
            Some(s) => out.double(s),
            None => out.null(),
        }
    }
    Ok(())
}

pub fn zcard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = get_zset(&mut ctx.db, &args[1], false)?.map_or(0, |z| z.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (min, minex, max, maxex) = parse_score_range(&args[2], &args[3])?;
    let n = get_zset(&mut ctx.db, &args[1], false)?.map_or(0, |z| {
        let (lo, hi) = z.score_range(min, minex, max, maxex);
        hi - lo
    });
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zlexcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (min, max) = parse_lex_range(&args[2], &args[3])?;
    let n = get_zset(&mut ctx.db, &args[1], false)?.map_or(0, |z| {
        let (lo, hi) = z.lex_range(&min, &max);
        hi - lo
    });
    ctx.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Removal

/// Deletes `key` (and notifies `del`) when its sorted set is empty.
fn delete_if_empty(ctx: &mut Ctx, key: &[u8]) {
    if let Ok(Some(z)) = get_zset(&mut ctx.db, key, true) {
        if z.is_empty() {
            ctx.db.remove(key);
            notify(ctx, notify::GENERIC, "del", key);
        }
    }
}

pub fn zrem(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(z) = get_zset(&mut ctx.db, &args[1], true)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let mut n = 0;
    for m in &args[2..] {
        if z.remove(m) {
            n += 1;
            if z.is_empty() {
                break;
            }
        }
    }
    if n > 0 {
        ctx.db.touch_write();
        notify(ctx, notify::ZSET, "zrem", &args[1]);
        delete_if_empty(ctx, &args[1]);
    }
    ctx.out.int(n);
    Ok(())
}

fn zremrange_generic(ctx: &mut Ctx, args: &[Bytes], rt: RangeType) -> CmdResult {
    match rt {
        RangeType::Score => {
            parse_score_range(&args[2], &args[3])?;
        }
        RangeType::Lex => {
            parse_lex_range(&args[2], &args[3])?;
        }
        _ => {
            int_arg(&args[2])?;
            int_arg(&args[3])?;
        }
    }
    let Some(z) = get_zset(&mut ctx.db, &args[1], true)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let (s, e) = select(z, rt, false, &args[2], &args[3], 0, -1)?;
    let n = z.remove_ranks(s, e);
    if n > 0 {
        ctx.db.touch_write();
        let event = match rt {
            RangeType::Score => "zremrangebyscore",
            RangeType::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        notify(ctx, notify::ZSET, event, &args[1]);
        delete_if_empty(ctx, &args[1]);
    }
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zremrangebyrank(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, args, RangeType::Rank)
}
pub fn zremrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, args, RangeType::Score)
}
pub fn zremrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, args, RangeType::Lex)
}

// ---------------------------------------------------------------------------------------
// Pops

/// `genericZpopCommand`.
pub(crate) fn zpop_generic(
    ctx: &mut Ctx,
    keys: &[Bytes],
    max: bool,
    emitkey: bool,
    count: i64,
    nested: bool,
    nil_when_empty: bool,
) -> CmdResult {
    let mut found: Option<&Bytes> = None;
    for k in keys {
        if get_zset(&mut ctx.db, k, true)?.is_some() {
            found = Some(k);
            break;
        }
    }
    let Some(key) = found else {
        if nil_when_empty {
            ctx.out.null_array();
        } else {
            ctx.out.array(0);
        }
        return Ok(());
    };
    if count == 0 {
        ctx.out.array(0);
        return Ok(());
    }
    let count = if count == -1 { 1 } else { count as usize };
    let popped = match get_zset(&mut ctx.db, key, true)? {
        Some(z) => {
            let len = z.len();
            let n = count.min(len);
            let v = if max {
                z.collect_ranks(len - n, len, true)
            } else {
                z.collect_ranks(0, n, false)
            };
            if max {
                z.remove_ranks(len - n, len);
            } else {
                z.remove_ranks(0, n);
            }
            v
        }
        None => Vec::new(),
    };
    ctx.db.touch_write();
    notify(
        ctx,
        notify::ZSET,
        if max { "zpopmax" } else { "zpopmin" },
        key,
    );
    delete_if_empty(ctx, key);
    let n = popped.len();
    match (nested, emitkey) {
        (false, false) => ctx.out.array(n * 2),
        (true, false) => ctx.out.array(n),
        (false, true) => {
            ctx.out.array(n * 2 + 1);
            ctx.out.bulk(key);
        }
        (true, true) => {
            ctx.out.array(2);
            ctx.out.bulk(key);
            ctx.out.array(n);
        }
    }
    for (m, s) in &popped {
        if nested {
            ctx.out.array(2);
        }
        ctx.out.bulk(m);
        ctx.out.double(*s);
    }
    Ok(())
}

fn zpop_minmax(ctx: &mut Ctx, args: &[Bytes], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match args.get(2) {
        Some(a) => positive_arg(a, None)?,
        None => -1,
    };
    let nested = ctx.out.is_resp3() && count != -1;
    zpop_generic(ctx, &args[1..2], max, false, count, nested, false)
}

pub fn zpopmin(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zpop_minmax(ctx, args, false)
}
pub fn zpopmax(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    zpop_minmax(ctx, args, true)
}

/// Parses ZMPOP-style arguments: (keys, max, count).
pub fn parse_zmpop(
    args: &[Bytes],
    numkeys_idx: usize,
) -> Result<(Vec<Bytes>, bool, i64), CmdError> {
    super::coll::parse_mpop_args(args, numkeys_idx, |w| {
        if w.eq_ignore_ascii_case(b"min") {
            Ok(false)
        } else if w.eq_ignore_ascii_case(b"max") {
            Ok(true)
        } else {
            Err(CmdError::Syntax)
        }
    })
}

pub fn zmpop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (keys, max, count) = parse_zmpop(args, 1)?;
    zpop_generic(ctx, &keys, max, true, count, true, true)
}

pub fn zmpop_keys(args: &[Bytes]) -> smallvec::SmallVec<[usize; 4]> {
    numkeys_at(args, 1)
}

// ---------------------------------------------------------------------------------------
// ZRANDMEMBER

pub fn zrandmember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() >= 3 {
        let l = range_arg(&args[2], -i64::MAX, i64::MAX, None)?;
        let mut withscores = false;
        if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withscores")) {
            return Err(CmdError::Syntax);
        } else if args.len() == 4 {
            withscores = true;
            if !(-i64::MAX / 2..=i64::MAX / 2).contains(&l) {
                return Err(CmdError::err("value is out of range"));
            }
        }
        return zrandmember_count(ctx, &args[1], l, withscores);
    }
    let out = &mut *ctx.out;
    match get_zset(&mut ctx.db, &args[1], false)? {
        None => out.null(),
        Some(z) => {
            let i = rand::thread_rng().gen_range(0..z.len());
            let v = z.collect_ranks(i, i + 1, false);
            if let Some((m, _)) = v.first() {
                out.bulk(m);
            }
        }
    }
    Ok(())
}

fn zrandmember_count(ctx: &mut Ctx, key: &[u8], l: i64, withscores: bool) -> CmdResult {
    let Some(z) = get_zset(&mut ctx.db, key, false)? else {
        ctx.out.array(0);
        return Ok(());
    };
    let (count, uniq) = if l >= 0 {
        (l as u64, true)
    } else {
        (l.unsigned_abs(), false)
    };
    if count == 0 {
        ctx.out.array(0);
        return Ok(());
    }
    let size = z.len();
    let resp3 = ctx.out.is_resp3();
    let emit = |ctx: &mut Ctx, m: &[u8], s: f64| {
        if withscores && resp3 {
            ctx.out.array(2);
        }
        ctx.out.bulk(m);
        if withscores {
            ctx.out.double(s);
        }
    };
    if !uniq || count == 1 {
        ctx.out.array(if withscores && !resp3 {
            count * 2
        } else {
            count
        } as usize);
        let mut rng = rand::thread_rng();
        let mut left = count;
        let mut batch = Vec::new();
        while left > 0 {
            let n = left.min(1024);
            left -= n;
            batch.clear();
            {
                let Some(z) = get_zset(&mut ctx.db, key, false)? else {
                    break;
                };
                for _ in 0..n {
                    let i = rng.gen_range(0..size);
                    batch.extend(z.collect_ranks(i, i + 1, false));
                }
            }
            for (m, s) in &batch {
                emit(ctx, m, *s);
            }
        }
        return Ok(());
    }
    let picks: Vec<(Vec<u8>, f64)> = if count as usize >= size {
        // Redis iterates the whole set from the tail.
        z.collect_ranks(0, size, true)
    } else {
        let mut v = Vec::with_capacity(count as usize);
        for i in distinct_indices(size, count as usize) {
            v.extend(z.collect_ranks(i, i + 1, false));
        }
        v
    };
    ctx.out.array(if withscores && !resp3 {
        picks.len() * 2
    } else {
        picks.len()
    });
    for (m, s) in &picks {
        emit(ctx, m, *s);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF / ZINTERCARD

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq)]
enum Aggr {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, val: f64, a: Aggr) {
    match a {
        Aggr::Sum => {
            *target += val;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggr::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggr::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

/// An input of the set operations: a sorted set, a plain set (scores 1) or nothing.
enum Src {
    Z(ZSet),
    S(Set),
    None,
}

impl Src {
    fn len(&self) -> usize {
        match self {
            Src::Z(z) => z.len(),
            Src::S(s) => s.len(),
            Src::None => 0,
        }
    }
    fn find(&self, m: &[u8]) -> Option<f64> {
        match self {
            Src::Z(z) => z.score(m),
            Src::S(s) => s.contains(m).then_some(1.0),
            Src::None => None,
        }
    }
    /// Elements in Redis's iteration order (from the tail for sorted sets).
    fn elements(&self) -> Vec<(Vec<u8>, f64)> {
        match self {
            Src::Z(z) => z.collect_ranks(0, z.len(), true),
            Src::S(s) => {
                let mut v = Vec::with_capacity(s.len());
                s.for_each(|m| v.push((m.to_vec(), 1.0)));
                v
            }
            Src::None => Vec::new(),
        }
    }
}

fn load_src(ctx: &mut Ctx, key: &[u8], write: bool) -> Result<Src, CmdError> {
    if let Ok(Some(z)) = get_zset(&mut ctx.db, key, write) {
        return Ok(Src::Z(z.clone()));
    }
    match get_set(&mut ctx.db, key, write) {
        Ok(Some(s)) => Ok(Src::S(s.clone())),
        Ok(None) => Ok(Src::None),
        Err(e) => Err(e),
    }
}

fn setop_generic(
    ctx: &mut Ctx,
    args: &[Bytes],
    dst: Option<&[u8]>,
    numkeys_idx: usize,
    op: SetOp,
    card_only: bool,
) -> CmdResult {
    let setnum = int_arg(&args[numkeys_idx])?;
    if setnum < 1 {
        return Err(CmdError::Msg(format!(
            "ERR at least 1 input key is needed for '{}' command",
            ctx.name
        )));
    }
    if setnum as usize > args.len() - (numkeys_idx + 1) {
        return Err(CmdError::Syntax);
    }
    let setnum = setnum as usize;
    let mut srcs: Vec<(Src, f64)> = Vec::with_capacity(setnum);
    let mut j = numkeys_idx + 1;
    for _ in 0..setnum {
        srcs.push((load_src(ctx, &args[j], dst.is_some())?, 1.0));
        j += 1;
    }
    let mut aggr = Aggr::Sum;
    let mut withscores = false;
    let mut limit: i64 = 0;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != SetOp::Diff
            && !card_only
            && remaining > setnum
            && a.eq_ignore_ascii_case(b"weights")
        {
            j += 1;
            for s in srcs.iter_mut() {
                s.1 = super::coll::parse_double(&args[j])
                    .ok_or_else(|| CmdError::err("weight value is not a float"))?;
                j += 1;
            }
        } else if op != SetOp::Diff
            && !card_only
            && remaining >= 2
            && a.eq_ignore_ascii_case(b"aggregate")
        {
            let v = &args[j + 1];
            aggr = if v.eq_ignore_ascii_case(b"sum") {
                Aggr::Sum
            } else if v.eq_ignore_ascii_case(b"min") {
                Aggr::Min
            } else if v.eq_ignore_ascii_case(b"max") {
                Aggr::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if dst.is_none() && !card_only && a.eq_ignore_ascii_case(b"withscores") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && a.eq_ignore_ascii_case(b"limit") {
            limit = positive_arg(&args[j + 1], Some("LIMIT can't be negative"))?;
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if op != SetOp::Diff {
        srcs.sort_by_key(|s| s.0.len());
    }
    let mut result: Vec<(Vec<u8>, f64)> = Vec::new();
    let mut card = 0usize;
    match op {
        SetOp::Inter => {
            if srcs[0].0.len() > 0 {
                for (m, sc) in srcs[0].0.elements() {
                    let mut score = srcs[0].1 * sc;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    let mut all = true;
                    for (src, w) in &srcs[1..] {
                        match src.find(&m) {
                            Some(v) => aggregate(&mut score, v * w, aggr),
                            None => {
                                all = false;
                                break;
                            }
                        }
                    }
                    if !all {
                        continue;
                    }
                    if card_only {
                        card += 1;
                        if limit != 0 && card >= limit as usize {
                            break;
                        }
                    } else {
                        result.push((m, score));
                    }
                }
            }
        }
        SetOp::Union => {
            let mut acc: hashbrown::HashMap<Vec<u8>, f64> = hashbrown::HashMap::new();
            for (src, w) in &srcs {
                for (m, sc) in src.elements() {
                    let mut score = w * sc;
                    if score.is_nan() {
                        score = 0.0;
                    }
                    match acc.get_mut(&m) {
                        Some(t) => aggregate(t, score, aggr),
                        None => {
                            acc.insert(m, score);
                        }
                    }
                }
            }
            result = acc.into_iter().collect();
        }
        SetOp::Diff => {
            for (m, sc) in srcs[0].0.elements() {
                if !srcs[1..].iter().any(|(s, _)| s.find(&m).is_some()) {
                    result.push((m, sc));
                }
            }
        }
    }
    if card_only {
        ctx.out.int(card as i64);
        return Ok(());
    }
    result.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    match dst {
        Some(d) => {
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            store_pairs(ctx, d, result, event)
        }
        None => reply_pairs(ctx, &result, withscores),
    }
    Ok(())
}

pub fn zunion(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    setop_generic(ctx, args, None, 1, SetOp::Union, false)
}
pub fn zinter(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    setop_generic(ctx, args, None, 1, SetOp::Inter, false)
}
pub fn zdiff(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    setop_generic(ctx, args, None, 1, SetOp::Diff, false)
}
pub fn zintercard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    setop_generic(ctx, args, None, 1, SetOp::Inter, true)
}
pub fn zunionstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let d = args[1].clone();
    setop_generic(ctx, args, Some(&d), 2, SetOp::Union, false)
}
pub fn zinterstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let d = args[1].clone();
    setop_generic(ctx, args, Some(&d), 2, SetOp::Inter, false)
}
pub fn zdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let d = args[1].clone();
    setop_generic(ctx, args, Some(&d), 2, SetOp::Diff, false)
}

/// Keys of ZUNION/ZINTER/ZDIFF/ZINTERCARD (numkeys at 1).
pub fn numkeys1_keys(args: &[Bytes]) -> smallvec::SmallVec<[usize; 4]> {
    numkeys_at(args, 1)
}

/// Keys of the STORE variants: the destination plus numkeys (at 2) sources.
pub fn store_keys(args: &[Bytes]) -> smallvec::SmallVec<[usize; 4]> {
    let mut v = numkeys_at(args, 2);
    v.insert(0, 1);
    v
}

// ---------------------------------------------------------------------------------------
// ZSCAN

pub fn zscan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[2])?;
    let Some(z) = get_zset(&mut ctx.db, &args[1], false)? else {
        reply_scan(ctx, 0, &[]);
        return Ok(());
    };
    let opts = parse_scan_opts(args, 3)?;
    let mut items = Vec::new();
    let next = z.scan(cursor, opts.count, |m, s| {
        if opts.matches(m) {
            items.push(m.to_vec());
            items.push(format_double(s).into_bytes());
        }
    });
    reply_scan(ctx, next, &items);
    Ok(())
}
