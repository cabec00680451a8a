//! The streaming RDB decoder.
//!
//! [`RdbDecoder`] pulls items from any [`Read`] one at a time, so a replica can load a
//! snapshot while it is still arriving and memory stays bounded by the largest single entry.
//! It never reads past the CRC64 trailer, so whatever follows the RDB on the same stream (the
//! replication stream after a full sync) stays in the reader; it issues small reads, so wrap
//! unbuffered sources (sockets, files) in a [`std::io::BufReader`].
//!
//! Every length in the file is untrusted: strings are read incrementally (the buffer grows as
//! bytes arrive, never to a declared size up front), collection capacities are capped, LZF
//! output is bounded by the compressed size times [`crate::lzf::MAX_EXPANSION_RATIO`], and all
//! lengths are checked against [`DecodeOptions`] limits and, when known, the remaining input.

use std::io::Read;

use crate::blobs::{i64_to_bytes, parse_intset, parse_listpack, parse_ziplist, parse_zipmap};
use crate::error::{RdbError, Result};
use crate::lzf;
use crate::model::{opcode, rdb_type, RdbEntry, RdbValue};
use crate::{Crc64Digest, CRC64, RDB_VERSION};

/// Limits and checks applied while decoding.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Verify the CRC64 trailer (a stored checksum of 0 is never verified, as in Redis).
    pub verify_checksum: bool,
    /// Longest string accepted, in bytes (after LZF decompression).
    pub max_string_bytes: u64,
    /// Most elements accepted in one collection (or nodes in one quicklist).
    pub max_collection_len: u64,
    /// Total input size when known (a file's size, a replication `$<len>` header); lengths
    /// that cannot fit in what remains are rejected before anything is allocated.
    pub input_len_bytes: Option<u64>,
    /// Consume stream values (`STREAM_LISTPACKS`, `STREAM_LISTPACKS_2`) and report them as
    /// [`RdbItem::Skipped`] instead of failing with [`RdbError::Unsupported`].
    pub skip_streams: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            verify_checksum: true,
            max_string_bytes: 512 * 1024 * 1024,
            max_collection_len: u64::from(u32::MAX),
            input_len_bytes: None,
            skip_streams: false,
        }
    }
}

/// One item of an RDB file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum RdbItem {
    /// An AUX field (`redis-ver`, `ctime`, `repl-id`, ...).
    Aux {
        /// Field name.
        key: Vec<u8>,
        /// Field value (integers in decimal).
        value: Vec<u8>,
    },
    /// SELECTDB: the following entries belong to this database.
    SelectDb(u32),
    /// RESIZEDB: size hints for the current database.
    ResizeDb {
        /// Keys in the database.
        db_size: u64,
        /// Keys with an expiry.
        expires_size: u64,
    },
    /// A function library's source code (FUNCTION2 opcode).
    Function(Vec<u8>),
    /// A key. Empty collections are skipped, as Redis's loader does.
    Entry(RdbEntry),
    /// A key whose value this library does not model, consumed because the options asked
    /// (see [`DecodeOptions::skip_streams`]).
    Skipped {
        /// Database index.
        db: u32,
        /// The key name.
        key: Vec<u8>,
        /// Its RDB object type.
        rdb_type: u8,
    },
}

/// A byte source that hashes what it reads (CRC64/Redis) and counts it.
pub(crate) struct Input<R> {
    inner: R,
    digest: Crc64Digest,
    consumed_bytes: u64,
    limit_bytes: Option<u64>,
    pub(crate) options: DecodeOptions,
}

/// Strings up to this size are read in one allocation; longer ones grow as data arrives.
const EAGER_READ_BYTES: u64 = 64 * 1024;
/// Initial capacity cap for collections whose length comes from the file.
const MAX_PREALLOCATED_ITEMS: u64 = 1024;

impl<R: Read> Input<R> {
    pub(crate) fn new(inner: R, options: DecodeOptions) -> Self {
        Input {
            inner,
            digest: CRC64.digest(),
            consumed_bytes: 0,
            limit_bytes: options.input_len_bytes,
            options,
        }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes read so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed_bytes
    }

