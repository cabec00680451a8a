//! COMMAND metadata: loads `command_meta.txt` (generated from redis-server 7.0.15 by
//! `tools/gen_command_meta.py`) and `command_summaries.txt` (Cinnabar's own one-line
//! summaries), and renders COMMAND, COMMAND INFO, COMMAND DOCS, COMMAND COUNT, COMMAND LIST and
//! COMMAND GETKEYS / GETKEYSANDFLAGS exactly as Redis 7.0 does, for the commands in our table.
//!
//! Arity, flags and the legacy first/last/step come from the command table at run time; ACL
//! categories, tips, key specifications and the docs come from the generated data. Flags our
//! table cannot express (`module`, `asking`, `no_mandatory_keys`, `no_async_loading`,
//! `movablekeys`) come from the data; `may_replicate` is hidden, as in Redis. Commands (or
//! subcommands) absent from our table are never reported.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use cinnabar_protocol::ReplyBuf;

use super::{flags, key_positions, lookup, CommandSpec, Keys, COMMANDS};
use crate::error::{CmdError, CmdResult};

static DATA: &str = include_str!("command_meta.txt");
static SUMMARIES: &str = include_str!("command_summaries.txt");

/// A typed reply value, as recorded from a RESP3 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Bulk(Vec<u8>),
    Status(String),
    Int(i64),
    Array(Vec<Val>),
    Set(Vec<Val>),
    Map(Vec<(Val, Val)>),
    Null,
}

impl Val {
    fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Val::Bulk(b) => Some(b),
            Val::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    fn as_int(&self) -> Option<i64> {
        match self {
            Val::Int(n) => Some(*n),
            _ => None,
        }
    }

    fn items(&self) -> &[Val] {
        match self {
            Val::Array(v) | Val::Set(v) => v,
            _ => &[],
        }
    }

    /// Value of `key` in a map.
    fn get(&self, key: &str) -> Option<&Val> {
        match self {
            Val::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The strings of a set/array (flags, categories, tips).
    fn words(&self) -> Vec<String> {
        self.items()
            .iter()
            .filter_map(|v| v.as_bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// Writes the value with its RESP3 type (RESP2 degrades maps and sets to arrays).
    pub fn write(&self, out: &mut ReplyBuf) {
        match self {
            Val::Bulk(b) => out.bulk(b),
            Val::Status(s) => out.simple(s),
            Val::Int(n) => out.int(*n),
            Val::Array(v) => {
                out.array(v.len());
                v.iter().for_each(|x| x.write(out));
            }
            Val::Set(v) => {
                out.set(v.len());
                v.iter().for_each(|x| x.write(out));
            }
            Val::Map(v) => {
                out.map(v.len());
                for (k, x) in v {
                    k.write(out);
                    x.write(out);
                }
            }
            Val::Null => out.null(),
        }
    }
}

/// Parser of the typed-value text format (see tools/gen_command_meta.py).
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i] == b' ' {
            self.i += 1;
        }
    }

    fn word(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.i < self.s.len() && !b" []{}<>".contains(&self.s[self.i]) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("bad escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'x' => {
                            let h = self.s.get(self.i).copied().and_then(Self::hex);
                            let l = self.s.get(self.i + 1).copied().and_then(Self::hex);
                            let (Some(h), Some(l)) = (h, l) else {
                                return Err("bad \\x escape".into());
                            };
                            out.push(h * 16 + l);
                            self.i += 2;
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(c),
            }
        }
    }

    fn list(&mut self, close: u8) -> Result<Vec<Val>, String> {
        self.i += 1;
        let mut v = Vec::new();
        loop {
            self.ws();
            match self.s.get(self.i) {
                None => return Err("unterminated aggregate".into()),
                Some(&c) if c == close => {
                    self.i += 1;
                    return Ok(v);
                }
                Some(_) => v.push(self.value()?),
            }
        }
    }

