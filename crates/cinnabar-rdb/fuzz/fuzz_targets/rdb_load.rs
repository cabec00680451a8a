//! Fuzz target: arbitrary bytes through the RDB decoder, both with the input length known
//! (`decode_rdb`) and as an unbounded stream with checksum verification off (so mutations
//! reach the value decoders). Any panic, abort or runaway allocation is a bug.
#![no_main]

use cinnabar_rdb::{decode_rdb, DecodeOptions, RdbDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_rdb(data);
    let options = DecodeOptions {
        verify_checksum: false,
        max_string_bytes: 64 * 1024 * 1024,
        ..DecodeOptions::default()
    };
    if let Ok(mut decoder) = RdbDecoder::with_options(data, options) {
        while let Ok(Some(_)) = decoder.next_item() {}
    }
    // Also as a body after a valid header, so the fuzzer need not rediscover "REDIS0010".
    let mut with_header = b"REDIS0010".to_vec();
    with_header.extend_from_slice(data);
    let options = DecodeOptions {
        verify_checksum: false,
        skip_streams: true,
        ..DecodeOptions::default()
    };
    if let Ok(mut decoder) = RdbDecoder::with_options(with_header.as_slice(), options) {
        while let Ok(Some(_)) = decoder.next_item() {}
    }
});
