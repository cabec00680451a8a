//! The append-only file in Redis 7.0's multi-part layout: `appenddirname/` holds a manifest,
//! one base file (an RDB image, or commands with `aof-use-rdb-preamble no`) and incremental
//! files of commands (formats: the `cinnabar-aof` crate, docs/ARCHITECTURE.md).
//!
//! Writing. Commands enter the AOF feed in `repl.rs` (same lock, same order as the
//! replication stream); each records the feed position its reply depends on in a
//! thread-local. Before a worker sends replies (`net.rs` flush), `before_reply` makes that
//! position durable as `appendfsync` asks: `always` writes and fsyncs (whoever arrives first
//! writes and fsyncs everything pending for everybody — group commit), `everysec` and `no`
//! write to the OS (so a killed process loses nothing acknowledged, as with Redis). The
//! background thread writes what no reply waited for (expiry, replica stream) every 50 ms
//! and, with `everysec`, fsyncs once a second on a duplicate descriptor without blocking
//! writers.
//!
//! Rewrite (BGREWRITEAOF, auto-aof-rewrite-*) needs no fork: at a snapshot cut the feed
//! switches to a new incr file (written to the manifest), the forkless snapshot becomes the
//! new base (temp file, fsync, rename), then the manifest moves the old base and incr files
//! to history and they are deleted. No write is lost across the switch: everything before
//! the cut is in the new base, everything after it in the new incr file.
//!
//! Lock order: `files` → slot locks → replication lock.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use cinnabar_aof::manifest::{FileEntry, FileKind, Manifest};
use cinnabar_aof::reader::{AofItem, AofReader};
use cinnabar_aof::AofError;

use crate::server::{now_ms, Server};
use crate::settings::Fsync;

/// The open files of an enabled AOF.
struct AofFiles {
    /// `appenddirname`, relative to `dir` (the working directory).
    dir: PathBuf,
    /// `appendfilename`: the prefix of every file name.
    prefix: String,
    manifest: Manifest,
    incr: File,
    /// Bytes in the current incr file.
    incr_size_bytes: u64,
    /// Bytes in the base and the incr files before the current one.
    older_size_bytes: u64,
    base_size_bytes: u64,
}

impl AofFiles {
    fn persist_manifest(&self) -> Result<(), String> {
        persist_manifest_at(&self.dir, &self.prefix, &self.manifest)
    }
}

/// AOF state (INFO persistence reads it).
pub struct Aof {
    files: Mutex<Option<AofFiles>>,
    /// Feed position written to the OS / known fsynced.
    written_pos: AtomicU64,
    synced_pos: AtomicU64,
    pub enabled: AtomicBool,
    policy: AtomicU8,
    rewrite_in_progress: AtomicBool,
    pub rewrite_scheduled: AtomicBool,
    rewrite_started_ms: AtomicI64,
    last_rewrite_ok: AtomicBool,
    last_rewrite_time_s: AtomicI64,
    rewrites: AtomicU64,
    consecutive_failures: AtomicU64,
    last_write_ok: AtomicBool,
    /// The feed position the last write attempt covered: while writes fail, replies waiting
    /// for it are released anyway (Redis answers once the write was attempted; the bytes
    /// stay queued and are written when the disk recovers).
    attempted_pos: AtomicU64,
    /// The last fsync of the AOF failed (Redis's aof_bio_fsync_status).
    fsync_failed: AtomicBool,
    /// strerror() of the last write/fsync error, for `-MISCONF Errors writing to the AOF`.
    last_write_error: Mutex<String>,
    current_size_bytes: AtomicU64,
    base_size_bytes: AtomicU64,
    /// Size when the last rewrite finished (auto-aof-rewrite-percentage's reference).
    rewrite_base_size_bytes: AtomicU64,
    background_started: AtomicBool,
    /// CONFIG SET appendonly yes is building the new AOF.
    enabling: AtomicBool,
    /// `appendfsync always`: the highest position a reply waits for, the fsync thread's
    /// wake-up, and the fsynced position it publishes to waiting connections.
    sync_request: parking_lot::Mutex<u64>,
    sync_wake: parking_lot::Condvar,
    synced_watch: tokio::sync::watch::Sender<u64>,
    /// A connection waits for an fsync that no parking worker has started yet.
    kick_pending: AtomicBool,
    /// A parking worker asked the fsync thread to start.
    kicked: AtomicBool,
    /// Bumped whenever a new set of files is installed (see `disable`).
    files_gen: AtomicU64,
    /// everysec/no: the highest position a reply waits to be written, whether a worker's
    /// park must write, and the written position published to waiting connections.
    write_request: AtomicU64,
    write_pending: AtomicBool,
    written_watch: tokio::sync::watch::Sender<u64>,
}

impl Default for Aof {
    fn default() -> Self {
        Aof {
            files: Mutex::new(None),
            written_pos: AtomicU64::new(0),
            synced_pos: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
            policy: AtomicU8::new(1),
            rewrite_in_progress: AtomicBool::new(false),
            rewrite_scheduled: AtomicBool::new(false),
            rewrite_started_ms: AtomicI64::new(0),
            last_rewrite_ok: AtomicBool::new(true),
            last_rewrite_time_s: AtomicI64::new(-1),
            rewrites: AtomicU64::new(0),
            consecutive_failures: AtomicU64::new(0),
            last_write_ok: AtomicBool::new(true),
            attempted_pos: AtomicU64::new(0),
            fsync_failed: AtomicBool::new(false),
            last_write_error: Mutex::new(String::new()),
            current_size_bytes: AtomicU64::new(0),
            base_size_bytes: AtomicU64::new(0),
            rewrite_base_size_bytes: AtomicU64::new(0),
            background_started: AtomicBool::new(false),
            enabling: AtomicBool::new(false),
            sync_request: parking_lot::Mutex::new(0),
            sync_wake: parking_lot::Condvar::new(),
            synced_watch: tokio::sync::watch::Sender::new(0),
            kick_pending: AtomicBool::new(false),
            kicked: AtomicBool::new(false),
            files_gen: AtomicU64::new(0),
            write_request: AtomicU64::new(0),
            write_pending: AtomicBool::new(false),
            written_watch: tokio::sync::watch::Sender::new(0),
        }
    }
}

fn policy_code(p: Fsync) -> u8 {
    match p {
        Fsync::Always => 0,
        Fsync::EverySec => 1,
        Fsync::No => 2,
    }
}

impl Aof {
    pub fn rewrite_running(&self) -> bool {
        self.rewrite_in_progress.load(Ordering::Acquire)
    }

    pub fn set_policy(&self, p: Fsync) {
        self.policy.store(policy_code(p), Ordering::Release);
    }