    fn value(&mut self) -> Result<Val, String> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err("missing value".into());
        };
        Ok(match c {
            b'"' => Val::Bulk(self.string()?),
            b'+' => {
                self.i += 1;
                Val::Status(String::from_utf8_lossy(self.word()).into_owned())
            }
            b':' => {
                self.i += 1;
                let w = self.word();
                let n = std::str::from_utf8(w)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or("bad integer")?;
                Val::Int(n)
            }
            b'_' => {
                self.i += 1;
                Val::Null
            }
            b'[' => Val::Array(self.list(b']')?),
            b'<' => Val::Set(self.list(b'>')?),
            b'{' => {
                let items = self.list(b'}')?;
                if items.len() % 2 != 0 {
                    return Err("odd map".into());
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Val::Map(pairs)
            }
            _ => return Err(format!("unexpected byte {:?}", c as char)),
        })
    }
}

/// Redis's metadata of one command or subcommand.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Full name (`get`, `config|get`).
    pub name: String,
    pub arity: i64,
    pub flags: Vec<String>,
    pub first: i64,
    pub last: i64,
    pub step: i64,
    pub acl: Val,
    pub tips: Val,
    pub key_specs: Val,
    /// COMMAND DOCS fields in Redis's order, without `summary` and `subcommands`.
    pub docs: Vec<(Val, Val)>,
}

impl Meta {
    fn has_flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

fn parse_line(line: &str) -> Result<Meta, String> {
    let (name, rest) = line.split_once(' ').ok_or("no fields")?;
    let mut p = Parser {
        s: rest.as_bytes(),
        i: 0,
    };
    let mut vals = Vec::with_capacity(9);
    for _ in 0..9 {
        vals.push(p.value()?);
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("trailing data".into());
    }
    let int = |v: &Val| v.as_int().ok_or_else(|| "expected integer".to_string());
    let docs = match vals.pop() {
        Some(Val::Map(m)) => m,
        _ => return Err("docs is not a map".into()),
    };
    Ok(Meta {
        name: name.to_string(),
        arity: int(&vals[0])?,
        flags: vals[1].words(),
        first: int(&vals[2])?,
        last: int(&vals[3])?,
        step: int(&vals[4])?,
        acl: vals[5].clone(),
        tips: vals[6].clone(),
        key_specs: vals[7].clone(),
        docs,
    })
}

pub struct Store {
    pub metas: Vec<Meta>,
    by_name: HashMap<String, usize>,
    summaries: HashMap<String, String>,
    /// Lines of the data file that failed to parse (checked by a unit test).
    pub errors: Vec<String>,
}

impl Store {
    pub fn get(&self, full_name: &str) -> Option<&Meta> {
        self.by_name.get(full_name).map(|&i| &self.metas[i])
    }
}

pub fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut metas = Vec::new();
        let mut by_name = HashMap::new();
        let mut errors = Vec::new();
        for (n, line) in DATA.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Ok(m) => {
                    by_name.insert(m.name.clone(), metas.len());
                    metas.push(m);
                }
                Err(e) => errors.push(format!("command_meta.txt:{}: {e}", n + 1)),
            }
        }
        let summaries = SUMMARIES
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Store {
            metas,
            by_name,
            summaries,
            errors,
        }
    })
}

/// Our one-line summary of a command (own text; a generated line when we have none).
pub fn summary(full_name: &str) -> String {
    match store().summaries.get(full_name) {
        Some(s) => s.clone(),
        None => format!(
            "The {} command.",
            full_name.replace('|', " ").to_ascii_uppercase()
        ),
    }
}

/// Where a flag name's truth comes from.
enum FlagSrc {
    Table(u32),
    Meta,
}

