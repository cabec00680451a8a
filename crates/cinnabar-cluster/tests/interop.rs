//! Interop with real Redis 7.0 nodes: starts two `redis-server --cluster-enabled yes`
//! processes and one Cinnabar cluster driver on free ports, MEETs them, and checks that
//! they handshake, gossip each other (discovery through a third party), agree on the
//! Cinnabar node's address and propagate slot ownership both ways. Skipped (with a
//! message) when `redis-server` is not on PATH.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cinnabar_cluster::{ClusterHandle, ClusterOptions, Reply, Route};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A port p such that p and p+10000 are currently free.
fn free_port_pair(avoid: &[u16]) -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral");
        let p = l.local_addr().expect("addr").port();
        if !(1024..=55535).contains(&p) || avoid.contains(&p) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cinnabar-interop-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn start_redis(dir: &Path, port: u16) -> Proc {
    let child = Command::new("redis-server")
        .current_dir(dir)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
        ])
        .args([
            "--cluster-node-timeout",
            "3000",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--logfile", "redis.log", "--daemonize", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    Proc(child)
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50)); // poll interval, not synchronisation
    }
    panic!("timed out waiting for: {what}");
}

fn cmd(h: &ClusterHandle, line: &str) -> Reply {
    let args: Vec<Bytes> = line
        .split(' ')
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect();
    h.command(&args)
}

fn nodes_text(h: &ClusterHandle) -> String {
    match cmd(h, "nodes") {
        Reply::Verbatim(t) => t,
        other => panic!("unexpected NODES reply {other:?}"),
    }
}

/// The line for `id` in a CLUSTER NODES text.
fn line_of<'a>(nodes: &'a str, id: &str) -> Option<&'a str> {
    nodes.lines().find(|l| l.starts_with(id))
}

fn healthy(line: Option<&str>) -> bool {
    line.is_some_and(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.len() >= 8 && !f[2].contains("handshake") && !f[2].contains("fail") && f[7] == "connected"
    })
}

