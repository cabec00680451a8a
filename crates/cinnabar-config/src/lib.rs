//! cinnabar-config: Redis 7.0.15-compatible configuration for Cinnabar —
//! the directive table, redis.conf / command-line parsing with Redis's exact
//! errors, CONFIG GET/SET/REWRITE semantics and the Redis glob matcher.

pub mod cli;
pub mod config;
pub mod error;
pub mod glob;
pub mod split;
pub mod table;
pub mod values;

pub use cli::{parse_args, Invocation, LoadRequest};
pub use config::{ClientClass, Config, OutputBufferLimit, REWRITE_SIGNATURE};
pub use error::{ConfigError, REDIS_VERSION};
pub use glob::string_match;
pub use split::{repr, split_args};
pub use table::{lookup, Directive, Kind, Mutability, DIRECTIVES, FILE_ONLY_DIRECTIVES};
