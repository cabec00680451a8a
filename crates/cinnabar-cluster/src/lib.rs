//! cinnabar-cluster: Redis-Cluster-compatible cluster layer (hash slots, cluster bus wire
//! format, the I/O-free cluster state machine, nodes.conf persistence, CLUSTER commands
//! and the tokio driver that connects them to the network).
//!
//! Server-facing API (see `driver.rs`): [`ClusterHandle::start`], `command`,
//! `command_with_keyspace`, `route`, `serves_reads_for`, `is_ok`, `myself_is_replica`,
//! `myself_id`, `take_events`, `shutdown`; [`Reply`] is rendered by the server (errors
//! carry their `ERR`/… prefix; `Verbatim` is RESP3 `txt`, bulk in RESP2; `Map` is a flat
//! array in RESP2; `NeedsKeyspace` must be answered from the dataset).

// Slot loops index several parallel 16384-entry tables; index loops are clearer there.
#![allow(clippy::needless_range_loop)]

pub mod commands;
pub mod driver;
pub mod nodes_conf;
pub mod slot;
pub mod state;
pub mod wire;
pub use commands::{Keyspace, KeyspaceQuery, NoKeyspace, Reply};
pub use driver::{
    set_log_level, set_log_sink, ClusterError, ClusterHandle, ClusterOptions, Route, ServerEvent,
};
pub use state::LogLevel;
