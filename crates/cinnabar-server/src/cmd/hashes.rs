//! Hash commands: HSET HSETNX HMSET HGET HMGET HDEL HEXISTS HLEN HKEYS HVALS HGETALL HINCRBY
//! HINCRBYFLOAT HSTRLEN HRANDFIELD HSCAN.

use bytes::Bytes;
use rand::Rng;

use super::coll::{get_hash, hash_limits, int_arg, parse_scan_opts, range_arg, reply_scan};
use super::keys::parse_cursor;
use super::strings_ext::LongDouble;
use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::notify::{self, notify};
use crate::types::hash::Hash;
use crate::types::Value;

/// The hash at `key` for writing, created when missing.
fn hash_create<'b>(ctx: &'b mut Ctx, key: &[u8]) -> Result<&'b mut Hash, CmdError> {
    if get_hash(&mut ctx.db, key, true)?.is_none() {
        ctx.db.set(key, Value::Hash(Box::default()), 0);
    }
    get_hash(&mut ctx.db, key, true)?.ok_or(CmdError::NoSuchKey)
}

fn hset_generic(ctx: &mut Ctx, args: &[Bytes]) -> Result<i64, CmdError> {
    if args.len() % 2 == 1 {
        return Err(CmdError::Arity(ctx.name.to_string()));
    }
    let lim = hash_limits(ctx);
    let h = hash_create(ctx, &args[1])?;
    h.prepare(args[2..].iter().map(|a| a.len()), lim);
    let mut created = 0;
    for pair in args[2..].chunks(2) {
        if h.set(&pair[0], &pair[1], lim) {
            created += 1;
        }
    }
    ctx.db.touch_write();
    notify(ctx, notify::HASH, "hset", &args[1]);
    Ok(created)
}

pub fn hset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = hset_generic(ctx, args)?;
    ctx.out.int(n);
    Ok(())
}

pub fn hmset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    hset_generic(ctx, args)?;
    ctx.out.ok();
    Ok(())
}

pub fn hsetnx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let lim = hash_limits(ctx);
    let h = hash_create(ctx, &args[1])?;
    if h.contains(&args[2]) {
        ctx.out.int(0);
        return Ok(());
    }
    h.prepare([args[2].len(), args[3].len()].into_iter(), lim);
    h.set(&args[2], &args[3], lim);
    ctx.db.touch_write();
    notify(ctx, notify::HASH, "hset", &args[1]);
    ctx.out.int(1);
    Ok(())
}

pub fn hget(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let out = &mut *ctx.out;
    match get_hash(&mut ctx.db, &args[1], false)?.and_then(|h| h.get(&args[2])) {
        Some(v) => out.bulk(v),
        None => out.null(),
    }
    Ok(())
}

pub fn hmget(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let out = &mut *ctx.out;
    let h = get_hash(&mut ctx.db, &args[1], false)?;
    out.array(args.len() - 2);
    for f in &args[2..] {
        match h.as_ref().and_then(|h| h.get(f)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
    }
    Ok(())
}

pub fn hdel(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(h) = get_hash(&mut ctx.db, &args[1], true)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let mut n = 0;
    for f in &args[2..] {
        if h.remove(f) {
            n += 1;
            if h.is_empty() {
                break;
            }
        }
    }
    let empty = h.is_empty();
    if n > 0 {
        ctx.db.touch_write();
        notify(ctx, notify::HASH, "hdel", &args[1]);
    }
    if empty {
        ctx.db.remove(&args[1]);
        notify(ctx, notify::GENERIC, "del", &args[1]);
    }
    ctx.out.int(n);
    Ok(())
}

pub fn hlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = get_hash(&mut ctx.db, &args[1], false)?.map_or(0, |h| h.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn hexists(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let b = get_hash(&mut ctx.db, &args[1], false)?.is_some_and(|h| h.contains(&args[2]));
    ctx.out.int(b as i64);
    Ok(())
}

pub fn hstrlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = get_hash(&mut ctx.db, &args[1], false)?
        .and_then(|h| h.get(&args[2]))
        .map_or(0, |v| v.len());
    ctx.out.int(n as i64);
    Ok(())
}

fn getall_generic(ctx: &mut Ctx, key: &[u8], keys: bool, vals: bool) -> CmdResult {
    let out = &mut *ctx.out;
    let Some(h) = get_hash(&mut ctx.db, key, false)? else {
        if keys && vals {
            out.map(0);
        } else {
            out.array(0);
        }
        return Ok(());
    };
    if keys && vals {
        out.map(h.len());
    } else {
        out.array(h.len());
    }
    h.for_each(|k, v| {
        if keys {
            out.bulk(k);
        }
        if vals {
            out.bulk(v);
        }
    });
    Ok(())
}

pub fn hkeys(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    getall_generic(ctx, &args[1], true, false)
}
pub fn hvals(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    getall_generic(ctx, &args[1], false, true)
}
pub fn hgetall(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    getall_generic(ctx, &args[1], true, true)
}

pub fn hincrby(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let incr = int_arg(&args[3])?;
    let lim = hash_limits(ctx);
    let h = hash_create(ctx, &args[1])?;
    let cur = match h.get(&args[2]) {
        Some(v) => cinnabar_protocol::parser::parse_i64(v)
            .ok_or_else(|| CmdError::err("hash value is not an integer"))?,
        None => 0,
    };
    let new = cur.checked_add(incr).ok_or(CmdError::Overflow)?;
    let s = itoa::Buffer::new().format(new).as_bytes().to_vec();
    h.prepare([args[2].len()].into_iter(), lim);
    h.set(&args[2], &s, lim);
    ctx.db.touch_write();
    notify(ctx, notify::HASH, "hincrby", &args[1]);
    ctx.out.int(new);
    Ok(())
}

/// HINCRBYFLOAT: Redis's long-double arithmetic and "human" formatting, via the shared
/// [`LongDouble`] of the string commands.
pub fn hincrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let incr = LongDouble::parse(&args[3]).ok_or(CmdError::NotFloat)?;
    if !incr.is_finite() {
        return Err(CmdError::err("value is NaN or Infinity"));
    }
    let lim = hash_limits(ctx);
    let h = hash_create(ctx, &args[1])?;
    let cur = match h.get(&args[2]) {
        Some(v) => {
            LongDouble::parse(v).ok_or_else(|| CmdError::err("hash value is not a float"))?
        }
        None => LongDouble::from_i64(0),
    };
    let new = cur.add(incr);
    if !new.is_finite() {
        return Err(CmdError::err("increment would produce NaN or Infinity"));
    }
    let s = new.to_human_string();
    h.prepare([args[2].len()].into_iter(), lim);
    h.set(&args[2], s.as_bytes(), lim);
    ctx.db.touch_write();
    notify(ctx, notify::HASH, "hincrbyfloat", &args[1]);
    ctx.out.bulk(s.as_bytes());
    Ok(())
}

