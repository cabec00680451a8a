//! String commands: SET family, GET family, counters, ranges. Bitmaps, LCS and INCRBYFLOAT's
//! long-double arithmetic live in `strings_ext.rs`.

use bytes::Bytes;

use cinnabar_protocol::parser::parse_i64;

use super::Ctx;
use crate::error::{CmdError, CmdResult};
use crate::notify::{self, notify};
use crate::types::Value;

pub use super::strings_ext::{
    bitcount, bitfield, bitfield_ro, bitop, bitpos, getbit, incrbyfloat, lcs, setbit,
};

/// Reads a string value: Ok(None) when missing, WRONGTYPE for other types.
pub fn read_string(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<u8>>, CmdError> {
    match ctx.db.lookup_read(key) {
        None => Ok(None),
        Some(e) => match e.value.string_bytes() {
            Some(b) => Ok(Some(b.into_owned())),
            None => Err(CmdError::WrongType),
        },
    }
}

/// Writes the GET reply for `key` without copying the value.
fn reply_get(ctx: &mut Ctx, key: &[u8]) -> CmdResult {
    let out = &mut *ctx.out;
    match ctx.db.lookup_read(key) {
        None => out.null(),
        Some(e) => match &e.value {
            Value::Int(n) => out.bulk_int(*n),
            Value::Str(s) => out.bulk(s.as_bytes()),
            Value::Raw(v) => out.bulk(v),
            _ => return Err(CmdError::WrongType),
        },
    }
    Ok(())
}

pub fn get(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    reply_get(ctx, &args[1])
}

#[derive(PartialEq)]
enum Cond {
    None,
    Nx,
    Xx,
}

/// Options of SET / GETEX, parsed with the exact acceptance rules of Redis 7.0's
/// `parseExtendedStringArgumentsOrReply` (repeating an option is allowed; conflicting ones are
/// a syntax error; the expire value is validated only after all options parsed).
#[derive(Default)]
struct ExtArgs<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// (ms unit, absolute, raw value)
    expire: Option<(bool, bool, &'a [u8])>,
}

fn parse_ext<'a>(args: &'a [Bytes], start: usize, is_set: bool) -> Result<ExtArgs<'a>, CmdError> {
    let mut o = ExtArgs::default();
    let mut i = start;
    while i < args.len() {
        let a = args[i].to_ascii_uppercase();
        let next = args.get(i + 1);
        let kind = o.expire.map(|(ms, abs, _)| (ms, abs));
        let other_expire = |want: (bool, bool)| kind.is_some_and(|k| k != want);
        match a.as_slice() {
            b"NX" if is_set && !o.xx => o.nx = true,
            b"XX" if is_set && !o.nx => o.xx = true,
            b"GET" if is_set => o.get = true,
            b"KEEPTTL" if is_set && !o.persist && kind.is_none() => o.keepttl = true,
            b"PERSIST" if !is_set && kind.is_none() && !o.keepttl => o.persist = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if next.is_some() => {
                let want = match a.as_slice() {
                    b"EX" => (false, false),
                    b"PX" => (true, false),
                    b"EXAT" => (false, true),
                    _ => (true, true),
                };
                if o.keepttl || o.persist || other_expire(want) {
                    return Err(CmdError::Syntax);
                }
                o.expire = Some((want.0, want.1, next.map(|b| b.as_ref()).unwrap_or_default()));
                i += 1;
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    Ok(o)
}

pub fn set(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let o = parse_ext(args, 3, true)?;
    let expire_at = match o.expire {
        Some((ms, abs, raw)) => {
            let n = parse_i64(raw).ok_or(CmdError::NotInteger)?;
            Some(expire_to_abs(ctx, n, ms, abs, "set")?)
        }
        None => None,
    };
    let cond = if o.nx {
        Cond::Nx
    } else if o.xx {
        Cond::Xx
    } else {
        Cond::None
    };
    set_generic(ctx, &args[1], &args[2], cond, expire_at, o.keepttl, o.get)
}

/// Converts a relative/absolute seconds/ms expiry to absolute ms, with Redis's validation.
fn expire_to_abs(ctx: &Ctx, n: i64, ms: bool, abs: bool, name: &str) -> Result<i64, CmdError> {
    let invalid = || CmdError::Msg(format!("ERR invalid expire time in '{name}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let mut v = if ms {
        n
    } else {
        n.checked_mul(1000).ok_or_else(invalid)?
    };
    if !abs {
        v = v.checked_add(ctx.now_ms()).ok_or_else(invalid)?;
    }
    Ok(v)
}

fn set_generic(
    ctx: &mut Ctx,
    key: &[u8],
    val: &[u8],
    cond: Cond,
    expire_at: Option<i64>,
    keepttl: bool,
    get: bool,
) -> CmdResult {
    if cond == Cond::None && !keepttl && !get {
        // Plain SET: one probe, whatever the key held before.
        ctx.db.set(key, Value::string(val), expire_at.unwrap_or(0));
        notify(ctx, notify::STRING, "set", key);
        if expire_at.is_some() {
            notify(ctx, notify::GENERIC, "expire", key);
        }
        ctx.out.ok();
        return Ok(());
    }
    let mut old_exp = 0;
    let existing = match ctx.db.lookup_write(key) {
        Some(e) => {
            old_exp = e.expire_at_ms;
            if get {
                match e.value.string_bytes() {
                    Some(b) => Some(Some(b.into_owned())),
                    None => return Err(CmdError::WrongType),
                }
            } else {
                Some(None)
            }
        }
        None => None,
    };
    let exists = existing.is_some();
    let ok = match cond {
        Cond::Nx => !exists,
        Cond::Xx => exists,
        Cond::None => true,
    };
    if ok {
        let exp = if keepttl {
            old_exp
        } else {
            expire_at.unwrap_or(0)
        };
        ctx.db.set(key, Value::string(val), exp);
        notify(ctx, notify::STRING, "set", key);
        if expire_at.is_some() {
            notify(ctx, notify::GENERIC, "expire", key);
        }
    }
    if get {
        match existing.flatten() {
            Some(b) => ctx.out.bulk(&b),
            None => ctx.out.null(),
        }
    } else if ok {
        ctx.out.ok();
    } else {
        ctx.out.null();
    }
    Ok(())
}

pub fn setnx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if ctx.db.lookup_write(&args[1]).is_some() {
        ctx.out.int(0);
    } else {
        ctx.db.set(&args[1], Value::string(&args[2]), 0);
        notify(ctx, notify::STRING, "set", &args[1]);
        ctx.out.int(1);
    }
    Ok(())
}

fn setex_generic(ctx: &mut Ctx, args: &[Bytes], ms: bool) -> CmdResult {
    let n = parse_i64(&args[2]).ok_or(CmdError::NotInteger)?;
    let name = ctx.name;
    let at = expire_to_abs(ctx, n, ms, false, name)?;
    ctx.db.set(&args[1], Value::string(&args[3]), at);
    notify(ctx, notify::STRING, "set", &args[1]);
    notify(ctx, notify::GENERIC, "expire", &args[1]);
    ctx.out.ok();
    Ok(())
}

pub fn setex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    setex_generic(ctx, args, false)
}

pub fn psetex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    setex_generic(ctx, args, true)
}