    /// Makes feed position `need` durable for a reply, as `appendfsync` asks.
    #[inline]
    pub fn before_reply(&self, srv: &Server, need: u64) {
        let always = self.policy.load(Ordering::Acquire) == 0;
        if self.written_pos.load(Ordering::Acquire) >= need
            && (!always || self.synced_pos.load(Ordering::Acquire) >= need)
        {
            return;
        }
        self.flush(srv, need, always);
        // As Redis's flushAppendOnlyFile: with `always` a failed write or fsync ends the
        // process before any reply acknowledges the write.
        if always
            && (!self.last_write_ok.load(Ordering::Acquire)
                || self.fsync_failed.load(Ordering::Acquire))
        {
            crate::warning!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
            std::process::exit(1);
        }
    }

    /// Makes feed position `need` durable for a reply without blocking the worker thread:
    /// with `always` the connection waits for the fsync thread, which writes and fsyncs
    /// everything pending for every waiting connection at once (group commit); otherwise
    /// the bytes are written to the OS here.
    pub async fn wait_durable(&self, _srv: &Server, need: u64) {
        if self.policy.load(Ordering::Acquire) != 0 {
            // everysec / no: one write() per worker round (at park time, Redis's beforeSleep)
            // covers every connection of the round.
            if self.written_pos() >= need {
                return;
            }
            let mut rx = self.written_watch.subscribe();
            self.write_request.fetch_max(need, Ordering::AcqRel);
            self.write_pending.store(true, Ordering::Release);
            let _ = rx.wait_for(|&p| p >= need).await;
            return;
        }
        if self.synced_pos.load(Ordering::Acquire) >= need {
            return;
        }
        let mut rx = self.synced_watch.subscribe();
        {
            let mut r = self.sync_request.lock();
            if *r < need {
                *r = need;
            }
        }
        // The fsync starts when this worker is about to sleep (`kick_group_commit`), so every
        // connection it serves in this round joins the same fsync.
        self.kick_pending.store(true, Ordering::Release);
        let _ = rx.wait_for(|&p| p >= need).await;
    }

    /// Called by a worker runtime before it parks (Redis's beforeSleep): wakes the fsync
    /// thread if connections wait for an fsync.
    #[inline]
    pub fn kick_group_commit(&self, srv: &Server) {
        if self.write_pending.load(Ordering::Relaxed)
            && self.write_pending.swap(false, Ordering::AcqRel)
        {
            self.flush(srv, u64::MAX, false);
            self.publish_written();
        }
        if self.kick_pending.load(Ordering::Relaxed)
            && self.kick_pending.swap(false, Ordering::AcqRel)
        {
            let _r = self.sync_request.lock();
            self.kicked.store(true, Ordering::Release);
            self.sync_wake.notify_one();
        }
    }

    /// Wakes connections waiting for written bytes (everything is written when the AOF is
    /// off: nothing is left to wait for).
    fn publish_written(&self) {
        if self.files.lock().is_none() {
            let want = self.write_request.load(Ordering::Acquire);
            self.written_pos.fetch_max(want, Ordering::AcqRel);
        }
        let mut released = self.written_pos();
        if !self.last_write_ok.load(Ordering::Acquire) {
            released = released.max(self.attempted_pos.load(Ordering::Acquire));
        }
        self.written_watch.send_replace(released);
    }

    /// The fsync thread of `appendfsync always` (group commit), and the fallback writer for
    /// connections of a worker that does not park.
    fn sync_loop(srv: &Server) {
        let aof = &srv.persist.aof;
        loop {
            {
                // Started by a parking worker's kick; a request no worker kicked (one that
                // never parks) is served after at most 1 ms.
                let mut r = aof.sync_request.lock();
                while !srv.shutdown_requested.load(Ordering::Relaxed) {
                    let waiting = *r > aof.synced_pos.load(Ordering::Acquire)
                        || aof.write_request.load(Ordering::Acquire) > aof.written_pos();
                    if waiting && aof.kicked.swap(false, Ordering::AcqRel) {
                        break;
                    }
                    let wait_ms = if waiting { 1 } else { 10 };
                    let res = aof
                        .sync_wake
                        .wait_for(&mut r, Duration::from_millis(wait_ms));
                    if waiting && res.timed_out() {
                        break;
                    }
                }
            }
            if srv.shutdown_requested.load(Ordering::Relaxed) {
                return;
            }
            let wanted = *aof.sync_request.lock();
            let fsync = wanted > aof.synced_pos.load(Ordering::Acquire);
            aof.flush(srv, u64::MAX, fsync);
            if (!aof.last_write_ok.load(Ordering::Relaxed)
                || aof.fsync_failed.load(Ordering::Relaxed))
                && aof.policy.load(Ordering::Acquire) == 0
            {
                crate::warning!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                std::process::exit(1);
            }
            // With the AOF off (or switched meanwhile) nothing is left to wait for.
            if aof.files.lock().is_none() {
                aof.synced_pos.fetch_max(wanted, Ordering::AcqRel);
            }
            aof.synced_watch
                .send_replace(aof.synced_pos.load(Ordering::Acquire));
            aof.publish_written();
        }
    }

    /// Writes everything pending up to at least `need` (and fsyncs when `fsync`).
    fn flush(&self, srv: &Server, need: u64, fsync: bool) {
        let mut g = self.files.lock();
        let Some(files) = g.as_mut() else { return };
        if self.written_pos.load(Ordering::Acquire) < need || need == u64::MAX {
            self.write_pending(srv, files);
        }
        if fsync && self.synced_pos.load(Ordering::Acquire) < need.min(self.written_pos()) {
            let upto = self.written_pos();
            match files.incr.sync_data() {
                Ok(()) => {
                    self.synced_pos.store(upto, Ordering::Release);
                    self.fsync_failed.store(false, Ordering::Release);
                }
                Err(e) => self.fsync_error(&e),
            }
        }
    }

    fn written_pos(&self) -> u64 {
        self.written_pos.load(Ordering::Acquire)
    }

