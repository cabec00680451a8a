//! The RDB encoder: writes what Redis 7.0.15 writes for the same data.
//!
//! Encodings follow Redis's defaults (configurable through [`EncodeOptions`]):
//! * strings: integer-encoded (8/16/32-bit) when they are canonical integers of at most 11
//!   characters, LZF-compressed when longer than 20 bytes and compression saves at least 4
//!   bytes, raw otherwise;
//! * lists: `LIST_QUICKLIST_2`, split into listpack nodes as `quicklistPushTail` does with
//!   `list-max-listpack-size -2` (8 KiB nodes); elements of 1 GiB or more go in PLAIN nodes;
//! * sets: `SET_INTSET` for at most 512 canonical integers, `SET` otherwise;
//! * hashes: `HASH_LISTPACK` for at most 512 pairs with fields and values of at most 64 bytes,
//!   `HASH` otherwise;
//! * sorted sets: `ZSET_LISTPACK` (ascending) for at most 128 members of at most 64 bytes,
//!   `ZSET_2` (binary scores, written highest first like Redis) otherwise.

use std::collections::HashSet;
use std::io::Write;

use crate::blobs::{build_intset, parse_strict_i64, ListpackBuilder};
use crate::decoder::{QUICKLIST_NODE_PACKED, QUICKLIST_NODE_PLAIN};
use crate::error::{RdbError, Result};
use crate::lzf::Compressor;
use crate::model::{opcode, rdb_type, RdbEntry, RdbValue};
use crate::{Crc64Digest, CRC64, RDB_VERSION};

/// Encoding choices, mirroring the redis.conf settings of the same names. The defaults are
/// Redis 7.0.15's (note `hash-max-listpack-entries` is 512, not 128).
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes.
    pub compression: bool,
    /// `rdbchecksum`: write the CRC64 trailer (0 otherwise, meaning "not checked").
    pub checksum: bool,
    /// `hash-max-listpack-entries`.
    pub hash_max_listpack_entries: usize,
    /// `hash-max-listpack-value` (bytes, applies to fields and values).
    pub hash_max_listpack_value_bytes: usize,
    /// `set-max-intset-entries`.
    pub set_max_intset_entries: usize,
    /// `zset-max-listpack-entries`.
    pub zset_max_listpack_entries: usize,
    /// `zset-max-listpack-value` (bytes, applies to members).
    pub zset_max_listpack_value_bytes: usize,
    /// `list-max-listpack-size`: negative = node size class (-2 = 8 KiB), positive = count.
    pub list_max_listpack_size: i32,
    /// Elements at least this long get a PLAIN quicklist node (Redis: 1 GiB).
    pub list_packed_threshold_bytes: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            compression: true,
            checksum: true,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value_bytes: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value_bytes: 64,
            list_max_listpack_size: -2,
            list_packed_threshold_bytes: 1 << 30,
        }
    }
}

/// The AUX fields Redis 7.0.15 writes at the top of an RDB made by `SAVE`/`BGSAVE`
/// (`redis-ver`, `redis-bits`, `ctime`, `used-mem`, `aof-base`).
pub fn redis_aux_fields(ctime_s: i64, used_mem_bytes: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (b"redis-ver".to_vec(), b"7.0.15".to_vec()),
        (b"redis-bits".to_vec(), b"64".to_vec()),
        (b"ctime".to_vec(), ctime_s.to_string().into_bytes()),
        (
            b"used-mem".to_vec(),
            used_mem_bytes.to_string().into_bytes(),
        ),
        (b"aof-base".to_vec(), b"0".to_vec()),
    ]
}

/// Serializes values; shared by the file encoder and DUMP payloads.
pub(crate) struct ValueWriter<'a> {
    pub(crate) options: &'a EncodeOptions,
    pub(crate) compressor: &'a mut Compressor,
    scratch: Vec<u8>,
}

