//! Shared test support: a deterministic dataset covering every type in both encodings, a
//! minimal blocking RESP client, a throwaway redis-server process, and the text description
//! format of `tests/data/*.expected`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cinnabar_rdb::{RdbEntry, RdbValue};

/// Far-future absolute expiry used by the dataset: 2100-01-01T00:00:00.123Z.
pub const EXPIRE_AT_MS: i64 = 4_102_444_800_123;

/// Deterministic pseudo-random bytes (LCG), for incompressible strings.
pub fn noise(len_bytes: usize, seed: u32) -> Vec<u8> {
    let mut state = seed;
    (0..len_bytes)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect()
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn string(db: u32, key: &str, value: impl Into<Vec<u8>>) -> RdbEntry {
    RdbEntry::new(db, key, RdbValue::String(value.into()))
}

/// Every type in its small and large encodings, integer/LZF/raw strings, TTLs, three dbs.
pub fn golden_dataset() -> Vec<RdbEntry> {
    let mut v = vec![
        string(0, "str:int8", "12"),
        string(0, "str:int8neg", "-128"),
        string(0, "str:int16", "-1234"),
        string(0, "str:int32", "123456789"),
        string(0, "str:int64", "12345678901234"),
        string(0, "str:leadingzero", "007"),
        string(0, "str:short", "hello"),
        string(0, "str:empty", ""),
        string(0, "str:binary", vec![0u8, 1, 2, 0xff, b' ', b'\\', b'\n']),
        string(0, "str:lzf", "abc".repeat(200)),
        string(0, "str:noise", noise(60, 7)),
        string(
            0,
            "str:big",
            (0..1000).map(|i| format!("{i},")).collect::<String>(),
        ),
        RdbEntry::new(
            0,
            "list:small",
            RdbValue::List(vec![
                b("a"),
                b("1"),
                b("-5"),
                b("hello world"),
                b("9223372036854775807"),
                b(""),
            ]),
        ),
        RdbEntry::new(
            0,
            "list:large",
            RdbValue::List(
                (0..1500)
                    .map(|i| format!("item:{i}").into_bytes())
                    .collect(),
            ),
        ),
        RdbEntry::new(
            0,
            "list:bigelement",
            RdbValue::List(vec![
                b("x"),
                "0123456789".repeat(900).into_bytes(),
                b("y"),
                b("z"),
            ]),
        ),
        RdbEntry::new(
            0,
            "set:intset16",
            RdbValue::Set((1..=10).map(|i| i.to_string().into_bytes()).collect()),
        ),
        RdbEntry::new(
            0,
            "set:intset64",
            RdbValue::Set(vec![b("1"), b("1099511627776"), b("-1099511627776")]),
        ),
        RdbEntry::new(
            0,
            "set:strings",
            RdbValue::Set(vec![b("a"), b("b"), b("c"), b("007")]),
        ),
        RdbEntry::new(
            0,
            "set:manyints",
            RdbValue::Set((0..600).map(|i| (i * 7).to_string().into_bytes()).collect()),
        ),
        RdbEntry::new(
            0,
            "hash:small",
            RdbValue::Hash(vec![
                (b("f1"), b("v1")),
                (b("n"), b("42")),
                (b("neg"), b("-70000")),
                (b("e"), b("")),
            ]),
        ),
        RdbEntry::new(
            0,
            "hash:longvalue",
            RdbValue::Hash(vec![
                (b("f"), b("v")),
                (b("long"), "L".repeat(100).into_bytes()),
            ]),
        ),
        RdbEntry::new(
            0,
            "hash:many",
            RdbValue::Hash(
                (0..520)
                    .map(|i| (format!("f{i}").into_bytes(), format!("v{i}").into_bytes()))
                    .collect(),
            ),
        ),
        RdbEntry::new(
            0,
            "hash:listpack150",
            RdbValue::Hash(
                (0..150)
                    .map(|i| (format!("f{i}").into_bytes(), format!("{i}").into_bytes()))
                    .collect(),
            ),
        ),
        RdbEntry::new(
            0,
            "zset:small",
            RdbValue::ZSet(vec![
                (b("one"), 1.0),
                (b("half"), 0.5),
                (b("neg"), -2.25),
                (b("big"), 1e20),
                (b("pinf"), f64::INFINITY),
                (b("ninf"), f64::NEG_INFINITY),
                (b("tenth"), 0.1),
                (b("7"), 7.0),
            ]),
        ),
        RdbEntry::new(
            0,
            "zset:many",
            RdbValue::ZSet(
                (0..150)
                    .map(|i| (format!("m{i}").into_bytes(), f64::from(i % 17) * 1.5))
                    .collect(),
            ),
        ),
        RdbEntry::new(
            0,
            "zset:longmember",
            RdbValue::ZSet(vec![("M".repeat(100).into_bytes(), 3.0), (b("s"), -1.0)]),
        ),
        string(0, "ttl:str", "expiring").with_expire_at_ms(EXPIRE_AT_MS),
        RdbEntry::new(0, "ttl:list", RdbValue::List(vec![b("a"), b("b")]))
            .with_expire_at_ms(EXPIRE_AT_MS + 1000),
        RdbEntry::new(0, "ttl:hash", RdbValue::Hash(vec![(b("a"), b("b"))]))
            .with_expire_at_ms(EXPIRE_AT_MS + 2000),
        string(1, "db1:str", "in db one"),
        RdbEntry::new(
            1,
            "db1:zset",
            RdbValue::ZSet(vec![(b("a"), 1.0), (b("b"), 2.0)]),
        )
        .with_expire_at_ms(EXPIRE_AT_MS),
        RdbEntry::new(1, "db1:set", RdbValue::Set(vec![b("x"), b("y")])),
    ];
    v.push(string(3, "db3:str", "in db three").with_expire_at_ms(EXPIRE_AT_MS + 5));
    v
}

/// A smaller dataset for the LFU/LRU/compressed-quicklist golden files.
pub fn policy_dataset() -> Vec<RdbEntry> {
    vec![
        string(0, "s", "value"),
        RdbEntry::new(
            0,
            "biglist",
            RdbValue::List(
                (0..1800)
                    .map(|i| format!("element-{i}").into_bytes())
                    .collect(),
            ),
        ),
        RdbEntry::new(0, "h", RdbValue::Hash(vec![(b("a"), b("1"))]))
            .with_expire_at_ms(EXPIRE_AT_MS),
    ]
}

/// The Lua library loaded into the golden file (FUNCTION2 opcode).
pub const FUNCTION_LIBRARY: &str = "#!lua name=cinnabarlib\nredis.register_function('cinnabar_one', function(keys, args) return 1 end)";

// ---------------------------------------------------------------------------------------------
// RESP client
// ---------------------------------------------------------------------------------------------

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn bulk(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) => b.clone(),
            Reply::Status(s) => s.as_bytes().to_vec(),
            other => panic!("expected a bulk reply, got {other:?}"),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    pub fn array(&self) -> Vec<Reply> {
        match self {
            Reply::Array(Some(items)) => items.clone(),
            other => panic!("expected an array reply, got {other:?}"),
        }
    }

    pub fn bulks(&self) -> Vec<Vec<u8>> {
        self.array().iter().map(Reply::bulk).collect()
    }
}

