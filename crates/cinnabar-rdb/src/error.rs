//! The error type shared by the decoder, the encoder and the DUMP payload functions.

use std::io;

/// Everything that can go wrong reading or writing RDB data. Corrupt input always maps to an
/// error (never a panic); [`RdbError::is_corrupt`] separates bad data from I/O failures.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// The underlying reader or writer failed (other than by ending early).
    #[error("I/O error: {0}")]
    Io(io::Error),
    /// The input ended in the middle of an item.
    #[error("unexpected end of RDB input")]
    UnexpectedEof,
    /// The file does not start with `REDIS`.
    #[error("bad RDB magic (file does not start with REDIS)")]
    BadMagic,
    /// The RDB version is outside 1..=10 (DUMP payloads: above 10).
    #[error("unsupported RDB version {0} (this build reads 1..=10)")]
    UnsupportedVersion(u32),
    /// The data is malformed.
    #[error("corrupt RDB data: {0}")]
    Corrupt(String),
    /// Well-formed data this library does not model (streams, modules, pre-GA functions).
    #[error("unsupported RDB content: {0}")]
    Unsupported(String),
    /// The CRC64 trailer does not match the data.
    #[error("RDB checksum mismatch: file says {expected:#018x}, data hashes to {computed:#018x}")]
    ChecksumMismatch {
        /// The checksum stored in the file.
        expected: u64,
        /// The checksum of the bytes actually read.
        computed: u64,
    },
    /// A declared length exceeds a configured limit or the remaining input.
    #[error("{what} length {len} exceeds the limit {limit}")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The declared length.
        len: u64,
        /// The limit it broke.
        limit: u64,
    },
    /// The encoder was handed a value Redis cannot represent (NaN score, empty collection).
    #[error("invalid value: {0}")]
    InvalidValue(String),
}

impl RdbError {
    /// True for errors caused by the content of the input rather than by I/O.
    pub fn is_corrupt(&self) -> bool {
        !matches!(self, RdbError::Io(_))
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        RdbError::Corrupt(message.into())
    }
}

impl From<io::Error> for RdbError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            RdbError::UnexpectedEof
        } else {
            RdbError::Io(error)
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, RdbError>;
