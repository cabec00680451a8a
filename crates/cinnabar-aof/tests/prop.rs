//! Property tests for the AOF reader: random command streams round-trip with exact offsets,
//! every prefix cut is a clean end or `Truncated` at the last complete command, and damaged
//! length lines are `Corrupt` or `Truncated`, never a panic.

use cinnabar_aof::{AofError, AofItem, AofReader};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Gen {
    Command(Vec<Vec<u8>>),
    Timestamp(u32),
}

fn item() -> impl Strategy<Value = Gen> {
    prop_oneof![
        4 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..6)
            .prop_map(Gen::Command),
        1 => any::<u32>().prop_map(Gen::Timestamp),
    ]
}

/// Encodes the stream; returns the bytes and each item's (start, end, is_command).
fn encode(items: &[Gen]) -> (Vec<u8>, Vec<(u64, u64, bool)>) {
    let mut out = Vec::new();
    let mut spans = Vec::new();
    for it in items {
        let start = out.len() as u64;
        match it {
            Gen::Command(args) => {
                out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
                for a in args {
                    out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    out.extend_from_slice(a);
                    out.extend_from_slice(b"\r\n");
                }
            }
            Gen::Timestamp(ts) => out.extend_from_slice(format!("#TS:{ts}\r\n").as_bytes()),
        }
        spans.push((start, out.len() as u64, matches!(it, Gen::Command(_))));
    }
    (out, spans)
}

fn read_all(bytes: &[u8]) -> (Vec<AofItem>, Option<AofError>) {
    let mut reader = AofReader::new(bytes);
    let mut items = Vec::new();
    loop {
        match reader.next_item() {
            Ok(Some(i)) => items.push(i),
            Ok(None) => return (items, None),
            Err(e) => return (items, Some(e)),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn round_trip(items in prop::collection::vec(item(), 0..12)) {
        let (bytes, spans) = encode(&items);
        let (read, err) = read_all(&bytes);
        prop_assert!(err.is_none(), "{err:?}");
        prop_assert_eq!(read.len(), items.len());
        for ((got, want), (start, end, _)) in read.iter().zip(&items).zip(&spans) {
            match (got, want) {
                (AofItem::Command { args, start_offset, end_offset }, Gen::Command(a)) => {
                    prop_assert_eq!(args, a);
                    prop_assert_eq!((*start_offset, *end_offset), (*start, *end));
                }
                (AofItem::Annotation { start_offset, end_offset, .. }, Gen::Timestamp(ts)) => {
                    prop_assert_eq!(got.timestamp_s(), Some(i64::from(*ts)));
                    prop_assert_eq!((*start_offset, *end_offset), (*start, *end));
                }
                _ => prop_assert!(false, "item kind mismatch"),
            }
        }
    }

    #[test]
    fn every_prefix_is_clean_or_truncated(items in prop::collection::vec(item(), 1..8)) {
        let (bytes, spans) = encode(&items);
        for cut in 0..=bytes.len() {
            let cut_u64 = cut as u64;
            let (read, err) = read_all(&bytes[..cut]);
            let complete = spans.iter().filter(|(_, end, _)| *end <= cut_u64).count();
            prop_assert_eq!(read.len(), complete);
            let on_boundary = cut == 0 || spans.iter().any(|(_, end, _)| *end == cut_u64);
            let last_command_end = spans
                .iter()
                .filter(|(_, end, cmd)| *cmd && *end <= cut_u64)
                .map(|(_, end, _)| *end)
                .max()
                .unwrap_or(0);
            match err {
                None => prop_assert!(on_boundary, "cut {cut} accepted mid-item"),
                Some(AofError::Truncated { valid_up_to }) => {
                    prop_assert!(!on_boundary);
                    prop_assert_eq!(valid_up_to, last_command_end);
                }
                Some(other) => prop_assert!(false, "cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn damaged_length_lines_never_panic(
        items in prop::collection::vec(item(), 1..8),
        pick in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let (mut bytes, _) = encode(&items);
        // Positions inside '*'/'$' length lines (prefix, digits, CR, LF).
        let mut positions = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'*' || bytes[i] == b'$' {
                let line_end = bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p + 1);
                positions.extend(i..line_end);
                // Skip the bulk payload after a '$' line so its bytes are not mistaken for headers.
                if bytes[i] == b'$' {
                    let len: usize = std::str::from_utf8(&bytes[i + 1..line_end - 2]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                    i = line_end + len + 2;
                    continue;
                }
                i = line_end;
            } else if bytes[i] == b'#' {
                i += bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| p + 1);
            } else {
                i += 1;
            }
        }
        prop_assume!(!positions.is_empty());
        let at = positions[pick.index(positions.len())];
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        let (_, err) = read_all(&bytes);
        if let Some(e) = err {
            prop_assert!(matches!(e, AofError::Truncated { .. } | AofError::Corrupt { .. }), "{e:?}");
        }
    }
}
