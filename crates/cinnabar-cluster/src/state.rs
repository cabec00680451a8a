//! The cluster state machine, free of I/O and clocks (Redis 7.0 `cluster.c` semantics).
//!
//! Inputs: link events ([`ClusterState::on_link_connected`], [`ClusterState::on_link_closed`],
//! [`ClusterState::on_inbound_link`]), decoded bus messages ([`ClusterState::on_message`]),
//! the 100 ms cron ([`ClusterState::tick`]), admin commands (`commands.rs`) and client
//! PUBLISH / SPUBLISH to propagate ([`ClusterState::propagate_publish`]). Every input
//! carries `now_ms` (wall-clock milliseconds); randomness comes from a seeded RNG.
//! Outputs are [`Effect`]s collected in the state and drained with
//! [`ClusterState::take_effects`]: send a message on a link, open a link, close a link,
//! save the config, log a line, point replication somewhere, deliver a bus PUBLISH, drop
//! the shard-channel subscriptions of slots that left my shard.
//!
//! Implemented: MEET handshake, gossip, node discovery, own-address learning, handshake
//! expiry, FORGET with the 60 s ban, RESET SOFT/HARD, currentEpoch/configEpoch (merge,
//! adoption, collision resolution, bump, SET-CONFIG-EPOCH), slot ownership propagation
//! (`UpdateSlotsConfigWith`, UPDATE messages), PFAIL/FAIL with failure reports and
//! majority, FAIL broadcast and undo, cluster_state (full coverage, minority, writable
//! and rejoin delays), REPLICATE, and automatic replica failover (both sides).
//!
//! Automatic replica failover (rank, delay, AUTH_REQUEST, vote counting, promotion) is
//! implemented; its replica-validity "data age" uses bus traffic until replication exists.
//! Manual failover (`CLUSTER FAILOVER [FORCE|TAKEOVER]`): the replica sends MFSTART, the
//! master asks the server to pause writes ([`Effect::PauseWrites`]); once the server reports
//! the final offset ([`ClusterState::on_writes_paused`]) the master pings the replica with
//! the PAUSED flag and that offset; the replica waits until its own offset matches, then
//! runs an election without delay whose AUTH_REQUEST carries FORCEACK (votes are granted
//! although the master is not failing). FORCE skips the handshake, TAKEOVER the election.
//! Replica migration (`cluster-migration-barrier`, `cluster-allow-replica-migration`): a
//! replica of a master with the most working replicas moves to an orphaned master (slots,
//! used to have replicas, none working now) after it has been orphaned for 5 s — only the
//! replica with the smallest name among those masters' replicas moves, and only when its
//! master keeps more than the barrier.
//! Not yet implemented (see the `TODO(...)` markers): deleting keys of "dirty" slots (needs
//! the keyspace).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::nodes_conf;
use crate::slot::SLOT_COUNT;
use crate::wire::{
    self, flags, mflags, msg_type, Body, Gossip, Header, IpField, Message, NodeName, PingBody,
    PingExt, SlotBitmap,
};

/// Identifier of a bus link, allocated by the state machine.
pub type LinkId = u64;

/// FORGET ban duration.
pub const BLACKLIST_TTL_MS: u64 = 60_000;
/// Failure reports expire after NT × this.
pub const FAIL_REPORT_VALIDITY_MULT: u64 = 2;
/// FAIL of a master with slots is undone after NT × this.
pub const FAIL_UNDO_TIME_MULT: u64 = 2;
/// A master cannot turn the state OK before this long after the first evaluation.
pub const WRITABLE_DELAY_MS: u64 = 2000;
/// Cron period.
pub const CRON_PERIOD_MS: u64 = 100;
/// A manual failover must complete within this time (`CLUSTER_MF_TIMEOUT`).
pub const MF_TIMEOUT_MS: u64 = 5000;
/// The master pauses writes for `MF_TIMEOUT_MS` × this (`CLUSTER_MF_PAUSE_MULT`).
pub const MF_PAUSE_MULT: u64 = 2;
/// "Currently unable to failover" reasons are re-logged after this long.
pub const CANT_FAILOVER_RELOG_PERIOD_MS: u64 = 10_000;

/// Log severity, rendered like Redis (`.` debug, `-` verbose, `*` notice, `#` warning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Verbose,
    Notice,
    Warning,
}

impl LogLevel {
    pub fn redis_char(self) -> char {
        match self {
            LogLevel::Debug => '.',
            LogLevel::Verbose => '-',
            LogLevel::Notice => '*',
            LogLevel::Warning => '#',
        }
    }
}

/// Something the driver must do on behalf of the state machine.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Encode and send `msg` on `link`.
    Send { link: LinkId, msg: Box<Message> },
    /// Open an outbound TCP connection for `link` to `ip:port` (the bus port); report
    /// [`ClusterState::on_link_connected`] or [`ClusterState::on_link_closed`].
    Connect { link: LinkId, ip: String, port: u16 },
    /// Close `link` (no further events are expected for it).
    Close { link: LinkId },
    /// Persist nodes.conf with this exact content.
    SaveConfig { content: String, fsync: bool },
    /// Log a line.
    Log { level: LogLevel, line: String },
    /// Replicate from this master's client address, or stop replicating (`None`).
    ReplicateFrom(Option<(String, u16)>),
    /// Flush the local dataset (CLUSTER RESET on a replica).
    FlushData,
    /// A PUBLISH / PUBLISHSHARD from the bus to deliver to local subscribers.
    Publish {
        shard: bool,
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    /// These slots were taken from this node's shard (`clusterDelSlot` of a slot owned by
    /// my master or me): unsubscribe the local subscribers of shard channels hashing to
    /// them, with a SUNSUBSCRIBE push each (`removeChannelsInSlot`). Ascending, no repeats.
    DropShardChannels { slots: Vec<u16> },
    /// An UPDATE took these slots from me while I stay a master serving others: delete
    /// whatever keys I still hold in them (Redis's dirty slots, `delKeysInSlot`).
    DeleteKeysInSlots { slots: Vec<u16> },
    /// Manual failover, master side: pause client writes until `until_ms`, wait until no
    /// write is in flight, then report the replication offset with
    /// [`ClusterState::on_writes_paused`] quoting `id`.
    PauseWrites { id: u64, until_ms: u64 },
    /// End the pause asked by the last [`Effect::PauseWrites`] (failover done or aborted).
    UnpauseWrites,
}

/// Static configuration the state machine needs.
#[derive(Clone, Debug)]
pub struct StateConfig {
    /// Announced client port.
    pub port: u16,
    /// Announced plaintext port (7.0: only with tls-cluster; 0 otherwise).
    pub pport: u16,
    /// Announced bus port.
    pub cport: u16,
    pub node_timeout_ms: u64,
    pub announce_ip: Option<String>,
    pub announce_hostname: Option<String>,
    pub require_full_coverage: bool,
    pub allow_reads_when_down: bool,
    pub replica_no_failover: bool,
    pub allow_replica_migration: bool,
    pub migration_barrier: u32,
    pub replica_validity_factor: u32,
}

impl StateConfig {
    /// Defaults of redis.conf for `port`, bus port = port + 10000.
    pub fn for_port(port: u16) -> StateConfig {
        StateConfig {
            port,
            pport: 0,
            cport: port.wrapping_add(10000),
            node_timeout_ms: 15_000,
            announce_ip: None,
            announce_hostname: None,
            require_full_coverage: true,
            allow_reads_when_down: false,
            replica_no_failover: false,
            allow_replica_migration: true,
            migration_barrier: 1,
            replica_validity_factor: 10,
        }
    }
}

/// One failure report: `reporter` said the node is failing at `time_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailReport {
    pub reporter: NodeName,
    pub time_ms: u64,
}

/// A node of the cluster table (`clusterNode`).
#[derive(Clone, Debug)]
pub struct ClusterNode {
    pub name: NodeName,
    pub flags: u16,
    pub ctime_ms: u64,
    pub config_epoch: u64,
    pub slots: Box<SlotBitmap>,
    pub num_slots: usize,
    pub replicaof: Option<NodeName>,
    pub replicas: Vec<NodeName>,
    pub ping_sent_ms: u64,
    pub pong_received_ms: u64,
    pub data_received_ms: u64,
    pub fail_time_ms: u64,
    pub voted_time_ms: u64,
    pub repl_offset: u64,
    pub ip: String,
    pub hostname: String,
    pub port: u16,
    pub pport: u16,
    pub cport: u16,
    /// Outbound link (we connected).
    pub link: Option<LinkId>,
    /// Inbound link (the peer connected).
    pub inbound_link: Option<LinkId>,
    pub fail_reports: Vec<FailReport>,
    /// Since when (ms) this master has been seen orphaned (no working replica); 0 = not.
    pub orphaned_time_ms: u64,
}

impl ClusterNode {
    pub fn new(name: NodeName, node_flags: u16, now_ms: u64) -> ClusterNode {
        ClusterNode {
            name,
            flags: node_flags,
            ctime_ms: now_ms,
            config_epoch: 0,
            slots: Box::default(),
            num_slots: 0,
            replicaof: None,
            replicas: Vec::new(),
            ping_sent_ms: 0,
            pong_received_ms: 0,
            data_received_ms: 0,
            fail_time_ms: 0,
            voted_time_ms: 0,
            repl_offset: 0,
            ip: String::new(),
            hostname: String::new(),
            port: 0,
            pport: 0,
            cport: 0,
            link: None,
            inbound_link: None,
            fail_reports: Vec::new(),
            orphaned_time_ms: 0,
        }
    }
    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }
    pub fn is_master(&self) -> bool {
        self.has(flags::MASTER)
    }
    pub fn is_replica(&self) -> bool {
        self.has(flags::SLAVE)
    }
    pub fn in_handshake(&self) -> bool {
        self.has(flags::HANDSHAKE)
    }
    pub fn failed(&self) -> bool {
        self.has(flags::FAIL)
    }
    pub fn timed_out(&self) -> bool {
        self.has(flags::PFAIL)
    }
}

/// A bus link.
#[derive(Clone, Debug)]
pub struct Link {
    pub id: LinkId,
    pub node: Option<NodeName>,
    /// True for links we opened (node's `link`), false for accepted ones.
    pub outbound: bool,
    pub ctime_ms: u64,
    /// Remote address, once known.
    pub peer_ip: String,
    /// Local address of the socket, once known (used to learn our own IP).
    pub local_ip: String,
    /// Outbound connect completed.
    pub connected: bool,
}

/// Replica election bookkeeping (`clusterState.failover_auth_*`).
#[derive(Clone, Debug, Default)]
pub struct Election {
    /// When the election starts (or started); 0 = never scheduled.
    pub auth_time_ms: u64,
    pub auth_count: usize,
    pub auth_sent: bool,
    pub auth_rank: usize,
    pub auth_epoch: u64,
}

/// Manual failover bookkeeping (`clusterState.mf_*`); both roles use it.
#[derive(Clone, Debug, Default)]
pub struct ManualFailover {
    /// Deadline of the manual failover in progress; 0 = none (`mf_end`).
    pub end_ms: u64,
    /// Replica: the election may start (`mf_can_start`).
    pub can_start: bool,
    /// Replica: the offset my paused master announced (`mf_master_offset`).
    pub master_offset: Option<u64>,
    /// Master: the replica that asked (`mf_slave`); writes are paused while set.
    pub replica: Option<NodeName>,
    /// Master: the link MFSTART came on (fallback when I have no outbound link).
    pub replica_link: Option<LinkId>,
    /// Master: id of the pause request, quoted back by `on_writes_paused`.
    pub pause_id: u64,
    /// Master: the server reported writes paused; my offset is final and pings say PAUSED.
    pub paused: bool,
}

/// `CLUSTER FAILOVER` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverMode {
    Default,
    Force,
    Takeover,
}

/// Why a replica cannot fail over yet (`CLUSTER_CANT_FAILOVER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum CantFailover {
    #[default]
    None,
    DataAge,
    WaitingDelay,
    Expired,
    WaitingVotes,
}

/// `repl-ping-replica-period` (s), used by the replica validity check.
pub const REPL_PING_REPLICA_PERIOD_S: u64 = 10;

/// Per-slot migration state.
#[derive(Clone, Debug, Default)]
pub struct OpenSlots {
    pub migrating_to: BTreeMap<u16, NodeName>,
    pub importing_from: BTreeMap<u16, NodeName>,
}