/// Redis 7.0's flag order in COMMAND INFO (`may_replicate` is hidden on purpose there).
const FLAG_ORDER: &[(&str, FlagSrc)] = &[
    ("write", FlagSrc::Table(flags::WRITE)),
    ("readonly", FlagSrc::Table(flags::READONLY)),
    ("denyoom", FlagSrc::Table(flags::DENYOOM)),
    ("module", FlagSrc::Meta),
    ("admin", FlagSrc::Table(flags::ADMIN)),
    ("pubsub", FlagSrc::Table(flags::PUBSUB)),
    ("noscript", FlagSrc::Table(flags::NOSCRIPT)),
    ("blocking", FlagSrc::Table(flags::BLOCKING)),
    ("loading", FlagSrc::Table(flags::LOADING)),
    ("stale", FlagSrc::Table(flags::STALE)),
    ("skip_monitor", FlagSrc::Table(flags::SKIP_MONITOR)),
    ("skip_slowlog", FlagSrc::Table(flags::SKIP_SLOWLOG)),
    ("asking", FlagSrc::Meta),
    ("fast", FlagSrc::Table(flags::FAST)),
    ("no_auth", FlagSrc::Table(flags::NO_AUTH)),
    ("no_mandatory_keys", FlagSrc::Meta),
    ("no_async_loading", FlagSrc::Meta),
    ("no_multi", FlagSrc::Table(flags::NO_MULTI)),
    ("movablekeys", FlagSrc::Meta),
    ("allow_busy", FlagSrc::Table(flags::ALLOW_BUSY)),
];

/// The table flags that COMMAND INFO shows (everything but `may_replicate`).
pub const SHOWN_TABLE_FLAGS: u32 = flags::WRITE
    | flags::READONLY
    | flags::DENYOOM
    | flags::ADMIN
    | flags::PUBSUB
    | flags::NOSCRIPT
    | flags::BLOCKING
    | flags::LOADING
    | flags::STALE
    | flags::SKIP_MONITOR
    | flags::SKIP_SLOWLOG
    | flags::FAST
    | flags::NO_AUTH
    | flags::NO_MULTI
    | flags::ALLOW_BUSY;

/// Flag names COMMAND INFO reports for `spec`, in Redis's order.
pub fn flag_names(spec: &CommandSpec, meta: Option<&Meta>) -> Vec<&'static str> {
    FLAG_ORDER
        .iter()
        .filter(|(name, src)| match src {
            FlagSrc::Table(bit) => spec.flags & bit != 0,
            FlagSrc::Meta => match meta {
                Some(m) => m.has_flag(name),
                None => *name == "movablekeys" && matches!(spec.keys, Keys::Custom(_)),
            },
        })
        .map(|(name, _)| *name)
        .collect()
}

/// The legacy (first, last, step) triple: our table's range; for argument-computed keys (which
/// the table cannot express as a range) Redis's legacy range.
pub fn key_range(spec: &CommandSpec, meta: Option<&Meta>) -> (i64, i64, i64) {
    match spec.keys {
        Keys::None => (0, 0, 0),
        Keys::Range(f, l, s) => (f as i64, l as i64, s as i64),
        Keys::Custom(_) => meta.map_or((0, 0, 0), |m| (m.first, m.last, m.step)),
    }
}

fn write_info(out: &mut ReplyBuf, spec: &CommandSpec, full_name: &str) {
    let meta = store().get(full_name);
    out.array(10);
    out.bulk(full_name.as_bytes());
    out.int(spec.arity as i64);
    let names = flag_names(spec, meta);
    out.set(names.len());
    for n in names {
        out.simple(n);
    }
    let (first, last, step) = key_range(spec, meta);
    out.int(first);
    out.int(last);
    out.int(step);
    match meta {
        Some(m) => {
            m.acl.write(out);
            m.tips.write(out);
            m.key_specs.write(out);
        }
        None => {
            out.set(0);
            out.set(0);
            out.set(0);
        }
    }
    // Redis replies an empty *set* when a command has no subcommands, an array otherwise.
    if spec.subcommands.is_empty() {
        out.set(0);
        return;
    }
    out.array(spec.subcommands.len());
    for s in spec.subcommands {
        write_info(out, s, &format!("{}|{}", spec.name, s.name));
    }
}

