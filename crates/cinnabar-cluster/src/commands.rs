//! The CLUSTER command family of Redis 7.0 over [`ClusterState`], returning a structured
//! [`Reply`] with Redis's exact replies and error strings.
//!
//! Error strings carry their prefix (`"ERR ..."`), the server renders `-<text>\r\n`.
//! Commands that need the keyspace (COUNTKEYSINSLOT, GETKEYSINSLOT, and the emptiness
//! checks of FLUSHSLOTS / RESET / REPLICATE) ask a [`Keyspace`]; with [`NoKeyspace`]
//! COUNTKEYSINSLOT / GETKEYSINSLOT return [`Reply::NeedsKeyspace`] after validating
//! their arguments, and the emptiness checks assume an empty dataset.

use crate::nodes_conf;
use crate::slot::{key_hash_slot, SLOT_COUNT};
use crate::state::{random_name, ClusterNode, ClusterState, Effect, FailoverMode, LogLevel};
use crate::wire::{flags, NodeName, SlotBitmap};

/// A structured reply; the server renders it as RESP2 or RESP3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ok,
    Simple(String),
    /// Full error text including its prefix, e.g. `"ERR Unknown node x"`.
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// RESP3 verbatim string of type `txt` (bulk string in RESP2).
    Verbatim(String),
    Null,
    Array(Vec<Reply>),
    /// RESP3 map (flat array in RESP2).
    Map(Vec<(Reply, Reply)>),
    /// The server must answer from its keyspace.
    NeedsKeyspace(KeyspaceQuery),
}

/// Queries only the keyspace owner can answer (arguments already validated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyspaceQuery {
    /// Reply `Int(count of keys in slot)`.
    CountKeysInSlot(u16),
    /// Reply `Array` of up to `count` key names (bulk strings) in `slot`.
    GetKeysInSlot { slot: u16, count: u64 },
}

/// Access to the local dataset (DB 0).
pub trait Keyspace {
    /// Number of keys in DB 0, or `None` if unknown.
    fn dbsize(&self) -> Option<u64>;
    fn count_keys_in_slot(&self, slot: u16) -> Option<u64>;
    fn keys_in_slot(&self, slot: u16, count: u64) -> Option<Vec<Vec<u8>>>;
}

/// A keyspace that knows nothing (see module docs).
pub struct NoKeyspace;

impl Keyspace for NoKeyspace {
    fn dbsize(&self) -> Option<u64> {
        None
    }
    fn count_keys_in_slot(&self, _slot: u16) -> Option<u64> {
        None
    }
    fn keys_in_slot(&self, _slot: u16, _count: u64) -> Option<Vec<Vec<u8>>> {
        None
    }
}

fn err(text: impl Into<String>) -> Reply {
    Reply::Error(format!("ERR {}", text.into()))
}

fn bulk(s: impl Into<String>) -> Reply {
    Reply::Bulk(s.into().into_bytes())
}

fn arity_err(sub: &str) -> Reply {
    err(format!(
        "wrong number of arguments for 'cluster|{sub}' command"
    ))
}

fn not_integer() -> Reply {
    err("value is not an integer or out of range")
}

/// Redis's strict `string2ll` parse (shared with the server).
use cinnabar_protocol::parser::parse_i64;

fn get_slot(arg: &[u8]) -> Result<usize, Reply> {
    match parse_i64(arg) {
        Some(s) if (0..SLOT_COUNT as i64).contains(&s) => Ok(s as usize),
        _ => Err(err("Invalid or out of range slot")),
    }
}

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// Arity from Redis's command table (negative = at least).
fn arity(sub: &str) -> Option<i32> {
    Some(match sub {
        "addslots" | "delslots" => -3,
        "addslotsrange" | "delslotsrange" => -4,
        "bumpepoch" | "flushslots" | "help" | "info" | "links" | "myid" | "nodes"
        | "saveconfig" | "shards" | "slots" => 2,
        "count-failure-reports"
        | "countkeysinslot"
        | "forget"
        | "keyslot"
        | "replicas"
        | "replicate"
        | "set-config-epoch"
        | "slaves" => 3,
        "failover" | "reset" => -2,
        "getkeysinslot" => 4,
        "meet" => -4,
        "setslot" => -4,
        _ => return None,
    })
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ADDSLOTS <slot> [<slot> ...]",
    "    Assign slots to current node.",
    "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Assign slots which are between <start-slot> and <end-slot> to current node.",
    "BUMPEPOCH",
    "    Advance the cluster config epoch.",
    "COUNT-FAILURE-REPORTS <node-id>",
    "    Return number of failure reports for <node-id>.",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "DELSLOTS <slot> [<slot> ...]",
    "    Delete slots information from current node.",
    "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
    "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
    "FAILOVER [FORCE|TAKEOVER]",
    "    Promote current replica node to being a master.",
    "FORGET <node-id>",
    "    Remove a node from the cluster.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "FLUSHSLOTS",
    "    Delete current node own slots information.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MEET <ip> <port> [<bus-port>]",
    "    Connect nodes into a working cluster.",
    "MYID",
    "    Return the node id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REPLICATE <node-id>",
    "    Configure current node as replica to <node-id>.",
    "RESET [HARD|SOFT]",
    "    Reset current node (default: soft).",
    "SET-CONFIG-EPOCH <epoch>",
    "    Set config epoch of current node.",
    "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
    "    Set slot state.",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SAVECONFIG",
    "    Force saving cluster configuration on disk.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "LINKS",
    "    Return information about all network links between this node and its peers.",
    "    Output format is an array where each array element is a map containing attributes of a link",
    "HELP",
    "    Prints this help.",
];