/// `rdbSaveLen`.
pub(crate) fn write_length(buf: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        buf.push(len as u8);
    } else if len < 1 << 14 {
        buf.push(0x40 | (len >> 8) as u8);
        buf.push(len as u8);
    } else if len <= u64::from(u32::MAX) {
        buf.push(0x80);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        buf.push(0x81);
        buf.extend_from_slice(&len.to_be_bytes());
    }
}

impl<'a> ValueWriter<'a> {
    pub(crate) fn new(options: &'a EncodeOptions, compressor: &'a mut Compressor) -> Self {
        ValueWriter {
            options,
            compressor,
            scratch: Vec::new(),
        }
    }

    /// `rdbSaveRawString`: integer encoding, then LZF, then raw.
    pub(crate) fn write_string(&mut self, buf: &mut Vec<u8>, s: &[u8]) {
        if s.len() <= 11 {
            if let Some(v) = parse_strict_i64(s) {
                if let Ok(v8) = i8::try_from(v) {
                    buf.push(0xC0);
                    buf.push(v8 as u8);
                    return;
                } else if let Ok(v16) = i16::try_from(v) {
                    buf.push(0xC1);
                    buf.extend_from_slice(&v16.to_le_bytes());
                    return;
                } else if let Ok(v32) = i32::try_from(v) {
                    buf.push(0xC2);
                    buf.extend_from_slice(&v32.to_le_bytes());
                    return;
                }
            }
        }
        if self.options.compression
            && s.len() > 20
            && self
                .compressor
                .compress_into(s, s.len() - 4, &mut self.scratch)
        {
            buf.push(0xC3);
            write_length(buf, self.scratch.len() as u64);
            write_length(buf, s.len() as u64);
            buf.extend_from_slice(&self.scratch);
            return;
        }
        write_length(buf, s.len() as u64);
        buf.extend_from_slice(s);
    }

    /// Writes the object type byte followed by the value.
    pub(crate) fn write_typed_value(&mut self, buf: &mut Vec<u8>, value: &RdbValue) -> Result<()> {
        if value.is_empty() {
            return Err(RdbError::InvalidValue(format!(
                "empty {} (Redis never stores one)",
                value.type_name()
            )));
        }
        match value {
            RdbValue::String(s) => {
                buf.push(rdb_type::STRING);
                self.write_string(buf, s);
            }
            RdbValue::List(items) => {
                buf.push(rdb_type::LIST_QUICKLIST_2);
                self.write_quicklist(buf, items);
            }
            RdbValue::Set(members) => {
                check_distinct(members.iter().map(|m| m.as_slice()), "set member")?;
                let ints: Option<Vec<i64>> = if members.len() <= self.options.set_max_intset_entries
                {
                    members.iter().map(|m| parse_strict_i64(m)).collect()
                } else {
                    None
                };
                if let Some(ints) = ints {
                    buf.push(rdb_type::SET_INTSET);
                    let blob = build_intset(&ints);
                    self.write_string(buf, &blob);
                } else {
                    buf.push(rdb_type::SET);
                    write_length(buf, members.len() as u64);
                    for m in members {
                        self.write_string(buf, m);
                    }
                }
            }
            RdbValue::Hash(pairs) => {
                check_distinct(pairs.iter().map(|(f, _)| f.as_slice()), "hash field")?;
                let max = self.options.hash_max_listpack_value_bytes;
                if pairs.len() <= self.options.hash_max_listpack_entries
                    && pairs.iter().all(|(f, v)| f.len() <= max && v.len() <= max)
                {
                    buf.push(rdb_type::HASH_LISTPACK);
                    let mut lp = ListpackBuilder::new();
                    for (f, v) in pairs {
                        lp.push(f);
                        lp.push(v);
                    }
                    let blob = lp.finish();
                    self.write_string(buf, &blob);
                } else {
                    buf.push(rdb_type::HASH);
                    write_length(buf, pairs.len() as u64);
                    for (f, v) in pairs {
                        self.write_string(buf, f);
                        self.write_string(buf, v);
                    }
                }
            }
            RdbValue::ZSet(pairs) => {
                check_distinct(pairs.iter().map(|(m, _)| m.as_slice()), "sorted set member")?;
                if pairs.iter().any(|(_, s)| s.is_nan()) {
                    return Err(RdbError::InvalidValue("sorted set score is NaN".into()));
                }
                let mut sorted: Vec<&(Vec<u8>, f64)> = pairs.iter().collect();
                sorted.sort_by(|a, b| {
                    a.1.partial_cmp(&b.1)
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then_with(|| a.0.cmp(&b.0))
                });
                let max = self.options.zset_max_listpack_value_bytes;
                if pairs.len() <= self.options.zset_max_listpack_entries
                    && pairs.iter().all(|(m, _)| m.len() <= max)
                {
                    buf.push(rdb_type::ZSET_LISTPACK);
                    let mut lp = ListpackBuilder::new();
                    for (m, s) in sorted {
                        lp.push(m);
                        lp.push(format_score(*s).as_bytes());
                    }
                    let blob = lp.finish();
                    self.write_string(buf, &blob);
                } else {
                    buf.push(rdb_type::ZSET_2);
                    write_length(buf, pairs.len() as u64);
                    for (m, s) in sorted.into_iter().rev() {
                        self.write_string(buf, m);
                        buf.extend_from_slice(&s.to_le_bytes());
                    }
                }
            }
        }
        Ok(())
    }