fn write_docs(out: &mut ReplyBuf, spec: &CommandSpec, full_name: &str) {
    let meta = store().get(full_name);
    let fields: &[(Val, Val)] = meta.map_or(&[], |m| &m.docs);
    let has_subs = !spec.subcommands.is_empty();
    out.map(1 + fields.len() + usize::from(has_subs));
    out.bulk(b"summary");
    out.bulk(summary(full_name).as_bytes());
    for (k, v) in fields {
        k.write(out);
        v.write(out);
    }
    if has_subs {
        out.bulk(b"subcommands");
        out.map(spec.subcommands.len());
        for s in spec.subcommands {
            let n = format!("{}|{}", spec.name, s.name);
            out.bulk(n.as_bytes());
            write_docs(out, s, &n);
        }
    }
}

/// Redis's `lookupCommandBySds`: `name` or `container|sub`, case-insensitively.
pub fn lookup_full(name: &[u8]) -> Option<(&'static CommandSpec, String)> {
    let mut parts = name.split(|&c| c == b'|');
    let top = parts.next()?;
    let sub = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let (_, spec) = lookup(top)?;
    match sub {
        None => Some((spec, spec.name.to_string())),
        Some(sub) => {
            let s = spec
                .subcommands
                .iter()
                .find(|s| s.name.as_bytes().eq_ignore_ascii_case(sub))?;
            Some((s, format!("{}|{}", spec.name, s.name)))
        }
    }
}

/// COMMAND (and COMMAND INFO without names).
pub fn command_all(out: &mut ReplyBuf) {
    out.array(COMMANDS.len());
    for c in COMMANDS {
        write_info(out, c, c.name);
    }
}

/// COMMAND INFO [name ...].
pub fn command_info(out: &mut ReplyBuf, args: &[Bytes]) {
    if args.len() <= 2 {
        return command_all(out);
    }
    out.array(args.len() - 2);
    for a in &args[2..] {
        match lookup_full(a) {
            Some((spec, full)) => write_info(out, spec, &full),
            None => out.null(),
        }
    }
}

/// COMMAND DOCS [name ...].
pub fn command_docs(out: &mut ReplyBuf, args: &[Bytes]) {
    let found: Vec<(&CommandSpec, String)> = if args.len() <= 2 {
        COMMANDS.iter().map(|c| (c, c.name.to_string())).collect()
    } else {
        args[2..].iter().filter_map(|a| lookup_full(a)).collect()
    };
    out.map(found.len());
    for (spec, full) in found {
        out.bulk(full.as_bytes());
        write_docs(out, spec, &full);
    }
}

/// COMMAND COUNT: the commands we implement.
pub fn command_count(out: &mut ReplyBuf) {
    out.int(COMMANDS.len() as i64);
}

enum ListFilter {
    Module,
    AclCat(String),
    Pattern(Bytes),
}

fn list_keep(filter: &Option<ListFilter>, full_name: &str) -> bool {
    match filter {
        None => true,
        Some(ListFilter::Module) => false,
        Some(ListFilter::AclCat(cat)) => store().get(full_name).is_some_and(|m| {
            m.acl
                .words()
                .iter()
                .any(|c| c.strip_prefix('@').unwrap_or(c).eq_ignore_ascii_case(cat))
        }),
        Some(ListFilter::Pattern(p)) => {
            cinnabar_config::string_match(p, full_name.as_bytes(), true)
        }
    }
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern].
pub fn command_list(out: &mut ReplyBuf, args: &[Bytes]) -> CmdResult {
    let mut filter = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if args[i].eq_ignore_ascii_case(b"filterby") && more == 2 {
            let kind = &args[i + 1];
            let arg = args[i + 2].clone();
            filter = Some(if kind.eq_ignore_ascii_case(b"module") {
                ListFilter::Module
            } else if kind.eq_ignore_ascii_case(b"aclcat") {
                ListFilter::AclCat(String::from_utf8_lossy(&arg).into_owned())
            } else if kind.eq_ignore_ascii_case(b"pattern") {
                ListFilter::Pattern(arg)
            } else {
                return Err(CmdError::Syntax);
            });
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut names: Vec<String> = Vec::new();
    for c in COMMANDS {
        if list_keep(&filter, c.name) {
            names.push(c.name.to_string());
        }
        for s in c.subcommands {
            let n = format!("{}|{}", c.name, s.name);
            if list_keep(&filter, &n) {
                names.push(n);
            }
        }
    }
    out.array(names.len());
    for n in names {
        out.bulk(n.as_bytes());
    }
    Ok(())
}

/// A key found in a command line: argument position and the key-spec flags.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundKey {
    pub pos: usize,
    pub flags: Vec<String>,
}

