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
    if old.aof_disable_auto_gc && !new.aof_disable_auto_gc {
        if let Some(me) = srv.repl.self_ref.get().and_then(|w| w.upgrade()) {
            aof::delete_history_in_background(&me);
        }
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

/// Bytes between two fsyncs of a file written with incremental fsync (Redis's
/// REDIS_AUTOSYNC_BYTES), so a large RDB / AOF base does not pile up dirty pages that one
/// final fsync then has to push out at once.
pub const AUTOSYNC_BYTES: u64 = 4 * 1024 * 1024;

/// A file that, when `every_bytes` is non-zero, fsyncs its data every `every_bytes` written
/// (`rdb-save-incremental-fsync`, `aof-rewrite-incremental-fsync`).
pub struct AutoSync {
    file: std::fs::File,
    every_bytes: u64,
    since_sync_bytes: u64,
    /// fsyncs done so far.
    pub syncs: u64,
}

impl AutoSync {
    pub fn new(file: std::fs::File, every_bytes: u64) -> Self {
        AutoSync {
            file,
            every_bytes,
            since_sync_bytes: 0,
            syncs: 0,
        }
    }

    pub fn into_inner(self) -> std::fs::File {
        self.file
    }
}

impl Write for AutoSync {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        if self.every_bytes > 0 {
            self.since_sync_bytes += n as u64;
            if self.since_sync_bytes >= self.every_bytes {
                self.file.sync_data()?;
                self.since_sync_bytes = 0;
                self.syncs += 1;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Writes `path` durably: `fill` writes the content into a temp file in the same directory,
/// which is fsynced (also every [`AUTOSYNC_BYTES`] on the way with `incremental_fsync`),
/// renamed over `path`, and the directory fsynced.
pub fn write_durably<T>(
    path: &Path,
    temp_name: &str,
    incremental_fsync: bool,
    fill: impl FnOnce(&mut std::io::BufWriter<AutoSync>) -> Result<T, String>,
) -> Result<T, String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(temp_name);
    let res = (|| {
        let f = std::fs::File::create(&tmp)
            .map_err(|e| format!("Failed opening the temp file {}: {e}", tmp.display()))?;
        let every = if incremental_fsync { AUTOSYNC_BYTES } else { 0 };
        let mut w = std::io::BufWriter::with_capacity(1 << 20, AutoSync::new(f, every));
        let v = fill(&mut w)?;
        w.flush().map_err(|e| format!("Write error: {e}"))?;
        let f = w
            .into_inner()
            .map_err(|e| format!("Write error: {e}"))?
            .into_inner();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autosync_fsyncs_every_4mb_and_keeps_the_bytes() {
        let dir = std::env::temp_dir().join(format!("cinnabar-autosync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("f");
        let data: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        for (every, want_syncs) in [(AUTOSYNC_BYTES, 2), (0, 0)] {
            let f = std::fs::File::create(&path).expect("create");
            let mut w = std::io::BufWriter::with_capacity(1 << 16, AutoSync::new(f, every));
            for chunk in data.chunks(100_000) {
                w.write_all(chunk).expect("write");
            }
            w.flush().expect("flush");
            let a = w.into_inner().map_err(|_| ()).expect("into_inner");
            assert_eq!(a.syncs, want_syncs);
            drop(a.into_inner());
            assert_eq!(std::fs::read(&path).expect("read"), data);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
