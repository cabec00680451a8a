//! Encoder -> decoder round trips (fixed datasets and proptest), streaming behaviour, the
//! pre-7.0 encodings (hand-built ziplists, zipmaps, text scores, plain lists), rejected
//! content, and a corruption sweep over the golden files: truncations and bit flips must give
//! an error or a value, never a panic or a huge allocation.

mod common;

use std::io::Read;

use cinnabar_rdb::{
    crc64, decode_rdb, dump_payload, encode_rdb, opcode, rdb_type, redis_aux_fields,
    restore_payload, DecodeOptions, EncodeOptions, RdbDecoder, RdbEntry, RdbError, RdbItem,
    RdbValue,
};
use common::*;
use proptest::prelude::*;

fn normalized(entries: &[RdbEntry]) -> Vec<(KeyDescription, Option<u64>, Option<u8>)> {
    entries
        .iter()
        .map(|e| (describe_entry(e), e.lru_idle_s, e.lfu_freq))
        .collect()
}

fn round_trip(entries: &[RdbEntry], options: &EncodeOptions) {
    let bytes =
        encode_rdb(&redis_aux_fields(1_700_000_000, 123), &[], entries, options).expect("encode");
    let file = decode_rdb(&bytes).expect("decode");
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| e.db);
    assert_eq!(normalized(&file.entries), normalized(&sorted));
}

#[test]
fn datasets_round_trip_with_and_without_compression() {
    let mut entries = golden_dataset();
    entries.extend(policy_dataset().into_iter().map(|mut e| {
        e.db = 7;
        e.lfu_freq = Some(9);
        e.lru_idle_s = Some(123_456);
        e
    }));
    for compression in [true, false] {
        let options = EncodeOptions {
            compression,
            ..EncodeOptions::default()
        };
        round_trip(&entries, &options);
    }
    // Tiny thresholds force every large encoding.
    let tiny = EncodeOptions {
        hash_max_listpack_entries: 1,
        set_max_intset_entries: 1,
        zset_max_listpack_entries: 1,
        list_max_listpack_size: 2,
        list_packed_threshold_bytes: 100,
        ..EncodeOptions::default()
    };
    round_trip(&entries, &tiny);
}

#[test]
fn unchecked_trailer_is_accepted_and_bad_trailer_rejected() {
    let entries = golden_dataset();
    let options = EncodeOptions {
        checksum: false,
        ..EncodeOptions::default()
    };
    let bytes = encode_rdb(&[], &[], &entries, &options).expect("encode");
    assert_eq!(&bytes[bytes.len() - 8..], &[0u8; 8]);
    assert_eq!(
        decode_rdb(&bytes).expect("decode").entries.len(),
        entries.len()
    );

    let mut bytes = encode_rdb(&[], &[], &entries, &EncodeOptions::default()).expect("encode");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    assert!(matches!(
        decode_rdb(&bytes),
        Err(RdbError::ChecksumMismatch { .. })
    ));
}

/// A reader that hands out one byte per call, like a slow socket.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        buf[0] = self.0[0];
        self.0 = &self.0[1..];
        Ok(1)
    }
}

#[test]
fn streaming_decoder_stops_at_the_trailer() {
    let entries = golden_dataset();
    let mut bytes = encode_rdb(
        &redis_aux_fields(1, 2),
        &[b"code".to_vec()],
        &entries,
        &EncodeOptions::default(),
    )
    .expect("encode");
    let rdb_len = bytes.len() as u64;
    bytes.extend_from_slice(b"+replication stream follows");
    let mut decoder = RdbDecoder::new(Trickle(&bytes)).expect("header");
    let mut seen = Vec::new();
    let mut selects = Vec::new();
    let mut resizes = 0;
    let mut functions = 0;
    while let Some(item) = decoder.next_item().expect("item") {
        match item {
            RdbItem::Entry(e) => seen.push(e),
            RdbItem::SelectDb(db) => selects.push(db),
            RdbItem::ResizeDb { .. } => resizes += 1,
            RdbItem::Function(_) => functions += 1,
            RdbItem::Aux { .. } | RdbItem::Skipped { .. } => {}
        }
    }
    assert!(decoder.is_finished());
    assert_eq!(decoder.consumed_bytes(), rdb_len);
    assert_eq!(selects, vec![0, 1, 3]);
    assert_eq!((resizes, functions), (3, 1));
    assert_eq!(seen.len(), entries.len());
    let mut rest = String::new();
    decoder
        .into_inner()
        .read_to_string(&mut rest)
        .expect("rest");
    assert_eq!(rest, "+replication stream follows");
}

