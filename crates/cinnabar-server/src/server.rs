//! `Server`: the process-wide shared state every connection task and background job sees —
//! settings, keyspace, client registry, statistics, run id, shutdown signal.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::client::ClientInfo;
use crate::config_store::ConfigStore;
use crate::keyspace::Keyspace;
use crate::settings::Settings;
use crate::stats::{CmdStatsTable, Stats};

/// One SLOWLOG entry.
pub struct SlowEntry {
    pub id: u64,
    pub time_s: i64,
    pub duration_us: u64,
    pub args: Vec<Vec<u8>>,
    pub peer: String,
    pub name: String,
}

/// WATCHed (db, key) → the clients watching it.
pub type WatchMap = HashMap<(u32, bytes::Bytes), Vec<Arc<ClientInfo>>>;

pub struct Server {
    pub settings: RwLock<Arc<Settings>>,
    /// Bumped on every settings change so connections can refresh their cached copy cheaply.
    pub settings_version: AtomicU64,
    pub config: Mutex<ConfigStore>,
    pub keyspace: Keyspace,
    pub stats: Stats,
    pub cmd_stats: CmdStatsTable,
    pub clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
    pub connected_clients: AtomicU64,
    pub next_client_id: AtomicU64,
    pub run_id: String,
    pub start_ms: i64,
    pub shutdown_requested: AtomicBool,
    pub shutdown_notify: tokio::sync::Notify,
    pub active_expire_enabled: AtomicBool,
    pub lastsave_s: AtomicI64,
    pub slowlog: Mutex<VecDeque<SlowEntry>>,
    pub slowlog_next_id: AtomicU64,
    /// CLIENT PAUSE: end time in ms (0 = not paused) and whether only writes are paused.
    pub pause_until_ms: AtomicI64,
    pub pause_writes_only: AtomicBool,
    pub cluster: Option<Arc<dyn crate::cluster_glue::ClusterApi>>,
    pub config_file: Option<std::path::PathBuf>,
    pub executable: String,
    pub pubsub: crate::pubsub::PubSub,
    /// WATCHed keys → watching clients; `watch_count` lets writers skip the lock when empty.
    pub watched: Mutex<WatchMap>,
    pub watch_count: std::sync::atomic::AtomicUsize,
    /// Woken by CLIENT UNPAUSE.
    pub pause_notify: tokio::sync::Notify,
    /// Clients blocked on (db, key), FIFO; `blocked_clients` lets writers skip the lock.
    pub blocked_keys: Mutex<BlockMap>,
    pub blocked_clients: std::sync::atomic::AtomicUsize,
    /// Replication stream, backlog, replicas and the replica role (`repl.rs`).
    pub repl: crate::repl::ReplicationLog,
    /// RDB snapshots and the AOF (`persist/`).
    pub persist: crate::persist::Persistence,
    /// SHUTDOWN's choice: Some(true) = SAVE, Some(false) = NOSAVE, None = as configured.
    pub shutdown_save: parking_lot::Mutex<Option<bool>>,
    /// MIGRATE's cached connections to target nodes.
    pub migrate_cache: crate::cmd::migrate::MigrateCache,
    /// `maxmemory` and eviction (`evict.rs`).
    pub evict: crate::evict::Evictor,
    /// Lua scripts cache and the running scripts (`script/`).
    pub scripts: crate::script::ScriptCache,
}

/// (db, key) → clients blocked on it, in arrival order.
pub type BlockMap = HashMap<(u32, bytes::Bytes), VecDeque<Arc<ClientInfo>>>;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn random_hex40() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
        .collect()
}

impl Server {
    pub fn new(
        settings: Settings,
        config: ConfigStore,
        cluster: Option<Arc<dyn crate::cluster_glue::ClusterApi>>,
        config_file: Option<std::path::PathBuf>,
    ) -> Server {
        let dbs = if settings.cluster_enabled {
            1
        } else {
            settings.databases
        };
        let pubsub = crate::pubsub::PubSub::default();
        pubsub
            .keyspace_events
            .store(settings.notify_keyspace_events, Ordering::Relaxed);
        let evict = crate::evict::Evictor::default();
        evict.configure(&settings);
        let repl = crate::repl::ReplicationLog::default();
        repl.set_min_replicas(
            settings.min_replicas_to_write,
            settings.min_replicas_max_lag_s,
        );
        Server {
            keyspace: Keyspace::new(dbs),
            settings: RwLock::new(Arc::new(settings)),
            settings_version: AtomicU64::new(0),
            config: Mutex::new(config),
            stats: Stats::default(),
            cmd_stats: CmdStatsTable::new(crate::cmd::command_count()),
            clients: Mutex::new(HashMap::new()),
            connected_clients: AtomicU64::new(0),
            next_client_id: AtomicU64::new(1),
            run_id: random_hex40(),
            start_ms: now_ms(),
            shutdown_requested: AtomicBool::new(false),
            shutdown_notify: tokio::sync::Notify::new(),
            active_expire_enabled: AtomicBool::new(true),
            lastsave_s: AtomicI64::new(now_ms() / 1000),
            slowlog: Mutex::new(VecDeque::new()),
            slowlog_next_id: AtomicU64::new(0),
            pause_until_ms: AtomicI64::new(0),
            pause_writes_only: AtomicBool::new(false),
            cluster,
            config_file,
            executable: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            pubsub,
            watched: Mutex::new(HashMap::new()),
            watch_count: std::sync::atomic::AtomicUsize::new(0),
            pause_notify: tokio::sync::Notify::new(),
            blocked_keys: Mutex::new(HashMap::new()),
            blocked_clients: std::sync::atomic::AtomicUsize::new(0),
            repl,
            persist: crate::persist::Persistence::default(),
            shutdown_save: parking_lot::Mutex::new(None),
            migrate_cache: Default::default(),
            evict,
            scripts: Default::default(),
        }
    }