    pub(crate) fn checksum_so_far(&self) -> u64 {
        self.digest.clone().finalize()
    }

    fn remaining_bytes(&self) -> Option<u64> {
        self.limit_bytes
            .map(|l| l.saturating_sub(self.consumed_bytes))
    }

    pub(crate) fn read_exact_into(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf)?;
        self.digest.update(buf);
        self.consumed_bytes += buf.len() as u64;
        Ok(())
    }

    pub(crate) fn read_u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact_into(&mut b)?;
        Ok(b[0])
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.read_exact_into(&mut b)?;
        Ok(b)
    }

    /// Reads `len` raw bytes, growing the buffer as data arrives.
    fn read_bytes(&mut self, len: u64, what: &'static str) -> Result<Vec<u8>> {
        self.check_string_len(len, what)?;
        if let Some(remaining) = self.remaining_bytes() {
            if len > remaining {
                return Err(RdbError::TooLarge {
                    what,
                    len,
                    limit: remaining,
                });
            }
        }
        if len <= EAGER_READ_BYTES {
            let mut buf = vec![0u8; len as usize];
            self.read_exact_into(&mut buf)?;
            return Ok(buf);
        }
        let mut buf = Vec::with_capacity(EAGER_READ_BYTES as usize);
        let got = (&mut self.inner).take(len).read_to_end(&mut buf)? as u64;
        self.digest.update(&buf);
        self.consumed_bytes += got;
        if got != len {
            return Err(RdbError::UnexpectedEof);
        }
        Ok(buf)
    }

    fn check_string_len(&self, len: u64, what: &'static str) -> Result<()> {
        if len > self.options.max_string_bytes {
            return Err(RdbError::TooLarge {
                what,
                len,
                limit: self.options.max_string_bytes,
            });
        }
        Ok(())
    }

    /// Checks a collection length and returns a safe initial capacity for it.
    fn check_collection_len(
        &self,
        len: u64,
        min_bytes_per_item: u64,
        what: &'static str,
    ) -> Result<usize> {
        if len > self.options.max_collection_len {
            return Err(RdbError::TooLarge {
                what,
                len,
                limit: self.options.max_collection_len,
            });
        }
        if let Some(remaining) = self.remaining_bytes() {
            if len.saturating_mul(min_bytes_per_item) > remaining {
                return Err(RdbError::TooLarge {
                    what,
                    len,
                    limit: remaining / min_bytes_per_item.max(1),
                });
            }
        }
        Ok(len.min(MAX_PREALLOCATED_ITEMS) as usize)
    }

    /// `rdbLoadLenByRef`: (value, is_encoded). Encoded lengths carry a string encoding tag.
    fn read_length_or_encoding(&mut self) -> Result<(u64, bool)> {
        let first = self.read_u8()?;
        match first >> 6 {
            0 => Ok((u64::from(first & 0x3F), false)),
            1 => {
                let second = self.read_u8()?;
                Ok(((u64::from(first & 0x3F) << 8) | u64::from(second), false))
            }
            2 => match first {
                0x80 => Ok((u64::from(u32::from_be_bytes(self.read_array()?)), false)),
                0x81 => Ok((u64::from_be_bytes(self.read_array()?), false)),
                _ => Err(RdbError::corrupt(format!(
                    "unknown length encoding byte {first:#04x}"
                ))),
            },
            _ => Ok((u64::from(first & 0x3F), true)),
        }
    }

    /// A plain length (an encoded one is corruption here).
    pub(crate) fn read_length(&mut self) -> Result<u64> {
        match self.read_length_or_encoding()? {
            (len, false) => Ok(len),
            (_, true) => Err(RdbError::corrupt(
                "encoded value where a length was expected",
            )),
        }
    }

    /// `rdbGenericLoadStringObject`: raw, integer-encoded or LZF-compressed string.
    pub(crate) fn read_string(&mut self) -> Result<Vec<u8>> {
        let (len, encoded) = self.read_length_or_encoding()?;
        if !encoded {
            return self.read_bytes(len, "string");
        }
        match len {
            0 => Ok(i64_to_bytes(i64::from(self.read_u8()? as i8))),
            1 => Ok(i64_to_bytes(i64::from(i16::from_le_bytes(
                self.read_array()?,
            )))),
            2 => Ok(i64_to_bytes(i64::from(i32::from_le_bytes(
                self.read_array()?,
            )))),
            3 => {
                let compressed_len = self.read_length()?;
                let plain_len = self.read_length()?;
                self.check_string_len(plain_len, "LZF string")?;
                if plain_len > compressed_len.saturating_mul(lzf::MAX_EXPANSION_RATIO) {
                    return Err(RdbError::corrupt(format!(
                        "LZF string claims {plain_len} bytes from {compressed_len} compressed bytes"
                    )));
                }
                let compressed = self.read_bytes(compressed_len, "LZF compressed string")?;
                lzf::decompress(&compressed, plain_len as usize)
                    .map_err(|e| RdbError::corrupt(format!("bad LZF string: {e}")))
            }
            other => Err(RdbError::corrupt(format!(
                "unknown string encoding {other}"
            ))),
        }
    }

    /// A double in the RDB < 8 text form: length byte (253 NaN, 254 +inf, 255 -inf), text.
    fn read_text_double(&mut self) -> Result<f64> {
        let len = self.read_u8()?;
        match len {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let text = self.read_bytes(u64::from(n), "double")?;
                parse_score(&text)
            }
        }
    }

    fn read_binary_double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.read_array()?))
    }

    /// Reads the value of object type `value_type`. None: an empty collection (skipped).
    pub(crate) fn read_value(&mut self, value_type: u8) -> Result<Option<RdbValue>> {
        let value = match value_type {
            rdb_type::STRING => RdbValue::String(self.read_string()?),
            rdb_type::LIST | rdb_type::SET => {
                let len = self.read_length()?;
                let mut items = Vec::with_capacity(self.check_collection_len(len, 1, "list/set")?);
                for _ in 0..len {
                    items.push(self.read_string()?);
                }
                if value_type == rdb_type::LIST {
                    RdbValue::List(items)
                } else {
                    RdbValue::Set(items)
                }
            }
            rdb_type::ZSET | rdb_type::ZSET_2 => {
                let len = self.read_length()?;
                let mut pairs = Vec::with_capacity(self.check_collection_len(len, 2, "zset")?);
                for _ in 0..len {
                    let member = self.read_string()?;
                    let score = if value_type == rdb_type::ZSET_2 {
                        self.read_binary_double()?
                    } else {
                        self.read_text_double()?
                    };
                    pairs.push((member, score));
                }
                finish_zset(pairs)?
            }
            rdb_type::HASH => {
                let len = self.read_length()?;
                let mut pairs = Vec::with_capacity(self.check_collection_len(len, 2, "hash")?);
                for _ in 0..len {
                    let field = self.read_string()?;
                    let value = self.read_string()?;
                    pairs.push((field, value));
                }
                RdbValue::Hash(pairs)
            }
            rdb_type::LIST_QUICKLIST | rdb_type::LIST_QUICKLIST_2 => {
                let nodes = self.read_length()?;
                self.check_collection_len(nodes, 1, "quicklist nodes")?;
                let mut items: Vec<Vec<u8>> = Vec::new();
                for _ in 0..nodes {
                    let container = if value_type == rdb_type::LIST_QUICKLIST_2 {
                        self.read_length()?
                    } else {
                        QUICKLIST_NODE_PACKED
                    };
                    let blob = self.read_string()?;
                    match container {
                        QUICKLIST_NODE_PLAIN => items.push(blob),
                        QUICKLIST_NODE_PACKED => {
                            let node_items = if value_type == rdb_type::LIST_QUICKLIST_2 {
                                parse_listpack(&blob)?
                            } else {
                                parse_ziplist(&blob)?
                            };
                            // Redis 7.0 silently skips empty nodes.
                            self.check_total(items.len() + node_items.len(), "list")?;
                            items.extend(node_items);
                        }
                        other => {
                            return Err(RdbError::corrupt(format!(
                                "unknown quicklist node container {other}"
                            )))
                        }
                    }
                }
                RdbValue::List(items)
            }
            rdb_type::LIST_ZIPLIST => RdbValue::List(parse_ziplist(&self.read_string()?)?),
            rdb_type::SET_INTSET => RdbValue::Set(parse_intset(&self.read_string()?)?),
            rdb_type::HASH_ZIPMAP => RdbValue::Hash(parse_zipmap(&self.read_string()?)?),
            rdb_type::HASH_ZIPLIST | rdb_type::HASH_LISTPACK => {
                let blob = self.read_string()?;
                let flat = if value_type == rdb_type::HASH_LISTPACK {
                    parse_listpack(&blob)?
                } else {
                    parse_ziplist(&blob)?
                };
                RdbValue::Hash(pair_up(flat, "hash")?)
            }
            rdb_type::ZSET_ZIPLIST | rdb_type::ZSET_LISTPACK => {
                let blob = self.read_string()?;
                let flat = if value_type == rdb_type::ZSET_LISTPACK {
                    parse_listpack(&blob)?
                } else {
                    parse_ziplist(&blob)?
                };
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                for (member, score) in pair_up(flat, "zset")? {
                    pairs.push((member, parse_score(&score)?));
                }
                finish_zset(pairs)?
            }
            rdb_type::STREAM_LISTPACKS | rdb_type::STREAM_LISTPACKS_2 => {
                return Err(RdbError::Unsupported(
                    "stream values are not supported".into(),
                ))
            }
            rdb_type::MODULE_PRE_GA | rdb_type::MODULE_2 => {
                return Err(RdbError::Unsupported(
                    "module values are not supported".into(),
                ))
            }
            other => return Err(RdbError::corrupt(format!("unknown object type {other}"))),
        };
        Ok(if value.is_empty() { None } else { Some(value) })
    }

    /// Consumes a stream value (`rdbSaveObject` for OBJ_STREAM, Redis 7.0): listpack nodes,
    /// length, IDs, consumer groups with their PELs and consumers.
    fn skip_stream(&mut self, value_type: u8) -> Result<()> {
        const STREAM_ID_BYTES: u64 = 16;
        let nodes = self.read_length()?;
        self.check_collection_len(nodes, 2, "stream nodes")?;
        for _ in 0..nodes {
            if self.read_string()?.len() as u64 != STREAM_ID_BYTES {
                return Err(RdbError::corrupt("stream node key is not a 16-byte ID"));
            }
            if parse_listpack(&self.read_string()?)?.is_empty() {
                return Err(RdbError::corrupt("empty listpack inside a stream"));
            }
        }
        // length, last ID; v2 adds first ID, max deleted ID, entries added.
        let header_lengths = if value_type == rdb_type::STREAM_LISTPACKS_2 {
            8
        } else {
            3
        };
        for _ in 0..header_lengths {
            self.read_length()?;
        }
        let groups = self.read_length()?;
        self.check_collection_len(groups, 3, "stream consumer groups")?;
        for _ in 0..groups {
            self.read_string()?;
            self.read_length()?;
            self.read_length()?;
            if value_type == rdb_type::STREAM_LISTPACKS_2 {
                self.read_length()?;
            }
            let pending = self.read_length()?;
            self.check_collection_len(pending, STREAM_ID_BYTES + 9, "stream PEL")?;
            for _ in 0..pending {
                self.read_array::<16>()?;
                self.read_array::<8>()?;
                self.read_length()?;
            }
            let consumers = self.read_length()?;
            self.check_collection_len(consumers, 10, "stream consumers")?;
            for _ in 0..consumers {
                self.read_string()?;
                self.read_array::<8>()?;
                let pending = self.read_length()?;
                self.check_collection_len(pending, STREAM_ID_BYTES, "stream consumer PEL")?;
                for _ in 0..pending {
                    self.read_array::<16>()?;
                }
            }
        }
        Ok(())
    }

    fn check_total(&self, len: usize, what: &'static str) -> Result<()> {
        if len as u64 > self.options.max_collection_len {
            return Err(RdbError::TooLarge {
                what,
                len: len as u64,
                limit: self.options.max_collection_len,
            });
        }
        Ok(())
    }
}

