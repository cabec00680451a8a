# tests/test_cluster_restart.py — SIGKILL + restart from the same directory.
#
# Six cinnabar-server nodes (walkthrough config: five lines, node timeout
# 5000) formed as 3 masters + 3 replicas. A node killed with SIGKILL and
# started again from its dir must reload nodes-<port>.conf and rejoin with the
# same node id, currentEpoch / configEpoch, role and slots, and the cluster
# must return to ok with an unchanged topology. Also: the user's
# `appendonly yes` keeps a master's keys across a (clean) restart, and a restart of
# all six nodes at once (like restarting all the containers) comes back ok.

from __future__ import annotations

import pytest

from lib_cluster import (
    NodePool,
    attach_logs,
    dump_nodes,
    form_cluster,
    keys_for_slots,
    parse_info,
    parse_nodes,
    topology_signature,
    wait_cluster_ok,
    wait_same_topology,
    wait_until,
)

CONVERGE = 30.0


class Restart:
    def __init__(self):
        self.pool = NodePool(prefix="cinnabar-restart-")
        self.nodes = []
        self.ids = {}
        self.formed = False


@pytest.fixture(scope="module")
def rs():
    r = Restart()
    try:
        r.nodes = r.pool.add_block(["cinnabar"] * 6, node_timeout=5000)
        m, reps = r.nodes[:3], r.nodes[3:]
        r.ids = form_cluster(m, dict(zip(reps, m)), timeout=CONVERGE)
        r.formed = True
        yield r
    finally:
        r.pool.close()


@pytest.fixture(autouse=True)
def _logs(request, rs):
    attach_logs(request, rs.nodes)


def myself_line(node) -> dict:
    return [x for x in node.nodes() if "myself" in x["flags"]][0]


def snapshot(node) -> dict:
    me = myself_line(node)
    info = node.info()
    return {
        "id": me["id"],
        "flags": me["flags"],
        "master": me["master"],
        "config_epoch": me["config_epoch"],
        "slot_specs": me["slot_specs"],
        "cluster_current_epoch": info.get("cluster_current_epoch"),
        "cluster_my_epoch": info.get("cluster_my_epoch"),
        "cluster_known_nodes": info.get("cluster_known_nodes"),
        "topology": topology_signature(node.nodes()),
    }


def _restart_and_compare(rs, node):
    before = snapshot(node)
    sig_before = wait_same_topology(rs.nodes, CONVERGE)
    conf_before = node.nodes_conf.read_text()
    assert before["id"] in conf_before and "vars currentEpoch" in conf_before, f"{node.nodes_conf} before restart:\n{conf_before}"
    node.kill9()
    node.restart()
    after = snapshot(node)
    # identity, epochs, role and slots come straight from nodes.conf, before any gossip
    for k in ("id", "flags", "master", "config_epoch", "slot_specs", "cluster_current_epoch", "cluster_my_epoch", "cluster_known_nodes"):
        assert after[k] == before[k], f"after SIGKILL + restart of {node.name}: {k} = {after[k]!r}, before {before[k]!r}"
    wait_cluster_ok(rs.nodes, CONVERGE, size=3)
    assert wait_same_topology(rs.nodes, CONVERGE) == sig_before, "topology changed across the restart:\n" + dump_nodes(rs.nodes)
    ns = parse_nodes(node.cluster_nodes())
    assert all(x["link"] == "connected" for x in ns), node.cluster_nodes()


def test_01_sigkill_master_restart_same_identity(rs):
    _restart_and_compare(rs, rs.nodes[1])


def test_02_sigkill_replica_restart_same_identity(rs):
    _restart_and_compare(rs, rs.nodes[5])


def test_02b_restarted_replica_replicates_again(rs):
    """A replica restarted from its nodes.conf reconnects to its master by itself (Redis's
    clusterCron starts replication once the master's address is known) and receives writes
    made after the restart."""
    replica = rs.nodes[5]
    master_id = myself_line(replica)["master"]
    master = next(n for n in rs.nodes if n.myid() == master_id)
    replica.kill9()
    replica.restart()
    mine = myself_line(master)
    slots = sorted(mine["slots"])[:5]
    keys = keys_for_slots(slots, prefix="resync")
    for s, k in keys.items():
        assert master.call("SET", k, f"r{s}") == b"OK"

    def caught_up():
        if parse_info(replica.text("INFO", "replication")).get("master_link_status") != "up":
            return False
        return replica.call("DBSIZE") == master.call("DBSIZE")

    wait_until(caught_up, CONVERGE, f"restarted replica {replica.name} to replicate from {master.name} again")


