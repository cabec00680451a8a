//! Set commands: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SMOVE SINTER
//! SINTERCARD SINTERSTORE SUNION SUNIONSTORE SDIFF SDIFFSTORE SSCAN, following the algorithms
//! (and therefore the reply orders) of Redis 7.0's t_set.c.

use bytes::Bytes;
use rand::Rng;

use super::coll::{
    get_set, max_intset, numkeys_at, parse_scan_opts, positive_arg, range_arg, reply_scan,
};
use super::hashes::distinct_indices;
use super::keys::parse_cursor;
use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::notify::{self, notify};
use crate::types::set::Set;
use crate::types::Value;

pub fn sadd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let max = max_intset(ctx);
    if get_set(&mut ctx.db, &args[1], true)?.is_none() {
        ctx.db
            .set(&args[1], Value::Set(Box::new(Set::for_member(&args[2]))), 0);
    }
    let Some(s) = get_set(&mut ctx.db, &args[1], true)? else {
        return Err(CmdError::NoSuchKey);
    };
    let mut n = 0;
    for m in &args[2..] {
        if s.add(m, max) {
            n += 1;
        }
    }
    if n > 0 {
        ctx.db.touch_write();
        notify(ctx, notify::SET, "sadd", &args[1]);
    }
    ctx.out.int(n);
    Ok(())
}

/// Deletes `key` (and notifies `del`) when its set is empty.
fn delete_if_empty(ctx: &mut Ctx, key: &[u8]) {
    if let Ok(Some(s)) = get_set(&mut ctx.db, key, true) {
        if s.is_empty() {
            ctx.db.remove(key);
            notify(ctx, notify::GENERIC, "del", key);
        }
    }
}

pub fn srem(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(s) = get_set(&mut ctx.db, &args[1], true)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let mut n = 0;
    for m in &args[2..] {
        if s.remove(m) {
            n += 1;
            if s.is_empty() {
                break;
            }
        }
    }
    if n > 0 {
        ctx.db.touch_write();
        notify(ctx, notify::SET, "srem", &args[1]);
        delete_if_empty(ctx, &args[1]);
    }
    ctx.out.int(n);
    Ok(())
}

pub fn sismember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let b = get_set(&mut ctx.db, &args[1], false)?.is_some_and(|s| s.contains(&args[2]));
    ctx.out.int(b as i64);
    Ok(())
}

pub fn smismember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let out = &mut *ctx.out;
    let s = get_set(&mut ctx.db, &args[1], false)?;
    out.array(args.len() - 2);
    for m in &args[2..] {
        out.int(s.as_ref().is_some_and(|s| s.contains(m)) as i64);
    }
    Ok(())
}

pub fn scard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = get_set(&mut ctx.db, &args[1], false)?.map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}

fn reply_set(ctx: &mut Ctx, s: &Set) {
    reply_members(ctx, s, true)
}

fn reply_members(ctx: &mut Ctx, s: &Set, as_set: bool) {
    if as_set {
        ctx.out.set(s.len());
    } else {
        ctx.out.array(s.len());
    }
    let out = &mut *ctx.out;
    s.for_each(|m| match m {
        crate::types::set::Member::Int(n) => out.bulk_int(n),
        crate::types::set::Member::Bytes(b) => out.bulk(b),
    });
}

pub fn smembers(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let out = &mut *ctx.out;
    match get_set(&mut ctx.db, &args[1], false)? {
        None => out.set(0),
        Some(s) => {
            out.set(s.len());
            s.for_each(|m| match m {
                crate::types::set::Member::Int(n) => out.bulk_int(n),
                crate::types::set::Member::Bytes(b) => out.bulk(b),
            });
        }
    }
    Ok(())
}

