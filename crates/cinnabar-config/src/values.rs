//! Per-type value parsing and canonical formatting with Redis 7.0.15's exact
//! rules and error strings (`string2ll`, `memtoull`, octal, enums, and the
//! special multi-argument directives).

use crate::glob::string_match;
use crate::table::{Directive, Kind, NumFormat, Signedness, Special, StrCheck};
use std::path::{Path, PathBuf};

/// Redis `string2ll`: strict decimal (no '+', no spaces, no leading zeros) — the one
/// implementation lives in `cinnabar-protocol`.
pub use cinnabar_protocol::parser::parse_i64 as string2ll;

/// C `strtoll(s, &end, base)` requiring `*end == '\0'` and no ERANGE:
/// leading whitespace and a sign are allowed; an empty string parses as 0.
pub fn strtoll_full(s: &str, base: u32) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let ws_end = i;
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut v: i128 = 0;
    while i < b.len() {
        match (b[i] as char).to_digit(base) {
            Some(d) => {
                v = (v * i128::from(base) + i128::from(d)).min(i128::from(u64::MAX) + 1);
                i += 1;
            }
            None => break,
        }
    }
    if i == digits_start {
        // No conversion: endptr = start of string.
        let _ = ws_end;
        return if b.is_empty() { Some(0) } else { None };
    }
    if i != b.len() {
        return None;
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// Redis `memtoull`: digits with optional unit b, k, kb, m, mb, g, gb
/// (case-insensitive; k=1000, kb=1024). Negative values are rejected.
pub fn memtoull(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.first() == Some(&b'-') {
        return None;
    }
    let ndigits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let unit = s[ndigits..].to_ascii_lowercase();
    let mul: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if ndigits >= 128 {
        return None;
    }
    // strtoull saturates at ULLONG_MAX on overflow (errno ERANGE is ignored by Redis).
    let mut v: u64 = 0;
    for &c in &b[..ndigits] {
        v = v.saturating_mul(10).saturating_add(u64::from(c - b'0'));
    }
    Some(v.wrapping_mul(mul))
}

/// Format bytes for CONFIG REWRITE: `1gb`, `64mb`, `5kb` or plain bytes.
pub fn format_memory(bytes: i64) -> String {
    const GB: i64 = 1024 * 1024 * 1024;
    const MB: i64 = 1024 * 1024;
    const KB: i64 = 1024;
    if bytes != 0 && bytes % GB == 0 {
        format!("{}gb", bytes / GB)
    } else if bytes != 0 && bytes % MB == 0 {
        format!("{}mb", bytes / MB)
    } else if bytes != 0 && bytes % KB == 0 {
        format!("{}kb", bytes / KB)
    } else {
        format!("{bytes}")
    }
}

/// Parse a numeric directive value to its raw C `long long` representation.
pub fn parse_num(kind: &Kind, value: &str) -> Result<i64, String> {
    let Kind::Num {
        min,
        max,
        sign,
        format,
    } = *kind
    else {
        return Err("not a numeric directive".into());
    };
    let memory = matches!(format, NumFormat::Memory | NumFormat::MemoryOrPercent);
    let percent = format == NumFormat::MemoryOrPercent;
    let mut parsed: Option<i64> = None;
    if memory {
        parsed = memtoull(value).map(|v| v as i64);
    }
    if parsed.is_none() && percent && value.len() > 1 && value.ends_with('%') {
        if let Some(v) = string2ll(&value.as_bytes()[..value.len() - 1]) {
            if v >= 0 {
                parsed = Some(-v);
            }
        }
    }
    if parsed.is_none() && format == NumFormat::Octal {
        parsed = strtoll_full(value, 8);
    }
    if parsed.is_none() && format == NumFormat::Integer {
        parsed = string2ll(value.as_bytes());
    }
    let ll = parsed.ok_or_else(|| {
        match format {
            NumFormat::MemoryOrPercent => "argument must be a memory or percent value",
            NumFormat::Memory => "argument must be a memory value",
            NumFormat::Octal => "argument couldn't be parsed as an octal number",
            NumFormat::Integer => "argument couldn't be parsed into an integer",
        }
        .to_string()
    })?;
    match sign {
        Signedness::Unsigned => {
            let (u, lo, hi) = (ll as u64, min as u64, max as u64);
            if u > hi || u < lo {
                return Err(if format == NumFormat::Octal {
                    format!("argument must be between {lo:o} and {hi:o} inclusive")
                } else {
                    format!("argument must be between {lo} and {hi} inclusive")
                });
            }
        }
        Signedness::Signed => {
            if percent && ll < 0 {
                if ll < min {
                    return Err(format!(
                        "percentage argument must be less or equal to {}",
                        -min
                    ));
                }
            } else if ll > max || ll < min {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
        }
    }
    Ok(ll)
}

/// Print a raw numeric value as `CONFIG GET` does.
pub fn print_num(kind: &Kind, v: i64) -> String {
    match kind {
        Kind::Num {
            format: NumFormat::MemoryOrPercent,
            ..
        } if v < 0 => format!("{}%", -(v as i128)),
        Kind::Num {
            format: NumFormat::Memory | NumFormat::MemoryOrPercent,
            ..
        } => format!("{}", v as u64),
        Kind::Num {
            format: NumFormat::Octal,
            ..
        } => format!("{:o}", v as u64),
        _ => format!("{v}"),
    }
}

/// Parse a stored canonical numeric value back (it was printed by [`print_num`]).
pub fn reparse_num(kind: &Kind, canonical: &str) -> i64 {
    if let Some(p) = canonical.strip_suffix('%') {
        return p.parse::<i64>().map(|v| -v).unwrap_or(0);
    }
    match kind {
        Kind::Num {
            format: NumFormat::Octal,
            ..
        } => i64::from_str_radix(canonical, 8).unwrap_or(0),
        Kind::Num {
            format: NumFormat::Memory | NumFormat::MemoryOrPercent,
            ..
        } => canonical.parse::<u64>().map(|v| v as i64).unwrap_or(0),
        _ => canonical.parse::<i64>().unwrap_or(0),
    }
}

fn enum_error(names: &[(&str, u32)]) -> String {
    let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
    format!(
        "argument(s) must be one of the following: {}",
        list.join(", ")
    )
}

/// Canonical printed name(s) for an enum value.
pub fn enum_print(names: &[(&str, u32)], flags: bool, v: u32) -> String {
    if flags && v != 0 {
        let parts: Vec<&str> = names
            .iter()
            .filter(|(_, bit)| *bit != 0 && v & bit == *bit)
            .map(|(n, _)| *n)
            .collect();
        return parts.join(" ");
    }
    names
        .iter()
        .find(|(_, x)| *x == v)
        .map(|(n, _)| (*n).to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn parse_enum(names: &[(&str, u32)], flags: bool, args: &[String]) -> Result<u32, String> {
    let mut acc = 0u32;
    for a in args {
        let v = names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(a))
            .map(|(_, v)| *v)
            .ok_or_else(|| enum_error(names))?;
        if !flags {
            return Ok(v);
        }
        acc |= v;
    }
    if flags && acc & 1 != 0 && acc & 2 != 0 {
        return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
    }
    Ok(acc)
}

fn is_base_name(s: &str) -> bool {
    !s.contains('/') && !s.contains('\\')
}

/// Redis's validateProcTitleTemplate: `{var}` placeholders must be known and
/// braces balanced. (Approximation: the rendered title is not checked.)
fn valid_proc_title_template(s: &str) -> bool {
    const VARS: &[&str] = &[
        "title",
        "listen-addr",
        "server-mode",
        "port",
        "tls-port",
        "unixsocket",
        "config-file",
    ];
    let mut rest = s;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return false;
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return false;
        };
        if !VARS.contains(&&after[..close]) {
            return false;
        }
        rest = &after[close + 1..];
    }
    true
}

fn check_string(check: StrCheck, v: &str) -> Result<(), String> {
    let err = |s: &str| Err(s.to_string());
    match check {
        StrCheck::None => Ok(()),
        StrCheck::DbFilename if !is_base_name(v) => {
            err("dbfilename can't be a path, just a filename")
        }
        StrCheck::AofFilename if v.is_empty() => err("appendfilename can't be empty"),
        StrCheck::AofFilename if !is_base_name(v) => {
            err("appendfilename can't be a path, just a filename")
        }
        StrCheck::AofDirname if v.is_empty() => err("appenddirname can't be empty"),
        StrCheck::AofDirname if !is_base_name(v) => {
            err("appenddirname can't be a path, just a dirname")
        }
        StrCheck::Hostname if v.len() >= 256 => err("Hostnames must be less than 256 characters"),
        StrCheck::Hostname
            if !v
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.') =>
        {
            err("Hostnames may only contain alphanumeric characters, hyphens or dots")
        }
        StrCheck::ProcTitleTemplate if !valid_proc_title_template(v) => {
            err("template format is invalid or contains unknown variables")
        }
        _ => Ok(()),
    }
}

/// Keyspace notification flag bits (Redis NOTIFY_*).
pub mod notify {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const LOADED: u32 = 1 << 12;
    pub const MODULE: u32 = 1 << 13;
    pub const NEW: u32 = 1 << 14;
    /// 'A': g$lshzxetd
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

/// Parse a notify-keyspace-events class string to flags (None = bad char).
pub fn keyspace_events_to_flags(s: &str) -> Option<u32> {
    use notify::*;
    let mut f = 0;
    for c in s.chars() {
        f |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(f)
}

/// Redis `keyspaceEventsFlagsToString`.
pub fn keyspace_events_to_string(f: u32) -> String {
    use notify::*;
    let mut s = String::new();
    if f & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if f & bit != 0 {
                s.push(c);
            }
        }
    }
    if f & KEYSPACE != 0 {
        s.push('K');
    }
    if f & KEYEVENT != 0 {
        s.push('E');
    }
    if f & KEY_MISS != 0 {
        s.push('m');
    }
    s
}

/// Redis `string2d`-like strict double parse (no spaces, no NaN).
fn string2d(s: &str) -> Option<f64> {
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// `%f` then trim trailing zeros and dot (Redis `trimDoubleString`).
pub fn format_percentile(v: f64) -> String {
    let s = format!("{v:.6}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Text of an OS error without Rust's " (os error N)" suffix (= C strerror).
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Client classes for client-output-buffer-limit (order as Redis prints them).
pub const OBUF_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

fn obuf_class(name: &str) -> Option<usize> {
    match name.to_ascii_lowercase().as_str() {
        "normal" => Some(0),
        "slave" | "replica" => Some(1),
        "pubsub" => Some(2),
        _ => None,
    }
}

/// Parse the canonical client-output-buffer-limit value into 3 triples.
pub fn obuf_parse_canonical(s: &str) -> [(u64, u64, u64); 3] {
    let mut out = [
        (0, 0, 0),
        (268435456, 67108864, 60),
        (33554432, 8388608, 60),
    ];
    let parts: Vec<&str> = s.split(' ').collect();
    for chunk in parts.chunks(4) {
        if let [class, h, so, secs] = chunk {
            if let Some(c) = obuf_class(class) {
                out[c] = (
                    h.parse().unwrap_or(0),
                    so.parse().unwrap_or(0),
                    secs.parse().unwrap_or(0),
                );
            }
        }
    }
    out
}

fn obuf_print(v: &[(u64, u64, u64); 3]) -> String {
    let parts: Vec<String> = OBUF_CLASSES
        .iter()
        .zip(v.iter())
        .map(|(n, (h, s, sec))| format!("{n} {h} {s} {sec}"))
        .collect();
    parts.join(" ")
}

/// State needed while applying a value (file loading has quirks).
pub struct SetCtx<'a> {
    /// True while reading the config file (affects `save`).
    pub reading_file: bool,
    /// Set once the first `save` line of the file reset the defaults.
    pub save_loaded: &'a mut bool,
    /// Directory relative paths resolve against (the current `dir`).
    pub cwd: &'a Path,
}

/// Validate `args` for directive `d` and return the new canonical value.
/// `old` is the current canonical value (some directives update partially).
/// `Ok(None)` means "accepted, no change" (Redis's oom-score-adj-values quirk).
pub fn set_value(
    d: &Directive,
    args: &[String],
    old: &str,
    ctx: &mut SetCtx<'_>,
) -> Result<Option<String>, String> {
    let first = args.first().map(String::as_str).unwrap_or("");
    match &d.kind {
        Kind::Bool => {
            if first.eq_ignore_ascii_case("yes") {
                if d.name == "activedefrag" {
                    // Debian's 7.0.15 build lacks HAVE_DEFRAG; so does Cinnabar.
                    return Err("Active defragmentation cannot be enabled: it requires a Redis server compiled with a modified Jemalloc like the one shipped by default with the Redis source distribution".into());
                }
                Ok(Some("yes".into()))
            } else if first.eq_ignore_ascii_case("no") {
                Ok(Some("no".into()))
            } else {
                Err("argument must be 'yes' or 'no'".into())
            }
        }
        k @ Kind::Num { .. } => {
            let mut v = parse_num(k, first)?;
            if d.name == "hz" && !ctx.reading_file {
                v = v.clamp(1, 500);
            }
            Ok(Some(print_num(k, v)))
        }
        Kind::Enum { names, flags } => {
            let v = parse_enum(names, *flags, args)?;
            Ok(Some(enum_print(names, *flags, v)))
        }
        Kind::Str { check, .. } => {
            check_string(*check, first)?;
            Ok(Some(first.to_string()))
        }
        Kind::Special(sp) => set_special(*sp, args, old, ctx),
    }
}

fn set_special(
    sp: Special,
    args: &[String],
    old: &str,
    ctx: &mut SetCtx<'_>,
) -> Result<Option<String>, String> {
    let wrong = || Err("wrong number of arguments".to_string());
    match sp {
        Special::Dir => {
            if args.len() != 1 {
                return wrong();
            }
            let p = Path::new(&args[0]);
            let abs: PathBuf = if p.is_absolute() {
                p.to_path_buf()
            } else {
                ctx.cwd.join(p)
            };
            // Redis chdir()s; we only validate and canonicalize like getcwd().
            match std::fs::canonicalize(&abs) {
                Ok(c) if c.is_dir() => Ok(Some(c.to_string_lossy().into_owned())),
                Ok(_) => Err("Not a directory".into()),
                Err(e) => Err(strerror(&e)),
            }
        }
        Special::Save => {
            // A multi-argument directive given as one argument ("3600 1 300 100") is
            // split on spaces, as Redis does for MULTI_ARG_CONFIG directives.
            let split: Vec<String>;
            let args: &[String] = if args.len() == 1 && args[0].is_empty() {
                &[]
            } else if args.len() == 1 {
                split = args[0].split(' ').map(str::to_string).collect();
                &split
            } else {
                args
            };
            if !args.len().is_multiple_of(2) {
                return Err("Invalid save parameters".into());
            }
            let mut vals = Vec::with_capacity(args.len());
            for (j, a) in args.iter().enumerate() {
                let v = strtoll_full(a, 10).ok_or("Invalid save parameters")?;
                if (j % 2 == 0 && v < 1) || (j % 2 == 1 && v < 0) {
                    return Err("Invalid save parameters".into());
                }
                vals.push(if j % 2 == 1 { i64::from(v as i32) } else { v });
            }
            let mut out: Vec<String> = Vec::new();
            // While reading the file only the first `save` line resets the defaults.
            if ctx.reading_file && *ctx.save_loaded && !old.is_empty() {
                out.push(old.to_string());
            }
            if ctx.reading_file {
                *ctx.save_loaded = true;
            }
            for pair in vals.chunks(2) {
                out.push(format!("{} {}", pair[0], pair[1]));
            }
            Ok(Some(out.join(" ")))
        }
        Special::ClientOutputBufferLimit => {
            if !args.len().is_multiple_of(4) {
                return Err("Wrong number of arguments in buffer limit configuration.".into());
            }
            let mut cur = obuf_parse_canonical(old);
            let mut staged = Vec::new();
            for c in args.chunks(4) {
                let class = obuf_class(&c[0])
                    .ok_or("Invalid client class specified in buffer limit configuration.")?;
                let bad =
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
                let hard = memtoull(&c[1]).ok_or(bad)?;
                let soft = memtoull(&c[2]).ok_or(bad)?;
                let secs = strtoll_full(&c[3], 10).ok_or(bad)? as i32;
                if secs < 0 {
                    return Err(bad.into());
                }
                staged.push((class, (hard, soft, secs as u64)));
            }
            for (class, v) in staged {
                cur[class] = v;
            }
            Ok(Some(obuf_print(&cur)))
        }
        Special::OomScoreAdjValues => {
            if args.len() != 3 {
                return wrong();
            }
            let mut vals = Vec::new();
            for a in args {
                match strtoll_full(a, 10) {
                    Some(v) if (-2000..=2000).contains(&v) => vals.push(v.to_string()),
                    // Redis 7.0 returns -1 here, which its callers treat as
                    // success without applying anything: mirror that.
                    _ => return Ok(None),
                }
            }
            Ok(Some(vals.join(" ")))
        }
        Special::NotifyKeyspaceEvents => {
            if args.len() != 1 {
                return wrong();
            }
            let f = keyspace_events_to_flags(&args[0])
                .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")?;
            Ok(Some(keyspace_events_to_string(f)))
        }
        Special::Bind => {
            if args.len() > 16 {
                return Err("Too many bind addresses specified.".into());
            }
            let args: &[String] = if args.len() == 1 && args[0].is_empty() {
                &[]
            } else {
                args
            };
            Ok(Some(args.join(" ")))
        }
        Special::ReplicaOf => {
            if args.len() != 2 {
                return wrong();
            }
            if args[0].eq_ignore_ascii_case("no") && args[1].eq_ignore_ascii_case("one") {
                return Ok(Some(String::new()));
            }
            let port = strtoll_full(&args[1], 10).filter(|p| (0..=65535).contains(p));
            match port {
                Some(p) => Ok(Some(format!("{} {}", args[0], p))),
                None => Err("Invalid master port".into()),
            }
        }
        Special::LatencyTrackingInfoPercentiles => {
            let args: &[String] = if args.len() == 1 && args[0].is_empty() {
                &[]
            } else {
                args
            };
            let mut out = Vec::new();
            for a in args {
                let v =
                    string2d(a).ok_or("Invalid latency-tracking-info-percentiles parameters")?;
                if !(0.0..=100.0).contains(&v) {
                    return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into());
                }
                out.push(format_percentile(v));
            }
            Ok(Some(out.join(" ")))
        }
    }
}

/// Split a CONFIG SET value for a multi-argument directive the way Redis
/// does (`sdssplitlen(value, " ")`: every single space separates).
pub fn split_set_value(value: &str) -> Vec<String> {
    if value.is_empty() {
        Vec::new()
    } else {
        value.split(' ').map(str::to_string).collect()
    }
}

/// True when `pattern` contains glob metacharacters (CONFIG GET rule).
pub fn has_glob(pattern: &str) -> bool {
    pattern.contains(['[', '*', '?'])
}

/// Case-insensitive glob match over directive names.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    string_match(pattern.as_bytes(), name.as_bytes(), true)
}
