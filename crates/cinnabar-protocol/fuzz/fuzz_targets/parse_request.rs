//! Fuzz target: the request parser must never panic, never hang, and must consume input
//! consistently whether it arrives whole or split at an arbitrary point.
#![no_main]

use bytes::BytesMut;
use cinnabar_protocol::{ParseLimits, ParseOutcome, Parser};
use libfuzzer_sys::fuzz_target;

fn run(chunks: &[&[u8]], limits: &ParseLimits) -> (Vec<Vec<Vec<u8>>>, bool) {
    let mut p = Parser::new();
    let mut buf = BytesMut::new();
    let mut args = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match p.parse(&mut buf, limits, &mut args) {
                Ok(ParseOutcome::Command) => {
                    assert!(!args.is_empty());
                    out.push(args.iter().map(|a| a.to_vec()).collect());
                }
                Ok(ParseOutcome::Incomplete) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = data[0] as usize % data.len();
    let body = &data[1..];
    let split = split.min(body.len());
    let limits = ParseLimits { max_bulk_len_bytes: 1 << 20, authenticated: data[0] & 1 == 0 };
    let whole = run(&[body], &limits);
    let parts = run(&[&body[..split], &body[split..]], &limits);
    // The same bytes give the same commands, however they are split.
    assert_eq!(whole, parts);
});
