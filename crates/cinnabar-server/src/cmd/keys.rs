//! Keyspace commands: DEL UNLINK EXISTS TYPE KEYS SCAN RANDOMKEY RENAME RENAMENX COPY MOVE TOUCH
//! OBJECT, and the expiry family (EXPIRE ... PERSIST, TTL ... PEXPIRETIME).

use bytes::Bytes;
use rand::Rng;

use cinnabar_protocol::parser::parse_i64;

use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::keyspace::SLOT_COUNT;
use crate::notify::{self, notify, notify_in};
use cinnabar_config::string_match;

/// Parses a database index: not an integer → NotInteger; negative or too large → "DB index is
/// out of range" (callers also check against `databases`).
pub fn parse_db_index(a: &Bytes) -> Result<u32, CmdError> {
    match parse_i64(a) {
        Some(n) if n >= 0 && n <= u32::MAX as i64 => Ok(n as u32),
        Some(_) => Err(CmdError::err("DB index is out of range")),
        None => Err(CmdError::NotInteger),
    }
}

pub fn del(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for k in &args[1..] {
        if ctx.db.remove(k).is_some() {
            notify(ctx, notify::GENERIC, "del", k);
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

pub fn unlink(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    del(ctx, args)
}

pub fn exists(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for k in &args[1..] {
        if ctx.db.lookup_read(k).is_some() {
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

pub fn type_cmd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let t = ctx.db.lookup_write(&args[1]).map(|e| e.value.type_name());
    if t.is_none() {
        notify(ctx, notify::KEY_MISS, "keymiss", &args[1]);
    }
    ctx.out.simple(t.unwrap_or("none"));
    Ok(())
}

pub fn keys(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let pat = args[1].clone();
    let all = pat.as_ref() == b"*";
    let mut found: Vec<Vec<u8>> = Vec::new();
    ctx.db.for_each_slot(|_, slot, now| {
        if slot.is_empty() {
            return true;
        }
        for e in slot.iter() {
            if e.expire_at_ms != 0 && e.expire_at_ms <= now {
                continue;
            }
            let k = e.key.as_bytes();
            if all || string_match(&pat, k, false) {
                found.push(k.to_vec());
            }
        }
        true
    });
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
    Ok(())
}

/// Parses a SCAN-family cursor exactly like Redis (`strtoul`, base 10): an optional sign, then
/// digits; "" is 0 and "-1" wraps to 2^64-1; leading space, trailing junk or overflow is
/// "invalid cursor".
pub fn parse_cursor(a: &[u8]) -> Result<u64, CmdError> {
    let invalid = || CmdError::err("invalid cursor");
    if a.is_empty() {
        return Ok(0);
    }
    let (neg, digits) = match a[0] {
        b'-' => (true, &a[1..]),
        b'+' => (false, &a[1..]),
        _ => (false, a),
    };
    if digits.is_empty() || !digits.iter().all(|c| c.is_ascii_digit()) {
        return Err(invalid());
    }
    let mut v: u64 = 0;
    for &c in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((c - b'0') as u64))
            .ok_or_else(invalid)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// SCAN cursor layout: the cursor is the next hash slot to visit (0 = start/finished).
/// Each call returns whole slots until COUNT keys are gathered, so every key present for the
/// whole iteration is returned exactly once (a slot is never split across calls).
pub fn scan(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[1])?;
    let mut count: i64 = 10;
    let mut pattern: Option<Bytes> = None;
    let mut typ: Option<Vec<u8>> = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        if args[i].eq_ignore_ascii_case(b"COUNT") && more >= 1 {
            count = parse_i64(&args[i + 1]).ok_or(CmdError::NotInteger)?;
            if count < 1 {
                return Err(CmdError::Syntax);
            }
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"MATCH") && more >= 1 {
            pattern = Some(args[i + 1].clone());
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"TYPE") && more >= 1 {
            typ = Some(args[i + 1].to_ascii_lowercase());
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut slot = cursor.min(SLOT_COUNT as u64) as usize;
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut next = 0u64;
    let now = ctx.now_ms();
    while slot < SLOT_COUNT {
        ctx.db.with_slot(slot as u16, |s, _| {
            for e in s.iter() {
                if e.expire_at_ms != 0 && e.expire_at_ms <= now {
                    continue;
                }
                let k = e.key.as_bytes();
                if let Some(p) = &pattern {
                    if !string_match(p, k, false) {
                        continue;
                    }
                }
                if let Some(t) = &typ {
                    if e.value.type_name().as_bytes() != t.as_slice() {
                        continue;
                    }
                }
                found.push(k.to_vec());
            }
        });
        slot += 1;
        if found.len() as i64 >= count {
            break;
        }
    }
    if slot < SLOT_COUNT {
        next = slot as u64;
    }
    ctx.out.array(2);
    let mut b = itoa::Buffer::new();
    ctx.out.bulk(b.format(next).as_bytes());
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
    Ok(())
}

pub fn randomkey(ctx: &mut Ctx, _args: &[Bytes]) -> CmdResult {
    let total = ctx.srv.keyspace.db(ctx.db.index as usize).key_count();
    if total == 0 {
        ctx.out.null();
        return Ok(());
    }
    let start = rand::thread_rng().gen_range(0..SLOT_COUNT);
    let mut picked: Option<Vec<u8>> = None;
    for off in 0..SLOT_COUNT {
        let slot = ((start + off) % SLOT_COUNT) as u16;
        let now = ctx.now_ms();
        picked = ctx.db.with_slot(slot, |s, _| {
            let live: Vec<&[u8]> = s
                .iter()
                .filter(|e| e.expire_at_ms == 0 || e.expire_at_ms > now)
                .map(|e| e.key.as_bytes())
                .collect();
            if live.is_empty() {
                None
            } else {
                Some(live[rand::thread_rng().gen_range(0..live.len())].to_vec())
            }
        });
        if picked.is_some() {
            break;
        }
    }
    match picked {
        Some(k) => ctx.out.bulk(&k),
        None => ctx.out.null(),
    }
    Ok(())
}

fn rename_generic(ctx: &mut Ctx, args: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&args[1], &args[2]);
    if ctx.db.lookup_write(src).is_none() {
        return Err(CmdError::NoSuchKey);
    }
    if src == dst {
        if nx {
            ctx.out.int(0);
        } else {
            ctx.out.ok();
        }
        return Ok(());
    }
    if nx && ctx.db.lookup_write(dst).is_some() {
        ctx.out.int(0);
        return Ok(());
    }
    let Some(e) = ctx.db.remove(src) else {
        return Err(CmdError::NoSuchKey);
    };
    ctx.db.remove(dst);
    let e = *e;
    ctx.db.set(dst, e.value, e.expire_at_ms);
    notify(ctx, notify::GENERIC, "rename_from", src);
    notify(ctx, notify::GENERIC, "rename_to", dst);
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

pub fn rename(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, args, false)
}

pub fn renamenx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, args, true)
}

pub fn copy(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let (src, dst) = (&args[1], &args[2]);
    let mut target_db = ctx.db.index;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"REPLACE") {
            replace = true;
            i += 1;
        } else if args[i].eq_ignore_ascii_case(b"DB") && i + 1 < args.len() {
            target_db = parse_db_index(&args[i + 1])?;
            if ctx.srv.is_cluster() && target_db != 0 {
                return Err(CmdError::err(
                    "Copying to another database is not allowed in cluster mode",
                ));
            }
            if target_db as usize >= ctx.srv.keyspace.db_count() {
                return Err(CmdError::err("DB index is out of range"));
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if src == dst && target_db == ctx.db.index {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    let cur = ctx.db.index;
    let Some((value, exp)) = ctx
        .db
        .lookup_write_in(cur, src)
        .map(|e| (e.value.deep_clone(), e.expire_at_ms))
    else {
        ctx.out.int(0);
        return Ok(());
    };
    if ctx.db.lookup_write_in(target_db, dst).is_some() {
        if !replace {
            ctx.out.int(0);
            return Ok(());
        }
        ctx.db.remove_in(target_db, dst);
    }
    ctx.db.set_in(target_db, dst, value, exp);
    notify_in(ctx, target_db, notify::GENERIC, "copy_to", dst);
    ctx.out.int(1);
    Ok(())
}

pub fn move_cmd(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.srv.is_cluster() {
        return Err(CmdError::err("MOVE is not allowed in cluster mode"));
    }
    let target = parse_db_index(&args[2])?;
    if target as usize >= ctx.srv.keyspace.db_count() {
        return Err(CmdError::err("DB index is out of range"));
    }
    let cur = ctx.db.index;
    if target == cur {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    if ctx.db.lookup_write_in(cur, &args[1]).is_none() {
        ctx.out.int(0);
        return Ok(());
    }
    if ctx.db.lookup_write_in(target, &args[1]).is_some() {
        ctx.out.int(0);
        return Ok(());
    }
    let Some(e) = ctx.db.remove_in(cur, &args[1]) else {
        ctx.out.int(0);
        return Ok(());
    };
    let e = *e;
    ctx.db.set_in(target, &args[1], e.value, e.expire_at_ms);
    notify_in(ctx, cur, notify::GENERIC, "move_from", &args[1]);
    notify_in(ctx, target, notify::GENERIC, "move_to", &args[1]);
    ctx.out.int(1);
    Ok(())
}

pub fn touch(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for k in &args[1..] {
        if ctx.db.lookup_write(k).is_some() {
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

pub fn object_encoding(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    match ctx
        .db
        .lookup_write(&args[2])
        .map(|e| e.value.encoding_name())
    {
        Some(enc) => ctx.out.bulk(enc.as_bytes()),
        None => ctx.out.null(),
    }
    Ok(())
}

/// OBJECT's lookup (LOOKUP_NOTOUCH): lazy expiry applies, but the access clock and the LFU
/// counter are left as they were. Returns the entry's (access_s, lfu) if it is live.
fn object_lookup_notouch(ctx: &mut Ctx, key: &[u8]) -> Option<(u32, u32)> {
    let before = {
        let db = ctx.db.index;
        let slot = ctx.db.slot_mut(db, key);
        slot.raw_get(key).map(|e| (e.access_s, e.lfu))
    }?;
    let e = ctx.db.lookup_write(key)?;
    (e.access_s, e.lfu) = before;
    Some(before)
}

pub fn object_freq(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some((_, lfu)) = object_lookup_notouch(ctx, &args[2]) else {
        ctx.out.null();
        return Ok(());
    };
    if !crate::evict::lfu_on() {
        return Err(CmdError::err(
            "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    ctx.out.int(crate::evict::lfu_counter(lfu) as i64);
    Ok(())
}

pub fn object_idletime(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let now_s = crate::keyspace::access_clock_s();
    let Some((access_s, _)) = object_lookup_notouch(ctx, &args[2]) else {
        ctx.out.null();
        return Ok(());
    };
    if crate::evict::lfu_on() {
        return Err(CmdError::err(
            "An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    ctx.out.int(now_s.saturating_sub(access_s) as i64);
    Ok(())
}

pub fn object_refcount(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    match ctx.db.lookup_write(&args[2]) {
        Some(e) => {
            // Redis shares integer objects 0..9999 (refcount INT_MAX) unless an LRU / LFU
            // maxmemory policy is in force. Decided from the current policy here; Redis
            // decides when the value is created (a policy switch later differs).
            let shared = ctx.srv.evict.shares_integers()
                && matches!(e.value, crate::types::Value::Int(n) if (0..10000).contains(&n));
            ctx.out.int(if shared { i32::MAX as i64 } else { 1 });
        }
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn object_help(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len() != 2 {
        return Err(CmdError::Arity("object".into()));
    }
    super::connection::help_reply(
        ctx,
        &[
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ],
    );
    Ok(())
}

/// EXPIRE family. `unit_ms` is 1000 for seconds, 1 for ms; `absolute` for *AT variants.
fn expire_generic(ctx: &mut Ctx, args: &[Bytes], unit_ms: i64, absolute: bool) -> CmdResult {
    let key = &args[1];
    let Some(when) = parse_i64(&args[2]) else {
        return Err(CmdError::NotInteger);
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        let l = a.to_ascii_lowercase();
        match l.as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Err(CmdError::Msg(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(a)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let name = ctx.name;
    let overflow = || CmdError::Msg(format!("ERR invalid expire time in '{name}' command"));
    let basetime = if absolute { 0 } else { ctx.now_ms() };
    let mut when_ms = when.checked_mul(unit_ms).ok_or_else(overflow)?;
    when_ms = when_ms.checked_add(basetime).ok_or_else(overflow)?;
    let Some(cur) = ctx.db.lookup_write(key).map(|e| e.expire_at_ms) else {
        ctx.out.int(0);
        return Ok(());
    };
    // Redis treats "no TTL" as infinite for GT/LT.
    if nx && cur != 0 || xx && cur == 0 {
        ctx.out.int(0);
        return Ok(());
    }
    if gt && (cur == 0 || when_ms <= cur) {
        ctx.out.int(0);
        return Ok(());
    }
    if lt && cur != 0 && when_ms >= cur {
        ctx.out.int(0);
        return Ok(());
    }
    if when_ms <= ctx.now_ms() {
        ctx.db.remove(key);
        notify(ctx, notify::GENERIC, "del", key);
    } else {
        ctx.db.set_expire(key, when_ms);
        notify(ctx, notify::GENERIC, "expire", key);
    }
    ctx.out.int(1);
    Ok(())
}

pub fn expire(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, 1000, false)
}
pub fn pexpire(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, 1, false)
}
pub fn expireat(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, 1000, true)
}
pub fn pexpireat(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, 1, true)
}

/// TTL family: `ms` selects milliseconds; `absolute` reports the expiry time itself.
fn ttl_generic(ctx: &mut Ctx, args: &[Bytes], ms: bool, absolute: bool) -> CmdResult {
    let now = ctx.now_ms();
    let Some(exp) = ctx.db.lookup_read(&args[1]).map(|e| e.expire_at_ms) else {
        ctx.out.int(-2);
        return Ok(());
    };
    if exp == 0 {
        ctx.out.int(-1);
        return Ok(());
    }
    let v = if absolute { exp } else { (exp - now).max(0) };
    ctx.out.int(if ms { v } else { (v + 500) / 1000 });
    Ok(())
}

pub fn ttl(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, args, false, false)
}
pub fn pttl(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, args, true, false)
}
pub fn expiretime(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, args, false, true)
}
pub fn pexpiretime(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, args, true, true)
}

pub fn persist(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let has = ctx.db.lookup_write(&args[1]).map(|e| e.expire_at_ms != 0);
    match has {
        Some(true) => {
            ctx.db.set_expire(&args[1], 0);
            notify(ctx, notify::GENERIC, "persist", &args[1]);
            ctx.out.int(1);
        }
        _ => ctx.out.int(0),
    }
    Ok(())
}
