//! The compact blob encodings stored as RDB strings: listpack (Redis 7.0's small hashes,
//! sorted sets and quicklist nodes), intset (small integer sets), and the pre-7.0 ziplist and
//! pre-2.6 zipmap (read only). Every offset and length inside a blob is checked against the
//! blob; integers come back as their decimal strings.

use crate::error::{RdbError, Result};

/// Parses a decimal integer exactly like Redis's `string2ll` (no sign other than a leading
/// `-`, no leading zeros, no spaces, within `i64`). Redis uses this test to decide whether a
/// string may be stored integer-encoded, so the encoder must use it too. The one
/// implementation lives in `cinnabar-protocol`.
pub use cinnabar_protocol::parser::parse_i64 as parse_strict_i64;

/// The decimal form of `v`.
pub fn i64_to_bytes(v: i64) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn corrupt(what: &str) -> RdbError {
    RdbError::corrupt(what.to_string())
}

fn read_u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Sign-extends the low `bits` bits of `raw`.
fn sign_extend(raw: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((raw << shift) as i64) >> shift
}

// ---------------------------------------------------------------------------------------------
// Listpack
// ---------------------------------------------------------------------------------------------

/// Listpack header: total bytes (u32 LE) + element count (u16 LE, 65535 = unknown).
const LISTPACK_HEADER_BYTES: usize = 6;
const LISTPACK_END: u8 = 0xFF;
const LISTPACK_COUNT_UNKNOWN: u16 = u16::MAX;

/// Decodes every element of a listpack. Checks the header's byte and element counts, each
/// entry's back-length, and the terminator.
pub fn parse_listpack(blob: &[u8]) -> Result<Vec<Vec<u8>>> {
    let total = read_u32_le(blob, 0).ok_or_else(|| corrupt("listpack header truncated"))? as usize;
    let declared_count =
        read_u16_le(blob, 4).ok_or_else(|| corrupt("listpack header truncated"))?;
    if total != blob.len() || total < LISTPACK_HEADER_BYTES + 1 {
        return Err(corrupt("listpack total bytes does not match its blob"));
    }
    let mut items = Vec::with_capacity(usize::from(declared_count).min(blob.len() / 2));
    let mut p = LISTPACK_HEADER_BYTES;
    loop {
        let first = *blob
            .get(p)
            .ok_or_else(|| corrupt("listpack missing terminator"))?;
        if first == LISTPACK_END {
            if p + 1 != blob.len() {
                return Err(corrupt("listpack has bytes after its terminator"));
            }
            break;
        }
        let (item, entry_bytes) = parse_listpack_entry(&blob[p..])?;
        // Back-length: the entry size in 7-bit groups, most significant group first, each
        // byte but the last-read carrying the continuation bit.
        let backlen_bytes = listpack_backlen_size(entry_bytes as u64);
        let backlen = blob
            .get(p + entry_bytes..p + entry_bytes + backlen_bytes)
            .ok_or_else(|| corrupt("listpack entry back-length truncated"))?;
        let mut encoded = [0u8; 5];
        encode_listpack_backlen(&mut encoded, entry_bytes as u64);
        if backlen != &encoded[..backlen_bytes] {
            return Err(corrupt("listpack entry back-length mismatch"));
        }
        items.push(item);
        p += entry_bytes + backlen_bytes;
    }
    if declared_count != LISTPACK_COUNT_UNKNOWN && usize::from(declared_count) != items.len() {
        return Err(corrupt("listpack element count does not match its header"));
    }
    Ok(items)
}

