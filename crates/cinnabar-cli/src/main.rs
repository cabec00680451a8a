//! `cinnabar`: the operator tool. `cinnabar cluster up` starts a local Redis-Cluster-compatible
//! cluster (default: the user's 3 masters + 3 replicas) from plain redis.conf files and forms
//! it through the same steps a person runs by hand with redis-cli — CLUSTER MEET, CLUSTER
//! ADDSLOTS, CLUSTER REPLICATE — then waits for `cluster_state:ok`. `cluster status` and
//! `cluster down` complete it.

mod check;
mod resp;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use resp::Conn;

#[derive(Parser)]
#[command(
    name = "cinnabar",
    version,
    about = "Cinnabar operator tool (Redis Cluster compatible)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Manage a local cluster of cinnabar-server processes.
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
    },
    /// Check (and with --fix repair) an AOF: a manifest, an AOF file or an RDB-preamble AOF,
    /// like redis-check-aof.
    CheckAof(check::CheckAofArgs),
    /// Check an RDB file, like redis-check-rdb.
    CheckRdb(check::CheckRdbArgs),
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Start (or restart) the local cluster and form it: MEET, ADDSLOTS, REPLICATE.
    Up(UpArgs),
    /// Show every node of the local cluster.
    Status(DirArgs),
    /// Stop every node of the local cluster (SIGTERM, then SIGKILL after a deadline).
    Down(DirArgs),
}

#[derive(Args, Clone)]
struct UpArgs {
    /// Number of masters.
    #[arg(long, default_value_t = 3)]
    masters: u16,
    /// Replicas per master.
    #[arg(long, default_value_t = 1)]
    replicas: u16,
    /// Port of the first node; nodes use consecutive ports.
    #[arg(long, default_value_t = 7000)]
    base_port: u16,
    /// cluster-node-timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    node_timeout_ms: u64,
    /// Directory holding one sub-directory (config, nodes.conf, log) per node.
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Path of the cinnabar-server binary (default: next to this tool, built if missing).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// How long to wait for the cluster to form, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

#[derive(Args, Clone)]
struct DirArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
}

const HOST: &str = "127.0.0.1";

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Top::Cluster { cmd } => match cmd {
            ClusterCmd::Up(a) => up(&a),
            ClusterCmd::Status(a) => status(&a.dir),
            ClusterCmd::Down(a) => down(&a.dir),
        },
        Top::CheckAof(a) => std::process::exit(check::check_aof(&a)),
        Top::CheckRdb(a) => std::process::exit(check::check_rdb(&a)),
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn progress(msg: &str) {
    println!(">>> {msg}");
}

/// Finds cinnabar-server: explicit path, next to this binary, or built from the workspace.
fn server_binary(explicit: &Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.clone());
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().ok_or("cannot locate own directory")?;
    let candidate = dir.join("cinnabar-server");
    // Inside a cargo workspace, (re)build the server so it matches this tool.
    let profile_release = dir.ends_with("release");
    if let Some(ws) = find_workspace(dir) {
        progress("Building cinnabar-server (cargo build -p cinnabar-server)...");
        let mut c = Command::new("cargo");
        c.args(["build", "-p", "cinnabar-server"]).current_dir(ws);
        if profile_release {
            c.arg("--release");
        }
        let st = c.status().map_err(|e| format!("running cargo: {e}"))?;
        if !st.success() {
            return Err("cargo build of cinnabar-server failed".into());
        }
    }
    if candidate.exists() {
        Ok(candidate)
    } else {
        Err(format!(
            "cinnabar-server not found at {}",
            candidate.display()
        ))
    }
}

fn find_workspace(start: &Path) -> Option<PathBuf> {
    let mut d = Some(start);
    while let Some(dir) = d {
        if dir.join("Cargo.toml").exists() && dir.join("crates/cinnabar-server").exists() {
            return Some(dir.to_path_buf());
        }
        d = dir.parent();
    }
    None
}

