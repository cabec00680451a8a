//! Golden files: RDB images and DUMP payloads written by the real redis-server 7.0.15
//! (`tests/data/`), each with a text description of its content taken from that server
//! (`*.expected`: TYPE, OBJECT ENCODING, PEXPIRETIME and values). The tests decode them and
//! compare, check that the RDB object types match the recorded encodings, and check that our
//! encoder picks the same encodings and (for the deterministic ones) the same bytes.
//!
//! Regenerate (needs redis-server 7.0.x):
//! `cargo test -p cinnabar-rdb --release --test golden -- --ignored regenerate`

mod common;

use std::collections::HashMap;
use std::fs;

use cinnabar_rdb::{
    decode_rdb, dump_payload, rdb_type, restore_payload, DecodeOptions, EncodeOptions, RdbEntry,
};
use common::*;

/// (file stem, dataset, extra redis-server settings, header note)
fn golden_specs() -> Vec<(&'static str, Vec<RdbEntry>, Vec<&'static str>, &'static str)> {
    vec![
        ("redis-7.0.15", golden_dataset(), vec![], "default config; every type in both encodings; a function library"),
        (
            "redis-7.0.15-lfu",
            policy_dataset(),
            vec!["--maxmemory-policy", "allkeys-lfu", "--list-compress-depth", "1"],
            "maxmemory-policy allkeys-lfu (FREQ opcodes), list-compress-depth 1 (LZF quicklist nodes)",
        ),
        (
            "redis-7.0.15-stream",
            vec![RdbEntry::new(0, "plain", cinnabar_rdb::RdbValue::String(b"before and after streams".to_vec()))],
            vec![],
            "streams with a consumer group, PEL and consumer (decoded with skip_streams)",
        ),
        (
            "redis-7.0.15-lru",
            policy_dataset().into_iter().filter(|e| e.key != b"biglist").collect(),
            vec!["--maxmemory-policy", "allkeys-lru"],
            "maxmemory-policy allkeys-lru (IDLE opcodes)",
        ),
    ]
}

#[test]
#[ignore = "regenerates tests/data with a real redis-server"]
fn regenerate() {
    let binary = redis_server_binary().expect("redis-server on PATH or $REDIS_SERVER");
    for (stem, dataset, extra, note) in golden_specs() {
        let dir = temp_dir("golden");
        let server = RedisServer::start(&binary, &dir, "dump.rdb", &extra);
        let mut client = server.client();
        populate(&mut client, &dataset);
        if stem == "redis-7.0.15" {
            client.ok(&["FUNCTION", "LOAD", FUNCTION_LIBRARY]);
        }
        if stem == "redis-7.0.15-stream" {
            for args in [
                &["XADD", "s1", "1-1", "f", "v"][..],
                &["XADD", "s1", "2-1", "a", "1", "b", "2"],
                &["XADD", "s1", "3-0", "a", "3", "b", "4"],
                &["XDEL", "s1", "2-1"],
                &["XGROUP", "CREATE", "s1", "g1", "0"],
                &[
                    "XREADGROUP",
                    "GROUP",
                    "g1",
                    "alice",
                    "COUNT",
                    "1",
                    "STREAMS",
                    "s1",
                    ">",
                ],
                &["XGROUP", "CREATECONSUMER", "s1", "g1", "bob"],
                &["XADD", "s2", "*", "x", "y"],
                &["SET", "zzz", "after the streams"],
            ] {
                client.ok(args);
            }
        }
        let described = describe_server(&mut client);
        let problems = diff_descriptions(
            &dataset.iter().map(describe_entry).collect::<Vec<_>>(),
            &described
                .iter()
                .filter(|d| d.type_name != "stream" && d.key != b"zzz")
                .cloned()
                .collect::<Vec<_>>(),
        );
        assert!(
            problems.is_empty(),
            "redis does not hold the dataset: {problems:#?}"
        );
        let version = client.ok(&["INFO", "server"]).bulk();
        assert!(
            String::from_utf8_lossy(&version).contains("redis_version:7.0."),
            "needs redis 7.0"
        );
        client.ok(&["SAVE"]);
        fs::copy(dir.join("dump.rdb"), data_dir().join(format!("{stem}.rdb"))).expect("copy rdb");
        fs::write(
            data_dir().join(format!("{stem}.expected")),
            write_expected(&described, &format!("{stem}.rdb, written by redis-server 7.0.15 SAVE: {note}\nformat: db type encoding pexpiretime key elements... (\\xNN escapes, \\- = empty)")),
        )
        .expect("write expected");
        if stem == "redis-7.0.15" {
            // DUMP payloads of every key: `db key hex`.
            let mut dumps = String::from("# DUMP payloads from redis-server 7.0.15 for redis-7.0.15.rdb's keys: db key hex\n");
            for d in &described {
                client.ok(&[b"SELECT".to_vec(), d.db.to_string().into_bytes()]);
                let payload = client.ok(&[b"DUMP".to_vec(), d.key.clone()]).bulk();
                let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
                dumps.push_str(&format!("{} {} {hex}\n", d.db, escape(&d.key)));
            }
            fs::write(data_dir().join(format!("{stem}.dumps")), dumps).expect("write dumps");
        }
        drop(server);
        let _ = fs::remove_dir_all(&dir);
    }
}