/// Quicklist node containers (`QUICKLIST_NODE_CONTAINER_*`).
pub(crate) const QUICKLIST_NODE_PLAIN: u64 = 1;
pub(crate) const QUICKLIST_NODE_PACKED: u64 = 2;

fn pair_up(flat: Vec<Vec<u8>>, what: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if !flat.len().is_multiple_of(2) {
        return Err(RdbError::corrupt(format!(
            "{what} blob has an odd number of elements"
        )));
    }
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        pairs.push((a, b));
    }
    Ok(pairs)
}

/// Parses a score string as Redis's `strtod` would for the forms Redis writes
/// (`%.17g`, integers, `inf`, `-inf`).
fn parse_score(text: &[u8]) -> Result<f64> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| {
            RdbError::corrupt(format!("invalid score {:?}", String::from_utf8_lossy(text)))
        })
}

fn finish_zset(mut pairs: Vec<(Vec<u8>, f64)>) -> Result<RdbValue> {
    if pairs.iter().any(|(_, s)| s.is_nan()) {
        return Err(RdbError::corrupt("sorted set with a NaN score"));
    }
    // No NaN here, so partial_cmp is total; -0.0 and 0.0 tie, as in Redis.
    pairs.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(RdbValue::ZSet(pairs))
}

/// Pulls [`RdbItem`]s out of an RDB stream one at a time.
pub struct RdbDecoder<R: Read> {
    input: Input<R>,
    version: u32,
    db: u32,
    finished: bool,
    failed: bool,
}