    /// Moves the feed's pending bytes into the current incr file (caller holds `files`).
    fn write_pending(&self, srv: &Server, files: &mut AofFiles) {
        let (bytes, end) = {
            let mut inner = srv.repl.inner.lock();
            (std::mem::take(&mut inner.aof.buf), inner.aof.appended)
        };
        if !bytes.is_empty() {
            self.attempted_pos.fetch_max(end, Ordering::AcqRel);
            let (written, err) = write_some(&mut files.incr, &bytes);
            if let Some(e) = err {
                // As Redis's flushAppendOnlyFile: undo a partial write so the file never ends
                // in half a command (if the truncate fails, keep what was written and retry
                // only the rest), keep the unwritten bytes for the next attempt (the
                // background thread retries every 50 ms), refuse writes with -MISCONF until
                // a write succeeds. Nothing acknowledged is dropped.
                let mut kept = 0;
                if written > 0 {
                    if let Err(te) = files.incr.set_len(files.incr_size_bytes) {
                        crate::warning!(
                            "Could not remove short write from the append-only file. Redis may refuse to load the AOF the next time it starts. ftruncate: {}",
                            te
                        );
                        kept = written;
                        files.incr_size_bytes += written as u64;
                    }
                }
                if self.last_write_ok.swap(false, Ordering::AcqRel) {
                    if written > 0 {
                        crate::warning!(
                            "Short write while writing to the AOF file: (nwritten={}, expected={})",
                            written,
                            bytes.len()
                        );
                    } else {
                        crate::warning!("Error writing to the AOF file: {}", strerror(&e));
                    }
                }
                *self.last_write_error.lock() = strerror(&e);
                let mut inner = srv.repl.inner.lock();
                let newer = std::mem::take(&mut inner.aof.buf);
                let mut back = bytes[kept..].to_vec();
                back.extend_from_slice(&newer);
                inner.aof.buf = back;
                return;
            }
            if !self.last_write_ok.swap(true, Ordering::AcqRel) {
                crate::warning!("AOF write error looks solved, Redis can write again.");
            }
            files.incr_size_bytes += bytes.len() as u64;
            self.current_size_bytes.store(
                files.older_size_bytes + files.incr_size_bytes,
                Ordering::Relaxed,
            );
        }
        self.written_pos.store(end, Ordering::Release);
    }

    /// The background thread: writes what nobody waited for, fsyncs once a second
    /// (`everysec`), triggers automatic rewrites.
    pub fn start_background(srv: &Arc<Server>) {
        if srv
            .persist
            .aof
            .background_started
            .swap(true, Ordering::AcqRel)
        {
            return;
        }
        let weak = Arc::downgrade(srv);
        let sync_srv = srv.clone();
        let _ = std::thread::Builder::new()
            .name("cinnabar-aofsync".into())
            .spawn(move || Aof::sync_loop(&sync_srv));
        let _ = std::thread::Builder::new()
            .name("cinnabar-aof".into())
            .spawn(move || {
                let mut last_fsync = Instant::now();
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                    let Some(srv) = weak.upgrade() else { return };
                    if srv.shutdown_requested.load(Ordering::Relaxed) {
                        return;
                    }
                    let aof = &srv.persist.aof;
                    if !aof.enabled.load(Ordering::Acquire) {
                        continue;
                    }
                    aof.flush(&srv, u64::MAX, false);
                    aof.publish_written();
                    let policy = aof.policy.load(Ordering::Acquire);
                    if policy == 1 && last_fsync.elapsed() >= Duration::from_secs(1) {
                        last_fsync = Instant::now();
                        aof.background_fsync(&srv);
                    }
                    aof.maybe_auto_rewrite(&srv);
                }
            });
    }

    /// Fsyncs the current incr file on a duplicate descriptor, so writers are not blocked.
    fn background_fsync(&self, srv: &Server) {
        if srv.settings().no_appendfsync_on_rewrite && self.rewrite_running() {
            return;
        }
        let (dup, upto) = {
            let g = self.files.lock();
            let Some(files) = g.as_ref() else { return };
            (files.incr.try_clone(), self.written_pos())
        };
        if self.synced_pos.load(Ordering::Acquire) >= upto {
            return;
        }
        match dup.and_then(|f| f.sync_data()) {
            Ok(()) => {
                self.synced_pos.fetch_max(upto, Ordering::AcqRel);
                self.fsync_failed.store(false, Ordering::Release);
            }
            Err(e) => self.fsync_error(&e),
        }
    }

    fn maybe_auto_rewrite(&self, srv: &Arc<Server>) {
        let s = srv.settings();
        if s.auto_aof_rewrite_percentage == 0
            || self.rewrite_running()
            || srv.persist.rdb.bgsave_in_progress.load(Ordering::Acquire)
        {
            return;
        }
        let size = self.current_size_bytes.load(Ordering::Relaxed);
        if size < s.auto_aof_rewrite_min_size_bytes {
            return;
        }
        let base = self.rewrite_base_size_bytes.load(Ordering::Relaxed).max(1);
        let growth_pct = (size.saturating_sub(base)) * 100 / base;
        if growth_pct >= s.auto_aof_rewrite_percentage {
            crate::notice!(
                "Starting automatic rewriting of AOF on {}% growth",
                growth_pct
            );
            let _ = start_rewrite(srv);
        }
    }

    fn fsync_error(&self, e: &std::io::Error) {
        if !self.fsync_failed.swap(true, Ordering::AcqRel) {
            crate::warning!(
                "Can't persist AOF for fsync error when the AOF fsync policy is 'everysec': {}. Write operations will be rejected until the fsync succeeds.",
                strerror(e)
            );
        }
        *self.last_write_error.lock() = strerror(e);
    }

    /// Writes are refused (`-MISCONF`) while the AOF is on and its last write or fsync
    /// failed (Redis's writeCommandsDeniedByDiskError, DISK_ERROR_TYPE_AOF).
    pub fn write_error(&self) -> Option<String> {
        if self.enabled.load(Ordering::Acquire)
            && (!self.last_write_ok.load(Ordering::Acquire)
                || self.fsync_failed.load(Ordering::Acquire))
        {
            Some(self.last_write_error.lock().clone())
        } else {
            None
        }
    }

    /// SHUTDOWN / SIGTERM: write and fsync what is pending.
    pub fn shutdown(&self, srv: &Server) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        crate::notice!("Calling fsync() on the AOF file.");
        self.flush(srv, u64::MAX, true);
    }

    /// INFO persistence, the AOF part.
    pub fn info_fields(&self, srv: &Server, o: &mut String) {
        use std::fmt::Write as _;
        let now = now_ms();
        let running = self.rewrite_running();
        let cur = if running {
            (now - self.rewrite_started_ms.load(Ordering::Relaxed)) / 1000
        } else {
            -1
        };
        let ok = |b: &AtomicBool| {
            if b.load(Ordering::Relaxed) {
                "ok"
            } else {
                "err"
            }
        };
        let _ = write!(
            o,
            "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
            (self.enabled.load(Ordering::Relaxed) || self.enabling.load(Ordering::Relaxed)) as u8,
            running as u8,
            self.rewrite_scheduled.load(Ordering::Relaxed) as u8,
            self.last_rewrite_time_s.load(Ordering::Relaxed),
            cur,
            ok(&self.last_rewrite_ok),
            self.rewrites.load(Ordering::Relaxed),
            self.consecutive_failures.load(Ordering::Relaxed),
            if self.last_write_ok.load(Ordering::Relaxed)
                && !self.fsync_failed.load(Ordering::Relaxed)
            {
                "ok"
            } else {
                "err"
            },
        );
        if self.enabled.load(Ordering::Relaxed) {
            let pending = srv.repl.inner.lock().aof.buf.len();
            let _ = write!(
                o,
                "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:{}\r\naof_buffer_length:{}\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\n",
                self.current_size_bytes.load(Ordering::Relaxed),
                self.base_size_bytes.load(Ordering::Relaxed),
                self.rewrite_scheduled.load(Ordering::Relaxed) as u8,
                pending,
            );
        }
    }
}

