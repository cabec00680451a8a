//! INFO: renders the sections with the field names and formats redis-server 7.0 uses, so
//! redis-cli, client libraries and monitoring tools can read them.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::client::Client;
use crate::server::{now_ms, Server};

pub const CINNABAR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// used_memory right after start-up (INFO's used_memory_startup).
pub static STARTUP_MEMORY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Highest used_memory seen by INFO.
static PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "latencystats",
    "cluster",
    "keyspace",
];

/// Resident set size in bytes, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let page = 4096u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|p| p * page)
        .unwrap_or(0)
}

/// (user, system) CPU seconds of this process.
pub fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage writes into the provided struct only.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{}B", bytes)
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}

/// Allocator-level memory in use (what Redis reports as used_memory); RSS when the counting
/// allocator is not installed.
pub fn used_memory(_srv: &Server) -> u64 {
    match crate::alloc::allocated_bytes() {
        0 => rss_bytes(),
        n => n,
    }
}

/// Where the memory goes (Redis's getMemoryOverheadData), for INFO memory and MEMORY STATS.
pub struct MemOverhead {
    pub total: u64,
    pub peak: u64,
    pub startup: u64,
    pub repl_backlog: u64,
    pub clients_replicas: u64,
    pub clients_normal: u64,
    pub aof_buffer: u64,
    /// (db index, bytes of its slot tables) for databases holding keys.
    pub dbs: Vec<(usize, u64)>,
    pub overhead_total: u64,
    pub keys: u64,
    pub dataset: u64,
    pub rss: u64,
}

impl MemOverhead {
    /// Visits every slot table of the non-empty databases (O(slots), an admin command); a
    /// slot locked at that moment (a command in flight, or this client's own EXEC) is not
    /// counted rather than waited for.
    pub fn compute(srv: &Server) -> MemOverhead {
        let total = used_memory(srv);
        let peak = PEAK.fetch_max(total, Ordering::Relaxed).max(total);
        let startup = STARTUP_MEMORY.load(Ordering::Relaxed);
        let (repl_backlog, clients_replicas, aof_buffer) = srv.repl.memory_bytes();
        let clients_normal: u64 = srv
            .clients
            .lock()
            .values()
            .filter(|c| c.client_type() != crate::client::ClientType::Replica)
            .map(|c| c.qbuf_bytes.load(Ordering::Relaxed) + c.omem_bytes.load(Ordering::Relaxed))
            .sum();
        let mut dbs = Vec::new();
        let mut keys = 0u64;
        for (i, db) in srv.keyspace.existing_dbs() {
            let n = db.key_count() as u64;
            if n == 0 {
                continue;
            }
            keys += n;
            let tables: u64 = (0..crate::keyspace::SLOT_COUNT as u16)
                .filter_map(|s| db.try_table_overhead_bytes(s))
                .map(|b| b as u64)
                .sum();
            dbs.push((i, tables));
        }
        let overhead_total = startup
            + repl_backlog
            + clients_replicas
            + clients_normal
            + aof_buffer
            + dbs.iter().map(|d| d.1).sum::<u64>();
        MemOverhead {
            total,
            peak,
            startup,
            repl_backlog,
            clients_replicas,
            clients_normal,
            aof_buffer,
            dbs,
            overhead_total,
            keys,
            dataset: total.saturating_sub(overhead_total),
            rss: rss_bytes(),
        }
    }
}

pub fn render(srv: &Server, requested: &[String], cl: &Client) -> String {
    let mut sections: Vec<&str> = Vec::new();
    if requested.is_empty() || requested.iter().any(|r| r == "default") {
        sections.extend(DEFAULT_SECTIONS);
    }
    for r in requested {
        match r.as_str() {
            "all" | "everything" => sections.extend(ALL_SECTIONS),
            "default" => {}
            s => {
                if let Some(x) = ALL_SECTIONS.iter().find(|x| **x == s) {
                    sections.push(x);
                }
            }
        }
    }
    let mut seen = Vec::new();
    sections.retain(|s| {
        if seen.contains(s) {
            false
        } else {
            seen.push(*s);
            true
        }
    });
    // Keep Redis's order.
    sections.sort_by_key(|s| ALL_SECTIONS.iter().position(|x| x == s).unwrap_or(99));
    let mut out = String::new();
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        section(srv, s, cl, &mut out);
    }
    out
}

