//! The tokio driver: owns the bus listener (port+10000 or cluster-port), the outbound and
//! inbound bus links, the 100 ms cron and nodes.conf persistence, and feeds the I/O-free
//! [`ClusterState`]. [`ClusterHandle`] is the API the server calls (commands, routing,
//! state flags, manual-failover write pauses, shutdown).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::commands::{self, Keyspace, NoKeyspace, Reply};
use crate::nodes_conf::{self, ConfError, ConfigLock};
use crate::slot::SLOT_COUNT;
use crate::state::{ClusterState, Effect, LinkId, LogLevel, StateConfig, CRON_PERIOD_MS};
use crate::wire;

/// Options the server passes at start-up (cluster-* directives).
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub port: u16,
    pub bus_port: u16,
    pub bind: Vec<String>,
    pub node_timeout_ms: u64,
    pub config_file: PathBuf,
    pub announce_ip: Option<String>,
    pub announce_port: Option<u16>,
    pub announce_bus_port: Option<u16>,
    pub announce_hostname: Option<String>,
    pub require_full_coverage: bool,
    pub allow_reads_when_down: bool,
    pub replica_no_failover: bool,
    pub migration_barrier: u32,
    pub replica_validity_factor: u32,
}

/// Start-up errors.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Config(#[from] ConfError),
    #[error("Failed listening on cluster bus port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("Can't save the cluster config file: {0}")]
    Save(std::io::Error),
}

/// Work the cluster layer asks of the server (see [`ClusterHandle::take_events`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// Start replicating from this master's client `ip:port`, or stop (`None`).
    ReplicateFrom(Option<(String, u16)>),
    /// Drop the whole dataset (CLUSTER RESET on a replica).
    FlushData,
    /// Deliver a bus PUBLISH (`shard == false`) or PUBLISHSHARD to local subscribers.
    Publish {
        shard: bool,
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    /// Manual failover (master side): pause client writes until `until_ms` (wall clock),
    /// wait until no write is in flight, then call [`ClusterHandle::writes_paused`] with
    /// `id` and the replication offset.
    PauseWrites { id: u64, until_ms: u64 },
    /// End the pause of the last `PauseWrites`.
    UnpauseWrites,
    /// These slots left this node's shard: unsubscribe the local subscribers of shard
    /// channels hashing to them, with a SUNSUBSCRIBE push (`removeChannelsInSlot`).
    DropShardChannels { slots: Vec<u16> },
    /// An UPDATE took these slots from this master: delete the keys still held in them,
    /// replicating the deletions (Redis's `delKeysInSlot` for dirty slots).
    DeleteKeysInSlots { slots: Vec<u16> },
}

/// Where a slot is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Myself,
    Moved {
        ip: Arc<str>,
        port: u16,
    },
    Unassigned,
    /// I own the slot and it is migrating (`CLUSTER SETSLOT <slot> MIGRATING`) to `ip:port`:
    /// commands whose keys are missing here are sent there with `-ASK`.
    Migrating {
        ip: Arc<str>,
        port: u16,
    },
    /// Another node (`ip:port`, the MOVED target) owns the slot and I am importing it
    /// (`SETSLOT <slot> IMPORTING`): served here only after `ASKING` (or for RESTORE-ASKING).
    Importing {
        ip: Arc<str>,
        port: u16,
    },
}

const ROUTE_UNASSIGNED: u16 = u16::MAX;
const ROUTE_MYSELF: u16 = u16::MAX - 1;

struct RouteTable {
    /// Per slot: index into `targets`, or one of the sentinels above.
    owner: Vec<u16>,
    targets: Vec<(Arc<str>, u16)>,
    /// Index in `targets` of my master when I am a replica.
    my_master: Option<u16>,
    generation: u64,
    /// Open slots: migrating slot → index in `targets` of the destination; importing slots.
    /// Kept as the state's copy too, so a change of open slots alone rebuilds the table.
    migrating: HashMap<u16, u16>,
    open: crate::state::OpenSlots,
}

type LogSink = Box<dyn Fn(LogLevel, &str) + Send + Sync>;
static LOG_SINK: OnceLock<LogSink> = OnceLock::new();
static LOG_LEVEL: RwLock<LogLevel> = RwLock::new(LogLevel::Notice);

/// Install the process-wide log sink (first call wins). Without one, lines at or above
/// [`set_log_level`] go to stderr in Redis format (`pid:M 29 Nov 2026 07:02:28.593 # msg`).
pub fn set_log_sink(sink: LogSink) -> bool {
    LOG_SINK.set(sink).is_ok()
}