pub fn getex(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let o = parse_ext(args, 2, false)?;
    let persist = o.persist;
    let new_exp = match o.expire {
        Some((ms, abs, raw)) => {
            let n = parse_i64(raw).ok_or(CmdError::NotInteger)?;
            Some(expire_to_abs(ctx, n, ms, abs, "getex")?)
        }
        None => None,
    };
    let Some(v) = read_string(ctx, key)? else {
        ctx.out.null();
        return Ok(());
    };
    if let Some(at) = new_exp {
        if at <= ctx.now_ms() {
            ctx.db.remove(key);
            notify(ctx, notify::GENERIC, "del", key);
        } else {
            ctx.db.set_expire(key, at);
            notify(ctx, notify::GENERIC, "expire", key);
        }
    } else if persist
        && ctx
            .db
            .lookup_write(key)
            .is_some_and(|e| e.expire_at_ms != 0)
    {
        ctx.db.set_expire(key, 0);
        notify(ctx, notify::GENERIC, "persist", key);
    }
    ctx.out.bulk(&v);
    Ok(())
}

pub fn getdel(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let Some(v) = read_string(ctx, &args[1])? else {
        ctx.out.null();
        return Ok(());
    };
    ctx.db.remove(&args[1]);
    notify(ctx, notify::GENERIC, "del", &args[1]);
    ctx.out.bulk(&v);
    Ok(())
}

pub fn getset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    set_generic(ctx, &args[1], &args[2], Cond::None, None, false, true)
}

pub fn mget(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    ctx.out.array(args.len() - 1);
    for k in &args[1..] {
        let out = &mut *ctx.out;
        match ctx.db.lookup_read(k).map(|e| &e.value) {
            Some(Value::Int(n)) => out.bulk_int(*n),
            Some(Value::Str(s)) => out.bulk(s.as_bytes()),
            Some(Value::Raw(v)) => out.bulk(v),
            _ => out.null(),
        }
    }
    Ok(())
}

pub fn mset(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Arity("mset".into()));
    }
    for p in args[1..].chunks(2) {
        ctx.db.set(&p[0], Value::string(&p[1]), 0);
        notify(ctx, notify::STRING, "set", &p[0]);
    }
    ctx.out.ok();
    Ok(())
}

pub fn msetnx(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Arity("msetnx".into()));
    }
    for p in args[1..].chunks(2) {
        if ctx.db.lookup_write(&p[0]).is_some() {
            ctx.out.int(0);
            return Ok(());
        }
    }
    for p in args[1..].chunks(2) {
        ctx.db.set(&p[0], Value::string(&p[1]), 0);
        notify(ctx, notify::STRING, "set", &p[0]);
    }
    ctx.out.int(1);
    Ok(())
}