// ------------------------------------------------------------------------ base files

/// Writes the snapshot as a base file: an RDB image (`aof-use-rdb-preamble yes`) or
/// commands. Returns the number of keys.
fn write_base<W: Write>(
    srv: &Server,
    snap: &mut super::snapshot::Snapshot<'_>,
    w: &mut W,
    rdb: bool,
) -> Result<u64, String> {
    if rdb {
        return super::rdbfile::write_image(srv, snap, w, true);
    }
    // Without the preamble: an RDB image in memory is decoded again into commands. This
    // path (aof-use-rdb-preamble no) is rare; it trades memory for code reuse.
    let mut img = Vec::new();
    let n = super::rdbfile::write_image(srv, snap, &mut img, true)?;
    let mut dec = cinnabar_rdb::RdbDecoder::new(&img[..]).map_err(|e| e.to_string())?;
    let mut last_db = -1i64;
    let mut out = Vec::new();
    while let Some(item) = dec.next_item().map_err(|e| e.to_string())? {
        let cinnabar_rdb::RdbItem::Entry(e) = item else {
            continue;
        };
        if e.db as i64 != last_db {
            let d = e.db.to_string();
            crate::repl::encode_command_into(&mut out, &[b"SELECT", d.as_bytes()]);
            last_db = e.db as i64;
        }
        entry_commands(&mut out, &e);
        if out.len() > 1 << 20 {
            w.write_all(&out).map_err(|e| e.to_string())?;
            out.clear();
        }
    }
    w.write_all(&out).map_err(|e| e.to_string())?;
    Ok(n)
}

/// The commands that rebuild one key (as Redis's rewriteAppendOnlyFileRio emits them).
fn entry_commands(out: &mut Vec<u8>, e: &cinnabar_rdb::RdbEntry) {
    use cinnabar_rdb::RdbValue;
    let enc = crate::repl::encode_command_into;
    let key = &e.key[..];
    const BATCH: usize = 64;
    match &e.value {
        RdbValue::String(v) => enc(out, &[b"SET", key, v]),
        RdbValue::List(items) => {
            for c in items.chunks(BATCH) {
                let mut a: Vec<&[u8]> = vec![b"RPUSH", key];
                a.extend(c.iter().map(|x| x.as_slice()));
                enc(out, &a);
            }
        }
        RdbValue::Set(items) => {
            for c in items.chunks(BATCH) {
                let mut a: Vec<&[u8]> = vec![b"SADD", key];
                a.extend(c.iter().map(|x| x.as_slice()));
                enc(out, &a);
            }
        }
        RdbValue::Hash(pairs) => {
            for c in pairs.chunks(BATCH) {
                let mut a: Vec<&[u8]> = vec![b"HMSET", key];
                for (f, v) in c {
                    a.push(f);
                    a.push(v);
                }
                enc(out, &a);
            }
        }
        RdbValue::ZSet(pairs) => {
            for c in pairs.chunks(BATCH) {
                let scores: Vec<String> = c
                    .iter()
                    .map(|(_, s)| cinnabar_rdb::format_score(*s))
                    .collect();
                let mut a: Vec<&[u8]> = vec![b"ZADD", key];
                for ((m, _), s) in c.iter().zip(&scores) {
                    a.push(s.as_bytes());
                    a.push(m);
                }
                enc(out, &a);
            }
        }
    }
    if let Some(at) = e.expire_at_ms {
        let t = at.to_string();
        enc(out, &[b"PEXPIREAT", key, t.as_bytes()]);
    }
}

// ------------------------------------------------------------------------ creating / rewriting

/// Creates a brand-new AOF from the current dataset (start-up without an AOF, or
/// CONFIG SET appendonly yes): base from a snapshot, a fresh incr file, the manifest, and
/// the feed switched on at the snapshot's cut.
pub fn create_fresh(srv: &Server, on_start: bool) -> Result<(), String> {
    let s = srv.settings();
    let aof = &srv.persist.aof;
    let _snap_guard = srv.persist.snapshot_lock.lock();
    let dir = PathBuf::from(&s.appenddirname);
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            s.appenddirname
        )
    })?;
    // An AOF left by an earlier `appendonly yes` keeps counting its seqs; all its files
    // become history once the new base is in place (they describe an older dataset).
    let manifest_name = Manifest::manifest_name(&s.appendfilename);
    let mut manifest = std::fs::read(dir.join(&manifest_name))
        .ok()
        .and_then(|b| Manifest::parse(&b).ok())
        .unwrap_or_default();
    let mut obsolete: Vec<FileEntry> = manifest.base.take().into_iter().collect();
    obsolete.append(&mut manifest.incr);
    obsolete.append(&mut manifest.history);
    let base_name = manifest.start_new_base(&s.appendfilename, s.aof_use_rdb_preamble);
    let incr_name = manifest.start_new_incr(&s.appendfilename);
    // A stray file of that name (no manifest named it) must not be appended to.
    let _ = std::fs::remove_file(dir.join(&incr_name));
    let incr = File::options()
        .create(true)
        .append(true)
        .open(dir.join(&incr_name))
        .map_err(|e| format!("Can't open the append-only file {incr_name}: {e}"))?;
    let ts = s.aof_timestamp_enabled;
    let mut files_g = aof.files.lock();
    let (mut snap, pos) = super::snapshot::begin(srv, |inner| {
        inner.aof.on = true;
        inner.aof.buf = Vec::new();
        inner.aof.last_db = -1;
        inner.aof.ts_enabled = ts;
        inner.aof.last_ts_s = 0;
        srv.repl.refresh_feed(inner);
        inner.aof.appended
    });
    aof.written_pos.store(pos, Ordering::Release);
    aof.synced_pos.store(pos, Ordering::Release);
    // Writes after the cut go to the new incr file while the base is being written.
    aof.files_gen.fetch_add(1, Ordering::AcqRel);
    *files_g = Some(AofFiles {
        dir: dir.clone(),
        prefix: s.appendfilename.clone(),
        manifest,
        incr,
        incr_size_bytes: 0,
        older_size_bytes: 0,
        base_size_bytes: 0,
    });
    aof.set_policy(s.appendfsync);
    aof.enabled.store(true, Ordering::Release);
    drop(files_g);
    let base_path = dir.join(&base_name);
    let res = super::write_durably(
        &base_path,
        &format!("temp-{base_name}"),
        s.aof_rewrite_incremental_fsync,
        |w| write_base(srv, &mut snap, w, s.aof_use_rdb_preamble),
    );
    drop(snap);
    let base_size = std::fs::metadata(&base_path).map(|m| m.len()).unwrap_or(0);
    let mut files_g = aof.files.lock();
    let res = res.and_then(|_| match files_g.as_mut() {
        Some(files) => {
            files.older_size_bytes = base_size;
            files.base_size_bytes = base_size;
            files.persist_manifest()
        }
        None => Err("the AOF was turned off meanwhile".into()),
    });
    if let Err(e) = res {
        *files_g = None;
        aof.enabled.store(false, Ordering::Release);
        srv.repl.set_aof_feed(false, false);
        return Err(e);
    }
    drop(files_g);
    for old in &obsolete {
        if old.name != base_name && old.name != incr_name {
            crate::notice!("Removing the history file {} in the background", old.name);
            let _ = std::fs::remove_file(dir.join(&old.name));
        }
    }
    if on_start {
        crate::notice!("Creating AOF base file {} on server start", base_name);
        crate::notice!("Creating AOF incr file {} on server start", incr_name);
    }
    aof.base_size_bytes.store(base_size, Ordering::Relaxed);
    aof.current_size_bytes.store(base_size, Ordering::Relaxed);
    aof.rewrite_base_size_bytes
        .store(base_size, Ordering::Relaxed);
    aof.set_policy(s.appendfsync);
    aof.enabled.store(true, Ordering::Release);
    Ok(())
}

