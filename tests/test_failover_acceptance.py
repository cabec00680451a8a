# tests/test_failover_acceptance.py — issue 5 "done when" item 1, end to end
# with real processes.
#
# A 3 masters + 3 replicas cluster started by the operator tool exactly like a
# user does it:
#     cinnabar cluster up --base-port P --dir D --server-bin <cinnabar-server>
# (per-node redis.conf with the walkthrough's lines: cluster-enabled yes,
# cluster-node-timeout 5000, appendonly yes; pid file + log in the node dir).
#
#   01  100,000 keys written through redis-py RedisCluster (one pipeline of
#       SETs per master at a time, each pipeline followed by `WAIT 1 10000` on
#       the same connection; a batch counts as acknowledged only if WAIT >= 1).
#   02  a writer thread (its own RedisCluster, no retries) keeps doing
#       SET w:<i> and records every attempt's start/end time and outcome; the
#       master serving slot(k:0) is SIGKILLed; its replica must be master (as
#       seen in CLUSTER NODES of another master) within 3 x node timeout = 15 s,
#       then cluster_state:ok on every live node.
#   03  the writer saw errors only in the outage window: every failed attempt
#       overlaps [kill, promotion + 2 s]; before the kill and after that, every
#       write succeeded (and there were errors: the writer did see the outage).
#   04  every acknowledged key (all 100k) is readable with its value: a random
#       sample of 200 via the real `redis-cli -c -p <port> GET`, all of them via
#       RedisCluster MGET-by-slot (mget_nonatomic).
#   05  the killed node, started again the way `cluster up` starts it (same
#       dir, `<server-bin> redis.conf`, own process group), keeps its node id,
#       rejoins as `slave <new master id>` on every node and catches up:
#       master_repl_offset equal to the new master's, same DBSIZE, and a
#       sample of its shard's keys readable on it (READONLY) with their values.
#
# Teardown always runs `cinnabar cluster down` and then SIGKILLs every pid this
# module ever saw that still runs the server binary (whatever failed).
# No fixed sleeps as synchronisation: every wait is a condition polled with a
# deadline (lib.wait.poll_until / lib_cluster.wait_until). The only
# Event.wait() calls pace the writer thread (one attempt per ~5 ms).

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from lib.resp import RespConnection
from lib.server import cinnabar_binary
from lib.wait import poll_until
from lib_cluster import (
    pid_cmdline,
    pid_running,
    cinnabar_cli_binary,
    free_port_block,
    parse_info,
    parse_nodes,
    redis_cli,
    wait_until,
)

NODE_TIMEOUT_MS = 5000
PROMOTION_LIMIT = 3 * NODE_TIMEOUT_MS / 1000.0  # 15 s
GRACE = 2.0  # seconds after promotion in which writer errors are still tolerated
NKEYS = 100_000
BATCH = 1000  # SETs per pipeline before one WAIT 1
WAIT_MS = 10000
CONVERGE = 30.0
WRITER_PACE = 0.005


# ---------------------------------------------------------------------------
# process helpers (the nodes are started by the tool, not by us)


class _Logs:
    """Duck-typed for conftest's report hook: a node's logs on failure."""

    def __init__(self, port: int, d: Path):
        self.name, self.port, self.d = "cinnabar-node", port, d

    def _lines(self):
        out = []
        for n in ("node.log", "stdout.log"):
            try:
                out += (self.d / n).read_text(errors="replace").splitlines()
            except OSError:
                pass
        return out

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self._lines()[-n:])

    def log_highlights(self, n: int = 15) -> str:
        lines = self._lines()
        keep = [ln for ln in lines if "panicked" in ln or "ERROR" in ln or "FATAL" in ln or "# " in ln[:40]]
        return "\n".join((keep or lines)[-n * 3 :])


