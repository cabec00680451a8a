//! Client-visible command errors: one small enum that renders to Redis's exact error text.
//! Internal I/O errors never reach clients through this type.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    WrongType,
    Syntax,
    NotInteger,
    NotFloat,
    NoSuchKey,
    Overflow,
    OutOfRangeIndex,
    /// `ERR wrong number of arguments for '<name>' command`.
    Arity(String),
    /// Any other error; the text includes its prefix (`ERR ...`, `NOAUTH ...`).
    Msg(String),
    /// An error whose text holds raw client bytes (sent as is).
    Raw(Vec<u8>),
}

pub type CmdResult = Result<(), CmdError>;

impl CmdError {
    pub fn msg(s: impl Into<String>) -> CmdError {
        CmdError::Msg(s.into())
    }

    /// `ERR <text>`.
    pub fn err(s: impl fmt::Display) -> CmdError {
        CmdError::Msg(format!("ERR {s}"))
    }

    pub fn text(&self) -> String {
        match self {
            CmdError::WrongType => {
                "WRONGTYPE Operation against a key holding the wrong kind of value".into()
            }
            CmdError::Syntax => "ERR syntax error".into(),
            CmdError::NotInteger => "ERR value is not an integer or out of range".into(),
            CmdError::NotFloat => "ERR value is not a valid float".into(),
            CmdError::NoSuchKey => "ERR no such key".into(),
            CmdError::Overflow => "ERR increment or decrement would overflow".into(),
            CmdError::OutOfRangeIndex => "ERR index out of range".into(),
            CmdError::Arity(name) => format!("ERR wrong number of arguments for '{name}' command"),
            CmdError::Msg(s) => s.clone(),
            CmdError::Raw(b) => String::from_utf8_lossy(b).into_owned(),
        }
    }

    /// The bytes sent to the client after `-`.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            CmdError::Raw(b) => b.clone(),
            other => other.text().into_bytes(),
        }
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// The error-code prefix used by INFO errorstats (`ERR`, `WRONGTYPE`, ...).
pub fn error_code(text: &str) -> &str {
    text.split(' ').next().unwrap_or("ERR")
}
