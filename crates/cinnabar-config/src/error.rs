//! Configuration errors, formatted exactly like Redis 7.0.15 prints them.

use std::fmt;

/// The version string printed in fatal config errors. Cinnabar prints
/// "Redis 7.0.15" (not its own version) because tooling greps for it.
pub const REDIS_VERSION: &str = "7.0.15";

/// A configuration loading error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Redis's `*** FATAL CONFIG FILE ERROR ***` block. Print the
    /// `Display` text verbatim to **stderr** (it starts with an empty line
    /// and ends with a newline) and exit with status **1**.
    Fatal {
        /// 1-based line number within the parsed text and the trimmed line;
        /// `None` for whole-file checks (e.g. "Can't open the log file").
        line: Option<(usize, String)>,
        reason: String,
    },
    /// The config file (or an included file) cannot be opened. Redis logs
    /// this through its logger at warning level (stdout when no logfile:
    /// `PID:C dd Mon yyyy hh:mm:ss.mmm # Fatal error, can't open config file
    /// '/x.conf': No such file or directory`) and exits with status 1. The
    /// `Display` text is the message part only (no newline).
    Open { path: String, reason: String },
}

impl ConfigError {
    /// Process exit status Redis uses for this error.
    pub fn exit_code(&self) -> i32 {
        1
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Fatal { line, reason } => {
                write!(
                    f,
                    "\n*** FATAL CONFIG FILE ERROR (Redis {REDIS_VERSION}) ***\n"
                )?;
                if let Some((n, text)) = line {
                    writeln!(f, "Reading the configuration file, at line {n}")?;
                    writeln!(f, ">>> '{text}'")?;
                }
                writeln!(f, "{reason}")
            }
            ConfigError::Open { path, reason } => {
                write!(f, "Fatal error, can't open config file '{path}': {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}