/// A blocking RESP2 client.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let writer = stream.try_clone()?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
        })
    }

    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("write to redis");
        self.read_reply()
    }

    /// Runs a command and panics on an error reply.
    pub fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let reply = self.cmd(args);
        if let Reply::Error(e) = &reply {
            let shown: Vec<String> = args
                .iter()
                .take(3)
                .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                .collect();
            panic!("{shown:?} failed: {e}");
        }
        reply
    }

    fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader
            .read_until(b'\n', &mut line)
            .expect("read from redis");
        assert!(line.ends_with(b"\r\n"), "bad RESP line {line:?}");
        line.truncate(line.len() - 2);
        String::from_utf8(line).expect("utf8 line")
    }

    fn read_reply(&mut self) -> Reply {
        let line = self.read_line();
        let (tag, rest) = line.split_at(1);
        match tag {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(rest.parse().expect("integer")),
            "$" => {
                let len: i64 = rest.parse().expect("bulk length");
                if len < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0u8; len as usize + 2];
                self.reader.read_exact(&mut buf).expect("bulk body");
                buf.truncate(len as usize);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let len: i64 = rest.parse().expect("array length");
                if len < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..len).map(|_| self.read_reply()).collect()))
            }
            _ => panic!("unknown RESP reply {line:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// redis-server process
// ---------------------------------------------------------------------------------------------

/// The redis-server binary: `$REDIS_SERVER`, else `redis-server` on PATH; None when absent.
pub fn redis_server_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Some(path);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    })
}

