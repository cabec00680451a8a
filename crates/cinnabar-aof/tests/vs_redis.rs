//! Runs our checker and the real `redis-check-aof` / `redis-check-rdb` (Redis 7.0.15) on the
//! same damaged files and compares verdicts, exit codes and output lines. Skipped, with a
//! message, when the Redis tools are not installed.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cinnabar_aof::check::{check_aof_path, check_rdb_path};

fn tool(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin").join(name);
    path.exists().then_some(path)
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cinnabar-aof-vs-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Lines that carry a pid/time log prefix are compared from the `# ` on.
fn normalize(lines: &str) -> Vec<String> {
    lines
        .lines()
        .map(|l| match l.find(":C ") {
            Some(i) if l[..i].bytes().all(|b| b.is_ascii_digit()) => {
                l.find(" # ").map_or(l.to_string(), |j| l[j..].to_string())
            }
            _ => l.to_string(),
        })
        .collect()
}

fn ours_aof(path: &Path, fix: bool, ts: Option<i64>) -> (Vec<String>, i32) {
    let report = check_aof_path(path, fix, ts).expect("no I/O error");
    // Each of our lines may hold embedded newlines, as Redis's log lines do; a prompt has
    // no newline of its own, so it joins the next line.
    let mut text = String::new();
    for line in &report.output {
        text.push_str(line);
        if !line.ends_with(": ") {
            text.push('\n');
        }
    }
    (normalize(&text), report.exit_code)
}

fn redis_aof(bin: &Path, args: &[&str], path: &Path) -> (Vec<String>, i32) {
    let mut child = Command::new(bin)
        .args(args)
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run redis-check-aof");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"y\n");
    }
    let out = child.wait_with_output().expect("redis-check-aof output");
    (
        normalize(&String::from_utf8_lossy(&out.stdout)),
        out.status.code().unwrap_or(-1),
    )
}

const SET: &str = "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n";
const MULTI: &str = "*1\r\n$5\r\nMULTI\r\n";
const EXEC: &str = "*1\r\n$4\r\nEXEC\r\n";

fn single_file_cases() -> Vec<(&'static str, Vec<u8>)> {
    let s = |parts: &[&str]| parts.concat().into_bytes();
    let real = fs::read(fixture("resp/appendonly.aof.1.incr.aof")).expect("fixture");
    let mut cases = vec![
        ("ok", real.clone()),
        ("torn_tail", real[..150].to_vec()),
        ("torn_header", s(&[SET, "*3\r"])),
        ("torn_at_line", s(&[SET, SET, "*3\r\n"])),
        (
            "torn_bulk",
            s(&[SET, "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r"]),
        ),
        ("bad_header", s(&[SET, "*X\r\n", SET])),
        ("bad_bulk_len", s(&[SET, "*3\r\n$X\r\nSET\r\n"])),
        ("bad_crlf", s(&[SET, "*1\r\n$3\r\nSETxx", SET])),
        ("bad_first_byte", s(&[SET, "Z", SET])),
        ("leading_space", s(&["  ", SET])),
        ("argc_zero", s(&[SET, "*0\r\n", SET])),
        ("negative_len", s(&[SET, "*1\r\n$-1\r\n", SET])),
        ("multi_no_exec", s(&[SET, MULTI, SET])),
        ("nested_multi", s(&[MULTI, SET, MULTI])),
        ("exec_no_multi", s(&[SET, EXEC])),
        ("multi_exec_ok", s(&[MULTI, SET, EXEC, SET])),
        ("annotations", s(&["#TS:100\r\n", SET, "#note\r\n", SET])),
        ("empty", Vec::new()),
        ("high_byte", s(&[SET, "*1\r\n$1\r\na\x7f", SET])),
    ];
    let mut high = s(&[SET, "*1\r\n$1\r\na"]);
    high.extend_from_slice(&[0xc3, 0xa9]);
    cases.push(("high_byte_crlf", high));
    let rdb = fs::read(fixture("rdb/appendonly.aof.3.base.rdb")).expect("fixture");
    let mut preamble = rdb.clone();
    preamble.extend_from_slice(SET.as_bytes());
    cases.push(("rdb_preamble_ok", preamble.clone()));
    preamble.extend_from_slice(b"*2\r\n$3\r\nGET");
    cases.push(("rdb_preamble_torn_tail", preamble));
    let mut bad_crc = rdb.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    cases.push(("rdb_preamble_bad_crc", bad_crc));
    cases.push(("rdb_preamble_torn", rdb[..100].to_vec()));
    cases
}