    /// Splits a list into quicklist nodes the way repeated `quicklistPushTail` does.
    fn write_quicklist(&mut self, buf: &mut Vec<u8>, items: &[Vec<u8>]) {
        enum Node {
            Plain(usize),
            Packed(ListpackBuilder),
        }
        let mut nodes: Vec<Node> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if item.len() >= self.options.list_packed_threshold_bytes {
                nodes.push(Node::Plain(i));
                continue;
            }
            let fits = match nodes.last() {
                Some(Node::Packed(lp)) => {
                    node_allows_insert(lp, item.len(), self.options.list_max_listpack_size)
                }
                _ => false,
            };
            if !fits {
                nodes.push(Node::Packed(ListpackBuilder::new()));
            }
            if let Some(Node::Packed(lp)) = nodes.last_mut() {
                lp.push(item);
            }
        }
        write_length(buf, nodes.len() as u64);
        for node in nodes {
            match node {
                Node::Plain(i) => {
                    write_length(buf, QUICKLIST_NODE_PLAIN);
                    self.write_string(buf, &items[i]);
                }
                Node::Packed(lp) => {
                    write_length(buf, QUICKLIST_NODE_PACKED);
                    let blob = lp.finish();
                    self.write_string(buf, &blob);
                }
            }
        }
    }
}

/// `_quicklistNodeAllowInsert` for a PACKED node, as in Redis 7.0.15 (an estimated 8 bytes of
/// overhead per entry; `quicklistNodeExceedsLimit`).
fn node_allows_insert(lp: &ListpackBuilder, element_bytes: usize, fill: i32) -> bool {
    const SIZE_ESTIMATE_OVERHEAD_BYTES: usize = 8;
    const SIZE_SAFETY_LIMIT_BYTES: usize = 8192;
    const OPTIMIZATION_LEVEL_BYTES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
    let new_size = lp.size_bytes() + element_bytes + SIZE_ESTIMATE_OVERHEAD_BYTES;
    if fill < 0 {
        let level = ((-i64::from(fill) - 1) as usize).min(OPTIMIZATION_LEVEL_BYTES.len() - 1);
        new_size <= OPTIMIZATION_LEVEL_BYTES[level]
    } else {
        let count_limit = if fill == 0 { 1 } else { fill as usize };
        new_size <= SIZE_SAFETY_LIMIT_BYTES && lp.len() < count_limit
    }
}