impl<R: Read> RdbDecoder<R> {
    /// Reads and checks the 9-byte header (`REDIS` + 4-digit version, 1..=10).
    pub fn new(reader: R) -> Result<Self> {
        Self::with_options(reader, DecodeOptions::default())
    }

    /// As [`RdbDecoder::new`], with explicit limits.
    pub fn with_options(reader: R, options: DecodeOptions) -> Result<Self> {
        let mut input = Input::new(reader, options);
        let header: [u8; 9] = input.read_array()?;
        if &header[..5] != b"REDIS" {
            return Err(RdbError::BadMagic);
        }
        let version = std::str::from_utf8(&header[5..])
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or(RdbError::BadMagic)?;
        if !(1..=RDB_VERSION).contains(&version) {
            return Err(RdbError::UnsupportedVersion(version));
        }
        Ok(RdbDecoder {
            input,
            version,
            db: 0,
            finished: false,
            failed: false,
        })
    }

    /// The file's RDB version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// True once the EOF opcode (and trailer) has been read.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Bytes consumed from the reader so far.
    pub fn consumed_bytes(&self) -> u64 {
        self.input.consumed_bytes
    }

    /// Gives back the reader, positioned just after the last byte consumed.
    pub fn into_inner(self) -> R {
        self.input.into_inner()
    }