/// BGREWRITEAOF: starts a rewrite in the background. Err(reply text) when it cannot start.
pub fn start_rewrite(srv: &Server) -> Result<(), String> {
    start_rewrite_kind(srv, false)
}

/// Starts a background rewrite; `enable`: CONFIG SET appendonly yes (a new AOF from the
/// dataset, then the AOF is on; INFO shows it enabled from now, as Redis's
/// AOF_WAIT_REWRITE state does).
pub fn start_rewrite_kind(srv: &Server, enable: bool) -> Result<(), String> {
    let aof = &srv.persist.aof;
    if aof
        .rewrite_in_progress
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err("Background append only file rewriting already in progress".into());
    }
    let arc = srv.repl.self_ref.get().and_then(|w| w.upgrade());
    let Some(arc) = arc else {
        aof.rewrite_in_progress.store(false, Ordering::Release);
        return Err("server is shutting down".into());
    };
    aof.rewrite_started_ms.store(now_ms(), Ordering::Relaxed);
    aof.rewrite_scheduled.store(false, Ordering::Relaxed);
    aof.enabling.store(enable, Ordering::Release);
    let spawned = std::thread::Builder::new()
        .name("cinnabar-aofrw".into())
        .spawn(move || {
            let started = Instant::now();
            let res = if enable {
                create_fresh(&arc, false).map(|_| Aof::start_background(&arc))
            } else if arc.persist.aof.enabled.load(Ordering::Acquire) {
                rewrite(&arc)
            } else {
                // appendonly no: BGREWRITEAOF still writes a base file (and a manifest naming
                // only it), leaving the AOF off, as Redis does.
                rewrite_base_only(&arc)
            };
            let aof = &arc.persist.aof;
            match res {
                Ok(()) => {
                    crate::notice!("Background AOF rewrite terminated with success");
                    crate::notice!("Background AOF rewrite finished successfully");
                    aof.last_rewrite_ok.store(true, Ordering::Relaxed);
                    aof.consecutive_failures.store(0, Ordering::Relaxed);
                    aof.rewrites.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    crate::warning!("Background AOF rewrite failed: {}", e);
                    aof.last_rewrite_ok.store(false, Ordering::Relaxed);
                    aof.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            aof.last_rewrite_time_s
                .store(started.elapsed().as_secs() as i64, Ordering::Relaxed);
            aof.enabling.store(false, Ordering::Release);
            aof.rewrite_in_progress.store(false, Ordering::Release);
        });
    if let Err(e) = spawned {
        aof.rewrite_in_progress.store(false, Ordering::Release);
        return Err(format!("Can't rewrite append only file in background: {e}"));
    }
    crate::notice!("Background append only file rewriting started");
    Ok(())
}

/// The rewrite itself (AOF enabled; runs on the rewrite thread).
fn rewrite(srv: &Server) -> Result<(), String> {
    let s = srv.settings();
    let aof = &srv.persist.aof;
    // The rewrite thread is the only one changing the manifest while it holds the snapshot
    // lock (create_fresh takes it too), so the manifest can be persisted outside `files`:
    // fsyncs under `files` would stall every connection waiting to reply.
    let _snap_guard = srv.persist.snapshot_lock.lock();
    let (dir, prefix, mut manifest) = {
        let g = aof.files.lock();
        let Some(files) = g.as_ref() else {
            return Err("the AOF is off".into());
        };
        (
            files.dir.clone(),
            files.prefix.clone(),
            files.manifest.clone(),
        )
    };
    // 1. Before the cut: the new (empty) incr file, and a manifest that names it. A crash
    //    from here on loads the old files plus an empty one.
    let new_incr_name = manifest.start_new_incr(&prefix);
    let _ = std::fs::remove_file(dir.join(&new_incr_name));
    let new_incr = File::options()
        .create(true)
        .append(true)
        .open(dir.join(&new_incr_name))
        .map_err(|e| format!("Can't open the append-only file {new_incr_name}: {e}"))?;
    persist_manifest_at(&dir, &prefix, &manifest)?;
    // 2. The cut: the pending feed goes to the old incr file (fsynced, so replies waiting
    //    for it stay truthful), later writes to the new one.
    let mut files_g = aof.files.lock();
    let Some(files) = files_g.as_mut() else {
        return Err("the AOF was turned off".into());
    };
    let (mut snap, (old_bytes, pos)) = super::snapshot::begin(srv, |inner| {
        inner.aof.last_db = -1;
        inner.aof.last_ts_s = 0;
        (std::mem::take(&mut inner.aof.buf), inner.aof.appended)
    });
    files
        .incr
        .write_all(&old_bytes)
        .map_err(|e| format!("Error writing to the AOF file: {e}"))?;
    // With `always` replies may wait for these bytes: fsync before the switch. Otherwise
    // the old file is fsynced after the lock is released.
    let always = aof.policy.load(Ordering::Acquire) == 0;
    let old_incr = if always {
        files
            .incr
            .sync_data()
            .map_err(|e| format!("Error writing to the AOF file: {e}"))?;
        None
    } else {
        files.incr.try_clone().ok()
    };
    files.incr_size_bytes += old_bytes.len() as u64;
    files.older_size_bytes += files.incr_size_bytes;
    files.incr = new_incr;
    files.incr_size_bytes = 0;
    files.manifest = manifest.clone();
    aof.written_pos.store(pos, Ordering::Release);
    aof.synced_pos.fetch_max(pos, Ordering::AcqRel);
    let base_seq = files.manifest.curr_base_seq + 1;
    drop(files_g);
    if let Some(f) = old_incr {
        let _ = f.sync_data();
    }
    aof.written_watch.send_replace(aof.written_pos());
    aof.synced_watch
        .send_replace(aof.synced_pos.load(Ordering::Acquire));

    // 3. The new base, written while clients keep being served.
    let base_name = Manifest::base_name(&prefix, base_seq, s.aof_use_rdb_preamble);
    let temp = format!("temp-rewriteaof-bg-{}.aof", std::process::id());
    let base_path = dir.join(&base_name);
    super::write_durably(&base_path, &temp, s.aof_rewrite_incremental_fsync, |w| {
        write_base(srv, &mut snap, w, s.aof_use_rdb_preamble)
    })?;
    drop(snap);
    crate::notice!(
        "Successfully renamed the temporary AOF base file {} into {}",
        temp,
        base_name
    );
    let base_size = std::fs::metadata(&base_path).map(|m| m.len()).unwrap_or(0);

    // 4. The manifest: new base, the older files to history (persisted), then deleted —
    //    unless `aof-disable-auto-gc yes`, which keeps them listed as history until GC is
    //    enabled again. History order as Redis's list: each rewrite puts its old base and
    //    then its older incr files (newest first) at the head.
    let m = &mut manifest;
    let current = m.incr.pop();
    let mut front: Vec<FileEntry> = std::mem::take(&mut m.incr).into_iter().rev().collect();
    if let Some(c) = current {
        m.incr.push(c);
    }
    front.extend(m.base.take());
    for h in &mut front {
        h.kind = FileKind::History;
    }
    front.append(&mut m.history);
    m.history = front;
    m.curr_base_seq = base_seq;
    m.base = Some(FileEntry {
        name: base_name,
        seq: base_seq,
        kind: FileKind::Base,
    });
    persist_manifest_at(&dir, &prefix, &manifest)?;
    if !srv.settings().aof_disable_auto_gc {
        delete_history_files(&dir, &prefix, &mut manifest)?;
    }
    let mut files_g = aof.files.lock();
    let Some(files) = files_g.as_mut() else {
        return Err("the AOF was turned off during the rewrite".into());
    };
    files.manifest = manifest;
    files.older_size_bytes = base_size;
    files.base_size_bytes = base_size;
    aof.base_size_bytes.store(base_size, Ordering::Relaxed);
    aof.current_size_bytes
        .store(base_size + files.incr_size_bytes, Ordering::Relaxed);
    aof.rewrite_base_size_bytes
        .store(base_size + files.incr_size_bytes, Ordering::Relaxed);
    Ok(())
}

/// Deletes the history files of `manifest` and persists it without them (Redis's
/// aofDelHistoryFiles).
fn delete_history_files(dir: &Path, prefix: &str, manifest: &mut Manifest) -> Result<(), String> {
    if manifest.history.is_empty() {
        return Ok(());
    }
    for h in &manifest.history {
        crate::notice!("Removing the history file {} in the background", h.name);
        let _ = std::fs::remove_file(dir.join(&h.name));
    }
    manifest.history.clear();
    persist_manifest_at(dir, prefix, manifest)
}

/// CONFIG SET aof-disable-auto-gc no: the history kept meanwhile goes now. On a short-lived
/// thread: the caller may hold slot locks, and `files` is never taken under them.
pub fn delete_history_in_background(srv: &Arc<Server>) {
    let srv = srv.clone();
    let _ = std::thread::Builder::new()
        .name("cinnabar-aofgc".into())
        .spawn(move || {
            let mut g = srv.persist.aof.files.lock();
            if let Some(files) = g.as_mut() {
                let (dir, prefix) = (files.dir.clone(), files.prefix.clone());
                if let Err(e) = delete_history_files(&dir, &prefix, &mut files.manifest) {
                    crate::warning!("{}", e);
                }
            }
        });
}

/// Persists a manifest durably into `dir`.
fn persist_manifest_at(dir: &Path, prefix: &str, manifest: &Manifest) -> Result<(), String> {
    let name = Manifest::manifest_name(prefix);
    let bytes = manifest.encode();
    super::write_durably(&dir.join(&name), &Manifest::temp_name(&name), false, |w| {
        w.write_all(&bytes)
            .map_err(|e| format!("Can't persist the AOF manifest file {name}: {e}"))
    })
}

/// BGREWRITEAOF with the AOF off: a new base from a snapshot, a manifest naming only it;
/// every older file becomes history and is deleted.
fn rewrite_base_only(srv: &Server) -> Result<(), String> {
    let s = srv.settings();
    let _snap_guard = srv.persist.snapshot_lock.lock();
    let dir = PathBuf::from(&s.appenddirname);
    std::fs::create_dir_all(&dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            s.appenddirname
        )
    })?;
    let manifest_name = Manifest::manifest_name(&s.appendfilename);
    let mut manifest = match std::fs::read(dir.join(&manifest_name)) {
        Ok(b) => Manifest::parse(&b).map_err(|e| e.to_string())?,
        Err(_) => Manifest::default(),
    };
    let (mut snap, ()) = super::snapshot::begin(srv, |_| ());
    let base_seq = manifest.curr_base_seq + 1;
    let base_name = Manifest::base_name(&s.appendfilename, base_seq, s.aof_use_rdb_preamble);
    let temp = format!("temp-rewriteaof-bg-{}.aof", std::process::id());
    super::write_durably(
        &dir.join(&base_name),
        &temp,
        s.aof_rewrite_incremental_fsync,
        |w| write_base(srv, &mut snap, w, s.aof_use_rdb_preamble),
    )?;
    drop(snap);
    let mut old: Vec<FileEntry> = manifest.base.take().into_iter().collect();
    old.append(&mut manifest.incr);
    old.append(&mut manifest.history);
    manifest.curr_base_seq = base_seq;
    manifest.base = Some(FileEntry {
        name: base_name,
        seq: base_seq,
        kind: FileKind::Base,
    });
    let bytes = manifest.encode();
    super::write_durably(
        &dir.join(&manifest_name),
        &Manifest::temp_name(&manifest_name),
        false,
        |w| w.write_all(&bytes).map_err(|e| e.to_string()),
    )?;
    for h in &old {
        crate::notice!("Removing the history file {} in the background", h.name);
        let _ = std::fs::remove_file(dir.join(&h.name));
    }
    Ok(())
}

