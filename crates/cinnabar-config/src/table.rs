//! The static table of every configuration directive Redis 7.0.15 knows:
//! name, alias, value type (with bounds), default as `CONFIG GET` prints it,
//! runtime mutability, and whether Cinnabar actually honours it.
//!
//! Derived from Redis 7.0's `static_configs[]` (src/config.c) and checked
//! against a real redis-server 7.0.15 (`tests/redis-7.0.15-defaults.tsv`).
//! Directives that are not in `CONFIG GET` (include, rename-command, user,
//! loadmodule, sentinel, deprecated no-ops) are listed in [`FILE_ONLY_DIRECTIVES`].

/// Whether `CONFIG SET` may change a directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    /// `CONFIG SET` works.
    Mutable,
    /// `CONFIG SET` fails with "can't set immutable config".
    Immutable,
    /// `CONFIG SET` fails with "can't set protected config" unless
    /// `enable-protected-configs` allows it (yes, or local for local clients).
    Protected,
}

/// How Redis range-checks a numeric value (depends on the C type behind it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signedness {
    /// long/int/long long/ssize_t/time_t/off_t: signed comparison.
    Signed,
    /// unsigned int/unsigned long long/size_t: the parsed value is compared as
    /// unsigned (so `-1` becomes huge and fails the upper bound).
    Unsigned,
}

/// How a numeric value is written (and parsed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumFormat {
    /// Plain integer (`string2ll` strictness: no '+', no leading zeros).
    Integer,
    /// Memory value: `1gb`, `100mb`, `1k` (=1000), `5kb` (=1024) ...
    Memory,
    /// Memory value or `N%` (stored as negative number, printed as `N%`).
    MemoryOrPercent,
    /// Octal number (unixsocketperm).
    Octal,
}

/// Special (multi-argument or custom) directives, each with bespoke parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    Dir,
    Save,
    ClientOutputBufferLimit,
    OomScoreAdjValues,
    NotifyKeyspaceEvents,
    Bind,
    ReplicaOf,
    LatencyTrackingInfoPercentiles,
}

/// Extra validation Redis applies to a string directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrCheck {
    None,
    DbFilename,
    AofFilename,
    AofDirname,
    Hostname,
    ProcTitleTemplate,
}

/// Value type of a directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// yes / no.
    Bool,
    /// Numeric with inclusive bounds (as C long long).
    Num {
        min: i64,
        max: i64,
        sign: Signedness,
        format: NumFormat,
    },
    /// One of a fixed set of names (case-insensitive input). Several names
    /// may map to the same value (`oom-score-adj yes|relative`); the first
    /// name with a value is the one printed.
    Enum {
        names: &'static [(&'static str, u32)],
        /// Bit-flag enum: several names may be given (`shutdown-on-sigint now force`).
        flags: bool,
    },
    /// Free string. `empty_is_null`: an empty value means "unset" (affects rewrite).
    Str {
        empty_is_null: bool,
        check: StrCheck,
    },
    /// Custom parser.
    Special(Special),
}

/// One configuration directive.
#[derive(Clone, Copy, Debug)]
pub struct Directive {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub kind: Kind,
    /// Default value exactly as `CONFIG GET` prints it (`dir` is the cwd: "").
    pub default: &'static str,
    pub mutability: Mutability,
    /// Takes several arguments on one line (`save 3600 1 300 100`).
    pub multi_arg: bool,
    /// Not listed by glob patterns in `CONFIG GET` (exact name only).
    pub hidden: bool,
    /// Cinnabar honours this directive (the server consults this flag).
    pub implemented: bool,
}

/// Directives that are only valid in a config file / command line and never
/// appear in `CONFIG GET`.
pub const FILE_ONLY_DIRECTIVES: &[&str] = &[
    "include",
    "rename-command",
    "user",
    "loadmodule",
    "sentinel",
    // Deprecated in 7.0, silently accepted with exactly one argument.
    "list-max-ziplist-entries",
    "list-max-ziplist-value",
    "lua-replicate-commands",
];

