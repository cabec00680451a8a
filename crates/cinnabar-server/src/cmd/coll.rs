//! Shared helpers of the collection commands (lists, hashes, sets, sorted sets, SORT):
//! Redis-exact argument parsing (integers, strtod-style doubles), encoding limits from the
//! settings snapshot, typed key access and the SCAN-family option parser.

use bytes::Bytes;

use cinnabar_protocol::parser::parse_i64;

use super::Ctx;
use crate::error::CmdError;
use crate::types::hash::HashLimits;
use crate::types::zset::ZLimits;

/// `getLongLongFromObject`: NotInteger on failure.
pub fn int_arg(a: &[u8]) -> Result<i64, CmdError> {
    parse_i64(a).ok_or(CmdError::NotInteger)
}

/// `getPositiveLongFromObjectOrReply`: `msg` (text after `ERR `) replaces both the
/// not-an-integer and the negative errors; without it Redis says "must be positive".
pub fn positive_arg(a: &[u8], msg: Option<&str>) -> Result<i64, CmdError> {
    range_arg(
        a,
        0,
        i64::MAX,
        Some(msg.unwrap_or("value is out of range, must be positive")),
    )
}

/// `getRangeLongFromObjectOrReply`: with `msg`, both a non-integer and an out-of-range value
/// reply `ERR <msg>`.
pub fn range_arg(a: &[u8], min: i64, max: i64, msg: Option<&str>) -> Result<i64, CmdError> {
    let n = match parse_i64(a) {
        Some(n) => n,
        None => {
            return Err(match msg {
                Some(m) => CmdError::err(m),
                None => CmdError::NotInteger,
            })
        }
    };
    if n < min || n > max {
        return Err(match msg {
            Some(m) => CmdError::err(m),
            None => CmdError::Msg(format!(
                "ERR value is out of range, value must between {min} and {max}"
            )),
        });
    }
    Ok(n)
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let rest = rest
        .strip_prefix("0x")
        .or_else(|| rest.strip_prefix("0X"))?;
    let (mant, exp) = match rest.find(['p', 'P']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    let (ip, fp) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if ip.is_empty() && fp.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in ip.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in fp.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if neg { -v } else { v })
}

/// C `strtod` over the whole argument. Returns the value and whether it over/underflowed
/// (ERANGE). None when the text is not entirely a number.
pub fn strtod(a: &[u8]) -> Option<(f64, bool)> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.as_bytes()[0].is_ascii_whitespace() {
        return None;
    }
    let body = s.trim_start_matches(['+', '-']);
    if s.len() - body.len() > 1 {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        let v = if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        return Some((v, false));
    }
    if lower.starts_with("nan") {
        return Some((f64::NAN, false));
    }
    if lower.starts_with("0x") {
        let v = parse_hex_float(s)?;
        return Some((v, v.is_infinite()));
    }
    if !body
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    let erange = if v.is_infinite() {
        true
    } else if v == 0.0 {
        let mant = lower.split('e').next().unwrap_or("");
        mant.bytes().any(|c| (b'1'..=b'9').contains(&c))
    } else {
        false
    };
    Some((v, erange))
}

/// `getDoubleFromObject`: rejects spaces, trailing junk, NaN, overflow and underflow to 0.
pub fn parse_double(a: &[u8]) -> Option<f64> {
    let (v, erange) = strtod(a)?;
    if v.is_nan() {
        return None;
    }
    if erange && (v.is_infinite() || v == 0.0) {
        return None;
    }
    Some(v)
}

pub fn double_arg(a: &[u8]) -> Result<f64, CmdError> {
    parse_double(a).ok_or(CmdError::NotFloat)
}

pub fn hash_limits(ctx: &Ctx) -> HashLimits {
    let s = ctx.srv.settings();
    HashLimits {
        max_entries: s.hash_max_listpack_entries,
        max_value: s.hash_max_listpack_value,
    }
}

pub fn zset_limits(ctx: &Ctx) -> ZLimits {
    let s = ctx.srv.settings();
    ZLimits {
        max_entries: s.zset_max_listpack_entries,
        max_value: s.zset_max_listpack_value,
    }
}

pub fn list_fill(ctx: &Ctx) -> i64 {
    ctx.srv.settings().list_max_listpack_size
}

pub fn max_intset(ctx: &Ctx) -> usize {
    ctx.srv.settings().set_max_intset_entries
}

/// Options of HSCAN/SSCAN/ZSCAN (parsed after the key lookup, like Redis).
pub struct ScanOpts {
    pub count: usize,
    pub pattern: Option<Bytes>,
}

