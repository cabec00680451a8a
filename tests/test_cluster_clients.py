# tests/test_cluster_clients.py — real cluster clients against six
# cinnabar-server nodes:
#   * `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes` on
#     fresh nodes, then `redis-cli --cluster check` / `info`;
#   * redis-py's redis.cluster.RedisCluster writing/reading 2,000 keys spread
#     over the slot space, verified node by node (CLUSTER KEYSLOT, direct
#     reads on the owner, COUNTKEYSINSLOT, DBSIZE), replicas catching up;
#
# (A Rust `redis`-crate cluster-client test was considered and dropped: a
# from-scratch build of redis+tokio took ~3.5 min on this 2-core machine and
# would have added a dev-dependency to the shared Cargo.lock.)

from __future__ import annotations

import re
from collections import Counter

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from lib.resp import RespConnection
from lib_cluster import (
    NSLOTS,
    NodePool,
    attach_logs,
    out,
    redis_cli,
    wait_cluster_ok,
    wait_same_topology,
    wait_until,
)

NKEYS = 2000


class Created:
    def __init__(self):
        self.pool = NodePool(prefix="cinnabar-clients-")
        self.nodes = []
        self.create = None
        self.ok = False


@pytest.fixture(scope="module")
def cluster():
    c = Created()
    try:
        c.nodes = c.pool.add_block(["cinnabar"] * 6, node_timeout=5000)
        addrs = [f"127.0.0.1:{n.port}" for n in c.nodes]
        c.create = redis_cli("--cluster", "create", *addrs, "--cluster-replicas", "1", "--cluster-yes", timeout=120)
        yield c
    finally:
        c.pool.close()


@pytest.fixture(autouse=True)
def _logs(request, cluster):
    attach_logs(request, cluster.nodes)


def require_created(c: Created):
    if not c.ok:
        pytest.skip("redis-cli --cluster create did not succeed")


def masters_and_replicas(c: Created):
    ns = c.nodes[0].nodes()
    by_id = {x["id"]: x for x in ns}
    port_node = {n.port: n for n in c.nodes}
    masters = [port_node[x["port"]] for x in ns if x["role"] == "master"]
    replicas = {port_node[x["port"]]: port_node[by_id[x["master"]]["port"]] for x in ns if x["role"] == "slave"}
    return masters, replicas


def test_01_cluster_create(cluster):
    cp = cluster.create
    text = out(cp)
    assert cp.returncode == 0, f"redis-cli --cluster create exited {cp.returncode}\nstdout:\n{text}\nstderr:\n{cp.stderr.decode(errors='replace')}"
    assert "[OK] All nodes agree about slots configuration." in text, text
    assert "[OK] All 16384 slots covered." in text, text
    assert "[ERR]" not in text, text
    wait_cluster_ok(cluster.nodes, 30, size=3)
    sig = wait_same_topology(cluster.nodes, 30)
    roles = Counter(role for _, role, _, _ in sig)
    assert roles == {"master": 3, "slave": 3}, sig
    # redis-cli assigned the configEpochs 1..N with `cluster set-config-epoch`
    ns = cluster.nodes[0].nodes()
    assert sorted(int(x["config_epoch"]) for x in ns if x["role"] == "master") == sorted(
        {int(x["config_epoch"]) for x in ns if x["role"] == "master"}
    ), "masters' configEpochs must be distinct"
    cluster.ok = True


def test_02_cluster_check(cluster):
    require_created(cluster)
    masters, replicas = masters_and_replicas(cluster)
    for n in (cluster.nodes[0], next(iter(replicas))):  # from a master and from a replica
        cp = redis_cli("--cluster", "check", f"127.0.0.1:{n.port}", timeout=60)
        text = out(cp)
        assert cp.returncode == 0, f"redis-cli --cluster check 127.0.0.1:{n.port} exited {cp.returncode}:\n{text}"
        assert "[OK] All nodes agree about slots configuration." in text, text
        assert "[OK] All 16384 slots covered." in text, text
        assert "[ERR]" not in text and "[WARNING]" not in text, text
        assert len(re.findall(r"^M: [0-9a-f]{40} 127\.0\.0\.1:\d+$", text, re.M)) == 3, text
        assert len(re.findall(r"^S: [0-9a-f]{40} 127\.0\.0\.1:\d+$", text, re.M)) == 3, text
        assert text.count("1 additional replica(s)") == 3, text


