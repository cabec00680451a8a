//! Fuzz target: arbitrary bytes as a `RESTORE` payload (checksum verification off so the
//! value decoder sees the mutations). Any panic, abort or runaway allocation is a bug.
#![no_main]

use cinnabar_rdb::{restore_payload, DecodeOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = DecodeOptions { verify_checksum: false, ..DecodeOptions::default() };
    let _ = restore_payload(data, &options);
});
