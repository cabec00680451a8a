//! `DUMP` / `RESTORE` payloads: the object type byte and value exactly as in an RDB file,
//! then the 2-byte little-endian RDB version (10) and the CRC64/Redis (little-endian) of
//! everything before it.

use crate::decoder::{DecodeOptions, Input};
use crate::encoder::{EncodeOptions, ValueWriter};
use crate::error::{RdbError, Result};
use crate::lzf::Compressor;
use crate::model::{opcode, RdbValue};
use crate::{CRC64, RDB_VERSION};

/// Footer size: 2-byte version + 8-byte CRC64.
const FOOTER_BYTES: usize = 10;

/// Checks a payload's footer (RDB version at most 10, CRC64 when `verify`): the body
/// before it and the version. The caller made sure the footer is there.
fn check_footer(payload: &[u8], verify: bool) -> Result<(&[u8], u16)> {
    let body_len = payload.len() - FOOTER_BYTES;
    let version = u16::from_le_bytes([payload[body_len], payload[body_len + 1]]);
    if u32::from(version) > RDB_VERSION {
        return Err(RdbError::UnsupportedVersion(u32::from(version)));
    }
    let mut stored = [0u8; 8];
    stored.copy_from_slice(&payload[body_len + 2..]);
    let expected = u64::from_le_bytes(stored);
    if verify {
        let computed = CRC64.checksum(&payload[..body_len + 2]);
        if computed != expected {
            return Err(RdbError::ChecksumMismatch { expected, computed });
        }
    }
    Ok((&payload[..body_len], version))
}

/// Builds the payload `DUMP` returns for `value`.
pub fn dump_payload(value: &RdbValue, options: &EncodeOptions) -> Result<Vec<u8>> {
    let mut compressor = Compressor::new();
    let mut payload = Vec::new();
    ValueWriter::new(options, &mut compressor).write_typed_value(&mut payload, value)?;
    payload.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let checksum = CRC64.checksum(&payload);
    payload.extend_from_slice(&checksum.to_le_bytes());
    Ok(payload)
}

/// What a payload holds besides the value.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredValue {
    /// The decoded value.
    pub value: RdbValue,
    /// The RDB object type byte it was stored with.
    pub rdb_type: u8,
    /// The RDB version in the footer.
    pub rdb_version: u16,
}

/// Decodes a `DUMP` payload as `RESTORE` does: checks the footer's version (at most 10) and
/// CRC64 (unless `options.verify_checksum` is false), then requires the value to use the
/// whole payload. An empty collection is an error here (Redis: "Bad data format").
pub fn restore_payload(payload: &[u8], options: &DecodeOptions) -> Result<RestoredValue> {
    if payload.len() < FOOTER_BYTES + 1 {
        return Err(RdbError::corrupt("DUMP payload too short"));
    }
    let (body, version) = check_footer(payload, options.verify_checksum)?;
    let options = DecodeOptions {
        input_len_bytes: Some(body.len() as u64),
        ..options.clone()
    };
    let mut input = Input::new(body, options);
    let rdb_type = input.read_u8()?;
    let value = input
        .read_value(rdb_type)?
        .ok_or_else(|| RdbError::corrupt("DUMP payload holds an empty collection"))?;
    if !input.into_inner().is_empty() {
        return Err(RdbError::corrupt(
            "DUMP payload has trailing bytes after the value",
        ));
    }
    Ok(RestoredValue {
        value,
        rdb_type,
        rdb_version: version,
    })
}

/// Builds the payload `FUNCTION DUMP` returns: each library as FUNCTION2 + its code (an RDB
/// string, compressed like Redis's), then the same footer as `DUMP`.
pub fn functions_dump_payload(codes: &[Vec<u8>], options: &EncodeOptions) -> Result<Vec<u8>> {
    let mut compressor = Compressor::new();
    let mut payload = Vec::new();
    for code in codes {
        payload.push(opcode::FUNCTION2);
        ValueWriter::new(options, &mut compressor).write_string(&mut payload, code);
    }
    payload.extend_from_slice(&(RDB_VERSION as u16).to_le_bytes());
    let checksum = CRC64.checksum(&payload);
    payload.extend_from_slice(&checksum.to_le_bytes());
    Ok(payload)
}

/// Decodes a `FUNCTION RESTORE` payload: checks the footer (version ≤ 10, CRC64), then reads
/// FUNCTION2 records to the end. Any other opcode is an error.
pub fn functions_restore_payload(payload: &[u8]) -> Result<Vec<Vec<u8>>> {
    if payload.len() < FOOTER_BYTES {
        return Err(RdbError::corrupt("DUMP payload too short"));
    }
    let (body, _) = check_footer(payload, true)?;
    let options = DecodeOptions {
        input_len_bytes: Some(body.len() as u64),
        ..DecodeOptions::default()
    };
    let mut input = Input::new(body, options);
    let mut codes = Vec::new();
    while input.consumed() < body.len() as u64 {
        let op = input.read_u8()?;
        if op != opcode::FUNCTION2 {
            return Err(RdbError::corrupt("given type is not a function"));
        }
        codes.push(input.read_string()?);
    }
    Ok(codes)
}
