//! `Settings`: the typed snapshot of configuration values the server reads on its hot paths.
//! It is derived from the configuration store (directive name → value as CONFIG GET prints
//! it) and rebuilt after every CONFIG SET, so command code never parses config strings.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default)]
pub struct OutputLimit {
    pub hard_bytes: u64,
    pub soft_bytes: u64,
    pub soft_seconds: u64,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    pub bind: Vec<String>,
    pub unixsocket: String,
    pub unixsocketperm: u32,
    pub protected_mode: bool,
    pub tcp_backlog: i32,
    pub timeout_s: u64,
    pub tcp_keepalive_s: u64,
    pub daemonize: bool,
    pub pidfile: String,
    pub logfile: String,
    pub loglevel: String,
    pub databases: usize,
    pub always_show_logo: bool,
    pub requirepass: Option<String>,
    pub maxclients: u64,
    pub proto_max_bulk_len_bytes: u64,
    pub client_query_buffer_limit_bytes: u64,
    pub output_limit_normal: OutputLimit,
    pub output_limit_pubsub: OutputLimit,
    pub output_limit_replica: OutputLimit,
    pub dir: PathBuf,
    pub hz: u32,
    pub enable_debug_command: String,
    pub slowlog_log_slower_than_us: i64,
    pub slowlog_max_len: u64,
    /// `busy-reply-threshold` (alias `lua-time-limit`): when a running script is logged as slow.
    pub busy_reply_threshold_ms: u64,
    pub cluster_enabled: bool,
    pub cluster_config_file: String,
    pub cluster_node_timeout_ms: u64,
    pub cluster_port: u16,
    pub cluster_announce_ip: Option<String>,
    pub cluster_announce_port: u16,
    pub cluster_announce_bus_port: u16,
    pub cluster_announce_hostname: Option<String>,
    pub cluster_require_full_coverage: bool,
    pub cluster_allow_reads_when_down: bool,
    pub cluster_allow_pubsubshard_when_down: bool,
    pub cluster_replica_no_failover: bool,
    pub cluster_migration_barrier: u32,
    pub cluster_replica_validity_factor: u32,
    pub appendonly: bool,
    pub appendfsync: Fsync,
    pub appendfilename: String,
    pub appenddirname: String,
    pub aof_use_rdb_preamble: bool,
    pub aof_load_truncated: bool,
    pub aof_timestamp_enabled: bool,
    pub no_appendfsync_on_rewrite: bool,
    pub auto_aof_rewrite_percentage: u64,
    pub auto_aof_rewrite_min_size_bytes: u64,
    /// `save` points: (seconds, changes) pairs; empty = no automatic snapshots.
    pub save_points: Vec<(u64, u64)>,
    pub dbfilename: String,
    pub stop_writes_on_bgsave_error: bool,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    /// `io-threads`: values above 1 set the number of worker threads (default: one per core).
    pub io_threads: u32,
    /// Collection encodings (data types).
    pub list_max_listpack_size: i64,
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    /// `notify-keyspace-events` as Redis's NOTIFY_* bits (see `notify.rs`).
    pub notify_keyspace_events: u32,
    /// Replication (see `repl.rs`).
    pub repl_backlog_size_bytes: u64,
    pub masterauth: Option<String>,
    pub masteruser: Option<String>,
    pub replica_read_only: bool,
    pub replica_serve_stale_data: bool,
    pub replica_priority: u64,
    /// `min-replicas-to-write` / `min-replicas-max-lag` (seconds); 0 in either disables.
    pub min_replicas_to_write: u64,
    pub min_replicas_max_lag_s: u64,
    /// `replica-announce-ip` / `replica-announce-port` (0: the real port), sent to the master.
    pub replica_announce_ip: Option<String>,
    pub replica_announce_port: u16,
    /// `key-load-delay` (µs slept per key or AOF command loaded; a Redis debugging knob that
    /// tests use to make loading slow). Zero or negative: no delay.
    pub key_load_delay_us: i64,
    pub rdb_key_save_delay_us: i64,
    /// `maxmemory` (0 = no limit) and the eviction settings (`evict.rs`).
    pub maxmemory_bytes: u64,
    /// fsync every 4 MB while writing an RDB / an AOF base (`persist::AUTOSYNC_BYTES`).
    pub rdb_save_incremental_fsync: bool,
    pub aof_rewrite_incremental_fsync: bool,
    /// Keep the AOF history files after a rewrite (listed in the manifest as `type h`).
    pub aof_disable_auto_gc: bool,
    pub maxmemory_policy: String,
    pub maxmemory_samples: u32,
    pub maxmemory_eviction_tenacity: u32,
    pub replica_ignore_maxmemory: bool,
    pub lfu_log_factor: u32,
    pub lfu_decay_time_min: u32,
    /// `replicaof host port` from the configuration (start-up only).
    pub replicaof: Option<(String, u16)>,
}