/// Deprecated directives that Redis 7.0 accepts and ignores (with 1 argument).
pub const DEPRECATED_NOOP_DIRECTIVES: &[&str] = &[
    "list-max-ziplist-entries",
    "list-max-ziplist-value",
    "lua-replicate-commands",
];

const INT_MAX: i64 = i32::MAX as i64;
const INT_MIN: i64 = i32::MIN as i64;
const UINT_MAX: i64 = u32::MAX as i64;
const LONG_MAX: i64 = i64::MAX;
const LLONG_MAX: i64 = i64::MAX;
/// ULLONG_MAX stored bit-for-bit in an i64 (compared as unsigned).
const ULLONG_MAX: i64 = -1;

use Mutability::{Immutable as I, Mutable as M, Protected as P};

const fn d(
    name: &'static str,
    alias: Option<&'static str>,
    mutability: Mutability,
    kind: Kind,
    default: &'static str,
) -> Directive {
    Directive {
        name,
        alias,
        kind,
        default,
        mutability,
        multi_arg: false,
        hidden: false,
        implemented: false,
    }
}

const fn b(name: &'static str, alias: Option<&'static str>, m: Mutability, def: bool) -> Directive {
    d(name, alias, m, Kind::Bool, if def { "yes" } else { "no" })
}

#[allow(clippy::too_many_arguments)] // mirrors Redis's createXConfig macros
const fn num(
    name: &'static str,
    alias: Option<&'static str>,
    m: Mutability,
    min: i64,
    max: i64,
    sign: Signedness,
    format: NumFormat,
    def: &'static str,
) -> Directive {
    d(
        name,
        alias,
        m,
        Kind::Num {
            min,
            max,
            sign,
            format,
        },
        def,
    )
}

/// Signed plain integer.
const fn int(
    name: &'static str,
    alias: Option<&'static str>,
    m: Mutability,
    min: i64,
    max: i64,
    def: &'static str,
) -> Directive {
    num(
        name,
        alias,
        m,
        min,
        max,
        Signedness::Signed,
        NumFormat::Integer,
        def,
    )
}

/// Unsigned plain integer (size_t / unsigned int).
const fn uint(
    name: &'static str,
    alias: Option<&'static str>,
    m: Mutability,
    min: i64,
    max: i64,
    def: &'static str,
) -> Directive {
    num(
        name,
        alias,
        m,
        min,
        max,
        Signedness::Unsigned,
        NumFormat::Integer,
        def,
    )
}

const fn mem(
    name: &'static str,
    alias: Option<&'static str>,
    m: Mutability,
    min: i64,
    max: i64,
    sign: Signedness,
    def: &'static str,
) -> Directive {
    num(name, alias, m, min, max, sign, NumFormat::Memory, def)
}

const fn s(
    name: &'static str,
    alias: Option<&'static str>,
    m: Mutability,
    empty_is_null: bool,
    def: &'static str,
) -> Directive {
    d(
        name,
        alias,
        m,
        Kind::Str {
            empty_is_null,
            check: StrCheck::None,
        },
        def,
    )
}

const fn sc(
    name: &'static str,
    m: Mutability,
    empty_is_null: bool,
    check: StrCheck,
    def: &'static str,
) -> Directive {
    d(
        name,
        None,
        m,
        Kind::Str {
            empty_is_null,
            check,
        },
        def,
    )
}

const fn e(
    name: &'static str,
    m: Mutability,
    names: &'static [(&'static str, u32)],
    def: &'static str,
) -> Directive {
    d(
        name,
        None,
        m,
        Kind::Enum {
            names,
            flags: false,
        },
        def,
    )
}

const fn sp(
    name: &'static str,
    alias: Option<&'static str>,
    m: Mutability,
    which: Special,
    multi: bool,
    def: &'static str,
) -> Directive {
    let mut x = d(name, alias, m, Kind::Special(which), def);
    x.multi_arg = multi;
    x
}