fn wait_until<T>(
    deadline: Instant,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn node_config(port: u16, node_timeout_ms: u64) -> String {
    // The user's five lines, plus where to keep the pid and log.
    format!(
        "port {port}\ncluster-enabled yes\ncluster-config-file nodes-{port}.conf\ncluster-node-timeout {node_timeout_ms}\nappendonly yes\npidfile cinnabar.pid\nlogfile node.log\n"
    )
}

fn read_pid(node_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(node_dir.join("cinnabar.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn cmd(port: u16, args: &[&str]) -> Result<resp::Value, String> {
    let mut c = Conn::connect(HOST, port).map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    c.call(args).map_err(|e| format!("127.0.0.1:{port}: {e}"))
}

fn cmd_text(port: u16, args: &[&str]) -> Result<String, String> {
    match cmd(port, args)? {
        resp::Value::Error(e) => Err(format!("127.0.0.1:{port} {}: {e}", args.join(" "))),
        v => Ok(v.as_text()),
    }
}

struct NodeLine {
    id: String,
    port: u16,
    flags: String,
    master: String,
}

fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            if f.len() < 8 {
                return None;
            }
            let addr = f[1].split('@').next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            Some(NodeLine {
                id: f[0].into(),
                port,
                flags: f[2].into(),
                master: f[3].into(),
            })
        })
        .collect()
}

