//! Persistence (issue 6): RDB snapshots (`rdbfile.rs`), the multi-part append-only file
//! (`aof.rs`) and the forkless snapshot both use (`snapshot.rs`).
//!
//! Files are written as temp file → fsync → rename → fsync of the directory, so a crash
//! leaves either the old or the new file, never a torn one. Formats: RDB version 10 (the
//! `cinnabar-rdb` crate) and Redis 7.0's multi-part AOF (the `cinnabar-aof` crate); both are
//! byte-compatible with Redis 7.0.15 (docs/ARCHITECTURE.md).

pub mod aof;
pub mod rdbfile;
pub mod snapshot;

use std::io::Write;
use std::path::Path;

use parking_lot::Mutex;

/// Process-wide persistence state.
#[derive(Default)]
pub struct Persistence {
    /// Held by whoever runs a snapshot (SAVE, BGSAVE, AOF rewrite): one at a time, as Redis
    /// allows one child at a time.
    pub snapshot_lock: Mutex<()>,
    pub aof: aof::Aof,
    pub rdb: rdbfile::RdbState,
}

/// CONFIG SET of a persistence directive: `appendonly` turns the AOF on (a new AOF from the
/// current dataset, built in the background as Redis's rewrite does) or off;
/// `appendfsync` and `aof-timestamp-enabled` apply at once.
pub fn on_settings_change(
    srv: &crate::server::Server,
    old: &crate::settings::Settings,
    new: &crate::settings::Settings,
) {
    if old.appendfsync != new.appendfsync {
        srv.persist.aof.set_policy(new.appendfsync);
    }
    if old.aof_timestamp_enabled != new.aof_timestamp_enabled {
        srv.repl.inner.lock().aof.ts_enabled = new.aof_timestamp_enabled;
    }
    if old.appendonly == new.appendonly {
        return;
    }
    if !new.appendonly {
        aof::disable(srv);
        return;
    }
    if let Err(e) = aof::start_rewrite_kind(srv, true) {
        crate::warning!(
            "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. ({})",
            e
        );
    }
}

/// Writes `path` durably: `fill` writes the content into a temp file in the same directory,
/// which is fsynced, renamed over `path`, and the directory fsynced.
pub fn write_durably<T>(
    path: &Path,
    temp_name: &str,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<T, String>,
) -> Result<T, String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(temp_name);
    let res = (|| {
        let f = std::fs::File::create(&tmp)
            .map_err(|e| format!("Failed opening the temp file {}: {e}", tmp.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let v = fill(&mut w)?;
        w.flush().map_err(|e| format!("Write error: {e}"))?;
        let f = w.into_inner().map_err(|e| format!("Write error: {e}"))?;
        f.sync_all().map_err(|e| format!("fsync error: {e}"))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| {
            format!(
                "Error moving temp file {} on the final destination {}: {e}",
                tmp.display(),
                path.display()
            )
        })?;
        fsync_dir(dir);
        Ok(v)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Fsyncs a directory so a rename in it survives a power loss (best effort: some file
/// systems refuse fsync on directories).
pub fn fsync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `key-load-delay`: the pause after each key (RDB) or command (AOF) loaded, in µs — Redis's
/// debugging knob for slow loads; zero or negative: none.
#[inline]
pub fn key_load_delay(s: &crate::settings::Settings) {
    if s.key_load_delay_us > 0 {
        std::thread::sleep(std::time::Duration::from_micros(s.key_load_delay_us as u64));
    }
}

/// A reader that reports the bytes it reads as loading progress (INFO `loading_loaded_bytes`).
pub struct LoadProgress<'a, R> {
    pub inner: R,
    pub srv: &'a crate::server::Server,
}

impl<R: std::io::Read> std::io::Read for LoadProgress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.srv.repl.loading_progress(n as u64);
        Ok(n)
    }
}
