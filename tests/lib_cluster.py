# tests/lib_cluster.py — helpers for the cluster acceptance tests
# (tests/test_cluster_*.py). Owned by the cluster tests; builds on the
# harness' free-port picker (lib.ports), RESP client (lib.resp) and polling
# primitive (lib.wait) without changing them.
#
# * ClusterNode      one redis-server / cinnabar-server started like the user
#                    does it: `<binary> redis.conf` in its own directory, the
#                    config holding exactly the walkthrough's five lines (plus
#                    optional extras). Own process group; stop() / sigstop() /
#                    sigcont() / kill9() / restart() from the same dir.
# * NodePool         owns every node a test (or module) started and always
#                    SIGCONTs + kills them at teardown (also from atexit).
# * free_port_block  n consecutive free ports whose bus ports are free too.
# * parse_nodes / check_nodes_line   CLUSTER NODES parsing and field-by-field
#                    format checks (cluster-spec §3 / §6).
# * redis_cli        the real redis-cli as a subprocess.
# * wait_until       deadline polling (lib.wait.poll_until) that reports the
#                    last observed state when it times out. Never a fixed sleep.

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from lib import ports as _ports
from lib.resp import RespConnection
from lib.server import REDIS_SERVER, REPO_ROOT, Server, cinnabar_binary
from lib.wait import poll_until

REDIS_CLI = os.environ.get("REDIS_CLI") or shutil.which("redis-cli") or "/usr/bin/redis-cli"
BUS_OFFSET = 10000
NSLOTS = 16384


def cinnabar_cli_binary() -> str:
    """The `cinnabar` operator tool: env CINNABAR_CLI, else next to the server binary, else target/release."""
    env = os.environ.get("CINNABAR_CLI")
    if env:
        return env
    sibling = Path(cinnabar_binary()).with_name("cinnabar")
    if sibling.exists():
        return str(sibling)
    return str(REPO_ROOT / "target" / "release" / "cinnabar")


def binary_for(kind: str) -> str:
    return {"redis": REDIS_SERVER, "cinnabar": cinnabar_binary()}[kind]


# ---------------------------------------------------------------------------
# ports


def ports_free(ports) -> bool:
    """True when every port and its bus port (port+10000) can be bound right now."""
    return all(_ports._bindable(p) and _ports._bindable(p + BUS_OFFSET) for p in ports)


def free_port_block(n: int) -> list[int]:
    """n consecutive ports (and their +10000 bus ports) from the harness' port window."""
    rng = _ports._rng
    for _ in range(2000):
        base = rng.randint(_ports.PORT_MIN, _ports.PORT_MAX - n + 1)
        block = list(range(base, base + n))
        if any(p in _ports._handed_out or p in _ports.FORBIDDEN for p in block):
            continue
        if not ports_free(block):
            continue
        _ports._handed_out.update(block)
        return block
    raise RuntimeError(f"no block of {n} free ports found")


# ---------------------------------------------------------------------------
# polling


class RespError(Exception):
    """An error reply (-ERR, -MOVED, -LOADING, ...) to ClusterNode.call()."""


def wait_until(cond, timeout: float, what: str, interval: float = 0.1, state=None):
    """Poll cond() until truthy; return its value. On timeout raise AssertionError
    naming `what` and the last value of state() (or of cond's last exception)."""
    box = {"v": None, "err": None}

    def probe():
        try:
            box["v"] = cond()
            box["err"] = None
        except (OSError, EOFError, TimeoutError, ValueError, KeyError, IndexError, RespError) as e:
            box["v"], box["err"] = None, e
        return box["v"]

    if poll_until(probe, timeout, interval):
        return box["v"]
    last = None
    if state is not None:
        try:
            last = state()
        except Exception as e:  # noqa: BLE001 - diagnostics only
            last = f"<state() raised {e!r}>"
    elif box["err"] is not None:
        last = repr(box["err"])
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last state:\n{last}")


# ---------------------------------------------------------------------------
# nodes


def walkthrough_conf(port: int, node_timeout: int = 5000, extra=()) -> str:
    """The user's five redis.conf lines (verbatim), plus `extra` lines."""
    lines = [
        f"port {port}",
        "cluster-enabled yes",
        f"cluster-config-file nodes-{port}.conf",
        f"cluster-node-timeout {node_timeout}",
        "appendonly yes",
        *extra,
    ]
    return "\n".join(lines) + "\n"