#[test]
fn check_aof_matches_redis_on_single_files() {
    let Some(bin) = tool("redis-check-aof") else {
        println!("SKIPPED: /usr/bin/redis-check-aof not installed");
        return;
    };
    let dir = scratch("single");
    for (name, bytes) in single_file_cases() {
        for (mode, fix, ts) in [("check", false, None), ("fix", true, None)] {
            let ours_path = dir.join(format!("{name}.{mode}.ours.aof"));
            let theirs_path = dir.join(format!("{name}.{mode}.redis.aof"));
            fs::write(&ours_path, &bytes).expect("write");
            fs::write(&theirs_path, &bytes).expect("write");
            let args: Vec<&str> = if fix { vec!["--fix"] } else { vec![] };
            let (mut ours, our_code) = ours_aof(&ours_path, fix, ts);
            let (theirs, their_code) = redis_aof(&bin, &args, &theirs_path);
            // File names differ only by the ours/redis tag.
            for l in &mut ours {
                *l = l.replace(".ours.aof", ".redis.aof");
            }
            // Inside a damaged RDB preamble Redis also names the phase and key being read.
            let keep =
                |l: &String| !l.starts_with("[additional info]") && !l.ends_with(" keys read");
            ours.retain(keep);
            let theirs: Vec<String> = theirs.into_iter().filter(keep).collect();
            assert_eq!(
                our_code, their_code,
                "{name} {mode}: exit code\nours {ours:#?}\nredis {theirs:#?}"
            );
            assert_eq!(ours, theirs, "{name} {mode}: output");
            assert_eq!(
                fs::read(&ours_path).expect("read"),
                fs::read(&theirs_path).expect("read"),
                "{name} {mode}: file after the run"
            );
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn truncate_to_timestamp_matches_redis() {
    let Some(bin) = tool("redis-check-aof") else {
        println!("SKIPPED: /usr/bin/redis-check-aof not installed");
        return;
    };
    let dir = scratch("ts");
    let file = format!("#TS:100\r\n{SET}#TS:200\r\n{SET}#TS:300\r\n{SET}");
    for ts in [50i64, 100, 150, 250, 300] {
        let ours_path = dir.join(format!("t{ts}.ours.aof"));
        let theirs_path = dir.join(format!("t{ts}.redis.aof"));
        fs::write(&ours_path, &file).expect("write");
        fs::write(&theirs_path, &file).expect("write");
        let (mut ours, our_code) = ours_aof(&ours_path, false, Some(ts));
        for l in &mut ours {
            *l = l.replace(".ours.aof", ".redis.aof");
        }
        let ts_arg = ts.to_string();
        let (theirs, their_code) =
            redis_aof(&bin, &["--truncate-to-timestamp", &ts_arg], &theirs_path);
        assert_eq!((our_code, &ours), (their_code, &theirs), "ts {ts}");
        assert_eq!(
            fs::read(&ours_path).ok(),
            fs::read(&theirs_path).ok(),
            "ts {ts}"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Copies a fixture directory twice and applies `damage` to both copies.
fn manifest_case(tag: &str, src: &str, damage: &dyn Fn(&Path)) -> (PathBuf, PathBuf) {
    let root = scratch(tag);
    let mut out = Vec::new();
    for side in ["ours", "redis"] {
        let dir = root.join(side);
        fs::create_dir_all(&dir).expect("dir");
        for entry in fs::read_dir(fixture(src)).expect("fixture") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
        }
        damage(&dir);
        out.push(dir.join("appendonly.aof.manifest"));
    }
    (out[0].clone(), out[1].clone())
}

#[test]
fn manifests_match_redis() {
    let Some(bin) = tool("redis-check-aof") else {
        println!("SKIPPED: /usr/bin/redis-check-aof not installed");
        return;
    };
    let write_manifest = |text: &'static str| {
        move |dir: &Path| fs::write(dir.join("appendonly.aof.manifest"), text).expect("write")
    };
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, &str, Damage, bool)> = vec![
        ("m_ok_resp", "resp", Box::new(|_: &Path| {}), false),
        ("m_ok_rdb", "rdb", Box::new(|_: &Path| {}), false),
        ("m_ok_ts", "ts", Box::new(|_: &Path| {}), false),
        (
            "m_torn_incr",
            "resp",
            Box::new(|d: &Path| {
                let p = d.join("appendonly.aof.3.incr.aof");
                let b = fs::read(&p).expect("read");
                fs::write(&p, &b[..b.len() - 5]).expect("write");
            }),
            true,
        ),
        (
            "m_torn_base",
            "resp",
            Box::new(|d: &Path| {
                let p = d.join("appendonly.aof.3.base.aof");
                let b = fs::read(&p).expect("read");
                fs::write(&p, &b[..b.len() - 5]).expect("write");
            }),
            true,
        ),
        (
            "m_missing_incr",
            "rdb",
            Box::new(|d: &Path| fs::remove_file(d.join("appendonly.aof.3.incr.aof")).expect("rm")),
            false,
        ),
        (
            "m_dup_base",
            "resp",
            Box::new(write_manifest(
                "file appendonly.aof.3.base.aof seq 3 type b\nfile appendonly.aof.3.base.aof seq 3 type b\n",
            )),
            false,
        ),
        (
            "m_no_newline",
            "resp",
            Box::new(write_manifest("file appendonly.aof.3.base.aof seq 3 type b")),
            false,
        ),
        (
            "m_blank_line",
            "resp",
            Box::new(write_manifest("file appendonly.aof.3.base.aof seq 3 type b\n\n")),
            false,
        ),
        (
            "m_any_order",
            "resp",
            Box::new(write_manifest(
                "# c\nseq 3 TYPE b FILE appendonly.aof.3.base.aof x y\nfile appendonly.aof.3.incr.aof seq 3 type incr\n",
            )),
            false,
        ),
        (
            "m_non_monotonic",
            "resp",
            Box::new(write_manifest(
                "file appendonly.aof.3.incr.aof seq 3 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n",
            )),
            false,
        ),
        (
            "m_path",
            "resp",
            Box::new(write_manifest("file ../x seq 3 type b\n")),
            false,
        ),
        (
            "m_unknown_type",
            "resp",
            Box::new(write_manifest("file x seq 3 type q\n")),
            false,
        ),
    ];
    for (tag, src, damage, also_fix) in &cases {
        let modes: &[bool] = if *also_fix { &[false, true] } else { &[false] };
        for &fix in modes {
            let (ours_path, theirs_path) = manifest_case(tag, src, damage.as_ref());
            let (mut ours, our_code) = ours_aof(&ours_path, fix, None);
            for l in &mut ours {
                *l = l.replace("/ours/", "/redis/");
            }
            let args: Vec<&str> = if fix { vec!["--fix"] } else { vec![] };
            let (theirs, their_code) = redis_aof(&bin, &args, &theirs_path);
            assert_eq!((our_code, &ours), (their_code, &theirs), "{tag} fix={fix}");
            let dir_ours = ours_path.parent().expect("dir");
            let dir_theirs = theirs_path.parent().expect("dir");
            for entry in fs::read_dir(dir_ours).expect("dir") {
                let name = entry.expect("entry").file_name();
                assert_eq!(
                    fs::read(dir_ours.join(&name)).ok(),
                    fs::read(dir_theirs.join(&name)).ok(),
                    "{tag} fix={fix}: {name:?}"
                );
            }
            let _ = fs::remove_dir_all(dir_ours.parent().expect("root"));
        }
    }
}

#[test]
fn check_rdb_matches_redis() {
    let Some(bin) = tool("redis-check-rdb") else {
        println!("SKIPPED: /usr/bin/redis-check-rdb not installed");
        return;
    };
    let dir = scratch("rdb");
    let rdb = fs::read(fixture("rdb/appendonly.aof.3.base.rdb")).expect("fixture");
    let mut bad_crc = rdb.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let mut no_crc = rdb.clone();
    let n = no_crc.len();
    no_crc[n - 8..].fill(0);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("ok", rdb.clone(), true),
        ("no_crc", no_crc, true),
        ("bad_crc", bad_crc, true),
        ("torn_in_value", rdb[..91].to_vec(), false),
        ("short", b"hello\n".to_vec(), true),
        ("bad_magic", b"RADIS0010\xff".to_vec(), true),
        // Where Redis names the phase/key of an EOF we print only the offset and message.
        ("torn_late", rdb[..150].to_vec(), false),
    ];
    for (name, bytes, exact) in cases {
        let path = dir.join(format!("{name}.rdb"));
        fs::write(&path, &bytes).expect("write");
        let (ours, our_code) = check_rdb_path(&path);
        let out = Command::new(&bin).arg(&path).output().expect("run");
        let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        let their_code = out.status.code().unwrap_or(-1);
        assert_eq!(
            our_code, their_code,
            "{name}: exit code\n{ours:#?}\n{theirs:#?}"
        );
        if exact {
            assert_eq!(ours, theirs, "{name}");
        } else {
            // Redis also names the phase and key, and counts the key being read.
            let key =
                |l: &&String| !l.starts_with("[additional info]") && !l.ends_with(" keys read");
            let ours_key: Vec<_> = ours.iter().filter(key).collect();
            let theirs_key: Vec<_> = theirs.iter().filter(key).collect();
            assert_eq!(ours_key, theirs_key, "{name}");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}