// ---------------------------------------------------------------------------------------------
// Hand-built files with pre-7.0 encodings and special opcodes
// ---------------------------------------------------------------------------------------------

fn raw_string(s: &[u8]) -> Vec<u8> {
    assert!(s.len() < 64);
    let mut out = vec![s.len() as u8];
    out.extend_from_slice(s);
    out
}

fn blob_string(s: &[u8]) -> Vec<u8> {
    assert!(s.len() < 16384);
    let mut out = vec![0x40 | (s.len() >> 8) as u8, s.len() as u8];
    out.extend_from_slice(s);
    out
}

/// A minimal ziplist writer (strings < 64 bytes and every integer encoding).
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev_len = 0usize;
    let mut tail = 10;
    for item in items {
        let start = body.len();
        tail = 10 + start;
        if prev_len < 254 {
            body.push(prev_len as u8);
        } else {
            body.push(254);
            body.extend_from_slice(&(prev_len as u32).to_le_bytes());
        }
        match std::str::from_utf8(item)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|v| v.to_string().as_bytes() == *item)
        {
            Some(v) if (0..=12).contains(&v) => body.push(0xF1 + v as u8),
            Some(v) if i8::try_from(v).is_ok() => {
                body.push(0xFE);
                body.push(v as i8 as u8);
            }
            Some(v) if i16::try_from(v).is_ok() => {
                body.push(0xC0);
                body.extend_from_slice(&(v as i16).to_le_bytes());
            }
            Some(v) if (-(1 << 23)..(1 << 23)).contains(&v) => {
                body.push(0xF0);
                body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            Some(v) if i32::try_from(v).is_ok() => {
                body.push(0xD0);
                body.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Some(v) => {
                body.push(0xE0);
                body.extend_from_slice(&v.to_le_bytes());
            }
            None => {
                body.push(item.len() as u8);
                body.extend_from_slice(item);
            }
        }
        prev_len = body.len() - start;
    }
    body.push(0xFF);
    let mut out = Vec::new();
    out.extend_from_slice(&((body.len() + 10) as u32).to_le_bytes());
    out.extend_from_slice(&(tail as u32).to_le_bytes());
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn zipmap(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = vec![pairs.len() as u8];
    for (k, v) in pairs {
        out.push(k.len() as u8);
        out.extend_from_slice(k);
        out.push(v.len() as u8);
        out.push(2); // free bytes
        out.extend_from_slice(v);
        out.extend_from_slice(b"..");
    }
    out.push(0xFF);
    out
}

fn file(version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = format!("REDIS{version:04}").into_bytes();
    out.extend_from_slice(body);
    out.push(opcode::EOF);
    if version >= 5 {
        let crc = crc64(&out);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    out
}

fn key(t: u8, k: &[u8]) -> Vec<u8> {
    let mut out = vec![t];
    out.extend(raw_string(k));
    out
}

#[test]
fn pre_7_0_encodings_decode() {
    let mut body = vec![opcode::SELECTDB, 2];
    // Plain list, text-score zset, hashtable hash.
    body.extend(key(rdb_type::LIST, b"l"));
    body.push(2);
    body.extend(raw_string(b"a"));
    body.extend([0xC1, 0x39, 0x30]); // int16 12345
    body.extend(key(rdb_type::ZSET, b"z"));
    body.push(3);
    body.extend(raw_string(b"x"));
    body.extend([3, b'1', b'.', b'5']);
    body.extend(raw_string(b"y"));
    body.push(255); // -inf
    body.extend(raw_string(b"w"));
    body.push(254); // +inf
                    // Expiry in seconds, then a ziplist list.
    body.push(opcode::EXPIRETIME);
    body.extend(2_000_000_000i32.to_le_bytes());
    body.extend(key(rdb_type::LIST_ZIPLIST, b"zl"));
    let long = vec![b'q'; 60];
    body.extend(blob_string(&ziplist(&[
        b"hello",
        b"7",
        b"-100",
        b"30000",
        b"-5000000",
        b"2000000000",
        b"9000000000",
        &long,
    ])));
    body.extend(key(rdb_type::HASH_ZIPLIST, b"hz"));
    body.extend(blob_string(&ziplist(&[b"f", b"v", b"n", b"1"])));
    body.extend(key(rdb_type::ZSET_ZIPLIST, b"zz"));
    body.extend(blob_string(&ziplist(&[b"a", b"2", b"b", b"1.25"])));
    body.extend(key(rdb_type::HASH_ZIPMAP, b"hm"));
    body.extend(blob_string(&zipmap(&[(b"k1", b"v1"), (b"k2", b"")])));
    body.extend(key(rdb_type::LIST_QUICKLIST, b"ql"));
    body.push(2);
    body.extend(blob_string(&ziplist(&[b"a", b"b"])));
    body.extend(blob_string(&ziplist(&[b"c"])));
    // An empty set is skipped, like Redis does.
    body.extend(key(rdb_type::SET, b"empty"));
    body.push(0);

    for version in [4, 9] {
        let bytes = file(version, &body);
        let decoded = decode_rdb(&bytes).expect("decode");
        assert_eq!(decoded.version, version);
        let get = |k: &[u8]| {
            decoded
                .entries
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.clone())
                .expect("key")
        };
        let s = |v: &[u8]| v.to_vec();
        assert_eq!(get(b"l"), RdbValue::List(vec![s(b"a"), s(b"12345")]));
        assert_eq!(
            get(b"z"),
            RdbValue::ZSet(vec![
                (s(b"y"), f64::NEG_INFINITY),
                (s(b"x"), 1.5),
                (s(b"w"), f64::INFINITY)
            ])
        );
        assert_eq!(
            get(b"zl"),
            RdbValue::List(vec![
                s(b"hello"),
                s(b"7"),
                s(b"-100"),
                s(b"30000"),
                s(b"-5000000"),
                s(b"2000000000"),
                s(b"9000000000"),
                long.clone()
            ])
        );
        assert_eq!(
            get(b"hz"),
            RdbValue::Hash(vec![(s(b"f"), s(b"v")), (s(b"n"), s(b"1"))])
        );
        assert_eq!(
            get(b"zz"),
            RdbValue::ZSet(vec![(s(b"b"), 1.25), (s(b"a"), 2.0)])
        );
        assert_eq!(
            get(b"hm"),
            RdbValue::Hash(vec![(s(b"k1"), s(b"v1")), (s(b"k2"), s(b""))])
        );
        assert_eq!(get(b"ql"), RdbValue::List(vec![s(b"a"), s(b"b"), s(b"c")]));
        assert!(decoded
            .entries
            .iter()
            .all(|e| e.db == 2 && e.key != b"empty"));
        let zl = decoded.entries.iter().find(|e| e.key == b"zl").expect("zl");
        assert_eq!(zl.expire_at_ms, Some(2_000_000_000_000));
        assert_eq!(
            decoded
                .entries
                .iter()
                .filter(|e| e.expire_at_ms.is_some())
                .count(),
            1
        );
    }
}

#[test]
fn unsupported_content_is_rejected_clearly() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            vec![opcode::MODULE_AUX, 0x81, 0, 0, 0, 0, 0, 0, 0, 1],
            "module",
        ),
        (
            vec![opcode::FUNCTION_PRE_GA, 1, b'x'],
            "pre-release function",
        ),
        (key(rdb_type::STREAM_LISTPACKS_2, b"s"), "stream"),
        (key(rdb_type::MODULE_2, b"m"), "module"),
    ];
    for (body, needle) in cases {
        let err = decode_rdb(&file(10, &body)).expect_err("must be rejected");
        assert!(matches!(err, RdbError::Unsupported(_)), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert!(matches!(
        decode_rdb(b"RUBIS0010\xff"),
        Err(RdbError::BadMagic)
    ));
    assert!(matches!(
        decode_rdb(&file(11, &[])),
        Err(RdbError::UnsupportedVersion(11))
    ));
    assert!(matches!(
        decode_rdb(&file(0, &[])),
        Err(RdbError::UnsupportedVersion(0))
    ));
    assert!(matches!(
        decode_rdb(&file(10, &[200])),
        Err(RdbError::UnexpectedEof | RdbError::Corrupt(_))
    ));
}

#[test]
fn huge_declared_lengths_fail_without_allocating() {
    // A 2^40-byte string, a 2^32-1 element list, an LZF bomb; both with the input length known
    // (decode_rdb) and unknown (streaming decoder).
    let mut huge_string = key(rdb_type::STRING, b"k");
    huge_string.pop();
    huge_string.pop();
    huge_string.extend(raw_string(b"k"));
    huge_string.push(0x81);
    huge_string.extend((1u64 << 40).to_be_bytes());
    let mut long_string = key(rdb_type::STRING, b"k");
    long_string.push(0x80);
    long_string.extend((400u32 << 20).to_be_bytes());
    long_string.extend(b"only a few bytes");
    let mut many = key(rdb_type::LIST, b"k");
    many.push(0x80);
    many.extend(u32::MAX.to_be_bytes());
    let mut bomb = key(rdb_type::STRING, b"k");
    bomb.extend([0xC3, 2, 0x80]);
    bomb.extend((500u32 << 20).to_be_bytes());
    bomb.extend([0, b'a']);
    let mut quicklist = key(rdb_type::LIST_QUICKLIST_2, b"k");
    quicklist.push(0x80);
    quicklist.extend(u32::MAX.to_be_bytes());
    for body in [huge_string, long_string, many, bomb, quicklist] {
        let bytes = file(10, &body);
        assert!(decode_rdb(&bytes).is_err());
        let mut decoder = RdbDecoder::new(Trickle(&bytes)).expect("header");
        assert!(decoder.next_item().is_err());
        assert!(decoder.next_item().expect("stays failed").is_none());
    }
}

#[test]
fn dump_payload_checks() {
    let value = RdbValue::List(vec![b"a".to_vec(), b"1".to_vec()]);
    let payload = dump_payload(&value, &EncodeOptions::default()).expect("dump");
    assert_eq!(
        &payload[payload.len() - 10..payload.len() - 8],
        &10u16.to_le_bytes()
    );
    let restored = restore_payload(&payload, &DecodeOptions::default()).expect("restore");
    assert_eq!(restored.value, value);
    assert_eq!(restored.rdb_type, rdb_type::LIST_QUICKLIST_2);

    let mut newer = payload.clone();
    let at = newer.len() - 10;
    newer[at] = 11;
    assert!(matches!(
        restore_payload(&newer, &DecodeOptions::default()),
        Err(RdbError::UnsupportedVersion(11))
    ));
    let no_check = DecodeOptions {
        verify_checksum: false,
        ..DecodeOptions::default()
    };
    let mut trailing = payload[..payload.len() - 10].to_vec();
    trailing.push(0);
    trailing.extend_from_slice(&10u16.to_le_bytes());
    trailing.extend_from_slice(&0u64.to_le_bytes());
    assert!(restore_payload(&trailing, &no_check).is_err());
    assert!(dump_payload(&RdbValue::Set(vec![]), &EncodeOptions::default()).is_err());
    assert!(dump_payload(
        &RdbValue::Set(vec![b"a".to_vec(), b"a".to_vec()]),
        &EncodeOptions::default()
    )
    .is_err());
    assert!(dump_payload(
        &RdbValue::ZSet(vec![(b"a".to_vec(), f64::NAN)]),
        &EncodeOptions::default()
    )
    .is_err());
}

// ---------------------------------------------------------------------------------------------
// Corruption sweep (cheap stand-in for the fuzz target)
// ---------------------------------------------------------------------------------------------

fn decode_everything(bytes: &[u8]) {
    let _ = decode_rdb(bytes);
    for skip_streams in [false, true] {
        let options = DecodeOptions {
            verify_checksum: false,
            skip_streams,
            ..Default::default()
        };
        if let Ok(mut decoder) = RdbDecoder::with_options(bytes, options) {
            while let Ok(Some(_)) = decoder.next_item() {}
        }
    }
}

#[test]
fn truncated_and_bit_flipped_golden_files_never_panic() {
    let mut files: Vec<Vec<u8>> = [
        "redis-7.0.15.rdb",
        "redis-7.0.15-lfu.rdb",
        "redis-7.0.15-lru.rdb",
        "redis-7.0.15-stream.rdb",
    ]
    .iter()
    .map(|name| std::fs::read(data_dir().join(name)).expect("golden"))
    .collect();
    files.push(file(9, &{
        let mut body = key(rdb_type::LIST_ZIPLIST, b"zl");
        body.extend(blob_string(&ziplist(&[
            b"hello",
            b"7",
            b"-100",
            b"30000",
            b"9000000000",
        ])));
        body.extend(key(rdb_type::HASH_ZIPMAP, b"hm"));
        body.extend(blob_string(&zipmap(&[(b"k1", b"v1"), (b"k2", b"")])));
        body
    }));
    let mut state = 0x9E37_79B9u32;
    let mut rand = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize % n
    };
    for bytes in &files {
        let len = bytes.len();
        // Every prefix of small files; a spread of prefixes of large ones.
        let step = (len / 3000).max(1);
        for cut in (0..len).step_by(step) {
            decode_everything(&bytes[..cut]);
        }
        for _ in 0..3000 {
            let mut flipped = bytes.clone();
            for _ in 0..1 + rand(3) {
                let at = rand(len);
                flipped[at] ^= 1 << rand(8);
            }
            decode_everything(&flipped);
        }
    }
    let dumps = std::fs::read_to_string(data_dir().join("redis-7.0.15.dumps")).expect("dumps");
    for line in dumps.lines().filter(|l| !l.starts_with('#')) {
        let hex = line.rsplit(' ').next().expect("hex");
        let payload: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        let no_check = DecodeOptions {
            verify_checksum: false,
            ..DecodeOptions::default()
        };
        for _ in 0..200 {
            let mut flipped = payload.clone();
            let at = rand(payload.len().saturating_sub(10).max(1));
            flipped[at] ^= 1 << rand(8);
            let _ = restore_payload(&flipped, &no_check);
            let cut = rand(payload.len());
            let _ = restore_payload(&payload[..cut], &no_check);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn element() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string().into_bytes()),
        (-200i64..200).prop_map(|v| v.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..40),
        "[a-c0-9]{0,12}".prop_map(String::into_bytes),
        (0usize..3, 60usize..5000).prop_map(|(c, n)| vec![b'a' + c as u8; n]),
    ]
}

