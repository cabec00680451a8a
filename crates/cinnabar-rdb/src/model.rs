//! The value model: what one key holds, independent of the server's in-memory types, plus
//! the RDB type and opcode numbers of Redis 7.0 (`rdb.h`).

/// A key's value. Collections hold their elements in a defined order:
/// * `List`: head to tail.
/// * `Set`, `Hash`: the order found in the file (hash tables have none); the encoder writes
///   them in the given order.
/// * `ZSet`: the decoder returns members sorted by (score, member) ascending, Redis's order;
///   the encoder accepts any order and sorts.
#[derive(Debug, Clone, PartialEq)]
pub enum RdbValue {
    /// A string (integers are returned in their decimal form).
    String(Vec<u8>),
    /// A list, head first.
    List(Vec<Vec<u8>>),
    /// A set of distinct members.
    Set(Vec<Vec<u8>>),
    /// A hash of distinct fields: (field, value) pairs.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// A sorted set of distinct members: (member, score) pairs. Scores are never NaN.
    ZSet(Vec<(Vec<u8>, f64)>),
}

impl RdbValue {
    /// The name `TYPE` replies for this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            RdbValue::String(_) => "string",
            RdbValue::List(_) => "list",
            RdbValue::Set(_) => "set",
            RdbValue::Hash(_) => "hash",
            RdbValue::ZSet(_) => "zset",
        }
    }

    /// Number of elements (1 for a string).
    pub fn len(&self) -> usize {
        match self {
            RdbValue::String(_) => 1,
            RdbValue::List(items) | RdbValue::Set(items) => items.len(),
            RdbValue::Hash(pairs) => pairs.len(),
            RdbValue::ZSet(pairs) => pairs.len(),
        }
    }

    /// True for an empty collection (Redis never stores one; its loader skips them).
    pub fn is_empty(&self) -> bool {
        !matches!(self, RdbValue::String(_)) && self.len() == 0
    }
}

/// One key as stored in an RDB file.
#[derive(Debug, Clone, PartialEq)]
pub struct RdbEntry {
    /// Database index (SELECTDB).
    pub db: u32,
    /// The key name.
    pub key: Vec<u8>,
    /// The value.
    pub value: RdbValue,
    /// Absolute expiry, Unix time in milliseconds (EXPIRETIME_MS / EXPIRETIME).
    pub expire_at_ms: Option<i64>,
    /// Seconds since last access (IDLE opcode; written by Redis under an LRU maxmemory policy).
    pub lru_idle_s: Option<u64>,
    /// The LFU logarithmic access counter (FREQ opcode; written under an LFU policy).
    pub lfu_freq: Option<u8>,
    /// The RDB object type byte the value was decoded from ([`rdb_type`] constants); None for
    /// entries built by hand. The encoder ignores it and picks the encoding Redis would.
    pub source_type: Option<u8>,
}

impl RdbEntry {
    /// An entry in `db` without expiry or eviction metadata.
    pub fn new(db: u32, key: impl Into<Vec<u8>>, value: RdbValue) -> Self {
        RdbEntry {
            db,
            key: key.into(),
            value,
            expire_at_ms: None,
            lru_idle_s: None,
            lfu_freq: None,
            source_type: None,
        }
    }

    /// The same entry with an absolute expiry (Unix ms).
    pub fn with_expire_at_ms(mut self, expire_at_ms: i64) -> Self {
        self.expire_at_ms = Some(expire_at_ms);
        self
    }
}

