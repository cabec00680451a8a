//! cinnabar-server: the Cinnabar server library — a Redis 7.0 compatible data store whose
//! keyspace is partitioned by hash slot. The binary in `main.rs` wires it together.
//!
//! Module map (see docs/ARCHITECTURE.md):
//! * `settings`, `config_store` — configuration (redis.conf) and its typed snapshot;
//! * `keyspace`, `db`, `types` — slot-partitioned storage, handler view, value types;
//! * `cmd` — command table, dispatcher and command families;
//! * `net`, `client` — threading model, connections, client registry;
//! * `server`, `stats`, `info`, `log`, `expire` — shared state, counters, INFO, logging,
//!   active expiry;
//! * `cluster_glue` — the seam to the cluster subsystem (`cinnabar-cluster`).

pub mod alloc;
pub mod client;
pub mod cluster_glue;
pub mod cmd;
pub mod config_store;
pub mod db;
pub mod digest;
pub mod error;
pub mod evict;
pub mod expire;
pub mod info;
pub mod keyspace;
pub mod log;
pub mod net;
pub mod notify;
pub mod persist;
pub mod prefetch;
pub mod pubsub;
pub mod repl;
pub mod replica;
pub mod script;
pub mod server;
pub mod settings;
pub mod stats;
pub mod types;