fn load(stem: &str) -> (cinnabar_rdb::RdbFile, Vec<KeyDescription>) {
    let bytes = fs::read(data_dir().join(format!("{stem}.rdb"))).expect("golden rdb");
    let options = DecodeOptions {
        skip_streams: true,
        ..DecodeOptions::default()
    };
    let file = cinnabar_rdb::decode_rdb_with_options(&bytes, options)
        .unwrap_or_else(|e| panic!("{stem}.rdb: {e}"));
    let expected = parse_expected(
        &fs::read_to_string(data_dir().join(format!("{stem}.expected"))).expect("expected"),
    );
    (file, expected)
}

#[test]
fn golden_files_decode_to_their_description() {
    for (stem, _, _, _) in golden_specs() {
        let (file, expected) = load(stem);
        assert_eq!(file.version, 10, "{stem}");
        let aux: HashMap<&[u8], &[u8]> = file
            .aux
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        assert_eq!(
            aux.get(&b"redis-ver"[..]).copied(),
            Some(&b"7.0.15"[..]),
            "{stem}"
        );
        assert_eq!(
            aux.get(&b"redis-bits"[..]).copied(),
            Some(&b"64"[..]),
            "{stem}"
        );

        let actual: Vec<KeyDescription> = file.entries.iter().map(describe_entry).collect();
        let (streams, expected): (Vec<KeyDescription>, Vec<KeyDescription>) =
            expected.into_iter().partition(|d| d.type_name == "stream");
        let problems = diff_descriptions(&expected, &actual);
        assert!(problems.is_empty(), "{stem}: {problems:#?}");
        let stream_keys: Vec<(u32, Vec<u8>)> =
            streams.iter().map(|d| (d.db, d.key.clone())).collect();
        let mut skipped = file.skipped_keys.clone();
        skipped.sort();
        assert_eq!(skipped, stream_keys, "{stem}: skipped streams");
        if stem == "redis-7.0.15-stream" {
            assert_eq!(stream_keys.len(), 2);
            let bytes = fs::read(data_dir().join(format!("{stem}.rdb"))).expect("golden rdb");
            let err = decode_rdb(&bytes).expect_err("streams are unsupported by default");
            assert!(
                matches!(err, cinnabar_rdb::RdbError::Unsupported(_)),
                "{err}"
            );
        }

        for e in &expected {
            let entry = file
                .entries
                .iter()
                .find(|x| x.db == e.db && x.key == e.key)
                .expect("key present");
            assert_eq!(
                entry.source_type,
                Some(rdb_type_for(&e.type_name, &e.encoding)),
                "{stem} {}: stored type vs OBJECT ENCODING {}",
                String::from_utf8_lossy(&e.key),
                e.encoding
            );
            match stem {
                "redis-7.0.15-lfu" => assert!(
                    entry.lfu_freq.is_some() && entry.lru_idle_s.is_none(),
                    "{stem}: FREQ"
                ),
                "redis-7.0.15-lru" => assert!(
                    entry.lru_idle_s.is_some() && entry.lfu_freq.is_none(),
                    "{stem}: IDLE"
                ),
                _ => assert!(entry.lru_idle_s.is_none() && entry.lfu_freq.is_none()),
            }
        }
        if stem == "redis-7.0.15" {
            assert_eq!(file.functions, vec![FUNCTION_LIBRARY.as_bytes().to_vec()]);
        }
    }
}