/// The whole cluster state of one node.
pub struct ClusterState {
    pub cfg: StateConfig,
    pub myself: NodeName,
    pub nodes: BTreeMap<NodeName, ClusterNode>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    /// Owner of each slot.
    pub slots: Vec<Option<NodeName>>,
    /// Slots bound to an owner that stopped claiming them.
    pub owner_not_claiming: Box<SlotBitmap>,
    pub open: OpenSlots,
    pub state_ok: bool,
    /// Masters serving at least one slot.
    pub size: usize,
    pub links: BTreeMap<LinkId, Link>,
    next_link_id: LinkId,
    /// FORGET ban: name → expiry (ms).
    pub blacklist: BTreeMap<NodeName, u64>,
    pub stats_sent: [u64; msg_type::COUNT],
    pub stats_received: [u64; msg_type::COUNT],
    pub stats_pfail_nodes: usize,
    rng: StdRng,
    effects: Vec<Effect>,
    todo_save: bool,
    todo_fsync: bool,
    todo_update_state: bool,
    first_state_eval_ms: u64,
    among_minority_time_ms: u64,
    iteration: u64,
    /// Bumped on every change visible through routing (slots, addresses, state, role).
    pub generation: u64,
    /// Replica election state (`failover_auth_*`).
    pub election: Election,
    /// Manual failover state (`mf_*`).
    pub mf: ManualFailover,
    next_pause_id: u64,
    /// Run the replica failover handlers before sleeping (`CLUSTER_TODO_HANDLE_FAILOVER`).
    todo_handle_failover: bool,
    cant_failover_reason: CantFailover,
    cant_failover_logged_ms: u64,
    /// Current time of the input being processed.
    now_ms: u64,
    /// Slots deleted from my shard since the last before-sleep
    /// ([`Effect::DropShardChannels`]).
    shard_slots_lost: Vec<u16>,
    /// The master last handed to the server (`Effect::ReplicateFrom`), so the cron can start
    /// replication of a replica loaded from nodes.conf, as Redis's clusterCron does.
    announced_master: Option<(String, u16)>,
}

/// Generate a random 40-char lowercase hex node name.
pub fn random_name(rng: &mut StdRng) -> NodeName {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; wire::NAME_LEN];
    for b in out.iter_mut() {
        *b = HEX[rng.gen_range(0..16)];
    }
    NodeName(out)
}

impl ClusterState {
    /// A fresh node: new random name, master, no slots (Redis "No cluster configuration found").
    pub fn new(cfg: StateConfig, seed: u64, now_ms: u64) -> ClusterState {
        let mut rng = StdRng::seed_from_u64(seed);
        let myself = random_name(&mut rng);
        let mut st = ClusterState {
            cfg,
            myself,
            nodes: BTreeMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            slots: vec![None; SLOT_COUNT],
            owner_not_claiming: Box::default(),
            open: OpenSlots::default(),
            state_ok: false,
            size: 0,
            links: BTreeMap::new(),
            next_link_id: 1,
            blacklist: BTreeMap::new(),
            stats_sent: [0; msg_type::COUNT],
            stats_received: [0; msg_type::COUNT],
            stats_pfail_nodes: 0,
            rng,
            effects: Vec::new(),
            todo_save: false,
            todo_fsync: false,
            todo_update_state: false,
            first_state_eval_ms: 0,
            among_minority_time_ms: 0,
            iteration: 0,
            generation: 1,
            election: Election::default(),
            mf: ManualFailover::default(),
            next_pause_id: 0,
            todo_handle_failover: false,
            cant_failover_reason: CantFailover::None,
            cant_failover_logged_ms: 0,
            now_ms,
            shard_slots_lost: Vec::new(),
            announced_master: None,
        };
        let mut me = ClusterNode::new(myself, flags::MYSELF | flags::MASTER, now_ms);
        me.port = st.cfg.port;
        me.pport = st.cfg.pport;
        me.cport = st.cfg.cport;
        if let Some(ip) = st.cfg.announce_ip.clone() {
            me.ip = ip;
        }
        if let Some(h) = st.cfg.announce_hostname.clone() {
            me.hostname = h;
        }
        if st.cfg.replica_no_failover {
            me.flags |= flags::NOFAILOVER;
        }
        st.nodes.insert(myself, me);
        st
    }

    /// Build the state from a parsed nodes.conf; `None` if it has no `myself` line.
    pub fn from_config(
        cfg: StateConfig,
        conf: &nodes_conf::NodesConf,
        seed: u64,
        now_ms: u64,
    ) -> Option<ClusterState> {
        let mut st = ClusterState::new(cfg, seed, now_ms);
        st.nodes.clear();
        let mut myself = None;
        for line in &conf.nodes {
            let mut n = ClusterNode::new(line.name, line.flags, now_ms);
            if n.has(flags::MYSELF) {
                myself = Some(line.name);
            }
            n.ip = line.ip.clone();
            n.port = line.port;
            n.cport = line.cport;
            n.hostname = line.hostname.clone();
            n.config_epoch = line.config_epoch;
            n.ping_sent_ms = if line.ping_sent_ms != 0 { now_ms } else { 0 };
            n.pong_received_ms = if line.pong_received_ms != 0 {
                now_ms
            } else {
                0
            };
            if n.failed() {
                n.fail_time_ms = now_ms;
            }
            st.nodes.insert(line.name, n);
        }
        let myself = myself?;
        st.myself = myself;
        // Masters referenced by replicas but without their own line become placeholders.
        for line in &conf.nodes {
            if let Some(m) = line.master {
                st.nodes
                    .entry(m)
                    .or_insert_with(|| ClusterNode::new(m, flags::MASTER, now_ms));
                if let Some(n) = st.nodes.get_mut(&line.name) {
                    n.replicaof = Some(m);
                }
                if let Some(mn) = st.nodes.get_mut(&m) {
                    if !mn.replicas.contains(&line.name) {
                        mn.replicas.push(line.name);
                    }
                    // clusterNodeAddSlave: a master that has (had) replicas may receive
                    // a migrating one later.
                    mn.flags |= flags::MIGRATE_TO;
                }
            }
            for &(start, end) in &line.slots {
                for s in start..=end {
                    st.add_slot(line.name, s as usize);
                }
            }
            for &(slot, target) in &line.migrating {
                st.nodes
                    .entry(target)
                    .or_insert_with(|| ClusterNode::new(target, flags::MASTER, now_ms));
                st.open.migrating_to.insert(slot, target);
            }
            for &(slot, source) in &line.importing {
                st.nodes
                    .entry(source)
                    .or_insert_with(|| ClusterNode::new(source, flags::MASTER, now_ms));
                st.open.importing_from.insert(slot, source);
            }
        }
        st.current_epoch = conf.current_epoch;
        st.last_vote_epoch = conf.last_vote_epoch;
        let max_epoch = st.max_epoch();
        if max_epoch > st.current_epoch {
            st.current_epoch = max_epoch;
        }
        // Our own ports come from the running configuration, not the file.
        let (port, pport, cport) = (st.cfg.port, st.cfg.pport, st.cfg.cport);
        let announce_ip = st.cfg.announce_ip.clone();
        let hostname = st.cfg.announce_hostname.clone().unwrap_or_default();
        let no_failover = st.cfg.replica_no_failover;
        if let Some(me) = st.nodes.get_mut(&myself) {
            me.port = port;
            me.pport = pport;
            me.cport = cport;
            if let Some(ip) = announce_ip {
                me.ip = ip;
            }
            me.hostname = hostname;
            if no_failover {
                me.flags |= flags::NOFAILOVER;
            } else {
                me.flags &= !flags::NOFAILOVER;
            }
        }
        st.todo_update_state = true;
        Some(st)
    }

    // ------------------------------------------------------------------ accessors

    /// Sets my replication offset (sent in every message header; CLUSTER SLOTS / NODES and
    /// failover ranking read it).
    pub fn set_repl_offset(&mut self, offset: u64) {
        self.me_mut().repl_offset = offset;
    }