_LIVE: set["ClusterNode"] = set()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - safety net
    for n in list(_LIVE):
        n.stop(grace=0)


class NodeStartError(RuntimeError):
    pass


class ClusterNode:
    def __init__(self, kind: str, port: int, base_dir: Path, node_timeout: int = 5000, extra=()):
        self.kind = kind
        self.binary = binary_for(kind)
        self.port = port
        self.bus_port = port + BUS_OFFSET
        self.host = "127.0.0.1"
        self.name = f"{kind}:{port}"
        self.dir = Path(base_dir) / str(port)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path = self.dir / "redis.conf"
        self.conf_path.write_text(walkthrough_conf(port, node_timeout, extra))
        self.log_path = self.dir / "stdout.log"
        self.nodes_conf = self.dir / f"nodes-{port}.conf"
        self.proc: subprocess.Popen | None = None
        self.stopped_by_sigstop = False

    # -- lifecycle -------------------------------------------------------
    def start(self, timeout: float = 20.0) -> "ClusterNode":
        if not os.path.exists(self.binary):
            raise NodeStartError(f"binary {self.binary!r} missing (cargo build --release, or set CINNABAR_SERVER)")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "redis.conf"],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _LIVE.add(self)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise NodeStartError(f"{self.name} exited with {self.proc.returncode}; log:\n{self.log_tail()}")
            try:
                with RespConnection(self.host, self.port, timeout=2.0, connect_timeout=1.0) as c:
                    return c.call_raw("PING") == b"+PONG\r\n"
            except OSError:
                return False

        if not poll_until(ready, timeout, 0.02):
            raise NodeStartError(f"{self.name} did not answer PING within {timeout}s; log:\n{self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sigstop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)
        self.stopped_by_sigstop = True

    def sigcont(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped_by_sigstop = False

    def kill9(self) -> None:
        self.stop(sig=signal.SIGKILL, grace=5)

    def stop(self, sig=signal.SIGTERM, grace: float = 5.0) -> int | None:
        if self.proc is None:
            return None
        p = self.proc
        try:
            try:
                os.killpg(p.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            except ProcessLookupError:
                pass
            if p.poll() is None:
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait(timeout=10)
        finally:
            self.proc = None
            _LIVE.discard(self)
        return p.returncode

    def restart(self, timeout: float = 20.0) -> "ClusterNode":
        assert self.proc is None, "stop the node first"
        return self.start(timeout)

    # -- talking -------------------------------------------------------------
    def call(self, *args, timeout: float = 10.0):
        """One command on a fresh connection; plain python value (errors as RespError)."""
        with RespConnection(self.host, self.port, timeout=timeout, connect_timeout=2.0) as c:
            r = c.call(*args)
        if r.is_error:
            raise RespError(r.value.decode(errors="replace") if isinstance(r.value, bytes) else str(r.value))
        return r.to_py()

    def call_reply(self, *args, timeout: float = 10.0):
        with RespConnection(self.host, self.port, timeout=timeout, connect_timeout=2.0) as c:
            return c.call(*args)

    def text(self, *args) -> str:
        v = self.call(*args)
        return v.decode() if isinstance(v, bytes) else str(v)

    def cluster_nodes(self) -> str:
        return self.text("CLUSTER", "NODES")

    def nodes(self) -> list[dict]:
        return parse_nodes(self.cluster_nodes())

    def info(self) -> dict[str, str]:
        return parse_info(self.text("CLUSTER", "INFO"))

    def myid(self) -> str:
        return self.text("CLUSTER", "MYID")

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "<no log>"
        return "\n".join(lines[-n:])

    # same log excerpt the harness attaches for its own servers (conftest report hook)
    log_highlights = Server.log_highlights

    def __repr__(self) -> str:
        return f"<ClusterNode {self.name} pid={self.pid}>"


class NodePool:
    """Starts nodes under one temp dir; close() SIGCONTs and kills all of them."""

    def __init__(self, prefix: str = "cinnabar-cluster-"):
        self.base = Path(tempfile.mkdtemp(prefix=prefix))
        self.nodes: list[ClusterNode] = []

    def add(self, kind: str, port: int, node_timeout: int = 5000, extra=(), start: bool = True) -> ClusterNode:
        n = ClusterNode(kind, port, self.base, node_timeout, extra)
        self.nodes.append(n)
        if start:
            n.start()
        return n

    def add_block(self, kinds, node_timeout: int = 5000, extra_for=lambda kind: (), attempts: int = 3) -> list[ClusterNode]:
        """Start len(kinds) nodes on a fresh block of consecutive free ports.
        If another process grabs one of the ports first (bind fails), the
        block's nodes are stopped and a new block is tried."""
        last = None
        for _ in range(attempts):
            started: list[ClusterNode] = []
            try:
                for kind, port in zip(kinds, free_port_block(len(kinds))):
                    started.append(self.add(kind, port, node_timeout, extra_for(kind)))
                return started
            except NodeStartError as e:
                last = e
                msg = str(e).lower()
                failed = self.nodes[-1]
                for n in started + [failed]:
                    n.stop(grace=1)
                    if n in self.nodes:
                        self.nodes.remove(n)
                if "in use" not in msg and "bind" not in msg:
                    raise
        raise last  # type: ignore[misc]

    def close(self) -> None:
        errors = []
        for n in self.nodes:
            try:
                n.sigcont()
                n.stop(grace=3)
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                errors.append(e)
        if os.environ.get("KEEP_TEST_DIRS") != "1":
            shutil.rmtree(self.base, ignore_errors=True)
        if errors:
            raise errors[0]


def attach_logs(request, nodes) -> None:
    """Let conftest's report hook attach these nodes' logs to a failing test."""
    lst = getattr(request.node, "_harness_servers", None)
    if lst is None:
        lst = []
        request.node._harness_servers = lst
    lst.extend(nodes)


# ---------------------------------------------------------------------------
# CLUSTER NODES / INFO parsing and checks

NODE_ID_RE = re.compile(r"^[0-9a-f]{40}$")
ADDR_RE = re.compile(r"^(?P<ip>[0-9.]*|[0-9a-fA-F:]*):(?P<port>\d+)@(?P<cport>\d+)(?:,(?P<hostname>[A-Za-z0-9.-]*))?$")
SLOT_RE = re.compile(r"^(\d+)(?:-(\d+))?$")
OPEN_SLOT_RE = re.compile(r"^\[(\d+)-[<>]-([0-9a-f]{40})\]$")
FLAG_ORDER = ["myself", "master", "slave", "fail?", "fail", "handshake", "noaddr", "nofailover"]


def parse_info(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            k, _, v = line.partition(":")
            out[k] = v
    return out


def parse_nodes(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        f = line.split(" ")
        if len(f) < 8:
            raise ValueError(f"CLUSTER NODES line with {len(f)} fields: {line!r}")
        addr, _, cport = f[1].partition("@")
        ip, _, port = addr.rpartition(":")
        flags = f[2].split(",")
        slots: set[int] = set()
        for spec in f[8:]:
            m = SLOT_RE.match(spec)
            if m:
                a = int(m.group(1))
                b = int(m.group(2)) if m.group(2) else a
                slots.update(range(a, b + 1))
        out.append(
            {
                "line": line,
                "id": f[0],
                "addr": f[1],
                "ip": ip,
                "port": int(port) if port.isdigit() else None,
                "cport": int(cport.split(",")[0]) if cport.split(",")[0].isdigit() else None,
                "flags": flags,
                "master": f[3],
                "ping_sent": f[4],
                "pong_recv": f[5],
                "config_epoch": f[6],
                "link": f[7],
                "slot_specs": f[8:],
                "slots": slots,
                "role": "slave" if "slave" in flags else ("master" if "master" in flags else "?"),
            }
        )
    return out


def check_nodes_line(line: str, known_ids=None) -> list[str]:
    """Field-by-field check of one CLUSTER NODES line (spec §3/§6). Returns problems."""
    probs = []
    f = line.split(" ")
    if len(f) < 8:
        return [f"fewer than 8 fields: {line!r}"]
    nid, addr, flags, master, ping, pong, epoch, link = f[:8]
    if not NODE_ID_RE.match(nid):
        probs.append(f"id {nid!r} is not 40 lowercase hex chars")
    m = ADDR_RE.match(addr)
    if not m:
        probs.append(f"address {addr!r} is not ip:port@cport")
    else:
        if int(m.group("port")) + BUS_OFFSET != int(m.group("cport")):
            probs.append(f"address {addr!r}: cport != port+10000")
    fl = flags.split(",")
    if fl != ["noflags"]:
        unknown = [x for x in fl if x not in FLAG_ORDER]
        if unknown:
            probs.append(f"unknown flags {unknown} in {flags!r}")
        else:
            idx = [FLAG_ORDER.index(x) for x in fl]
            if idx != sorted(idx) or len(set(idx)) != len(idx):
                probs.append(f"flags {flags!r} not in the fixed order {FLAG_ORDER}")
        if ("master" in fl) == ("slave" in fl) and "handshake" not in fl:
            probs.append(f"flags {flags!r}: exactly one of master/slave expected")
    if "slave" in fl:
        if not NODE_ID_RE.match(master):
            probs.append(f"replica's master field {master!r} is not a node id")
        elif known_ids is not None and master not in known_ids:
            probs.append(f"replica's master {master!r} is not a known node")
    elif master != "-":
        probs.append(f"master's master field is {master!r}, expected '-'")
    for name, v in (("ping-sent", ping), ("pong-recv", pong), ("config-epoch", epoch)):
        if not v.isdigit():
            probs.append(f"{name} {v!r} is not an unsigned integer")
    if link not in ("connected", "disconnected"):
        probs.append(f"link-state {link!r} not connected/disconnected")
    prev_end = -1
    for spec in f[8:]:
        s = SLOT_RE.match(spec)
        if s:
            a = int(s.group(1))
            b = int(s.group(2)) if s.group(2) else a
            if not (0 <= a <= b < NSLOTS):
                probs.append(f"slot range {spec!r} out of bounds")
            if s.group(2) and a == b:
                probs.append(f"single slot written as range {spec!r}")
            if a <= prev_end + 1 and prev_end >= 0:
                probs.append(f"slot range {spec!r} overlaps/adjoins the previous one (ranges must be maximal and sorted)")
            prev_end = b
        elif not OPEN_SLOT_RE.match(spec):
            probs.append(f"slot spec {spec!r} malformed")
    if f[8:] and "slave" in fl:
        probs.append("replica line lists slots")
    return probs


def slot_owner_map(nodes: list[dict]) -> dict[int, str]:
    owners: dict[int, str] = {}
    for n in nodes:
        for s in n["slots"]:
            owners[s] = n["id"]
    return owners


def topology_signature(nodes: list[dict]):
    """(id, role, master-id, slot-specs) per node, sorted — comparable across observers."""
    return sorted(
        (n["id"], n["role"], n["master"] if n["role"] == "slave" else "-", tuple(n["slot_specs"]))
        for n in nodes
    )


# ---------------------------------------------------------------------------
# redis-cli


def redis_cli(*args, stdin: str | bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    if isinstance(stdin, str):
        stdin = stdin.encode()
    return subprocess.run(
        [REDIS_CLI, *[str(a) for a in args]],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=timeout,
    )


ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def out(cp: subprocess.CompletedProcess) -> str:
    """stdout as text, without the colour escapes `redis-cli --cluster` prints."""
    return ANSI_RE.sub("", cp.stdout.decode(errors="replace"))


# ---------------------------------------------------------------------------
# forming a cluster with plain commands (MEET, ADDSLOTSRANGE, REPLICATE)


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Walkthrough split: 0-5461, 5462-10922, 10923-16383 for three masters."""
    return [((i * NSLOTS + masters - 1) // masters, ((i + 1) * NSLOTS + masters - 1) // masters - 1) for i in range(masters)]


def wait_all_know(nodes, count: int, timeout: float = 30.0) -> None:
    def ok():
        for n in nodes:
            ns = n.nodes()
            if len(ns) != count or any("handshake" in x["flags"] or "noaddr" in x["flags"] for x in ns):
                return False
        return True

    wait_until(ok, timeout, f"all nodes to know {count} nodes", state=lambda: dump_nodes(nodes))


def wait_cluster_ok(nodes, timeout: float = 30.0, size: int | None = None) -> None:
    def ok():
        for n in nodes:
            i = n.info()
            if i.get("cluster_state") != "ok" or i.get("cluster_slots_assigned") != str(NSLOTS):
                return False
            if size is not None and i.get("cluster_size") != str(size):
                return False
        return True

    wait_until(ok, timeout, "cluster_state:ok on every node", state=lambda: dump_infos(nodes))


def wait_same_topology(nodes, timeout: float = 30.0):
    """Every node reports the same ids/roles/masters/slots; returns the signature."""
    def same():
        sigs = [topology_signature(n.nodes()) for n in nodes]
        return sigs[0] if all(s == sigs[0] for s in sigs) else None

    return wait_until(same, timeout, "every node to report the same topology", state=lambda: dump_nodes(nodes))


def form_cluster(masters, replicas_of: dict | None = None, timeout: float = 40.0) -> dict[int, str]:
    """MEET all from the first node, ADDSLOTSRANGE walkthrough split, REPLICATE; wait ok.
    replicas_of: {replica_node: master_node}. Returns {port: node id}."""
    replicas_of = replicas_of or {}
    allnodes = list(masters) + list(replicas_of)
    first = allnodes[0]
    for n in allnodes[1:]:
        assert first.call("CLUSTER", "MEET", "127.0.0.1", n.port) == b"OK"
    wait_all_know(allnodes, len(allnodes), timeout)
    for n, (a, b) in zip(masters, slot_ranges(len(masters))):
        assert n.call("CLUSTER", "ADDSLOTSRANGE", a, b) == b"OK"
    ids = {n.port: n.myid() for n in allnodes}
    for r, m in replicas_of.items():
        wait_until(
            lambda: any(x["id"] == ids[m.port] and x["slots"] for x in r.nodes()),
            timeout,
            f"{r.name} to see {m.name}'s slots",
        )
        assert r.call("CLUSTER", "REPLICATE", ids[m.port]) == b"OK"
    wait_cluster_ok(allnodes, timeout, size=len(masters))
    want = {ids[r.port]: ids[m.port] for r, m in replicas_of.items()}

    def replicas_seen():
        for n in allnodes:
            got = {x["id"]: x["master"] for x in n.nodes() if x["role"] == "slave"}
            if got != want:
                return False
        return True

    wait_until(replicas_seen, timeout, "every node to see the replicas", state=lambda: dump_nodes(allnodes))
    return ids


def dump_nodes(nodes) -> str:
    parts = []
    for n in nodes:
        try:
            t = n.cluster_nodes()
        except Exception as e:  # noqa: BLE001
            t = repr(e)
        parts.append(f"--- {n.name} CLUSTER NODES\n{t}")
    return "\n".join(parts)


def dump_infos(nodes) -> str:
    parts = []
    for n in nodes:
        try:
            i = n.info()
            t = " ".join(f"{k}={i.get(k)}" for k in ("cluster_state", "cluster_slots_assigned", "cluster_known_nodes", "cluster_size"))
        except Exception as e:  # noqa: BLE001
            t = repr(e)
        parts.append(f"{n.name}: {t}")
    return "\n".join(parts)


def keys_for_slots(slots, prefix: str = "k") -> dict[int, str]:
    """{slot: key} with a key "{tag}:<slot>" hashing to each requested slot."""
    from redis.crc import key_slot

    want = set(slots)
    found: dict[int, str] = {}
    i = 0
    while want - found.keys():
        tag = f"{prefix}{i}"
        s = key_slot(tag.encode())
        if s in want and s not in found:
            found[s] = f"{{{tag}}}:{s}"
        i += 1
    return found


def pid_running(pid: int) -> bool:
    """True while any thread of the process is alive (not a zombie).

    A SIGKILLed multi-threaded process shows its leader thread as a zombie before the other
    threads have exited, and its files (and the nodes.conf lock) are released only when the
    last one has; so every task is checked, not just the leader. Nodes started by the tool
    are reparented to an init that may never reap them, so a zombie counts as gone."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


def pid_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def tcp_port_open(port: int) -> bool:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