fn section(srv: &Server, name: &str, _cl: &Client, o: &mut String) {
    let settings = srv.settings();
    let now = now_ms();
    match name {
        "server" => {
            let uptime = (now - srv.start_ms) / 1000;
            let _ = write!(
                o,
                "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:{}\r\nos:{}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:0\r\ncinnabar_version:{}\r\n",
                if srv.is_cluster() { "cluster" } else { "standalone" },
                std::env::consts::OS,
                std::process::id(),
                srv.run_id,
                settings.port,
                crate::server::now_us(),
                uptime,
                uptime / 86400,
                settings.hz,
                settings.hz,
                (now / 1000) & ((1 << 24) - 1),
                srv.executable,
                srv.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                CINNABAR_VERSION,
            );
        }
        "clients" => {
            let _ = write!(
                o,
                "# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
                srv.connected_clients.load(Ordering::Relaxed),
                settings.maxclients,
                srv.blocked_clients.load(Ordering::Relaxed),
            );
        }
        "memory" => {
            let mo = MemOverhead::compute(srv);
            let (rss, used, peak, startup) = (mo.rss, mo.total, mo.peak, mo.startup);
            let frag = if used > 0 {
                rss as f64 / used as f64
            } else {
                0.0
            };
            let total_system = total_system_memory();
            let settings = srv.settings();
            let maxmemory = settings.maxmemory_bytes;
            let maxmemory_policy = settings.maxmemory_policy.as_str();
            let not_counted = mo.clients_replicas + mo.aof_buffer;
            let scripts_mem = srv.scripts.memory_bytes();
            let scripts_n = srv.scripts.count();
            let (lib_n, fn_n) = crate::script::functions::counts(srv);
            let overhead = mo.overhead_total;
            let dataset = mo.dataset;
            let (backlog, replicas, normal, aof_buf) = (
                mo.repl_backlog,
                mo.clients_replicas,
                mo.clients_normal,
                mo.aof_buffer,
            );
            let pct = |a: u64, b: u64| {
                if b > 0 {
                    a as f64 * 100.0 / b as f64
                } else {
                    0.0
                }
            };
            let _ = write!(
                o,
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{peak}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{overhead}\r\nused_memory_startup:{startup}\r\nused_memory_dataset:{dataset}\r\nused_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{used}\r\nallocator_active:{rss}\r\nallocator_resident:{rss}\r\ntotal_system_memory:{total_system}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:31744\r\nused_memory_vm_eval:31744\r\nused_memory_lua_human:31.00K\r\nused_memory_scripts_eval:{scripts_mem}\r\nnumber_of_cached_scripts:{scripts_n}\r\nnumber_of_functions:{fn_n}\r\nnumber_of_libraries:{lib_n}\r\nused_memory_vm_functions:32768\r\nused_memory_vm_total:64512\r\nused_memory_vm_total_human:63.00K\r\nused_memory_functions:184\r\nused_memory_scripts:184\r\nused_memory_scripts_human:184B\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{maxmemory_policy}\r\nallocator_frag_ratio:1.00\r\nallocator_frag_bytes:0\r\nallocator_rss_ratio:1.00\r\nallocator_rss_bytes:0\r\nrss_overhead_ratio:1.00\r\nrss_overhead_bytes:0\r\nmem_fragmentation_ratio:{frag:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:{not_counted}\r\nmem_replication_backlog:{backlog}\r\nmem_total_replication_buffers:{}\r\nmem_clients_slaves:{replicas}\r\nmem_clients_normal:{normal}\r\nmem_cluster_links:0\r\nmem_aof_buffer:{aof_buf}\r\nmem_allocator:mimalloc\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n",
                human(used),
                human(rss),
                human(peak),
                pct(used, peak),
                pct(dataset, used.saturating_sub(startup)),
                human(total_system),
                human(maxmemory),
                rss as i64 - used as i64,
                backlog + replicas,
            );
        }
        "persistence" => {
            let rdb = &srv.persist.rdb;
            let bgsave = rdb.bgsave_in_progress.load(Ordering::Relaxed);
            let _ = write!(
                o,
                "# Persistence\r\nloading:{}\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\n",
                srv.repl.is_loading() as u8,
                srv.stats
                    .dirty
                    .load(Ordering::Relaxed)
                    .saturating_sub(rdb.dirty_at_last_save.load(Ordering::Relaxed)),
                bgsave as u8,
                srv.lastsave_s.load(Ordering::Relaxed),
                if rdb.last_bgsave_ok.load(Ordering::Relaxed) { "ok" } else { "err" },
                rdb.last_bgsave_time_s.load(Ordering::Relaxed),
                if bgsave {
                    (crate::server::now_ms() - rdb.bgsave_started_ms.load(Ordering::Relaxed)) / 1000
                } else {
                    -1
                },
                rdb.saves.load(Ordering::Relaxed),
                rdb.last_load_keys_expired.load(Ordering::Relaxed),
                rdb.last_load_keys_loaded.load(Ordering::Relaxed),
            );
            srv.persist.aof.info_fields(srv, o);
            srv.repl.loading_info_fields(o);
        }
        "stats" => {
            let st = &srv.stats;
            let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let _ = write!(
                o,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:0\r\ntotal_net_repl_output_bytes:0\r\ninstantaneous_input_kbps:0.00\r\ninstantaneous_output_kbps:0.00\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:0\r\nevicted_keys:{}\r\nevicted_clients:0\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:0\r\ntracking_total_items:0\r\ntracking_total_prefixes:0\r\nunexpected_error_replies:{}\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:0\r\ntotal_writes_processed:0\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nreply_buffer_shrinks:0\r\nreply_buffer_expands:0\r\n",
                l(&st.total_connections_received),
                st.total_commands_processed.load(Ordering::Relaxed),
                st.net_input_bytes.load(Ordering::Relaxed),
                st.net_output_bytes.load(Ordering::Relaxed),
                l(&st.rejected_connections),
                srv.repl.sync_full.load(Ordering::Relaxed),
                srv.repl.sync_partial_ok.load(Ordering::Relaxed),
                srv.repl.sync_partial_err.load(Ordering::Relaxed),
                l(&st.expired_keys),
                l(&st.evicted_keys),
                st.keyspace_hits.load(Ordering::Relaxed),
                st.keyspace_misses.load(Ordering::Relaxed),
                srv.pubsub.channel_count(false),
                srv.pubsub.pattern_count(),
                srv.pubsub.channel_count(true),
                l(&st.unexpected_error_replies),
                l(&st.total_error_replies),
            );
        }
        "replication" => {
            let cluster_replica = srv
                .cluster
                .as_ref()
                .map(|c| c.myself_is_replica())
                .unwrap_or(false);
            o.push_str(&srv.repl.info(srv, cluster_replica));
        }
        "cpu" => {
            let (u, s) = cpu_times();
            let _ = write!(
                o,
                "# CPU\r\nused_cpu_sys:{s:.6}\r\nused_cpu_user:{u:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:{s:.6}\r\nused_cpu_user_main_thread:{u:.6}\r\n"
            );
        }
        "modules" => o.push_str("# Modules\r\n"),
        "commandstats" => {
            o.push_str("# Commandstats\r\n");
            for (idx, name) in crate::cmd::server_cmds::command_stat_names() {
                let st = srv.cmd_stats.total(idx);
                let (calls, rejected, failed) = (st.calls, st.rejected_calls, st.failed_calls);
                if calls == 0 && rejected == 0 && failed == 0 {
                    continue;
                }
                let usec = st.usec;
                let per = if calls > 0 {
                    usec as f64 / calls as f64
                } else {
                    0.0
                };
                let _ = write!(
                    o,
                    "cmdstat_{name}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rejected},failed_calls={failed}\r\n"
                );
            }
        }
        "errorstats" => {
            o.push_str("# Errorstats\r\n");
            let errs = srv.stats.errors_by_code.lock();
            let mut v: Vec<_> = errs.iter().collect();
            v.sort();
            for (k, n) in v {
                let _ = write!(o, "errorstat_{k}:count={n}\r\n");
            }
        }
        // Percentiles come from a power-of-two histogram: each value is its bucket's upper bound.
        "latencystats" => {
            o.push_str("# Latencystats\r\n");
            for (idx, name) in crate::cmd::server_cmds::command_stat_names() {
                let st = srv.cmd_stats.total(idx);
                if st.calls == 0 {
                    continue;
                }
                let [p50, p99, p999] = st.percentiles_us([50.0, 99.0, 99.9]);
                let _ = write!(
                    o,
                    "latency_percentiles_usec_{name}:p50={p50:.3},p99={p99:.3},p99.9={p999:.3}\r\n"
                );
            }
        }
        "cluster" => {
            let _ = write!(
                o,
                "# Cluster\r\ncluster_enabled:{}\r\n",
                if srv.is_cluster() { 1 } else { 0 }
            );
        }
        "keyspace" => {
            o.push_str("# Keyspace\r\n");
            for (i, db) in srv.keyspace.existing_dbs() {
                let keys = db.key_count();
                if keys > 0 {
                    let expires = db.volatile_count();
                    let _ = write!(o, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
                }
            }
        }
        _ => {}
    }
}