    /// The current settings snapshot. Each thread keeps its own copy (refreshed when
    /// `settings_version` changes), so hot paths neither take the RwLock nor bump a reference
    /// count shared with other threads.
    pub fn settings(&self) -> Arc<Settings> {
        thread_local! {
            static CACHE: std::cell::RefCell<Option<(usize, u64, Arc<Settings>)>> =
                const { std::cell::RefCell::new(None) };
        }
        let me = self as *const Server as usize;
        let version = self.settings_version.load(Ordering::Acquire);
        let hit = CACHE
            .try_with(|c| match &*c.borrow() {
                Some((srv, v, s)) if *srv == me && *v == version => Some(s.clone()),
                _ => None,
            })
            .ok()
            .flatten();
        if let Some(s) = hit {
            return s;
        }
        let fresh = Arc::new((**self.settings.read()).clone());
        let _ = CACHE.try_with(|c| *c.borrow_mut() = Some((me, version, fresh.clone())));
        fresh
    }

    /// Rebuilds the settings snapshot from the config store (after CONFIG SET).
    pub fn reload_settings(&self) -> Result<(), String> {
        let s = self.config.lock().settings()?;
        crate::log::set_level(
            crate::log::Level::parse(&s.loglevel).unwrap_or(crate::log::Level::Notice),
        );
        self.pubsub
            .keyspace_events
            .store(s.notify_keyspace_events, Ordering::Relaxed);
        self.repl
            .set_min_replicas(s.min_replicas_to_write, s.min_replicas_max_lag_s);
        self.evict.configure(&s);
        let new = Arc::new(s);
        let old = std::mem::replace(&mut *self.settings.write(), new.clone());
        self.settings_version.fetch_add(1, Ordering::Release);
        crate::persist::on_settings_change(self, &old, &new);
        Ok(())
    }

    pub fn request_shutdown(&self) {
        self.shutdown_requested.store(true, Ordering::SeqCst);
        self.shutdown_notify.notify_waiters();
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }
}

impl Server {
    /// Marks every client WATCHing `key` in `db` dirty (Redis's touchWatchedKey).
    pub fn touch_watched(&self, db: u32, key: &[u8]) {
        if self.watch_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let w = self.watched.lock();
        if let Some(cs) = w.get(&(db, bytes::Bytes::copy_from_slice(key))) {
            for c in cs {
                c.dirty_cas.store(true, Ordering::Release);
            }
        }
    }

    /// Marks every client WATCHing any key of `db` dirty (FLUSHDB / FLUSHALL).
    pub fn touch_all_watched(&self, db: Option<u32>) {
        if self.watch_count.load(Ordering::Acquire) == 0 {
            return;
        }
        for ((d, _), cs) in self.watched.lock().iter() {
            if db.is_none_or(|x| x == *d) {
                for c in cs {
                    c.dirty_cas.store(true, Ordering::Release);
                }
            }
        }
    }

    pub fn watch(&self, db: u32, key: bytes::Bytes, client: &Arc<ClientInfo>) {
        let mut w = self.watched.lock();
        let v = w.entry((db, key)).or_default();
        if !v.iter().any(|c| c.id == client.id) {
            v.push(client.clone());
            self.watch_count.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub fn unwatch_all(&self, client: &mut crate::client::Client) {
        if client.watched.is_empty() {
            client.info.dirty_cas.store(false, Ordering::Release);
            return;
        }
        let mut w = self.watched.lock();
        for (db, key, _) in client.watched.drain(..) {
            if let Some(v) = w.get_mut(&(db, key.clone())) {
                let before = v.len();
                v.retain(|c| c.id != client.id);
                let removed = before - v.len();
                self.watch_count.fetch_sub(removed, Ordering::AcqRel);
                if v.is_empty() {
                    w.remove(&(db, key));
                }
            }
        }
        client.info.dirty_cas.store(false, Ordering::Release);
    }
}

impl Server {
    /// Registers a blocked client as a waiter on `keys` of `db`.
    pub fn block_register(&self, db: u32, keys: &[bytes::Bytes], client: &Arc<ClientInfo>) {
        let mut m = self.blocked_keys.lock();
        for k in keys {
            let q = m.entry((db, k.clone())).or_default();
            if !q.iter().any(|c| c.id == client.id) {
                q.push_back(client.clone());
            }
        }
        client.blocked.store(true, Ordering::Release);
        self.blocked_clients.fetch_add(1, Ordering::AcqRel);
    }

    pub fn block_unregister(&self, db: u32, keys: &[bytes::Bytes], client: &Arc<ClientInfo>) {
        let mut m = self.blocked_keys.lock();
        for k in keys {
            let key = (db, k.clone());
            if let Some(q) = m.get_mut(&key) {
                q.retain(|c| c.id != client.id);
                if q.is_empty() {
                    m.remove(&key);
                }
            }
        }
        client.blocked.store(false, Ordering::Release);
        self.blocked_clients.fetch_sub(1, Ordering::AcqRel);
    }

    /// A write touched `key`: wake the first client blocked on it.
    #[inline]
    pub fn signal_ready(&self, db: u32, key: &[u8]) {
        if self.blocked_clients.load(Ordering::Acquire) == 0 {
            return;
        }
        let m = self.blocked_keys.lock();
        if let Some(q) = m.get(&(db, bytes::Bytes::copy_from_slice(key))) {
            if let Some(c) = q.front() {
                c.block_notify.notify_one();
            }
        }
    }
}