#[test]
fn cinnabar_meets_and_gossips_with_real_redis() {
    if !have("redis-server") || !have("redis-cli") {
        eprintln!("SKIPPED: redis-server / redis-cli not on PATH");
        return;
    }
    let p1 = free_port_pair(&[]);
    let p2 = free_port_pair(&[p1]);
    let p3 = free_port_pair(&[p1, p2]);
    let d1 = temp_dir("r1");
    let d2 = temp_dir("r2");
    let d3 = temp_dir("c3");
    let _r1 = start_redis(&d1, p1);
    let _r2 = start_redis(&d2, p2);
    wait_for("redis nodes up", Duration::from_secs(10), || {
        cli(p1, &["ping"]).trim() == "PONG" && cli(p2, &["ping"]).trim() == "PONG"
    });
    let id1 = cli(p1, &["cluster", "myid"]).trim().to_string();
    let id2 = cli(p2, &["cluster", "myid"]).trim().to_string();

    // A current-thread runtime driven by a background thread (the workspace tokio has no
    // rt-multi-thread feature).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rt_handle = rt.handle().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt_thread = std::thread::spawn(move || {
        let _ = rt.block_on(stop_rx);
    });
    let opts = ClusterOptions {
        port: p3,
        bus_port: p3 + 10000,
        bind: vec!["127.0.0.1".into()],
        node_timeout_ms: 3000,
        config_file: d3.join("nodes.conf"),
        announce_ip: None,
        announce_port: None,
        announce_bus_port: None,
        announce_hostname: Some("cinnabar.test".into()),
        require_full_coverage: true,
        allow_reads_when_down: false,
        replica_no_failover: false,
        migration_barrier: 1,
        replica_validity_factor: 10,
    };
    let h = ClusterHandle::start(opts.clone(), &rt_handle).expect("start driver");
    let Reply::Bulk(myid) = cmd(&h, "myid") else {
        panic!("myid")
    };
    let id3 = String::from_utf8(myid).expect("utf8");

    // Cinnabar MEETs real node 1; real node 1 MEETs real node 2. Cinnabar must learn node 2
    // by gossip and node 2 must learn Cinnabar by gossip.
    assert_eq!(cmd(&h, &format!("meet 127.0.0.1 {p1}")), Reply::Ok);
    assert_eq!(
        cli(p1, &["cluster", "meet", "127.0.0.1", &p2.to_string()]).trim(),
        "OK"
    );

    wait_for(
        "full mesh seen from every node",
        Duration::from_secs(30),
        || {
            let n1 = cli(p1, &["cluster", "nodes"]);
            let n2 = cli(p2, &["cluster", "nodes"]);
            let n3 = nodes_text(&h);
            healthy(line_of(&n1, &id3))
                && healthy(line_of(&n2, &id3))
                && healthy(line_of(&n3, &id1))
                && healthy(line_of(&n3, &id2))
                && n3.lines().count() == 3
        },
    );
    // The real nodes see our announced address and hostname.
    let n1 = cli(p1, &["cluster", "nodes"]);
    let l = line_of(&n1, &id3).expect("line");
    assert!(
        l.contains(&format!(
            "127.0.0.1:{p3}@{},cinnabar.test master",
            p3 + 10000
        )),
        "line: {l}"
    );
    // We learned our own IP from the handshake.
    let n3 = nodes_text(&h);
    assert!(
        line_of(&n3, &id3).is_some_and(|l| l.contains(&format!(" 127.0.0.1:{p3}@"))),
        "{n3}"
    );

    // Slots flow both ways.
    assert_eq!(cmd(&h, "addslotsrange 0 100"), Reply::Ok);
    assert_eq!(cli(p1, &["cluster", "addslots", "200"]).trim(), "OK");
    wait_for("slot ownership propagated", Duration::from_secs(20), || {
        let n2 = cli(p2, &["cluster", "nodes"]);
        line_of(&n2, &id3).is_some_and(|l| l.ends_with(" 0-100"))
            && h.route(200)
                == Route::Moved {
                    ip: "127.0.0.1".into(),
                    port: p1,
                }
    });
    assert_eq!(h.route(50), Route::Myself);
    assert_eq!(h.route(300), Route::Unassigned);
    assert!(
        !h.serves_reads_for(200),
        "a master does not serve READONLY reads for others"
    );

    // A real node joins and becomes a replica of the Cinnabar master (walkthrough step
    // CLUSTER REPLICATE); everybody must agree on the role. Also compare Cinnabar's
    // CLUSTER NODES fields with the real node's for the same peers.
    let p4 = free_port_pair(&[p1, p2, p3]);
    let d4 = temp_dir("r4");
    let _r4 = start_redis(&d4, p4);
    wait_for("redis 4 up", Duration::from_secs(10), || {
        cli(p4, &["ping"]).trim() == "PONG"
    });
    let id4 = cli(p4, &["cluster", "myid"]).trim().to_string();
    assert_eq!(
        cli(p4, &["cluster", "meet", "127.0.0.1", &p1.to_string()]).trim(),
        "OK"
    );
    wait_for("redis 4 knows cinnabar", Duration::from_secs(20), || {
        healthy(line_of(&cli(p4, &["cluster", "nodes"]), &id3))
    });
    assert_eq!(cli(p4, &["cluster", "replicate", &id3]).trim(), "OK");
    let fields = |l: &str| -> Vec<String> {
        let f: Vec<&str> = l.split(' ').collect();
        // id, addr, flags, master, epoch, link, slots (ping/pong times differ)
        let mut v: Vec<String> = [f[0], f[1], f[2], f[3], f[6], f[7]]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(f[8..].iter().map(|s| s.to_string()));
        v
    };
    wait_for(
        "replica role agreed and NODES lines identical",
        Duration::from_secs(20),
        || {
            let n3 = nodes_text(&h);
            let n1 = cli(p1, &["cluster", "nodes"]);
            let (Some(a), Some(b)) = (line_of(&n3, &id4), line_of(&n1, &id4)) else {
                return false;
            };
            let (Some(c), Some(d)) = (line_of(&n3, &id2), line_of(&n1, &id2)) else {
                return false;
            };
            a.contains(&format!(" slave {id3} "))
                && fields(a) == fields(b)
                && fields(c) == fields(d)
        },
    );
    let Reply::Array(replicas) = cmd(&h, &format!("replicas {id3}")) else {
        panic!("replicas")
    };
    assert_eq!(replicas.len(), 1);
    drop(_r4);
    let _ = std::fs::remove_dir_all(&d4);

    // Restart keeps id, epochs and slots.
    h.shutdown();
    drop(h);
    let mut restarted = None;
    wait_for(
        "bus port released after shutdown",
        Duration::from_secs(10),
        || match ClusterHandle::start(opts.clone(), &rt_handle) {
            Ok(h) => {
                restarted = Some(h);
                true
            }
            Err(cinnabar_cluster::ClusterError::Bind { .. }) => false,
            Err(e) => panic!("restart failed: {e}"),
        },
    );
    let h = restarted.expect("restarted");
    let Reply::Bulk(again) = cmd(&h, "myid") else {
        panic!("myid")
    };
    assert_eq!(String::from_utf8(again).expect("utf8"), id3);
    assert_eq!(h.route(50), Route::Myself);
    wait_for("reconnected after restart", Duration::from_secs(20), || {
        healthy(line_of(&nodes_text(&h), &id1))
            && healthy(line_of(&cli(p1, &["cluster", "nodes"]), &id3))
    });
    h.shutdown();
    let _ = stop_tx.send(());
    let _ = rt_thread.join();
    let _ = std::fs::remove_dir_all(&d1);
    let _ = std::fs::remove_dir_all(&d2);
    let _ = std::fs::remove_dir_all(&d3);
}

