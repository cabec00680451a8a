//! Integration tests for cinnabar-config: golden defaults captured from
//! redis-server 7.0.15, error formatting, quoting, include, command line,
//! CONFIG GET/SET/REWRITE and glob matching.

use cinnabar_config::*;
use std::path::PathBuf;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cinnabar-config-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn fatal(text: &str) -> String {
    match Config::from_str_text(text) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected error for {text:?}"),
    }
}

#[test]
fn golden_defaults_match_redis_7_0_15() {
    let golden = include_str!("redis-7.0.15-defaults.tsv");
    let cfg = Config::new();
    let mut expected: Vec<(String, String)> = golden
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('\t').expect("tab");
            (k.to_string(), v.to_string())
        })
        .collect();
    expected.sort();
    let mut ours: Vec<(String, String)> = cfg
        .get(&["*"])
        .into_iter()
        .filter(|(k, _)| k != "dir")
        .collect();
    ours.sort();
    assert_eq!(ours, expected);
}

#[test]
fn user_config_loads() {
    let cfg = Config::from_str_text(
        "port 8001\ncluster-enabled yes\ncluster-config-file nodes-8001.conf\ncluster-node-timeout 5000\nappendonly yes\n",
    )
    .expect("load");
    assert_eq!(cfg.port(), 8001);
    assert!(cfg.cluster_enabled());
    assert_eq!(cfg.cluster_config_file(), PathBuf::from("nodes-8001.conf"));
    assert_eq!(cfg.cluster_node_timeout_ms(), 5000);
    assert!(cfg.appendonly());
    // Every directive of the user's config file is implemented: no warning.
    assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
}

#[test]
fn errors_are_formatted_like_redis() {
    assert_eq!(
        fatal("port 7001\nfoo bar\n"),
        "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 2\n>>> 'foo bar'\nBad directive or wrong number of arguments\n"
    );
    let reason = |t: &str| fatal(t).lines().last().unwrap_or("").to_string();
    assert_eq!(
        reason("port abc"),
        "argument couldn't be parsed into an integer"
    );
    assert_eq!(
        reason("port 70000"),
        "argument must be between 0 and 65535 inclusive"
    );
    assert_eq!(
        reason("cluster-enabled maybe"),
        "argument must be 'yes' or 'no'"
    );
    assert_eq!(
        reason("loglevel loud"),
        "argument(s) must be one of the following: debug, verbose, notice, warning"
    );
    assert_eq!(reason("maxmemory 1x"), "argument must be a memory value");
    assert_eq!(
        reason("unixsocketperm 999"),
        "argument couldn't be parsed as an octal number"
    );
    assert_eq!(reason("save 1"), "Invalid save parameters");
    assert_eq!(reason("port 1 2"), "wrong number of arguments");
    assert_eq!(
        reason("maxmemory-clients -5%"),
        "argument must be a memory or percent value"
    );
    assert_eq!(
        reason("notify-keyspace-events Q"),
        "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
    );
    assert_eq!(
        reason("client-output-buffer-limit foo 1 2 3"),
        "Invalid client class specified in buffer limit configuration."
    );
    assert_eq!(
        reason("port \"6379"),
        "Unbalanced quotes in configuration line"
    );
    assert_eq!(
        reason("maxclients -1"),
        "argument must be between 1 and 4294967295 inclusive"
    );
    assert_eq!(
        reason("socket-mark-id -1"),
        "argument must be between 0 and 4294967295 inclusive"
    );
    assert_eq!(
        reason("cluster-enabled yes\nreplicaof 1.2.3.4 6379"),
        "replicaof directive not allowed in cluster mode"
    );
}

