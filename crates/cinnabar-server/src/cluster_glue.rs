//! The seam between the server and the cluster subsystem (crate `cinnabar-cluster`): routing
//! decisions for keyed commands and CLUSTER subcommands, PUBLISH / SPUBLISH propagation, and
//! the driver's events (replicate from, flush, bus PUBLISH, shard channels of slots that left
//! this shard, the write pause of a manual failover). The server depends only
//! on the [`ClusterApi`] trait, so the cluster driver can be swapped or simulated; [`start`]
//! wires the real driver (`cinnabar_cluster::ClusterHandle`) to this process's keyspace and
//! log.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use cinnabar_cluster::{ClusterHandle, ClusterOptions, Reply};
use cinnabar_protocol::ReplyBuf;

pub use cinnabar_cluster::Route;

use crate::keyspace::Keyspace;

pub trait ClusterApi: Send + Sync {
    /// Executes `CLUSTER <args...>` (args exclude the word CLUSTER), writing the reply.
    fn command(&self, args: &[Bytes], ks: &Keyspace, out: &mut ReplyBuf);
    /// Who serves `slot` (hot path).
    fn route(&self, slot: u16) -> Route;
    /// `cluster_state:ok`.
    fn is_ok(&self) -> bool;
    fn myself_is_replica(&self) -> bool;
    /// Saves nodes.conf and closes the bus.
    fn shutdown(&self);
    /// True when this node may serve READONLY reads for `slot` (a replica of its master).
    fn serves_reads_for(&self, slot: u16) -> bool;
    /// Publishes this node's replication offset to the cluster bus.
    fn set_repl_offset(&self, _offset: u64) {}
    /// Start-up, after loading: slots holding keys that I neither own nor import are claimed
    /// (unassigned) or marked importing (Redis's `verifyClusterConfigWithData`).
    fn verify_with_data(&self, _ks: &Keyspace) {}
    /// Manual failover, master side: writes are paused and `offset` is final (answers
    /// `ServerEvent::PauseWrites { id, .. }`).
    fn writes_paused(&self, _id: u64, _offset: u64) {}
    /// A manual failover paused this master's writes: nothing else may move the offset
    /// (replication PINGs, active expiry).
    fn manual_failover_pausing(&self) -> bool {
        false
    }
    /// A client ran PUBLISH (`shard == false`) or SPUBLISH here: send it on the cluster bus
    /// (PUBLISH to every node, PUBLISHSHARD to the other nodes of my shard).
    fn propagate_publish(&self, _shard: bool, _channel: Bytes, _message: Bytes) {}
    /// The driver's event stream (replicate from / flush / bus PUBLISH), first call only.
    fn take_events(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<cinnabar_cluster::driver::ServerEvent>> {
        None
    }
}

/// Consumes the cluster driver's events on the background runtime: `ReplicateFrom` starts or
/// stops replication, `FlushData` empties the keyspace, bus PUBLISH is delivered locally,
/// `DropShardChannels` unsubscribes shard-channel subscribers of slots that left this shard,
/// `PauseWrites` / `UnpauseWrites` hold client writes for a manual failover (the CLIENT
/// PAUSE WRITE machinery) and report the final replication offset.
/// Takes the cluster's event stream: from now on the driver queues its events (nothing is
/// dropped) until `spawn_event_loop` starts consuming them.
pub fn take_events(
    srv: &Arc<crate::server::Server>,
) -> Option<tokio::sync::mpsc::UnboundedReceiver<cinnabar_cluster::driver::ServerEvent>> {
    srv.cluster.as_ref().and_then(|c| c.take_events())
}

pub fn spawn_event_loop(
    srv: &Arc<crate::server::Server>,
    rt: &tokio::runtime::Handle,
    events: Option<tokio::sync::mpsc::UnboundedReceiver<cinnabar_cluster::driver::ServerEvent>>,
) {
    use cinnabar_cluster::driver::ServerEvent;
    let Some(mut rx) = events else {
        return;
    };
    let weak = Arc::downgrade(srv);
    rt.spawn(async move {
        // The pause deadline this loop set, so it only lifts its own pause.
        let mut mf_pause: Option<i64> = None;
        while let Some(ev) = rx.recv().await {
            let Some(srv) = weak.upgrade() else { return };
            match ev {
                ServerEvent::ReplicateFrom(target) => {
                    let same = match (&target, srv.repl.master_info()) {
                        (Some((h, p)), Some(m)) => *h == m.host && *p == m.port,
                        (None, None) => true,
                        _ => false,
                    };
                    if !same {
                        crate::replica::start(&srv, target);
                    }
                }
                ServerEvent::FlushData => crate::replica::flush_all(&srv),
                ServerEvent::Publish {
                    shard,
                    channel,
                    message,
                } => {
                    srv.pubsub.publish(shard, &channel, &message);
                }
                ServerEvent::DropShardChannels { slots } => {
                    srv.pubsub.drop_shard_slots(&slots);
                }
                ServerEvent::DeleteKeysInSlots { slots } => {
                    let s2 = srv.clone();
                    let _ = tokio::task::spawn_blocking(move || delete_keys_in_slots(&s2, &slots))
                        .await;
                }
                ServerEvent::PauseWrites { id, until_ms } => {
                    mf_pause = Some(pause_writes(&srv, until_ms as i64));
                    let s2 = srv.clone();
                    let offset = tokio::task::spawn_blocking(move || quiesced_offset(&s2))
                        .await
                        .unwrap_or_else(|_| srv.repl.offset());
                    if let Some(c) = srv.cluster.as_ref() {
                        c.writes_paused(id, offset.max(0) as u64);
                    }
                }
                ServerEvent::UnpauseWrites => {
                    if let Some(until) = mf_pause.take() {
                        if srv
                            .pause_until_ms
                            .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                        {
                            srv.pause_notify.notify_waiters();
                        }
                    }
                }
            }
        }
    });
}

/// Pauses client writes until `until_ms` (`pauseClients(..., CLIENT_PAUSE_WRITE)`); an
/// active longer or ALL pause keeps its mode and deadline. Returns the deadline now set.
fn pause_writes(srv: &crate::server::Server, until_ms: i64) -> i64 {
    let now = crate::server::now_ms();
    let cur = srv.pause_until_ms.load(Ordering::Acquire);
    if cur != 0 && cur > now {
        let until = cur.max(until_ms);
        srv.pause_until_ms.store(until, Ordering::SeqCst);
        return until;
    }
    srv.pause_writes_only.store(true, Ordering::SeqCst);
    srv.pause_until_ms.store(until_ms, Ordering::SeqCst);
    until_ms
}

/// The replication offset once no write is in flight. A command checks the pause right
/// before it executes, synchronously, so one that passed the check before the pause holds
/// (or is about to take) its slot locks: lock every slot to wait for those, and repeat until
/// the offset is stable over a few milliseconds (bounded to ~1 s).
fn quiesced_offset(srv: &crate::server::Server) -> i64 {
    let mut last = i64::MIN;
    for _ in 0..200 {
        drop(crate::repl::lock_whole_dbs(srv, None));
        std::thread::sleep(std::time::Duration::from_millis(2));
        let off = srv.repl.offset();
        if off == last {
            return off;
        }
        last = off;
    }
    last
}

/// Redis's `delKeysInSlot` for dirty slots: every key still held in `slots` is deleted through
/// the dispatcher as a DEL (so it is replicated, fed to the AOF and notified), by an internal
/// client that is not redirected (the slots are no longer served here).
fn delete_keys_in_slots(srv: &crate::server::Server, slots: &[u16]) {
    use crate::client::{Client, ClientInfo};
    let info = Arc::new(ClientInfo::new(
        u64::MAX,
        String::new(),
        String::new(),
        -1,
        crate::server::now_ms(),
        false,
    ));
    let mut cl = Client::new(info, true);
    cl.is_master = true;
    let mut out = ReplyBuf::new(cinnabar_protocol::Resp::V2);
    for &slot in slots {
        let keys: Vec<Bytes> = {
            let g = srv.keyspace.db(0).lock(slot);
            g.iter()
                .map(|e| Bytes::copy_from_slice(e.key.as_bytes()))
                .collect()
        };
        for k in keys {
            let args = [Bytes::from_static(b"DEL"), k];
            crate::cmd::execute(srv, &mut cl, &args, &mut out, crate::server::now_ms());
            out.buf.clear();
        }
    }
}

/// Adapts the keyspace (db 0) to the cluster command layer.
struct KsView<'a>(&'a Keyspace);