fn distinct(items: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

fn value() -> impl Strategy<Value = RdbValue> {
    let score = prop_oneof![
        any::<f64>().prop_filter("no NaN", |s| !s.is_nan()),
        (-1000i32..1000).prop_map(f64::from),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ];
    prop_oneof![
        element().prop_map(RdbValue::String),
        proptest::collection::vec(element(), 1..300).prop_map(RdbValue::List),
        proptest::collection::vec(element(), 1..200).prop_map(|v| RdbValue::Set(distinct(v))),
        proptest::collection::vec((element(), element()), 1..200).prop_map(|pairs| {
            let mut seen = std::collections::HashSet::new();
            RdbValue::Hash(
                pairs
                    .into_iter()
                    .filter(|(f, _)| seen.insert(f.clone()))
                    .collect(),
            )
        }),
        proptest::collection::vec((element(), score), 1..200).prop_map(|pairs| {
            let mut seen = std::collections::HashSet::new();
            RdbValue::ZSet(
                pairs
                    .into_iter()
                    .filter(|(m, _)| seen.insert(m.clone()))
                    .collect(),
            )
        }),
    ]
}

fn entry() -> impl Strategy<Value = RdbEntry> {
    (
        0u32..20,
        element(),
        value(),
        proptest::option::of(any::<i64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(
            |(db, key, value, expire_at_ms, lru_idle_s, lfu_freq)| RdbEntry {
                db,
                key,
                value,
                expire_at_ms,
                lru_idle_s,
                lfu_freq,
                source_type: None,
            },
        )
}

fn options() -> impl Strategy<Value = EncodeOptions> {
    (any::<bool>(), 1usize..600, 1usize..100, -5i32..40).prop_map(
        |(compression, entries, value_bytes, fill)| EncodeOptions {
            compression,
            hash_max_listpack_entries: entries,
            hash_max_listpack_value_bytes: value_bytes,
            set_max_intset_entries: entries,
            zset_max_listpack_entries: entries,
            zset_max_listpack_value_bytes: value_bytes,
            list_max_listpack_size: fill,
            ..EncodeOptions::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn prop_rdb_round_trip(entries in proptest::collection::vec(entry(), 0..12), options in options()) {
        let bytes = encode_rdb(&redis_aux_fields(0, 0), &[], &entries, &options).expect("encode");
        let file = decode_rdb(&bytes).expect("decode");
        let mut sorted = entries.clone();
        sorted.sort_by_key(|e| e.db);
        prop_assert_eq!(normalized(&file.entries), normalized(&sorted));
    }

    #[test]
    fn prop_dump_round_trip(value in value(), options in options()) {
        let payload = dump_payload(&value, &options).expect("dump");
        let restored = restore_payload(&payload, &DecodeOptions::default()).expect("restore");
        let as_entry = |v: RdbValue| describe_entry(&RdbEntry::new(0, "k", v));
        prop_assert_eq!(as_entry(restored.value), as_entry(value));
    }

    #[test]
    fn prop_lzf_round_trip(input in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()], 0..3000)) {
        if let Some(compressed) = cinnabar_rdb::lzf::compress(&input, input.len()) {
            prop_assert_eq!(cinnabar_rdb::lzf::decompress(&compressed, input.len()).expect("valid"), input);
        }
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        decode_everything(&file(10, &body));
        let _ = restore_payload(&body, &DecodeOptions { verify_checksum: false, ..DecodeOptions::default() });
    }
}