def test_03_appendonly_keys_survive_restart(rs):
    """The user's config says `appendonly yes`: a master's keys survive a restart.

    The node is stopped with SIGTERM (clean shutdown): with the default
    `appendfsync everysec` even redis-server may lose the last ~2 s of writes
    to SIGKILL, so SIGKILL would make this check racy for the oracle too."""
    master = rs.nodes[0]
    mine = myself_line(master)
    slots = sorted(mine["slots"])[:: max(1, len(mine["slots"]) // 20)][:20]
    keys = keys_for_slots(slots, prefix="aof")
    for s, k in keys.items():
        assert master.call("SET", k, f"v{s}") == b"OK"
    assert master.call("DBSIZE") >= len(keys)
    master.stop()  # SIGTERM
    master.restart()
    # the restarted master refuses with -LOADING / -CLUSTERDOWN for a moment: wait for ok
    wait_cluster_ok([master], CONVERGE)
    missing = [k for s, k in keys.items() if master.call_reply("GET", k).to_py() != f"v{s}".encode()]
    assert not missing, (
        f"{len(missing)}/{len(keys)} keys written to {master.name} before a SIGTERM are gone after the restart "
        f"with appendonly yes (e.g. GET {missing[0]} -> {master.call_reply('GET', missing[0]).raw!r})"
    )
    wait_cluster_ok(rs.nodes, CONVERGE, size=3)


def test_03b_bus_answers_while_a_restarting_master_loads(rs):
    """A master restarted with a slow load (key-load-delay makes its AOF load take ~8 s,
    longer than the 5 s node timeout) keeps answering the cluster bus while it loads, as
    Redis does between loading chunks: no node flags it failing, its replica is not
    promoted, and it comes back as the same master with its keys."""
    import threading

    wait_cluster_ok(rs.nodes, CONVERGE, size=3)
    master = rs.nodes[1]
    mid = master.myid()
    mine = myself_line(master)
    assert "master" in mine["flags"], mine["line"]
    keys = keys_for_slots(sorted(mine["slots"])[:2000], prefix="slowload")
    from lib.resp import RespConnection

    with RespConnection(master.host, master.port, timeout=30) as c:
        for k in keys.values():
            c.send_command("SET", k, "v")
        assert all(c.read_reply().raw == b"+OK\r\n" for _ in keys)
    others = [n for n in rs.nodes if n is not master]
    conf = master.conf_path.read_text()
    master.conf_path.write_text(conf + "key-load-delay 4000\n")
    try:
        master.stop()  # SIGTERM: a clean shutdown, everything in the AOF
        errors: list[BaseException] = []

        def restart():
            try:
                master.restart(timeout=120)
            except BaseException as e:  # surfaced below
                errors.append(e)

        t = threading.Thread(target=restart)
        t.start()
        seen_flags = set()
        while t.is_alive():
            for o in others:
                x = {y["id"]: y for y in o.nodes()}[mid]
                seen_flags.update(f for f in x["flags"] if f.startswith("fail"))
            t.join(0.2)
        assert not errors, errors[0]
    finally:
        master.conf_path.write_text(conf)
    # The precondition, from the server's own log: the load outlasted the node timeout.
    import re

    loads = re.findall(r"DB loaded from append only file: ([0-9.]+) seconds", master.log_path.read_text(errors="replace"))
    assert loads and float(loads[-1]) > 5.0, f"the load was not slow enough to test anything: {loads}"
    assert not seen_flags, f"{master.name} was flagged {sorted(seen_flags)} while loading"
    assert "master" in myself_line(master)["flags"]
    wait_cluster_ok(rs.nodes, CONVERGE, size=3)
    assert master.call("DBSIZE") >= len(keys)
    master.call("CONFIG", "SET", "key-load-delay", "0")


def test_04_restart_every_node(rs):
    """All six killed (SIGKILL) and started again from their dirs: same cluster, state ok."""
    sig_before = wait_same_topology(rs.nodes, CONVERGE)
    ids_before = {n.port: n.myid() for n in rs.nodes}
    for n in rs.nodes:
        n.kill9()
    for n in rs.nodes:
        n.restart()
    assert {n.port: n.myid() for n in rs.nodes} == ids_before
    wait_cluster_ok(rs.nodes, CONVERGE, size=3)
    assert wait_same_topology(rs.nodes, CONVERGE) == sig_before, dump_nodes(rs.nodes)

    def all_connected():
        return all(x["link"] == "connected" and "fail" not in x["flags"] for n in rs.nodes for x in n.nodes())

    wait_until(all_connected, CONVERGE, "every link connected, no fail flags", state=lambda: dump_nodes(rs.nodes))


def test_05_master_down_past_timeout_fails_over_then_rejoins_as_replica(rs):
    """SIGKILL a master and leave it down: its replica takes over (all-Cinnabar
    election); started again from its dir, the old master keeps its id and
    rejoins as a replica of the new one."""
    wait_cluster_ok(rs.nodes, CONVERGE, size=3)
    by_port = {n.port: n for n in rs.nodes}
    ns = rs.nodes[0].nodes()
    m = next(x for x in ns if x["port"] == rs.nodes[2].port)
    assert m["role"] == "master", rs.nodes[0].cluster_nodes()
    rep = next(x for x in ns if x["role"] == "slave" and x["master"] == m["id"])
    old, heir = by_port[m["port"]], by_port[rep["port"]]
    old_slots = m["slots"]
    # A replica that has not finished syncing since the previous restart
    # refuses to fail over (redis: data age / cluster-replica-validity-factor),
    # so wait for its replication link -- when INFO reports one.
    wait_until(lambda: parse_info(heir.text("INFO", "replication")).get("master_link_status", "up") == "up", CONVERGE,
               f"{heir.name}: master_link_status:up", state=lambda: heir.text("INFO", "replication"))
    old.kill9()
    live = [n for n in rs.nodes if n is not old]

    def promoted():
        for o in live:
            xs = {x["id"]: x for x in o.nodes()}
            h, d = xs[rep["id"]], xs[m["id"]]
            if h["role"] != "master" or h["slots"] != old_slots or "fail" not in d["flags"]:
                return False
        return True

    wait_until(promoted, 40, f"replica {heir.name} to take over {old.name}'s slots on every live node (old one flagged fail)",
               state=lambda: dump_nodes(live))
    wait_cluster_ok(live, CONVERGE, size=3)
    masters = [x for x in heir.nodes() if x["role"] == "master"]
    new_epoch = int(next(x for x in masters if x["id"] == rep["id"])["config_epoch"])
    assert new_epoch == max(int(x["config_epoch"]) for x in masters), "the promoted replica must hold the highest configEpoch"

    old.restart()
    assert old.myid() == m["id"]

    def rejoined():
        for o in rs.nodes:
            x = {y["id"]: y for y in o.nodes()}[m["id"]]
            if x["role"] != "slave" or x["master"] != rep["id"] or "fail" in x["flags"] or x["slots"]:
                return False
        return True

    wait_until(rejoined, CONVERGE, f"restarted {old.name} to be a replica of {heir.name} on every node", state=lambda: dump_nodes(rs.nodes))
    me = myself_line(old)
    assert me["flags"] == ["myself", "slave"] and me["master"] == rep["id"], me["line"]
    wait_cluster_ok(rs.nodes, CONVERGE, size=3)


def test_05_keys_in_unowned_slots_are_claimed_at_startup(tmp_path):
    """Redis's verifyClusterConfigWithData: a node started in cluster mode over a dataset
    (dump.rdb written by the same server in standalone mode) takes responsibility for the
    unassigned slots its keys live in; CLUSTER NODES shows them on the myself line."""
    from lib_cluster import ClusterNode, free_port_block, walkthrough_conf
    from redis.crc import key_slot

    port = free_port_block(1)[0]
    node = ClusterNode("cinnabar", port, tmp_path, extra=("cluster-enabled no", "appendonly no"))
    try:
        node.start()
        keys = ["foo", "bar", "hello"]
        for k in keys:
            assert node.call("SET", k, "v") == b"OK"
        assert node.call("SAVE") == b"OK"
        node.stop()
        node.conf_path.write_text(walkthrough_conf(port, extra=("appendonly no",)))
        node.start()
        want = sorted(key_slot(k.encode()) for k in keys)
        mine = myself_line(node)
        assert sorted(mine["slots"]) == want, node.cluster_nodes()
        assert node.call("DBSIZE") == len(keys)
    finally:
        node.stop()