    /// The next item, or None after EOF (checksum verified). After an error, every call
    /// returns None.
    pub fn next_item(&mut self) -> Result<Option<RdbItem>> {
        if self.finished || self.failed {
            return Ok(None);
        }
        let result = self.read_item();
        match &result {
            Err(_) => self.failed = true,
            Ok(None) => self.finished = true,
            Ok(Some(_)) => {}
        }
        result
    }

    fn read_item(&mut self) -> Result<Option<RdbItem>> {
        let mut expire_at_ms: Option<i64> = None;
        let mut lru_idle_s: Option<u64> = None;
        let mut lfu_freq: Option<u8> = None;
        loop {
            let code = self.input.read_u8()?;
            match code {
                opcode::EXPIRETIME_MS => {
                    expire_at_ms = Some(i64::from_le_bytes(self.input.read_array()?))
                }
                opcode::EXPIRETIME => {
                    expire_at_ms =
                        Some(i64::from(i32::from_le_bytes(self.input.read_array()?)) * 1000)
                }
                opcode::IDLE => lru_idle_s = Some(self.input.read_length()?),
                opcode::FREQ => lfu_freq = Some(self.input.read_u8()?),
                opcode::SELECTDB => {
                    let db = self.input.read_length()?;
                    self.db = u32::try_from(db)
                        .map_err(|_| RdbError::corrupt(format!("SELECTDB {db} out of range")))?;
                    return Ok(Some(RdbItem::SelectDb(self.db)));
                }
                opcode::RESIZEDB => {
                    let db_size = self.input.read_length()?;
                    let expires_size = self.input.read_length()?;
                    return Ok(Some(RdbItem::ResizeDb {
                        db_size,
                        expires_size,
                    }));
                }
                opcode::AUX => {
                    let key = self.input.read_string()?;
                    let value = self.input.read_string()?;
                    return Ok(Some(RdbItem::Aux { key, value }));
                }
                opcode::FUNCTION2 => return Ok(Some(RdbItem::Function(self.input.read_string()?))),
                opcode::FUNCTION_PRE_GA => {
                    return Err(RdbError::Unsupported(
                        "pre-release function format (opcode 246)".into(),
                    ))
                }
                opcode::MODULE_AUX => {
                    let module_id = self.input.read_length()?;
                    return Err(RdbError::Unsupported(format!(
                        "module auxiliary data (module id {module_id:#x})"
                    )));
                }
                opcode::EOF => {
                    if self.version >= 5 {
                        let computed = self.input.checksum_so_far();
                        let expected = u64::from_le_bytes(self.input.read_array()?);
                        if self.input.options.verify_checksum
                            && expected != 0
                            && expected != computed
                        {
                            return Err(RdbError::ChecksumMismatch { expected, computed });
                        }
                    }
                    return Ok(None);
                }
                value_type => {
                    let key = self.input.read_string()?;
                    if self.input.options.skip_streams
                        && matches!(
                            value_type,
                            rdb_type::STREAM_LISTPACKS | rdb_type::STREAM_LISTPACKS_2
                        )
                    {
                        self.input.skip_stream(value_type)?;
                        return Ok(Some(RdbItem::Skipped {
                            db: self.db,
                            key,
                            rdb_type: value_type,
                        }));
                    }
                    match self.input.read_value(value_type)? {
                        Some(value) => {
                            return Ok(Some(RdbItem::Entry(RdbEntry {
                                db: self.db,
                                key,
                                value,
                                expire_at_ms,
                                lru_idle_s,
                                lfu_freq,
                                source_type: Some(value_type),
                            })))
                        }
                        None => {
                            expire_at_ms = None;
                            lru_idle_s = None;
                            lfu_freq = None;
                        }
                    }
                }
            }
        }
    }
}