fn up(a: &UpArgs) -> Result<(), String> {
    if a.masters == 0 {
        return Err("--masters must be at least 1".into());
    }
    let total = a.masters as u32 * (1 + a.replicas as u32);
    if a.base_port as u32 + total > 55535 {
        return Err("ports too high: the cluster bus uses port + 10000".into());
    }
    let bin = server_binary(&a.server_bin)?;
    std::fs::create_dir_all(&a.dir).map_err(|e| format!("{}: {e}", a.dir.display()))?;
    let dir = std::fs::canonicalize(&a.dir).map_err(|e| e.to_string())?;
    let ports: Vec<u16> = (0..total as u16).map(|i| a.base_port + i).collect();
    let deadline = Instant::now() + Duration::from_secs(a.timeout_s);

    // 1. Start every node from its own redis.conf.
    for &p in &ports {
        let nd = dir.join(p.to_string());
        std::fs::create_dir_all(&nd).map_err(|e| e.to_string())?;
        let conf = nd.join("redis.conf");
        if !conf.exists() {
            std::fs::write(&conf, node_config(p, a.node_timeout_ms)).map_err(|e| e.to_string())?;
        }
        if let Some(pid) = read_pid(&nd) {
            if alive(pid) && cmd(p, &["PING"]).is_ok() {
                progress(&format!("node 127.0.0.1:{p} already running (pid {pid})"));
                continue;
            }
        }
        progress(&format!("starting node 127.0.0.1:{p} ({})", conf.display()));
        let log = std::fs::File::create(nd.join("stdout.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        use std::os::unix::process::CommandExt;
        Command::new(&bin)
            .arg("redis.conf")
            .current_dir(&nd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    }
    for &p in &ports {
        wait_until(deadline, &format!("127.0.0.1:{p} to answer PING"), || {
            cmd_text(p, &["PING"]).ok().filter(|r| r == "PONG")
        })?;
    }

    // Already formed (restart): just wait for ok.
    let already = ports.iter().all(|&p| {
        cmd_text(p, &["CLUSTER", "INFO"])
            .map(|i| i.contains("cluster_slots_assigned:16384"))
            .unwrap_or(false)
    });
    if !already {
        // 2. CLUSTER MEET from the first node to every other node.
        let first = ports[0];
        for &p in &ports[1..] {
            progress(&format!("CLUSTER MEET 127.0.0.1 {p}"));
            cmd_text(first, &["CLUSTER", "MEET", HOST, &p.to_string()])?;
        }
        for &p in &ports {
            wait_until(
                deadline,
                &format!("127.0.0.1:{p} to know all {total} nodes"),
                || {
                    let t = cmd_text(p, &["CLUSTER", "NODES"]).ok()?;
                    let nodes = parse_nodes(&t);
                    (nodes.len() == total as usize
                        && nodes.iter().all(|n| !n.flags.contains("handshake")))
                    .then_some(())
                },
            )?;
        }
        // 3. CLUSTER ADDSLOTS: slot ranges split like the walkthrough (0-5461, 5462-10922, ...).
        let m = a.masters as u32;
        for i in 0..m {
            let start = (i * 16384).div_ceil(m);
            let end = ((i + 1) * 16384).div_ceil(m) - 1;
            let p = ports[i as usize];
            progress(&format!(
                "127.0.0.1:{p} CLUSTER ADDSLOTS {{{start}..{end}}}"
            ));
            let slots: Vec<String> = (start..=end).map(|s| s.to_string()).collect();
            let mut args: Vec<&str> = vec!["CLUSTER", "ADDSLOTS"];
            args.extend(slots.iter().map(|s| s.as_str()));
            cmd_text(p, &args)?;
        }
        // 4. CLUSTER REPLICATE: replica j of master i.
        let ids: Vec<String> = (0..m as usize)
            .map(|i| cmd_text(ports[i], &["CLUSTER", "MYID"]))
            .collect::<Result<_, _>>()?;
        for r in 0..a.replicas as usize {
            for i in 0..m as usize {
                let p = ports[m as usize * (1 + r) + i];
                let master = &ids[i];
                wait_until(
                    deadline,
                    &format!("127.0.0.1:{p} to know master {master}"),
                    || {
                        let t = cmd_text(p, &["CLUSTER", "NODES"]).ok()?;
                        parse_nodes(&t)
                            .iter()
                            .any(|n| &n.id == master && n.flags.contains("master"))
                            .then_some(())
                    },
                )?;
                progress(&format!(
                    "127.0.0.1:{p} CLUSTER REPLICATE {master} (replica of 127.0.0.1:{})",
                    ports[i]
                ));
                cmd_text(p, &["CLUSTER", "REPLICATE", master])?;
            }
        }
    } else {
        progress("cluster already formed; waiting for it to be healthy");
    }
    // 5. Wait for cluster_state:ok everywhere and for the replicas to be visible.
    for &p in &ports {
        wait_until(
            deadline,
            &format!("cluster_state:ok on 127.0.0.1:{p}"),
            || {
                let t = cmd_text(p, &["CLUSTER", "INFO"]).ok()?;
                t.contains("cluster_state:ok").then_some(())
            },
        )?;
    }
    let want_replicas = (a.masters as usize) * (a.replicas as usize);
    wait_until(deadline, "every node to see every replica", || {
        ports
            .iter()
            .all(|&p| {
                cmd_text(p, &["CLUSTER", "NODES"])
                    .map(|t| {
                        parse_nodes(&t)
                            .iter()
                            .filter(|n| n.flags.contains("slave"))
                            .count()
                            == want_replicas
                    })
                    .unwrap_or(false)
            })
            .then_some(())
    })?;
    let nodes = cmd_text(ports[0], &["CLUSTER", "NODES"])?;
    println!(
        "\nCluster is up: {} master(s), {} replica(s) per master.\n",
        a.masters, a.replicas
    );
    let mut lines: Vec<NodeLine> = parse_nodes(&nodes);
    lines.sort_by_key(|n| n.port);
    for n in &lines {
        let role = if n.flags.contains("master") {
            "master".to_string()
        } else {
            format!("replica of {}", n.master)
        };
        println!("  127.0.0.1:{}  {}  {}", n.port, n.id, role);
    }
    println!("\nConnect with:   redis-cli -c -p {}", ports[0]);
    println!(
        "Status:         cinnabar cluster status --dir {}",
        a.dir.display()
    );
    println!(
        "Stop:           cinnabar cluster down --dir {}",
        a.dir.display()
    );
    Ok(())
}

fn node_dirs(dir: &Path) -> Result<Vec<(u16, PathBuf)>, String> {
    let mut v = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in rd.flatten() {
        if let Some(port) = e.file_name().to_str().and_then(|s| s.parse::<u16>().ok()) {
            v.push((port, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

fn status(dir: &Path) -> Result<(), String> {
    for (port, nd) in node_dirs(dir)? {
        let pid = read_pid(&nd).filter(|p| alive(*p));
        let state = match cmd_text(port, &["CLUSTER", "INFO"]) {
            Ok(t) => t
                .lines()
                .find(|l| l.starts_with("cluster_state:"))
                .unwrap_or("?")
                .trim()
                .to_string(),
            Err(_) => "down".into(),
        };
        let role = cmd_text(port, &["CLUSTER", "NODES"])
            .ok()
            .and_then(|t| {
                parse_nodes(&t)
                    .into_iter()
                    .find(|n| n.flags.contains("myself"))
            })
            .map(|n| {
                if n.flags.contains("master") {
                    "master".to_string()
                } else {
                    format!("replica of {}", n.master)
                }
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "127.0.0.1:{port}  pid={}  {state}  {role}",
            pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

fn down(dir: &Path) -> Result<(), String> {
    let nodes = node_dirs(dir)?;
    let mut pids = Vec::new();
    for (port, nd) in &nodes {
        if let Some(pid) = read_pid(nd).filter(|p| alive(*p)) {
            progress(&format!("stopping 127.0.0.1:{port} (pid {pid})"));
            // SAFETY: sending a signal to a process id we recorded.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            pids.push(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = wait_until(deadline, "nodes to exit", || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    });
    if r.is_err() {
        for p in &pids {
            // SAFETY: as above.
            unsafe {
                libc::kill(*p, libc::SIGKILL);
            }
        }
    }
    progress("cluster stopped");
    Ok(())
}