/// Decodes the entry at the start of `b`: (value, bytes of encoding + data).
fn parse_listpack_entry(b: &[u8]) -> Result<(Vec<u8>, usize)> {
    let truncated = || corrupt("listpack entry truncated");
    let first = b[0];
    let int_entry = |size: usize, bits: u32| -> Result<(Vec<u8>, usize)> {
        let data = b.get(1..1 + size).ok_or_else(truncated)?;
        let mut raw = [0u8; 8];
        raw[..size].copy_from_slice(data);
        let v = sign_extend(u64::from_le_bytes(raw), bits);
        Ok((i64_to_bytes(v), 1 + size))
    };
    let str_entry = |header: usize, len: usize| -> Result<(Vec<u8>, usize)> {
        let data = b.get(header..header + len).ok_or_else(truncated)?;
        Ok((data.to_vec(), header + len))
    };
    if first & 0x80 == 0 {
        // 0xxxxxxx: 7-bit unsigned integer.
        Ok((i64_to_bytes(i64::from(first)), 1))
    } else if first & 0xC0 == 0x80 {
        // 10xxxxxx: string up to 63 bytes.
        str_entry(1, usize::from(first & 0x3F))
    } else if first & 0xE0 == 0xC0 {
        // 110xxxxx yyyyyyyy: 13-bit signed integer.
        let second = *b.get(1).ok_or_else(truncated)?;
        let raw = (u64::from(first & 0x1F) << 8) | u64::from(second);
        Ok((i64_to_bytes(sign_extend(raw, 13)), 2))
    } else if first & 0xF0 == 0xE0 {
        // 1110xxxx yyyyyyyy: string up to 4095 bytes.
        let second = *b.get(1).ok_or_else(truncated)?;
        str_entry(2, (usize::from(first & 0x0F) << 8) | usize::from(second))
    } else {
        match first {
            0xF0 => {
                let len = read_u32_le(b, 1).ok_or_else(truncated)? as usize;
                str_entry(5, len)
            }
            0xF1 => int_entry(2, 16),
            0xF2 => int_entry(3, 24),
            0xF3 => int_entry(4, 32),
            0xF4 => int_entry(8, 64),
            _ => Err(corrupt("listpack entry has an invalid encoding byte")),
        }
    }
}

fn listpack_backlen_size(entry_bytes: u64) -> usize {
    match entry_bytes {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// `lpEncodeBacklen`: writes the back-length of an entry of `l` bytes into `buf`.
fn encode_listpack_backlen(buf: &mut [u8; 5], l: u64) -> usize {
    let size = listpack_backlen_size(l);
    match size {
        1 => buf[0] = l as u8,
        2 => {
            buf[0] = (l >> 7) as u8;
            buf[1] = ((l & 127) | 128) as u8;
        }
        3 => {
            buf[0] = (l >> 14) as u8;
            buf[1] = (((l >> 7) & 127) | 128) as u8;
            buf[2] = ((l & 127) | 128) as u8;
        }
        4 => {
            buf[0] = (l >> 21) as u8;
            buf[1] = (((l >> 14) & 127) | 128) as u8;
            buf[2] = (((l >> 7) & 127) | 128) as u8;
            buf[3] = ((l & 127) | 128) as u8;
        }
        _ => {
            buf[0] = (l >> 28) as u8;
            buf[1] = (((l >> 21) & 127) | 128) as u8;
            buf[2] = (((l >> 14) & 127) | 128) as u8;
            buf[3] = (((l >> 7) & 127) | 128) as u8;
            buf[4] = ((l & 127) | 128) as u8;
        }
    }
    size
}

/// Builds a listpack the way Redis's `lpAppend` does: strings that pass
/// [`parse_strict_i64`] are stored as the smallest integer encoding.
#[derive(Debug, Clone)]
pub struct ListpackBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackBuilder {
    /// An empty listpack.
    pub fn new() -> Self {
        ListpackBuilder {
            buf: vec![0; LISTPACK_HEADER_BYTES],
            count: 0,
        }
    }

    /// Bytes the finished listpack would occupy (`lpBytes`).
    pub fn size_bytes(&self) -> usize {
        self.buf.len() + 1
    }

    /// Elements appended so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends one element.
    pub fn push(&mut self, element: &[u8]) {
        let start = self.buf.len();
        if let Some(v) = parse_strict_i64(element) {
            self.push_int(v);
        } else {
            let len = element.len();
            if len < 64 {
                self.buf.push(0x80 | len as u8);
            } else if len < 4096 {
                self.buf.push(0xE0 | (len >> 8) as u8);
                self.buf.push(len as u8);
            } else {
                self.buf.push(0xF0);
                self.buf.extend_from_slice(&(len as u32).to_le_bytes());
            }
            self.buf.extend_from_slice(element);
        }
        let entry_bytes = (self.buf.len() - start) as u64;
        let mut backlen = [0u8; 5];
        let n = encode_listpack_backlen(&mut backlen, entry_bytes);
        self.buf.extend_from_slice(&backlen[..n]);
        self.count += 1;
    }

    fn push_int(&mut self, v: i64) {
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u64) & 0x1FFF;
            self.buf.push(0xC0 | (u >> 8) as u8);
            self.buf.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            self.buf.push(0xF1);
            self.buf.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8_388_608..=8_388_607).contains(&v) {
            self.buf.push(0xF2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) {
            self.buf.push(0xF3);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.buf.push(0xF4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Terminates the listpack and fills in its header.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(LISTPACK_END);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = if self.count < usize::from(LISTPACK_COUNT_UNKNOWN) {
            self.count as u16
        } else {
            LISTPACK_COUNT_UNKNOWN
        };
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

// ---------------------------------------------------------------------------------------------
// Intset
// ---------------------------------------------------------------------------------------------

/// Decodes an intset: encoding width (u32 LE: 2, 4 or 8), count (u32 LE), then the sorted
/// little-endian integers. Requires strictly ascending members, as Redis's deep check does.
pub fn parse_intset(blob: &[u8]) -> Result<Vec<Vec<u8>>> {
    let width = read_u32_le(blob, 0).ok_or_else(|| corrupt("intset header truncated"))? as usize;
    let count = read_u32_le(blob, 4).ok_or_else(|| corrupt("intset header truncated"))? as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(corrupt("intset has an invalid encoding width"));
    }
    if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(blob.len()) {
        return Err(corrupt("intset size does not match its count"));
    }
    let mut out = Vec::with_capacity(count);
    let mut previous: Option<i64> = None;
    for chunk in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i64::from(i16::from_le_bytes([chunk[0], chunk[1]])),
            4 => i64::from(i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])),
            _ => i64::from_le_bytes([
                chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
            ]),
        };
        if previous.is_some_and(|p| p >= v) {
            return Err(corrupt("intset members are not strictly ascending"));
        }
        previous = Some(v);
        out.push(i64_to_bytes(v));
    }
    Ok(out)
}