fn reply_pair(ctx: &mut Ctx, k: &[u8], v: &[u8], withvalues: bool) {
    if withvalues && ctx.out.is_resp3() {
        ctx.out.array(2);
    }
    ctx.out.bulk(k);
    if withvalues {
        ctx.out.bulk(v);
    }
}

/// Picks `count` distinct indices out of `0..size` (count < size), in random order.
pub fn distinct_indices(size: usize, count: usize) -> Vec<usize> {
    let mut rng = rand::thread_rng();
    if count * 3 > size {
        // Partial Fisher-Yates over all indices.
        let mut idx: Vec<usize> = (0..size).collect();
        for i in 0..count {
            let j = rng.gen_range(i..size);
            idx.swap(i, j);
        }
        idx.truncate(count);
        idx
    } else {
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let i = rng.gen_range(0..size);
            if seen.insert(i) {
                out.push(i);
            }
        }
        out
    }
}

pub fn hrandfield(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() >= 3 {
        let l = range_arg(&args[2], -i64::MAX, i64::MAX, None)?;
        let mut withvalues = false;
        if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withvalues")) {
            return Err(CmdError::Syntax);
        } else if args.len() == 4 {
            withvalues = true;
            if !(-i64::MAX / 2..=i64::MAX / 2).contains(&l) {
                return Err(CmdError::err("value is out of range"));
            }
        }
        return hrandfield_count(ctx, &args[1], l, withvalues);
    }
    let out = &mut *ctx.out;
    match get_hash(&mut ctx.db, &args[1], false)? {
        None => out.null(),
        Some(h) => {
            let i = rand::thread_rng().gen_range(0..h.len());
            out.bulk(h.at(i).0);
        }
    }
    Ok(())
}

fn hrandfield_count(ctx: &mut Ctx, key: &[u8], l: i64, withvalues: bool) -> CmdResult {
    let Some(h) = get_hash(&mut ctx.db, key, false)? else {
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
    let size = h.len();
    let resp2_pairs = withvalues && !ctx.out.is_resp3();
    // Own a copy so replies can be written without holding the keyspace borrow.
    let mut pick: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if !uniq || count == 1 {
        ctx.out
            .array(if resp2_pairs { count * 2 } else { count } as usize);
        let mut rng = rand::thread_rng();
        // Stream in batches so huge counts never allocate up front.
        let mut left = count;
        while left > 0 {
            let batch = left.min(1024);
            left -= batch;
            pick.clear();
            {
                let Some(h) = get_hash(&mut ctx.db, key, false)? else {
                    break;
                };
                for _ in 0..batch {
                    let (k, v) = h.at(rng.gen_range(0..size));
                    pick.push((k.to_vec(), v.to_vec()));
                }
            }
            for (k, v) in &pick {
                reply_pair(ctx, k, v, withvalues);
            }
        }
        return Ok(());
    }
    if count as usize >= size {
        h.for_each(|k, v| pick.push((k.to_vec(), v.to_vec())));
    } else {
        for i in distinct_indices(size, count as usize) {
            let (k, v) = h.at(i);
            pick.push((k.to_vec(), v.to_vec()));
        }
    }
    ctx.out.array(if resp2_pairs {
        pick.len() * 2
    } else {
        pick.len()
    });
    for (k, v) in &pick {
        reply_pair(ctx, k, v, withvalues);
    }
    Ok(())
}

pub fn hscan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[2])?;
    let Some(h) = get_hash(&mut ctx.db, &args[1], false)? else {
        reply_scan(ctx, 0, &[]);
        return Ok(());
    };
    let opts = parse_scan_opts(args, 3)?;
    let mut items = Vec::new();
    let next = h.scan(cursor, opts.count, |k, v| {
        if opts.matches(k) {
            items.push(k.to_vec());
            items.push(v.to_vec());
        }
    });
    reply_scan(ctx, next, &items);
    Ok(())
}