impl cinnabar_cluster::Keyspace for KsView<'_> {
    fn dbsize(&self) -> Option<u64> {
        Some(self.0.db(0).key_count() as u64)
    }
    fn count_keys_in_slot(&self, slot: u16) -> Option<u64> {
        Some(self.0.db(0).lock(slot).len() as u64)
    }
    fn keys_in_slot(&self, slot: u16, count: u64) -> Option<Vec<Vec<u8>>> {
        let g = self.0.db(0).lock(slot);
        Some(
            g.iter()
                .take(count as usize)
                .map(|e| e.key.as_bytes().to_vec())
                .collect(),
        )
    }
}

/// Renders a structured cluster reply as RESP2/RESP3.
pub fn render(reply: &Reply, out: &mut ReplyBuf) {
    match reply {
        Reply::Ok => out.ok(),
        Reply::Simple(s) => out.simple(s),
        Reply::Error(e) => out.error(e),
        Reply::Int(n) => out.int(*n),
        Reply::Bulk(b) => out.bulk(b),
        Reply::Verbatim(s) => out.verbatim("txt", s.as_bytes()),
        Reply::Null => out.null(),
        Reply::Array(items) => {
            out.array(items.len());
            for i in items {
                render(i, out);
            }
        }
        Reply::Map(pairs) => {
            out.map(pairs.len());
            for (k, v) in pairs {
                render(k, out);
                render(v, out);
            }
        }
        Reply::NeedsKeyspace(_) => out.error("ERR internal error: keyspace query not answered"),
    }
}