/// Rejects results longer than proto-max-bulk-len like Redis's checkStringLength.
pub fn check_string_length(ctx: &Ctx, total: u64) -> CmdResult {
    if total > ctx.srv.settings().proto_max_bulk_len_bytes {
        return Err(CmdError::err(
            "string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    Ok(())
}

pub fn append(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let cur_len = match ctx.db.lookup_write(key) {
        None => None,
        Some(e) => Some(e.value.string_len().ok_or(CmdError::WrongType)?),
    };
    match cur_len {
        None => {
            ctx.db.set(
                key,
                Value::Str(crate::keyspace::SmallBytes::new(&args[2])),
                0,
            );
            notify(ctx, notify::STRING, "append", key);
            ctx.out.int(args[2].len() as i64);
        }
        Some(len) => {
            check_string_length(ctx, (len + args[2].len()) as u64)?;
            let e = ctx.db.lookup_write(key).ok_or(CmdError::NoSuchKey)?;
            let v = e.value.make_raw().ok_or(CmdError::WrongType)?;
            v.extend_from_slice(&args[2]);
            let n = v.len();
            ctx.db.touch_write();
            notify(ctx, notify::STRING, "append", key);
            ctx.out.int(n as i64);
        }
    }
    Ok(())
}

pub fn strlen(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = match ctx.db.lookup_read(&args[1]) {
        None => 0,
        Some(e) => e.value.string_len().ok_or(CmdError::WrongType)?,
    };
    ctx.out.int(n as i64);
    Ok(())
}

fn incr_generic(ctx: &mut Ctx, key: &[u8], by: i64) -> CmdResult {
    let cur = match ctx.db.lookup_write(key) {
        None => None,
        Some(e) => Some(match &e.value {
            Value::Int(n) => *n,
            v => {
                let b = v.string_bytes().ok_or(CmdError::WrongType)?;
                parse_i64(&b).ok_or(CmdError::NotInteger)?
            }
        }),
    };
    let base = cur.unwrap_or(0);
    let n = base.checked_add(by).ok_or(CmdError::Overflow)?;
    match ctx.db.lookup_write(key) {
        Some(e) => {
            e.value = Value::Int(n);
            ctx.db.touch_write();
        }
        None => ctx.db.set(key, Value::Int(n), 0),
    }
    notify(ctx, notify::STRING, "incrby", key);
    ctx.out.int(n);
    Ok(())
}

pub fn incr(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    incr_generic(ctx, &args[1], 1)
}

pub fn decr(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    incr_generic(ctx, &args[1], -1)
}

pub fn incrby(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = parse_i64(&args[2]).ok_or(CmdError::NotInteger)?;
    incr_generic(ctx, &args[1], by)
}

pub fn decrby(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let by = parse_i64(&args[2]).ok_or(CmdError::NotInteger)?;
    if by == i64::MIN {
        return Err(CmdError::err("decrement would overflow"));
    }
    incr_generic(ctx, &args[1], -by)
}

pub fn setrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let offset = parse_i64(&args[2]).ok_or(CmdError::NotInteger)?;
    if offset < 0 {
        return Err(CmdError::err("offset is out of range"));
    }
    let val = &args[3];
    let cur_len = match ctx.db.lookup_write(key) {
        None => None,
        Some(e) => Some(e.value.string_len().ok_or(CmdError::WrongType)?),
    };
    if val.is_empty() {
        ctx.out.int(cur_len.unwrap_or(0) as i64);
        return Ok(());
    }
    check_string_length(ctx, offset as u64 + val.len() as u64)?;
    let offset = offset as usize;
    if cur_len.is_none() {
        ctx.db.set(key, Value::Raw(Box::default()), 0);
    }
    let e = ctx.db.lookup_write(key).ok_or(CmdError::NoSuchKey)?;
    let v = e.value.make_raw().ok_or(CmdError::WrongType)?;
    if v.len() < offset + val.len() {
        v.resize(offset + val.len(), 0);
    }
    v[offset..offset + val.len()].copy_from_slice(val);
    let n = v.len();
    ctx.db.touch_write();
    notify(ctx, notify::STRING, "setrange", key);
    ctx.out.int(n as i64);
    Ok(())
}

pub fn getrange(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let start = parse_i64(&args[2]).ok_or(CmdError::NotInteger)?;
    let end = parse_i64(&args[3]).ok_or(CmdError::NotInteger)?;
    let Some(v) = read_string(ctx, &args[1])? else {
        ctx.out.bulk(b"");
        return Ok(());
    };
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        ctx.out.bulk(b"");
        return Ok(());
    }
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if e < 0 {
        e = 0;
    }
    if e >= len {
        e = len - 1;
    }
    if s > e || len == 0 {
        ctx.out.bulk(b"");
    } else {
        ctx.out.bulk(&v[s as usize..=e as usize]);
    }
    Ok(())
}