/// CONFIG SET appendonly no: flush, fsync, close; the feed stops.
///
/// The caller may hold slot locks (CONFIG SET inside EXEC) and `files` must never be taken
/// under slot locks (lock order: files → slots → replication), so the feed stops here and a
/// short-lived thread writes what it held, fsyncs and closes the file — unless a newer AOF
/// was installed meanwhile (`files_gen`).
pub fn disable(srv: &Server) {
    let aof = &srv.persist.aof;
    let gen = aof.files_gen.load(Ordering::Acquire);
    let pending = {
        let mut inner = srv.repl.inner.lock();
        let bytes = std::mem::take(&mut inner.aof.buf);
        inner.aof.on = false;
        srv.repl.refresh_feed(&inner);
        bytes
    };
    aof.enabled.store(false, Ordering::Release);
    let Some(arc) = srv.repl.self_ref.get().and_then(|w| w.upgrade()) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("cinnabar-aofoff".into())
        .spawn(move || {
            let aof = &arc.persist.aof;
            let mut g = aof.files.lock();
            if aof.files_gen.load(Ordering::Acquire) != gen {
                return;
            }
            if let Some(files) = g.as_mut() {
                let _ = files
                    .incr
                    .write_all(&pending)
                    .and_then(|_| files.incr.sync_data());
            }
            *g = None;
            drop(g);
            // Connections waiting for an fsync of the closed file are released.
            let end = arc.repl.inner.lock().aof.appended;
            aof.written_pos.fetch_max(end, Ordering::AcqRel);
            aof.synced_pos.fetch_max(end, Ordering::AcqRel);
            aof.synced_watch
                .send_replace(aof.synced_pos.load(Ordering::Acquire));
            aof.written_watch.send_replace(aof.written_pos());
        });
}

