//! `cinnabar check-aof` / `cinnabar check-rdb` against `redis-check-aof` / `redis-check-rdb`
//! 7.0.15 on the same damaged files: same stdout (log-line pid/time aside), same exit code,
//! same file contents after `--fix`. Skipped, with a message, without the Redis tools.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SET: &str = "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n";

fn run(bin: &Path, args: &[&str], file: &Path, stdin: &[u8]) -> (String, i32) {
    let mut child = Command::new(bin)
        .args(args)
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().expect("output");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cinnabar-cli-check-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch");
    dir
}

#[test]
fn check_aof_and_check_rdb_match_redis() {
    let redis_aof = PathBuf::from("/usr/bin/redis-check-aof");
    let redis_rdb = PathBuf::from("/usr/bin/redis-check-rdb");
    if !redis_aof.exists() || !redis_rdb.exists() {
        println!("SKIPPED: redis-check-aof / redis-check-rdb not installed");
        return;
    }
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_cinnabar"));
    let dir = scratch();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cinnabar-aof/tests/fixtures");
    let rdb = fs::read(fixtures.join("rdb/appendonly.aof.3.base.rdb")).expect("fixture");
    let mut preamble = rdb.clone();
    preamble.extend_from_slice(format!("{SET}*2\r\n$3\r\nGET").as_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ok", [SET, SET].concat().into_bytes()),
        ("torn", format!("{SET}*3\r\n$3\r\nSE").into_bytes()),
        (
            "corrupt_middle",
            format!("{SET}*3\r\n$X\r\n{SET}").into_bytes(),
        ),
        (
            "multi_open",
            format!("{SET}*1\r\n$5\r\nMULTI\r\n{SET}").into_bytes(),
        ),
        ("preamble_torn_tail", preamble),
    ];
    for (name, bytes) in &cases {
        for (flags, stdin) in [
            (&[][..], &b""[..]),
            (&["--fix"][..], &b"y\n"[..]),
            (&["--fix"][..], &b"n\n"[..]),
        ] {
            let a = dir.join(format!("{name}.aof"));
            let b = dir.join(format!("{name}.copy"));
            fs::write(&a, bytes).expect("write");
            let (redis_out, redis_code) = run(&redis_aof, flags, &a, stdin);
            let redis_after = fs::read(&a).expect("read");
            fs::write(&a, bytes).expect("write");
            let mut args = vec!["check-aof"];
            args.extend_from_slice(flags);
            let (our_out, our_code) = run(&ours, &args, &a, stdin);
            let our_after = fs::read(&a).expect("read");
            let _ = fs::remove_file(&b);
            let what = format!("{name} {flags:?} {stdin:?}");
            assert_eq!(
                our_code, redis_code,
                "{what}\nours:\n{our_out}\nredis:\n{redis_out}"
            );
            assert_eq!(our_out, redis_out, "{what}");
            assert_eq!(our_after, redis_after, "{what}");
        }
    }
    // Manifest input.
    let manifest = fixtures.join("rdb/appendonly.aof.manifest");
    let (redis_out, redis_code) = run(&redis_aof, &[], &manifest, b"");
    let (our_out, our_code) = run(&ours, &["check-aof"], &manifest, b"");
    assert_eq!((our_code, &our_out), (redis_code, &redis_out));
    // check-rdb: OK and damaged.
    let mut bad = rdb.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    for (name, bytes) in [("ok", rdb.clone()), ("bad_crc", bad)] {
        let p = dir.join(format!("{name}.rdb"));
        fs::write(&p, &bytes).expect("write");
        let (redis_out, redis_code) = run(&redis_rdb, &[], &p, b"");
        let (our_out, our_code) = run(&ours, &["check-rdb"], &p, b"");
        assert_eq!((our_code, &our_out), (redis_code, &redis_out), "{name}");
    }
    let _ = fs::remove_dir_all(&dir);
}