const fn yes(mut x: Directive) -> Directive {
    x.implemented = true;
    x
}

const fn hidden(mut x: Directive) -> Directive {
    x.hidden = true;
    x
}

const fn multi(mut x: Directive) -> Directive {
    x.multi_arg = true;
    x
}

use Signedness::{Signed as SG, Unsigned as US};

pub const MAXMEMORY_POLICY: &[(&str, u32)] = &[
    ("volatile-lru", 0),
    ("volatile-lfu", 1),
    ("volatile-random", 2),
    ("volatile-ttl", 3),
    ("allkeys-lru", 4),
    ("allkeys-lfu", 5),
    ("allkeys-random", 6),
    ("noeviction", 7),
];
pub const SYSLOG_FACILITY: &[(&str, u32)] = &[
    ("user", 0),
    ("local0", 1),
    ("local1", 2),
    ("local2", 3),
    ("local3", 4),
    ("local4", 5),
    ("local5", 6),
    ("local6", 7),
    ("local7", 8),
];
pub const LOGLEVEL: &[(&str, u32)] = &[("debug", 0), ("verbose", 1), ("notice", 2), ("warning", 3)];
pub const SUPERVISED: &[(&str, u32)] = &[("upstart", 0), ("systemd", 1), ("auto", 2), ("no", 3)];
pub const APPENDFSYNC: &[(&str, u32)] = &[("everysec", 0), ("always", 1), ("no", 2)];
pub const REPL_DISKLESS_LOAD: &[(&str, u32)] =
    &[("disabled", 0), ("on-empty-db", 1), ("swapdb", 2)];
pub const TLS_AUTH_CLIENTS: &[(&str, u32)] = &[("no", 0), ("yes", 1), ("optional", 2)];
pub const OOM_SCORE_ADJ: &[(&str, u32)] =
    &[("no", 0), ("yes", 1), ("relative", 1), ("absolute", 2)];
pub const ACL_PUBSUB_DEFAULT: &[(&str, u32)] = &[("allchannels", 1), ("resetchannels", 0)];
pub const SANITIZE_DUMP_PAYLOAD: &[(&str, u32)] = &[("no", 0), ("yes", 1), ("clients", 2)];
pub const PROTECTED_ACTION: &[(&str, u32)] = &[("no", 0), ("yes", 1), ("local", 2)];
pub const CLUSTER_PREFERRED_ENDPOINT_TYPE: &[(&str, u32)] =
    &[("ip", 0), ("hostname", 1), ("unknown-endpoint", 2)];
pub const PROPAGATION_ERROR_BEHAVIOR: &[(&str, u32)] =
    &[("ignore", 0), ("panic", 1), ("panic-on-replicas", 2)];
/// Bit flags: default=0, save=1, nosave=2, now=4, force=8.
pub const SHUTDOWN_ON_SIG: &[(&str, u32)] = &[
    ("default", 0),
    ("save", 1),
    ("nosave", 2),
    ("now", 4),
    ("force", 8),
];

const fn flags_enum(
    name: &'static str,
    names: &'static [(&'static str, u32)],
    def: &'static str,
) -> Directive {
    multi(d(name, None, M, Kind::Enum { names, flags: true }, def))
}

