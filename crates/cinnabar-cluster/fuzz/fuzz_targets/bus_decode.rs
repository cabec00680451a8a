//! Fuzz target for the cluster bus decoder: framing + decode must never panic, and
//! anything that decodes must re-encode to a frame that decodes to the same message.
//! Run: `cd crates/cinnabar-cluster && RUSTC_BOOTSTRAP=1 cargo fuzz run bus_decode`.
#![no_main]

use cinnabar_cluster::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(total)) = wire::frame_len(data) {
        if data.len() >= total {
            if let Ok(msg) = wire::decode(&data[..total]) {
                let again = wire::encode(&msg);
                assert_eq!(wire::decode(&again).as_ref(), Ok(&msg));
            }
        }
    }
    let _ = wire::decode(data);
});