/// Minimum level for the default stderr sink (default: notice, like Redis).
pub fn set_log_level(level: LogLevel) {
    *LOG_LEVEL.write() = level;
}

fn log_line(level: LogLevel, line: &str) {
    if let Some(sink) = LOG_SINK.get() {
        sink(level, line);
        return;
    }
    if level < *LOG_LEVEL.read() {
        return;
    }
    eprintln!(
        "{}:M {} {} {}",
        std::process::id(),
        redis_timestamp(now_ms()),
        level.redis_char(),
        line
    );
}

/// `29 Nov 2026 07:02:28.593` (UTC).
fn redis_timestamp(ms: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms / 1000;
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{} {} {} {:02}:{:02}:{:02}.{:03}",
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        ms % 1000
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

struct LinkHandle {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    task: JoinHandle<()>,
}

struct Shared {
    state: Mutex<ClusterState>,
    routes: RwLock<RouteTable>,
    is_ok: AtomicBool,
    is_replica: AtomicBool,
    mf_pausing: AtomicBool,
    config_path: PathBuf,
    links: Mutex<HashMap<LinkId, LinkHandle>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    rt: tokio::runtime::Handle,
    node_timeout_ms: u64,
    stopped: AtomicBool,
    events_tx: mpsc::UnboundedSender<ServerEvent>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<ServerEvent>>>,
    events_taken: AtomicBool,
    /// Released by `shutdown` so a restart in the same process can take it again.
    lock: Mutex<Option<ConfigLock>>,
}

/// One nodes.conf save: crash-atomic with fsyncs when the change must survive a power loss
/// (epoch bumps, votes), in place otherwise (as Redis 7.0 saves without fsync).
fn save_conf(path: &std::path::Path, content: &str, fsync: bool) -> std::io::Result<()> {
    if fsync {
        nodes_conf::save_atomic(path, content, true)
    } else {
        nodes_conf::save_in_place(path, content)
    }
}

/// Performs the batch's `SaveConfig` effects as one save of the newest content (fsynced when
/// any of them asked for it) and removes them from `effects`. Called with the state lock held.
fn save_config_effects(path: &std::path::Path, effects: &mut Vec<Effect>) {
    let mut newest: Option<String> = None;
    let mut fsync = false;
    effects.retain_mut(|e| match e {
        Effect::SaveConfig { content, fsync: f } => {
            fsync |= *f;
            newest = Some(std::mem::take(content));
            false
        }
        _ => true,
    });
    if let Some(content) = newest {
        if let Err(e) = save_conf(path, &content, fsync) {
            // Redis exits here; we log and keep running (the server decides).
            log_line(
                LogLevel::Warning,
                &format!("Fatal: can't update cluster config file: {e}"),
            );
        }
    }
}

/// Handle to a running cluster driver. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct ClusterHandle {
    shared: Arc<Shared>,
}

