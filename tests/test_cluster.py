# tests/test_cluster.py — owned by the test harness (tests/, .ci/, scripts/).
#
# End-to-end version of the user's walkthrough
# (shared/seed/redis-cluster-docker-walkthrough.md): six nodes started from the
# walkthrough's node config (cluster-enabled, cluster-config-file,
# cluster-node-timeout 5000, appendonly yes), joined with
# `redis-cli --cluster create ... --cluster-replicas 1`, then used through
# `redis-cli -c` (MOVED redirects) and redis-py's RedisCluster. Run on both
# servers ([redis] validates the test itself). All waits are conditions with
# deadlines.

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import redis as redispy
from redis.cluster import ClusterNode, RedisCluster

from lib.resp import RespConnection
from lib.wait import wait_for

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def _cli(*args, stdin=b"", timeout=120):
    return subprocess.run([REDIS_CLI, *args], input=stdin, capture_output=True, timeout=timeout)


def _cluster_info(s) -> dict:
    with RespConnection(s.host, s.port, timeout=5) as c:
        text = c.call("CLUSTER", "INFO").value.decode()
    return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


@pytest.fixture
def six_nodes(make_server, request):
    kind = request.param
    nodes = []
    for i in range(6):
        nodes.append(
            make_server(
                kind,
                [
                    ("cluster-enabled", "yes"),
                    ("cluster-config-file", f"nodes-{8001 + i}.conf"),
                    ("cluster-node-timeout", "5000"),
                    ("appendonly", "yes"),
                ],
            )
        )
    return nodes


@pytest.mark.parametrize("six_nodes", ["redis", "cinnabar"], indirect=True)
def test_walkthrough_three_masters_three_replicas(six_nodes):
    nodes = six_nodes
    addrs = [f"{s.host}:{s.port}" for s in nodes]
    p = _cli("--cluster", "create", *addrs, "--cluster-replicas", "1", "--cluster-yes", timeout=180)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert "[OK] All 16384 slots covered." in out, out

    def all_ok():
        try:
            infos = [_cluster_info(s) for s in nodes]
        except OSError:
            return False
        return all(i.get("cluster_state") == "ok" and i.get("cluster_known_nodes") == "6" for i in infos)

    wait_for(all_ok, 60, "cluster_state:ok and 6 known nodes on every node")

    def topology(s):
        with RespConnection(s.host, s.port) as c:
            table = c.call("CLUSTER", "NODES").value.decode()
        lines = [ln for ln in table.splitlines() if ln.strip()]
        masters = [ln for ln in lines if "master" in ln.split()[2]]
        replicas = [ln for ln in lines if "slave" in ln.split()[2]]
        return table, lines, masters, replicas

    def topology_settled():
        for s in nodes:
            _, lines, masters, replicas = topology(s)
            if len(lines) != 6 or len(masters) != 3 or len(replicas) != 3:
                return False
        return True

    # replicas are attached asynchronously (CLUSTER REPLICATE + gossip)
    wait_for(topology_settled, 60, "every node to see 3 masters and 3 replicas")
    table, lines, masters, replicas = topology(nodes[0])
    master_ids = {ln.split()[0] for ln in masters}
    assert {ln.split()[3] for ln in replicas} == master_ids, "every replica follows a master"

    # redis-cli -c follows MOVED redirects, as in the walkthrough
    first = nodes[0]
    for key, value in [("foo", "bar"), ("user:1", "alice"), ("{tag}a", "1"), ("hello", "world")]:
        r = _cli("-c", "-h", first.host, "-p", str(first.port), "SET", key, value)
        assert r.stdout == b"OK\n", (key, r.stdout, r.stderr)
    for s in nodes[1:3]:
        r = _cli("-c", "-h", s.host, "-p", str(s.port), "GET", "foo")
        assert r.stdout == b"bar\n", r.stdout
    # without -c, a node that does not own the slot answers MOVED <slot> <ip>:<port>
    moved = []
    for s in nodes:
        with RespConnection(s.host, s.port) as c:
            moved.append(c.call_raw("GET", "foo"))
    owners = [m for m in moved if m == b"$3\r\nbar\r\n"]
    redirects = [m for m in moved if m.startswith(b"-MOVED 12182 127.0.0.1:")]
    assert len(owners) == 1, moved
    # replicas of the owner also redirect (no READONLY)
    assert len(redirects) == 5, moved

    # redis-py cluster client
    rc = RedisCluster(startup_nodes=[ClusterNode(s.host, s.port) for s in nodes[:2]], socket_timeout=10)
    try:
        for i in range(200):
            assert rc.set(f"k:{i}", i) is True
        assert [rc.get(f"k:{i}") for i in range(200)] == [str(i).encode() for i in range(200)]
        assert rc.mget_nonatomic([f"k:{i}" for i in range(0, 200, 10)]) == [str(i).encode() for i in range(0, 200, 10)]
    finally:
        rc.close()

    p = _cli("--cluster", "check", addrs[0])
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0 and "[OK] All 16384 slots covered." in out, out
    # every master holds a share of the 204 keys
    counts = re.findall(r"\((\w+)\.\.\.\) -> (\d+) keys", out)
    assert sum(int(n) for _, n in counts) == 204, out

    # replicas receive the writes (replication)
    def replicas_synced():
        total = 0
        for s in nodes:
            with RespConnection(s.host, s.port) as c:
                role = c.call("ROLE").to_py()
                if role and role[0] == b"slave":
                    total += c.call("DBSIZE").to_py()
        return total == 204

    wait_for(replicas_synced, 30, "replicas to hold the 204 keys")


def test_redis_py_cluster_client_against_single_node(make_server):
    for kind in ("redis", "cinnabar"):
        s = make_server(kind, cluster=True)
        rc = RedisCluster(host=s.host, port=s.port, socket_timeout=10)
        try:
            assert rc.set("a", 1) is True and rc.get("a") == b"1"
            assert rc.mset_nonatomic({"x": 1, "y": 2}) == [True, True]
            assert rc.mget_nonatomic(["x", "y", "nokey"]) == [b"1", b"2", None]
            assert rc.keyslot("foo") == 12182
        finally:
            rc.close()
        with pytest.raises(redispy.ResponseError):
            redispy.Redis(host=s.host, port=s.port).mset({"a": 1, "b": 2})