pub fn parse_scan_opts(args: &[Bytes], from: usize) -> Result<ScanOpts, CmdError> {
    let mut o = ScanOpts {
        count: 10,
        pattern: None,
    };
    let mut i = from;
    while i < args.len() {
        let more = args.len() - i - 1;
        if args[i].eq_ignore_ascii_case(b"COUNT") && more >= 1 {
            let n = int_arg(&args[i + 1])?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            o.count = n.min(1 << 20) as usize;
            i += 2;
        } else if args[i].eq_ignore_ascii_case(b"MATCH") && more >= 1 {
            let p = args[i + 1].clone();
            o.pattern = if p.as_ref() == b"*" { None } else { Some(p) };
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(o)
}

impl ScanOpts {
    pub fn matches(&self, s: &[u8]) -> bool {
        match &self.pattern {
            None => true,
            Some(p) => cinnabar_config::string_match(p, s, false),
        }
    }
}

/// Writes a SCAN-family reply: `[cursor, [items...]]`.
pub fn reply_scan(ctx: &mut Ctx, cursor: u64, items: &[Vec<u8>]) {
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(cursor).as_bytes());
    ctx.out.array(items.len());
    for it in items {
        ctx.out.bulk(it);
    }
}

/// Keys of `numkeys`-style commands: `numkeys` at `idx`, keys after it (bounded by argc).
pub fn numkeys_at(args: &[Bytes], idx: usize) -> smallvec::SmallVec<[usize; 4]> {
    let mut v = smallvec::SmallVec::new();
    if let Some(n) = args.get(idx).and_then(|a| parse_i64(a)) {
        if n > 0 {
            let end = (idx + 1).saturating_add(n as usize).min(args.len());
            for i in idx + 1..end {
                v.push(i);
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_like_strtod() {
        assert_eq!(parse_double(b"1.5"), Some(1.5));
        assert_eq!(parse_double(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_double(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_double(b"0x10"), Some(16.0));
        assert_eq!(parse_double(b".5"), Some(0.5));
        assert_eq!(parse_double(b"1e-400"), None);
        assert_eq!(parse_double(b"1e400"), None);
        assert_eq!(parse_double(b"nan"), None);
        assert_eq!(parse_double(b" 1"), None);
        assert_eq!(parse_double(b"1 "), None);
        assert_eq!(parse_double(b""), None);
        assert_eq!(parse_double(b"0"), Some(0.0));
        assert_eq!(parse_double(b"0e5"), Some(0.0));
        assert_eq!(strtod(b"1e400"), Some((f64::INFINITY, true)));
    }
}

macro_rules! typed_getter {
    ($name:ident, $variant:ident, $ty:ty) => {
        /// Typed lookup: Ok(None) when missing, WRONGTYPE for other types. `write` selects
        /// write-lookup semantics (no hit/miss accounting).
        pub fn $name<'b>(
            db: &'b mut crate::db::DbView<'_>,
            key: &[u8],
            write: bool,
        ) -> Result<Option<&'b mut $ty>, CmdError> {
            let e = if write {
                db.lookup_write(key)
            } else {
                db.lookup_read(key)
            };
            match e {
                None => Ok(None),
                Some(e) => match &mut e.value {
                    crate::types::Value::$variant(v) => Ok(Some(&mut **v)),
                    _ => Err(CmdError::WrongType),
                },
            }
        }
    };
}

typed_getter!(get_list, List, crate::types::list::List);
typed_getter!(get_hash, Hash, crate::types::hash::Hash);
typed_getter!(get_set, Set, crate::types::set::Set);
typed_getter!(get_zset, ZSet, crate::types::zset::ZSet);

/// The shared tail of LMPOP/BLMPOP/ZMPOP/BZMPOP: `numkeys key [key ...] <where> [COUNT n]`
/// starting at `numkeys_idx`. Returns the keys, the parsed `<where>` token and the count (1
/// when absent). `<where>` is checked before COUNT, in Redis's error order.
pub fn parse_mpop_args<T>(
    args: &[Bytes],
    numkeys_idx: usize,
    parse_where: impl Fn(&[u8]) -> Result<T, CmdError>,
) -> Result<(Vec<Bytes>, T, i64), CmdError> {
    let numkeys = range_arg(
        &args[numkeys_idx],
        1,
        i64::MAX,
        Some("numkeys should be greater than 0"),
    )? as usize;
    let where_idx = numkeys_idx.saturating_add(numkeys).saturating_add(1);
    if where_idx >= args.len() {
        return Err(CmdError::Syntax);
    }
    let which = parse_where(&args[where_idx])?;
    let mut count: i64 = -1;
    let mut j = where_idx + 1;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if count == -1 && args[j].eq_ignore_ascii_case(b"COUNT") && more > 0 {
            j += 1;
            count = range_arg(
                &args[j],
                1,
                i64::MAX,
                Some("count should be greater than 0"),
            )?;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok((
        args[numkeys_idx + 1..where_idx].to_vec(),
        which,
        if count == -1 { 1 } else { count },
    ))
}
