//! Golden tests against AOF directories written by the real Redis 7.0.15
//! (`tests/fixtures/*`, see its README): manifests parse and re-encode byte-identically, the
//! listed files are exactly the files on disk, and every file reads cleanly end to end.

use std::collections::BTreeSet;
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use cinnabar_aof::{starts_with_rdb_preamble, AofItem, AofReader, FileKind, Manifest};
use cinnabar_rdb::decoder::{RdbDecoder, RdbItem};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Loaded {
    rdb_keys: Vec<Vec<u8>>,
    commands: Vec<Vec<Vec<u8>>>,
    timestamps: usize,
}

/// Reads one file the way a loader would: an optional RDB preamble, then the command tail.
fn read_file(path: &Path, out: &mut Loaded) {
    let bytes = fs::read(path).expect("fixture readable");
    let mut input = BufReader::new(&bytes[..]);
    let mut start = 0u64;
    if starts_with_rdb_preamble(&bytes) {
        let mut decoder = RdbDecoder::new(&mut input).expect("rdb header");
        while let Some(item) = decoder.next_item().expect("rdb item") {
            if let RdbItem::Entry(e) = item {
                out.rdb_keys.push(e.key);
            }
        }
        start = decoder.consumed_bytes();
    }
    let mut reader = AofReader::with_offset(input, start);
    let mut last_end = start;
    while let Some(item) = reader.next_item().expect("clean AOF") {
        match item {
            AofItem::Command {
                args,
                start_offset,
                end_offset,
            } => {
                assert!(start_offset >= last_end);
                last_end = end_offset;
                out.commands.push(args);
            }
            AofItem::Annotation { .. } => {
                assert!(item.timestamp_s().is_some(), "only #TS annotations here");
                out.timestamps += 1;
            }
        }
    }
    assert_eq!(reader.offset(), bytes.len() as u64);
}

fn check_dir(dir: &str, appendfilename: &str) -> (Manifest, Loaded) {
    let path = fixture(dir);
    let manifest_bytes =
        fs::read(path.join(Manifest::manifest_name(appendfilename))).expect("manifest");
    let manifest = Manifest::parse(&manifest_bytes).expect("valid manifest");
    assert_eq!(manifest.encode(), manifest_bytes, "{dir}: byte-identical");

    let listed: BTreeSet<String> = manifest
        .load_order()
        .into_iter()
        .chain(manifest.history_files())
        .map(|e| e.name.clone())
        .chain([Manifest::manifest_name(appendfilename)])
        .collect();
    let on_disk: BTreeSet<String> = fs::read_dir(&path)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    assert_eq!(listed, on_disk, "{dir}");

    assert_eq!(manifest.curr_base_seq, 3);
    assert_eq!(manifest.curr_incr_seq, 3);
    assert_eq!(manifest.history.len(), 4);
    assert!(manifest.history.iter().all(|e| e.kind == FileKind::History));

    let mut loaded = Loaded {
        rdb_keys: Vec::new(),
        commands: Vec::new(),
        timestamps: 0,
    };
    for entry in manifest.load_order() {
        read_file(&path.join(&entry.name), &mut loaded);
    }
    // History files read cleanly too.
    let mut history = Loaded {
        rdb_keys: Vec::new(),
        commands: Vec::new(),
        timestamps: 0,
    };
    for entry in manifest.history_files() {
        read_file(&path.join(&entry.name), &mut history);
    }
    (manifest, loaded)
}

fn names(commands: &[Vec<Vec<u8>>]) -> Vec<String> {
    commands
        .iter()
        .map(|c| String::from_utf8_lossy(&c[0]).to_ascii_uppercase())
        .collect()
}

const LIVE_INCR: [&str; 6] = ["SELECT", "MULTI", "SET", "SET", "EXEC", "SET"];

#[test]
fn resp_preamble_no() {
    let (m, loaded) = check_dir("resp", "appendonly.aof");
    assert_eq!(
        m.base.as_ref().map(|b| b.name.as_str()),
        Some("appendonly.aof.3.base.aof")
    );
    let names = names(&loaded.commands);
    // The RESP base holds the rewritten dataset, then the live incr file.
    assert!(names.ends_with(&LIVE_INCR.map(String::from)), "{names:?}");
    assert!(names.contains(&"RPUSH".to_string()) && names.contains(&"HMSET".to_string()));
    assert_eq!(loaded.timestamps, 0);
}

#[test]
fn rdb_preamble_yes() {
    let (m, loaded) = check_dir("rdb", "appendonly.aof");
    assert_eq!(
        m.base.as_ref().map(|b| b.name.as_str()),
        Some("appendonly.aof.3.base.rdb")
    );
    let mut keys: Vec<_> = loaded
        .rdb_keys
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, ["after", "counter", "h", "k 2", "k1", "list key"]);
    assert_eq!(names(&loaded.commands), LIVE_INCR.map(String::from));
}

#[test]
fn timestamps_enabled() {
    let (_, loaded) = check_dir("ts", "appendonly.aof");
    assert!(loaded.timestamps >= 2, "base and incr carry #TS lines");
    assert!(names(&loaded.commands).ends_with(&LIVE_INCR.map(String::from)));
}

#[test]
fn quoted_names() {
    let (m, _) = check_dir("space", "my file.aof");
    assert_eq!(
        m.base.as_ref().map(|b| b.name.as_str()),
        Some("my file.aof.3.base.aof")
    );
    assert_eq!(m.incr[0].name, Manifest::incr_name("my file.aof", 3));
}