fn check_distinct<'v>(items: impl Iterator<Item = &'v [u8]>, what: &str) -> Result<()> {
    let mut seen = HashSet::new();
    for item in items {
        if !seen.insert(item) {
            return Err(RdbError::InvalidValue(format!(
                "duplicate {what} {:?}",
                String::from_utf8_lossy(item)
            )));
        }
    }
    Ok(())
}

/// Formats a score like Redis's `d2string` (integers in `(-2^52, 2^52)` as integers,
/// otherwise `%.17g`; `inf`, `-inf`, `-0`).
pub fn format_score(score: f64) -> String {
    if score.is_infinite() {
        return if score > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if score == 0.0 {
        return if score.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    const MIN: f64 = -4_503_599_627_370_495.0;
    const MAX: f64 = 4_503_599_627_370_496.0;
    if score > MIN && score < MAX && score == (score as i64) as f64 {
        return (score as i64).to_string();
    }
    format_g17(score)
}

/// C's `%.17g` for a finite, nonzero double.
fn format_g17(d: f64) -> String {
    const PRECISION: i32 = 17;
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, d);
    let (mantissa, exponent) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..PRECISION).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", strip(&mantissa), sign, exponent.abs())
    } else {
        let decimals = (PRECISION - 1 - exponent).max(0) as usize;
        strip(&format!("{d:.decimals$}"))
    }
}

/// Writes an RDB file item by item: header on creation, EOF and CRC64 on [`finish`].
///
/// [`finish`]: RdbEncoder::finish
pub struct RdbEncoder<W: Write> {
    out: W,
    digest: Crc64Digest,
    options: EncodeOptions,
    compressor: Compressor,
    buf: Vec<u8>,
    current_db: Option<u32>,
}

impl<W: Write> RdbEncoder<W> {
    /// Writes the `REDIS0010` header.
    pub fn new(out: W, options: EncodeOptions) -> Result<Self> {
        let mut encoder = RdbEncoder {
            out,
            digest: CRC64.digest(),
            options,
            compressor: Compressor::new(),
            buf: Vec::new(),
            current_db: None,
        };
        encoder
            .buf
            .extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
        encoder.flush_buf()?;
        Ok(encoder)
    }

    fn flush_buf(&mut self) -> Result<()> {
        self.out.write_all(&self.buf).map_err(RdbError::Io)?;
        self.digest.update(&self.buf);
        self.buf.clear();
        Ok(())
    }

    fn value_writer(&mut self) -> (ValueWriter<'_>, &mut Vec<u8>) {
        (
            ValueWriter::new(&self.options, &mut self.compressor),
            &mut self.buf,
        )
    }

    /// Writes one AUX field (integers are stored integer-encoded, as Redis does).
    pub fn write_aux(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let (mut w, buf) = self.value_writer();
        buf.push(opcode::AUX);
        w.write_string(buf, key);
        w.write_string(buf, value);
        self.flush_buf()
    }

    /// Writes a function library (FUNCTION2 opcode + source code).
    pub fn write_function(&mut self, code: &[u8]) -> Result<()> {
        let (mut w, buf) = self.value_writer();
        buf.push(opcode::FUNCTION2);
        w.write_string(buf, code);
        self.flush_buf()
    }

    /// Writes SELECTDB, and RESIZEDB when `(db_size, expires_size)` is given.
    pub fn select_db(&mut self, db: u32, sizes: Option<(u64, u64)>) -> Result<()> {
        self.buf.push(opcode::SELECTDB);
        write_length(&mut self.buf, u64::from(db));
        if let Some((db_size, expires_size)) = sizes {
            self.buf.push(opcode::RESIZEDB);
            write_length(&mut self.buf, db_size);
            write_length(&mut self.buf, expires_size);
        }
        self.current_db = Some(db);
        self.flush_buf()
    }