/// Every directive `CONFIG GET`/`CONFIG SET` know in Redis 7.0.15 (TLS build),
/// in Redis's own table order.
pub static DIRECTIVES: &[Directive] = &[
    // ---- bool ----
    yes(b("rdbchecksum", None, I, true)),
    yes(b("daemonize", None, I, false)),
    b("io-threads-do-reads", None, I, false),
    yes(b("always-show-logo", None, I, false)),
    yes(b("protected-mode", None, M, true)),
    yes(b("rdbcompression", None, M, true)),
    b("rdb-del-sync-files", None, M, false),
    b("activerehashing", None, M, true),
    yes(b("stop-writes-on-bgsave-error", None, M, true)),
    b("set-proc-title", None, I, true),
    b("dynamic-hz", None, M, true),
    yes(b("lazyfree-lazy-eviction", None, M, false)),
    yes(b("lazyfree-lazy-expire", None, M, false)),
    yes(b("lazyfree-lazy-server-del", None, M, false)),
    yes(b("lazyfree-lazy-user-del", None, M, false)),
    yes(b("lazyfree-lazy-user-flush", None, M, false)),
    b("repl-disable-tcp-nodelay", None, M, false),
    b("repl-diskless-sync", None, M, true),
    yes(b("aof-rewrite-incremental-fsync", None, M, true)),
    yes(b("no-appendfsync-on-rewrite", None, M, false)),
    yes(b("cluster-require-full-coverage", None, M, true)),
    yes(b("rdb-save-incremental-fsync", None, M, true)),
    yes(b("aof-load-truncated", None, M, true)),
    yes(b("aof-use-rdb-preamble", None, M, true)),
    yes(b("aof-timestamp-enabled", None, M, false)),
    yes(b(
        "cluster-replica-no-failover",
        Some("cluster-slave-no-failover"),
        M,
        false,
    )),
    b("replica-lazy-flush", Some("slave-lazy-flush"), M, false),
    yes(b(
        "replica-serve-stale-data",
        Some("slave-serve-stale-data"),
        M,
        true,
    )),
    yes(b("replica-read-only", Some("slave-read-only"), M, true)),
    yes(b(
        "replica-ignore-maxmemory",
        Some("slave-ignore-maxmemory"),
        M,
        true,
    )),
    b("jemalloc-bg-thread", None, M, true),
    b("activedefrag", None, M, false),
    b("syslog-enabled", None, I, false),
    yes(b("cluster-enabled", None, I, false)),
    yes(b("appendonly", None, M, false)),
    yes(b("cluster-allow-reads-when-down", None, M, false)),
    yes(b("cluster-allow-pubsubshard-when-down", None, M, true)),
    b("crash-log-enabled", None, M, true),
    b("crash-memcheck-enabled", None, M, true),
    hidden(b("use-exit-on-panic", None, M, false)),
    b("disable-thp", None, I, true),
    b("cluster-allow-replica-migration", None, M, true),
    b("replica-announced", None, M, true),
    yes(b("latency-tracking", None, M, true)),
    yes(b("aof-disable-auto-gc", None, M, false)),
    b("replica-ignore-disk-write-errors", None, M, false),
    // ---- string ----
    s("aclfile", None, I, false, ""),
    yes(s("unixsocket", None, I, true, "")),
    yes(s("pidfile", None, I, true, "")),
    yes(s(
        "replica-announce-ip",
        Some("slave-announce-ip"),
        M,
        true,
        "",
    )),
    s("masteruser", None, M, true, ""),
    yes(s("cluster-announce-ip", None, M, true, "")),
    yes(s("cluster-config-file", None, I, false, "nodes.conf")),
    yes(sc(
        "cluster-announce-hostname",
        M,
        true,
        StrCheck::Hostname,
        "",
    )),
    s("syslog-ident", None, I, false, "redis"),
    yes(sc("dbfilename", P, false, StrCheck::DbFilename, "dump.rdb")),
    yes(sc(
        "appendfilename",
        I,
        false,
        StrCheck::AofFilename,
        "appendonly.aof",
    )),
    yes(sc(
        "appenddirname",
        I,
        false,
        StrCheck::AofDirname,
        "appendonlydir",
    )),
    s("server_cpulist", None, I, true, ""),
    s("bio_cpulist", None, I, true, ""),
    s("aof_rewrite_cpulist", None, I, true, ""),
    s("bgsave_cpulist", None, I, true, ""),
    s("ignore-warnings", None, M, false, ""),
    sc(
        "proc-title-template",
        M,
        false,
        StrCheck::ProcTitleTemplate,
        "{title} {listen-addr} {server-mode}",
    ),
    s("bind-source-addr", None, M, true, ""),
    yes(s("logfile", None, I, false, "")),
    yes(s("masterauth", None, M, true, "")),
    yes(s("requirepass", None, M, true, "")),
    // ---- enum ----
    e("supervised", I, SUPERVISED, "no"),
    e("syslog-facility", I, SYSLOG_FACILITY, "local0"),
    e("repl-diskless-load", M, REPL_DISKLESS_LOAD, "disabled"),
    yes(e("loglevel", M, LOGLEVEL, "notice")),
    yes(e("maxmemory-policy", M, MAXMEMORY_POLICY, "noeviction")),
    yes(e("appendfsync", M, APPENDFSYNC, "everysec")),
    e("oom-score-adj", M, OOM_SCORE_ADJ, "no"),
    e("acl-pubsub-default", M, ACL_PUBSUB_DEFAULT, "resetchannels"),
    e("sanitize-dump-payload", M, SANITIZE_DUMP_PAYLOAD, "no"),
    e("enable-protected-configs", I, PROTECTED_ACTION, "no"),
    yes(e("enable-debug-command", I, PROTECTED_ACTION, "no")),
    e("enable-module-command", I, PROTECTED_ACTION, "no"),
    e(
        "cluster-preferred-endpoint-type",
        M,
        CLUSTER_PREFERRED_ENDPOINT_TYPE,
        "ip",
    ),
    e(
        "propagation-error-behavior",
        M,
        PROPAGATION_ERROR_BEHAVIOR,
        "ignore",
    ),
    flags_enum("shutdown-on-sigint", SHUTDOWN_ON_SIG, "default"),
    flags_enum("shutdown-on-sigterm", SHUTDOWN_ON_SIG, "default"),
    // ---- int ----
    yes(int("databases", None, I, 1, INT_MAX, "16")),
    yes(int("port", None, M, 0, 65535, "6379")),
    // Accepted; Cinnabar decides its own threading.
    yes(int("io-threads", None, I, 1, 128, "1")),
    yes(int(
        "auto-aof-rewrite-percentage",
        None,
        M,
        0,
        INT_MAX,
        "100",
    )),
    yes(int(
        "cluster-replica-validity-factor",
        Some("cluster-slave-validity-factor"),
        M,
        0,
        INT_MAX,
        "10",
    )),
    yes(int(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        M,
        INT_MIN,
        INT_MAX,
        "-2",
    )),
    yes(int("tcp-keepalive", None, M, 0, INT_MAX, "300")),
    yes(int("cluster-migration-barrier", None, M, 0, INT_MAX, "1")),
    int("active-defrag-cycle-min", None, M, 1, 99, "1"),
    int("active-defrag-cycle-max", None, M, 1, 99, "25"),
    int("active-defrag-threshold-lower", None, M, 0, 1000, "10"),
    int("active-defrag-threshold-upper", None, M, 0, 1000, "100"),
    yes(int("lfu-log-factor", None, M, 0, INT_MAX, "10")),
    yes(int("lfu-decay-time", None, M, 0, INT_MAX, "1")),
    int(
        "replica-priority",
        Some("slave-priority"),
        M,
        0,
        INT_MAX,
        "100",
    ),
    int("repl-diskless-sync-delay", None, M, 0, INT_MAX, "5"),
    yes(int("maxmemory-samples", None, M, 1, INT_MAX, "5")),
    yes(int("maxmemory-eviction-tenacity", None, M, 0, 100, "10")),
    yes(int("timeout", None, M, 0, INT_MAX, "0")),
    yes(int(
        "replica-announce-port",
        Some("slave-announce-port"),
        M,
        0,
        65535,
        "0",
    )),
    yes(int("tcp-backlog", None, I, 0, INT_MAX, "511")),
    yes(int("cluster-port", None, I, 0, 65535, "0")),
    yes(int("cluster-announce-bus-port", None, M, 0, 65535, "0")),
    yes(int("cluster-announce-port", None, M, 0, 65535, "0")),
    int("cluster-announce-tls-port", None, M, 0, 65535, "0"),
    int("repl-timeout", None, M, 1, INT_MAX, "60"),
    int(
        "repl-ping-replica-period",
        Some("repl-ping-slave-period"),
        M,
        1,
        INT_MAX,
        "10",
    ),
    yes(int("list-compress-depth", None, M, 0, INT_MAX, "0")),
    yes(hidden(int(
        "rdb-key-save-delay",
        None,
        M,
        INT_MIN,
        INT_MAX,
        "0",
    ))),
    yes(hidden(int(
        "key-load-delay",
        None,
        M,
        INT_MIN,
        INT_MAX,
        "0",
    ))),
    int("active-expire-effort", None, M, 1, 10, "1"),
    yes(int("hz", None, M, 0, INT_MAX, "10")),
    yes(int(
        "min-replicas-to-write",
        Some("min-slaves-to-write"),
        M,
        0,
        INT_MAX,
        "0",
    )),
    yes(int(
        "min-replicas-max-lag",
        Some("min-slaves-max-lag"),
        M,
        0,
        INT_MAX,
        "10",
    )),
    hidden(int("watchdog-period", None, M, 0, INT_MAX, "0")),
    int("shutdown-timeout", None, M, 0, INT_MAX, "10"),
    int("repl-diskless-sync-max-replicas", None, M, 0, INT_MAX, "0"),
    // ---- unsigned int ----
    yes(uint("maxclients", None, M, 1, UINT_MAX, "10000")),
    yes(num(
        "unixsocketperm",
        None,
        I,
        0,
        0o777,
        US,
        NumFormat::Octal,
        "0",
    )),
    uint("socket-mark-id", None, I, 0, UINT_MAX, "0"),
    // ---- unsigned long (range-checked as signed in Redis) ----
    int(
        "active-defrag-max-scan-fields",
        None,
        M,
        1,
        LONG_MAX,
        "1000",
    ),
    yes(int("slowlog-max-len", None, M, 0, LONG_MAX, "128")),
    int("acllog-max-len", None, M, 0, LONG_MAX, "128"),
    // ---- long long ----
    yes(int(
        "busy-reply-threshold",
        Some("lua-time-limit"),
        M,
        0,
        LONG_MAX,
        "5000",
    )),
    yes(int("cluster-node-timeout", None, M, 0, LLONG_MAX, "15000")),
    yes(int(
        "slowlog-log-slower-than",
        None,
        M,
        -1,
        LLONG_MAX,
        "10000",
    )),
    int("latency-monitor-threshold", None, M, 0, LLONG_MAX, "0"),
    yes(mem(
        "proto-max-bulk-len",
        None,
        M,
        1024 * 1024,
        LONG_MAX,
        SG,
        "536870912",
    )),
    int("stream-node-max-entries", None, M, 0, LLONG_MAX, "100"),
    yes(mem(
        "repl-backlog-size",
        None,
        M,
        1,
        LLONG_MAX,
        SG,
        "1048576",
    )),
    // ---- unsigned long long ----
    // Stored; eviction is the server's business.
    yes(mem("maxmemory", None, M, 0, ULLONG_MAX, US, "0")),
    mem(
        "cluster-link-sendbuf-limit",
        None,
        M,
        0,
        ULLONG_MAX,
        US,
        "0",
    ),
    // ---- size_t ----
    yes(uint(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        M,
        0,
        LONG_MAX,
        "512",
    )),
    yes(uint("set-max-intset-entries", None, M, 0, LONG_MAX, "512")),
    yes(uint(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        M,
        0,
        LONG_MAX,
        "128",
    )),
    mem(
        "active-defrag-ignore-bytes",
        None,
        M,
        1,
        LLONG_MAX,
        US,
        "104857600",
    ),
    yes(mem(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        M,
        0,
        LONG_MAX,
        US,
        "64",
    )),
    mem("stream-node-max-bytes", None, M, 0, LONG_MAX, US, "4096"),
    yes(mem(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        M,
        0,
        LONG_MAX,
        US,
        "64",
    )),
    yes(mem(
        "hll-sparse-max-bytes",
        None,
        M,
        0,
        LONG_MAX,
        US,
        "3000",
    )),
    uint("tracking-table-max-keys", None, M, 0, LONG_MAX, "1000000"),
    yes(mem(
        "client-query-buffer-limit",
        None,
        M,
        1024 * 1024,
        LONG_MAX,
        US,
        "1073741824",
    )),
    // ---- ssize_t ----
    num(
        "maxmemory-clients",
        None,
        M,
        -100,
        i64::MAX,
        SG,
        NumFormat::MemoryOrPercent,
        "0",
    ),
    // ---- time_t / off_t ----
    int("repl-backlog-ttl", None, M, 0, LONG_MAX, "3600"),
    yes(mem(
        "auto-aof-rewrite-min-size",
        None,
        M,
        0,
        LLONG_MAX,
        SG,
        "67108864",
    )),
    hidden(int(
        "loading-process-events-interval-bytes",
        None,
        M,
        1024,
        INT_MAX,
        "2097152",
    )),
    // ---- TLS (Debian builds with TLS) ----
    int("tls-port", None, M, 0, 65535, "0"),
    int("tls-session-cache-size", None, M, 0, INT_MAX, "20480"),
    int("tls-session-cache-timeout", None, M, 0, INT_MAX, "300"),
    b("tls-cluster", None, M, false),
    b("tls-replication", None, M, false),
    e("tls-auth-clients", M, TLS_AUTH_CLIENTS, "yes"),
    b("tls-prefer-server-ciphers", None, M, false),
    b("tls-session-caching", None, M, true),
    s("tls-cert-file", None, M, true, ""),
    s("tls-key-file", None, M, true, ""),
    s("tls-key-file-pass", None, M, true, ""),
    s("tls-client-cert-file", None, M, true, ""),
    s("tls-client-key-file", None, M, true, ""),
    s("tls-client-key-file-pass", None, M, true, ""),
    s("tls-dh-params-file", None, M, true, ""),
    s("tls-ca-cert-file", None, M, true, ""),
    s("tls-ca-cert-dir", None, M, true, ""),
    s("tls-protocols", None, M, true, ""),
    s("tls-ciphers", None, M, true, ""),
    s("tls-ciphersuites", None, M, true, ""),
    // ---- special ----
    yes(sp("dir", None, P, Special::Dir, false, "")),
    yes(sp(
        "save",
        None,
        M,
        Special::Save,
        true,
        "3600 1 300 100 60 10000",
    )),
    yes(sp(
        "client-output-buffer-limit",
        None,
        M,
        Special::ClientOutputBufferLimit,
        true,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    )),
    sp(
        "oom-score-adj-values",
        None,
        M,
        Special::OomScoreAdjValues,
        true,
        "0 200 800",
    ),
    yes(sp(
        "notify-keyspace-events",
        None,
        M,
        Special::NotifyKeyspaceEvents,
        false,
        "",
    )),
    yes(sp("bind", None, M, Special::Bind, true, "* -::*")),
    yes(sp(
        "replicaof",
        Some("slaveof"),
        I,
        Special::ReplicaOf,
        true,
        "",
    )),
    sp(
        "latency-tracking-info-percentiles",
        None,
        M,
        Special::LatencyTrackingInfoPercentiles,
        true,
        "50 99 99.9",
    ),
];

/// Look a directive up by name or alias, case-insensitively.
/// Returns the directive and whether `name` was its alias.
pub fn lookup(name: &str) -> Option<(usize, bool)> {
    DIRECTIVES.iter().enumerate().find_map(|(i, d)| {
        if d.name.eq_ignore_ascii_case(name) {
            Some((i, false))
        } else if d.alias.is_some_and(|a| a.eq_ignore_ascii_case(name)) {
            Some((i, true))
        } else {
            None
        }
    })
}