fn spec_flags(ks: &Val) -> Vec<String> {
    ks.get("flags").map(|f| f.words()).unwrap_or_default()
}

fn spec_int(ks: &Val, part: &str, field: &str) -> Option<i64> {
    ks.get(part)?.get("spec")?.get(field)?.as_int()
}

fn spec_type<'v>(ks: &'v Val, part: &str) -> Option<&'v [u8]> {
    ks.get(part)?.get("type")?.as_bytes()
}

/// A key spec that fully describes its keys (not `incomplete`, no `unknown` search type).
fn spec_complete(ks: &Val) -> bool {
    !spec_flags(ks).iter().any(|f| f == "incomplete")
        && matches!(spec_type(ks, "begin_search"), Some(b"index" | b"keyword"))
        && matches!(spec_type(ks, "find_keys"), Some(b"range" | b"keynum"))
}

/// Redis's `getKeysUsingKeySpecs`: `None` when a spec is invalid or incomplete for these
/// arguments (Redis then falls back to the command's own key finder).
fn keys_from_specs(key_specs: &[Val], argv: &[Bytes]) -> Option<Vec<FoundKey>> {
    let argc = argv.len() as i64;
    let mut found = Vec::new();
    for ks in key_specs {
        let flags = spec_flags(ks);
        if flags.iter().any(|f| f == "not_key") {
            continue;
        }
        let mut first = match spec_type(ks, "begin_search")? {
            b"index" => spec_int(ks, "begin_search", "index")?,
            b"keyword" => {
                let spec = ks.get("begin_search")?.get("spec")?;
                let kw = spec.get("keyword")?.as_bytes()?;
                let from = spec.get("startfrom")?.as_int()?;
                let start = if from > 0 { from } else { argc + from };
                let end = if from > 0 { argc - 1 } else { 1 };
                let mut i = start;
                let mut hit = 0;
                while i != end {
                    if i >= argc || i < 1 {
                        break;
                    }
                    if argv[i as usize].eq_ignore_ascii_case(kw) {
                        hit = i + 1;
                        break;
                    }
                    i = if start <= end { i + 1 } else { i - 1 };
                }
                if hit == 0 {
                    continue;
                }
                hit
            }
            _ => return None,
        };
        let (last, step) = match spec_type(ks, "find_keys")? {
            b"range" => {
                let lastkey = spec_int(ks, "find_keys", "lastkey")?;
                let step = spec_int(ks, "find_keys", "keystep")?;
                let limit = spec_int(ks, "find_keys", "limit")?;
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (last, step)
            }
            b"keynum" => {
                let idx = spec_int(ks, "find_keys", "keynumidx")?;
                let firstkey = spec_int(ks, "find_keys", "firstkey")?;
                let step = spec_int(ks, "find_keys", "keystep")?;
                if idx >= argc - first {
                    return None;
                }
                let n = std::str::from_utf8(&argv[(first + idx) as usize])
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .filter(|n| *n >= 0)?;
                first += firstkey;
                (first + n - 1, step)
            }
            _ => return None,
        };
        if last >= argc || last < first || first >= argc {
            return None;
        }
        if step <= 0 {
            return None;
        }
        let mut i = first;
        while i <= last {
            found.push(FoundKey {
                pos: i as usize,
                flags: flags.clone(),
            });
            i += step;
        }
        if flags.iter().any(|f| f == "incomplete") {
            return None;
        }
    }
    Some(found)
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// Redis's key finders for the commands whose key flags depend on the arguments
/// (`setGetKeys`, `bitfieldGetKeys`).
fn variable_flag_keys(name: &str, argv: &[Bytes]) -> Option<Vec<FoundKey>> {
    let rw = || words(&["RW", "access", "update"]);
    let flags = match name {
        "set" => {
            if argv.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get")) {
                rw()
            } else {
                words(&["OW", "update"])
            }
        }
        "bitfield" => {
            let mut readonly = true;
            let mut i = 2;
            while i < argv.len() {
                let rem = argv.len() - i - 1;
                let a = &argv[i];
                if a.eq_ignore_ascii_case(b"get") && rem >= 2 {
                    i += 2;
                } else if (a.eq_ignore_ascii_case(b"set") || a.eq_ignore_ascii_case(b"incrby"))
                    && rem >= 3
                {
                    readonly = false;
                    break;
                } else if a.eq_ignore_ascii_case(b"overflow") && rem >= 1 {
                    i += 1;
                } else {
                    readonly = false;
                    break;
                }
                i += 1;
            }
            if readonly {
                words(&["RO", "access"])
            } else {
                rw()
            }
        }
        _ => return None,
    };
    Some(vec![FoundKey { pos: 1, flags }])
}