    /// Writes one key: expiry, IDLE/FREQ when set, type, key, value. Emits a SELECTDB first
    /// when `entry.db` differs from the current database.
    pub fn write_entry(&mut self, entry: &RdbEntry) -> Result<()> {
        if self.current_db != Some(entry.db) {
            self.select_db(entry.db, None)?;
        }
        let (mut w, buf) = self.value_writer();
        if let Some(at_ms) = entry.expire_at_ms {
            buf.push(opcode::EXPIRETIME_MS);
            buf.extend_from_slice(&at_ms.to_le_bytes());
        }
        if let Some(idle_s) = entry.lru_idle_s {
            buf.push(opcode::IDLE);
            write_length(buf, idle_s);
        }
        if let Some(freq) = entry.lfu_freq {
            buf.push(opcode::FREQ);
            buf.push(freq);
        }
        // The type byte precedes the key, so serialize the value first and splice.
        let mut value_buf = Vec::new();
        let result = w.write_typed_value(&mut value_buf, &entry.value);
        if let Err(e) = result {
            buf.clear();
            return Err(e);
        }
        buf.push(value_buf[0]);
        w.write_string(buf, &entry.key);
        buf.extend_from_slice(&value_buf[1..]);
        self.flush_buf()
    }

    /// Writes EOF and the CRC64 trailer; returns the writer (flushed).
    pub fn finish(mut self) -> Result<W> {
        self.buf.push(opcode::EOF);
        self.flush_buf()?;
        let checksum = if self.options.checksum {
            self.digest.clone().finalize()
        } else {
            0
        };
        self.out
            .write_all(&checksum.to_le_bytes())
            .map_err(RdbError::Io)?;
        self.out.flush().map_err(RdbError::Io)?;
        Ok(self.out)
    }
}

/// Encodes a whole RDB image: header, the given AUX fields, function libraries, then the
/// entries grouped by database (ascending, stable within a database), each database opened
/// with SELECTDB + RESIZEDB, then EOF + CRC64.
pub fn encode_rdb(
    aux: &[(Vec<u8>, Vec<u8>)],
    functions: &[Vec<u8>],
    entries: &[RdbEntry],
    options: &EncodeOptions,
) -> Result<Vec<u8>> {
    let mut encoder = RdbEncoder::new(Vec::new(), options.clone())?;
    for (key, value) in aux {
        encoder.write_aux(key, value)?;
    }
    for code in functions {
        encoder.write_function(code)?;
    }
    let mut dbs: Vec<u32> = entries.iter().map(|e| e.db).collect();
    dbs.sort_unstable();
    dbs.dedup();
    for db in dbs {
        let in_db = || entries.iter().filter(move |e| e.db == db);
        let db_size = in_db().count() as u64;
        let expires_size = in_db().filter(|e| e.expire_at_ms.is_some()).count() as u64;
        encoder.select_db(db, Some((db_size, expires_size)))?;
        for entry in in_db() {
            encoder.write_entry(entry)?;
        }
    }
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_format_like_d2string() {
        assert_eq!(format_score(1.0), "1");
        assert_eq!(format_score(-3.0), "-3");
        assert_eq!(format_score(1.5), "1.5");
        assert_eq!(format_score(0.1), "0.10000000000000001");
        assert_eq!(format_score(1e20), "1e+20");
        assert_eq!(format_score(4503599627370496.0), "4503599627370496");
        assert_eq!(format_score(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_score(-0.0), "-0");
        assert_eq!(format_score(0.00001), "1.0000000000000001e-05");
    }

    #[test]
    fn lengths_use_the_smallest_form() {
        let mut buf = Vec::new();
        write_length(&mut buf, 63);
        write_length(&mut buf, 64);
        write_length(&mut buf, 16384);
        write_length(&mut buf, 1 << 33);
        assert_eq!(
            buf,
            [63, 0x40, 64, 0x80, 0, 0, 0x40, 0, 0x81, 0, 0, 0, 2, 0, 0, 0, 0]
        );
    }
}