/// RDB object type bytes (`RDB_TYPE_*` in Redis 7.0's `rdb.h`).
pub mod rdb_type {
    /// A string: raw, integer-encoded or LZF-compressed.
    pub const STRING: u8 = 0;
    /// A list as a plain sequence of strings (RDB < 7 writers).
    pub const LIST: u8 = 1;
    /// A set as a plain sequence of strings (hashtable encoding).
    pub const SET: u8 = 2;
    /// A sorted set with scores as strings (RDB < 8 writers).
    pub const ZSET: u8 = 3;
    /// A hash as field/value strings (hashtable encoding).
    pub const HASH: u8 = 4;
    /// A sorted set with binary little-endian double scores (skiplist encoding).
    pub const ZSET_2: u8 = 5;
    /// Module value, pre-GA format (rejected).
    pub const MODULE_PRE_GA: u8 = 6;
    /// Module value (rejected: needs the module).
    pub const MODULE_2: u8 = 7;
    /// Hash as a zipmap blob (Redis < 2.6).
    pub const HASH_ZIPMAP: u8 = 9;
    /// List as a ziplist blob (Redis < 3.2).
    pub const LIST_ZIPLIST: u8 = 10;
    /// Set as an intset blob.
    pub const SET_INTSET: u8 = 11;
    /// Sorted set as a ziplist blob (Redis < 7.0).
    pub const ZSET_ZIPLIST: u8 = 12;
    /// Hash as a ziplist blob (Redis < 7.0).
    pub const HASH_ZIPLIST: u8 = 13;
    /// List as a quicklist of ziplists (Redis 3.2 - 6.2).
    pub const LIST_QUICKLIST: u8 = 14;
    /// Stream (rejected).
    pub const STREAM_LISTPACKS: u8 = 15;
    /// Hash as a listpack blob.
    pub const HASH_LISTPACK: u8 = 16;
    /// Sorted set as a listpack blob.
    pub const ZSET_LISTPACK: u8 = 17;
    /// List as a quicklist of listpack (PACKED) or single-element (PLAIN) nodes.
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// Stream, Redis 7.0 format (rejected).
    pub const STREAM_LISTPACKS_2: u8 = 19;

    /// A short name for diagnostics.
    pub fn name(t: u8) -> &'static str {
        match t {
            STRING => "string",
            LIST => "list",
            SET => "set",
            ZSET => "zset",
            HASH => "hash",
            ZSET_2 => "zset2",
            MODULE_PRE_GA => "module-pre-ga",
            MODULE_2 => "module2",
            HASH_ZIPMAP => "hash-zipmap",
            LIST_ZIPLIST => "list-ziplist",
            SET_INTSET => "set-intset",
            ZSET_ZIPLIST => "zset-ziplist",
            HASH_ZIPLIST => "hash-ziplist",
            LIST_QUICKLIST => "list-quicklist",
            STREAM_LISTPACKS => "stream-listpacks",
            HASH_LISTPACK => "hash-listpack",
            ZSET_LISTPACK => "zset-listpack",
            LIST_QUICKLIST_2 => "list-quicklist2",
            STREAM_LISTPACKS_2 => "stream-listpacks2",
            _ => "unknown",
        }
    }
}

/// RDB opcodes (`RDB_OPCODE_*`), which share the type byte's position.
pub mod opcode {
    /// A function library (Redis 7.0 GA format): one string, the library source.
    pub const FUNCTION2: u8 = 245;
    /// Pre-GA function format (rejected, as Redis 7.0 does).
    pub const FUNCTION_PRE_GA: u8 = 246;
    /// Module auxiliary data (rejected: needs the module).
    pub const MODULE_AUX: u8 = 247;
    /// LRU idle time in seconds (a length) for the next key.
    pub const IDLE: u8 = 248;
    /// LFU counter (one byte) for the next key.
    pub const FREQ: u8 = 249;
    /// Auxiliary field: two strings.
    pub const AUX: u8 = 250;
    /// Hash table size hints: two lengths.
    pub const RESIZEDB: u8 = 251;
    /// Expiry of the next key: 8-byte little-endian Unix milliseconds.
    pub const EXPIRETIME_MS: u8 = 252;
    /// Expiry of the next key: 4-byte little-endian Unix seconds (old writers).
    pub const EXPIRETIME: u8 = 253;
    /// Switch database: one length.
    pub const SELECTDB: u8 = 254;
    /// End of data; the CRC64 trailer follows (RDB >= 5).
    pub const EOF: u8 = 255;
}