@pytest.fixture(scope="module")
def rc(cluster):
    require_created(cluster)
    r = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port, socket_timeout=10, cluster_error_retry_attempts=3)
    try:
        yield r
    finally:
        r.close()


def keyname(i: int) -> str:
    return f"user:{i}:profile"


def test_03_redis_py_cluster_write_read(cluster, rc):
    slots = {key_slot(keyname(i).encode()) for i in range(NKEYS)}
    # 2,000 keys hit well over a thousand distinct slots in all three ranges
    assert len(slots) > 1500
    assert min(slots) < 1000 and max(slots) > 15000
    for i in range(NKEYS):
        assert rc.set(keyname(i), f"v{i}") is True
    for i in range(NKEYS):
        assert rc.get(keyname(i)) == f"v{i}".encode(), keyname(i)
    # more single-key commands, routed by slot
    for i in range(0, NKEYS, 10):
        k = keyname(i)
        assert rc.append(k, "!") == len(f"v{i}!")
        assert rc.strlen(k) == len(f"v{i}!")
        assert rc.exists(k) == 1
        assert rc.type(k) == b"string"
        assert rc.expire(k, 1000) is True
        assert 0 < rc.ttl(k) <= 1000
        assert rc.incr(f"counter:{{{k}}}") == 1
        assert rc.delete(f"counter:{{{k}}}") == 1
    for i in range(0, NKEYS, 10):
        assert rc.get(keyname(i)) == f"v{i}!".encode()
    # hash-tagged multi-key ops inside one slot
    assert rc.mset_nonatomic({"{tag}a": "1", "{tag}b": "2"}) is not None
    assert rc.mget("{tag}a", "{tag}b") == [b"1", b"2"]


def test_04_keys_live_on_their_slot_owner(cluster, rc):
    require_created(cluster)
    masters, _ = masters_and_replicas(cluster)
    # owner of every slot according to CLUSTER NODES of the first node
    owner_port = {}
    for x in cluster.nodes[0].nodes():
        for s in x["slots"]:
            owner_port[s] = x["port"]
    assert len(owner_port) == NSLOTS
    conns = {m.port: RespConnection("127.0.0.1", m.port) for m in masters}
    try:
        per_slot = Counter()
        c0 = conns[masters[0].port]
        for i in range(NKEYS):
            k = keyname(i)
            slot = key_slot(k.encode())
            got = c0.call("CLUSTER", "KEYSLOT", k).to_py()
            assert got == slot, f"CLUSTER KEYSLOT {k}: {got}, expected {slot}"
            per_slot[slot] += 1
            owner = owner_port[slot]
            assert conns[owner].call("GET", k).to_py() in (f"v{i}".encode(), f"v{i}!".encode()), f"{k} not on its owner {owner}"
            other = next(p for p in conns if p != owner)
            r = conns[other].call("GET", k)
            assert r.is_error and r.value == f"MOVED {slot} 127.0.0.1:{owner}".encode(), f"GET {k} on {other}: {r.raw!r}"
        for slot, n in per_slot.items():
            got = conns[owner_port[slot]].call("CLUSTER", "COUNTKEYSINSLOT", slot).to_py()
            assert got == n, f"CLUSTER COUNTKEYSINSLOT {slot} on {owner_port[slot]}: {got}, expected {n}"
        total = sum(c.call("DBSIZE").to_py() for c in conns.values())
        assert total == NKEYS + 2, f"sum of DBSIZE over masters {total}, expected {NKEYS + 2}"
        # GETKEYSINSLOT agrees for a few slots
        for slot in list(per_slot)[:20]:
            keys = conns[owner_port[slot]].call("CLUSTER", "GETKEYSINSLOT", slot, 100).to_py()
            assert sorted(keys) == sorted(k.encode() for k in (keyname(i) for i in range(NKEYS)) if key_slot(k.encode()) == slot)
    finally:
        for c in conns.values():
            c.close()
    cp = redis_cli("--cluster", "info", f"127.0.0.1:{cluster.nodes[0].port}")
    assert cp.returncode == 0 and f"[OK] {NKEYS + 2} keys in 3 masters." in out(cp), out(cp)


