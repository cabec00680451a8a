//! Interop with the real redis-server (skipped when none is installed): Redis loads RDB files
//! written by our encoder (every key compared by TYPE, OBJECT ENCODING, value and expiry),
//! RESTOREs our DUMP payloads, and its DUMP payloads decode with ours.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use cinnabar_rdb::{
    dump_payload, encode_rdb, redis_aux_fields, restore_payload, DecodeOptions, EncodeOptions,
    RdbEntry, RdbValue,
};
use common::*;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The golden dataset plus values only our encoder makes here: a random-ish mix of sizes.
fn interop_dataset() -> Vec<RdbEntry> {
    let mut entries = golden_dataset();
    let mut seed = 99u32;
    let mut next = move |n: u32| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 8) % n
    };
    for i in 0..40 {
        let len = next(300) as usize;
        let element = |j: usize, next: &mut dyn FnMut(u32) -> u32| -> Vec<u8> {
            match next(4) {
                0 => (i64::from(next(1_000_000)) - 500_000)
                    .to_string()
                    .into_bytes(),
                1 => format!("e{j}-{}", "z".repeat(next(80) as usize)).into_bytes(),
                2 => noise(next(40) as usize + 1, next(1000)),
                _ => format!("{j}").into_bytes(),
            }
        };
        let value = match i % 5 {
            0 => RdbValue::String(element(0, &mut next)),
            1 => RdbValue::List((0..len + 1).map(|j| element(j, &mut next)).collect()),
            2 => RdbValue::Set(
                (0..len + 1)
                    .map(|j| format!("{j}:{}", next(10)).into_bytes())
                    .collect(),
            ),
            3 => RdbValue::Hash(
                (0..len + 1)
                    .map(|j| (format!("k{j}").into_bytes(), element(j, &mut next)))
                    .collect(),
            ),
            _ => RdbValue::ZSet(
                (0..len + 1)
                    .map(|j| {
                        (
                            format!("m{j}").into_bytes(),
                            f64::from(next(1000)) / 8.0 - 50.0,
                        )
                    })
                    .collect(),
            ),
        };
        let mut entry = RdbEntry::new((i % 4) as u32, format!("mix:{i}"), value);
        if i % 3 == 0 {
            entry.expire_at_ms = Some(EXPIRE_AT_MS + i64::from(i));
        }
        entries.push(entry);
    }
    entries
}

fn check_encodings_match_ours(ours: &[u8], described: &[KeyDescription]) {
    let decoded = cinnabar_rdb::decode_rdb(ours).expect("decode our own file");
    for d in described {
        let entry = decoded
            .entries
            .iter()
            .find(|e| e.db == d.db && e.key == d.key)
            .expect("key");
        assert_eq!(
            entry.source_type,
            Some(rdb_type_for(&d.type_name, &d.encoding)),
            "{}: we wrote {:?}, redis holds it as {}",
            String::from_utf8_lossy(&d.key),
            entry.source_type,
            d.encoding
        );
    }
}