pub fn spop(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() == 3 {
        return spop_count(ctx, args);
    } else if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let Some(s) = get_set(&mut ctx.db, &args[1], true)? else {
        ctx.out.null();
        return Ok(());
    };
    let i = rand::thread_rng().gen_range(0..s.len());
    let v = s.remove_at(i);
    ctx.db.touch_write();
    notify(ctx, notify::SET, "spop", &args[1]);
    delete_if_empty(ctx, &args[1]);
    ctx.out.bulk(&v);
    Ok(())
}

fn spop_count(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let max = max_intset(ctx);
    let count = positive_arg(&args[2], None)? as u64;
    let Some(s) = get_set(&mut ctx.db, &args[1], true)? else {
        ctx.out.set(0);
        return Ok(());
    };
    if count == 0 {
        ctx.out.set(0);
        return Ok(());
    }
    let size = s.len();
    if count as usize >= size {
        // Whole set, in the order a fresh union of it would have.
        let u = union_of(&[s], max);
        notify(ctx, notify::SET, "spop", &args[1]);
        ctx.db.remove(&args[1]);
        notify(ctx, notify::GENERIC, "del", &args[1]);
        reply_set(ctx, &u);
        return Ok(());
    }
    let mut popped = Vec::with_capacity(count as usize);
    let mut rng = rand::thread_rng();
    for _ in 0..count {
        let i = rng.gen_range(0..s.len());
        popped.push(s.remove_at(i));
    }
    ctx.db.touch_write();
    notify(ctx, notify::SET, "spop", &args[1]);
    ctx.out.set(popped.len());
    for p in &popped {
        ctx.out.bulk(p);
    }
    Ok(())
}

pub fn srandmember(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() == 3 {
        return srandmember_count(ctx, args);
    } else if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let out = &mut *ctx.out;
    match get_set(&mut ctx.db, &args[1], false)? {
        None => out.null(),
        Some(s) => {
            let i = rand::thread_rng().gen_range(0..s.len());
            out.bulk(&s.at(i).to_vec());
        }
    }
    Ok(())
}

fn srandmember_count(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let max = max_intset(ctx);
    let l = range_arg(&args[2], -i64::MAX, i64::MAX, None)?;
    let (count, uniq) = if l >= 0 {
        (l as u64, true)
    } else {
        (l.unsigned_abs(), false)
    };
    let Some(s) = get_set(&mut ctx.db, &args[1], false)? else {
        ctx.out.array(0);
        return Ok(());
    };
    if count == 0 {
        ctx.out.array(0);
        return Ok(());
    }
    let size = s.len();
    if !uniq || count == 1 {
        ctx.out.array(count as usize);
        let mut rng = rand::thread_rng();
        let mut left = count;
        let mut batch: Vec<Vec<u8>> = Vec::new();
        while left > 0 {
            let n = left.min(1024);
            left -= n;
            batch.clear();
            {
                let Some(s) = get_set(&mut ctx.db, &args[1], false)? else {
                    break;
                };
                for _ in 0..n {
                    batch.push(s.at(rng.gen_range(0..size)).to_vec());
                }
            }
            for b in &batch {
                ctx.out.bulk(b);
            }
        }
        return Ok(());
    }
    if count as usize >= size {
        let u = union_of(&[s], max);
        reply_members(ctx, &u, false);
        return Ok(());
    }
    let picks: Vec<Vec<u8>> = distinct_indices(size, count as usize)
        .into_iter()
        .map(|i| s.at(i).to_vec())
        .collect();
    ctx.out.array(picks.len());
    for p in &picks {
        ctx.out.bulk(p);
    }
    Ok(())
}

