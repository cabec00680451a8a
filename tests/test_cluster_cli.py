# tests/test_cluster_cli.py — the operator tool:
#   cinnabar cluster up     --dir D --base-port P --masters 3 --replicas 1
#                           --node-timeout-ms 5000 --server-bin <cinnabar-server>
#   cinnabar cluster status --dir D
#   cinnabar cluster down   --dir D
# `up` must form a 3+3 cluster (ok everywhere, three replicas) from per-node
# redis.conf files holding the walkthrough's lines, be idempotent, `status`
# must list the six nodes, `down` must stop every process, and `up` after
# `down` must bring the same cluster back from the nodes.conf files.
#
# The nodes are started by the tool (own process groups, pid files in the
# node dirs); the fixture finalizer SIGKILLs whatever pid it ever saw that
# still runs the server binary.

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from lib.server import cinnabar_binary
from lib_cluster import (
    pid_cmdline,
    pid_running,
    free_port_block,
    parse_info,
    parse_nodes,
    tcp_port_open,
    topology_signature,
    wait_until,
)
from lib.resp import RespConnection

CONVERGE = 30.0


class CliCluster:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="cinnabar-cli-"))
        self.ports = free_port_block(6)
        self.server_bin = cinnabar_binary()
        self.tool = _tool()
        self.seen_pids: set[int] = set()
        self.done: set[str] = set()

    def run(self, *args, timeout: float = 120) -> subprocess.CompletedProcess:
        cp = subprocess.run([self.tool, "cluster", *args, "--dir", str(self.dir)], capture_output=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
        self.collect_pids()
        return cp

    def up(self, timeout_s: int = 60) -> subprocess.CompletedProcess:
        return self.run("up", "--base-port", str(self.ports[0]), "--masters", "3", "--replicas", "1",
                        "--node-timeout-ms", "5000", "--server-bin", self.server_bin, "--timeout-s", str(timeout_s),
                        timeout=timeout_s + 60)

    def pids(self) -> dict[int, int]:
        out = {}
        for p in self.ports:
            f = self.dir / str(p) / "cinnabar.pid"
            try:
                out[p] = int(f.read_text().strip())
            except (OSError, ValueError):
                pass
        return out

    def collect_pids(self) -> None:
        self.seen_pids.update(self.pids().values())

    def call(self, port: int, *args):
        with RespConnection("127.0.0.1", port, timeout=10, connect_timeout=2) as c:
            return c.call(*args).to_py()

    def nodes(self, port: int):
        return parse_nodes(self.call(port, "CLUSTER", "NODES").decode())

    def info(self, port: int):
        return parse_info(self.call(port, "CLUSTER", "INFO").decode())

    def kill_all(self) -> None:
        self.collect_pids()
        exe = os.path.basename(self.server_bin)
        for pid in self.seen_pids:
            if pid_running(pid) and exe in pid_cmdline(pid):
                for sig_target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                    try:
                        sig_target()
                    except (ProcessLookupError, PermissionError):
                        pass


def _tool() -> str:
    env = os.environ.get("CINNABAR_CLI")
    if env:
        return env
    from lib_cluster import cinnabar_cli_binary

    return cinnabar_cli_binary()


class _Logs:
    """Duck-typed for conftest's report hook: attach a node's log to failures."""

    def __init__(self, port: int, d: Path):
        self.name, self.port, self.d = "cinnabar-cli-node", port, d

    def _text(self):
        parts = []
        for n in ("node.log", "stdout.log"):
            try:
                parts.append((self.d / n).read_text(errors="replace"))
            except OSError:
                pass
        return "\n".join(parts).splitlines()

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self._text()[-n:])

    def log_highlights(self, n: int = 15) -> str:
        return self.log_tail(n)