#[test]
fn command_line_errors_match_redis() {
    let args: Vec<String> = ["--port", "abc"].iter().map(|s| s.to_string()).collect();
    let Invocation::Run(req) = parse_args(&args) else {
        panic!("run")
    };
    let err = Config::load_with_stdin(&req, None).expect_err("bad port");
    assert_eq!(
        err.to_string(),
        "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 2\n>>> 'port \"abc\"'\nargument couldn't be parsed into an integer\n"
    );
    let args: Vec<String> = ["--client-output-buffer-limit", "foo", "1", "2", "3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let Invocation::Run(req) = parse_args(&args) else {
        panic!("run")
    };
    let err = Config::load_with_stdin(&req, None).expect_err("bad class");
    assert!(err
        .to_string()
        .contains(">>> 'client-output-buffer-limit \"foo\" \"1\" \"2\" \"3\"'"));
    let err = Config::load_with_stdin(
        &LoadRequest {
            config_file: Some("/nonexistent/x.conf".into()),
            ..Default::default()
        },
        None,
    )
    .expect_err("missing file");
    assert_eq!(
        err.to_string(),
        "Fatal error, can't open config file '/nonexistent/x.conf': No such file or directory"
    );
}

#[test]
fn quoting_follows_sdssplitargs() {
    let a = split_args(br#"set "a\x41\n\"q\"" 'it\'s' plain"#).expect("ok");
    assert_eq!(
        a,
        vec![
            b"set".to_vec(),
            b"aA\n\"q\"".to_vec(),
            b"it's".to_vec(),
            b"plain".to_vec()
        ]
    );
    assert!(split_args(br#""abc"def"#).is_none());
    assert!(split_args(b"'abc").is_none());
    assert_eq!(split_args(b"   ").expect("ok"), Vec::<Vec<u8>>::new());
    let cfg =
        Config::from_str_text("requirepass \"p a\\tss\"\n# comment\n\n  LogLevel 'warning'\n")
            .expect("load");
    assert_eq!(cfg.requirepass().as_deref(), Some("p a\tss"));
    assert_eq!(cfg.loglevel(), "warning");
    assert_eq!(repr(b"a\"b\\\n\x01"), "\"a\\\"b\\\\\\n\\x01\"");
}

#[test]
fn include_and_override_order() {
    let d = tmpdir("include");
    let inc = d.join("inc.conf");
    std::fs::write(&inc, "hz 11\nport 7000\n").expect("write");
    let main = d.join("main.conf");
    std::fs::write(
        &main,
        format!("port 6000\ninclude {}\ntimeout 5\n", inc.display()),
    )
    .expect("write");
    let req = LoadRequest {
        config_file: Some(main.clone()),
        ..Default::default()
    };
    let cfg = Config::load_with_stdin(&req, None).expect("load");
    assert_eq!(cfg.port(), 7000);
    assert_eq!(cfg.hz(), 11);
    assert_eq!(cfg.timeout_secs(), 5);
    // Errors inside an included file report the included file's line.
    std::fs::write(&inc, "hz 11\nfoo\n").expect("write");
    let e = Config::load_with_stdin(&req, None).expect_err("bad include");
    assert!(e.to_string().contains("at line 2\n>>> 'foo'\n"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn command_line_overrides_file_and_stdin() {
    let d = tmpdir("cmdline");
    let f = d.join("r.conf");
    std::fs::write(&f, "port 6000\nbind 127.0.0.1\n").expect("write");
    let args: Vec<String> = [
        f.to_str().expect("utf8"),
        "-",
        "--port",
        "6001",
        "--bind",
        "10.0.0.1",
        "::1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let Invocation::Run(req) = parse_args(&args) else {
        panic!("run")
    };
    assert!(
        !req.config_from_stdin,
        "'-' only counts as first or last argument"
    );
    let args: Vec<String> = ["-", "--port", "6001", "--bind", "10.0.0.1", "::1", "--save"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let Invocation::Run(req) = parse_args(&args) else {
        panic!("run")
    };
    assert!(req.config_from_stdin);
    let cfg = Config::load_with_stdin(&req, Some("port 5000\nmaxclients 77\n")).expect("load");
    assert_eq!(cfg.port(), 6001);
    assert_eq!(cfg.maxclients(), 77);
    assert_eq!(cfg.bind(), vec!["10.0.0.1".to_string(), "::1".to_string()]);
    assert_eq!(cfg.get_value("save"), Some(""));
    assert_eq!(parse_args(&["-v".to_string()]), Invocation::Version);
    assert_eq!(parse_args(&["--help".to_string()]), Invocation::Help);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn config_get_patterns() {
    let cfg = Config::new();
    let got = cfg.get(&["MAXMEM*"]);
    let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    for n in [
        "maxmemory",
        "maxmemory-policy",
        "maxmemory-samples",
        "maxmemory-clients",
        "maxmemory-eviction-tenacity",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    assert_eq!(
        cfg.get(&["PORT"]),
        vec![("PORT".to_string(), "6379".to_string())]
    );
    assert_eq!(cfg.get(&["port", "port", "hz"]).len(), 2);
    assert!(
        cfg.get(&["key-load-*"]).is_empty(),
        "hidden configs need exact names"
    );
    assert_eq!(cfg.get(&["key-load-delay"]).len(), 1);
    assert_eq!(cfg.get(&["slave-priority"])[0].1, "100");
    assert!(cfg.get(&["nope"]).is_empty());
}

#[test]
fn config_set_semantics() {
    let mut cfg = Config::new();
    assert_eq!(
        cfg.set(&[("foo", "bar")]),
        Err("ERR Unknown option or number of arguments for CONFIG SET - 'foo'".into())
    );
    assert_eq!(
        cfg.set(&[("port", "abc")]),
        Err("ERR CONFIG SET failed (possibly related to argument 'port') - argument couldn't be parsed into an integer".into())
    );
    assert_eq!(
        cfg.set(&[("daemonize", "yes")]),
        Err("ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config".into())
    );
    assert_eq!(
        cfg.set(&[("dir", "/tmp")]),
        Err("ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config".into())
    );
    assert_eq!(
        cfg.set(&[("maxmemory", "2gb"), ("maxmemory", "3gb")]),
        Err("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - duplicate parameter".into())
    );
    // Atomic: hz is rolled back when port fails.
    assert!(cfg.set(&[("hz", "20"), ("port", "99999")]).is_err());
    assert_eq!(cfg.hz(), 10);
    cfg.set(&[("MAXMEMORY", "1gb"), ("hz", "1000")])
        .expect("set");
    assert_eq!(cfg.maxmemory_bytes(), 1 << 30);
    assert_eq!(cfg.get_value("hz"), Some("500"));
    cfg.set(&[("maxmemory", "1K")]).expect("set");
    assert_eq!(cfg.get_value("maxmemory"), Some("1000"));
    cfg.set(&[("client-output-buffer-limit", "normal 1mb 2mb 3")])
        .expect("set");
    assert_eq!(
        cfg.get_value("client-output-buffer-limit"),
        Some("normal 1048576 2097152 3 slave 268435456 67108864 60 pubsub 33554432 8388608 60")
    );
    let l = cfg.client_output_buffer_limit(ClientClass::Replica);
    assert_eq!(
        (l.hard_limit_bytes, l.soft_limit_bytes, l.soft_limit_seconds),
        (268435456, 67108864, 60)
    );
    cfg.set(&[("notify-keyspace-events", "KEA")]).expect("set");
    assert_eq!(cfg.get_value("notify-keyspace-events"), Some("AKE"));
    cfg.set(&[("notify-keyspace-events", "gnm")]).expect("set");
    assert_eq!(cfg.get_value("notify-keyspace-events"), Some("gnm"));
    cfg.set(&[("maxmemory-clients", "10%")]).expect("set");
    assert_eq!(cfg.get_value("maxmemory-clients"), Some("10%"));
    assert_eq!(
        cfg.set(&[("maxmemory-clients", "200%")]),
        Err("ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - percentage argument must be less or equal to 100".into())
    );
    cfg.set(&[("oom-score-adj", "relative")]).expect("set");
    assert_eq!(cfg.get_value("oom-score-adj"), Some("yes"));
    cfg.set(&[("shutdown-on-sigint", "nosave now force")])
        .expect("set");
    assert_eq!(
        cfg.get_value("shutdown-on-sigint"),
        Some("nosave now force")
    );
    cfg.set(&[("latency-tracking-info-percentiles", "50 99.5")])
        .expect("set");
    assert_eq!(
        cfg.get_value("latency-tracking-info-percentiles"),
        Some("50 99.5")
    );
    cfg.set(&[("list-max-ziplist-size", "-3")]).expect("set");
    assert_eq!(cfg.list_max_listpack_size(), -3);
    assert_eq!(
        cfg.set(&[("proto-max-bulk-len", "10")]),
        Err("ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - argument must be between 1048576 and 9223372036854775807 inclusive".into())
    );
    assert_eq!(
        cfg.set(&[("cluster-announce-hostname", "a_b")]),
        Err("ERR CONFIG SET failed (possibly related to argument 'cluster-announce-hostname') - Hostnames may only contain alphanumeric characters, hyphens or dots".into())
    );
    cfg.set(&[("hz", "0")]).expect("set");
    assert_eq!(cfg.get_value("hz"), Some("1"));
}

#[test]
fn rewrite_keeps_comments_and_appends() {
    let d = tmpdir("rewrite");
    let f = d.join("r.conf");
    std::fs::write(
        &f,
        "# my comment\nport 8001\nsave 60 1\nsave 30 2\nfoo-unknown 1\nappendonly yes\n",
    )
    .expect("write");
    let text = std::fs::read_to_string(&f).expect("read");
    // Parse without the unknown line (it would be fatal).
    let mut cfg = Config::from_str_text(&text.replace("foo-unknown 1\n", "")).expect("load");
    cfg.set(&[("port", "8002"), ("maxmemory", "100mb"), ("save", "")])
        .expect("set");
    cfg.rewrite(&f).expect("rewrite");
    let out = std::fs::read_to_string(&f).expect("read");
    let dir_line = format!("dir {}", repr(cfg.dir().to_string_lossy().as_bytes()));
    assert_eq!(
        out,
        format!(
            "# my comment\nport 8002\nsave \"\"\n\n# ??? foo-unknown 1\nappendonly yes\n\n{REWRITE_SIGNATURE}\nmaxmemory 100mb\n{dir_line}\nlatency-tracking-info-percentiles 50 99 99.9\n"
        )
    );
    // Round trip: loading the rewritten file gives the same values.
    let again = Config::from_str_text(&out.replace("# ??? foo-unknown 1\n", "")).expect("reload");
    assert_eq!(again.get(&["*"]), cfg.get(&["*"]));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn glob_matches_redis_semantics() {
    let m = |p: &str, s: &str| string_match(p.as_bytes(), s.as_bytes(), false);
    // stringmatchlen("*", "") is false in Redis too: KEYS special-cases a lone "*".
    assert!(!m("*", ""));
    assert!(m("h?llo", "hello"));
    assert!(!m("h?llo", "hllo"));
    assert!(m("h*llo", "heeeello"));
    assert!(m("h[ae]llo", "hallo"));
    assert!(!m("h[ae]llo", "hillo"));
    assert!(m("h[^e]llo", "hallo"));
    assert!(!m("h[^e]llo", "hello"));
    assert!(m("h[a-b]llo", "hbllo"));
    assert!(m("h[b-a]llo", "hallo"), "reversed ranges work");
    assert!(m("h\\*llo", "h*llo"));
    assert!(!m("h\\*llo", "hello"));
    assert!(m("a[\\]]b", "a]b"));
    assert!(!m("a[", "a["), "verified with redis-cli KEYS");
    assert!(m("foo*", "foo"));
    assert!(m("*bar*", "foobarbaz"));
    assert!(!m("HELLO", "hello"));
    assert!(string_match(b"HEL[A-Z]O", b"hello", true));
    assert!(m("a\\", "a\\"), "trailing backslash is literal");
    assert!(m("[abc", "c"));
    assert!(!m("a*b", "acbd"));
    let long = "a*".repeat(2000);
    assert!(
        !m(&long, &"a".repeat(10)) || m(&long, &"a".repeat(10)),
        "terminates"
    );
}
