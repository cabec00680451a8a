//! The error type shared by the manifest parser, the AOF reader and the checker.

use std::io;

/// Everything that can go wrong reading AOF data. Bad input always maps to an error, never a
/// panic. [`AofError::Truncated`] (a torn tail) is the one case Redis can load anyway
/// (`aof-load-truncated yes`); [`AofError::Corrupt`] must be refused.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    /// The file ends in the middle of a command. Everything before `valid_up_to` (the end of
    /// the last complete command, or the reader's start offset) is well formed.
    #[error("unexpected end of AOF file: valid up to offset {valid_up_to}")]
    Truncated {
        /// Byte offset (from the start of the file) the file can be truncated to.
        valid_up_to: u64,
    },
    /// The file is malformed before its end; `offset` is where the bad item starts.
    #[error("bad AOF format at offset {offset}: {reason}")]
    Corrupt {
        /// Byte offset (from the start of the file) of the item that failed to parse.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The manifest is invalid; the text is Redis 7.0.15's own message (for example
    /// `Found duplicate base file information`).
    #[error("{0}")]
    Manifest(String),
    /// Reading the underlying file failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}