fn yes(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

/// Parses a memory size as redis.conf does: `1gb`, `100mb`, `1k` (1000) / `1kb` (1024), bytes.
/// `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    Always,
    EverySec,
    No,
}

impl Fsync {
    pub fn parse(v: &str) -> Fsync {
        match v.to_ascii_lowercase().as_str() {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::EverySec,
        }
    }
}

/// Parses the `save` value ("3600 1 300 100"; "" = none) into (seconds, changes) pairs.
pub fn parse_save_points(v: &str) -> Vec<(u64, u64)> {
    let nums: Vec<u64> = v
        .split_whitespace()
        .filter_map(|x| x.parse::<u64>().ok())
        .collect();
    nums.chunks_exact(2).map(|c| (c[0], c[1])).collect()
}

pub fn parse_memory(v: &str) -> Option<u64> {
    let l = v.to_ascii_lowercase();
    let units: [(&str, u64); 8] = [
        ("gb", 1 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
        ("", 1),
    ];
    for (suffix, mul) in units {
        if let Some(num) = l.strip_suffix(suffix) {
            if num.is_empty() {
                continue;
            }
            if let Ok(n) = num.parse::<u64>() {
                return n.checked_mul(mul);
            }
            return None;
        }
    }
    None
}

fn parse_output_limits(v: &str) -> Result<[OutputLimit; 3], String> {
    // "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    let mut out = [OutputLimit::default(); 3];
    let parts: Vec<&str> = v.split_whitespace().collect();
    if !parts.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for chunk in parts.chunks(4) {
        let idx = match chunk[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        let hard = parse_memory(chunk[1])
            .ok_or("Error in hard, soft or soft_seconds setting in buffer limit configuration.")?;
        let soft = parse_memory(chunk[2])
            .ok_or("Error in hard, soft or soft_seconds setting in buffer limit configuration.")?;
        let secs = chunk[3].parse::<u64>().map_err(|_| {
            "Error in hard, soft or soft_seconds setting in buffer limit configuration."
        })?;
        out[idx] = OutputLimit {
            hard_bytes: hard,
            soft_bytes: soft,
            soft_seconds: secs,
        };
    }
    Ok(out)
}

impl Settings {
    /// Builds the snapshot from a lookup of directive values (as CONFIG GET prints them).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let s = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_string());
        let num = |name: &str, default: &str| -> Result<u64, String> {
            let v = s(name, default);
            parse_memory(&v).ok_or_else(|| format!("invalid value for '{name}': '{v}'"))
        };
        let b = |name: &str, default: &str| -> Result<bool, String> { yes(&s(name, default)) };
        let opt = |name: &str| get(name).filter(|v| !v.is_empty());
        let limits = parse_output_limits(&s(
            "client-output-buffer-limit",
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        ))?;
        let port = num("port", "6379")?;
        if port > 65535 {
            return Err("argument must be between 0 and 65535 inclusive".into());
        }
        let cluster_port = num("cluster-port", "0")?;
        Ok(Settings {
            port: port as u16,
            bind: s("bind", "* -::*")
                .split_whitespace()
                .map(String::from)
                .collect(),
            unixsocket: s("unixsocket", ""),
            unixsocketperm: u32::from_str_radix(&s("unixsocketperm", "0"), 8).unwrap_or(0),
            protected_mode: b("protected-mode", "yes")?,
            tcp_backlog: num("tcp-backlog", "511")? as i32,
            timeout_s: num("timeout", "0")?,
            tcp_keepalive_s: num("tcp-keepalive", "300")?,
            daemonize: b("daemonize", "no")?,
            pidfile: s("pidfile", ""),
            logfile: s("logfile", ""),
            loglevel: s("loglevel", "notice"),
            databases: num("databases", "16")?.clamp(1, 1 << 20) as usize,
            always_show_logo: b("always-show-logo", "no")?,
            requirepass: opt("requirepass"),
            maxclients: num("maxclients", "10000")?,
            proto_max_bulk_len_bytes: num("proto-max-bulk-len", "536870912")?,
            client_query_buffer_limit_bytes: num("client-query-buffer-limit", "1073741824")?,
            output_limit_normal: limits[0],
            output_limit_replica: limits[1],
            output_limit_pubsub: limits[2],
            dir: PathBuf::from(s("dir", ".")),
            hz: num("hz", "10")?.clamp(1, 500) as u32,
            enable_debug_command: s("enable-debug-command", "no"),
            slowlog_log_slower_than_us: s("slowlog-log-slower-than", "10000")
                .parse()
                .unwrap_or(10000),
            slowlog_max_len: num("slowlog-max-len", "128")?,
            busy_reply_threshold_ms: num("busy-reply-threshold", "5000")?,
            cluster_enabled: b("cluster-enabled", "no")?,
            cluster_config_file: s("cluster-config-file", "nodes.conf"),
            cluster_node_timeout_ms: num("cluster-node-timeout", "15000")?,
            cluster_port: cluster_port as u16,
            cluster_announce_ip: opt("cluster-announce-ip"),
            cluster_announce_port: num("cluster-announce-port", "0")? as u16,
            cluster_announce_bus_port: num("cluster-announce-bus-port", "0")? as u16,
            cluster_announce_hostname: opt("cluster-announce-hostname"),
            cluster_require_full_coverage: b("cluster-require-full-coverage", "yes")?,
            cluster_allow_reads_when_down: b("cluster-allow-reads-when-down", "no")?,
            cluster_allow_pubsubshard_when_down: b("cluster-allow-pubsubshard-when-down", "yes")?,
            cluster_replica_no_failover: b("cluster-replica-no-failover", "no")?,
            cluster_migration_barrier: num("cluster-migration-barrier", "1")? as u32,
            cluster_replica_validity_factor: num("cluster-replica-validity-factor", "10")? as u32,
            appendonly: b("appendonly", "no")?,
            appendfsync: Fsync::parse(&s("appendfsync", "everysec")),
            appendfilename: s("appendfilename", "appendonly.aof"),
            appenddirname: s("appenddirname", "appendonlydir"),
            aof_use_rdb_preamble: b("aof-use-rdb-preamble", "yes")?,
            aof_load_truncated: b("aof-load-truncated", "yes")?,
            aof_timestamp_enabled: b("aof-timestamp-enabled", "no")?,
            no_appendfsync_on_rewrite: b("no-appendfsync-on-rewrite", "no")?,
            auto_aof_rewrite_percentage: num("auto-aof-rewrite-percentage", "100")?,
            auto_aof_rewrite_min_size_bytes: num("auto-aof-rewrite-min-size", "67108864")?,
            save_points: parse_save_points(&s("save", "3600 1 300 100 60 10000")),
            dbfilename: s("dbfilename", "dump.rdb"),
            stop_writes_on_bgsave_error: b("stop-writes-on-bgsave-error", "yes")?,
            rdbcompression: b("rdbcompression", "yes")?,
            rdbchecksum: b("rdbchecksum", "yes")?,
            io_threads: num("io-threads", "1")?.clamp(1, 128) as u32,
            list_max_listpack_size: s("list-max-listpack-size", "-2").parse().unwrap_or(-2),
            hash_max_listpack_entries: num("hash-max-listpack-entries", "512")? as usize,
            hash_max_listpack_value: num("hash-max-listpack-value", "64")? as usize,
            set_max_intset_entries: num("set-max-intset-entries", "512")? as usize,
            zset_max_listpack_entries: num("zset-max-listpack-entries", "128")? as usize,
            zset_max_listpack_value: num("zset-max-listpack-value", "64")? as usize,
            notify_keyspace_events: cinnabar_config::values::keyspace_events_to_flags(&s(
                "notify-keyspace-events",
                "",
            ))
            .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")?,
            repl_backlog_size_bytes: num("repl-backlog-size", "1mb")?.max(16 * 1024),
            masterauth: opt("masterauth"),
            masteruser: opt("masteruser"),
            replica_read_only: b("replica-read-only", "yes")?,
            replica_serve_stale_data: b("replica-serve-stale-data", "yes")?,
            replica_priority: num("replica-priority", "100")?,
            min_replicas_to_write: num("min-replicas-to-write", "0")?,
            min_replicas_max_lag_s: num("min-replicas-max-lag", "10")?,
            replica_announce_ip: opt("replica-announce-ip"),
            replica_announce_port: num("replica-announce-port", "0")?.min(65535) as u16,
            key_load_delay_us: s("key-load-delay", "0").parse().unwrap_or(0),
            rdb_key_save_delay_us: s("rdb-key-save-delay", "0").parse().unwrap_or(0),
            maxmemory_bytes: num("maxmemory", "0")?,
            rdb_save_incremental_fsync: b("rdb-save-incremental-fsync", "yes")?,
            aof_rewrite_incremental_fsync: b("aof-rewrite-incremental-fsync", "yes")?,
            aof_disable_auto_gc: b("aof-disable-auto-gc", "no")?,
            maxmemory_policy: s("maxmemory-policy", "noeviction"),
            maxmemory_samples: num("maxmemory-samples", "5")?.clamp(1, 64) as u32,
            maxmemory_eviction_tenacity: num("maxmemory-eviction-tenacity", "10")?.min(100) as u32,
            replica_ignore_maxmemory: b("replica-ignore-maxmemory", "yes")?,
            lfu_log_factor: num("lfu-log-factor", "10")?.min(u32::MAX as u64) as u32,
            lfu_decay_time_min: num("lfu-decay-time", "1")?.min(u32::MAX as u64) as u32,
            replicaof: {
                let v = s("replicaof", "");
                let mut it = v.split_whitespace();
                match (it.next(), it.next().and_then(|p| p.parse::<u16>().ok())) {
                    (Some(h), Some(p)) => Some((h.to_string(), p)),
                    _ => None,
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1KB"), Some(1024));
        assert_eq!(parse_memory("42"), Some(42));
        assert_eq!(parse_memory("x"), None);
    }

    #[test]
    fn user_config_values() {
        let m: std::collections::HashMap<&str, &str> = [
            ("port", "8001"),
            ("cluster-enabled", "yes"),
            ("cluster-config-file", "nodes-8001.conf"),
            ("cluster-node-timeout", "5000"),
            ("appendonly", "yes"),
        ]
        .into_iter()
        .collect();
        let s = Settings::from_lookup(|k| m.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.port, 8001);
        assert!(s.cluster_enabled);
        assert_eq!(s.cluster_node_timeout_ms, 5000);
        assert_eq!(s.cluster_config_file, "nodes-8001.conf");
    }
}
