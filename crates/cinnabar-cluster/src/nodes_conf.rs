//! nodes.conf: Redis 7.0's exact format (CLUSTER NODES lines without handshake nodes,
//! then `vars currentEpoch N lastVoteEpoch N`), parse and serialize, atomic rewrite
//! (tmp file, fsync, rename, fsync dir) and an exclusive `flock` so two processes cannot
//! share one file. Also the CLUSTER NODES line generator shared with `commands.rs`.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::slot::SLOT_COUNT;
use crate::state::{ClusterNode, ClusterState};
use crate::wire::{flags, NodeName};

/// One node line of nodes.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    pub name: NodeName,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub hostname: String,
    pub flags: u16,
    pub master: Option<NodeName>,
    pub ping_sent_ms: u64,
    pub pong_received_ms: u64,
    pub config_epoch: u64,
    pub connected: bool,
    /// Inclusive slot ranges.
    pub slots: Vec<(u16, u16)>,
    pub migrating: Vec<(u16, NodeName)>,
    pub importing: Vec<(u16, NodeName)>,
}

/// A parsed nodes.conf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodesConf {
    pub nodes: Vec<NodeLine>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
}

/// Errors loading or saving nodes.conf.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("Unrecoverable error: corrupted cluster config file \"{line}\": {reason}")]
    Corrupt { line: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("Sorry, the cluster configuration file {0} is already used by a different Redis Cluster node. Please make sure that different nodes use different cluster configuration files.")]
    Locked(String),
}

/// Flags in CLUSTER NODES order.
const FLAG_TABLE: [(u16, &str); 8] = [
    (flags::MYSELF, "myself"),
    (flags::MASTER, "master"),
    (flags::SLAVE, "slave"),
    (flags::PFAIL, "fail?"),
    (flags::FAIL, "fail"),
    (flags::HANDSHAKE, "handshake"),
    (flags::NOADDR, "noaddr"),
    (flags::NOFAILOVER, "nofailover"),
];

/// Comma-separated flag text (`noflags` when none apply).
pub fn flags_text(node_flags: u16) -> String {
    let parts: Vec<&str> = FLAG_TABLE
        .iter()
        .filter(|(f, _)| node_flags & f != 0)
        .map(|(_, s)| *s)
        .collect();
    if parts.is_empty() {
        "noflags".to_string()
    } else {
        parts.join(",")
    }
}

/// One CLUSTER NODES line, without the trailing newline (`clusterGenNodeDescription`).
pub fn node_description(st: &ClusterState, n: &ClusterNode) -> String {
    let mut s = String::with_capacity(128);
    let _ = write!(s, "{} {}:{}@{}", n.name, n.ip, n.port, n.cport);
    if !n.hostname.is_empty() {
        let _ = write!(s, ",{}", n.hostname);
    }
    s.push(' ');
    s.push_str(&flags_text(n.flags));
    match n.replicaof {
        Some(m) if n.is_replica() => {
            let _ = write!(s, " {m}");
        }
        _ => s.push_str(" -"),
    }
    let connected = n.has(flags::MYSELF) || n.link.is_some();
    let _ = write!(
        s,
        " {} {} {} {}",
        n.ping_sent_ms,
        n.pong_received_ms,
        st.node_epoch(n),
        if connected {
            "connected"
        } else {
            "disconnected"
        }
    );
    let mut start: Option<usize> = None;
    let mut j = 0;
    while j <= SLOT_COUNT {
        // Skip whole bytes that neither start nor end a range.
        if j % 8 == 0 && j < SLOT_COUNT {
            let byte = n.slots.0[j / 8];
            if (byte == 0 && start.is_none()) || (byte == 0xFF && start.is_some()) {
                j += 8;
                continue;
            }
        }
        let owned = j < SLOT_COUNT && n.slots.get(j);
        match (owned, start) {
            (true, None) => start = Some(j),
            (false, Some(st_slot)) => {
                if st_slot == j - 1 {
                    let _ = write!(s, " {st_slot}");
                } else {
                    let _ = write!(s, " {st_slot}-{}", j - 1);
                }
                start = None;
            }
            _ => {}
        }
        j += 1;
    }
    if n.has(flags::MYSELF) {
        for (slot, target) in &st.open.migrating_to {
            let _ = write!(s, " [{slot}->-{target}]");
        }
        for (slot, source) in &st.open.importing_from {
            let _ = write!(s, " [{slot}-<-{source}]");
        }
    }
    s
}

/// All node lines, each ending in `\n`, optionally skipping nodes with `skip_flags`.
pub fn nodes_description(st: &ClusterState, skip_flags: u16) -> String {
    let mut out = String::new();
    for n in st.nodes.values() {
        if n.flags & skip_flags != 0 {
            continue;
        }
        out.push_str(&node_description(st, n));
        out.push('\n');
    }
    out
}