/// Encodes distinct integers as an intset with the smallest width that holds them all.
pub fn build_intset(values: &[i64]) -> Vec<u8> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let fits = |lo: i64, hi: i64| sorted.iter().all(|v| (lo..=hi).contains(v));
    let width: usize = if fits(i16::MIN.into(), i16::MAX.into()) {
        2
    } else if fits(i32::MIN.into(), i32::MAX.into()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + sorted.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for v in sorted {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Ziplist (read only)
// ---------------------------------------------------------------------------------------------

/// Decodes every element of a ziplist: zlbytes (u32 LE), zltail (u32 LE), zllen (u16 LE),
/// entries (prevlen, encoding, data), 0xFF.
pub fn parse_ziplist(blob: &[u8]) -> Result<Vec<Vec<u8>>> {
    const HEADER_BYTES: usize = 10;
    let total = read_u32_le(blob, 0).ok_or_else(|| corrupt("ziplist header truncated"))? as usize;
    let tail = read_u32_le(blob, 4).ok_or_else(|| corrupt("ziplist header truncated"))? as usize;
    let declared_count = read_u16_le(blob, 8).ok_or_else(|| corrupt("ziplist header truncated"))?;
    if total != blob.len() || total < HEADER_BYTES + 1 || tail >= total {
        return Err(corrupt("ziplist header does not match its blob"));
    }
    let truncated = || corrupt("ziplist entry truncated");
    let mut items = Vec::with_capacity(usize::from(declared_count).min(blob.len() / 2));
    let mut p = HEADER_BYTES;
    let mut previous_entry_bytes = 0usize;
    loop {
        let first = *blob
            .get(p)
            .ok_or_else(|| corrupt("ziplist missing terminator"))?;
        if first == 0xFF {
            if p + 1 != blob.len() {
                return Err(corrupt("ziplist has bytes after its terminator"));
            }
            break;
        }
        let start = p;
        let prevlen = if first < 254 {
            p += 1;
            usize::from(first)
        } else if first == 254 {
            let v = read_u32_le(blob, p + 1).ok_or_else(truncated)? as usize;
            p += 5;
            v
        } else {
            return Err(corrupt("ziplist prevlen invalid"));
        };
        if prevlen != previous_entry_bytes {
            return Err(corrupt("ziplist prevlen does not match the previous entry"));
        }
        let enc = *blob.get(p).ok_or_else(truncated)?;
        let take = |from: usize, len: usize| -> Result<&[u8]> {
            blob.get(from..from + len).ok_or_else(truncated)
        };
        let int_at = |from: usize, size: usize| -> Result<i64> {
            let data = take(from, size)?;
            let mut raw = [0u8; 8];
            raw[..size].copy_from_slice(data);
            Ok(sign_extend(u64::from_le_bytes(raw), (size * 8) as u32))
        };
        let (item, end) = match enc >> 6 {
            0 => {
                let len = usize::from(enc & 0x3F);
                (take(p + 1, len)?.to_vec(), p + 1 + len)
            }
            1 => {
                let second = *blob.get(p + 1).ok_or_else(truncated)?;
                let len = (usize::from(enc & 0x3F) << 8) | usize::from(second);
                (take(p + 2, len)?.to_vec(), p + 2 + len)
            }
            2 => {
                if enc != 0x80 {
                    return Err(corrupt("ziplist string encoding invalid"));
                }
                let bytes = take(p + 1, 4)?;
                let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
                (take(p + 5, len)?.to_vec(), p + 5 + len)
            }
            _ => match enc {
                0xC0 => (i64_to_bytes(int_at(p + 1, 2)?), p + 3),
                0xD0 => (i64_to_bytes(int_at(p + 1, 4)?), p + 5),
                0xE0 => (i64_to_bytes(int_at(p + 1, 8)?), p + 9),
                0xF0 => (i64_to_bytes(int_at(p + 1, 3)?), p + 4),
                0xFE => (i64_to_bytes(int_at(p + 1, 1)?), p + 2),
                0xF1..=0xFD => (i64_to_bytes(i64::from(enc & 0x0F) - 1), p + 1),
                _ => return Err(corrupt("ziplist integer encoding invalid")),
            },
        };
        items.push(item);
        previous_entry_bytes = end - start;
        p = end;
    }
    if declared_count != u16::MAX && usize::from(declared_count) != items.len() {
        return Err(corrupt("ziplist element count does not match its header"));
    }
    Ok(items)
}

// ---------------------------------------------------------------------------------------------
// Zipmap (read only)
// ---------------------------------------------------------------------------------------------

/// Decodes a zipmap: zmlen (1 byte), then (len key len free value padding)*, 0xFF. Lengths
/// below 254 take one byte; 254 is followed by a u32 LE length.
pub fn parse_zipmap(blob: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let truncated = || corrupt("zipmap truncated");
    let mut p = 1usize;
    if blob.is_empty() {
        return Err(truncated());
    }
    let read_len = |p: &mut usize| -> Result<Option<usize>> {
        let first = *blob.get(*p).ok_or_else(truncated)?;
        match first {
            0xFF => Ok(None),
            254 => {
                let v = read_u32_le(blob, *p + 1).ok_or_else(truncated)? as usize;
                *p += 5;
                Ok(Some(v))
            }
            253 => Err(corrupt("zipmap length byte 253 is invalid")),
            n => {
                *p += 1;
                Ok(Some(usize::from(n)))
            }
        }
    };
    let mut pairs = Vec::new();
    loop {
        let Some(key_len) = read_len(&mut p)? else {
            if p + 1 != blob.len() {
                return Err(corrupt("zipmap has bytes after its terminator"));
            }
            break;
        };
        let key = blob.get(p..p + key_len).ok_or_else(truncated)?.to_vec();
        p += key_len;
        let value_len = read_len(&mut p)?.ok_or_else(|| corrupt("zipmap key without value"))?;
        let free = usize::from(*blob.get(p).ok_or_else(truncated)?);
        p += 1;
        let value = blob.get(p..p + value_len).ok_or_else(truncated)?.to_vec();
        p += value_len + free;
        pairs.push((key, value));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integer_parsing_matches_string2ll() {
        assert_eq!(parse_strict_i64(b"0"), Some(0));
        assert_eq!(parse_strict_i64(b"-1"), Some(-1));
        assert_eq!(parse_strict_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_strict_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"-",
            b"1a",
        ] {
            assert_eq!(
                parse_strict_i64(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn listpack_round_trips_every_encoding() {
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        let elements: Vec<Vec<u8>> = vec![
            b"0".to_vec(),
            b"127".to_vec(),
            b"128".to_vec(),
            b"-4096".to_vec(),
            b"4095".to_vec(),
            b"-32768".to_vec(),
            b"8388607".to_vec(),
            b"-8388609".to_vec(),
            b"2147483647".to_vec(),
            b"-9223372036854775808".to_vec(),
            b"hello".to_vec(),
            b"007".to_vec(),
            b"".to_vec(),
            mid,
            long,
        ];
        let mut builder = ListpackBuilder::new();
        for e in &elements {
            builder.push(e);
        }
        let blob = builder.finish();
        assert_eq!(parse_listpack(&blob).expect("valid listpack"), elements);
    }

    #[test]
    fn intset_round_trips_and_picks_width() {
        let blob = build_intset(&[3, -2, 1]);
        assert_eq!(&blob[..4], &2u32.to_le_bytes());
        assert_eq!(
            parse_intset(&blob).expect("valid"),
            vec![b"-2".to_vec(), b"1".to_vec(), b"3".to_vec()]
        );
        let blob = build_intset(&[1, i64::MAX]);
        assert_eq!(&blob[..4], &8u32.to_le_bytes());
        assert!(parse_intset(&blob[..blob.len() - 1]).is_err());
    }
}