class Cluster:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="cinnabar-failover-"))
        self.ports = free_port_block(6)
        self.server_bin = os.path.abspath(cinnabar_binary())
        self.tool = cinnabar_cli_binary()
        self.seen_pids: set[int] = set()
        self.restarted: subprocess.Popen | None = None
        # shared state between the ordered tests
        self.values: dict[str, str] = {}
        self.acked: list[str] = []
        self.failed_batches: list[tuple[int, int, object]] = []
        self.victim_port: int | None = None
        self.victim_id: str | None = None
        self.heir_port: int | None = None
        self.heir_id: str | None = None
        self.victim_slots: set[int] = set()
        self.t_kill = self.t_fail = self.t_promo = self.t_ok = None
        self.writer: "Writer | None" = None
        self.done: set[str] = set()

    # -- tool ------------------------------------------------------------
    def run(self, *args, timeout: float = 120) -> subprocess.CompletedProcess:
        cp = subprocess.run([self.tool, "cluster", *args, "--dir", str(self.dir)], capture_output=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
        self.collect_pids()
        return cp

    def up(self) -> subprocess.CompletedProcess:
        return self.run("up", "--base-port", str(self.ports[0]), "--masters", "3", "--replicas", "1",
                        "--node-timeout-ms", str(NODE_TIMEOUT_MS), "--server-bin", self.server_bin,
                        "--timeout-s", "90", timeout=150)

    def pid_of(self, port: int) -> int | None:
        try:
            return int((self.dir / str(port) / "cinnabar.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def collect_pids(self) -> None:
        for p in self.ports:
            pid = self.pid_of(p)
            if pid:
                self.seen_pids.add(pid)

    def kill_all(self) -> None:
        self.collect_pids()
        exe = os.path.basename(self.server_bin)
        for pid in self.seen_pids:
            if pid_running(pid) and exe in pid_cmdline(pid):
                for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                    try:
                        target()
                    except (ProcessLookupError, PermissionError):
                        pass
        if self.restarted is not None:
            try:
                self.restarted.kill()
            except ProcessLookupError:
                pass
            self.restarted.wait(timeout=10)

    # -- talking ---------------------------------------------------------
    def call(self, port: int, *args, timeout: float = 10.0):
        with RespConnection("127.0.0.1", port, timeout=timeout, connect_timeout=2.0) as c:
            r = c.call(*args)
        if r.is_error:
            raise ValueError(f"{port} {args[0]}: {r.raw!r}")
        return r.to_py()

    def text(self, port: int, *args) -> str:
        v = self.call(port, *args)
        return v.decode() if isinstance(v, bytes) else str(v)

    def nodes(self, port: int) -> list[dict]:
        return parse_nodes(self.text(port, "CLUSTER", "NODES"))

    def info(self, port: int, section: str | None = None) -> dict[str, str]:
        if section is None:
            return parse_info(self.text(port, "CLUSTER", "INFO"))
        return parse_info(self.text(port, "INFO", section))

    def live_ports(self) -> list[int]:
        return [p for p in self.ports if p != self.victim_port]

    def dump(self, ports=None) -> str:
        parts = []
        for p in ports or self.ports:
            try:
                t = self.text(p, "CLUSTER", "NODES")
                i = self.info(p).get("cluster_state")
            except Exception as e:  # noqa: BLE001 - diagnostics only
                t, i = repr(e), "?"
            parts.append(f"--- 127.0.0.1:{p} cluster_state:{i}\n{t}")
        return "\n".join(parts)

    def startup_nodes(self):
        from redis.cluster import ClusterNode

        return [ClusterNode("127.0.0.1", p) for p in self.live_ports()]


# ---------------------------------------------------------------------------
# the writer thread


class Writer(threading.Thread):
    """SET w:<i> i through its own RedisCluster with no command retries;
    records (start, end, outcome) per attempt: 'ok' or the exception type."""

    def __init__(self, startup_nodes):
        super().__init__(name="failover-writer", daemon=True)
        from redis.cluster import RedisCluster

        self.rc = RedisCluster(startup_nodes=startup_nodes, cluster_error_retry_attempts=0,
                               socket_timeout=5, socket_connect_timeout=2)
        self.stop_ev = threading.Event()
        self.log: list[tuple[float, float, str]] = []
        self.lock = threading.Lock()
        self.crash: BaseException | None = None

    def run(self):
        i = 0
        try:
            while not self.stop_ev.is_set():
                i += 1
                t0 = time.monotonic()
                try:
                    r = self.rc.set(f"w:{i}", str(i))
                    outcome = "ok" if r is True else f"unexpected-reply:{r!r}"
                except Exception as e:  # noqa: BLE001 - every error is an outcome to record
                    outcome = type(e).__name__
                t1 = time.monotonic()
                with self.lock:
                    self.log.append((t0, t1, outcome))
                self.stop_ev.wait(WRITER_PACE)  # pacing only, not synchronisation
        except BaseException as e:  # pragma: no cover - surfaced by the tests
            self.crash = e
        finally:
            try:
                self.rc.close()
            except Exception:  # noqa: BLE001
                pass

    def snapshot(self) -> list[tuple[float, float, str]]:
        with self.lock:
            return list(self.log)

    def ok_since(self, t: float) -> int:
        return sum(1 for t0, _t1, o in self.snapshot() if t0 >= t and o == "ok")

    def finish(self) -> None:
        self.stop_ev.set()
        self.join(timeout=30)


# ---------------------------------------------------------------------------
# fixture


@pytest.fixture(scope="module")
def fo():
    c = Cluster()
    if not os.path.exists(c.tool):
        pytest.skip(f"cinnabar tool {c.tool} not built")
    try:
        cp = c.up()
        text = cp.stdout.decode(errors="replace") + cp.stderr.decode(errors="replace")
        assert cp.returncode == 0, f"cinnabar cluster up exited {cp.returncode}:\n{text}"
        for p in c.ports:
            conf = (c.dir / str(p) / "redis.conf").read_text().splitlines()
            for line in ("cluster-enabled yes", f"cluster-node-timeout {NODE_TIMEOUT_MS}", "appendonly yes"):
                assert line in conf, f"{p}/redis.conf lacks {line!r}: {conf}"
        _wait_healthy(c, c.ports)
        yield c
    finally:
        if c.writer is not None:
            c.writer.finish()
        try:
            c.run("down", timeout=60)
        except Exception:  # noqa: BLE001 - the kill below is what matters
            pass
        c.kill_all()
        if os.environ.get("KEEP_TEST_DIRS") != "1":
            shutil.rmtree(c.dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _logs(request, fo):
    request.node._harness_servers = [_Logs(p, fo.dir / str(p)) for p in fo.ports]


def _need(fo, *steps):
    missing = [s for s in steps if s not in fo.done]
    if missing:
        pytest.skip(f"needs the earlier step(s) {missing}, which failed")


def _wait_healthy(c: Cluster, ports) -> None:
    """cluster_state:ok, 3 masters with slots, every master with a replica whose link is up."""

    def ok():
        for p in ports:
            if c.info(p).get("cluster_state") != "ok":
                return False
        ns = c.nodes(ports[0])
        masters = [x for x in ns if x["role"] == "master" and x["slots"] and "fail" not in x["flags"]]
        reps = [x for x in ns if x["role"] == "slave" and "fail" not in x["flags"]]
        if len(masters) != 3 or {r["master"] for r in reps} != {m["id"] for m in masters}:
            return False
        for r in reps:
            if r["port"] in ports and c.info(r["port"], "replication").get("master_link_status") != "up":
                return False
        return True

    wait_until(ok, 60, "cluster_state:ok, 3 masters each with a synced replica", state=lambda: c.dump(ports))


# ---------------------------------------------------------------------------
# tests


def test_01_write_100k_keys_acknowledged_by_wait(fo):
    from redis.cluster import RedisCluster
    from redis.crc import key_slot

    rc = RedisCluster(startup_nodes=fo.startup_nodes(), socket_timeout=30)
    try:
        tag = os.urandom(4).hex()
        by_node: dict[str, list[str]] = {}
        node_of = {}
        for i in range(NKEYS):
            k = f"k:{i}"
            fo.values[k] = f"v{i}:{tag}"
            node = rc.nodes_manager.get_node_from_slot(key_slot(k.encode()))
            node_of[node.name] = node
            by_node.setdefault(node.name, []).append(k)
        assert len(by_node) == 3, f"keys spread over {sorted(by_node)}, expected the 3 masters"
        t0 = time.monotonic()
        for name, keys in by_node.items():
            r = rc.get_redis_connection(node_of[name])
            for b in range(0, len(keys), BATCH):
                chunk = keys[b : b + BATCH]
                pipe = r.pipeline(transaction=False)
                for k in chunk:
                    pipe.set(k, fo.values[k])
                pipe.execute_command("WAIT", 1, WAIT_MS)
                replies = pipe.execute(raise_on_error=False)
                sets, acks = replies[:-1], replies[-1]
                bad = [x for x in sets if x is not True]
                assert not bad, f"{name}: SET replies {bad[:3]} in a pipeline of {len(chunk)}"
                if isinstance(acks, int) and acks >= 1:
                    fo.acked.extend(chunk)
                else:
                    fo.failed_batches.append((int(name.rsplit(":", 1)[1]), b, acks))
        elapsed = time.monotonic() - t0
    finally:
        rc.close()
    print(f"\n[failover] wrote {NKEYS} keys in {elapsed:.1f}s; acknowledged by WAIT 1: {len(fo.acked)}; "
          f"unacknowledged batches: {fo.failed_batches[:5]}")
    assert len(fo.acked) == NKEYS, (
        f"only {len(fo.acked)}/{NKEYS} keys acknowledged by WAIT 1 {WAIT_MS}; failed batches "
        f"(port, offset, WAIT reply): {fo.failed_batches[:10]}"
    )
    masters = [x for x in fo.nodes(fo.ports[0]) if x["role"] == "master"]
    assert sum(int(fo.call(m["port"], "DBSIZE")) for m in masters) == NKEYS, fo.dump()
    fo.done.add("write")


def test_02_sigkill_master_replica_promoted_within_3x_node_timeout(fo):
    _need(fo, "write")
    from redis.crc import key_slot

    _wait_healthy(fo, fo.ports)
    slot = key_slot(b"k:0")
    ns = fo.nodes(fo.ports[0])
    victim = next(x for x in ns if slot in x["slots"])
    heir = next(x for x in ns if x["role"] == "slave" and x["master"] == victim["id"])
    fo.victim_port, fo.victim_id, fo.victim_slots = victim["port"], victim["id"], set(victim["slots"])
    fo.heir_port, fo.heir_id = heir["port"], heir["id"]
    observer = next(x["port"] for x in ns if x["role"] == "master" and x["id"] != victim["id"])
    victim_pid = fo.pid_of(fo.victim_port)
    assert victim_pid and pid_running(victim_pid), f"no live pid for the victim 127.0.0.1:{fo.victim_port}"
    assert os.path.basename(fo.server_bin) in pid_cmdline(victim_pid)

    # the writer runs and succeeds before the kill
    fo.writer = Writer(fo.startup_nodes())
    fo.writer.start()
    wait_until(lambda: fo.writer.ok_since(0) >= 200, 60, "the writer's first 200 successful writes",
               state=lambda: Counter(o for _a, _b, o in fo.writer.snapshot()))

    fo.t_kill = time.monotonic()
    os.kill(victim_pid, signal.SIGKILL)
    assert poll_until(lambda: not pid_running(victim_pid), 10), "SIGKILLed victim still running"

    def fail_flagged():
        d = {x["id"]: x for x in fo.nodes(observer)}[fo.victim_id]
        return "fail" in d["flags"]

    def promoted():
        xs = {x["id"]: x for x in fo.nodes(observer)}
        if fo.t_fail is None and "fail" in xs[fo.victim_id]["flags"]:
            fo.t_fail = time.monotonic()
        h = xs[fo.heir_id]
        return h["role"] == "master" and h["slots"] == fo.victim_slots

    wait_until(promoted, 60, f"replica 127.0.0.1:{fo.heir_port} to be master of the killed node's slots "
               f"(seen from 127.0.0.1:{observer})", interval=0.05, state=lambda: fo.dump(fo.live_ports()))
    fo.t_promo = time.monotonic()

    def all_ok():
        return all(fo.info(p).get("cluster_state") == "ok" for p in fo.live_ports())

    wait_until(all_ok, CONVERGE, "cluster_state:ok on every live node", interval=0.05,
               state=lambda: fo.dump(fo.live_ports()))
    fo.t_ok = time.monotonic()
    promo_s, ok_s = fo.t_promo - fo.t_kill, fo.t_ok - fo.t_kill
    fail_s = (fo.t_fail - fo.t_kill) if fo.t_fail else float("nan")
    print(f"\n[failover] killed 127.0.0.1:{fo.victim_port} (master of slot {slot}); flagged fail after {fail_s:.2f}s; "
          f"replica 127.0.0.1:{fo.heir_port} master after {promo_s:.2f}s; cluster_state:ok everywhere after {ok_s:.2f}s "
          f"(limit for promotion {PROMOTION_LIMIT:.0f}s)")

    # keep writing well past the recovery so the "after" side of the window is exercised
    after = fo.t_promo + GRACE
    wait_until(lambda: time.monotonic() >= after + 3 and fo.writer.ok_since(after) >= 200, 60,
               "200 writes after promotion + grace", state=lambda: Counter(o for _a, _b, o in fo.writer.snapshot()))
    fo.writer.finish()
    assert not fo.writer.is_alive(), "writer thread did not stop"
    assert fo.writer.crash is None, f"writer thread crashed: {fo.writer.crash!r}"
    fo.done.add("kill")
    assert promo_s <= PROMOTION_LIMIT, (
        f"replica promoted {promo_s:.2f}s after the SIGKILL, more than 3 x cluster-node-timeout = {PROMOTION_LIMIT}s\n"
        + fo.dump(fo.live_ports())
    )
    fo.done.add("promoted")


def test_03_writer_errors_only_during_outage(fo):
    _need(fo, "kill")
    log = fo.writer.snapshot()
    end = fo.t_promo + GRACE
    errors = [(t0, t1, o) for t0, t1, o in log if o != "ok"]
    before = [(t0, t1, o) for t0, t1, o in log if t1 < fo.t_kill]
    after = [(t0, t1, o) for t0, t1, o in log if t0 > end]
    outside = [(t0 - fo.t_kill, t1 - fo.t_kill, o) for t0, t1, o in errors if t1 < fo.t_kill or t0 > end]
    counts = Counter(o for _a, _b, o in errors)
    if errors:
        first = min(t1 for _t0, t1, _o in errors) - fo.t_kill
        last = max(t0 for t0, _t1, _o in errors) - fo.t_kill
        window = f"errors from +{first:.2f}s to +{last:.2f}s after the kill (window {last - first:.2f}s)"
    else:
        window = "no errors"
    print(f"\n[failover] writer: {len(log)} attempts, {len(before)} before the kill, {len(after)} after promotion+{GRACE:.0f}s "
          f"(promotion at +{fo.t_promo - fo.t_kill:.2f}s); {len(errors)} errors {dict(counts)}; {window}")
    assert len(before) >= 200 and all(o == "ok" for _a, _b, o in before), "writes before the kill must all succeed"
    assert len(after) >= 200, f"only {len(after)} writes after promotion + grace"
    assert not outside, (
        f"{len(outside)} writer errors outside [kill, promotion + {GRACE}s] (times relative to the kill, "
        f"promotion at +{fo.t_promo - fo.t_kill:.2f}s): {outside[:10]}"
    )
    assert errors, "the writer saw no error at all: it cannot have been writing to the killed shard"


def test_04_every_acknowledged_key_readable(fo):
    _need(fo, "write", "kill")
    from redis.cluster import RedisCluster

    live = fo.live_ports()
    rng = random.Random(5)
    sample = rng.sample(fo.acked, 200)
    wrong = []
    for k in sample:
        port = rng.choice(live)
        cp = redis_cli("-c", "-p", port, "GET", k, timeout=30)
        got = cp.stdout.decode(errors="replace").rstrip("\n")
        if cp.returncode != 0 or got != fo.values[k]:
            wrong.append((port, k, fo.values[k], got, cp.stderr.decode(errors="replace")[:200]))
    assert not wrong, f"{len(wrong)}/200 sampled keys wrong via redis-cli -c GET (port, key, want, got, stderr): {wrong[:5]}"

    rc = RedisCluster(startup_nodes=fo.startup_nodes(), socket_timeout=30)
    try:
        got = []
        for b in range(0, len(fo.acked), 20000):
            got.extend(rc.mget_nonatomic(fo.acked[b : b + 20000]))
    finally:
        rc.close()
    missing = [k for k, v in zip(fo.acked, got) if v is None]
    bad = [(k, v) for k, v in zip(fo.acked, got) if v is not None and v.decode() != fo.values[k]]
    print(f"\n[failover] read back {len(got)} acknowledged keys via MGET by slot: {len(missing)} missing, {len(bad)} wrong")
    assert not missing and not bad, (
        f"after the failover {len(missing)} acknowledged keys are missing (e.g. {missing[:5]}) and "
        f"{len(bad)} have a wrong value (e.g. {bad[:5]})"
    )


def test_05_killed_node_restarts_as_replica_and_catches_up(fo):
    _need(fo, "kill")
    from redis.crc import key_slot

    nd = fo.dir / str(fo.victim_port)
    # started the way `cinnabar cluster up` starts a node: `<server-bin> redis.conf` in the
    # node dir, stdout+stderr to stdout.log (appended here, to keep the first run's), own group
    log = open(nd / "stdout.log", "ab")
    fo.restarted = subprocess.Popen([fo.server_bin, "redis.conf"], cwd=nd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, process_group=0)
    log.close()
    fo.seen_pids.add(fo.restarted.pid)

    def answers():
        if fo.restarted.poll() is not None:
            raise AssertionError(f"restarted node exited with {fo.restarted.returncode}")
        try:
            return fo.call(fo.victim_port, "PING") == b"PONG"
        except (OSError, EOFError, TimeoutError, ValueError):
            return False

    wait_until(answers, CONVERGE, f"restarted 127.0.0.1:{fo.victim_port} to answer PING")
    assert fo.text(fo.victim_port, "CLUSTER", "MYID") == fo.victim_id, "node id changed across SIGKILL + restart"

    def rejoined():
        for p in fo.ports:
            x = {y["id"]: y for y in fo.nodes(p)}[fo.victim_id]
            if x["role"] != "slave" or x["master"] != fo.heir_id or "fail" in x["flags"] or "fail?" in x["flags"] or x["slots"]:
                return False
        return True

    wait_until(rejoined, CONVERGE, f"restarted 127.0.0.1:{fo.victim_port} to be `slave {fo.heir_id}` on every node",
               state=lambda: fo.dump())
    me = next(x for x in fo.nodes(fo.victim_port) if "myself" in x["flags"])
    assert me["flags"] == ["myself", "slave"] and me["master"] == fo.heir_id, me["line"]

    state = {}

    def caught_up():
        m = fo.info(fo.heir_port, "replication")
        r = fo.info(fo.victim_port, "replication")
        state.update(master=m.get("master_repl_offset"), replica=r.get("master_repl_offset"),
                     link=r.get("master_link_status"), role=r.get("role"))
        return (r.get("role") == "slave" and r.get("master_link_status") == "up"
                and r.get("master_port") == str(fo.heir_port)
                and m.get("master_repl_offset") == r.get("master_repl_offset"))

    t0 = time.monotonic()
    wait_until(caught_up, 60, "the restarted replica's master_repl_offset to reach the new master's",
               state=lambda: dict(state))
    sizes = {}

    def same_size():
        sizes["master"] = int(fo.call(fo.heir_port, "DBSIZE"))
        sizes["replica"] = int(fo.call(fo.victim_port, "DBSIZE"))
        return sizes["master"] == sizes["replica"]

    wait_until(same_size, 30, "DBSIZE of the restarted replica == the new master's", state=lambda: dict(sizes))
    print(f"\n[failover] restarted 127.0.0.1:{fo.victim_port} is replica of 127.0.0.1:{fo.heir_port}, caught up "
          f"{time.monotonic() - t0:.2f}s after rejoining: offset {state['master']}, DBSIZE {sizes['master']}")
    mine = [k for k in fo.acked if key_slot(k.encode()) in fo.victim_slots]
    assert sizes["master"] >= len(mine), f"new master holds {sizes['master']} keys < {len(mine)} acknowledged in its slots"
    sample = random.Random(7).sample(mine, 200)
    with RespConnection("127.0.0.1", fo.victim_port, timeout=10) as c:
        assert c.call("READONLY").raw == b"+OK\r\n"
        for k in sample:
            c.send_command("GET", k)
        got = [c.read_reply().to_py() for _ in sample]
    bad = [(k, v) for k, v in zip(sample, got) if v != fo.values[k].encode()]
    assert not bad, f"{len(bad)}/200 of its shard's keys wrong on the restarted replica (READONLY GET): {bad[:5]}"


def test_06_master_killed_and_restarted_keeps_its_data_and_place(fo):
    """Issue 6 done-when 5: a master of the `cinnabar cluster up` cluster (appendonly yes) is
    SIGKILLed and restarted before its replica may take over (well within
    cluster-node-timeout): it comes back with the same id, still master of the same slots,
    with every acknowledged key of its slots loaded from its own AOF."""
    _need(fo, "kill")
    from redis.crc import key_slot

    ns = fo.nodes(fo.heir_port)
    others = [x for x in ns if x["role"] == "master" and x["slots"] and x["id"] != fo.heir_id
              and "fail" not in x["flags"]]
    assert others, fo.dump()
    target = others[0]
    port, node_id = target["port"], target["id"]
    slots_before = sorted(target["slots"])
    owned = set(target["slots"])
    mine = [k for k in fo.acked if key_slot(k.encode()) in owned]
    assert mine, "the target master owns acknowledged keys"
    pid = fo.pid_of(port)
    assert pid, f"no pid file for 127.0.0.1:{port}"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_running(pid), 10, "the killed master to be gone")
    nd = fo.dir / str(port)
    log = open(nd / "stdout.log", "ab")
    proc = subprocess.Popen([fo.server_bin, "redis.conf"], cwd=nd, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, process_group=0)
    log.close()
    fo.seen_pids.add(proc.pid)

    def answers():
        if proc.poll() is not None:
            raise AssertionError(f"restarted master exited with {proc.returncode}")
        try:
            return fo.call(port, "PING") == b"PONG"
        except (OSError, EOFError, TimeoutError, ValueError):
            return False

    wait_until(answers, CONVERGE, f"restarted 127.0.0.1:{port} to answer PING")
    assert fo.text(port, "CLUSTER", "MYID") == node_id, "node id changed across SIGKILL + restart"
    me = next(x for x in fo.nodes(port) if "myself" in x["flags"])
    assert me["role"] == "master" and sorted(me["slots"]) == slots_before, me["line"]
    wait_until(lambda: fo.info(port).get("cluster_state") == "ok", CONVERGE, "cluster_state:ok on the restarted master")
    with RespConnection("127.0.0.1", port, timeout=10) as c:
        for k in mine:
            c.send_command("GET", k)
        got = [c.read_reply().to_py() for _ in mine]
    bad = [(k, v) for k, v in zip(mine, got) if v != fo.values[k].encode()]
    assert not bad, f"{len(bad)}/{len(mine)} acknowledged keys wrong after the restart: {bad[:5]}"
    print(f"\n[restart] master 127.0.0.1:{port} restarted from its AOF with {len(mine)} acknowledged keys intact")