/// The full nodes.conf content.
pub fn serialize(st: &ClusterState) -> String {
    let mut out = nodes_description(st, flags::HANDSHAKE);
    let _ = writeln!(
        out,
        "vars currentEpoch {} lastVoteEpoch {}",
        st.current_epoch, st.last_vote_epoch
    );
    out
}

fn corrupt(line: &str, reason: &str) -> ConfError {
    ConfError::Corrupt {
        line: line.to_string(),
        reason: reason.to_string(),
    }
}

fn parse_name(line: &str, text: &str) -> Result<NodeName, ConfError> {
    let ok = text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok {
        return Err(corrupt(line, "invalid node name"));
    }
    NodeName::parse(text.as_bytes()).ok_or_else(|| corrupt(line, "invalid node name"))
}

fn parse_num<T: std::str::FromStr>(line: &str, text: &str, what: &str) -> Result<T, ConfError> {
    text.parse::<T>().map_err(|_| corrupt(line, what))
}

/// Parse nodes.conf text (7.0 loader rules).
pub fn parse(text: &str) -> Result<NodesConf, ConfError> {
    let mut conf = NodesConf::default();
    let mut myself_count = 0;
    for raw in text.split('\n') {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let argv: Vec<&str> = line.split(' ').filter(|s| !s.is_empty()).collect();
        if argv[0] == "vars" {
            let mut j = 1;
            while j + 1 < argv.len() {
                match argv[j] {
                    "currentEpoch" => {
                        conf.current_epoch = parse_num(line, argv[j + 1], "bad currentEpoch")?
                    }
                    "lastVoteEpoch" => {
                        conf.last_vote_epoch = parse_num(line, argv[j + 1], "bad lastVoteEpoch")?
                    }
                    _ => {} // unknown vars are skipped (Redis warns)
                }
                j += 2;
            }
            continue;
        }
        if argv.len() < 8 {
            return Err(corrupt(line, "too few fields"));
        }
        let name = parse_name(line, argv[0])?;
        // Address: ip:port[@cport][,hostname]
        let (addr, hostname) = match argv[1].split_once(',') {
            Some((a, h)) => (a, h.to_string()),
            None => (argv[1], String::new()),
        };
        let (ipport, cport_text) = match addr.rsplit_once('@') {
            Some((a, c)) => (a, Some(c)),
            None => (addr, None),
        };
        let (ip, port_text) = ipport
            .rsplit_once(':')
            .ok_or_else(|| corrupt(line, "address without port"))?;
        let port: u16 = parse_num(line, port_text, "bad port")?;
        let cport: u16 = match cport_text {
            Some(c) => parse_num(line, c, "bad cluster bus port")?,
            None => port.wrapping_add(10000),
        };
        let mut node_flags = 0u16;
        for f in argv[2].split(',') {
            node_flags |= match f {
                "myself" => flags::MYSELF,
                "master" => flags::MASTER,
                "slave" => flags::SLAVE,
                "fail?" => flags::PFAIL,
                "fail" => flags::FAIL,
                "handshake" => flags::HANDSHAKE,
                "noaddr" => flags::NOADDR,
                "nofailover" => flags::NOFAILOVER,
                "noflags" => 0,
                _ => return Err(corrupt(line, "Unknown flag in redis cluster config file")),
            };
        }
        if node_flags & flags::MYSELF != 0 {
            myself_count += 1;
        }
        let master = if argv[3] == "-" {
            None
        } else {
            Some(parse_name(line, argv[3])?)
        };
        let ping_sent_ms = parse_num(line, argv[4], "bad ping-sent")?;
        let pong_received_ms = parse_num(line, argv[5], "bad pong-received")?;
        let config_epoch = parse_num(line, argv[6], "bad config epoch")?;
        let connected = argv[7] == "connected";
        let mut nl = NodeLine {
            name,
            ip: ip.to_string(),
            port,
            cport,
            hostname,
            flags: node_flags,
            master,
            ping_sent_ms,
            pong_received_ms,
            config_epoch,
            connected,
            slots: Vec::new(),
            migrating: Vec::new(),
            importing: Vec::new(),
        };
        for spec in &argv[8..] {
            if let Some(inner) = spec.strip_prefix('[') {
                let inner = inner
                    .strip_suffix(']')
                    .ok_or_else(|| corrupt(line, "bad open slot"))?;
                if let Some((slot, id)) = inner.split_once("->-") {
                    let slot: u16 = parse_num(line, slot, "bad slot")?;
                    if slot as usize >= SLOT_COUNT {
                        return Err(corrupt(line, "slot out of range"));
                    }
                    nl.migrating.push((slot, parse_name(line, id)?));
                } else if let Some((slot, id)) = inner.split_once("-<-") {
                    let slot: u16 = parse_num(line, slot, "bad slot")?;
                    if slot as usize >= SLOT_COUNT {
                        return Err(corrupt(line, "slot out of range"));
                    }
                    nl.importing.push((slot, parse_name(line, id)?));
                } else {
                    return Err(corrupt(line, "bad open slot"));
                }
                continue;
            }
            let (a, b) = match spec.split_once('-') {
                Some((a, b)) => (
                    parse_num::<u16>(line, a, "bad slot")?,
                    parse_num::<u16>(line, b, "bad slot")?,
                ),
                None => {
                    let s = parse_num::<u16>(line, spec, "bad slot")?;
                    (s, s)
                }
            };
            if a > b || b as usize >= SLOT_COUNT {
                return Err(corrupt(line, "slot out of range"));
            }
            nl.slots.push((a, b));
        }
        conf.nodes.push(nl);
    }
    if myself_count != 1 {
        return Err(ConfError::Corrupt {
            line: String::new(),
            reason: "there must be exactly one 'myself' node".to_string(),
        });
    }
    Ok(conf)
}