pub fn smove(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (src, dst, m) = (&args[1], &args[2], &args[3]);
    let max = max_intset(ctx);
    if get_set(&mut ctx.db, src, true)?.is_none() {
        ctx.out.int(0);
        return Ok(());
    }
    get_set(&mut ctx.db, dst, true)?;
    if src == dst {
        let b = get_set(&mut ctx.db, src, true)?.is_some_and(|s| s.contains(m));
        ctx.out.int(b as i64);
        return Ok(());
    }
    let removed = get_set(&mut ctx.db, src, true)?.is_some_and(|s| s.remove(m));
    if !removed {
        ctx.out.int(0);
        return Ok(());
    }
    notify(ctx, notify::SET, "srem", src);
    delete_if_empty(ctx, src);
    if get_set(&mut ctx.db, dst, true)?.is_none() {
        ctx.db.set(dst, Value::Set(Box::new(Set::for_member(m))), 0);
    }
    if let Some(d) = get_set(&mut ctx.db, dst, true)? {
        if d.add(m, max) {
            notify(ctx, notify::SET, "sadd", dst);
        }
    }
    ctx.db.touch_write();
    ctx.out.int(1);
    Ok(())
}

/// Looks up every key as a set (missing = None), WRONGTYPE on the first non-set, and returns
/// owned copies (the keys may alias each other and the destination).
fn load_sets(ctx: &mut Ctx, keys: &[Bytes], write: bool) -> Result<Vec<Option<Set>>, CmdError> {
    let mut v = Vec::with_capacity(keys.len());
    for k in keys {
        v.push(get_set(&mut ctx.db, k, write)?.map(|s| s.clone()));
    }
    Ok(v)
}

/// The union of `sets` built like Redis: a fresh intset that converts as members arrive.
fn union_of(sets: &[&Set], max: usize) -> Set {
    let mut out = Set::Int(Vec::new());
    for s in sets {
        s.for_each(|m| {
            out.add(&m.to_vec(), max);
        });
    }
    out
}

/// Stores `result` at `dst` (or deletes it when empty) and replies with the cardinality.
fn store_result(ctx: &mut Ctx, dst: &[u8], result: Set, event: &str) {
    let n = result.len();
    if n > 0 {
        ctx.db.set(dst, Value::Set(Box::new(result)), 0);
        notify(ctx, notify::SET, event, dst);
    } else if ctx.db.remove(dst).is_some() {
        notify(ctx, notify::GENERIC, "del", dst);
    }
    ctx.out.int(n as i64);
}

/// SINTER / SINTERSTORE / SINTERCARD / SMEMBERS.
fn inter_generic(
    ctx: &mut Ctx,
    keys: &[Bytes],
    dst: Option<&[u8]>,
    card_only: bool,
    limit: usize,
) -> CmdResult {
    let max = max_intset(ctx);
    let loaded = load_sets(ctx, keys, dst.is_some())?;
    if loaded.iter().any(|s| s.is_none()) {
        if let Some(d) = dst {
            if ctx.db.remove(d).is_some() {
                notify(ctx, notify::GENERIC, "del", d);
            }
            ctx.out.int(0);
        } else if card_only {
            ctx.out.int(0);
        } else {
            ctx.out.set(0);
        }
        return Ok(());
    }
    let mut sets: Vec<Set> = loaded.into_iter().flatten().collect();
    sets.sort_by_key(|s| s.len());
    let (first, rest) = sets.split_at(1);
    let first = &first[0];
    let mut result = Set::Int(Vec::new());
    let mut members: Vec<Vec<u8>> = Vec::new();
    let mut card = 0usize;
    let mut stop = false;
    first.for_each(|m| {
        if stop {
            return;
        }
        let b = m.to_vec();
        if rest.iter().all(|s| s.contains(&b)) {
            if card_only {
                card += 1;
                if limit != 0 && card >= limit {
                    stop = true;
                }
            } else if dst.is_some() {
                result.add(&b, max);
            } else {
                members.push(b);
            }
        }
    });
    if card_only {
        ctx.out.int(card as i64);
    } else if let Some(d) = dst {
        store_result(ctx, d, result, "sinterstore");
    } else {
        ctx.out.set(members.len());
        for m in &members {
            ctx.out.bulk(m);
        }
    }
    Ok(())
}