#[test]
fn redis_loads_our_rdb_files() {
    let Some(binary) = redis_server_binary() else {
        eprintln!("redis-server not found: skipping");
        return;
    };
    let entries = interop_dataset();
    let mut with_ttl = entries.clone();
    let ttl_at_ms = now_ms() + 3_600_000;
    with_ttl.push(
        RdbEntry::new(0, "ttl:relative", RdbValue::String(b"soon".to_vec()))
            .with_expire_at_ms(ttl_at_ms),
    );
    let ours = encode_rdb(
        &redis_aux_fields(now_ms() / 1000, 1_000_000),
        &[FUNCTION_LIBRARY.as_bytes().to_vec()],
        &with_ttl,
        &EncodeOptions::default(),
    )
    .expect("encode");
    let dir = temp_dir("interop-load");
    std::fs::write(dir.join("ours.rdb"), &ours).expect("write rdb");
    let server = RedisServer::start(&binary, &dir, "ours.rdb", &[]);
    let mut client = server.client();
    let described = describe_server(&mut client);
    let expected: Vec<KeyDescription> = with_ttl.iter().map(describe_entry).collect();
    let problems = diff_descriptions(&expected, &described);
    assert!(
        problems.is_empty(),
        "redis loaded something else: {problems:#?}\n{}",
        server.log()
    );
    check_encodings_match_ours(&ours, &described);

    client.ok(&["SELECT", "0"]);
    let pttl_ms = client.ok(&["PTTL", "ttl:relative"]).int();
    assert!(
        pttl_ms > 3_500_000 && pttl_ms <= 3_600_000,
        "PTTL {pttl_ms}"
    );
    let functions = client.ok(&["FUNCTION", "LIST"]);
    fn flatten(reply: &Reply, out: &mut Vec<String>) {
        match reply {
            Reply::Bulk(Some(b)) => out.push(String::from_utf8_lossy(b).into_owned()),
            Reply::Array(Some(items)) => items.iter().for_each(|r| flatten(r, out)),
            _ => {}
        }
    }
    let mut words = Vec::new();
    flatten(&functions, &mut words);
    assert!(
        words.iter().any(|w| w == "cinnabar_one"),
        "function library not loaded: {words:?}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_loads_our_lfu_and_lru_metadata() {
    let Some(binary) = redis_server_binary() else {
        eprintln!("redis-server not found: skipping");
        return;
    };
    for (policy, probe) in [("allkeys-lfu", "FREQ"), ("allkeys-lru", "IDLETIME")] {
        let mut entry = RdbEntry::new(0, "k", RdbValue::String(b"v".to_vec()));
        if probe == "FREQ" {
            entry.lfu_freq = Some(42);
        } else {
            entry.lru_idle_s = Some(5000);
        }
        let ours = encode_rdb(
            &redis_aux_fields(0, 0),
            &[],
            &[entry],
            &EncodeOptions::default(),
        )
        .expect("encode");
        let dir = temp_dir("interop-policy");
        std::fs::write(dir.join("ours.rdb"), &ours).expect("write rdb");
        let server = RedisServer::start(&binary, &dir, "ours.rdb", &["--maxmemory-policy", policy]);
        let got = server.client().ok(&["OBJECT", probe, "k"]).int();
        if probe == "FREQ" {
            assert_eq!(got, 42);
        } else {
            assert!((5000..5100).contains(&got), "idle {got}");
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn dump_payloads_interoperate_both_ways() {
    let Some(binary) = redis_server_binary() else {
        eprintln!("redis-server not found: skipping");
        return;
    };
    let entries = interop_dataset();
    let dir = temp_dir("interop-dump");
    let server = RedisServer::start(&binary, &dir, "none.rdb", &[]);
    let mut client = server.client();
    // Ours -> RESTORE.
    for e in &entries {
        client.ok(&[b"SELECT".to_vec(), e.db.to_string().into_bytes()]);
        let payload = dump_payload(&e.value, &EncodeOptions::default()).expect("dump");
        let mut args = vec![b"RESTORE".to_vec(), e.key.clone()];
        match e.expire_at_ms {
            Some(at_ms) => {
                args.push(at_ms.to_string().into_bytes());
                args.push(payload);
                args.push(b"ABSTTL".to_vec());
            }
            None => {
                args.push(b"0".to_vec());
                args.push(payload);
            }
        }
        client.ok(&args);
    }
    let described = describe_server(&mut client);
    let expected: Vec<KeyDescription> = entries.iter().map(describe_entry).collect();
    let problems = diff_descriptions(&expected, &described);
    assert!(
        problems.is_empty(),
        "RESTORE of our payloads: {problems:#?}"
    );

    // DUMP -> ours.
    for e in &entries {
        client.ok(&[b"SELECT".to_vec(), e.db.to_string().into_bytes()]);
        let payload = client.ok(&[b"DUMP".to_vec(), e.key.clone()]).bulk();
        let restored = restore_payload(&payload, &DecodeOptions::default())
            .unwrap_or_else(|err| panic!("{}: {err}", String::from_utf8_lossy(&e.key)));
        let mut got = e.clone();
        got.value = restored.value;
        assert_eq!(
            describe_entry(&got),
            describe_entry(e),
            "DUMP of {}",
            String::from_utf8_lossy(&e.key)
        );
    }

    // RESTORE rejects a payload whose checksum we corrupt, and so do we.
    let mut bad =
        dump_payload(&RdbValue::String(b"x".to_vec()), &EncodeOptions::default()).expect("dump");
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        client.cmd(&[
            b"RESTORE".to_vec(),
            b"bad".to_vec(),
            b"0".to_vec(),
            bad.clone()
        ]),
        Reply::Error(_)
    ));
    assert!(restore_payload(&bad, &DecodeOptions::default()).is_err());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
