//! RDB snapshots: SAVE, BGSAVE, `save` points, loading `dbfilename` at start-up, and the
//! RDB half of INFO persistence. The image comes from the forkless snapshot
//! (`snapshot.rs`); the encoding from `cinnabar-rdb` (RDB version 10, as Redis 7.0.15).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use cinnabar_rdb::{EncodeOptions, RdbEncoder, RdbItem};

use cinnabar_cluster::slot::key_hash_slot;

use crate::keyspace::{access_clock_s, Entry, SmallBytes};
use crate::server::{now_ms, Server};

/// RDB statistics and state (INFO persistence).
pub struct RdbState {
    pub bgsave_in_progress: AtomicBool,
    pub bgsave_started_ms: AtomicI64,
    pub last_bgsave_ok: AtomicBool,
    pub last_bgsave_time_s: AtomicI64,
    pub saves: AtomicU64,
    /// `stats.dirty` at the cut of the last successful save.
    pub dirty_at_last_save: AtomicU64,
    /// `stats.dirty` at the cut of the save in progress.
    pub dirty_at_cut: AtomicU64,
    pub last_load_keys_loaded: AtomicU64,
    pub last_load_keys_expired: AtomicU64,
    /// BGSAVE SCHEDULE (or a BGSAVE asked during an AOF rewrite).
    pub bgsave_scheduled: AtomicBool,
    /// Last attempt time (s) of a save-point BGSAVE that failed (retry after 5 s, as Redis).
    pub last_bgsave_try_s: AtomicI64,
}

impl Default for RdbState {
    fn default() -> Self {
        RdbState {
            bgsave_in_progress: AtomicBool::new(false),
            bgsave_started_ms: AtomicI64::new(0),
            last_bgsave_ok: AtomicBool::new(true),
            last_bgsave_time_s: AtomicI64::new(-1),
            saves: AtomicU64::new(0),
            dirty_at_last_save: AtomicU64::new(0),
            dirty_at_cut: AtomicU64::new(0),
            last_load_keys_loaded: AtomicU64::new(0),
            last_load_keys_expired: AtomicU64::new(0),
            bgsave_scheduled: AtomicBool::new(false),
            last_bgsave_try_s: AtomicI64::new(0),
        }
    }
}

/// The RDB encoding options from the settings.
pub fn encode_options(srv: &Server) -> EncodeOptions {
    let s = srv.settings();
    EncodeOptions {
        compression: s.rdbcompression,
        checksum: s.rdbchecksum,
        hash_max_listpack_entries: s.hash_max_listpack_entries,
        hash_max_listpack_value_bytes: s.hash_max_listpack_value,
        set_max_intset_entries: s.set_max_intset_entries,
        zset_max_listpack_entries: s.zset_max_listpack_entries,
        zset_max_listpack_value_bytes: s.zset_max_listpack_value,
        list_max_listpack_size: s
            .list_max_listpack_size
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32,
        ..EncodeOptions::default()
    }
}

/// Writes a whole RDB image of `snap` to `w` (header, AUX fields, entries, EOF, CRC64).
pub fn write_image<W: std::io::Write>(
    srv: &Server,
    snap: &mut super::snapshot::Snapshot<'_>,
    w: W,
    aof_base: bool,
) -> Result<u64, String> {
    let mut enc = RdbEncoder::new(w, encode_options(srv)).map_err(|e| e.to_string())?;
    let mut aux = cinnabar_rdb::redis_aux_fields(now_ms() / 1000, crate::info::used_memory(srv));
    aux.retain(|(k, _)| k != b"aof-base");
    aux.push((
        b"aof-base".to_vec(),
        if aof_base {
            b"1".to_vec()
        } else {
            b"0".to_vec()
        },
    ));
    for (k, v) in &aux {
        enc.write_aux(k, v).map_err(|e| e.to_string())?;
    }
    // FUNCTION libraries (FUNCTION2 records), after the AUX fields as Redis writes them.
    for code in srv.scripts.functions.lock().codes() {
        enc.write_function(&code).map_err(|e| e.to_string())?;
    }
    let n = snap.write_entries(&mut enc)?;
    enc.finish().map_err(|e| e.to_string())?;
    Ok(n)
}