impl ClusterHandle {
    /// Load or create nodes.conf, bind the bus, spawn the driver tasks on `rt`.
    pub fn start(
        opts: ClusterOptions,
        rt: &tokio::runtime::Handle,
    ) -> Result<ClusterHandle, ClusterError> {
        let lock = ConfigLock::acquire(&opts.config_file)?;
        let cfg = StateConfig {
            port: opts.announce_port.unwrap_or(opts.port),
            pport: 0,
            cport: opts.announce_bus_port.unwrap_or(opts.bus_port),
            node_timeout_ms: opts.node_timeout_ms,
            announce_ip: opts.announce_ip.clone().filter(|s| !s.is_empty()),
            announce_hostname: opts.announce_hostname.clone().filter(|s| !s.is_empty()),
            require_full_coverage: opts.require_full_coverage,
            allow_reads_when_down: opts.allow_reads_when_down,
            replica_no_failover: opts.replica_no_failover,
            allow_replica_migration: true,
            migration_barrier: opts.migration_barrier,
            replica_validity_factor: opts.replica_validity_factor,
        };
        let seed: u64 = rand::random();
        let now = now_ms();
        let mut st = match nodes_conf::load(&opts.config_file)? {
            Some(conf) => {
                let st = ClusterState::from_config(cfg, &conf, seed, now).ok_or_else(|| {
                    ConfError::Corrupt {
                        line: String::new(),
                        reason: "no myself node".into(),
                    }
                })?;
                log_line(
                    LogLevel::Notice,
                    &format!("Node configuration loaded, I'm {}", st.myself),
                );
                st
            }
            None => {
                let st = ClusterState::new(cfg, seed, now);
                log_line(
                    LogLevel::Notice,
                    &format!("No cluster configuration found, I'm {}", st.myself),
                );
                st
            }
        };
        // Save right away (creates the file for a new node, normalises a loaded one).
        nodes_conf::save_atomic(&opts.config_file, &nodes_conf::serialize(&st), true)
            .map_err(ClusterError::Save)?;

        let _guard = rt.enter();
        let mut listeners = Vec::new();
        let binds: Vec<String> = if opts.bind.is_empty() {
            vec!["*".into(), "-::*".into()]
        } else {
            opts.bind.clone()
        };
        for b in &binds {
            let (optional, addr) = match b.strip_prefix('-') {
                Some(a) => (true, a),
                None => (false, b.as_str()),
            };
            let ip: IpAddr = match addr {
                "*" => IpAddr::from([0, 0, 0, 0]),
                "::*" => IpAddr::from([0u16; 8]),
                other => match other.parse() {
                    Ok(ip) => ip,
                    Err(_) if optional => continue,
                    Err(e) => {
                        return Err(ClusterError::Bind {
                            port: opts.bus_port,
                            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
                        })
                    }
                },
            };
            match bind_listener(SocketAddr::new(ip, opts.bus_port)) {
                Ok(l) => listeners.push(l),
                Err(_) if optional => {}
                Err(e) => {
                    return Err(ClusterError::Bind {
                        port: opts.bus_port,
                        source: e,
                    })
                }
            }
        }
        st.before_sleep(now);
        let pending = st.take_effects();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            events_tx,
            events_rx: Mutex::new(Some(events_rx)),
            events_taken: AtomicBool::new(false),
            routes: RwLock::new(RouteTable {
                owner: vec![ROUTE_UNASSIGNED; SLOT_COUNT],
                targets: Vec::new(),
                my_master: None,
                generation: 0,
                migrating: HashMap::new(),
                open: Default::default(),
            }),
            is_ok: AtomicBool::new(false),
            is_replica: AtomicBool::new(st.me().is_replica()),
            mf_pausing: AtomicBool::new(false),
            state: Mutex::new(st),
            config_path: opts.config_file.clone(),
            links: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            rt: rt.clone(),
            node_timeout_ms: opts.node_timeout_ms,
            stopped: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
        });
        let handle = ClusterHandle {
            shared: shared.clone(),
        };
        handle.dispatch(pending);
        handle.publish();
        for l in listeners {
            let h = handle.clone();
            let task = rt.spawn(async move { h.accept_loop(l).await });
            shared.tasks.lock().push(task);
        }
        let h = handle.clone();
        let cron = rt.spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(CRON_PERIOD_MS));
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                if h.shared.stopped.load(Ordering::Relaxed) {
                    return;
                }
                h.with_state(|st, now| st.tick(now));
            }
        });
        shared.tasks.lock().push(cron);
        Ok(handle)
    }

    /// `CLUSTER <args...>` (args after the word CLUSTER). COUNTKEYSINSLOT and
    /// GETKEYSINSLOT return [`Reply::NeedsKeyspace`]; emptiness checks assume no keys —
    /// use [`ClusterHandle::command_with_keyspace`] to supply the dataset.
    pub fn command(&self, args: &[bytes::Bytes]) -> Reply {
        self.command_with_keyspace(args, &NoKeyspace)
    }

    /// Reconciles the slot table with the dataset loaded at start-up
    /// ([`commands::verify_config_with_data`]).
    pub fn verify_config_with_data(&self, ks: &dyn Keyspace) {
        self.with_state(|st, now| {
            st.set_now(now);
            commands::verify_config_with_data(st, ks);
        });
    }

    /// Like [`ClusterHandle::command`] with access to the keyspace.
    pub fn command_with_keyspace(&self, args: &[bytes::Bytes], ks: &dyn Keyspace) -> Reply {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_ref()).collect();
        let path = self.shared.config_path.clone();
        let mut reply = Reply::Null;
        self.with_state(|st, now| {
            st.set_now(now);
            let mut save = |content: &str| nodes_conf::save_atomic(&path, content, true);
            reply = commands::execute(st, &argv, ks, &mut save);
        });
        reply
    }

    /// Owner of `slot` for request routing. No allocation: a read lock and an `Arc` clone.
    pub fn route(&self, slot: u16) -> Route {
        let t = self.shared.routes.read();
        let target = |i: u16| {
            t.targets
                .get(i as usize)
                .map(|(ip, port)| (ip.clone(), *port))
        };
        let route = match t.owner.get(slot as usize).copied() {
            None | Some(ROUTE_UNASSIGNED) => Route::Unassigned,
            Some(ROUTE_MYSELF) => Route::Myself,
            Some(i) => match target(i) {
                Some((ip, port)) => Route::Moved { ip, port },
                None => Route::Unassigned,
            },
        };
        if t.migrating.is_empty() && t.open.importing_from.is_empty() {
            return route;
        }
        match route {
            Route::Myself => match t.migrating.get(&slot).and_then(|&i| target(i)) {
                Some((ip, port)) => Route::Migrating { ip, port },
                None => Route::Myself,
            },
            Route::Moved { ip, port } if t.open.importing_from.contains_key(&slot) => {
                Route::Importing { ip, port }
            }
            other => other,
        }
    }

    /// True when I am a replica and my master serves `slot` (READONLY reads are local).
    pub fn serves_reads_for(&self, slot: u16) -> bool {
        let t = self.shared.routes.read();
        match (t.my_master, t.owner.get(slot as usize)) {
            (Some(m), Some(&o)) => o == m,
            _ => false,
        }
    }

    /// Publishes this node's replication offset (called by the server's cron).
    pub fn set_repl_offset(&self, offset: u64) {
        self.shared.state.lock().set_repl_offset(offset);
    }

    /// `cluster_state:ok`.
    pub fn is_ok(&self) -> bool {
        self.shared.is_ok.load(Ordering::Acquire)
    }

    pub fn myself_is_replica(&self) -> bool {
        self.shared.is_replica.load(Ordering::Acquire)
    }

    /// Answer to [`ServerEvent::PauseWrites`]: writes are paused, `offset` is final.
    pub fn writes_paused(&self, id: u64, offset: u64) {
        self.with_state(|st, now| st.on_writes_paused(id, offset, now));
    }

    /// A manual failover paused this master's writes: replication PINGs and active expiry
    /// must not move the offset meanwhile.
    pub fn manual_failover_pausing(&self) -> bool {
        self.shared.mf_pausing.load(Ordering::Acquire)
    }

    /// The stream of [`ServerEvent`]s (first call only). Events are dropped until it is
    /// taken, so a server that does not replicate or publish yet loses nothing it needs.
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<ServerEvent>> {
        let rx = self.shared.events_rx.lock().take();
        if rx.is_some() {
            self.shared.events_taken.store(true, Ordering::Release);
        }
        rx
    }

    fn emit(&self, ev: ServerEvent) {
        if self.shared.events_taken.load(Ordering::Acquire) {
            let _ = self.shared.events_tx.send(ev);
        }
    }

    /// A client ran PUBLISH (`shard == false`) or SPUBLISH on this node: send the bus
    /// PUBLISH to every connected node, or PUBLISHSHARD to the other nodes of my shard.
    ///
    /// The work runs on the driver's runtime, not on the caller's thread: the caller may
    /// hold a slot lock (SPUBLISH's channel is its key) while a CLUSTER command holds the
    /// state lock and takes slot locks (COUNTKEYSINSLOT...), so taking the state lock here
    /// could deadlock. Tasks spawned from other threads run in spawn order on the driver's
    /// current-thread runtime, so one client's messages keep their order.
    pub fn propagate_publish(&self, shard: bool, channel: bytes::Bytes, message: bytes::Bytes) {
        if self.shared.stopped.load(Ordering::Relaxed) {
            return;
        }
        let h = self.clone();
        self.shared.rt.spawn(async move {
            h.with_state(|st, now| st.propagate_publish(shard, &channel, &message, now));
        });
    }

    /// My node id.
    pub fn myself_id(&self) -> String {
        self.shared.state.lock().myself.to_string()
    }

    /// Save the config, release the config lock and stop every link and task (the bus
    /// port is released asynchronously, when the runtime drops the aborted tasks).
    pub fn shutdown(&self) {
        if self.shared.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let st = self.shared.state.lock();
            let content = nodes_conf::serialize(&st);
            if let Err(e) = nodes_conf::save_atomic(&self.shared.config_path, &content, true) {
                log_line(
                    LogLevel::Warning,
                    &format!("Error saving the cluster config at shutdown: {e}"),
                );
            }
        }
        for t in self.shared.tasks.lock().drain(..) {
            t.abort();
        }
        for (_, l) in self.shared.links.lock().drain() {
            l.task.abort();
        }
        // The aborted tasks drop the listeners and sockets on their runtime shortly after.
        self.shared.lock.lock().take();
    }

    // ------------------------------------------------------------------ internals

    /// Run `f` on the state, then flush before-sleep work and dispatch the effects.
    fn with_state(&self, f: impl FnOnce(&mut ClusterState, u64)) {
        let now = now_ms();
        let (effects, changed) = {
            let mut st = self.shared.state.lock();
            let before = st.generation;
            f(&mut st, now);
            st.before_sleep(now);
            self.shared.is_ok.store(st.state_ok, Ordering::Release);
            self.shared
                .mf_pausing
                .store(st.manual_failover_pausing(), Ordering::Release);
            let mut effects = st.take_effects();
            // nodes.conf is written while the state lock is held: saves from different
            // threads (commands, bus messages, the cron) can neither interleave in the temp
            // file nor land out of order. One write per batch (the last content wins).
            save_config_effects(&self.shared.config_path, &mut effects);
            (effects, st.generation != before)
        };
        // Routing first: a server event (UnpauseWrites after a manual failover demoted this
        // node) must not let a held write run against the old routing table.
        if changed {
            self.publish();
        }
        self.dispatch(effects);
    }

    /// Rebuild the lock-protected routing table from the state.
    fn publish(&self) {
        let st = self.shared.state.lock();
        self.shared.is_ok.store(st.state_ok, Ordering::Release);
        self.shared
            .is_replica
            .store(st.me().is_replica(), Ordering::Release);
        {
            let t = self.shared.routes.read();
            if t.generation == st.generation
                && t.open.migrating_to == st.open.migrating_to
                && t.open.importing_from == st.open.importing_from
            {
                return;
            }
        }
        let mut index: HashMap<wire::NodeName, u16> = HashMap::new();
        let mut targets: Vec<(Arc<str>, u16)> = Vec::new();
        let mut intern = |name: &wire::NodeName| -> u16 {
            *index.entry(*name).or_insert_with(|| {
                let n = st.nodes.get(name);
                targets.push((
                    Arc::from(n.map(|n| n.ip.as_str()).unwrap_or("")),
                    n.map(|n| n.port).unwrap_or(0),
                ));
                (targets.len() - 1) as u16
            })
        };
        let mut owner = vec![ROUTE_UNASSIGNED; SLOT_COUNT];
        // From the owners' slot bitmaps (they mirror `slots`, see add_slot / del_slot): no
        // per-slot node-name compare; this runs after every slot change of a reshard.
        for n in st.nodes.values().filter(|n| n.num_slots > 0) {
            let idx = if n.name == st.myself {
                ROUTE_MYSELF
            } else {
                intern(&n.name)
            };
            for (b, &byte) in n.slots.0.iter().enumerate() {
                let mut bits = byte;
                while bits != 0 {
                    owner[b * 8 + bits.trailing_zeros() as usize] = idx;
                    bits &= bits - 1;
                }
            }
        }
        debug_assert!(st
            .slots
            .iter()
            .enumerate()
            .all(|(s, o)| o.is_some() == (owner[s] != ROUTE_UNASSIGNED)));
        let migrating: HashMap<u16, u16> = st
            .open
            .migrating_to
            .iter()
            .map(|(&slot, name)| (slot, intern(name)))
            .collect();
        let open = st.open.clone();
        let my_master = if st.me().is_replica() {
            st.me().replicaof.and_then(|m| index.get(&m).copied())
        } else {
            None
        };
        let generation = st.generation;
        drop(st);
        *self.shared.routes.write() = RouteTable {
            owner,
            targets,
            my_master,
            generation,
            migrating,
            open,
        };
    }

    fn dispatch(&self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Send { link, msg } => {
                    let bytes = wire::encode(&msg);
                    if let Some(h) = self.shared.links.lock().get(&link) {
                        let _ = h.tx.send(bytes);
                    }
                }
                Effect::Connect { link, ip, port } => {
                    let h = self.clone();
                    let timeout_ms = self.shared.node_timeout_ms.max(1000);
                    self.shared
                        .rt
                        .spawn(async move { h.connect(link, ip, port, timeout_ms).await });
                }
                Effect::Close { link } => {
                    if let Some(h) = self.shared.links.lock().remove(&link) {
                        h.task.abort();
                    }
                }
                Effect::SaveConfig { content, fsync } => {
                    if let Err(e) = save_conf(&self.shared.config_path, &content, fsync) {
                        // Redis exits here; we log and keep running (the server decides).
                        log_line(
                            LogLevel::Warning,
                            &format!("Fatal: can't update cluster config file: {e}"),
                        );
                    }
                }
                Effect::Log { level, line } => log_line(level, &line),
                Effect::ReplicateFrom(target) => self.emit(ServerEvent::ReplicateFrom(target)),
                Effect::FlushData => self.emit(ServerEvent::FlushData),
                Effect::Publish {
                    shard,
                    channel,
                    message,
                } => self.emit(ServerEvent::Publish {
                    shard,
                    channel,
                    message,
                }),
                Effect::PauseWrites { id, until_ms } => {
                    self.emit(ServerEvent::PauseWrites { id, until_ms })
                }
                Effect::UnpauseWrites => self.emit(ServerEvent::UnpauseWrites),
                Effect::DeleteKeysInSlots { slots } => {
                    self.emit(ServerEvent::DeleteKeysInSlots { slots })
                }
                Effect::DropShardChannels { slots } => {
                    self.emit(ServerEvent::DropShardChannels { slots })
                }
            }
        }
    }

    async fn accept_loop(self, listener: TcpListener) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let local = stream
                .local_addr()
                .map(|a| ip_text(a.ip()))
                .unwrap_or_default();
            let peer_ip = ip_text(peer.ip());
            let mut id = 0;
            self.with_state(|st, now| id = st.on_inbound_link(&peer_ip, &local, now));
            self.attach(id, stream);
        }
    }

    async fn connect(self, link: LinkId, ip: String, port: u16, timeout_ms: u64) {
        let addr = format!(
            "{}:{}",
            if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.clone()
            },
            port
        );
        let res =
            tokio::time::timeout(Duration::from_millis(timeout_ms), TcpStream::connect(addr)).await;
        match res {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let local = stream
                    .local_addr()
                    .map(|a| ip_text(a.ip()))
                    .unwrap_or_default();
                // The state may have dropped this link while we were connecting.
                if !self.shared.state.lock().has_link(link) {
                    return;
                }
                self.attach(link, stream);
                self.with_state(|st, now| st.on_link_connected(link, &local, now));
            }
            _ => self.with_state(|st, now| st.on_link_closed(link, now)),
        }
    }

    /// Spawn the reader/writer task of a connected link and register its handle.
    fn attach(&self, link: LinkId, stream: TcpStream) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let h = self.clone();
        // Hold the table lock across spawn so the task cannot deregister before we insert.
        let mut links = self.shared.links.lock();
        let task = self.shared.rt.spawn(async move {
            let (mut rd, mut wr) = stream.into_split();
            let writer = async move {
                while let Some(bytes) = rx.recv().await {
                    if wr.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            };
            let h2 = h.clone();
            let reader = async move {
                let mut buf: Vec<u8> = Vec::with_capacity(wire::MSG_MAX_FIXED_LEN);
                let mut chunk = vec![0u8; 16 * 1024];
                loop {
                    let n = match rd.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    loop {
                        let total = match wire::frame_len(&buf) {
                            Ok(Some(t)) => t,
                            Ok(None) => break,
                            Err(e) => {
                                h2.with_state(|st, now| st.on_undecodable(link, None, &e, now));
                                return;
                            }
                        };
                        if buf.len() < total {
                            break;
                        }
                        let frame: Vec<u8> = buf.drain(..total).collect();
                        match wire::decode(&frame) {
                            Ok(msg) => h2.with_state(|st, now| st.on_message(link, msg, now)),
                            Err(e) => {
                                let t = wire::peek_type(&frame);
                                h2.with_state(|st, now| st.on_undecodable(link, t, &e, now));
                            }
                        }
                    }
                }
            };
            tokio::select! {
                _ = writer => {}
                _ = reader => {}
            }
            h.shared.links.lock().remove(&link);
            h.with_state(|st, now| st.on_link_closed(link, now));
        });
        links.insert(link, LinkHandle { tx, task });
    }
}

fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if addr.is_ipv6() {
        // Like Redis: the IPv6 socket does not also take IPv4 traffic.
        let std_sock = socket2::SockRef::from(&socket);
        std_sock.set_only_v6(true)?;
    }
    socket.bind(addr)?;
    socket.listen(511)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_timestamp_format() {
        // 2026-11-29 07:02:28.593 UTC
        assert_eq!(
            redis_timestamp(1_795_935_748_593),
            "29 Nov 2026 07:02:28.593"
        );
        assert_eq!(redis_timestamp(0), "1 Jan 1970 00:00:00.000");
    }
}
