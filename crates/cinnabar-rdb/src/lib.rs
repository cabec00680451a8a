//! cinnabar-rdb: Redis's RDB snapshot format, version 10 (Redis 7.0), as a standalone library.
//!
//! It reads every encoding Redis 7.0 writes or still loads and writes what Redis 7.0.15
//! writes, independent of the server's in-memory types: values travel as [`RdbValue`] /
//! [`RdbEntry`].
//!
//! * [`RdbDecoder`]: streaming, `Read`-based, one [`RdbItem`] at a time (memory bounded by one
//!   entry), with CRC64 verification; [`decode_rdb`] for an image in memory.
//! * [`RdbEncoder`] / [`encode_rdb`]: header, AUX fields, functions, SELECTDB + RESIZEDB,
//!   expiries, EOF + CRC64, choosing listpack / intset / quicklist encodings under Redis's
//!   default thresholds ([`EncodeOptions`]).
//! * [`dump_payload`] / [`restore_payload`]: `DUMP` / `RESTORE` payloads.
//! * [`lzf`]: LZF compression; [`blobs`]: listpack, intset, ziplist, zipmap.
//!
//! ```
//! use cinnabar_rdb::{encode_rdb, redis_aux_fields, EncodeOptions, RdbDecoder, RdbEntry, RdbItem, RdbValue};
//!
//! let entries = vec![
//!     RdbEntry::new(0, "greeting", RdbValue::String(b"hello".to_vec())).with_expire_at_ms(4_102_444_800_000),
//!     RdbEntry::new(1, "queue", RdbValue::List(vec![b"a".to_vec(), b"42".to_vec()])),
//! ];
//! let bytes = encode_rdb(&redis_aux_fields(1_700_000_000, 0), &[], &entries, &EncodeOptions::default())?;
//! // Streaming: any `Read` (wrap sockets and files in a BufReader).
//! let mut decoder = RdbDecoder::new(bytes.as_slice())?;
//! let mut keys = Vec::new();
//! while let Some(item) = decoder.next_item()? {
//!     if let RdbItem::Entry(entry) = item {
//!         keys.push((entry.db, entry.key, entry.expire_at_ms));
//!     }
//! }
//! assert_eq!(keys[0], (0, b"greeting".to_vec(), Some(4_102_444_800_000)));
//! assert_eq!(keys[1].0, 1);
//! # Ok::<(), cinnabar_rdb::RdbError>(())
//! ```
//!
//! # The format (RDB version 10)
//!
//! ```text
//! "REDIS" "0010"                      9-byte header: magic + 4 ASCII digits of version
//! { AUX key value }                   0xFA + two strings: redis-ver, redis-bits, ctime,
//!                                     used-mem, [repl-stream-db, repl-id, repl-offset],
//!                                     aof-base
//! { MODULE_AUX ... }                  0xF7 (rejected: needs the module)
//! { FUNCTION2 code }                  0xF5 + one string: a function library's source
//! { SELECTDB n  RESIZEDB size exp     0xFE + length; 0xFB + two lengths (size hints)
//!   { [EXPIRETIME_MS t] [IDLE s]      0xFC + i64 LE Unix ms (old: 0xFD + i32 LE seconds);
//!     [FREQ f]                        0xF8 + length (LRU idle s); 0xF9 + 1 byte (LFU counter)
//!     type key value } }              type byte (below), key string, value
//! EOF crc64                           0xFF + CRC-64/Redis (Jones, reflected) of every byte
//!                                     before it, little-endian; 0 means "not checked"
//! ```
//!
//! **Lengths** (`rdbSaveLen`): first byte's top two bits: `00` 6-bit length; `01` 14-bit
//! (6 bits + next byte, big-endian); `10` with `0x80`: u32 big-endian follows, `0x81`: u64
//! big-endian; `11`: a special string encoding in the low 6 bits.
//!
//! **Strings**: a length then raw bytes, or `0xC0` i8, `0xC1` i16 LE, `0xC2` i32 LE (the
//! decimal integer), or `0xC3` LZF: compressed length, uncompressed length, LZF data.
//! Redis integer-encodes canonical integers of at most 11 characters that fit 32 bits and
//! LZF-compresses strings longer than 20 bytes when that saves at least 4 bytes.
//!
//! **Value types** written by Redis 7.0 (see [`model::rdb_type`]):
//! * `0` STRING: one string.
//! * `18` LIST_QUICKLIST_2: node count, then per node a container (1 PLAIN: the string is one
//!   element; 2 PACKED: the string is a listpack) and a string.
//! * `2` SET: count + member strings; `11` SET_INTSET: one string holding an intset
//!   (u32 LE width 2/4/8, u32 LE count, sorted LE integers).
//! * `4` HASH: count + field/value strings; `16` HASH_LISTPACK: a listpack of field, value,
//!   field, value...
//! * `5` ZSET_2: count + (member string, f64 LE score), highest score first;
//!   `17` ZSET_LISTPACK: a listpack of member, score (score as integer or `%.17g` text),
//!   lowest score first.
//! * Loaded but no longer written: `1` LIST (plain strings), `3` ZSET (scores as text with a
//!   length byte; 253/254/255 = NaN/+inf/-inf), `9` HASH_ZIPMAP, `10` LIST_ZIPLIST,
//!   `12` ZSET_ZIPLIST, `13` HASH_ZIPLIST, `14` LIST_QUICKLIST (nodes are ziplists).
//! * Rejected with [`RdbError::Unsupported`]: `15`/`19` streams (or consumed and reported as
//!   [`RdbItem::Skipped`] with [`DecodeOptions::skip_streams`]), `6`/`7` modules.
//!
//! **Listpack**: u32 LE total bytes, u16 LE count (65535 = unknown), entries, `0xFF`. Each
//! entry is an encoding byte (`0xxxxxxx` 7-bit uint; `10xxxxxx` string < 64;
//! `110xxxxx` 13-bit int; `1110xxxx` string < 4096; `0xF0` string with u32 LE length;
//! `0xF1`..`0xF4` 16/24/32/64-bit LE ints), its data, and a back-length (the entry size in
//! 7-bit groups, readable from the right).
//!
//! **Encoding choices** (what Redis 7.0.15 does with its default config, verified byte for
//! byte against its `SAVE` and `DUMP` output): `hash-max-listpack-entries` is 512 (not 128)
//! and `-value` 64; `zset-max-listpack-entries` 128 and `-value` 64 (member length);
//! `set-max-intset-entries` 512; lists are quicklists whose listpack nodes take an element
//! while `node bytes + element bytes + 8 <= 8192` (`list-max-listpack-size -2`); elements of
//! 1 GiB or more get PLAIN nodes. Sets and hashes in hash-table form are written in the order
//! given (Redis: dict iteration order), so decoding and re-encoding a Redis file reproduces it.
//!
//! **DUMP payload**: type byte + value (as above) + u16 LE RDB version + CRC64 LE of all
//! preceding bytes.
//!
//! Decoded integers are returned in decimal; sorted sets come back sorted by (score, member);
//! empty collections are skipped (as Redis's loader does); expired keys are returned (the
//! caller decides). Every length from the input is untrusted: see [`DecodeOptions`].

pub mod blobs;
pub mod decoder;
pub mod dump;
pub mod encoder;
pub mod error;
pub mod lzf;
pub mod model;

pub use decoder::{
    decode_rdb, decode_rdb_with_options, DecodeOptions, RdbDecoder, RdbFile, RdbItem,
};
pub use dump::{
    dump_payload, functions_dump_payload, functions_restore_payload, restore_payload, RestoredValue,
};
pub use encoder::{encode_rdb, format_score, redis_aux_fields, EncodeOptions, RdbEncoder};
pub use error::{RdbError, Result};
pub use model::{opcode, rdb_type, RdbEntry, RdbValue};

/// The RDB version this crate writes and the newest it reads (Redis 7.0).
pub const RDB_VERSION: u32 = 10;

/// CRC-64/Redis, slice-by-16 tables.
pub(crate) static CRC64: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// A running CRC-64/Redis.
pub(crate) type Crc64Digest = crc::Digest<'static, u64, crc::Table<16>>;

/// CRC-64/Redis of `bytes` (the RDB trailer and DUMP footer checksum).
pub fn crc64(bytes: &[u8]) -> u64 {
    CRC64.checksum(bytes)
}