/// Result of saving the config synchronously (SAVECONFIG).
pub type SaveFn<'a> = &'a mut dyn FnMut(&str) -> std::io::Result<()>;

/// Execute `CLUSTER <args...>` (`args` excludes the word CLUSTER). Deferred effects
/// (config saves, links) are left in `st` for the caller to drain after
/// [`ClusterState::before_sleep`]; SAVECONFIG uses `save_now` synchronously.
pub fn execute(
    st: &mut ClusterState,
    args: &[&[u8]],
    ks: &dyn Keyspace,
    save_now: SaveFn<'_>,
) -> Reply {
    let Some(first) = args.first() else {
        return err("wrong number of arguments for 'cluster' command");
    };
    let sub = text(first).to_ascii_lowercase();
    let argc = args.len() as i32 + 1; // Redis counts the word CLUSTER
    let Some(a) = arity(&sub) else {
        return err(format!(
            "unknown subcommand '{}'. Try CLUSTER HELP.",
            truncate(&text(first), 128)
        ));
    };
    if (a > 0 && argc != a) || (a < 0 && argc < -a) {
        return arity_err(&sub);
    }
    let now = st.now_ms();
    match sub.as_str() {
        "help" => Reply::Array(
            HELP.iter()
                .map(|l| Reply::Simple((*l).to_string()))
                .collect(),
        ),
        "myid" => bulk(st.myself.to_string()),
        "nodes" => Reply::Verbatim(nodes_conf::nodes_description(st, 0)),
        "info" => Reply::Verbatim(info(st)),
        "slots" => slots_reply(st),
        "shards" => shards_reply(st),
        "links" => links_reply(st),
        "keyslot" => Reply::Int(key_hash_slot(args[1]) as i64),
        "countkeysinslot" => {
            let Some(slot) = parse_i64(args[1]) else {
                return not_integer();
            };
            if !(0..SLOT_COUNT as i64).contains(&slot) {
                return err("Invalid slot");
            }
            match ks.count_keys_in_slot(slot as u16) {
                Some(n) => Reply::Int(n as i64),
                None => Reply::NeedsKeyspace(KeyspaceQuery::CountKeysInSlot(slot as u16)),
            }
        }
        "getkeysinslot" => {
            let Some(slot) = parse_i64(args[1]) else {
                return not_integer();
            };
            let Some(count) = parse_i64(args[2]) else {
                return not_integer();
            };
            if count < 0 || !(0..SLOT_COUNT as i64).contains(&slot) {
                return err("Invalid slot or number of keys");
            }
            match ks.keys_in_slot(slot as u16, count as u64) {
                Some(keys) => Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
                None => Reply::NeedsKeyspace(KeyspaceQuery::GetKeysInSlot {
                    slot: slot as u16,
                    count: count as u64,
                }),
            }
        }
        "addslots" | "delslots" => {
            let del = sub == "delslots";
            let mut parsed = Vec::with_capacity(args.len() - 1);
            for a in &args[1..] {
                match get_slot(a) {
                    Ok(s) => parsed.push(s),
                    Err(e) => return e,
                }
            }
            let mut seen = vec![0u8; SLOT_COUNT];
            for &s in &parsed {
                if let Err(e) = check_slot_assignment(st, &mut seen, del, s, s) {
                    return e;
                }
            }
            update_slots(st, &seen, del);
            Reply::Ok
        }
        "addslotsrange" | "delslotsrange" => {
            let del = sub == "delslotsrange";
            if argc % 2 == 1 {
                return arity_err(&sub);
            }
            let mut ranges = Vec::new();
            for pair in args[1..].chunks(2) {
                let a = match get_slot(pair[0]) {
                    Ok(s) => s,
                    Err(e) => return e,
                };
                let b = match get_slot(pair[1]) {
                    Ok(s) => s,
                    Err(e) => return e,
                };
                if a > b {
                    return err(format!(
                        "start slot number {a} is greater than end slot number {b}"
                    ));
                }
                ranges.push((a, b));
            }
            let mut seen = vec![0u8; SLOT_COUNT];
            for &(a, b) in &ranges {
                if let Err(e) = check_slot_assignment(st, &mut seen, del, a, b) {
                    return e;
                }
            }
            update_slots(st, &seen, del);
            Reply::Ok
        }
        "flushslots" => {
            if ks.dbsize().unwrap_or(0) != 0 {
                return err("DB must be empty to perform CLUSTER FLUSHSLOTS.");
            }
            let me = st.myself;
            st.del_node_slots(me);
            st.mark_update_state();
            st.mark_save(false);
            Reply::Ok
        }
        "meet" => meet(st, args),
        "forget" => {
            let Some(n) = st.lookup(args[1]).map(|n| n.name) else {
                return err(format!("Unknown node {}", text(args[1])));
            };
            if n == st.myself {
                return err("I tried hard but I can't forget myself...");
            }
            if st.me().is_replica() && st.me().replicaof == Some(n) {
                return err("Can't forget my master!");
            }
            st.blacklist_add(n);
            st.del_node(n);
            st.mark_update_state();
            st.mark_save(false);
            Reply::Ok
        }
        "replicate" => {
            let Some(n) = st.lookup(args[1]).cloned() else {
                return err(format!("Unknown node {}", text(args[1])));
            };
            if n.name == st.myself {
                return err("Can't replicate myself");
            }
            if n.is_replica() {
                return err("I can only replicate a master, not a replica.");
            }
            if st.me().is_master() && (st.me().num_slots != 0 || ks.dbsize().unwrap_or(0) != 0) {
                return err("To set a master the node must be empty and without assigned slots.");
            }
            st.set_my_master(n.name);
            st.mark_update_state();
            st.mark_save(false);
            Reply::Ok
        }
        "replicas" | "slaves" => {
            let Some(n) = st.lookup(args[1]).cloned() else {
                return err(format!("Unknown node {}", text(args[1])));
            };
            if n.is_replica() {
                return err("The specified node is not a master");
            }
            let lines = n
                .replicas
                .iter()
                .filter_map(|r| st.nodes.get(r))
                .map(|r| bulk(nodes_conf::node_description(st, r)))
                .collect();
            Reply::Array(lines)
        }
        "count-failure-reports" => {
            let Some(n) = st.lookup(args[1]).map(|n| n.name) else {
                return err(format!("Unknown node {}", text(args[1])));
            };
            Reply::Int(st.failure_reports_count(n) as i64)
        }
        "set-config-epoch" => {
            let Some(epoch) = parse_i64(args[1]) else {
                return not_integer();
            };
            if epoch < 0 {
                return err(format!("Invalid config epoch specified: {epoch}"));
            }
            if st.nodes.len() > 1 {
                return err("The user can assign a config epoch only when the node does not know any other node.");
            }
            if st.me().config_epoch != 0 {
                return err("Node config epoch is already non-zero");
            }
            let epoch = epoch as u64;
            let me = st.myself;
            if let Some(m) = st.nodes.get_mut(&me) {
                m.config_epoch = epoch;
            }
            st.log(
                LogLevel::Warning,
                format!("configEpoch set to {epoch} via CLUSTER SET-CONFIG-EPOCH"),
            );
            if st.current_epoch < epoch {
                st.current_epoch = epoch;
            }
            st.bump_generation();
            st.mark_update_state();
            st.mark_save(true);
            Reply::Ok
        }
        "bumpepoch" => {
            let bumped = st.bump_config_epoch_without_consensus();
            Reply::Simple(format!(
                "{} {}",
                if bumped { "BUMPED" } else { "STILL" },
                st.me().config_epoch
            ))
        }
        "saveconfig" => {
            let content = nodes_conf::serialize(st);
            match save_now(&content) {
                Ok(()) => Reply::Ok,
                Err(e) => err(format!(
                    "error saving the cluster node config: {}",
                    strerror(&e)
                )),
            }
        }
        "reset" => {
            if args.len() > 2 {
                return err("unknown subcommand or wrong number of arguments for 'reset'. Try CLUSTER HELP.");
            }
            let hard = match args.get(1).map(|a| text(a).to_ascii_lowercase()) {
                None => false,
                Some(s) if s == "soft" => false,
                Some(s) if s == "hard" => true,
                Some(_) => return err("syntax error"),
            };
            if st.me().is_master() && ks.dbsize().unwrap_or(0) != 0 {
                return err("CLUSTER RESET can't be called with master nodes containing keys");
            }
            reset(st, hard);
            Reply::Ok
        }
        "failover" => {
            if args.len() > 2 {
                return err(format!(
                    "unknown subcommand or wrong number of arguments for '{}'. Try CLUSTER HELP.",
                    truncate(&text(first), 128)
                ));
            }
            let mode = match args.get(1).map(|a| text(a).to_ascii_lowercase()) {
                None => FailoverMode::Default,
                Some(o) if o == "force" => FailoverMode::Force,
                Some(o) if o == "takeover" => FailoverMode::Takeover,
                Some(_) => return err("syntax error"),
            };
            if st.me().is_master() {
                return err("You should send CLUSTER FAILOVER to a replica");
            }
            if st.me().replicaof.is_none() {
                return err("I'm a replica but my master is unknown to me");
            }
            if mode == FailoverMode::Default && st.my_master_is_down() {
                return err("Master is down or failed, please use CLUSTER FAILOVER FORCE");
            }
            st.start_manual_failover(mode);
            Reply::Ok
        }
        "setslot" => setslot(st, args, ks),
        _ => {
            let _ = now;
            err(format!(
                "unknown subcommand '{}'. Try CLUSTER HELP.",
                truncate(&text(first), 128)
            ))
        }
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn strerror(e: &std::io::Error) -> String {
    // std formats as "<strerror> (os error N)"; Redis prints just strerror.
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// `checkSlotAssignmentsOrReply`.
fn check_slot_assignment(
    st: &ClusterState,
    seen: &mut [u8],
    del: bool,
    a: usize,
    b: usize,
) -> Result<(), Reply> {
    for s in a..=b {
        if del && st.slots[s].is_none() {
            return Err(err(format!("Slot {s} is already unassigned")));
        } else if !del && st.slots[s].is_some() {
            return Err(err(format!("Slot {s} is already busy")));
        }
        seen[s] += 1;
        if seen[s] == 2 {
            return Err(err(format!("Slot {s} specified multiple times")));
        }
    }
    Ok(())
}

/// `clusterUpdateSlots`.
fn update_slots(st: &mut ClusterState, seen: &[u8], del: bool) {
    let me = st.myself;
    for (s, &mark) in seen.iter().enumerate() {
        if mark == 0 {
            continue;
        }
        if del {
            st.del_slot(s);
        } else {
            st.open.importing_from.remove(&(s as u16));
            st.add_slot(me, s);
        }
    }
    st.mark_update_state();
    st.mark_save(false);
}

/// Normalise an IP like `inet_pton` + `inet_ntop`.
fn normalize_ip(ip: &str) -> Option<String> {
    if let Ok(v4) = ip.parse::<std::net::Ipv4Addr>() {
        return Some(v4.to_string());
    }
    if let Ok(v6) = ip.parse::<std::net::Ipv6Addr>() {
        return Some(v6.to_string());
    }
    None
}

fn meet(st: &mut ClusterState, args: &[&[u8]]) -> Reply {
    if args.len() != 3 && args.len() != 4 {
        return err(
            "unknown subcommand or wrong number of arguments for 'meet'. Try CLUSTER HELP.",
        );
    }
    let Some(port) = parse_i64(args[2]) else {
        return err(format!(
            "Invalid TCP base port specified: {}",
            text(args[2])
        ));
    };
    let cport = match args.get(3) {
        Some(a) => match parse_i64(a) {
            Some(c) => c,
            None => return err(format!("Invalid TCP bus port specified: {}", text(a))),
        },
        None => port + 10000,
    };
    let invalid = || {
        err(format!(
            "Invalid node address specified: {}:{}",
            text(args[1]),
            text(args[2])
        ))
    };
    let Some(ip) = normalize_ip(&text(args[1])) else {
        return invalid();
    };
    if !(1..=65535).contains(&port) || !(1..=65535).contains(&cport) {
        return invalid();
    }
    start_handshake(st, &ip, port as u16, cport as u16);
    Reply::Ok
}

/// `clusterStartHandshake`: add a HANDSHAKE|MEET node unless one is already pending.
pub fn start_handshake(st: &mut ClusterState, ip: &str, port: u16, cport: u16) -> bool {
    let pending = st.nodes.values().any(|n| {
        n.in_handshake() && n.ip.eq_ignore_ascii_case(ip) && n.port == port && n.cport == cport
    });
    if pending {
        return false;
    }
    let name = random_name(st.rng());
    let mut n = ClusterNode::new(name, flags::HANDSHAKE | flags::MEET, st.now_ms());
    n.ip = ip.to_string();
    n.port = port;
    n.cport = cport;
    st.add_node(n);
    true
}

/// `clusterReset`.
pub fn reset(st: &mut ClusterState, hard: bool) {
    let me = st.myself;
    if st.me().is_replica() {
        // clusterSetNodeAsMaster(myself) + replicationUnsetMaster + emptyData
        if let Some(m) = st.me().replicaof {
            if let Some(mn) = st.nodes.get_mut(&m) {
                mn.replicas.retain(|r| *r != me);
            }
        }
        if let Some(n) = st.nodes.get_mut(&me) {
            n.flags &= !flags::SLAVE;
            n.flags |= flags::MASTER;
            n.replicaof = None;
        }
        st.replicate_from(None);
        st.push_effect(Effect::FlushData);
    }
    st.open = Default::default();
    for s in 0..SLOT_COUNT {
        st.del_slot(s);
    }
    let others: Vec<NodeName> = st.nodes.keys().copied().filter(|n| *n != me).collect();
    for n in others {
        st.del_node(n);
    }
    if hard {
        st.current_epoch = 0;
        st.last_vote_epoch = 0;
        if let Some(n) = st.nodes.get_mut(&me) {
            n.config_epoch = 0;
        }
        st.log(
            LogLevel::Warning,
            "configEpoch set to 0 via CLUSTER RESET HARD".to_string(),
        );
        let new = random_name(st.rng());
        st.rename_myself(new);
        st.log(LogLevel::Notice, format!("Node hard reset, now I'm {new}"));
    }
    st.bump_generation();
    st.mark_update_state();
    st.mark_save(true);
}

/// `verifyClusterConfigWithData`, run once after the dataset is loaded at start-up: a master
/// holding keys of a slot it neither owns nor imports takes the slot when it is unassigned,
/// else marks it importing from its owner (so `redis-cli --cluster fix` sees an open slot).
/// Replicas skip the check: their data follows the replication stream.
pub fn verify_config_with_data(st: &mut ClusterState, ks: &dyn Keyspace) {
    if st.me().is_replica() {
        return;
    }
    let me = st.myself;
    let mut changed = false;
    for slot in 0..SLOT_COUNT {
        if ks.count_keys_in_slot(slot as u16).unwrap_or(0) == 0 {
            continue;
        }
        let owner = st.slots[slot];
        if owner == Some(me) || st.open.importing_from.contains_key(&(slot as u16)) {
            continue;
        }
        changed = true;
        match owner {
            None => {
                st.log(
                    LogLevel::Warning,
                    format!(
                        "I have keys for unassigned slot {slot}. Taking responsibility for it."
                    ),
                );
                st.add_slot(me, slot);
            }
            Some(o) => {
                st.log(
                    LogLevel::Warning,
                    format!("I have keys for slot {slot}, but the slot is assigned to another node. Setting it to importing state."),
                );
                st.open.importing_from.insert(slot as u16, o);
            }
        }
    }
    if changed {
        st.bump_generation();
        st.mark_update_state();
        st.mark_save(true);
    }
}

fn setslot(st: &mut ClusterState, args: &[&[u8]], ks: &dyn Keyspace) -> Reply {
    if st.me().is_replica() {
        return err("Please use SETSLOT only with masters.");
    }
    let slot = match get_slot(args[1]) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let action = text(args[2]).to_ascii_lowercase();
    let me = st.myself;
    let lookup_arg = |st: &ClusterState| {
        args.get(3)
            .and_then(|a| st.lookup(a))
            .map(|n| (n.name, n.is_replica()))
    };
    match (action.as_str(), args.len()) {
        ("migrating", 4) => {
            if st.slots[slot] != Some(me) {
                return err(format!("I'm not the owner of hash slot {slot}"));
            }
            let Some((n, is_replica)) = lookup_arg(st) else {
                return err(format!("I don't know about node {}", text(args[3])));
            };
            if is_replica {
                return err("Target node is not a master");
            }
            st.open.migrating_to.insert(slot as u16, n);
        }
        ("importing", 4) => {
            if st.slots[slot] == Some(me) {
                return err(format!("I'm already the owner of hash slot {slot}"));
            }
            let Some((n, is_replica)) = lookup_arg(st) else {
                return err(format!("I don't know about node {}", text(args[3])));
            };
            if is_replica {
                return err("Target node is not a master");
            }
            st.open.importing_from.insert(slot as u16, n);
        }
        ("stable", 3) => {
            st.open.importing_from.remove(&(slot as u16));
            st.open.migrating_to.remove(&(slot as u16));
        }
        ("node", 4) => {
            let Some((n, is_replica)) = lookup_arg(st) else {
                return err(format!("Unknown node {}", text(args[3])));
            };
            if is_replica {
                return err("Target node is not a master");
            }
            let keys = ks.count_keys_in_slot(slot as u16).unwrap_or(0);
            if st.slots[slot] == Some(me) && n != me && keys != 0 {
                return err(format!(
                    "Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                ));
            }
            if keys == 0 {
                st.open.migrating_to.remove(&(slot as u16));
            }
            let was_importing = st.open.importing_from.contains_key(&(slot as u16));
            let slot_was_mine = st.slots[slot] == Some(me);
            st.del_slot(slot);
            st.add_slot(n, slot);
            // Lost my last slot: follow the new owner (cluster-allow-replica-migration).
            if slot_was_mine && n != me && st.me().num_slots == 0 && st.cfg.allow_replica_migration
            {
                st.log(
                    LogLevel::Warning,
                    format!(
                        "Configuration change detected. Reconfiguring myself as a replica of {n}"
                    ),
                );
                st.set_my_master(n);
            }
            if n == me && was_importing {
                if st.bump_config_epoch_without_consensus() {
                    st.log(
                        LogLevel::Warning,
                        format!("configEpoch updated after importing slot {slot}"),
                    );
                }
                st.open.importing_from.remove(&(slot as u16));
                st.broadcast_pong();
            }
        }
        _ => return err("Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP"),
    }
    // Open slots are part of the routing table (ASK / ASKING).
    st.bump_generation();
    st.mark_update_state();
    // Saved without fsync, as Redis (a configEpoch bump above asks for the fsync itself).
    st.mark_save(false);
    Reply::Ok
}

/// CLUSTER INFO text (`CRLF`-separated).
pub fn info(st: &ClusterState) -> String {
    use crate::wire::msg_type::NAMES;
    let (mut assigned, mut ok, mut pfail, mut fail) = (0, 0, 0, 0);
    for s in 0..SLOT_COUNT {
        if let Some(n) = st.slots[s].and_then(|o| st.nodes.get(&o)) {
            assigned += 1;
            if n.failed() {
                fail += 1;
            } else if n.timed_out() {
                pfail += 1;
            } else {
                ok += 1;
            }
        }
    }
    let mut out = String::with_capacity(512);
    let mut line = |k: &str, v: String| {
        out.push_str(k);
        out.push(':');
        out.push_str(&v);
        out.push_str("\r\n");
    };
    line(
        "cluster_state",
        if st.state_ok { "ok" } else { "fail" }.to_string(),
    );
    line("cluster_slots_assigned", assigned.to_string());
    line("cluster_slots_ok", ok.to_string());
    line("cluster_slots_pfail", pfail.to_string());
    line("cluster_slots_fail", fail.to_string());
    line("cluster_known_nodes", st.nodes.len().to_string());
    line("cluster_size", st.size.to_string());
    line("cluster_current_epoch", st.current_epoch.to_string());
    line("cluster_my_epoch", st.node_epoch(st.me()).to_string());
    let mut total = 0;
    for (i, c) in st.stats_sent.iter().enumerate() {
        if *c != 0 {
            line(
                &format!("cluster_stats_messages_{}_sent", NAMES[i]),
                c.to_string(),
            );
        }
        total += c;
    }
    line("cluster_stats_messages_sent", total.to_string());
    let mut total = 0;
    for (i, c) in st.stats_received.iter().enumerate() {
        if *c != 0 {
            line(
                &format!("cluster_stats_messages_{}_received", NAMES[i]),
                c.to_string(),
            );
        }
        total += c;
    }
    line("cluster_stats_messages_received", total.to_string());
    line("total_cluster_links_buffer_limit_exceeded", "0".to_string());
    out
}

fn node_endpoint(st: &ClusterState, n: &ClusterNode) -> Reply {
    let _ = st;
    let mut v = vec![
        bulk(n.ip.clone()),
        Reply::Int(n.port as i64),
        bulk(n.name.to_string()),
    ];
    let mut extra = Vec::new();
    if !n.hostname.is_empty() {
        extra.push((bulk("hostname"), bulk(n.hostname.clone())));
    }
    v.push(Reply::Map(extra));
    Reply::Array(v)
}

/// CLUSTER SLOTS.
pub fn slots_reply(st: &ClusterState) -> Reply {
    let mut out = Vec::new();
    let mut start: Option<(usize, NodeName)> = None;
    for j in 0..=SLOT_COUNT {
        let owner = if j < SLOT_COUNT { st.slots[j] } else { None };
        if let Some((s, o)) = start {
            if owner != Some(o) {
                if let Some(n) = st.nodes.get(&o) {
                    let mut entry = vec![
                        Reply::Int(s as i64),
                        Reply::Int(j as i64 - 1),
                        node_endpoint(st, n),
                    ];
                    for r in &n.replicas {
                        if let Some(rn) = st.nodes.get(r) {
                            if rn.failed() || rn.repl_offset == 0 {
                                continue;
                            }
                            entry.push(node_endpoint(st, rn));
                        }
                    }
                    out.push(Reply::Array(entry));
                }
                start = None;
            }
        }
        if start.is_none() {
            if let Some(o) = owner {
                start = Some((j, o));
            }
        }
    }
    Reply::Array(out)
}

fn shard_node(st: &ClusterState, n: &ClusterNode) -> Reply {
    let _ = st;
    let mut m = vec![(bulk("id"), bulk(n.name.to_string()))];
    if n.port != 0 {
        m.push((bulk("port"), Reply::Int(n.port as i64)));
    }
    m.push((bulk("ip"), bulk(n.ip.clone())));
    m.push((bulk("endpoint"), bulk(n.ip.clone())));
    if !n.hostname.is_empty() {
        m.push((bulk("hostname"), bulk(n.hostname.clone())));
    }
    m.push((
        bulk("role"),
        bulk(if n.is_master() { "master" } else { "replica" }),
    ));
    m.push((bulk("replication-offset"), Reply::Int(n.repl_offset as i64)));
    let health = if n.failed() {
        "fail"
    } else if n.is_replica() && n.repl_offset == 0 {
        "loading"
    } else {
        "online"
    };
    m.push((bulk("health"), bulk(health)));
    Reply::Map(m)
}

/// CLUSTER SHARDS (7.0: one shard per master).
pub fn shards_reply(st: &ClusterState) -> Reply {
    let mut shards = Vec::new();
    for n in st.nodes.values() {
        if !n.is_master() {
            continue;
        }
        let mut ranges = Vec::new();
        let mut start: Option<usize> = None;
        for j in 0..=SLOT_COUNT {
            let owned = j < SLOT_COUNT && n.slots.get(j);
            match (owned, start) {
                (true, None) => start = Some(j),
                (false, Some(s)) => {
                    ranges.push(Reply::Int(s as i64));
                    ranges.push(Reply::Int(j as i64 - 1));
                    start = None;
                }
                _ => {}
            }
        }
        let mut nodes = vec![shard_node(st, n)];
        for r in &n.replicas {
            if let Some(rn) = st.nodes.get(r) {
                nodes.push(shard_node(st, rn));
            }
        }
        shards.push(Reply::Map(vec![
            (bulk("slots"), Reply::Array(ranges)),
            (bulk("nodes"), Reply::Array(nodes)),
        ]));
    }
    Reply::Array(shards)
}

/// CLUSTER LINKS. `events` and the send-buffer sizes are not tracked by the state
/// machine: links report `r` and 0 (approximation, documented in the report).
pub fn links_reply(st: &ClusterState) -> Reply {
    let mut out = Vec::new();
    for n in st.nodes.values() {
        for (id, dir) in [(n.link, "to"), (n.inbound_link, "from")] {
            let Some(l) = id.and_then(|i| st.links.get(&i)) else {
                continue;
            };
            out.push(Reply::Map(vec![
                (bulk("direction"), bulk(dir)),
                (bulk("node"), bulk(n.name.to_string())),
                (bulk("create-time"), Reply::Int(l.ctime_ms as i64)),
                (bulk("events"), bulk(if l.connected { "r" } else { "w" })),
                (bulk("send-buffer-allocated"), Reply::Int(0)),
                (bulk("send-buffer-used"), Reply::Int(0)),
            ]));
        }
    }
    Reply::Array(out)
}

/// Slots owned by myself as a bitmap (for tests and callers).
pub fn my_slots(st: &ClusterState) -> SlotBitmap {
    (*st.me().slots).clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateConfig;

    fn st() -> ClusterState {
        ClusterState::new(StateConfig::for_port(30001), 7, 1_000)
    }

    fn run(st: &mut ClusterState, line: &str) -> Reply {
        let args: Vec<&[u8]> = line.split(' ').map(|s| s.as_bytes()).collect();
        let mut saver = |_: &str| Ok(());
        execute(st, &args, &NoKeyspace, &mut saver)
    }

    fn e(s: &str) -> Reply {
        Reply::Error(s.to_string())
    }

    #[test]
    fn error_strings_match_redis() {
        let mut s = st();
        let me = s.myself.to_string();
        assert_eq!(
            run(&mut s, "addslots"),
            e("ERR wrong number of arguments for 'cluster|addslots' command")
        );
        assert_eq!(
            run(&mut s, "addslots 99999"),
            e("ERR Invalid or out of range slot")
        );
        assert_eq!(
            run(&mut s, "addslots abc"),
            e("ERR Invalid or out of range slot")
        );
        assert_eq!(
            run(&mut s, "addslots 1 1"),
            e("ERR Slot 1 specified multiple times")
        );
        assert_eq!(run(&mut s, "addslots 1 2"), Reply::Ok);
        assert_eq!(run(&mut s, "addslots 1"), e("ERR Slot 1 is already busy"));
        assert_eq!(
            run(&mut s, "addslotsrange 5 3"),
            e("ERR start slot number 5 is greater than end slot number 3")
        );
        assert_eq!(
            run(&mut s, "addslotsrange 5"),
            e("ERR wrong number of arguments for 'cluster|addslotsrange' command")
        );
        assert_eq!(
            run(&mut s, "addslotsrange 3 5 4 6"),
            e("ERR Slot 4 specified multiple times")
        );
        assert_eq!(
            run(&mut s, "delslots 100"),
            e("ERR Slot 100 is already unassigned")
        );
        assert_eq!(
            run(&mut s, "delslotsrange 1 3"),
            e("ERR Slot 3 is already unassigned")
        );
        assert_eq!(run(&mut s, "delslots 1"), Reply::Ok);
        assert_eq!(run(&mut s, "keyslot key:{10}:111"), Reply::Int(247));
        assert_eq!(
            run(&mut s, "foo"),
            e("ERR unknown subcommand 'foo'. Try CLUSTER HELP.")
        );
        assert_eq!(
            run(&mut s, "meet 127.0.0.1 99999"),
            e("ERR Invalid node address specified: 127.0.0.1:99999")
        );
        assert_eq!(
            run(&mut s, "meet 127.0.0.1 x"),
            e("ERR Invalid TCP base port specified: x")
        );
        assert_eq!(
            run(&mut s, "meet 127.0.0.1 30002 99999"),
            e("ERR Invalid node address specified: 127.0.0.1:30002")
        );
        assert_eq!(
            run(&mut s, "meet 127.0.0.1 30002 abc"),
            e("ERR Invalid TCP bus port specified: abc")
        );
        assert_eq!(
            run(&mut s, "meet localhost 30002"),
            e("ERR Invalid node address specified: localhost:30002")
        );
        assert_eq!(
            run(&mut s, "meet 1 2 3 4"),
            e("ERR unknown subcommand or wrong number of arguments for 'meet'. Try CLUSTER HELP.")
        );
        assert_eq!(run(&mut s, "replicate abc"), e("ERR Unknown node abc"));
        assert_eq!(
            run(&mut s, &format!("replicate {me}")),
            e("ERR Can't replicate myself")
        );
        assert_eq!(run(&mut s, "forget abc"), e("ERR Unknown node abc"));
        assert_eq!(
            run(&mut s, &format!("forget {me}")),
            e("ERR I tried hard but I can't forget myself...")
        );
        assert_eq!(
            run(&mut s, "count-failure-reports abc"),
            e("ERR Unknown node abc")
        );
        assert_eq!(
            run(&mut s, "set-config-epoch -1"),
            e("ERR Invalid config epoch specified: -1")
        );
        assert_eq!(
            run(&mut s, "set-config-epoch abc"),
            e("ERR value is not an integer or out of range")
        );
        assert_eq!(run(&mut s, "set-config-epoch 5"), Reply::Ok);
        assert_eq!(
            run(&mut s, "set-config-epoch 6"),
            e("ERR Node config epoch is already non-zero")
        );
        assert_eq!(run(&mut s, "bumpepoch"), Reply::Simple("STILL 5".into()));
        assert_eq!(run(&mut s, "replicas abc"), e("ERR Unknown node abc"));
        assert_eq!(run(&mut s, &format!("replicas {me}")), Reply::Array(vec![]));
        assert_eq!(run(&mut s, "reset foo"), e("ERR syntax error"));
        assert_eq!(
            run(&mut s, "reset soft extra"),
            e("ERR unknown subcommand or wrong number of arguments for 'reset'. Try CLUSTER HELP.")
        );
        assert_eq!(run(&mut s, "countkeysinslot 99999"), e("ERR Invalid slot"));
        assert_eq!(
            run(&mut s, "countkeysinslot x"),
            e("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, "getkeysinslot 1 -1"),
            e("ERR Invalid slot or number of keys")
        );
        assert_eq!(
            run(&mut s, "getkeysinslot 1"),
            e("ERR wrong number of arguments for 'cluster|getkeysinslot' command")
        );
        assert_eq!(
            run(&mut s, "countkeysinslot 5"),
            Reply::NeedsKeyspace(KeyspaceQuery::CountKeysInSlot(5))
        );
        assert_eq!(
            run(&mut s, "myid extra"),
            e("ERR wrong number of arguments for 'cluster|myid' command")
        );
        assert_eq!(
            run(&mut s, "failover"),
            e("ERR You should send CLUSTER FAILOVER to a replica")
        );
        assert_eq!(
            run(&mut s, "setslot 1 foo"),
            e("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP")
        );
        assert_eq!(run(&mut s, "myid"), Reply::Bulk(me.into_bytes()));
    }

    #[test]
    fn info_and_nodes_format() {
        let mut s = st();
        assert_eq!(run(&mut s, "addslots 1 2"), Reply::Ok);
        assert_eq!(run(&mut s, "set-config-epoch 5"), Reply::Ok);
        let Reply::Verbatim(info) = run(&mut s, "info") else {
            panic!("info")
        };
        assert_eq!(
            info,
            "cluster_state:fail\r\ncluster_slots_assigned:2\r\ncluster_slots_ok:2\r\ncluster_slots_pfail:0\r\n\
cluster_slots_fail:0\r\ncluster_known_nodes:1\r\ncluster_size:0\r\ncluster_current_epoch:5\r\n\
cluster_my_epoch:5\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
total_cluster_links_buffer_limit_exceeded:0\r\n"
        );
        let Reply::Verbatim(nodes) = run(&mut s, "nodes") else {
            panic!("nodes")
        };
        assert_eq!(
            nodes,
            format!(
                "{} :30001@40001 myself,master - 0 0 5 connected 1-2\n",
                s.myself
            )
        );
        let Reply::Array(help) = run(&mut s, "help") else {
            panic!("help")
        };
        assert_eq!(help.len(), 56);
        // SLOTS: one range, master endpoint with empty extra map.
        assert_eq!(
            run(&mut s, "slots"),
            Reply::Array(vec![Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(2),
                Reply::Array(vec![
                    Reply::Bulk(vec![]),
                    Reply::Int(30001),
                    Reply::Bulk(s.myself.to_string().into_bytes()),
                    Reply::Map(vec![])
                ])
            ])])
        );
    }

    #[test]
    fn meet_creates_single_handshake_node_and_reset_hard_renames() {
        let mut s = st();
        assert_eq!(run(&mut s, "meet 127.0.0.1 30002"), Reply::Ok);
        assert_eq!(run(&mut s, "meet 127.0.0.1 30002"), Reply::Ok);
        assert_eq!(s.nodes.len(), 2);
        let hs = s
            .nodes
            .values()
            .find(|n| n.in_handshake())
            .expect("handshake node");
        assert_eq!((hs.port, hs.cport), (30002, 40002));
        assert!(hs.has(flags::MEET));
        let old = s.myself;
        assert_eq!(run(&mut s, "addslots 7"), Reply::Ok);
        assert_eq!(run(&mut s, "reset hard"), Reply::Ok);
        assert_eq!(s.nodes.len(), 1);
        assert_ne!(s.myself, old);
        assert_eq!(s.me().num_slots, 0);
        assert_eq!(s.current_epoch, 0);
    }
}