@pytest.fixture(scope="module")
def cc():
    c = CliCluster()
    if not os.path.exists(c.tool):
        pytest.skip(f"cinnabar tool {c.tool} not built")
    try:
        yield c
    finally:
        try:
            c.run("down", timeout=60)
        except Exception:  # noqa: BLE001 - the kill below is what matters
            pass
        c.kill_all()
        if os.environ.get("KEEP_TEST_DIRS") != "1":
            shutil.rmtree(c.dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _logs(request, cc):
    request.node._harness_servers = [_Logs(p, cc.dir / str(p)) for p in cc.ports]


def _wait_formed(cc):
    def formed():
        sigs = []
        for p in cc.ports:
            i = cc.info(p)
            if i.get("cluster_state") != "ok" or i.get("cluster_size") != "3" or i.get("cluster_known_nodes") != "6":
                return False
            ns = cc.nodes(p)
            if sum(x["role"] == "slave" for x in ns) != 3 or sum(x["role"] == "master" and bool(x["slots"]) for x in ns) != 3:
                return False
            sigs.append(topology_signature(ns))
        return all(s == sigs[0] for s in sigs)

    wait_until(formed, CONVERGE, "3 masters + 3 replicas, cluster_state:ok and one topology on all six nodes",
               state=lambda: "\n".join(f"{p}: {cc.info(p)}\n{cc.call(p, 'CLUSTER', 'NODES').decode()}" for p in cc.ports))


def test_01_up_forms_3_plus_3(cc):
    cp = cc.up()
    text = cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
    assert cp.returncode == 0, f"cinnabar cluster up exited {cp.returncode}:\n{text}"
    assert len(cc.pids()) == 6, f"pid files: {cc.pids()}\n{text}"
    for p in cc.ports:
        conf = (cc.dir / str(p) / "redis.conf").read_text().splitlines()
        assert conf[:5] == [f"port {p}", "cluster-enabled yes", f"cluster-config-file nodes-{p}.conf",
                            "cluster-node-timeout 5000", "appendonly yes"], f"{p}/redis.conf: {conf}"
        assert (cc.dir / str(p) / f"nodes-{p}.conf").exists()
    _wait_formed(cc)
    # replicas are attached to masters the way the walkthrough does it: P+3 -> P
    ns = {x["port"]: x for x in cc.nodes(cc.ports[0])}
    for r, m in zip(cc.ports[3:], cc.ports[:3]):
        assert ns[r]["role"] == "slave" and ns[r]["master"] == ns[m]["id"], cc.call(cc.ports[0], "CLUSTER", "NODES").decode()
    assert sorted(ns[p]["slot_specs"][0] for p in cc.ports[:3]) == ["0-5461", "10923-16383", "5462-10922"]
    cc.done.add("up")


def test_02_status_lists_six_nodes(cc):
    if "up" not in cc.done:
        pytest.skip("cluster up failed")
    cp = cc.run("status")
    text = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0, text + cp.stderr.decode(errors="replace")
    pids = cc.pids()
    ids = {x["port"]: x["id"] for x in cc.nodes(cc.ports[0])}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 6, f"cinnabar cluster status printed {len(lines)} lines:\n{text}"
    for p, ln in zip(cc.ports, lines):
        assert ln.startswith(f"127.0.0.1:{p} "), f"status line for {p}: {ln!r}"
        assert f"pid={pids[p]}" in ln and "cluster_state:ok" in ln, f"status line for {p}: {ln!r}"
    for p in cc.ports[:3]:
        assert re.search(r"\bmaster\b", lines[cc.ports.index(p)]), lines
    for r, m in zip(cc.ports[3:], cc.ports[:3]):
        assert f"replica of {ids[m]}" in lines[cc.ports.index(r)], lines


def test_03_up_again_is_idempotent(cc):
    if "up" not in cc.done:
        pytest.skip("cluster up failed")
    pids = cc.pids()
    ids = {p: cc.call(p, "CLUSTER", "MYID") for p in cc.ports}
    cp = cc.up()
    assert cp.returncode == 0, cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
    assert cc.pids() == pids, "a second `up` must not start new processes"
    assert {p: cc.call(p, "CLUSTER", "MYID") for p in cc.ports} == ids
    _wait_formed(cc)


def test_04_down_stops_every_process(cc):
    if "up" not in cc.done:
        pytest.skip("cluster up failed")
    pids = cc.pids()
    assert len(pids) == 6 and all(pid_running(p) for p in pids.values())
    cp = cc.run("down", timeout=60)
    assert cp.returncode == 0, cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
    still = {port: pid for port, pid in pids.items() if pid_running(pid)}
    assert not still, f"after `cinnabar cluster down` these nodes still run: {still}"
    wait_until(lambda: not any(tcp_port_open(p) for p in cc.ports), 10, "client ports to be closed")
    cp = cc.run("status")
    lines = [ln for ln in cp.stdout.decode(errors="replace").splitlines() if ln.strip()]
    assert len(lines) == 6 and all("pid=-" in ln and "down" in ln for ln in lines), lines
    cc.done.add("down")


def test_05_up_after_down_restores_same_cluster(cc):
    if "down" not in cc.done:
        pytest.skip("down failed")
    ids = {}
    for p in cc.ports:
        conf = (cc.dir / str(p) / f"nodes-{p}.conf").read_text()
        ids[p] = [ln.split()[0] for ln in conf.splitlines() if "myself" in ln][0]
    cp = cc.up()
    assert cp.returncode == 0, cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
    assert {p: cc.call(p, "CLUSTER", "MYID").decode() for p in cc.ports} == ids, "node ids changed across down/up"
    _wait_formed(cc)
    cp = cc.run("down", timeout=60)
    assert cp.returncode == 0
    still = {port: pid for port, pid in cc.pids().items() if pid_running(pid)}
    assert not still, f"after the second `cinnabar cluster down` these nodes still run: {still}"
