//! Redis 7.0 multi-part append-only file formats, as pure data code (nothing here executes a
//! command or touches server state).
//!
//! - [`manifest`]: the `appendonly.aof.manifest` file — parsing with Redis 7.0.15's rules and
//!   error texts, byte-identical encoding, file naming, and the base/incr/history bookkeeping
//!   done on rewrite.
//! - [`reader`]: streams commands (RESP multibulk arrays) and `#` annotations out of one AOF
//!   file, with byte offsets, classifying damage as a torn tail or corruption.
//! - [`check`]: the logic and user-visible output of `redis-check-aof` and `redis-check-rdb`.

pub mod check;
pub mod error;
pub mod manifest;
pub mod reader;

pub use check::{check_aof_path, check_aof_path_with, check_rdb_path, CheckIo, CheckReport};
pub use error::AofError;
pub use manifest::{FileEntry, FileKind, Manifest, ManifestError};
pub use reader::{starts_with_rdb_preamble, AofItem, AofReader, TransactionTracker, TxEvent};