impl<R: Read> Iterator for RdbDecoder<R> {
    type Item = Result<RdbItem>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

/// A whole RDB file decoded in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RdbFile {
    /// RDB version from the header.
    pub version: u32,
    /// AUX fields in file order.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Function library sources.
    pub functions: Vec<Vec<u8>>,
    /// Every key, in file order.
    pub entries: Vec<RdbEntry>,
    /// (db, key) of values consumed but not decoded ([`DecodeOptions::skip_streams`]).
    pub skipped_keys: Vec<(u32, Vec<u8>)>,
}

/// Decodes a complete RDB image held in memory (the remaining-input checks use its length).
pub fn decode_rdb(bytes: &[u8]) -> Result<RdbFile> {
    decode_rdb_with_options(bytes, DecodeOptions::default())
}

/// As [`decode_rdb`] with explicit options (`input_len_bytes` is set from `bytes`). Keys
/// skipped under [`DecodeOptions::skip_streams`] are listed in [`RdbFile::skipped_keys`].
pub fn decode_rdb_with_options(bytes: &[u8], options: DecodeOptions) -> Result<RdbFile> {
    let options = DecodeOptions {
        input_len_bytes: Some(bytes.len() as u64),
        ..options
    };
    let mut decoder = RdbDecoder::with_options(bytes, options)?;
    let mut file = RdbFile {
        version: decoder.version(),
        ..RdbFile::default()
    };
    while let Some(item) = decoder.next_item()? {
        match item {
            RdbItem::Aux { key, value } => file.aux.push((key, value)),
            RdbItem::Function(code) => file.functions.push(code),
            RdbItem::Entry(entry) => file.entries.push(entry),
            RdbItem::Skipped { db, key, .. } => file.skipped_keys.push((db, key)),
            RdbItem::SelectDb(_) | RdbItem::ResizeDb { .. } => {}
        }
    }
    Ok(file)
}