struct Driver(ClusterHandle);

impl ClusterApi for Driver {
    fn command(&self, args: &[Bytes], ks: &Keyspace, out: &mut ReplyBuf) {
        let r = self.0.command_with_keyspace(args, &KsView(ks));
        if let Reply::Error(e) = &r {
            // Errors go through the normal error path for errorstats.
            out.error(e);
            return;
        }
        render(&r, out);
    }
    fn route(&self, slot: u16) -> Route {
        self.0.route(slot)
    }
    fn is_ok(&self) -> bool {
        self.0.is_ok()
    }
    fn myself_is_replica(&self) -> bool {
        self.0.myself_is_replica()
    }
    fn shutdown(&self) {
        self.0.shutdown()
    }
    fn serves_reads_for(&self, slot: u16) -> bool {
        self.0.serves_reads_for(slot)
    }
    fn take_events(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<cinnabar_cluster::driver::ServerEvent>> {
        self.0.take_events()
    }
    fn set_repl_offset(&self, offset: u64) {
        self.0.set_repl_offset(offset)
    }
    fn verify_with_data(&self, ks: &Keyspace) {
        self.0.verify_config_with_data(&KsView(ks))
    }
    fn writes_paused(&self, id: u64, offset: u64) {
        self.0.writes_paused(id, offset)
    }
    fn manual_failover_pausing(&self) -> bool {
        self.0.manual_failover_pausing()
    }
    fn propagate_publish(&self, shard: bool, channel: Bytes, message: Bytes) {
        self.0.propagate_publish(shard, channel, message)
    }
}

/// Starts the cluster driver for this node on the background runtime.
pub fn start(
    s: &crate::settings::Settings,
    rt: &tokio::runtime::Handle,
) -> Result<Option<Arc<dyn ClusterApi>>, String> {
    use cinnabar_cluster::state::LogLevel;
    cinnabar_cluster::driver::set_log_sink(Box::new(|level, line| {
        let l = match level {
            LogLevel::Debug => crate::log::Level::Debug,
            LogLevel::Verbose => crate::log::Level::Verbose,
            LogLevel::Notice => crate::log::Level::Notice,
            LogLevel::Warning => crate::log::Level::Warning,
        };
        crate::log::log(l, line);
    }));
    let bus_port = if s.cluster_port != 0 {
        s.cluster_port
    } else {
        s.port.wrapping_add(10000)
    };
    if s.port > 55535 && s.cluster_port == 0 {
        return Err("Redis port number too high. Cluster communication port is 10,000 port numbers higher than your Redis port. Your Redis port number must be 55535 or less.".to_string());
    }
    let opts = ClusterOptions {
        port: s.port,
        bus_port,
        bind: s.bind.clone(),
        node_timeout_ms: s.cluster_node_timeout_ms,
        config_file: s.cluster_config_file.clone().into(),
        announce_ip: s.cluster_announce_ip.clone(),
        announce_port: (s.cluster_announce_port != 0).then_some(s.cluster_announce_port),
        announce_bus_port: (s.cluster_announce_bus_port != 0)
            .then_some(s.cluster_announce_bus_port),
        announce_hostname: s.cluster_announce_hostname.clone(),
        require_full_coverage: s.cluster_require_full_coverage,
        allow_reads_when_down: s.cluster_allow_reads_when_down,
        replica_no_failover: s.cluster_replica_no_failover,
        migration_barrier: s.cluster_migration_barrier,
        replica_validity_factor: s.cluster_replica_validity_factor,
    };
    let h = ClusterHandle::start(opts, rt).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(Driver(h))))
}