    pub fn me(&self) -> &ClusterNode {
        // The myself entry is never removed from `nodes` (FORGET/RESET refuse it).
        &self.nodes[&self.myself]
    }
    fn me_mut(&mut self) -> &mut ClusterNode {
        let me = self.myself;
        self.nodes
            .get_mut(&me)
            .expect("myself is always in the node table")
    }
    pub fn myself_is_master(&self) -> bool {
        self.me().is_master()
    }
    /// Set the clock for an input that is not a message/tick (admin commands).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }
    pub fn has_link(&self, id: LinkId) -> bool {
        self.links.contains_key(&id)
    }
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }
    pub fn node_timeout_ms(&self) -> u64 {
        self.cfg.node_timeout_ms
    }

    /// Lookup by textual name (40 chars), like `clusterLookupNode`.
    pub fn lookup(&self, text: &[u8]) -> Option<&ClusterNode> {
        NodeName::parse(text).and_then(|n| self.nodes.get(&n))
    }

    /// configEpoch of a node, or of its master for replicas (`nodeEpoch`).
    pub fn node_epoch(&self, n: &ClusterNode) -> u64 {
        if n.is_replica() {
            if let Some(m) = n.replicaof.and_then(|m| self.nodes.get(&m)) {
                return m.config_epoch;
            }
        }
        n.config_epoch
    }

    pub fn max_epoch(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| n.config_epoch)
            .chain(std::iter::once(self.current_epoch))
            .max()
            .unwrap_or(0)
    }

    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub fn log(&mut self, level: LogLevel, line: String) {
        self.effects.push(Effect::Log { level, line });
    }

    pub(crate) fn push_effect(&mut self, e: Effect) {
        self.effects.push(e);
    }

    /// CLUSTER RESET HARD: myself gets a new name.
    pub(crate) fn rename_myself(&mut self, new: NodeName) {
        let old = self.myself;
        self.rename_node(old, new);
        self.myself = new;
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    pub(crate) fn mark_save(&mut self, fsync: bool) {
        self.todo_save = true;
        self.todo_fsync |= fsync;
    }
    pub(crate) fn mark_update_state(&mut self) {
        self.todo_update_state = true;
    }
    /// Tells the server whom to replicate from (None: stop, I am a master).
    pub(crate) fn replicate_from(&mut self, target: Option<(String, u16)>) {
        self.announced_master = target.clone();
        self.effects.push(Effect::ReplicateFrom(target));
    }

    pub(crate) fn bump_generation(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// `clusterBeforeSleep`: run the deferred state update and config save.
    pub fn before_sleep(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        // A handler may schedule one more round (an election scheduled with no delay).
        for _ in 0..3 {
            if !self.todo_handle_failover {
                break;
            }
            self.todo_handle_failover = false;
            if self.me().is_replica() {
                self.handle_manual_failover();
                self.handle_replica_failover();
            }
        }
        if self.todo_update_state {
            self.todo_update_state = false;
            self.update_state();
        }
        if !self.shard_slots_lost.is_empty() {
            let mut slots = std::mem::take(&mut self.shard_slots_lost);
            slots.sort_unstable();
            slots.dedup();
            self.effects.push(Effect::DropShardChannels { slots });
        }
        if self.todo_save {
            let fsync = self.todo_fsync;
            self.todo_save = false;
            self.todo_fsync = false;
            let content = nodes_conf::serialize(self);
            self.effects.push(Effect::SaveConfig { content, fsync });
        }
    }

    // ------------------------------------------------------------------ node table ops

    pub(crate) fn add_node(&mut self, node: ClusterNode) {
        self.nodes.insert(node.name, node);
        self.bump_generation();
    }

    pub(crate) fn add_slot(&mut self, name: NodeName, slot: usize) -> bool {
        if self.slots[slot].is_some() {
            return false;
        }
        let Some(n) = self.nodes.get_mut(&name) else {
            return false;
        };
        if !n.slots.get(slot) {
            n.slots.set(slot);
            n.num_slots += 1;
        }
        self.slots[slot] = Some(name);
        self.owner_not_claiming.clear(slot);
        self.generation = self.generation.wrapping_add(1);
        true
    }

    pub(crate) fn del_slot(&mut self, slot: usize) -> bool {
        let Some(owner) = self.slots[slot] else {
            return false;
        };
        // `clusterDelSlot`: shard channels of the slot are dropped when I am in the shard
        // of the node losing it.
        if self.in_shard_of(owner) {
            self.shard_slots_lost.push(slot as u16);
        }
        if let Some(n) = self.nodes.get_mut(&owner) {
            if n.slots.get(slot) {
                n.slots.clear(slot);
                n.num_slots -= 1;
            }
        }
        self.slots[slot] = None;
        self.owner_not_claiming.clear(slot);
        self.generation = self.generation.wrapping_add(1);
        true
    }

    /// Unassign every slot of `name`; returns how many.
    pub(crate) fn del_node_slots(&mut self, name: NodeName) -> usize {
        let mut deleted = 0;
        for s in 0..SLOT_COUNT {
            if self.slots[s] == Some(name) {
                self.del_slot(s);
                deleted += 1;
            }
        }
        deleted
    }

    fn free_link(&mut self, id: LinkId) {
        if let Some(link) = self.links.remove(&id) {
            if let Some(n) = link.node.and_then(|n| self.nodes.get_mut(&n)) {
                if n.link == Some(id) {
                    n.link = None;
                }
                if n.inbound_link == Some(id) {
                    n.inbound_link = None;
                }
            }
            self.effects.push(Effect::Close { link: id });
        }
    }

    /// `clusterDelNode`: drop the node, its slots, open-slot references, reports and links.
    pub(crate) fn del_node(&mut self, name: NodeName) {
        for s in 0..SLOT_COUNT {
            if self.slots[s] == Some(name) {
                self.del_slot(s);
            }
        }
        self.open.importing_from.retain(|_, n| *n != name);
        self.open.migrating_to.retain(|_, n| *n != name);
        for n in self.nodes.values_mut() {
            n.fail_reports.retain(|r| r.reporter != name);
        }
        let Some(node) = self.nodes.remove(&name) else {
            return;
        };
        if let Some(m) = node.replicaof.and_then(|m| self.nodes.get_mut(&m)) {
            m.replicas.retain(|r| *r != name);
        }
        for r in &node.replicas {
            if let Some(rn) = self.nodes.get_mut(r) {
                rn.replicaof = None;
            }
        }
        for id in [node.link, node.inbound_link].into_iter().flatten() {
            if let Some(link) = self.links.get_mut(&id) {
                link.node = None;
            }
            self.free_link(id);
        }
        self.bump_generation();
    }

    /// `clusterRenameNode` (handshake node gets its real name).
    fn rename_node(&mut self, old: NodeName, new: NodeName) {
        let Some(mut node) = self.nodes.remove(&old) else {
            return;
        };
        self.log(LogLevel::Debug, format!("Renaming node {old} into {new}"));
        node.name = new;
        for id in [node.link, node.inbound_link].into_iter().flatten() {
            if let Some(l) = self.links.get_mut(&id) {
                l.node = Some(new);
            }
        }
        self.nodes.insert(new, node);
        self.bump_generation();
    }

    fn blacklist_cleanup(&mut self) {
        let now = self.now_ms;
        self.blacklist.retain(|_, exp| *exp > now);
    }

    pub(crate) fn blacklist_add(&mut self, name: NodeName) {
        self.blacklist_cleanup();
        self.blacklist.insert(name, self.now_ms + BLACKLIST_TTL_MS);
    }

    pub fn blacklisted(&mut self, name: &NodeName) -> bool {
        self.blacklist_cleanup();
        self.blacklist.contains_key(name)
    }

    /// `clusterNodeRemoveSlave` + `clusterNodeAddSlave` + flags (`clusterSetNodeAsMaster`).
    fn set_node_as_master(&mut self, name: NodeName) {
        let Some(n) = self.nodes.get(&name) else {
            return;
        };
        if n.is_master() {
            return;
        }
        if let Some(m) = n.replicaof {
            if let Some(mn) = self.nodes.get_mut(&m) {
                mn.replicas.retain(|r| *r != name);
                if mn.replicas.is_empty() {
                    mn.flags &= !flags::MIGRATE_TO;
                }
            }
        }
        let myself = self.myself;
        if let Some(n) = self.nodes.get_mut(&name) {
            n.flags &= !flags::SLAVE;
            n.flags |= flags::MASTER;
            if name != myself {
                n.flags |= flags::MIGRATE_TO;
            }
            n.replicaof = None;
        }
        self.mark_save(false);
        self.mark_update_state();
        self.bump_generation();
    }

    /// `clusterSetMaster`: make myself a replica of `master`.
    pub(crate) fn set_my_master(&mut self, master: NodeName) {
        let myself = self.myself;
        if master == myself {
            return;
        }
        let me = self.me().clone();
        if me.is_master() {
            let m = self.me_mut();
            m.flags &= !(flags::MASTER | flags::MIGRATE_TO);
            m.flags |= flags::SLAVE;
            self.open = OpenSlots::default();
        } else if let Some(old) = me.replicaof.and_then(|o| self.nodes.get_mut(&o)) {
            old.replicas.retain(|r| *r != myself);
        }
        self.me_mut().replicaof = Some(master);
        if let Some(mn) = self.nodes.get_mut(&master) {
            if !mn.replicas.contains(&myself) {
                mn.replicas.push(myself);
            }
            mn.flags |= flags::MIGRATE_TO;
            let target = (mn.ip.clone(), mn.port);
            self.replicate_from(Some(target));
        }
        self.reset_manual_failover();
        self.bump_generation();
    }

    // ------------------------------------------------------------------ links

    fn alloc_link(
        &mut self,
        node: Option<NodeName>,
        outbound: bool,
        peer_ip: String,
        local_ip: String,
    ) -> LinkId {
        let id = self.next_link_id;
        self.next_link_id += 1;
        self.links.insert(
            id,
            Link {
                id,
                node,
                outbound,
                ctime_ms: self.now_ms,
                peer_ip,
                local_ip,
                connected: false,
            },
        );
        id
    }

    /// An inbound connection was accepted.
    pub fn on_inbound_link(&mut self, peer_ip: &str, local_ip: &str, now_ms: u64) -> LinkId {
        self.now_ms = now_ms;
        let id = self.alloc_link(None, false, peer_ip.to_string(), local_ip.to_string());
        if let Some(l) = self.links.get_mut(&id) {
            l.connected = true;
        }
        id
    }

    /// Outbound connect succeeded: send MEET or PING (`clusterLinkConnectHandler`).
    pub fn on_link_connected(&mut self, id: LinkId, local_ip: &str, now_ms: u64) {
        self.now_ms = now_ms;
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        link.connected = true;
        link.local_ip = local_ip.to_string();
        let Some(name) = link.node else { return };
        let Some(node) = self.nodes.get_mut(&name) else {
            return;
        };
        let old_ping_sent = node.ping_sent_ms;
        let is_meet = node.has(flags::MEET);
        // Deviation from 7.0 (as in later Valkey): a handshake node keeps MEET until the
        // handshake completes, so a MEET lost to a connection reset is re-sent on
        // reconnect instead of leaving the peer unaware of us forever.
        if !node.in_handshake() {
            node.flags &= !flags::MEET;
        }
        self.send_ping(
            id,
            if is_meet {
                msg_type::MEET
            } else {
                msg_type::PING
            },
        );
        if old_ping_sent != 0 {
            // Keep the original ping time so a reconnect does not hide a timeout.
            if let Some(node) = self.nodes.get_mut(&name) {
                node.ping_sent_ms = old_ping_sent;
            }
        }
        self.log(
            LogLevel::Debug,
            format!(
                "Connecting with Node {name} at {}:{}",
                self.nodes
                    .get(&name)
                    .map(|n| n.ip.clone())
                    .unwrap_or_default(),
                self.nodes.get(&name).map(|n| n.cport).unwrap_or(0)
            ),
        );
        self.before_sleep(now_ms);
    }

    /// A link failed to connect or was closed by the peer / an I/O error.
    pub fn on_link_closed(&mut self, id: LinkId, now_ms: u64) {
        self.now_ms = now_ms;
        let Some(link) = self.links.remove(&id) else {
            return;
        };
        if let Some(n) = link.node.and_then(|n| self.nodes.get_mut(&n)) {
            if n.link == Some(id) {
                n.link = None;
                // Connect failure with no pending ping: pretend we pinged now so the
                // failure detector still works.
                if !link.connected && n.ping_sent_ms == 0 {
                    n.ping_sent_ms = now_ms;
                }
            }
            if n.inbound_link == Some(id) {
                n.inbound_link = None;
            }
        }
        self.before_sleep(now_ms);
    }

    /// A frame on `id` could not be decoded; count it if its type is readable.
    pub fn on_undecodable(
        &mut self,
        id: LinkId,
        raw_type: Option<u16>,
        err: &wire::DecodeError,
        now_ms: u64,
    ) {
        self.now_ms = now_ms;
        if let Some(t) = raw_type {
            if let Some(c) = self.stats_received.get_mut(t as usize) {
                *c += 1;
            }
        }
        self.log(
            LogLevel::Verbose,
            format!("Dropping cluster bus message on link {id}: {err}"),
        );
        if err.is_fatal_for_link() {
            self.free_link(id);
        }
    }

    // ------------------------------------------------------------------ sending

    /// `clusterBuildMessageHdr`.
    pub fn build_header(&self) -> Header {
        let me = self.me();
        let master = if me.is_replica() {
            me.replicaof.and_then(|m| self.nodes.get(&m))
        } else {
            None
        };
        let (slots, config_epoch) = match master {
            Some(m) => (m.slots.clone(), m.config_epoch),
            None => (me.slots.clone(), me.config_epoch),
        };
        Header {
            port: self.cfg.port,
            current_epoch: self.current_epoch,
            config_epoch,
            offset: me.repl_offset,
            sender: me.name,
            myslots: slots,
            slaveof: if me.is_replica() {
                me.replicaof.unwrap_or(NodeName::ZERO)
            } else {
                NodeName::ZERO
            },
            myip: match &self.cfg.announce_ip {
                Some(ip) => IpField::from_text(ip),
                None => IpField::EMPTY,
            },
            pport: self.cfg.pport,
            cport: self.cfg.cport,
            flags: me.flags,
            state: if self.state_ok { 0 } else { 1 },
            mflags: [
                if me.is_master() && self.mf.end_ms != 0 && self.mf.paused {
                    mflags::PAUSED
                } else {
                    0
                },
                0,
                0,
            ],
        }
    }

    fn send(&mut self, link: LinkId, msg: Message) {
        let t = msg.body.msg_type() as usize;
        if let Some(c) = self.stats_sent.get_mut(t) {
            *c += 1;
        }
        self.effects.push(Effect::Send {
            link,
            msg: Box::new(msg),
        });
    }

    fn gossip_entry(n: &ClusterNode) -> Gossip {
        Gossip {
            name: n.name,
            ping_sent_s: (n.ping_sent_ms / 1000) as u32,
            pong_received_s: (n.pong_received_ms / 1000) as u32,
            ip: IpField::from_text(&n.ip),
            port: n.port,
            cport: n.cport,
            flags: n.flags,
            pport: n.pport,
            notused: 0,
        }
    }

    /// `clusterSendPing`: PING, PONG or MEET with gossip and extensions.
    pub(crate) fn send_ping(&mut self, link_id: LinkId, t: u16) {
        let names: Vec<NodeName> = self.nodes.keys().copied().collect();
        let total = names.len();
        let mut freshnodes = total.saturating_sub(2);
        let mut wanted = (total / 10).max(3);
        if wanted > freshnodes {
            wanted = freshnodes;
        }
        if t == msg_type::PING {
            let now = self.now_ms;
            if let Some(n) = self
                .links
                .get(&link_id)
                .filter(|l| l.outbound)
                .and_then(|l| l.node)
            {
                if let Some(node) = self.nodes.get_mut(&n) {
                    node.ping_sent_ms = now;
                }
            }
        }
        let mut gossip: Vec<Gossip> = Vec::with_capacity(wanted + self.stats_pfail_nodes);
        let mut max_iter = wanted * 3;
        while freshnodes > 0 && gossip.len() < wanted && max_iter > 0 {
            max_iter -= 1;
            let pick = names[self.rng.gen_range(0..total)];
            let Some(n) = self.nodes.get(&pick) else {
                continue;
            };
            if n.has(flags::MYSELF) || n.has(flags::PFAIL) {
                continue;
            }
            if n.has(flags::HANDSHAKE | flags::NOADDR) || (n.link.is_none() && n.num_slots == 0) {
                freshnodes -= 1;
                continue;
            }
            if gossip.iter().any(|g| g.name == pick) {
                continue;
            }
            gossip.push(Self::gossip_entry(n));
            freshnodes -= 1;
        }
        if self.stats_pfail_nodes > 0 {
            for n in self.nodes.values() {
                if n.has(flags::HANDSHAKE | flags::NOADDR) || !n.has(flags::PFAIL) {
                    continue;
                }
                gossip.push(Self::gossip_entry(n));
            }
        }
        let mut extensions = Vec::new();
        let hostname = self.me().hostname.clone();
        if !hostname.is_empty() {
            extensions.push(PingExt::Hostname(hostname.into_bytes()));
        }
        let mut header = self.build_header();
        // Always advertise EXT_DATA so 7.2+/Valkey peers send us their extensions.
        header.mflags[0] |= mflags::EXT_DATA;
        let body = PingBody { gossip, extensions };
        let body = match t {
            msg_type::PONG => Body::Pong(body),
            msg_type::MEET => Body::Meet(body),
            _ => Body::Ping(body),
        };
        self.send(link_id, Message { header, body });
    }

    /// True when myself is `name`'s master or one of its replicas, or `name` itself
    /// (`clusterGetNodesServingMySlots(name)` contains myself).
    fn in_shard_of(&self, name: NodeName) -> bool {
        let Some(n) = self.nodes.get(&name) else {
            return false;
        };
        let primary = if n.is_master() {
            Some(n)
        } else {
            n.replicaof.and_then(|m| self.nodes.get(&m))
        };
        primary.is_some_and(|p| p.name == self.myself || p.replicas.contains(&self.myself))
    }

    /// A client ran PUBLISH (`shard == false`) or SPUBLISH here: send the bus message
    /// (`clusterPropagatePublish` / `clusterPropagatePublishShard`). PUBLISH goes to every
    /// node with an outbound link (except handshake nodes); PUBLISHSHARD to the nodes of
    /// my shard — my master (or me) and its replicas — except myself. A message too large
    /// for a bus frame ([`wire::MAX_FRAME_LEN`], which peers enforce) is not sent.
    pub fn propagate_publish(&mut self, shard: bool, channel: &[u8], message: &[u8], now_ms: u64) {
        self.now_ms = now_ms;
        let total = (wire::HEADER_LEN + 8)
            .saturating_add(channel.len())
            .saturating_add(message.len());
        if total > wire::MAX_FRAME_LEN {
            self.log(
                LogLevel::Warning,
                format!(
                    "Not propagating a {} message of {total} bytes to the cluster: larger than the bus frame limit",
                    if shard { "PUBLISHSHARD" } else { "PUBLISH" }
                ),
            );
            return;
        }
        if !shard {
            self.broadcast(Body::Publish {
                channel: channel.to_vec(),
                message: message.to_vec(),
            });
            return;
        }
        let me = self.me();
        let primary = if me.is_master() {
            Some(me)
        } else {
            me.replicaof.and_then(|m| self.nodes.get(&m))
        };
        let Some(primary) = primary else { return };
        let targets: Vec<LinkId> = std::iter::once(primary.name)
            .chain(primary.replicas.iter().copied())
            .filter(|n| *n != self.myself)
            .filter_map(|n| self.nodes.get(&n))
            .filter(|n| !n.has(flags::HANDSHAKE))
            .filter_map(|n| n.link)
            .filter(|l| self.links.get(l).is_some_and(|l| l.connected))
            .collect();
        if targets.is_empty() {
            return;
        }
        let header = self.build_header();
        let body = Body::PublishShard {
            channel: channel.to_vec(),
            message: message.to_vec(),
        };
        for link in targets {
            self.send(
                link,
                Message {
                    header: header.clone(),
                    body: body.clone(),
                },
            );
        }
    }

    /// Send to every node with an outbound link, except myself and handshake nodes.
    fn broadcast(&mut self, body: Body) {
        let targets: Vec<LinkId> = self
            .nodes
            .values()
            .filter(|n| !n.has(flags::MYSELF | flags::HANDSHAKE))
            .filter_map(|n| n.link)
            .filter(|l| self.links.get(l).is_some_and(|l| l.connected))
            .collect();
        let header = self.build_header();
        for link in targets {
            self.send(
                link,
                Message {
                    header: header.clone(),
                    body: body.clone(),
                },
            );
        }
    }

    /// `clusterRequestFailoverAuth`: FORCEACK during a manual failover.
    fn request_failover_auth(&mut self) {
        let targets: Vec<LinkId> = self
            .nodes
            .values()
            .filter(|n| !n.has(flags::MYSELF | flags::HANDSHAKE))
            .filter_map(|n| n.link)
            .filter(|l| self.links.get(l).is_some_and(|l| l.connected))
            .collect();
        let mut header = self.build_header();
        if self.mf.end_ms != 0 {
            header.mflags[0] |= mflags::FORCEACK;
        }
        for link in targets {
            self.send(
                link,
                Message {
                    header: header.clone(),
                    body: Body::FailoverAuthRequest,
                },
            );
        }
    }

    /// `clusterBroadcastPong(CLUSTER_BROADCAST_ALL)`.
    pub(crate) fn broadcast_pong(&mut self) {
        let targets: Vec<LinkId> = self
            .nodes
            .values()
            .filter(|n| !n.has(flags::MYSELF | flags::HANDSHAKE))
            .filter_map(|n| n.link)
            .filter(|l| self.links.get(l).is_some_and(|l| l.connected))
            .collect();
        for link in targets {
            self.send_ping(link, msg_type::PONG);
        }
    }

    fn send_update(&mut self, link: LinkId, about: NodeName) {
        let Some(n) = self.nodes.get(&about) else {
            return;
        };
        let mut slots = n.slots.clone();
        // Slots whose owner stopped claiming them are not advertised.
        for (b, nc) in slots.0.iter_mut().zip(self.owner_not_claiming.0.iter()) {
            *b &= !nc;
        }
        let body = Body::Update {
            config_epoch: n.config_epoch,
            name: about,
            slots,
        };
        let header = self.build_header();
        self.send(link, Message { header, body });
    }

    // ------------------------------------------------------------------ receiving

    /// Process one decoded message received on `link_id` (`clusterProcessPacket`).
    pub fn on_message(&mut self, link_id: LinkId, msg: Message, now_ms: u64) {
        self.now_ms = now_ms;
        self.process_packet(link_id, msg);
        self.before_sleep(now_ms);
    }

    fn process_packet(&mut self, link_id: LinkId, msg: Message) {
        let t = msg.body.msg_type();
        if let Some(c) = self.stats_received.get_mut(t as usize) {
            *c += 1;
        }
        let Some(link) = self.links.get(&link_id).cloned() else {
            return;
        };
        let now = self.now_ms;
        let hdr = &msg.header;

        let link_node = link
            .node
            .filter(|n| self.nodes.get(n).is_some_and(|n| !n.in_handshake()));
        let mut sender: Option<NodeName> = match link_node {
            Some(n) => Some(n),
            None => self.nodes.contains_key(&hdr.sender).then_some(hdr.sender),
        };
        if let Some(s) = sender {
            if let Some(sn) = self.nodes.get_mut(&s) {
                sn.data_received_ms = now;
            }
            // Bind an unbound inbound link to the sender.
            if !link.outbound && link.node.is_none() {
                let old = self.nodes.get(&s).and_then(|n| n.inbound_link);
                if let Some(old) = old.filter(|o| *o != link_id) {
                    self.free_link(old);
                }
                if let Some(l) = self.links.get_mut(&link_id) {
                    l.node = Some(s);
                }
                if let Some(sn) = self.nodes.get_mut(&s) {
                    sn.inbound_link = Some(link_id);
                }
            }
        }

        if let Some(s) = sender.filter(|s| self.nodes.get(s).is_some_and(|n| !n.in_handshake())) {
            if hdr.current_epoch > self.current_epoch {
                self.current_epoch = hdr.current_epoch;
                // Learned from a peer: saved, but not fsynced (Redis fsyncs here). Nothing a vote
                // relies on is lost by a crash (lastVoteEpoch and my own epochs are fsynced), and the
                // cluster re-teaches it; each fsync cost ~a reshard slot's time.
                self.mark_save(false);
            }
            if let Some(sn) = self.nodes.get_mut(&s) {
                if hdr.config_epoch > sn.config_epoch {
                    sn.config_epoch = hdr.config_epoch;
                    self.todo_save = true;
                    self.todo_fsync = true;
                    self.generation = self.generation.wrapping_add(1);
                }
                if let Some(sn) = self.nodes.get_mut(&s) {
                    sn.repl_offset = hdr.offset;
                }
            }
            // A replica in a manual failover learns the offset its paused master announces.
            if self.mf.end_ms != 0
                && self.me().is_replica()
                && self.me().replicaof == Some(s)
                && hdr.mflags[0] & mflags::PAUSED != 0
            {
                match self.mf.master_offset {
                    None => {
                        self.mf.master_offset = Some(hdr.offset);
                        self.todo_handle_failover = true;
                        self.log(
                            LogLevel::Warning,
                            format!(
                                "Received replication offset for paused master manual failover: {}",
                                hdr.offset
                            ),
                        );
                    }
                    // Deviation (safer than Redis, which keeps the first): a later, larger
                    // announcement wins while the election has not started.
                    Some(o) if hdr.offset > o && !self.mf.can_start => {
                        self.mf.master_offset = Some(hdr.offset);
                    }
                    Some(_) => {}
                }
            }
        }

        let ping_like = matches!(t, msg_type::PING | msg_type::PONG | msg_type::MEET);

        if t == msg_type::PING || t == msg_type::MEET {
            // Learn our own IP from the local side of the socket.
            if (t == msg_type::MEET || self.me().ip.is_empty()) && self.cfg.announce_ip.is_none() {
                let ip = link.local_ip.clone();
                if !ip.is_empty() && ip != self.me().ip {
                    self.me_mut().ip = ip.clone();
                    self.log(
                        LogLevel::Warning,
                        format!("IP address for this node updated to {ip}"),
                    );
                    self.mark_save(false);
                    self.bump_generation();
                }
            }
            if sender.is_none() && t == msg_type::MEET {
                let name = random_name(&mut self.rng);
                let mut n = ClusterNode::new(name, flags::HANDSHAKE, now);
                n.ip = if hdr.myip.is_empty() {
                    link.peer_ip.clone()
                } else {
                    hdr.myip.text()
                };
                n.port = hdr.port;
                n.pport = hdr.pport;
                n.cport = hdr.cport;
                self.add_node(n);
                self.mark_save(false);
                if let Body::Meet(b) = &msg.body {
                    self.process_gossip(None, &b.gossip);
                }
            }
            self.send_ping(link_id, msg_type::PONG);
        }

        if ping_like {
            if link.outbound {
                if let Some(ln) = link.node {
                    let in_hs = self.nodes.get(&ln).is_some_and(|n| n.in_handshake());
                    if in_hs {
                        if let Some(s) = sender {
                            // We already know this node under its real name.
                            self.log(
                                LogLevel::Verbose,
                                format!("Handshake: we already know node {s}, updating the address if needed."),
                            );
                            if self.update_address_if_needed(s, &link, hdr) {
                                self.mark_save(false);
                                self.mark_update_state();
                            }
                            self.del_node(ln);
                            return;
                        }
                        self.rename_node(ln, hdr.sender);
                        self.log(
                            LogLevel::Debug,
                            format!("Handshake with node {} completed.", hdr.sender),
                        );
                        if let Some(n) = self.nodes.get_mut(&hdr.sender) {
                            n.flags &= !(flags::HANDSHAKE | flags::MEET);
                            n.flags |= hdr.flags & (flags::MASTER | flags::SLAVE);
                        }
                        self.mark_save(false);
                    } else if ln != hdr.sender {
                        self.log(
                            LogLevel::Verbose,
                            format!(
                                "PONG contains mismatching sender ID. About node {ln} added {} ms ago, having flags {}",
                                now.saturating_sub(self.nodes.get(&ln).map(|n| n.ctime_ms).unwrap_or(now)),
                                self.nodes.get(&ln).map(|n| n.flags).unwrap_or(0)
                            ),
                        );
                        if let Some(n) = self.nodes.get_mut(&ln) {
                            n.flags |= flags::NOADDR;
                            n.ip.clear();
                            n.port = 0;
                            n.pport = 0;
                            n.cport = 0;
                        }
                        self.free_link(link_id);
                        self.mark_save(false);
                        self.bump_generation();
                        return;
                    }
                }
            }

            // After a rename the handshake node is now the sender.
            if sender.is_none()
                && link.outbound
                && link.node.is_some()
                && self.nodes.contains_key(&hdr.sender)
            {
                sender = Some(hdr.sender);
                if let Some(sn) = self.nodes.get_mut(&hdr.sender) {
                    sn.data_received_ms = now;
                }
            }

            if let Some(sn) = sender.and_then(|s| self.nodes.get_mut(&s)) {
                sn.flags = (sn.flags & !flags::NOFAILOVER) | (hdr.flags & flags::NOFAILOVER);
            }

            if let Some(s) = sender {
                if t == msg_type::PING
                    && !self.nodes.get(&s).is_some_and(|n| n.in_handshake())
                    && self.update_address_if_needed(s, &link, hdr)
                {
                    self.mark_save(false);
                    self.mark_update_state();
                }
            }

            // PONG on our outbound link: the node is alive.
            if link.outbound && t == msg_type::PONG {
                if let Some(ln) = self.links.get(&link_id).and_then(|l| l.node) {
                    let mut clear_fail = false;
                    if let Some(n) = self.nodes.get_mut(&ln) {
                        n.pong_received_ms = now;
                        n.ping_sent_ms = 0;
                        if n.timed_out() {
                            n.flags &= !flags::PFAIL;
                            self.todo_save = true;
                            self.todo_update_state = true;
                        } else if n.failed() {
                            clear_fail = true;
                        }
                    }
                    if clear_fail {
                        self.clear_node_failure_if_needed(ln);
                    }
                }
            }

            // Role changes.
            if let Some(s) = sender {
                if hdr.slaveof.is_zero() {
                    self.set_node_as_master(s);
                } else {
                    let was_master = self.nodes.get(&s).is_some_and(|n| n.is_master());
                    if was_master {
                        self.del_node_slots(s);
                        if let Some(sn) = self.nodes.get_mut(&s) {
                            sn.flags &= !(flags::MASTER | flags::MIGRATE_TO);
                            sn.flags |= flags::SLAVE;
                        }
                        self.mark_save(false);
                        self.mark_update_state();
                        self.bump_generation();
                    }
                    let master = self.nodes.contains_key(&hdr.slaveof).then_some(hdr.slaveof);
                    let cur = self.nodes.get(&s).and_then(|n| n.replicaof);
                    if master.is_some() && cur != master {
                        if let Some(old) = cur.and_then(|c| self.nodes.get_mut(&c)) {
                            old.replicas.retain(|r| *r != s);
                        }
                        if let Some(m) = master.and_then(|m| self.nodes.get_mut(&m)) {
                            if !m.replicas.contains(&s) {
                                m.replicas.push(s);
                            }
                            m.flags |= flags::MIGRATE_TO;
                        }
                        if let Some(sn) = self.nodes.get_mut(&s) {
                            sn.replicaof = master;
                        }
                        self.mark_save(false);
                        self.bump_generation();
                    }
                }
            }

            // Slot ownership.
            let sender_master = sender.and_then(|s| {
                let n = self.nodes.get(&s)?;
                if n.is_master() {
                    Some(s)
                } else {
                    n.replicaof
                }
            });
            let dirty = sender_master
                .and_then(|m| self.nodes.get(&m))
                .map(|m| m.slots.0 != hdr.myslots.0)
                .unwrap_or(false);
            if let Some(s) = sender {
                let sender_is_master = self.nodes.get(&s).is_some_and(|n| n.is_master());
                if sender_is_master && dirty {
                    self.update_slots_config_with(s, hdr.config_epoch, &hdr.myslots);
                }
                if dirty {
                    // Slots the sender claims that are bound elsewhere (byte-wise: its node
                    // bitmap mirrors `slots[j] == s`).
                    let bound_to_sender = self
                        .nodes
                        .get(&s)
                        .map(|n| n.slots.clone())
                        .unwrap_or_default();
                    let candidates = (0..SLOT_COUNT).filter(|&j| {
                        hdr.myslots.0[j / 8] & !bound_to_sender.0[j / 8] & (1 << (j % 8)) != 0
                    });
                    for j in candidates {
                        let Some(owner) = self.slots[j] else { continue };
                        if owner == s {
                            continue;
                        }
                        let owner_epoch =
                            self.nodes.get(&owner).map(|n| n.config_epoch).unwrap_or(0);
                        if owner_epoch > hdr.config_epoch {
                            self.log(
                                LogLevel::Verbose,
                                format!(
                                    "Node {s} has old slots configuration, sending an UPDATE message about {owner}"
                                ),
                            );
                            self.send_update(link_id, owner);
                            break;
                        }
                    }
                }
                // configEpoch collision.
                let sender_is_master = self.nodes.get(&s).is_some_and(|n| n.is_master());
                if sender_is_master && self.myself_is_master() {
                    self.handle_config_epoch_collision(s);
                }
                // Gossip and extensions.
                if let Some(b) = msg.body.ping_body() {
                    self.process_gossip(Some(s), &b.gossip);
                    self.process_extensions(s, &b.extensions);
                }
            }
            return;
        }

        match &msg.body {
            Body::Fail { name } => {
                let Some(s) = sender else { return };
                let myself = self.myself;
                let failing = self.nodes.get(name).map(|n| (n.flags, n.name));
                if let Some((fl, fname)) = failing {
                    if fl & (flags::FAIL | flags::MYSELF) == 0 {
                        self.log(
                            LogLevel::Notice,
                            format!("FAIL message received from {s} about {fname}"),
                        );
                        if let Some(n) = self.nodes.get_mut(&fname) {
                            n.flags |= flags::FAIL;
                            n.fail_time_ms = now;
                            n.flags &= !flags::PFAIL;
                        }
                        let _ = myself;
                        self.mark_save(false);
                        self.mark_update_state();
                        self.bump_generation();
                    }
                }
            }
            Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
                if sender.is_none() {
                    return;
                }
                self.effects.push(Effect::Publish {
                    shard: t == msg_type::PUBLISHSHARD,
                    channel: channel.clone(),
                    message: message.clone(),
                });
            }
            Body::FailoverAuthRequest => {
                if let Some(s) = sender {
                    self.maybe_vote(s, link_id, &msg.header);
                }
            }
            Body::FailoverAuthAck => {
                let Some(s) = sender else { return };
                let ok = self
                    .nodes
                    .get(&s)
                    .is_some_and(|n| n.is_master() && n.num_slots > 0);
                if ok && msg.header.current_epoch >= self.election.auth_epoch {
                    self.election.auth_count += 1;
                    self.handle_replica_failover();
                }
            }
            Body::MfStart => {
                // Only from one of my replicas.
                let Some(s) = sender else { return };
                if self.nodes.get(&s).and_then(|n| n.replicaof) != Some(self.myself) {
                    return;
                }
                self.reset_manual_failover();
                self.next_pause_id += 1;
                self.mf.end_ms = now + MF_TIMEOUT_MS;
                self.mf.replica = Some(s);
                self.mf.replica_link = Some(link_id);
                self.mf.pause_id = self.next_pause_id;
                self.effects.push(Effect::PauseWrites {
                    id: self.next_pause_id,
                    until_ms: now + MF_TIMEOUT_MS * MF_PAUSE_MULT,
                });
                self.log(
                    LogLevel::Warning,
                    format!("Manual failover requested by replica {s}."),
                );
                // The PAUSED ping goes out once the server reports the final offset.
            }
            Body::Update {
                config_epoch,
                name,
                slots,
            } => {
                if sender.is_none() {
                    return;
                }
                let Some(n) = self.nodes.get(name) else {
                    return;
                };
                if n.config_epoch >= *config_epoch {
                    return;
                }
                let name = *name;
                if n.is_replica() {
                    self.set_node_as_master(name);
                }
                if let Some(n) = self.nodes.get_mut(&name) {
                    n.config_epoch = *config_epoch;
                }
                // Learned from a peer: saved, but not fsynced (Redis fsyncs here). Nothing a vote
                // relies on is lost by a crash (lastVoteEpoch and my own epochs are fsynced), and the
                // cluster re-teaches it; each fsync cost ~a reshard slot's time.
                self.mark_save(false);
                self.update_slots_config_with(name, *config_epoch, slots);
            }
            Body::Module { .. } => {}
            Body::Ping(_) | Body::Pong(_) | Body::Meet(_) => {}
        }
    }

    /// `nodeUpdateAddressIfNeeded`.
    fn update_address_if_needed(&mut self, name: NodeName, link: &Link, hdr: &Header) -> bool {
        if name == self.myself {
            return false;
        }
        let Some(n) = self.nodes.get(&name) else {
            return false;
        };
        // Never update from our own outbound link to this node.
        if n.link == Some(link.id) {
            return false;
        }
        let ip = if hdr.myip.is_empty() {
            link.peer_ip.clone()
        } else {
            hdr.myip.text()
        };
        if ip.is_empty() {
            return false;
        }
        if n.ip == ip && n.port == hdr.port && n.cport == hdr.cport && n.pport == hdr.pport {
            return false;
        }
        let old_link = n.link;
        if let Some(n) = self.nodes.get_mut(&name) {
            n.ip = ip.clone();
            n.port = hdr.port;
            n.pport = hdr.pport;
            n.cport = hdr.cport;
            n.flags &= !flags::NOADDR;
        }
        if let Some(l) = old_link {
            self.free_link(l);
        }
        self.log(
            LogLevel::Warning,
            format!("Address updated for node {name} (), now {ip}:{}", hdr.port),
        );
        if self.me().replicaof == Some(name) {
            self.replicate_from(Some((ip, hdr.port)));
        }
        self.bump_generation();
        true
    }

    /// `clusterProcessGossipSection`.
    fn process_gossip(&mut self, sender: Option<NodeName>, gossip: &[Gossip]) {
        let now = self.now_ms;
        let sender_is_master = sender
            .and_then(|s| self.nodes.get(&s))
            .is_some_and(|n| n.is_master());
        for g in gossip {
            let gflags = g.flags;
            if self.nodes.contains_key(&g.name) {
                if let Some(s) = sender.filter(|_| sender_is_master) {
                    if g.name != self.myself {
                        if gflags & (flags::FAIL | flags::PFAIL) != 0 {
                            if self.add_failure_report(g.name, s) {
                                self.log(
                                    LogLevel::Verbose,
                                    format!("Node {s} reported node {} as not reachable.", g.name),
                                );
                            }
                            self.mark_node_as_failing_if_needed(g.name);
                        } else if self.del_failure_report(g.name, s) {
                            self.log(
                                LogLevel::Verbose,
                                format!("Node {s} reported node {} is back online.", g.name),
                            );
                        }
                    }
                }
                let Some(node) = self.nodes.get_mut(&g.name) else {
                    continue;
                };
                if gflags & (flags::FAIL | flags::PFAIL) == 0
                    && node.ping_sent_ms == 0
                    && node.fail_reports.is_empty()
                {
                    let pong_ms = g.pong_received_s as u64 * 1000;
                    if pong_ms <= now + 500 && pong_ms > node.pong_received_ms {
                        node.pong_received_ms = pong_ms;
                    }
                }
                if node.flags & (flags::FAIL | flags::PFAIL) != 0
                    && gflags & flags::NOADDR == 0
                    && gflags & (flags::FAIL | flags::PFAIL) == 0
                    && (node.ip != g.ip.text() || node.port != g.port || node.cport != g.cport)
                {
                    let old = node.link;
                    node.ip = g.ip.text();
                    node.port = g.port;
                    node.pport = g.pport;
                    node.cport = g.cport;
                    node.flags &= !flags::NOADDR;
                    if let Some(l) = old {
                        self.free_link(l);
                    }
                    self.bump_generation();
                }
            } else if sender.is_some() && gflags & flags::NOADDR == 0 && !self.blacklisted(&g.name)
            {
                let mut n = ClusterNode::new(g.name, gflags & !(flags::MYSELF | flags::MEET), now);
                n.ip = g.ip.text();
                n.port = g.port;
                n.pport = g.pport;
                n.cport = g.cport;
                self.add_node(n);
                self.mark_save(false);
            }
        }
    }

    fn process_extensions(&mut self, sender: NodeName, exts: &[PingExt]) {
        let mut hostname: Option<String> = None;
        for e in exts {
            match e {
                PingExt::Hostname(h) => hostname = Some(String::from_utf8_lossy(h).into_owned()),
                PingExt::ForgottenNode { name, ttl_s } => {
                    // 7.2 semantics: forget the node unless it is me or my master.
                    let my_master = self.me().replicaof;
                    if *name != self.myself
                        && Some(*name) != my_master
                        && self.nodes.contains_key(name)
                    {
                        self.log(LogLevel::Notice, format!("Forgetting node {name} as requested by {sender} (FORGOTTEN_NODE extension)"));
                        self.del_node(*name);
                        self.blacklist_cleanup();
                        self.blacklist
                            .insert(*name, self.now_ms + ttl_s.saturating_mul(1000));
                        self.mark_save(false);
                        self.mark_update_state();
                    }
                }
                PingExt::HumanNodename(_) | PingExt::ShardId(_) => {}
                PingExt::Other { ext_type, .. } => {
                    self.log(
                        LogLevel::Warning,
                        format!("Received unknown extension type {ext_type}"),
                    );
                }
            }
        }
        // Known senders that do not send a hostname get theirs cleared.
        let new = hostname.unwrap_or_default();
        if let Some(n) = self.nodes.get_mut(&sender) {
            if n.hostname != new {
                n.hostname = new;
                self.todo_save = true;
                self.generation = self.generation.wrapping_add(1);
            }
        }
    }

    // ------------------------------------------------------------------ failure detection

    fn add_failure_report(&mut self, failing: NodeName, reporter: NodeName) -> bool {
        let now = self.now_ms;
        let Some(n) = self.nodes.get_mut(&failing) else {
            return false;
        };
        if let Some(r) = n.fail_reports.iter_mut().find(|r| r.reporter == reporter) {
            r.time_ms = now;
            return false;
        }
        n.fail_reports.push(FailReport {
            reporter,
            time_ms: now,
        });
        true
    }

    fn del_failure_report(&mut self, failing: NodeName, reporter: NodeName) -> bool {
        self.cleanup_failure_reports(failing);
        let Some(n) = self.nodes.get_mut(&failing) else {
            return false;
        };
        let before = n.fail_reports.len();
        n.fail_reports.retain(|r| r.reporter != reporter);
        before != n.fail_reports.len()
    }

    fn cleanup_failure_reports(&mut self, name: NodeName) {
        let max_age = self.cfg.node_timeout_ms * FAIL_REPORT_VALIDITY_MULT;
        let now = self.now_ms;
        if let Some(n) = self.nodes.get_mut(&name) {
            n.fail_reports
                .retain(|r| now.saturating_sub(r.time_ms) <= max_age);
        }
    }

    /// Live failure reports about `name` (`clusterNodeFailureReportsCount`).
    pub fn failure_reports_count(&mut self, name: NodeName) -> usize {
        self.cleanup_failure_reports(name);
        self.nodes
            .get(&name)
            .map(|n| n.fail_reports.len())
            .unwrap_or(0)
    }

    /// `markNodeAsFailingIfNeeded`.
    fn mark_node_as_failing_if_needed(&mut self, name: NodeName) {
        let needed_quorum = self.size / 2 + 1;
        let Some(n) = self.nodes.get(&name) else {
            return;
        };
        if !n.timed_out() || n.failed() {
            return;
        }
        let mut failures = self.failure_reports_count(name);
        if self.myself_is_master() {
            failures += 1;
        }
        if failures < needed_quorum {
            return;
        }
        self.log(
            LogLevel::Notice,
            format!("Marking node {name} as failing (quorum reached)."),
        );
        let now = self.now_ms;
        if let Some(n) = self.nodes.get_mut(&name) {
            n.flags &= !flags::PFAIL;
            n.flags |= flags::FAIL;
            n.fail_time_ms = now;
        }
        self.broadcast(Body::Fail { name });
        self.mark_update_state();
        self.mark_save(false);
        self.bump_generation();
    }

    /// `clearNodeFailureIfNeeded`.
    fn clear_node_failure_if_needed(&mut self, name: NodeName) {
        let now = self.now_ms;
        let nt = self.cfg.node_timeout_ms;
        let Some(n) = self.nodes.get(&name) else {
            return;
        };
        if !n.failed() {
            return;
        }
        if n.is_replica() || n.num_slots == 0 {
            let role = if n.is_replica() {
                "replica"
            } else {
                "master without slots"
            };
            self.log(
                LogLevel::Notice,
                format!("Clear FAIL state for node {name}: {role} is reachable again."),
            );
        } else if n.is_master() && now.saturating_sub(n.fail_time_ms) > nt * FAIL_UNDO_TIME_MULT {
            self.log(
                LogLevel::Notice,
                format!("Clear FAIL state for node {name}: is reachable again and nobody is serving its slots after some time."),
            );
        } else {
            return;
        }
        if let Some(n) = self.nodes.get_mut(&name) {
            n.flags &= !flags::FAIL;
        }
        self.mark_update_state();
        self.mark_save(false);
        self.bump_generation();
    }

    // ------------------------------------------------------------------ epochs and slots

    /// `clusterHandleConfigEpochCollision`.
    fn handle_config_epoch_collision(&mut self, sender: NodeName) {
        let Some(s) = self.nodes.get(&sender) else {
            return;
        };
        let me = self.me();
        if s.config_epoch != me.config_epoch || !s.is_master() || !me.is_master() {
            return;
        }
        // Only the node with the smaller name bumps.
        if sender.0 <= self.myself.0 {
            return;
        }
        self.current_epoch += 1;
        let epoch = self.current_epoch;
        self.me_mut().config_epoch = epoch;
        self.mark_save(true);
        self.bump_generation();
        self.log(
            LogLevel::Verbose,
            format!(
                "WARNING: configEpoch collision with node {sender} (). configEpoch set to {epoch}"
            ),
        );
    }

    /// `clusterBumpConfigEpochWithoutConsensus`: true if bumped.
    pub fn bump_config_epoch_without_consensus(&mut self) -> bool {
        let max = self.max_epoch();
        let mine = self.me().config_epoch;
        if mine == 0 || mine != max {
            self.current_epoch += 1;
            let epoch = self.current_epoch;
            self.me_mut().config_epoch = epoch;
            self.mark_save(true);
            self.bump_generation();
            self.log(LogLevel::Warning, format!("New configEpoch set to {epoch}"));
            true
        } else {
            false
        }
    }

    /// `clusterUpdateSlotsConfigWith`.
    pub(crate) fn update_slots_config_with(
        &mut self,
        sender: NodeName,
        sender_epoch: u64,
        slots: &SlotBitmap,
    ) {
        if sender == self.myself {
            self.log(
                LogLevel::Warning,
                "Discarding UPDATE message about myself.".to_string(),
            );
            return;
        }
        let me = self.me();
        let cur_master = if me.is_master() {
            Some(self.myself)
        } else {
            me.replicaof
        };
        let mut new_master = None;
        let mut migrated_our_slots = 0usize;
        let mut changed = false;
        // Slots taken from me: the server deletes any keys left in them (dirty slots).
        let mut lost_mine: Vec<u16> = Vec::new();
        // Byte-wise over the bitmaps (the sender's node bitmap mirrors `slots[j] == sender`):
        // only slots claimed but not bound to the sender need the per-slot rules. This runs
        // for every PING/PONG whose claim differs from what we hold (e.g. during a reshard).
        let bound_to_sender = self
            .nodes
            .get(&sender)
            .map(|n| n.slots.clone())
            .unwrap_or_default();
        for b in 0..slots.0.len() {
            let (claimed, bound) = (slots.0[b], bound_to_sender.0[b]);
            let nc = &mut self.owner_not_claiming.0[b];
            *nc = (*nc & !(claimed & bound)) | (bound & !claimed);
            let mut todo = claimed & !bound;
            while todo != 0 {
                let j = b * 8 + todo.trailing_zeros() as usize;
                todo &= todo - 1;
                if self.open.importing_from.contains_key(&(j as u16)) {
                    continue;
                }
                let owner_epoch = self.slots[j]
                    .and_then(|o| self.nodes.get(&o))
                    .map(|o| o.config_epoch);
                if owner_epoch.is_none_or(|e| e < sender_epoch) {
                    // TODO(keyspace): slots we owned that still hold keys become "dirty"
                    // and their keys must be deleted; the keyspace lives in the server.
                    if self.slots[j] == Some(self.myself) {
                        lost_mine.push(j as u16);
                    }
                    if self.slots[j].is_some() && self.slots[j] == cur_master {
                        new_master = Some(sender);
                        migrated_our_slots += 1;
                    }
                    self.del_slot(j);
                    self.add_slot(sender, j);
                    changed = true;
                }
            }
        }
        if changed {
            self.mark_update_state();
            // Learned from a peer: saved, but not fsynced (Redis fsyncs here). Nothing a vote
            // relies on is lost by a crash (lastVoteEpoch and my own epochs are fsynced), and the
            // cluster re-teaches it; each fsync cost ~a reshard slot's time.
            self.mark_save(false);
        }
        let cur_master_slots = cur_master
            .and_then(|m| self.nodes.get(&m))
            .map(|m| m.num_slots)
            .unwrap_or(0);
        let sender_slots = self.nodes.get(&sender).map(|n| n.num_slots).unwrap_or(0);
        if let Some(nm) = new_master {
            if cur_master_slots == 0
                && (self.cfg.allow_replica_migration || sender_slots == migrated_our_slots)
            {
                self.log(
                    LogLevel::Warning,
                    format!(
                        "Configuration change detected. Reconfiguring myself as a replica of {nm}"
                    ),
                );
                self.set_my_master(nm);
                self.mark_save(true);
                self.mark_update_state();
                return;
            }
        }
        let me = self.me();
        if let Some(gm) = me
            .replicaof
            .and_then(|m| self.nodes.get(&m))
            .and_then(|mn| mn.replicaof)
        {
            self.log(
                LogLevel::Warning,
                format!("I'm a sub-replica! Reconfiguring myself as a replica of {gm}"),
            );
            self.set_my_master(gm);
            self.mark_save(true);
            self.mark_update_state();
        } else if !lost_mine.is_empty() && self.me().is_master() {
            // Still a master serving other slots: keys and slots must agree.
            self.effects
                .push(Effect::DeleteKeysInSlots { slots: lost_mine });
        }
    }

    // ------------------------------------------------------------------ voting

    /// `clusterSendFailoverAuthIfNeeded` (voting side of an election).
    fn maybe_vote(&mut self, requester: NodeName, link: LinkId, hdr: &Header) {
        let now = self.now_ms;
        let nt = self.cfg.node_timeout_ms;
        if !self.myself_is_master() || self.me().num_slots == 0 {
            return;
        }
        if hdr.current_epoch < self.current_epoch || self.last_vote_epoch == self.current_epoch {
            return;
        }
        let Some(req) = self.nodes.get(&requester) else {
            return;
        };
        let force_ack = hdr.mflags[0] & mflags::FORCEACK != 0;
        if !req.is_master() && req.replicaof.is_none() {
            return;
        }
        let Some(master) = req.replicaof.and_then(|m| self.nodes.get(&m)) else {
            return;
        };
        if req.is_master() {
            return;
        }
        if !master.failed() && !force_ack {
            return;
        }
        if now.saturating_sub(master.voted_time_ms) < nt * 2 {
            return;
        }
        for j in 0..SLOT_COUNT {
            if !hdr.myslots.get(j) {
                continue;
            }
            let owner_epoch = self.slots[j]
                .and_then(|o| self.nodes.get(&o))
                .map(|o| o.config_epoch)
                .unwrap_or(0);
            if owner_epoch > hdr.config_epoch {
                return;
            }
        }
        let master_name = master.name;
        self.last_vote_epoch = self.current_epoch;
        if let Some(m) = self.nodes.get_mut(&master_name) {
            m.voted_time_ms = now;
        }
        self.mark_save(true);
        let header = self.build_header();
        self.send(
            link,
            Message {
                header,
                body: Body::FailoverAuthAck,
            },
        );
        self.log(
            LogLevel::Warning,
            format!(
                "Failover auth granted to {requester} () for epoch {}",
                self.current_epoch
            ),
        );
    }

    /// Rank among the replicas of my master: how many have a larger replication offset.
    fn replica_rank(&self) -> usize {
        let me = self.me();
        let Some(master) = me.replicaof.and_then(|m| self.nodes.get(&m)) else {
            return 0;
        };
        master
            .replicas
            .iter()
            .filter(|r| **r != self.myself)
            .filter_map(|r| self.nodes.get(r))
            .filter(|r| !r.has(flags::NOFAILOVER) && r.repl_offset > me.repl_offset)
            .count()
    }

    /// `clusterLogCantFailover`: why the election cannot proceed, logged when the reason
    /// changes or every [`CANT_FAILOVER_RELOG_PERIOD_MS`]; quiet for the first NT + 5 s
    /// after an automatic failure.
    fn log_cant_failover(&mut self, reason: CantFailover) {
        let now = self.now_ms;
        if reason == self.cant_failover_reason
            && now.saturating_sub(self.cant_failover_logged_ms) < CANT_FAILOVER_RELOG_PERIOD_MS
        {
            return;
        }
        self.cant_failover_reason = reason;
        let fail_time = self
            .me()
            .replicaof
            .and_then(|m| self.nodes.get(&m))
            .map(|m| m.fail_time_ms)
            .unwrap_or(0);
        if self.mf.end_ms == 0 && now.saturating_sub(fail_time) < self.cfg.node_timeout_ms + 5000 {
            return;
        }
        let msg = match reason {
            CantFailover::DataAge => "Disconnected from master for longer than allowed. Please check the 'cluster-replica-validity-factor' configuration option.",
            CantFailover::WaitingDelay => "Waiting the delay before I can start a new failover.",
            CantFailover::Expired => "Failover attempt expired.",
            CantFailover::WaitingVotes => "Waiting for votes, but majority still not reached.",
            CantFailover::None => return,
        };
        self.cant_failover_logged_ms = now;
        self.log(
            LogLevel::Warning,
            format!("Currently unable to failover: {msg}"),
        );
    }

    /// `clusterHandleSlaveFailover`: automatic failover (master FAIL) and manual failover
    /// once `mf.can_start` (no failure needed, no validity check, no delay, FORCEACK).
    ///
    /// The "data age" of the validity check is measured from the last bus traffic
    /// received from the master.
    /// Working (not FAIL) replicas of `master`.
    fn ok_replica_count(&self, master: &ClusterNode) -> usize {
        master
            .replicas
            .iter()
            .filter(|r| self.nodes.get(r).is_some_and(|n| !n.failed()))
            .count()
    }

    /// `clusterCron`'s orphaned-master scan and `clusterHandleSlaveMigration` (replica side).
    fn consider_replica_migration(&mut self, now: u64) {
        const MIGRATION_DELAY_MS: u64 = 5000;
        let myself = self.myself;
        let my_master = self.me().replicaof;
        let (mut orphaned, mut max_ok, mut mine_ok) = (0usize, 0usize, 0usize);
        for n in self.nodes.values() {
            if n.name == myself || n.has(flags::NOADDR | flags::HANDSHAKE) {
                continue;
            }
            if n.is_master() && !n.failed() {
                let ok = self.ok_replica_count(n);
                if ok == 0 && n.num_slots > 0 && n.has(flags::MIGRATE_TO) {
                    orphaned += 1;
                }
                max_ok = max_ok.max(ok);
                if my_master == Some(n.name) {
                    mine_ok = ok;
                }
            }
        }
        // Moving makes sense only away from a master with at least two working replicas,
        // and only for replicas of the best-served masters.
        if orphaned == 0
            || max_ok < 2
            || mine_ok != max_ok
            || !self.cfg.allow_replica_migration
            || !self.state_ok
        {
            return;
        }
        let Some(mm) = my_master.and_then(|m| self.nodes.get(&m)) else {
            return;
        };
        if self.ok_replica_count(mm) <= self.cfg.migration_barrier as usize {
            return;
        }
        let mut candidate = myself;
        let mut target: Option<NodeName> = None;
        let names: Vec<NodeName> = self.nodes.keys().copied().collect();
        for name in names {
            let Some(n) = self.nodes.get(&name) else {
                continue;
            };
            let ok = if n.is_master() {
                self.ok_replica_count(n)
            } else {
                0
            };
            let is_orphaned = !n.is_replica() && !n.failed() && n.has(flags::MIGRATE_TO) && ok == 0;
            let (num_slots, replicas) = (n.num_slots, n.replicas.clone());
            if is_orphaned {
                if target.is_none() && num_slots > 0 {
                    target = Some(name);
                }
                if let Some(n) = self.nodes.get_mut(&name) {
                    if n.orphaned_time_ms == 0 {
                        n.orphaned_time_ms = now;
                    }
                }
            } else if let Some(n) = self.nodes.get_mut(&name) {
                n.orphaned_time_ms = 0;
            }
            if ok == max_ok {
                for r in replicas {
                    if r < candidate {
                        candidate = r;
                    }
                }
            }
        }
        let Some(t) = target else { return };
        let since = self
            .nodes
            .get(&t)
            .map(|n| n.orphaned_time_ms)
            .unwrap_or(now);
        if candidate == myself && now.saturating_sub(since) > MIGRATION_DELAY_MS {
            self.log(
                LogLevel::Notice,
                format!("Migrating to orphaned master {t}"),
            );
            self.set_my_master(t);
            self.mark_save(true);
            self.mark_update_state();
        }
    }

    fn handle_replica_failover(&mut self) {
        let now = self.now_ms;
        let nt = self.cfg.node_timeout_ms;
        let needed_quorum = self.size / 2 + 1;
        let manual = self.mf.end_ms != 0 && self.mf.can_start;
        let auth_timeout_ms = (nt * 2).max(2000);
        let auth_retry_ms = auth_timeout_ms * 2;
        let me = self.me();
        let master = me.replicaof.and_then(|m| self.nodes.get(&m));
        let Some(master) = master.filter(|_| !me.is_master()) else {
            self.cant_failover_reason = CantFailover::None;
            return;
        };
        // Automatic: the master is FAIL and cluster-replica-no-failover is off.
        let automatic = master.failed() && !self.cfg.replica_no_failover;
        if !(manual || automatic) || master.num_slots == 0 {
            self.cant_failover_reason = CantFailover::None;
            return;
        }
        let mut data_age_ms = now.saturating_sub(master.data_received_ms);
        if data_age_ms > nt {
            data_age_ms -= nt;
        }
        let factor = self.cfg.replica_validity_factor as u64;
        if factor != 0 && data_age_ms > REPL_PING_REPLICA_PERIOD_S * 1000 + nt * factor && !manual {
            self.log_cant_failover(CantFailover::DataAge);
            return;
        }
        if now.saturating_sub(self.election.auth_time_ms) > auth_retry_ms {
            let mut rank = self.replica_rank();
            let mut delay_ms = 500 + self.rng.gen_range(0..500) + rank as u64 * 1000;
            if self.mf.end_ms != 0 {
                // A manual failover needs no delay.
                delay_ms = 0;
                rank = 0;
                self.todo_handle_failover = true;
            }
            self.election = Election {
                auth_time_ms: now + delay_ms,
                auth_count: 0,
                auth_sent: false,
                auth_rank: rank,
                auth_epoch: self.election.auth_epoch,
            };
            self.log(
                LogLevel::Warning,
                format!("Start of election delayed for {delay_ms} milliseconds (rank #{rank}, offset {}).", self.me().repl_offset),
            );
            // Spread our offset to the other replicas of the same master.
            let my_master = self.me().replicaof;
            let targets: Vec<LinkId> = self
                .nodes
                .values()
                .filter(|n| n.is_replica() && n.replicaof == my_master && n.name != self.myself)
                .filter_map(|n| n.link)
                .filter(|l| self.links.get(l).is_some_and(|l| l.connected))
                .collect();
            for l in targets {
                self.send_ping(l, msg_type::PONG);
            }
            return;
        }
        if !self.election.auth_sent && self.mf.end_ms == 0 {
            let rank = self.replica_rank();
            if rank > self.election.auth_rank {
                let added = (rank - self.election.auth_rank) as u64 * 1000;
                self.election.auth_time_ms += added;
                self.election.auth_rank = rank;
                self.log(
                    LogLevel::Warning,
                    format!(
                        "Replica rank updated to #{rank}, added {added} milliseconds of delay."
                    ),
                );
            }
        }
        if now < self.election.auth_time_ms {
            self.log_cant_failover(CantFailover::WaitingDelay);
            return;
        }
        if now - self.election.auth_time_ms > auth_timeout_ms {
            self.log_cant_failover(CantFailover::Expired);
            return;
        }
        if !self.election.auth_sent {
            self.current_epoch += 1;
            self.election.auth_epoch = self.current_epoch;
            self.election.auth_sent = true;
            self.log(
                LogLevel::Warning,
                format!(
                    "Starting a failover election for epoch {}.",
                    self.current_epoch
                ),
            );
            self.request_failover_auth();
            self.mark_save(true);
            self.mark_update_state();
            return;
        }
        if self.election.auth_count >= needed_quorum {
            self.log(
                LogLevel::Warning,
                "Failover election won: I'm the new master.".to_string(),
            );
            let epoch = self.election.auth_epoch;
            if self.me().config_epoch < epoch {
                self.me_mut().config_epoch = epoch;
                self.log(
                    LogLevel::Warning,
                    format!("configEpoch set to {epoch} after successful failover"),
                );
            }
            self.failover_replace_my_master();
        } else {
            self.log_cant_failover(CantFailover::WaitingVotes);
        }
    }

    /// `clusterFailoverReplaceYourMaster`.
    fn failover_replace_my_master(&mut self) {
        let me = self.myself;
        let Some(old) = self.me().replicaof else {
            return;
        };
        if self.me().is_master() {
            return;
        }
        self.set_node_as_master(me);
        self.replicate_from(None);
        for s in 0..SLOT_COUNT {
            if self.slots[s] == Some(old) {
                self.del_slot(s);
                self.add_slot(me, s);
            }
        }
        self.election = Election {
            auth_epoch: self.election.auth_epoch,
            ..Election::default()
        };
        self.update_state();
        self.mark_save(true);
        self.broadcast_pong();
        self.reset_manual_failover();
    }

    // ------------------------------------------------------------------ manual failover

    /// `resetManualFailover`: forget any manual failover; a master that paused writes for
    /// one asks the server to resume them.
    fn reset_manual_failover(&mut self) {
        if self.mf.replica.is_some() {
            self.effects.push(Effect::UnpauseWrites);
        }
        self.mf = ManualFailover::default();
    }

    /// `manualFailoverCheckTimeout`.
    fn manual_failover_check_timeout(&mut self) {
        if self.mf.end_ms != 0 && self.mf.end_ms < self.now_ms {
            self.log(LogLevel::Warning, "Manual failover timed out.".to_string());
            self.reset_manual_failover();
        }
    }

    /// `clusterHandleManualFailover` (replica): the election may start once my offset
    /// reached the one my paused master announced.
    fn handle_manual_failover(&mut self) {
        if self.mf.end_ms == 0 || self.mf.can_start {
            return;
        }
        let Some(offset) = self.mf.master_offset else {
            return;
        };
        if offset == self.me().repl_offset {
            self.mf.can_start = true;
            self.todo_handle_failover = true;
            self.log(
                LogLevel::Warning,
                "All master replication stream processed, manual failover can start.".to_string(),
            );
        }
    }

    /// The connected link to `name`: my outbound one, else `fallback` if still open.
    fn link_to(&self, name: NodeName, fallback: Option<LinkId>) -> Option<LinkId> {
        let n = self.nodes.get(&name)?;
        n.link
            .filter(|l| self.links.get(l).is_some_and(|l| l.connected))
            .or_else(|| {
                fallback.filter(|l| self.links.get(l).is_some_and(|l| l.node == Some(name)))
            })
    }

    /// True when my master is unreachable for a default `CLUSTER FAILOVER` (FAIL, or no
    /// established link).
    pub fn my_master_is_down(&self) -> bool {
        match self.me().replicaof.and_then(|m| self.nodes.get(&m)) {
            Some(m) => m.failed() || self.link_to(m.name, None).is_none(),
            None => true,
        }
    }

    /// `CLUSTER FAILOVER [FORCE|TAKEOVER]` after its preconditions were checked (I am a
    /// replica with a known master; for `Default` the master is reachable).
    pub fn start_manual_failover(&mut self, mode: FailoverMode) {
        let now = self.now_ms;
        self.reset_manual_failover();
        self.mf.end_ms = now + MF_TIMEOUT_MS;
        match mode {
            FailoverMode::Takeover => {
                // No election: a new configEpoch without consensus, then claim the slots.
                self.log(
                    LogLevel::Warning,
                    "Taking over the master (user request).".to_string(),
                );
                self.bump_config_epoch_without_consensus();
                self.failover_replace_my_master();
            }
            FailoverMode::Force => {
                self.log(
                    LogLevel::Warning,
                    "Forced failover user request accepted.".to_string(),
                );
                self.mf.can_start = true;
            }
            FailoverMode::Default => {
                self.log(
                    LogLevel::Warning,
                    "Manual failover user request accepted.".to_string(),
                );
                // `clusterSendMFStart`.
                if let Some(m) = self.me().replicaof {
                    if let Some(link) = self.link_to(m, None) {
                        let header = self.build_header();
                        self.send(
                            link,
                            Message {
                                header,
                                body: Body::MfStart,
                            },
                        );
                    }
                }
            }
        }
    }

    /// The server paused writes for the manual failover `id` (see [`Effect::PauseWrites`])
    /// and no write is in flight: `offset` is final. Pings to the replica now carry PAUSED.
    pub fn on_writes_paused(&mut self, id: u64, offset: u64, now_ms: u64) {
        self.now_ms = now_ms;
        if self.mf.end_ms != 0
            && self.mf.pause_id == id
            && !self.mf.paused
            && self.myself_is_master()
        {
            if let Some(r) = self.mf.replica {
                self.me_mut().repl_offset = offset;
                self.mf.paused = true;
                if let Some(link) = self.link_to(r, self.mf.replica_link) {
                    self.send_ping(link, msg_type::PING);
                }
            }
        }
        self.before_sleep(now_ms);
    }

    /// A master paused writes for a manual failover (replication PINGs and active expiry
    /// must not move the offset meanwhile).
    pub fn manual_failover_pausing(&self) -> bool {
        self.mf.end_ms != 0 && self.mf.replica.is_some() && self.myself_is_master()
    }

    // ------------------------------------------------------------------ cluster state

    /// `clusterUpdateState`.
    pub fn update_state(&mut self) {
        let now = self.now_ms;
        if self.first_state_eval_ms == 0 {
            self.first_state_eval_ms = now.max(1);
        }
        if self.myself_is_master()
            && !self.state_ok
            && now.saturating_sub(self.first_state_eval_ms) < WRITABLE_DELAY_MS
        {
            return;
        }
        let mut new_ok = true;
        if self.cfg.require_full_coverage {
            // Every slot bound, to a node not failing. The per-node bitmaps mirror `slots`
            // (both change only in add_slot / del_slot), so this is a word-wise OR instead of
            // 16384 owner lookups — it runs after every slot change, e.g. each SETSLOT.
            let mut covered = [0u64; SLOT_COUNT / 64];
            for n in self.nodes.values().filter(|n| n.num_slots > 0) {
                if n.failed() {
                    new_ok = false;
                }
                for (c, w) in covered.iter_mut().zip(n.slots.0.chunks_exact(8)) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(w);
                    *c |= u64::from_le_bytes(b);
                }
            }
            if covered.iter().any(|&w| w != u64::MAX) {
                new_ok = false;
            }
            debug_assert_eq!(
                new_ok,
                (0..SLOT_COUNT).all(|s| self.slots[s]
                    .and_then(|o| self.nodes.get(&o))
                    .is_some_and(|n| !n.failed())),
                "node slot bitmaps out of step with the slot table"
            );
        }
        let mut reachable = 0;
        let mut size = 0;
        for n in self.nodes.values() {
            if n.is_master() && n.num_slots > 0 {
                size += 1;
                if n.flags & (flags::FAIL | flags::PFAIL) == 0 {
                    reachable += 1;
                }
            }
        }
        self.size = size;
        if reachable < size / 2 + 1 {
            new_ok = false;
            self.among_minority_time_ms = now;
        }
        if new_ok != self.state_ok {
            let rejoin_delay_ms = self.cfg.node_timeout_ms.clamp(500, 5000);
            if new_ok
                && self.myself_is_master()
                && now.saturating_sub(self.among_minority_time_ms) < rejoin_delay_ms
            {
                return;
            }
            self.log(
                LogLevel::Warning,
                format!(
                    "Cluster state changed: {}",
                    if new_ok { "ok" } else { "fail" }
                ),
            );
            self.state_ok = new_ok;
            self.bump_generation();
        }
    }

    // ------------------------------------------------------------------ cron

    /// The 100 ms cron (`clusterCron`).
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        let now = now_ms;
        let nt = self.cfg.node_timeout_ms;
        self.iteration += 1;
        let handshake_timeout_ms = nt.max(1000);
        self.stats_pfail_nodes = 0;

        // A replica whose replication is not running yet (loaded from nodes.conf) starts it
        // once its master's address is known.
        if self.me().is_replica() {
            let target = self
                .me()
                .replicaof
                .and_then(|m| self.nodes.get(&m))
                .filter(|m| !m.has(flags::NOADDR) && !m.ip.is_empty())
                .map(|m| (m.ip.clone(), m.port));
            if target.is_some() && self.announced_master != target {
                self.replicate_from(target);
            }
        }

        // Reconnect / handshake expiry.
        let names: Vec<NodeName> = self.nodes.keys().copied().collect();
        for name in &names {
            let Some(n) = self.nodes.get(name) else {
                continue;
            };
            if n.has(flags::MYSELF | flags::NOADDR) {
                continue;
            }
            if n.timed_out() {
                self.stats_pfail_nodes += 1;
            }
            if n.in_handshake() && now.saturating_sub(n.ctime_ms) > handshake_timeout_ms {
                self.del_node(*name);
                continue;
            }
            if n.link.is_none() {
                let (ip, cport) = (n.ip.clone(), n.cport);
                let id = self.alloc_link(Some(*name), true, ip.clone(), String::new());
                if let Some(n) = self.nodes.get_mut(name) {
                    n.link = Some(id);
                }
                self.effects.push(Effect::Connect {
                    link: id,
                    ip,
                    port: cport,
                });
            }
        }

        // Every 10 ticks ping the node with the oldest pong among 5 random ones.
        if self.iteration.is_multiple_of(10) && !names.is_empty() {
            let mut min_pong = None::<(u64, NodeName)>;
            for _ in 0..5 {
                let pick = names[self.rng.gen_range(0..names.len())];
                let Some(n) = self.nodes.get(&pick) else {
                    continue;
                };
                if n.link.is_none()
                    || n.ping_sent_ms != 0
                    || n.has(flags::MYSELF | flags::HANDSHAKE)
                {
                    continue;
                }
                if !n
                    .link
                    .and_then(|l| self.links.get(&l))
                    .is_some_and(|l| l.connected)
                {
                    continue;
                }
                if min_pong.is_none_or(|(p, _)| n.pong_received_ms < p) {
                    min_pong = Some((n.pong_received_ms, pick));
                }
            }
            if let Some((_, pick)) = min_pong {
                if let Some(l) = self.nodes.get(&pick).and_then(|n| n.link) {
                    self.send_ping(l, msg_type::PING);
                }
            }
        }

        let mut update_state = false;
        for name in &names {
            let Some(n) = self.nodes.get(name) else {
                continue;
            };
            if n.has(flags::MYSELF | flags::NOADDR | flags::HANDSHAKE) {
                continue;
            }
            // A master in a manual failover pings the replica continuously (PAUSED flag).
            if self.mf.end_ms != 0
                && self.mf.paused
                && self.mf.replica == Some(*name)
                && self.myself_is_master()
            {
                if let Some(l) = self.link_to(*name, None) {
                    self.send_ping(l, msg_type::PING);
                    continue;
                }
            }
            let link = n.link.and_then(|l| self.links.get(&l)).cloned();
            let ping_delay = now.saturating_sub(n.ping_sent_ms);
            let data_delay = now.saturating_sub(n.data_received_ms);
            if let Some(l) = &link {
                if now.saturating_sub(l.ctime_ms) > nt
                    && n.ping_sent_ms != 0
                    && ping_delay > nt / 2
                    && data_delay > nt / 2
                {
                    self.free_link(l.id);
                }
            }
            let Some(n) = self.nodes.get(name) else {
                continue;
            };
            if let Some(l) = n
                .link
                .and_then(|l| self.links.get(&l))
                .filter(|l| l.connected)
            {
                if n.ping_sent_ms == 0 && now.saturating_sub(n.pong_received_ms) > nt / 2 {
                    let id = l.id;
                    self.send_ping(id, msg_type::PING);
                    continue;
                }
            }
            let Some(n) = self.nodes.get(name) else {
                continue;
            };
            if n.ping_sent_ms == 0 {
                continue;
            }
            let node_delay = now
                .saturating_sub(n.ping_sent_ms)
                .min(now.saturating_sub(n.data_received_ms));
            if node_delay > nt && n.flags & (flags::PFAIL | flags::FAIL) == 0 {
                self.log(LogLevel::Debug, format!("*** NODE {name} possibly failing"));
                if let Some(n) = self.nodes.get_mut(name) {
                    n.flags |= flags::PFAIL;
                }
                self.bump_generation();
                update_state = true;
            }
        }
        self.manual_failover_check_timeout();
        if self.me().is_replica() {
            self.handle_manual_failover();
            self.handle_replica_failover();
            self.consider_replica_migration(now);
        }
        if update_state || !self.state_ok {
            self.update_state();
        }
        self.before_sleep(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(port: u16, seed: u64) -> ClusterState {
        let mut cfg = StateConfig::for_port(port);
        cfg.node_timeout_ms = 1000;
        ClusterState::new(cfg, seed, 1_000_000)
    }

    #[test]
    fn fresh_node_is_master_with_random_hex_name() {
        let st = state(7000, 1);
        let me = st.me();
        assert!(me.is_master() && me.has(flags::MYSELF));
        assert!(me
            .name
            .0
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(me.cport, 17000);
    }

    #[test]
    fn header_reflects_replica_master() {
        let mut st = state(7000, 2);
        let m = NodeName([b'a'; 40]);
        let mut mn = ClusterNode::new(m, flags::MASTER, 0);
        mn.config_epoch = 7;
        st.add_node(mn);
        st.add_slot(m, 42);
        st.set_my_master(m);
        let h = st.build_header();
        assert_eq!(h.slaveof, m);
        assert_eq!(h.config_epoch, 7);
        assert!(h.myslots.get(42));
        assert_eq!(h.flags & flags::SLAVE, flags::SLAVE);
    }

    #[test]
    fn bump_epoch_rules() {
        let mut st = state(7000, 3);
        assert!(st.bump_config_epoch_without_consensus());
        assert_eq!(st.me().config_epoch, 1);
        assert!(
            !st.bump_config_epoch_without_consensus(),
            "already the unique max"
        );
        let other = NodeName([b'b'; 40]);
        let mut on = ClusterNode::new(other, flags::MASTER, 0);
        on.config_epoch = 5;
        st.add_node(on);
        assert!(st.bump_config_epoch_without_consensus());
        assert_eq!(st.me().config_epoch, 2, "currentEpoch+1, not max+1");
    }

    #[test]
    fn failure_reports_expire() {
        let mut st = state(7000, 4);
        let a = NodeName([b'a'; 40]);
        let b = NodeName([b'b'; 40]);
        st.add_node(ClusterNode::new(a, flags::MASTER, 0));
        st.add_node(ClusterNode::new(b, flags::MASTER, 0));
        st.now_ms = 10_000;
        assert!(st.add_failure_report(a, b));
        assert!(!st.add_failure_report(a, b), "refresh, not a new report");
        assert_eq!(st.failure_reports_count(a), 1);
        st.now_ms = 10_000 + 2 * 1000 + 1;
        assert_eq!(st.failure_reports_count(a), 0);
    }

    #[test]
    fn update_state_requires_coverage_and_writable_delay() {
        let mut st = state(7000, 5);
        let me = st.myself;
        for s in 0..SLOT_COUNT {
            st.add_slot(me, s);
        }
        st.now_ms = 1_000_000;
        st.update_state();
        assert!(!st.state_ok, "writable delay at start");
        st.now_ms += WRITABLE_DELAY_MS;
        st.update_state();
        assert!(st.state_ok);
        st.del_slot(5);
        st.update_state();
        assert!(!st.state_ok);
        st.cfg.require_full_coverage = false;
        st.now_ms += 10_000;
        st.update_state();
        assert!(st.state_ok);
    }

    /// A known node with a connected outbound link; returns the link.
    fn linked_node(st: &mut ClusterState, name: NodeName, node_flags: u16) -> LinkId {
        st.add_node(ClusterNode::new(name, node_flags, 0));
        let link = st.alloc_link(Some(name), true, "127.0.0.1".into(), "127.0.0.1".into());
        if let Some(l) = st.links.get_mut(&link) {
            l.connected = true;
        }
        if let Some(n) = st.nodes.get_mut(&name) {
            n.link = Some(link);
        }
        link
    }

    fn make_replica(st: &mut ClusterState, replica: NodeName, master: NodeName) {
        if let Some(r) = st.nodes.get_mut(&replica) {
            r.flags = (r.flags & !flags::MASTER) | flags::SLAVE;
            r.replicaof = Some(master);
        }
        if let Some(m) = st.nodes.get_mut(&master) {
            m.replicas.push(replica);
        }
    }

    /// (link, body) of every Send effect.
    fn sends(st: &mut ClusterState) -> Vec<(LinkId, Body)> {
        st.take_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Send { link, msg } => Some((link, msg.body)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn publish_goes_to_every_linked_node() {
        let mut st = state(7000, 10);
        let a = NodeName([b'a'; 40]);
        let b = NodeName([b'b'; 40]);
        let h = NodeName([b'c'; 40]);
        let la = linked_node(&mut st, a, flags::MASTER);
        let lb = linked_node(&mut st, b, flags::MASTER);
        linked_node(&mut st, h, flags::MASTER | flags::HANDSHAKE);
        // A node without a link gets nothing.
        st.add_node(ClusterNode::new(NodeName([b'd'; 40]), flags::MASTER, 0));
        st.take_effects();
        st.propagate_publish(false, b"ch", b"msg", 1_000_100);
        let mut got = sends(&mut st);
        got.sort_by_key(|(l, _)| *l);
        let body = Body::Publish {
            channel: b"ch".to_vec(),
            message: b"msg".to_vec(),
        };
        assert_eq!(got, vec![(la, body.clone()), (lb, body)]);
        assert_eq!(st.stats_sent[msg_type::PUBLISH as usize], 2);
    }

    #[test]
    fn publish_shard_goes_to_my_shard_only() {
        // Me: master with replicas r1, r2; another master o with replica or.
        let mut st = state(7000, 11);
        let me = st.myself;
        let r1 = NodeName([b'1'; 40]);
        let r2 = NodeName([b'2'; 40]);
        let o = NodeName([b'o'; 40]);
        let or = NodeName([b'p'; 40]);
        let l1 = linked_node(&mut st, r1, flags::MASTER);
        let l2 = linked_node(&mut st, r2, flags::MASTER);
        linked_node(&mut st, o, flags::MASTER);
        linked_node(&mut st, or, flags::MASTER);
        make_replica(&mut st, r1, me);
        make_replica(&mut st, r2, me);
        make_replica(&mut st, or, o);
        st.take_effects();
        st.propagate_publish(true, b"ch", b"m", 1_000_100);
        let mut got: Vec<LinkId> = sends(&mut st).into_iter().map(|(l, _)| l).collect();
        got.sort_unstable();
        assert_eq!(got, vec![l1, l2]);

        // As a replica of o: o and o's other replica, not myself, not my old shard.
        let mut st = state(7001, 12);
        let me = st.myself;
        let lo = linked_node(&mut st, o, flags::MASTER);
        let lor = linked_node(&mut st, or, flags::MASTER);
        linked_node(&mut st, r1, flags::MASTER);
        make_replica(&mut st, or, o);
        st.set_my_master(o);
        assert!(st.nodes[&o].replicas.contains(&me));
        st.take_effects();
        st.propagate_publish(true, b"ch", b"m", 1_000_100);
        let got = sends(&mut st);
        let mut links: Vec<LinkId> = got.iter().map(|(l, _)| *l).collect();
        links.sort_unstable();
        assert_eq!(links, vec![lo, lor]);
        assert!(got.iter().all(|(_, b)| *b
            == Body::PublishShard {
                channel: b"ch".to_vec(),
                message: b"m".to_vec()
            }));
    }

    #[test]
    fn publish_too_large_for_a_frame_is_not_sent() {
        let mut st = state(7000, 13);
        linked_node(&mut st, NodeName([b'a'; 40]), flags::MASTER);
        st.take_effects();
        let big = vec![0u8; wire::MAX_FRAME_LEN - wire::HEADER_LEN - 8 + 1];
        st.propagate_publish(false, b"", &big, 1_000_100);
        assert!(sends(&mut st).is_empty());
    }

    #[test]
    fn slots_leaving_my_shard_drop_shard_channels() {
        let mut st = state(7000, 14);
        let me = st.myself;
        let o = NodeName([b'o'; 40]);
        let x = NodeName([b'x'; 40]);
        st.add_node(ClusterNode::new(o, flags::MASTER, 0));
        st.add_node(ClusterNode::new(x, flags::MASTER, 0));
        st.add_slot(me, 10);
        st.add_slot(me, 11);
        st.add_slot(o, 20);
        st.add_slot(x, 30);
        st.take_effects();
        // Another master's slot: not my shard.
        st.del_slot(30);
        st.before_sleep(1_000_100);
        assert!(!st
            .take_effects()
            .iter()
            .any(|e| matches!(e, Effect::DropShardChannels { .. })));
        // My slots: one effect, sorted, once per before-sleep.
        st.del_slot(11);
        st.del_slot(10);
        st.before_sleep(1_000_200);
        let drops: Vec<Effect> = st
            .take_effects()
            .into_iter()
            .filter(|e| matches!(e, Effect::DropShardChannels { .. }))
            .collect();
        assert_eq!(
            drops,
            vec![Effect::DropShardChannels {
                slots: vec![10, 11]
            }]
        );
        // As a replica of o, o's slot leaving o is my shard's loss.
        st.set_my_master(o);
        st.take_effects();
        st.del_slot(20);
        st.before_sleep(1_000_300);
        assert!(st
            .take_effects()
            .contains(&Effect::DropShardChannels { slots: vec![20] }));
    }
}
