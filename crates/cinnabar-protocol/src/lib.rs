//! cinnabar-protocol: the RESP wire protocol as a server speaks it.
//!
//! * [`parser`] turns client bytes (RESP multibulk arrays or inline commands) into argument
//!   vectors of zero-copy [`bytes::Bytes`] slices, enforcing Redis's limits and emitting
//!   Redis's exact protocol error strings.
//! * [`reply`] encodes replies in RESP2 or RESP3, chosen per connection.
//! * [`float`] formats doubles the way Redis 7.0 does (`%.17g`), so scores and floats
//!   compare byte for byte with real Redis.

pub mod float;
pub mod parser;
pub mod reply;

pub use parser::{ParseLimits, ParseOutcome, Parser, ProtocolError};
pub use reply::{ReplyBuf, Resp};