/// A fresh, empty temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("cinnabar-rdb-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A redis-server child process, killed (by pid) on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl RedisServer {
    /// Starts redis-server with `dir`/`dbfilename` (loading that file if present) and extra
    /// `--name value` settings; waits until it answers PING.
    pub fn start(binary: &Path, dir: &Path, dbfilename: &str, extra: &[&str]) -> RedisServer {
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg("--port")
            .arg(port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .args(["--dbfilename", dbfilename])
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().expect("spawn redis-server");
        let mut server = RedisServer {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("redis-server exited ({status}); log:\n{}", server.log());
            }
            if let Ok(mut client) = Client::connect(port) {
                if client.cmd(&["PING"]) == Reply::Status("PONG".into()) {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port).expect("connect to redis-server")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `entries` into a running server with ordinary commands (RPUSH, SADD, ...).
pub fn populate(client: &mut Client, entries: &[RdbEntry]) {
    for e in entries {
        client.ok(&[b"SELECT".to_vec(), e.db.to_string().into_bytes()]);
        let key = e.key.clone();
        match &e.value {
            RdbValue::String(s) => {
                client.ok(&[b"SET".to_vec(), key.clone(), s.clone()]);
            }
            RdbValue::List(items) => {
                for chunk in items.chunks(500) {
                    let mut args = vec![b"RPUSH".to_vec(), key.clone()];
                    args.extend(chunk.iter().cloned());
                    client.ok(&args);
                }
            }
            RdbValue::Set(items) => {
                let mut args = vec![b"SADD".to_vec(), key.clone()];
                args.extend(items.iter().cloned());
                client.ok(&args);
            }
            RdbValue::Hash(pairs) => {
                let mut args = vec![b"HSET".to_vec(), key.clone()];
                for (f, v) in pairs {
                    args.push(f.clone());
                    args.push(v.clone());
                }
                client.ok(&args);
            }
            RdbValue::ZSet(pairs) => {
                let mut args = vec![b"ZADD".to_vec(), key.clone()];
                for (m, s) in pairs {
                    args.push(cinnabar_rdb::format_score(*s).into_bytes());
                    args.push(m.clone());
                }
                client.ok(&args);
            }
        }
        if let Some(at_ms) = e.expire_at_ms {
            client.ok(&[b"PEXPIREAT".to_vec(), key, at_ms.to_string().into_bytes()]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Key descriptions
// ---------------------------------------------------------------------------------------------

/// What a key looks like from a client: the unit the golden and interop tests compare.
/// Elements are normalized: sets sorted, hashes sorted by field (flattened), zsets in ZRANGE
/// order as member, score text pairs, lists in order.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDescription {
    pub db: u32,
    pub key: Vec<u8>,
    pub type_name: String,
    /// OBJECT ENCODING (`-` when unknown, e.g. described from a model value).
    pub encoding: String,
    /// PEXPIRETIME, -1 without expiry.
    pub expire_at_ms: i64,
    pub elements: Vec<Vec<u8>>,
}

/// Describes a model entry (encoding `-`).
pub fn describe_entry(e: &RdbEntry) -> KeyDescription {
    let elements = match &e.value {
        RdbValue::String(s) => vec![s.clone()],
        RdbValue::List(items) => items.clone(),
        RdbValue::Set(items) => {
            let mut items = items.clone();
            items.sort();
            items
        }
        RdbValue::Hash(pairs) => {
            let mut pairs = pairs.clone();
            pairs.sort();
            pairs.into_iter().flat_map(|(f, v)| [f, v]).collect()
        }
        RdbValue::ZSet(pairs) => {
            let mut pairs = pairs.clone();
            pairs.sort_by(|a, b| {
                a.1.partial_cmp(&b.1)
                    .expect("no NaN")
                    .then_with(|| a.0.cmp(&b.0))
            });
            pairs
                .into_iter()
                .flat_map(|(m, s)| [m, cinnabar_rdb::format_score(s).into_bytes()])
                .collect()
        }
    };
    KeyDescription {
        db: e.db,
        key: e.key.clone(),
        type_name: e.value.type_name().to_string(),
        encoding: "-".into(),
        expire_at_ms: e.expire_at_ms.unwrap_or(-1),
        elements,
    }
}

/// Describes every key of databases 0..16 of a running server, sorted by (db, key).
pub fn describe_server(client: &mut Client) -> Vec<KeyDescription> {
    let mut out = Vec::new();
    for db in 0..16u32 {
        client.ok(&[b"SELECT".to_vec(), db.to_string().into_bytes()]);
        let mut keys = client.ok(&["KEYS", "*"]).bulks();
        keys.sort();
        for key in keys {
            let type_name = String::from_utf8(client.ok(&[b"TYPE".to_vec(), key.clone()]).bulk())
                .expect("type");
            let encoding = String::from_utf8(
                client
                    .ok(&[b"OBJECT".to_vec(), b"ENCODING".to_vec(), key.clone()])
                    .bulk(),
            )
            .expect("encoding");
            let expire_at_ms = client.ok(&[b"PEXPIRETIME".to_vec(), key.clone()]).int();
            let elements = match type_name.as_str() {
                "string" => vec![client.ok(&[b"GET".to_vec(), key.clone()]).bulk()],
                "list" => client
                    .ok(&[
                        b"LRANGE".to_vec(),
                        key.clone(),
                        b"0".to_vec(),
                        b"-1".to_vec(),
                    ])
                    .bulks(),
                "set" => {
                    let mut m = client.ok(&[b"SMEMBERS".to_vec(), key.clone()]).bulks();
                    m.sort();
                    m
                }
                "hash" => {
                    let flat = client.ok(&[b"HGETALL".to_vec(), key.clone()]).bulks();
                    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = flat
                        .chunks(2)
                        .map(|c| (c[0].clone(), c[1].clone()))
                        .collect();
                    pairs.sort();
                    pairs.into_iter().flat_map(|(f, v)| [f, v]).collect()
                }
                "zset" => client
                    .ok(&[
                        b"ZRANGE".to_vec(),
                        key.clone(),
                        b"0".to_vec(),
                        b"-1".to_vec(),
                        b"WITHSCORES".to_vec(),
                    ])
                    .bulks(),
                "stream" => Vec::new(),
                other => panic!("unexpected type {other}"),
            };
            out.push(KeyDescription {
                db,
                key,
                type_name,
                encoding,
                expire_at_ms,
                elements,
            });
        }
    }
    out
}

/// Compares descriptions ignoring `encoding` where either side is `-`; zset scores compare
/// numerically. Returns a readable list of differences.
pub fn diff_descriptions(expected: &[KeyDescription], actual: &[KeyDescription]) -> Vec<String> {
    let mut problems = Vec::new();
    let sort = |d: &[KeyDescription]| {
        let mut d = d.to_vec();
        d.sort_by(|a, b| (a.db, &a.key).cmp(&(b.db, &b.key)));
        d
    };
    let (expected, actual) = (sort(expected), sort(actual));
    if expected.len() != actual.len() {
        problems.push(format!(
            "{} keys expected, {} found",
            expected.len(),
            actual.len()
        ));
    }
    for (e, a) in expected.iter().zip(actual.iter()) {
        let name = format!("db{} {}", e.db, String::from_utf8_lossy(&e.key));
        if (e.db, &e.key) != (a.db, &a.key) {
            problems.push(format!(
                "{name}: found db{} {} instead",
                a.db,
                String::from_utf8_lossy(&a.key)
            ));
            continue;
        }
        if e.type_name != a.type_name {
            problems.push(format!("{name}: type {} != {}", e.type_name, a.type_name));
            continue;
        }
        if e.encoding != "-" && a.encoding != "-" && e.encoding != a.encoding {
            problems.push(format!("{name}: encoding {} != {}", e.encoding, a.encoding));
        }
        if e.expire_at_ms != a.expire_at_ms {
            problems.push(format!(
                "{name}: expire {} != {}",
                e.expire_at_ms, a.expire_at_ms
            ));
        }
        let same = if e.type_name == "zset" {
            e.elements.len() == a.elements.len()
                && e.elements
                    .chunks(2)
                    .zip(a.elements.chunks(2))
                    .all(|(x, y)| {
                        let score = |s: &[u8]| {
                            std::str::from_utf8(s)
                                .ok()
                                .and_then(|s| s.parse::<f64>().ok())
                        };
                        x[0] == y[0] && score(&x[1]).is_some() && score(&x[1]) == score(&y[1])
                    })
        } else {
            e.elements == a.elements
        };
        if !same {
            problems.push(format!(
                "{name}: elements differ ({} vs {})",
                e.elements.len(),
                a.elements.len()
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The .expected text format
// ---------------------------------------------------------------------------------------------

/// Escapes one token: printable ASCII except `\` as is, other bytes `\xNN`, empty as `\-`.
pub fn escape(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "\\-".into();
    }
    let mut s = String::new();
    for &c in bytes {
        if c.is_ascii_graphic() && c != b'\\' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

pub fn unescape(token: &str) -> Vec<u8> {
    if token == "\\-" {
        return Vec::new();
    }
    let bytes = token.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() && bytes[i + 1] == b'x' {
            let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex byte"));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// One line per key: `db type encoding expire_at_ms key element...`, tokens escaped.
pub fn write_expected(descriptions: &[KeyDescription], header: &str) -> String {
    let mut s = String::new();
    for line in header.lines() {
        s.push_str("# ");
        s.push_str(line);
        s.push('\n');
    }
    for d in descriptions {
        s.push_str(&format!(
            "{} {} {} {} {}",
            d.db,
            d.type_name,
            d.encoding,
            d.expire_at_ms,
            escape(&d.key)
        ));
        for e in &d.elements {
            s.push(' ');
            s.push_str(&escape(e));
        }
        s.push('\n');
    }
    s
}

pub fn parse_expected(text: &str) -> Vec<KeyDescription> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let mut tokens = line.split(' ');
            let mut next = || tokens.next().expect("token");
            let db = next().parse().expect("db");
            let type_name = next().to_string();
            let encoding = next().to_string();
            let expire_at_ms = next().parse().expect("expire");
            let key = unescape(next());
            let elements = tokens.map(unescape).collect();
            KeyDescription {
                db,
                key,
                type_name,
                encoding,
                expire_at_ms,
                elements,
            }
        })
        .collect()
}

/// The RDB object type Redis 7.0 writes for a `TYPE`/`OBJECT ENCODING` pair.
pub fn rdb_type_for(type_name: &str, encoding: &str) -> u8 {
    use cinnabar_rdb::rdb_type;
    match (type_name, encoding) {
        ("string", _) => rdb_type::STRING,
        ("list", _) => rdb_type::LIST_QUICKLIST_2,
        ("set", "intset") => rdb_type::SET_INTSET,
        ("set", _) => rdb_type::SET,
        ("hash", "listpack") => rdb_type::HASH_LISTPACK,
        ("hash", _) => rdb_type::HASH,
        ("zset", "listpack") => rdb_type::ZSET_LISTPACK,
        ("zset", _) => rdb_type::ZSET_2,
        other => panic!("unexpected type/encoding {other:?}"),
    }
}

/// `tests/data` in the crate.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}