/// Our encoder chooses the encodings Redis chose and writes the same bytes.
#[test]
fn reencoding_golden_content_keeps_encodings() {
    for (stem, _, _, _) in golden_specs()
        .into_iter()
        .filter(|s| s.0 != "redis-7.0.15-stream")
    {
        let (file, expected) = load(stem);
        let ours = cinnabar_rdb::encode_rdb(
            &file.aux,
            &file.functions,
            &file.entries,
            &EncodeOptions::default(),
        )
        .expect("encode");
        let again = decode_rdb(&ours).expect("decode our own file");
        for (a, b) in file.entries.iter().zip(again.entries.iter()) {
            assert_eq!(
                a.source_type,
                b.source_type,
                "{stem} {}",
                String::from_utf8_lossy(&a.key)
            );
        }
        let actual: Vec<KeyDescription> = again.entries.iter().map(describe_entry).collect();
        assert!(diff_descriptions(&expected, &actual).is_empty());
        assert_eq!(file.aux, again.aux);
        assert_eq!(file.functions, again.functions);
        // Decoding keeps file order (hash-table iteration order included), so re-encoding
        // reproduces Redis's file byte for byte.
        let original = fs::read(data_dir().join(format!("{stem}.rdb"))).expect("golden rdb");
        assert!(
            ours == original,
            "{stem}: re-encoded file differs from Redis's ({} vs {} bytes)",
            ours.len(),
            original.len()
        );
    }
}

fn golden_dumps() -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    let text = fs::read_to_string(data_dir().join("redis-7.0.15.dumps")).expect("dumps file");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut t = l.split(' ');
            let db = t.next().and_then(|s| s.parse().ok()).expect("db");
            let key = unescape(t.next().expect("key"));
            let hex = t.next().expect("hex");
            let payload = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
                .collect();
            (db, key, payload)
        })
        .collect()
}

/// Redis's DUMP payloads decode to the described values, and ours are byte-identical for
/// every encoding whose layout does not depend on hash-table order.
#[test]
fn golden_dump_payloads_decode_and_match_ours() {
    let (file, expected) = load("redis-7.0.15");
    let dumps = golden_dumps();
    assert_eq!(dumps.len(), expected.len());
    let mut identical = 0;
    for (db, key, payload) in dumps {
        let restored = restore_payload(&payload, &DecodeOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&key)));
        let entry = file
            .entries
            .iter()
            .find(|e| e.db == db && e.key == key)
            .expect("key in rdb");
        assert_eq!(restored.rdb_version, 10);
        assert_eq!(Some(restored.rdb_type), entry.source_type);
        assert_eq!(
            restored.value,
            entry.value,
            "{}",
            String::from_utf8_lossy(&key)
        );
        let ours = dump_payload(&entry.value, &EncodeOptions::default()).expect("dump");
        if restored.rdb_type != rdb_type::SET && restored.rdb_type != rdb_type::HASH {
            assert_eq!(
                ours,
                payload,
                "our DUMP of {} ({}) differs from Redis's",
                String::from_utf8_lossy(&key),
                rdb_type::name(restored.rdb_type)
            );
            identical += 1;
        }
    }
    assert!(identical > 20);
}