/// Atomically replace `path` with `content`: write `<path>.tmp-<pid>`, fsync it, rename
/// over `path`, fsync the directory (`fsync_dir` may be skipped when `fsync` is false).
pub fn save_atomic(path: &Path, content: &str, fsync: bool) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(content.as_bytes())?;
        if fsync {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)?;
        if fsync {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Replace the content of `path` in place, without fsync (Redis 7.0's clusterSaveConfig for
/// saves that do not ask for one: SETSLOT, state learned from peers). One `write` at offset 0
/// covers the whole old length — the new content padded with newlines, which the loader
/// skips — and only then is the file truncated, so a process killed at any point leaves a
/// loadable file (old content, or new content plus blank lines). No new inode, no rename:
/// several times cheaper than [`save_atomic`], which stays the path for fsynced saves (epoch
/// bumps, votes), where a power loss must find either the old or the new file.
pub fn save_in_place(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let old_len = f.metadata()?.len() as usize;
    let mut buf = content.as_bytes().to_vec();
    if old_len > buf.len() {
        buf.resize(old_len, b'\n');
    }
    f.write_all_at(&buf, 0)?;
    if buf.len() != content.len() {
        f.set_len(content.len() as u64)?;
    }
    Ok(())
}

/// An exclusive advisory lock held for the life of the process.
///
/// Because saves replace the file by rename, locking the config file itself would lock a
/// stale inode after the first save; the lock is therefore taken on a sidecar
/// `<config>.lock` file.
#[derive(Debug)]
pub struct ConfigLock {
    _file: File,
}

impl ConfigLock {
    pub fn acquire(config_path: &Path) -> Result<ConfigLock, ConfError> {
        let mut lock_path = config_path.as_os_str().to_owned();
        lock_path.push(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(PathBuf::from(lock_path))?;
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(ConfError::Locked(config_path.display().to_string()));
            }
            return Err(ConfError::Io(err));
        }
        Ok(ConfigLock { _file: file })
    }
}

/// Read and parse `path`: `Ok(None)` when missing or empty (a new node is created).
pub fn load(path: &Path) -> Result<Option<NodesConf>, ConfError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => Ok(None),
        Ok(bytes) => {
            let text =
                String::from_utf8(bytes).map_err(|_| corrupt("", "file is not valid UTF-8"))?;
            Ok(Some(parse(&text)?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfError::Io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateConfig;

    #[test]
    fn save_in_place_shrinks_grows_and_stays_loadable() {
        let dir = std::env::temp_dir().join(format!("cinnabar-nc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("nodes.conf");
        save_in_place(&p, SAMPLE).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), SAMPLE);
        let short =
            SAMPLE.lines().nth(1).unwrap().to_string() + "\nvars currentEpoch 7 lastVoteEpoch 3\n";
        save_in_place(&p, &short).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), short);
        // What a crash between the write and the truncate leaves: content + blank lines.
        let padded = short.clone() + &"\n".repeat(SAMPLE.len() - short.len());
        assert_eq!(parse(&padded).unwrap().nodes.len(), 1);
        save_in_place(&p, SAMPLE).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), SAMPLE);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const SAMPLE: &str = "\
e1cd05f27a27c61d3be9704d4368036d30e481c9 127.0.0.1:30001@40001 master - 0 1795935855860 5 connected 0-5460 7000
292007a1a68ecbbd3b03fc6e17d18dda2f147e46 127.0.0.1:30002@40002,node-b.example myself,master - 0 0 6 connected 5461-6999 7001-16383 [7001->-e1cd05f27a27c61d3be9704d4368036d30e481c9] [5-<-e1cd05f27a27c61d3be9704d4368036d30e481c9]
0f11017d651c07e8614e9221ecbdbb0f7f4ce438 127.0.0.1:30003@40003 slave,fail e1cd05f27a27c61d3be9704d4368036d30e481c9 1795935855000 1795935855860 5 disconnected
vars currentEpoch 7 lastVoteEpoch 3
";

    #[test]
    fn parse_sample() {
        let c = parse(SAMPLE).expect("parse");
        assert_eq!(c.current_epoch, 7);
        assert_eq!(c.last_vote_epoch, 3);
        assert_eq!(c.nodes.len(), 3);
        let me = &c.nodes[1];
        assert_eq!(me.hostname, "node-b.example");
        assert_eq!(me.flags, flags::MYSELF | flags::MASTER);
        assert_eq!(me.slots, vec![(5461, 6999), (7001, 16383)]);
        assert_eq!(me.migrating.len(), 1);
        assert_eq!(me.importing, vec![(5, c.nodes[0].name)]);
        assert_eq!(c.nodes[2].flags, flags::SLAVE | flags::FAIL);
        assert_eq!(c.nodes[2].master, Some(c.nodes[0].name));
    }

    #[test]
    fn parse_errors() {
        assert!(
            parse("vars currentEpoch 0 lastVoteEpoch 0\n").is_err(),
            "no myself"
        );
        let bad_flag =
            "e1cd05f27a27c61d3be9704d4368036d30e481c9 :0@0 myself,bogus - 0 0 0 connected\n";
        assert!(matches!(parse(bad_flag), Err(ConfError::Corrupt { .. })));
        let short = "e1cd05f27a27c61d3be9704d4368036d30e481c9 :0@0 myself,master - 0 0\n";
        assert!(parse(short).is_err());
        let bad_slot =
            "e1cd05f27a27c61d3be9704d4368036d30e481c9 :0@0 myself,master - 0 0 0 connected 16384\n";
        assert!(parse(bad_slot).is_err());
        let no_cport = "e1cd05f27a27c61d3be9704d4368036d30e481c9 1.2.3.4:7000 myself,master - 0 0 0 connected\n";
        assert_eq!(parse(no_cport).expect("parse").nodes[0].cport, 17000);
        let fresh = "e1cd05f27a27c61d3be9704d4368036d30e481c9 :0@0 myself,master - 0 0 0 connected\nvars currentEpoch 0 lastVoteEpoch 0\n";
        assert!(parse(fresh).is_ok(), "real 7.0 fresh file");
    }

    #[test]
    fn state_round_trip_keeps_id_epochs_slots_role() {
        let conf = parse(SAMPLE).expect("parse");
        let mut cfg = StateConfig::for_port(30002);
        cfg.announce_hostname = Some("node-b.example".into());
        let st = ClusterState::from_config(cfg.clone(), &conf, 1, 5_000).expect("state");
        assert_eq!(
            st.myself.to_string(),
            "292007a1a68ecbbd3b03fc6e17d18dda2f147e46"
        );
        assert_eq!(st.current_epoch, 7);
        assert_eq!(st.me().config_epoch, 6);
        assert_eq!(st.me().num_slots, (6999 - 5461 + 1) + (16383 - 7001 + 1));
        let text = serialize(&st);
        let again = parse(&text).expect("reparse");
        let st2 = ClusterState::from_config(cfg, &again, 2, 5_000).expect("state");
        assert_eq!(serialize(&st2), text);
        assert!(text.ends_with("vars currentEpoch 7 lastVoteEpoch 3\n"));
        assert!(text.contains(" [7001->-e1cd05f27a27c61d3be9704d4368036d30e481c9] [5-<-e1cd05f27a27c61d3be9704d4368036d30e481c9]"));
        assert!(text.contains("slave,fail e1cd05f27a27c61d3be9704d4368036d30e481c9"));
    }

    #[test]
    fn atomic_save_and_lock() {
        let dir =
            std::env::temp_dir().join(format!("cinnabar-conf-{}-{}", std::process::id(), line!()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("nodes.conf");
        assert!(load(&path).expect("load").is_none());
        save_atomic(&path, SAMPLE, true).expect("save");
        save_atomic(&path, SAMPLE, false).expect("save again");
        assert_eq!(load(&path).expect("load").expect("some").nodes.len(), 3);
        let lock = ConfigLock::acquire(&path).expect("lock");
        assert!(matches!(
            ConfigLock::acquire(&path),
            Err(ConfError::Locked(_))
        ));
        drop(lock);
        assert!(ConfigLock::acquire(&path).is_ok());
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("readdir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