/// A Cinnabar replica of a real master is elected by real masters when that master dies.
#[test]
fn real_masters_elect_cinnabar_replica_on_master_loss() {
    if !have("redis-server") || !have("redis-cli") {
        eprintln!("SKIPPED: redis-server / redis-cli not on PATH");
        return;
    }
    let mut ports = Vec::new();
    for _ in 0..4 {
        let p = free_port_pair(&ports);
        ports.push(p);
    }
    let (p1, p2, p3, pc) = (ports[0], ports[1], ports[2], ports[3]);
    let dirs: Vec<PathBuf> = ["f1", "f2", "f3", "fc"]
        .iter()
        .map(|t| temp_dir(t))
        .collect();
    let mut r1 = Some(start_redis(&dirs[0], p1));
    let _r2 = start_redis(&dirs[1], p2);
    let _r3 = start_redis(&dirs[2], p3);
    wait_for("redis nodes up", Duration::from_secs(10), || {
        [p1, p2, p3]
            .iter()
            .all(|p| cli(*p, &["ping"]).trim() == "PONG")
    });
    let id1 = cli(p1, &["cluster", "myid"]).trim().to_string();
    for (p, range) in [
        (p1, ["0", "5460"]),
        (p2, ["5461", "10922"]),
        (p3, ["10923", "16383"]),
    ] {
        assert_eq!(
            cli(p, &["cluster", "addslotsrange", range[0], range[1]]).trim(),
            "OK"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rt_handle = rt.handle().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rt_thread = std::thread::spawn(move || {
        let _ = rt.block_on(stop_rx);
    });
    let opts = ClusterOptions {
        port: pc,
        bus_port: pc + 10000,
        bind: vec!["127.0.0.1".into()],
        node_timeout_ms: 3000,
        config_file: dirs[3].join("nodes.conf"),
        announce_ip: None,
        announce_port: None,
        announce_bus_port: None,
        announce_hostname: None,
        require_full_coverage: true,
        allow_reads_when_down: false,
        replica_no_failover: false,
        migration_barrier: 1,
        replica_validity_factor: 10,
    };
    let h = ClusterHandle::start(opts, &rt_handle).expect("start driver");
    let Reply::Bulk(myid) = cmd(&h, "myid") else {
        panic!("myid")
    };
    let idc = String::from_utf8(myid).expect("utf8");
    assert_eq!(cmd(&h, &format!("meet 127.0.0.1 {p1}")), Reply::Ok);
    for p in [p2, p3] {
        assert_eq!(
            cli(p1, &["cluster", "meet", "127.0.0.1", &p.to_string()]).trim(),
            "OK"
        );
    }
    wait_for("mesh and cluster ok", Duration::from_secs(30), || {
        h.is_ok()
            && [p1, p2, p3]
                .iter()
                .all(|p| healthy(line_of(&cli(*p, &["cluster", "nodes"]), &idc)))
    });
    let mut events = h.take_events().expect("event stream");
    assert!(h.take_events().is_none());
    assert_eq!(cmd(&h, &format!("replicate {id1}")), Reply::Ok);
    assert!(h.myself_is_replica());
    assert_eq!(
        events.try_recv().ok(),
        Some(cinnabar_cluster::ServerEvent::ReplicateFrom(Some((
            "127.0.0.1".into(),
            p1
        ))))
    );
    wait_for(
        "real nodes see the Cinnabar replica",
        Duration::from_secs(20),
        || {
            [p2, p3].iter().all(|p| {
                line_of(&cli(*p, &["cluster", "nodes"]), &idc)
                    .is_some_and(|l| l.contains(&format!(" slave {id1} ")))
            })
        },
    );
    assert!(h.serves_reads_for(0));
    drop(r1.take()); // kill the real master
    wait_for(
        "Cinnabar promoted by the real masters' votes",
        Duration::from_secs(40),
        || {
            h.route(0) == Route::Myself
                && !h.myself_is_replica()
                && [p2, p3].iter().all(|p| {
                    line_of(&cli(*p, &["cluster", "nodes"]), &idc)
                        .is_some_and(|l| l.contains(" master ") && l.ends_with(" 0-5460"))
                })
        },
    );
    wait_for("cluster ok again", Duration::from_secs(20), || {
        h.is_ok() && cli(p2, &["cluster", "info"]).contains("cluster_state:ok")
    });
    h.shutdown();
    let _ = stop_tx.send(());
    let _ = rt_thread.join();
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