def test_05_replicas_catch_up_and_serve_readonly(cluster, rc):
    require_created(cluster)
    _, replicas = masters_and_replicas(cluster)

    def caught_up():
        return all(r.call("DBSIZE") == m.call("DBSIZE") for r, m in replicas.items())

    wait_until(caught_up, 30, "every replica's DBSIZE to equal its master's",
               state=lambda: "\n".join(f"{r.name}: {r.call('DBSIZE')} vs master {m.name}: {m.call('DBSIZE')}" for r, m in replicas.items()))
    r, m = next(iter(replicas.items()))
    owned = m.nodes()
    mine = [x for x in owned if "myself" in x["flags"]][0]
    k = next(keyname(i) for i in range(NKEYS) if key_slot(keyname(i).encode()) in mine["slots"])
    with RespConnection("127.0.0.1", r.port) as c:
        moved = c.call("GET", k)
        assert moved.is_error and moved.value.startswith(b"MOVED "), f"GET on replica without READONLY: {moved.raw!r}"
        assert c.call("READONLY").to_py() == b"OK"
        assert c.call("GET", k).to_py() is not None, f"READONLY GET {k} on replica {r.name}"
    ro = RedisCluster(host="127.0.0.1", port=r.port, read_from_replicas=True, socket_timeout=10)
    try:
        for i in range(0, NKEYS, 50):
            assert ro.get(keyname(i)) in (f"v{i}".encode(), f"v{i}!".encode())
    finally:
        ro.close()


def test_06_cluster_slots_matches_nodes(cluster):
    require_created(cluster)
    n0 = cluster.nodes[0]

    def problems():
        ns = {x["id"]: x for x in n0.nodes()}
        probs = []
        covered = 0
        for entry in n0.call("CLUSTER", "SLOTS"):
            start, end, master, *reps = entry
            covered += end - start + 1
            mid = master[2].decode()
            if master[0] != b"127.0.0.1" or master[1] != ns[mid]["port"]:
                probs.append(f"range {start}-{end}: master endpoint {master}")
            if not set(range(start, end + 1)) <= ns[mid]["slots"]:
                probs.append(f"range {start}-{end} not owned by {mid} in CLUSTER NODES")
            # (7.0 lists a replica only once its replication offset is non-zero)
            want = sorted(i for i, x in ns.items() if x["master"] == mid)
            got = sorted(r[2].decode() for r in reps)
            if got != want:
                probs.append(f"range {start}-{end}: CLUSTER SLOTS replicas {got}, CLUSTER NODES replicas {want}")
        if covered != NSLOTS:
            probs.append(f"CLUSTER SLOTS covers {covered} slots")
        return probs

    wait_until(lambda: not problems(), 30, "CLUSTER SLOTS to match CLUSTER NODES (masters, ranges, replicas)", state=problems)


def test_07_lua_scripts_through_redis_py(cluster, rc):
    """redis-py's Lock (SCRIPT LOAD + EVALSHA) and register_script against the cluster: the
    script runs on the slot's owner, its effects reach that owner's replica."""
    require_created(cluster)
    lock = rc.lock("resource:{orders}", timeout=30)
    assert lock.acquire(blocking=False) is True
    assert rc.lock("resource:{orders}", timeout=30).acquire(blocking=False) is False
    assert lock.extend(10) is True
    assert 30 < rc.ttl("resource:{orders}") <= 40
    lock.release()
    assert rc.exists("resource:{orders}") == 0
    # A script over hash-tagged keys, on many slots: values set by the script read back.
    incr_by = rc.register_script(
        "local v = redis.call('INCRBY', KEYS[1], ARGV[1]); "
        "redis.call('HSET', KEYS[2], 'last', ARGV[1]); return v")
    for i in range(200):
        tag = f"{{acct{i}}}"
        assert incr_by(keys=[f"bal:{tag}", f"meta:{tag}"], args=[i + 1]) == i + 1
        assert incr_by(keys=[f"bal:{tag}", f"meta:{tag}"], args=[5]) == i + 6
    for i in range(0, 200, 7):
        tag = f"{{acct{i}}}"
        assert rc.get(f"bal:{tag}") == str(i + 6).encode()
        assert rc.hget(f"meta:{tag}", "last") == b"5"
    # Effects replication: the replica holds the values, but never received the script.
    _, replicas = masters_and_replicas(cluster)
    sha = incr_by.sha
    for r, m in replicas.items():
        wait_until(lambda: r.call("DBSIZE") == m.call("DBSIZE"), 30, f"replica {r.name} to catch up")
        assert r.call("SCRIPT", "EXISTS", sha) == [0], "EVALSHA itself was propagated"
        assert m.call("SCRIPT", "EXISTS", sha) == [1]