/// Keys of a command line (`argv[0]` is the command), as COMMAND GETKEYS finds them.
pub fn find_keys(spec: &CommandSpec, meta: Option<&Meta>, argv: &[Bytes]) -> Vec<FoundKey> {
    let specs: &[Val] = meta.map_or(&[], |m| m.key_specs.items());
    let has_key = specs
        .iter()
        .any(|k| !spec_flags(k).iter().any(|f| f == "not_key"));
    let has_varflags = specs
        .iter()
        .any(|k| spec_flags(k).iter().any(|f| f == "variable_flags"));
    if has_key && !has_varflags {
        if let Some(found) = keys_from_specs(specs, argv) {
            return found;
        }
        // Complete specs that do not fit the arguments: Redis's own key finders reject such
        // lines too (no keys).
        if specs.iter().all(spec_complete) {
            return Vec::new();
        }
    }
    if has_varflags {
        if let Some(found) = variable_flag_keys(spec.name, argv) {
            return found;
        }
    }
    // The command's own key finder (our table), with the flags of the key spec that covers
    // each position (the last spec when none does).
    key_positions(spec, argv)
        .into_iter()
        .map(|pos| {
            let flags = specs
                .iter()
                .find(|k| match spec_type(k, "begin_search") {
                    Some(b"index") => spec_int(k, "begin_search", "index") == Some(pos as i64),
                    _ => false,
                })
                .or(specs.last())
                .map(spec_flags)
                .unwrap_or_default();
            FoundKey { pos, flags }
        })
        .collect()
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS `<command> [arg ...]`.
pub fn command_getkeys(out: &mut ReplyBuf, args: &[Bytes], with_flags: bool) -> CmdResult {
    let argv = args.get(2..).unwrap_or(&[]);
    let Some(top) = argv.first() else {
        return Err(CmdError::err("Invalid command specified"));
    };
    let Some((_, base)) = lookup(top) else {
        return Err(CmdError::err("Invalid command specified"));
    };
    let (spec, full) = match argv.get(1) {
        Some(sub) if !base.subcommands.is_empty() => {
            let Some(s) = base
                .subcommands
                .iter()
                .find(|s| s.name.as_bytes().eq_ignore_ascii_case(sub))
            else {
                return Err(CmdError::err("Invalid command specified"));
            };
            (s, format!("{}|{}", base.name, s.name))
        }
        _ => (base, base.name.to_string()),
    };
    let meta = store().get(&full);
    let has_keys = match meta {
        Some(m) => !m.key_specs.items().is_empty(),
        None => !matches!(spec.keys, Keys::None),
    };
    if !has_keys {
        return Err(CmdError::err("The command has no key arguments"));
    }
    let argc = argv.len() as i32;
    if (spec.arity > 0 && spec.arity != argc) || argc < -spec.arity {
        return Err(CmdError::err(
            "Invalid number of arguments specified for command",
        ));
    }
    let found = find_keys(spec, meta, argv);
    if found.is_empty() {
        if meta.is_some_and(|m| m.has_flag("no_mandatory_keys")) {
            out.array(0);
            return Ok(());
        }
        return Err(CmdError::err("Invalid arguments specified for command"));
    }
    out.array(found.len());
    for k in found {
        let Some(key) = argv.get(k.pos) else {
            out.null();
            continue;
        };
        if with_flags {
            out.array(2);
            out.bulk(key);
            out.set(k.flags.len());
            for f in &k.flags {
                out.simple(f);
            }
        } else {
            out.bulk(key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_parses() {
        let s = store();
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert!(s.metas.len() > 300);
        assert!(s.get("get").is_some());
        assert!(s.get("config|get").is_some());
    }

    /// Our table's arity, shown flags and key range agree with Redis 7.0.15 for every command
    /// and subcommand we implement.
    #[test]
    fn table_agrees_with_redis() {
        let mut problems = Vec::new();
        let mut check = |spec: &CommandSpec, full: String| {
            let Some(m) = store().get(&full) else {
                problems.push(format!("{full}: not a Redis 7.0 command"));
                return;
            };
            if spec.arity as i64 != m.arity {
                problems.push(format!("{full}: arity {} != redis {}", spec.arity, m.arity));
            }
            let ours: Vec<&str> = flag_names(spec, Some(m));
            let theirs: Vec<&str> = m.flags.iter().map(|s| s.as_str()).collect();
            if ours != theirs {
                problems.push(format!("{full}: flags {ours:?} != redis {theirs:?}"));
            }
            let range = key_range(spec, Some(m));
            if range != (m.first, m.last, m.step) {
                problems.push(format!(
                    "{full}: keys {range:?} != redis {:?}",
                    (m.first, m.last, m.step)
                ));
            }
            // A computed key finder is a movable-keys command in Redis too (the converse does
            // not hold: Redis also calls commands with incomplete key specs movable).
            if matches!(spec.keys, Keys::Custom(_)) && !m.has_flag("movablekeys") {
                problems.push(format!(
                    "{full}: custom key finder but redis has fixed keys"
                ));
            }
            if matches!(spec.keys, Keys::None) && !m.key_specs.items().is_empty() {
                problems.push(format!(
                    "{full}: no keys in our table but redis has key specs"
                ));
            }
        };
        for c in COMMANDS {
            check(c, c.name.to_string());
            for s in c.subcommands {
                check(s, format!("{}|{}", c.name, s.name));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn getkeys_uses_key_specs() {
        let s = store();
        let zu = s.get("zunionstore").expect("zunionstore");
        let found = keys_from_specs(zu.key_specs.items(), &args("zunionstore d 2 a b"));
        let pos: Vec<usize> = found.unwrap_or_default().iter().map(|k| k.pos).collect();
        assert_eq!(pos, vec![1, 3, 4]);
        assert!(keys_from_specs(zu.key_specs.items(), &args("zunionstore d 5 a b")).is_none());
        let get = s.get("get").expect("get");
        let found = keys_from_specs(get.key_specs.items(), &args("get k")).unwrap_or_default();
        assert_eq!(
            found,
            vec![FoundKey {
                pos: 1,
                flags: vec!["RO".into(), "access".into()]
            }]
        );
    }

    #[test]
    fn value_round_trip() {
        let mut p = Parser {
            s: br#"{"a\x01\"" [:1 :-2] <+x> _}"#,
            i: 0,
        };
        let v = p.value().expect("parses");
        assert_eq!(
            v,
            Val::Map(vec![
                (
                    Val::Bulk(b"a\x01\"".to_vec()),
                    Val::Array(vec![Val::Int(1), Val::Int(-2)])
                ),
                (Val::Set(vec![Val::Status("x".into())]), Val::Null),
            ])
        );
    }
}