// ------------------------------------------------------------------------ loading

/// What loading one file did.
struct FileLoad {
    commands: u64,
}

/// Start-up with `appendonly yes`: loads the AOF named by the manifest (or creates a new
/// one), then opens the last incr file for appending. Exits the process on an AOF that
/// cannot be loaded, with Redis's messages.
pub fn load_at_startup(srv: &Arc<Server>) {
    let s = srv.settings();
    let dir = PathBuf::from(&s.appenddirname);
    let manifest_path = dir.join(Manifest::manifest_name(&s.appendfilename));
    if let Err(e) = upgrade_old_aof(&s.appendfilename, &dir, &manifest_path) {
        crate::warning!("{}", e);
        std::process::exit(1);
    }
    let bytes = match std::fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Err(e) = create_fresh(srv, true) {
                crate::warning!("{}", e);
                std::process::exit(1);
            }
            Aof::start_background(srv);
            return;
        }
        Err(e) => {
            crate::warning!(
                "Unable to open the AOF manifest file {}: {}",
                manifest_path.display(),
                e
            );
            std::process::exit(1);
        }
    };
    let manifest = match Manifest::parse(&bytes) {
        Ok(m) => m,
        Err(e) => {
            crate::warning!("{}", e);
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    let order: Vec<FileEntry> = manifest.load_order().into_iter().cloned().collect();
    let total_bytes: u64 = order
        .iter()
        .filter_map(|fe| std::fs::metadata(dir.join(&fe.name)).ok())
        .map(|m| m.len())
        .sum();
    srv.repl.begin_loading(total_bytes);
    let last = order.len().saturating_sub(1);
    let mut total = 0u64;
    for (i, fe) in order.iter().enumerate() {
        let path = dir.join(&fe.name);
        let t0 = Instant::now();
        let res = load_file(
            srv,
            &path,
            &fe.name,
            i == last,
            fe.kind == FileKind::Base,
            &s,
        );
        match res {
            Ok(fl) => {
                total += fl.commands;
                crate::notice!(
                    "DB loaded from {} file {}: {:.3} seconds",
                    if fe.kind == FileKind::Base {
                        "base"
                    } else {
                        "incr"
                    },
                    fe.name,
                    t0.elapsed().as_secs_f64()
                );
            }
            Err(msg) => {
                srv.repl.end_loading();
                for line in msg.lines() {
                    crate::warning!("{}", line);
                }
                std::process::exit(1);
            }
        }
    }
    srv.repl.end_loading();
    let _ = total;
    crate::notice!(
        "DB loaded from append only file: {:.3} seconds",
        started.elapsed().as_secs_f64()
    );
    // Open the last incr file for appending (a manifest without one gets a new one).
    let mut manifest = manifest;
    let incr_name = match manifest.incr.last() {
        Some(e) => e.name.clone(),
        None => manifest.start_new_incr(&s.appendfilename),
    };
    let incr = match File::options()
        .create(true)
        .append(true)
        .open(dir.join(&incr_name))
    {
        Ok(f) => f,
        Err(e) => {
            crate::warning!("Can't open the append-only file {}: {}", incr_name, e);
            std::process::exit(1);
        }
    };
    crate::notice!("Opening AOF incr file {} on server start", incr_name);
    let size = |n: &str| std::fs::metadata(dir.join(n)).map(|m| m.len()).unwrap_or(0);
    let base_size = manifest.base.as_ref().map(|b| size(&b.name)).unwrap_or(0);
    let incr_size = size(&incr_name);
    let older: u64 = base_size
        + manifest
            .incr
            .iter()
            .filter(|e| e.name != incr_name)
            .map(|e| size(&e.name))
            .sum::<u64>();
    let files = AofFiles {
        dir,
        prefix: s.appendfilename.clone(),
        manifest,
        incr,
        incr_size_bytes: incr_size,
        older_size_bytes: older,
        base_size_bytes: base_size,
    };
    if let Err(e) = files.persist_manifest() {
        crate::warning!("{}", e);
        std::process::exit(1);
    }
    let aof = &srv.persist.aof;
    aof.base_size_bytes.store(base_size, Ordering::Relaxed);
    aof.current_size_bytes
        .store(older + incr_size, Ordering::Relaxed);
    aof.rewrite_base_size_bytes
        .store(older + incr_size, Ordering::Relaxed);
    aof.files_gen.fetch_add(1, Ordering::AcqRel);
    *aof.files.lock() = Some(files);
    srv.repl.set_aof_feed(true, s.aof_timestamp_enabled);
    aof.set_policy(s.appendfsync);
    aof.enabled.store(true, Ordering::Release);
    Aof::start_background(srv);
}

/// Redis 7.0's aofUpgradePrepare: a pre-7.0 single `appendonly.aof` in `dir` (the working
/// directory) becomes the base of a multi-part AOF — moved into the AOF directory under its
/// own name, with a manifest naming it — when there is no AOF directory, no (or an empty)
/// manifest, or a manifest whose only file is that base and the base is not in the directory
/// yet (an upgrade interrupted between the manifest and the rename).
fn upgrade_old_aof(appendfilename: &str, dir: &Path, manifest_path: &Path) -> Result<(), String> {
    let old = Path::new(appendfilename);
    if !old.is_file() {
        return Ok(());
    }
    let existing = match std::fs::read(manifest_path) {
        Ok(b) => Some(Manifest::parse(&b).map_err(|e| e.to_string())?),
        Err(_) => None,
    };
    let upgrade = !dir.is_dir()
        || match &existing {
            None => true,
            Some(m) if m.base.is_none() && m.incr.is_empty() => true,
            Some(m) => {
                m.incr.is_empty()
                    && m.base.as_ref().is_some_and(|b| b.name == appendfilename)
                    && !dir.join(appendfilename).exists()
            }
        };
    if !upgrade {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            dir.display()
        )
    })?;
    let manifest = Manifest {
        base: Some(FileEntry {
            name: appendfilename.to_string(),
            seq: 1,
            kind: FileKind::Base,
        }),
        curr_base_seq: 1,
        ..Manifest::default()
    };
    persist_manifest_at(dir, appendfilename, &manifest)?;
    let to = dir.join(appendfilename);
    std::fs::rename(old, &to).map_err(|e| {
        format!(
            "Error trying to rename the existing AOF to old AOF dir {}: {e}",
            to.display()
        )
    })?;
    crate::notice!(
        "Successfully migrated an old-style AOF into the AOF directory ({}).",
        dir.display()
    );
    Ok(())
}