/// Saves the dataset to `dbfilename` (the caller holds `snapshot_lock`). Returns the number
/// of keys written.
fn save_locked(srv: &Server) -> Result<u64, String> {
    let settings = srv.settings();
    let path = Path::new(&settings.dbfilename).to_path_buf();
    let (mut snap, ()) = super::snapshot::begin(srv, |_| {
        srv.persist
            .rdb
            .dirty_at_cut
            .store(srv.stats.dirty.load(Ordering::Relaxed), Ordering::Relaxed);
    });
    let temp = format!("temp-{}.rdb", std::process::id());
    let incremental = srv.settings().rdb_save_incremental_fsync;
    let n = super::write_durably(&path, &temp, incremental, |w| {
        write_image(srv, &mut snap, w, false)
    })?;
    drop(snap);
    let st = &srv.persist.rdb;
    st.dirty_at_last_save
        .store(st.dirty_at_cut.load(Ordering::Relaxed), Ordering::Relaxed);
    srv.lastsave_s.store(now_ms() / 1000, Ordering::Relaxed);
    st.saves.fetch_add(1, Ordering::Relaxed);
    Ok(n)
}

/// SAVE: a synchronous save (the calling client waits; others keep being served).
pub fn save(srv: &Server) -> Result<(), String> {
    let Some(_g) = srv.persist.snapshot_lock.try_lock() else {
        return Err("Background save already in progress".into());
    };
    match save_locked(srv) {
        Ok(_) => {
            crate::notice!("DB saved on disk");
            srv.persist
                .rdb
                .last_bgsave_ok
                .store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            crate::warning!("Error saving DB on disk: {}", e);
            srv.persist
                .rdb
                .last_bgsave_ok
                .store(false, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// BGSAVE: starts a background save; Err(reply text) when one cannot start now.
pub fn bgsave(srv: &Server) -> Result<(), String> {
    let arc = srv
        .repl
        .self_ref
        .get()
        .and_then(|w| w.upgrade())
        .ok_or_else(|| "server is shutting down".to_string())?;
    let st = &srv.persist.rdb;
    if st
        .bgsave_in_progress
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err("Background save already in progress".into());
    }
    st.bgsave_started_ms.store(now_ms(), Ordering::Relaxed);
    st.last_bgsave_try_s
        .store(now_ms() / 1000, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("cinnabar-bgsave".into())
        .spawn(move || run_bgsave(&arc));
    if let Err(e) = spawned {
        st.bgsave_in_progress.store(false, Ordering::Release);
        return Err(format!("Can't start the background save: {e}"));
    }
    crate::notice!("Background saving started");
    Ok(())
}

fn run_bgsave(srv: &Arc<Server>) {
    let started = std::time::Instant::now();
    let res = {
        let _g = srv.persist.snapshot_lock.lock();
        save_locked(srv)
    };
    let st = &srv.persist.rdb;
    match res {
        Ok(_) => {
            crate::notice!("DB saved on disk");
            crate::notice!("Background saving terminated with success");
            st.last_bgsave_ok.store(true, Ordering::Relaxed);
        }
        Err(e) => {
            crate::warning!("Background saving error: {}", e);
            st.last_bgsave_ok.store(false, Ordering::Relaxed);
        }
    }
    st.last_bgsave_time_s
        .store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
    st.bgsave_in_progress.store(false, Ordering::Release);
}

/// Once a second: `save` points, and a scheduled BGSAVE once nothing else runs.
pub fn cron(srv: &Server) {
    let st = &srv.persist.rdb;
    if st.bgsave_in_progress.load(Ordering::Acquire) || srv.persist.aof.rewrite_running() {
        return;
    }
    if st.bgsave_scheduled.swap(false, Ordering::AcqRel) {
        let _ = bgsave(srv);
        return;
    }
    let settings = srv.settings();
    if settings.save_points.is_empty() {
        return;
    }
    let changes = srv
        .stats
        .dirty
        .load(Ordering::Relaxed)
        .saturating_sub(st.dirty_at_last_save.load(Ordering::Relaxed));
    let now_s = now_ms() / 1000;
    let since_s = now_s - srv.lastsave_s.load(Ordering::Relaxed);
    let retry_ok = st.last_bgsave_ok.load(Ordering::Relaxed)
        || now_s - st.last_bgsave_try_s.load(Ordering::Relaxed) > 5;
    for &(secs, n) in &settings.save_points {
        if changes >= n && since_s >= secs as i64 && retry_ok {
            crate::notice!("{} changes in {} seconds. Saving...", n, secs);
            let _ = bgsave(srv);
            return;
        }
    }
}

/// `stop-writes-on-bgsave-error`: the -MISCONF error writes get after a failed save.
pub fn writes_refused(srv: &Server) -> bool {
    let s = srv.settings();
    s.stop_writes_on_bgsave_error
        && !s.save_points.is_empty()
        && !srv.persist.rdb.last_bgsave_ok.load(Ordering::Relaxed)
}

/// Loads an RDB image into the (empty) keyspace. Returns (keys loaded, keys expired).
/// `what` names the file in error messages.
pub fn load_rdb<R: std::io::Read>(
    srv: &Server,
    reader: R,
    len_bytes: Option<u64>,
    what: &str,
) -> Result<(u64, u64), String> {
    load_rdb_then(srv, reader, len_bytes, what, || {})
}

/// [`load_rdb`], running `after_header` once the header is valid and before the first key
/// is inserted (a replica flushes its old data there, so a bad image leaves it intact).
pub fn load_rdb_then<R: std::io::Read>(
    srv: &Server,
    reader: R,
    len_bytes: Option<u64>,
    what: &str,
    after_header: impl FnOnce(),
) -> Result<(u64, u64), String> {
    let opts = cinnabar_rdb::DecodeOptions {
        input_len_bytes: len_bytes,
        skip_streams: true,
        ..Default::default()
    };
    let mut dec = cinnabar_rdb::RdbDecoder::with_options(reader, opts).map_err(|e| {
        format!("Short read or OOM loading DB. Unrecoverable error, aborting now. ({what}: {e})")
    })?;
    after_header();
    let settings = srv.settings();
    let now = now_ms();
    let (mut loaded, mut expired) = (0u64, 0u64);
    loop {
        let item = dec.next_item().map_err(|e| {
            format!(
                "Internal error in RDB reading offset {} ({what}): {e}",
                dec.consumed_bytes()
            )
        })?;
        let Some(item) = item else { break };
        let e = match item {
            RdbItem::Entry(e) => e,
            RdbItem::Aux { key, value } => {
                if key == b"used-mem" {
                    if let Some(m) = std::str::from_utf8(&value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                    {
                        srv.repl.loading_rdb_used_mem.store(m, Ordering::Relaxed);
                    }
                }
                continue;
            }
            RdbItem::Function(code) => {
                // rdbFunctionLoad: a library that fails to load fails the whole load.
                crate::script::functions::create(srv, &bytes::Bytes::from(code), true)
                    .map_err(|e| format!("Failed loading library, {e}"))?;
                continue;
            }
            _ => continue,
        };
        if e.db as usize >= srv.keyspace.db_count() {
            return Err(format!(
                "FATAL: Data file was created with a Redis server configured to handle more than {} databases. Exiting",
                srv.keyspace.db_count()
            ));
        }
        let exp = e.expire_at_ms.unwrap_or(0);
        if exp != 0 && exp <= now {
            expired += 1;
            continue;
        }
        let Some(value) = crate::repl::from_rdb_value(e.value, &settings) else {
            continue;
        };
        let db = srv.keyspace.db(e.db as usize);
        let slot = key_hash_slot(&e.key);
        let mut g = db.lock(slot);
        let before = g.volatile();
        let old = g.insert(Box::new(Entry {
            key: SmallBytes::new(&e.key),
            value,
            expire_at_ms: exp,
            access_s: access_clock_s(),
            lfu: crate::evict::lfu_init(),
        }));
        db.adjust_volatile(g.volatile() as i64 - before as i64);
        if old.is_none() {
            db.adjust_keys(1);
        }
        loaded += 1;
        super::key_load_delay(&settings);
    }
    Ok((loaded, expired))
}

/// Start-up: loads `dbfilename` when it exists (appendonly no). Exits on a damaged file,
/// as Redis does.
pub fn load_at_startup(srv: &Server) {
    let settings = srv.settings();
    let path = Path::new(&settings.dbfilename);
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            crate::warning!("Fatal error loading the DB: {}. Exiting.", e);
            std::process::exit(1);
        }
    };
    let len = f.metadata().map(|m| m.len()).ok();
    let started = std::time::Instant::now();
    srv.repl.begin_loading(len.unwrap_or(0));
    let res = load_rdb(
        srv,
        std::io::BufReader::with_capacity(1 << 20, super::LoadProgress { inner: f, srv }),
        len,
        &settings.dbfilename,
    );
    srv.repl.end_loading();
    match res {
        Ok((n, x)) => {
            crate::notice!("Done loading RDB, keys loaded: {}, keys expired: {}.", n, x);
            srv.persist
                .rdb
                .last_load_keys_loaded
                .store(n, Ordering::Relaxed);
            srv.persist
                .rdb
                .last_load_keys_expired
                .store(x, Ordering::Relaxed);
            crate::notice!(
                "DB loaded from disk: {:.3} seconds",
                started.elapsed().as_secs_f64()
            );
        }
        Err(e) => {
            crate::warning!("{}", e);
            crate::warning!(
                "Fatal error loading the DB: Invalid argument. Exiting. ({})",
                settings.dbfilename
            );
            std::process::exit(1);
        }
    }
}