pub fn sinter(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    inter_generic(ctx, &args[1..], None, false, 0)
}

pub fn sinterstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    inter_generic(ctx, &args[2..], Some(&args[1]), false, 0)
}

pub fn sintercard(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let numkeys = range_arg(
        &args[1],
        1,
        i64::MAX,
        Some("numkeys should be greater than 0"),
    )? as usize;
    if numkeys > args.len() - 2 {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let mut limit = 0i64;
    let mut j = 2 + numkeys;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if args[j].eq_ignore_ascii_case(b"LIMIT") && more > 0 {
            j += 1;
            limit = positive_arg(&args[j], Some("LIMIT can't be negative"))?;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    inter_generic(ctx, &args[2..2 + numkeys], None, true, limit as usize)
}

pub fn sintercard_keys(args: &[Bytes]) -> smallvec::SmallVec<[usize; 4]> {
    numkeys_at(args, 1)
}

#[derive(PartialEq, Clone, Copy)]
enum Op {
    Union,
    Diff,
}

fn union_diff_generic(ctx: &mut Ctx, keys: &[Bytes], dst: Option<&[u8]>, op: Op) -> CmdResult {
    let max = max_intset(ctx);
    let loaded = load_sets(ctx, keys, dst.is_some())?;
    let sameset = keys.iter().skip(1).any(|k| *k == keys[0]) && loaded[0].is_some();
    let mut result = Set::Int(Vec::new());
    match op {
        Op::Union => {
            for s in loaded.iter().flatten() {
                s.for_each(|m| {
                    result.add(&m.to_vec(), max);
                });
            }
        }
        Op::Diff if sameset => {}
        Op::Diff => {
            if let Some(first) = &loaded[0] {
                // Redis picks between two algorithms by estimated cost; both produce the same
                // members, and the output order follows the result set's own encoding.
                let mut work1: u64 = 0;
                let mut work2: u64 = 0;
                for s in loaded.iter().flatten() {
                    work1 += first.len() as u64;
                    work2 += s.len() as u64;
                }
                let work1 = work1 / 2;
                let algo1 = work1 <= work2;
                let others: Vec<&Set> = loaded[1..].iter().flatten().collect();
                if algo1 {
                    let mut others = others;
                    others.sort_by_key(|s| std::cmp::Reverse(s.len()));
                    first.for_each(|m| {
                        let b = m.to_vec();
                        if !others.iter().any(|s| s.contains(&b)) {
                            result.add(&b, max);
                        }
                    });
                } else {
                    first.for_each(|m| {
                        result.add(&m.to_vec(), max);
                    });
                    for s in others {
                        s.for_each(|m| {
                            result.remove(&m.to_vec());
                        });
                        if result.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
    }
    match dst {
        Some(d) => {
            let event = match op {
                Op::Union => "sunionstore",
                Op::Diff => "sdiffstore",
            };
            store_result(ctx, d, result, event)
        }
        None => reply_set(ctx, &result),
    }
    Ok(())
}

pub fn sunion(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    union_diff_generic(ctx, &args[1..], None, Op::Union)
}
pub fn sunionstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    union_diff_generic(ctx, &args[2..], Some(&args[1]), Op::Union)
}
pub fn sdiff(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    union_diff_generic(ctx, &args[1..], None, Op::Diff)
}
pub fn sdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    union_diff_generic(ctx, &args[2..], Some(&args[1]), Op::Diff)
}

pub fn sscan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[2])?;
    let Some(s) = get_set(&mut ctx.db, &args[1], false)? else {
        reply_scan(ctx, 0, &[]);
        return Ok(());
    };
    let opts = parse_scan_opts(args, 3)?;
    let mut items = Vec::new();
    let next = s.scan(cursor, opts.count, |m| {
        let b = m.to_vec();
        if opts.matches(&b) {
            items.push(b);
        }
    });
    reply_scan(ctx, next, &items);
    Ok(())
}