/// Loads one file of the AOF. `last`: the only file whose torn tail may be truncated.
fn load_file(
    srv: &Arc<Server>,
    path: &Path,
    name: &str,
    last: bool,
    base: bool,
    s: &crate::settings::Settings,
) -> Result<FileLoad, String> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !base => {
            // Redis tolerates a missing incr file only when it is the last one and empty.
            return Err(format!("The AOF file {name} doesn't exist: {e}"));
        }
        Err(e) => {
            return Err(format!(
                "Fatal error: can't open the append log file {name} for reading: {e}"
            ))
        }
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Ok(FileLoad { commands: 0 });
    }
    let mut r = std::io::BufReader::with_capacity(1 << 20, super::LoadProgress { inner: f, srv });
    let mut first = [0u8; 5];
    let peeked = {
        use std::io::BufRead;
        let buf = r.fill_buf().map_err(|e| e.to_string())?;
        let n = buf.len().min(5);
        first[..n].copy_from_slice(&buf[..n]);
        n
    };
    let mut start_offset = 0u64;
    if peeked == 5 && cinnabar_aof::reader::starts_with_rdb_preamble(&first) {
        crate::notice!("Reading RDB base file on AOF loading...");
        // The RDB decoder reads exactly the image (it stops after the CRC).
        let mut counting = CountingReader {
            inner: &mut r,
            count: 0,
        };
        let (n, x) = super::rdbfile::load_rdb(srv, &mut counting, Some(len), name)
            .map_err(|e| format!("{e}\nFatal error loading the DB ({name}). Exiting."))?;
        crate::notice!("Done loading RDB, keys loaded: {}, keys expired: {}.", n, x);
        start_offset = counting.count;
        if start_offset >= len {
            return Ok(FileLoad { commands: 0 });
        }
    }
    replay(srv, r, start_offset, name, last, path, s)
}

struct CountingReader<'a, R> {
    inner: &'a mut R,
    count: u64,
}

impl<R: std::io::Read> std::io::Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Executes the commands of one AOF file through the dispatcher, as a fake client.
fn replay<R: std::io::BufRead>(
    srv: &Arc<Server>,
    r: R,
    start_offset: u64,
    name: &str,
    last: bool,
    path: &Path,
    s: &crate::settings::Settings,
) -> Result<FileLoad, String> {
    use crate::client::{Client, ClientInfo};
    let info = Arc::new(ClientInfo::new(
        u64::MAX,
        String::new(),
        String::new(),
        -1,
        now_ms(),
        false,
    ));
    let mut fake = Client::new(info, true);
    fake.is_master = true;
    let mut out = cinnabar_protocol::ReplyBuf::new(cinnabar_protocol::Resp::V2);
    let mut reader = AofReader::with_offset(r, start_offset);
    let mut commands = 0u64;
    // Start of the MULTI whose EXEC has not been read yet (a torn transaction is reverted).
    let mut open_multi: Option<u64> = None;
    loop {
        match reader.next_item() {
            Ok(None) => break,
            Ok(Some(AofItem::Annotation { .. })) => {}
            Ok(Some(AofItem::Command {
                args, start_offset, ..
            })) => {
                let is = |w: &[u8]| args[0].eq_ignore_ascii_case(w);
                if is(b"MULTI") {
                    open_multi = Some(start_offset);
                } else if is(b"EXEC") {
                    open_multi = None;
                }
                let bargs: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
                if crate::cmd::lookup(&bargs[0]).is_none() {
                    return Err(format!(
                        "Unknown command '{}' reading the append only file {}",
                        String::from_utf8_lossy(&bargs[0]),
                        name
                    ));
                }
                crate::cmd::execute(srv, &mut fake, &bargs, &mut out, now_ms());
                out.clear();
                commands += 1;
                super::key_load_delay(s);
            }
            Err(AofError::Truncated { valid_up_to }) => {
                let cut = open_multi.unwrap_or(valid_up_to).min(valid_up_to);
                return truncated(name, path, last, cut, s).map(|_| FileLoad { commands });
            }
            Err(AofError::Corrupt { offset, reason }) => {
                return Err(format!(
                    "Bad file format reading the append only file {name} at offset {offset} ({reason}): make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "Unrecoverable error reading the append only file {name}: {e}"
                ))
            }
        }
    }
    if let Some(m) = open_multi {
        crate::warning!(
            "Revert incomplete MULTI/EXEC transaction in AOF file {}",
            name
        );
        // The queued commands never ran (the fake client's MULTI is simply dropped).
        truncated(name, path, last, m, s)?;
    }
    Ok(FileLoad { commands })
}

/// A torn tail: truncate it (aof-load-truncated yes, last file only) or refuse to start.
fn truncated(
    name: &str,
    path: &Path,
    last: bool,
    valid_up_to: u64,
    s: &crate::settings::Settings,
) -> Result<(), String> {
    if !last || !s.aof_load_truncated {
        return Err(format!(
            "Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
        ));
    }
    crate::warning!(
        "!!! Warning: short read while loading the AOF file {}!!!",
        name
    );
    crate::warning!(
        "!!! Truncating the AOF {} at offset {} !!!",
        name,
        valid_up_to
    );
    let f = File::options()
        .write(true)
        .open(path)
        .map_err(|e| format!("Error truncating the AOF file {name}: {e}"))?;
    f.set_len(valid_up_to)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("Error truncating the AOF file {name}: {e}"))?;
    crate::warning!(
        "AOF {} loaded anyway because aof-load-truncated is enabled",
        name
    );
    Ok(())
}

/// Writes as much of `bytes` as the file takes: (bytes written, the error that stopped it).
fn write_some(f: &mut File, bytes: &[u8]) -> (usize, Option<std::io::Error>) {
    let mut written = 0;
    while written < bytes.len() {
        match f.write(&bytes[written..]) {
            Ok(0) => return (written, Some(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Some(e)),
        }
    }
    (written, None)
}

/// The C library's text for an OS error ("No space left on device"), as Redis prints it.
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
