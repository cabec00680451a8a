# tests/test_replication.py — replication between cinnabar-server and the real
# redis-server 7.0, both directions:
#   * a Cinnabar replica of a redis-server master (full sync of every type with
#     TTLs in two databases, then streamed writes incl. relative expiries, SPOP,
#     MULTI/EXEC, deletes), READONLY on the replica, WAIT on the master;
#   * a redis-server replica of a Cinnabar master (same data set), INFO
#     replication fields, WAIT returning the replica count;
#   * a Cinnabar replica of a Cinnabar master, REPLICAOF NO ONE.
# Data sets are compared key by key: TYPE, the value read with plain commands
# (GET / LRANGE / HGETALL / SMEMBERS / ZRANGE WITHSCORES) and PTTL (approx).

from __future__ import annotations

import pytest

from lib.wait import wait_for

NKEYS = 3000


def info(conn, section="replication") -> dict[str, str]:
    text = conn.call("INFO", section).to_py().decode()
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def pipeline(conn, cmds):
    for c in cmds:
        conn.send_command(*c)
    replies = [conn.read_reply() for _ in cmds]
    for c, r in zip(cmds, replies):
        assert not r.is_error, f"{c}: {r.raw!r}"
    return replies


def populate(conn, n=NKEYS, prefix="k"):
    cmds = []
    for i in range(n):
        k = f"{prefix}{i}"
        kind = i % 6
        if kind == 0:
            cmds.append(("SET", k, f"v{i}" * (1 + i % 7)))
        elif kind == 1:
            cmds.append(("SET", k, str(i * 1000)))
        elif kind == 2:
            cmds.append(("RPUSH", k, *[f"e{j}" for j in range(1 + i % 9)], "7", "-3"))
        elif kind == 3:
            cmds.append(("HSET", k, *sum(([f"f{j}", f"x{j}"] for j in range(1 + i % 5)), [])))
        elif kind == 4:
            if i % 4 == 0:
                cmds.append(("SADD", k, *[str(j) for j in range(1 + i % 11)]))
            else:
                cmds.append(("SADD", k, *[f"m{j}" for j in range(1 + i % 11)]))
        else:
            cmds.append(("ZADD", k, *sum(([str(j * 1.5 - 3), f"z{j}"] for j in range(1 + i % 8)), [])))
        if i % 10 == 0:
            cmds.append(("PEXPIRE", k, str(200_000 + i)))
    # large encodings: hashtable hash/set, skiplist zset, multi-node list
    cmds.append(("HSET", f"{prefix}bighash", *sum(([f"f{j}", "y" * (j % 70)] for j in range(700)), [])))
    cmds.append(("SADD", f"{prefix}bigset", *[f"s{j}" for j in range(600)]))
    cmds.append(("ZADD", f"{prefix}bigzset", *sum(([str(j / 7), f"m{j}"] for j in range(300)), [])))
    cmds.append(("RPUSH", f"{prefix}biglist", *[f"item-{j}" * 5 for j in range(2000)]))
    # another database
    cmds.append(("SELECT", "3"))
    cmds.append(("SET", f"{prefix}db3", "three"))
    cmds.append(("SADD", f"{prefix}db3set", "a", "b"))
    cmds.append(("SELECT", "0"))
    pipeline(conn, cmds)


def more_writes(conn, prefix="k"):
    cmds = [
        ("INCR", f"{prefix}1"),
        ("APPEND", f"{prefix}0", "++"),
        ("EXPIRE", f"{prefix}6", "500"),
        ("SET", f"{prefix}new", "x", "EX", "300"),
        ("SETEX", f"{prefix}new2", "400", "y"),
        ("SPOP", f"{prefix}4"),
        ("SPOP", f"{prefix}10", "3"),
        ("LPOP", f"{prefix}2"),
        ("HDEL", f"{prefix}3", "f0"),
        ("ZINCRBY", f"{prefix}5", "10", "z0"),
        ("DEL", f"{prefix}7", f"{prefix}8"),
        ("MULTI",),
        ("INCRBY", f"{prefix}13", "5"),
        ("RPUSH", f"{prefix}14", "tail"),
        ("EXEC",),
        ("PERSIST", f"{prefix}20"),
        ("SELECT", "3"),
        ("SET", f"{prefix}db3", "changed"),
        ("SELECT", "0"),
        ("SET", f"{prefix}gone", "soon", "PX", "1"),
    ]
    for i in range(100, 400):
        cmds.append(("SET", f"{prefix}s{i}", str(i)))
    pipeline(conn, cmds)


def dataset(conn) -> dict:
    out = {}
    for db in (0, 3):
        conn.call("SELECT", str(db))
        keys = sorted(conn.call("KEYS", "*").to_py())
        types = [r.to_py().decode() for r in pipeline(conn, [("TYPE", k) for k in keys])]
        # A key with a 1 ms TTL may expire between KEYS and TYPE: it is gone, not a type.
        live = [(k, t) for k, t in zip(keys, types) if t != "none"]
        keys, types = [k for k, _ in live], [t for _, t in live]
        reads = []
        for k, t in zip(keys, types):
            reads.append({
                "string": ("GET", k),
                "list": ("LRANGE", k, "0", "-1"),
                "hash": ("HGETALL", k),
                "set": ("SMEMBERS", k),
                "zset": ("ZRANGE", k, "0", "-1", "WITHSCORES"),
            }[t])
        values = [r.to_py() for r in pipeline(conn, reads)]
        ttls = [r.to_py() for r in pipeline(conn, [("PTTL", k) for k in keys])]
        for k, t, v, ttl in zip(keys, types, values, ttls):
            if t == "hash":
                v = sorted(zip(v[::2], v[1::2]))
            elif t == "set":
                v = sorted(v)
            out[(db, k)] = (t, v, ttl)
    conn.call("SELECT", "0")
    return out


def assert_same(master, replica):
    a, b = dataset(master), dataset(replica)
    assert sorted(a) == sorted(b), (
        f"keys only on master: {sorted(set(a) - set(b))[:10]}, only on replica: {sorted(set(b) - set(a))[:10]}"
    )
    for key in a:
        ta, va, pa = a[key]
        tb, vb, pb = b[key]
        assert (ta, va) == (tb, vb), f"{key}: master {ta} {va!r:.200} replica {tb} {vb!r:.200}"
        if pa == -1 or pb == -1:
            assert pa == pb, f"{key}: PTTL master {pa} replica {pb}"
        else:
            assert abs(pa - pb) < 3000, f"{key}: PTTL master {pa} replica {pb}"
    return len(a)


def link_up(replica):
    return lambda: info(replica).get("master_link_status") == "up"


def caught_up(master, replica):
    def cond():
        m, r = info(master), info(replica)
        return m.get("master_repl_offset") == r.get("slave_repl_offset") and r.get("master_link_status") == "up"
    return cond


def test_cinnabar_replica_of_redis_master(make_server):
    master = make_server("redis", [("repl-diskless-sync-delay", ["0"])])
    mc = master.conn()
    populate(mc)
    replica = make_server("cinnabar", [("replicaof", ["127.0.0.1", str(master.port)])])
    rc = replica.conn()
    wait_for(link_up(rc), 20, "the Cinnabar replica's link to come up")
    wait_for(caught_up(mc, rc), 10, "the replica to catch up after the full sync")
    assert assert_same(mc, rc) > NKEYS - 10
    more_writes(mc)
    wait_for(caught_up(mc, rc), 10, "the replica to apply the streamed writes")
    n = assert_same(mc, rc)
    assert n > NKEYS
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    r = info(rc)
    assert r["role"] == "slave" and r["master_port"] == str(master.port)
    assert r["slave_read_only"] == "1" and r["master_sync_in_progress"] == "0"
    hello = replica.conn().call("HELLO", "2").to_py()
    assert hello[hello.index(b"role") + 1] == b"replica", hello
    err = rc.call("SET", "x", "1")
    assert err.is_error and err.raw.startswith(b"-READONLY You can't write against a read only replica.")
    # A refused command counts as rejected_calls (Redis's rejectCommand), not as a call.
    stat = rc.call("INFO", "commandstats").to_py().decode()
    set_line = next(x for x in stat.split() if x.startswith("cmdstat_set:"))
    assert ",rejected_calls=1," in set_line, set_line
    m = info(mc)
    assert m["connected_slaves"] == "1"
    assert m["slave0"].startswith(f"ip=127.0.0.1,port={replica.port},state=online,offset=")
    # The link drops: the Cinnabar replica continues with a partial resync.
    assert mc.call("CLIENT", "KILL", "TYPE", "replica").to_py() == 1
    pipeline(mc, [("SET", f"after-kill-{i}", str(i)) for i in range(50)])
    wait_for(caught_up(mc, rc), 10, "the replica to resume after the link dropped")
    assert_same(mc, rc)
    st = info(mc, "stats")
    assert (st["sync_full"], st["sync_partial_ok"]) == ("1", "1")


def test_redis_replica_of_cinnabar_master(make_server):
    master = make_server("cinnabar")
    mc = master.conn()
    populate(mc)
    replica = make_server("redis", [("replicaof", ["127.0.0.1", str(master.port)])])
    rc = replica.conn()
    wait_for(link_up(rc), 20, "the redis-server replica's link to come up")
    wait_for(caught_up(mc, rc), 10, "the redis-server replica to catch up after the full sync")
    assert assert_same(mc, rc) > NKEYS - 10
    more_writes(mc)
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    wait_for(caught_up(mc, rc), 10, "the redis-server replica to apply the streamed writes")
    assert assert_same(mc, rc) > NKEYS
    m = info(mc)
    assert m["role"] == "master" and m["connected_slaves"] == "1"
    assert m["slave0"].startswith(f"ip=127.0.0.1,port={replica.port},state=online,offset=")
    assert m["repl_backlog_active"] == "1" and m["repl_backlog_size"] == "1048576"
    assert int(m["master_repl_offset"]) > 0 and len(m["master_replid"]) == 40
    # WAIT with more replicas than exist times out with the count.
    assert mc.call("WAIT", "2", "100").to_py() == 1
    # The link drops: the redis-server replica continues with a partial resync.
    links = mc.call("CLIENT", "LIST", "TYPE", "replica").to_py().decode().splitlines()
    assert len(links) == 1 and " flags=S " in links[0] and " cmd=psync " in links[0], links
    assert mc.call("CLIENT", "KILL", "ID", links[0].split()[0].split("=")[1]).to_py() == 1
    pipeline(mc, [("SET", f"after-kill-{i}", str(i)) for i in range(50)])
    wait_for(caught_up(mc, rc), 10, "the redis-server replica to resume after the link dropped")
    assert_same(mc, rc)
    st = info(mc, "stats")
    assert (st["sync_full"], st["sync_partial_ok"], st["sync_partial_err"]) == ("1", "1", "0")


def test_cinnabar_replica_of_cinnabar_master_and_promotion(make_server):
    master = make_server("cinnabar")
    mc = master.conn()
    populate(mc, 600)
    replica = make_server("cinnabar")
    rc = replica.conn()
    assert rc.call("REPLICAOF", "127.0.0.1", str(master.port)).to_py() == b"OK"
    wait_for(link_up(rc), 20, "the link to come up")
    more_writes(mc)
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    wait_for(caught_up(mc, rc), 10, "the replica to catch up")
    assert_same(mc, rc)
    again = rc.call("REPLICAOF", "127.0.0.1", str(master.port))
    assert again.to_py() == b"OK Already connected to specified master"
    assert rc.call("REPLICAOF", "NO", "ONE").to_py() == b"OK"
    assert info(rc)["role"] == "master"
    assert rc.call("SET", "after", "promotion").to_py() == b"OK"
    assert rc.call("GET", "k0").to_py() == mc.call("GET", "k0").to_py()


def test_replica_output_limit_disconnects_then_resyncs(make_server):
    import os
    import signal

    master = make_server("cinnabar", [("client-output-buffer-limit", ["replica", "256kb", "0", "0"])])
    mc = master.conn()
    populate(mc, 300)
    replica = make_server("redis", [("replicaof", ["127.0.0.1", str(master.port)])])
    rc = replica.conn()
    wait_for(caught_up(mc, rc), 20, "the redis-server replica to sync")
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        big = "x" * 100_000
        # far more than the hard limit plus what the kernel socket buffers absorb (and than
        # the 1mb backlog): the master drops the link
        for chunk in range(16):
            pipeline(mc, [("SET", f"big-{chunk}-{i}", big) for i in range(20)])
        wait_for(lambda: info(mc)["connected_slaves"] == "0", 10, "the master to drop the stalled replica")
    finally:
        os.kill(replica.pid, signal.SIGCONT)
    wait_for(caught_up(mc, rc), 20, "the replica to resynchronise")
    assert assert_same(mc, rc) > 500
    assert info(mc, "stats")["sync_full"] == "2"


def test_blocking_pops_and_expiry_replicate_to_redis(make_server):
    master = make_server("cinnabar")
    mc = master.conn()
    replica = make_server("redis", [("replicaof", ["127.0.0.1", str(master.port)])])
    rc = replica.conn()
    wait_for(caught_up(mc, rc), 20, "the redis-server replica to sync")
    c2 = master.conn()
    c2.send_command("BLPOP", "bl", "10")
    wait_for(lambda: "blocked_clients:1" in mc.call("INFO", "clients").to_py().decode(), 10, "BLPOP to block")
    pipeline(mc, [("RPUSH", "bl", "a", "b", "c")])
    assert c2.read_reply().to_py() == [b"bl", b"a"]
    c2.send_command("BZPOPMIN", "bz", "10")
    wait_for(lambda: "blocked_clients:1" in mc.call("INFO", "clients").to_py().decode(), 10, "BZPOPMIN to block")
    pipeline(mc, [("ZADD", "bz", "1", "x", "2", "y")])
    assert c2.read_reply().to_py() == [b"bz", b"x", b"1"]
    c2.send_command("BLMOVE", "src", "dst", "LEFT", "RIGHT", "10")
    wait_for(lambda: "blocked_clients:1" in mc.call("INFO", "clients").to_py().decode(), 10, "BLMOVE to block")
    pipeline(mc, [("RPUSH", "src", "q", "r")])
    assert c2.read_reply().to_py() == b"q"
    assert c2.call("BLMPOP", "1", "2", "nothing", "bl", "RIGHT", "COUNT", "5").to_py() == [b"bl", [b"c", b"b"]]
    assert c2.call("BRPOPLPUSH", "src", "dst", "1").to_py() == b"r"
    # lazy expiry on the master is propagated as DEL (the replica never expires by itself)
    pipeline(mc, [("SET", "lazy", "v", "PX", "30"), ("SET", "keep", "v")])
    wait_for(lambda: mc.call("GET", "lazy").to_py() is None, 10, "the key to expire on the master")
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    wait_for(caught_up(mc, rc), 10, "the replica to catch up")
    assert rc.call("DBSIZE").to_py() == mc.call("DBSIZE").to_py()
    assert_same(mc, rc)
    # FLUSHALL reaches the replica too
    assert mc.call("FLUSHALL").to_py() == b"OK"
    pipeline(mc, [("SET", "after-flush", "1")])
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    wait_for(caught_up(mc, rc), 10, "the replica to catch up after FLUSHALL")
    assert rc.call("DBSIZE").to_py() == 1
    assert_same(mc, rc)


@pytest.mark.parametrize("replica_kind", ["cinnabar", "redis"])
def test_full_sync_while_the_master_takes_writes(make_server, replica_kind):
    """Writes during a streamed ($EOF:) full sync: the command stream must start only after
    the replica's first ACK (else the EOF mark is not the last thing it reads and the sync
    never completes), and the replica ends identical to the master."""
    import threading

    master = make_server("cinnabar")
    mc = master.conn()
    pipeline(mc, [("SET", f"pre{i}", "x" * 16) for i in range(20000)])
    stop = threading.Event()
    written = []

    def writer():
        c = master.conn()
        i = 0
        while not stop.is_set():
            pipeline(c, [("SET", f"during{i + j}", str(i + j)) for j in range(20)] + [("INCR", "counter")])
            i += 20
            written.append(i)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        replica = make_server(replica_kind, [("replicaof", ["127.0.0.1", str(master.port)])])
        rc = replica.conn()
        wait_for(link_up(rc), 30, "the replica's link to come up while the master takes writes")
        wait_for(lambda: len(written) > 10, 10, "writes after the sync")
    finally:
        stop.set()
        t.join(10)
    wait_for(caught_up(mc, rc), 20, "the replica to catch up with the writes made during the sync")
    assert rc.call("DBSIZE").to_py() == mc.call("DBSIZE").to_py()
    assert rc.call("GET", "counter").to_py() == mc.call("GET", "counter").to_py()
    assert_same(mc, rc)


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_replica_serve_stale_data_no(make_server, kind):
    """A replica whose master link is down, with replica-serve-stale-data no, answers only
    the commands flagged `stale` (INFO, REPLICAOF, ...) and -MASTERDOWN otherwise; a write
    gets READONLY first, as Redis checks that before."""
    from lib.ports import free_port

    dead = free_port()
    # (set at run time: the harness's readiness PING would get -MASTERDOWN itself)
    r = make_server(kind, [("replicaof", ["127.0.0.1", str(dead)])])
    c = r.conn()
    assert c.call("CONFIG", "SET", "replica-serve-stale-data", "no").raw == b"+OK\r\n"
    assert info(c)["master_link_status"] == "down"
    for cmd in (("GET", "k"), ("PING",), ("DBSIZE",)):
        got = c.call(*cmd).raw
        assert got == b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n", (cmd, got)
    assert c.call("SET", "k", "v").raw.startswith(b"-READONLY"), "READONLY is checked before MASTERDOWN"
    assert c.call("CONFIG", "SET", "replica-serve-stale-data", "yes").raw == b"+OK\r\n"
    assert c.call("GET", "k").to_py() is None


def ten_thousand_writes(conn):
    """10,000 writes over every type (strings, counters, lists, hashes, sets, sorted sets,
    TTLs, deletes), pipelined in batches."""
    cmds = []
    for i in range(10_000):
        k = f"w{i % 1500}"
        op = i % 10
        if op == 0:
            cmds.append(("SET", f"s{k}", f"v{i}"))
        elif op == 1:
            cmds.append(("INCRBY", f"n{k}", str(i)))
        elif op == 2:
            cmds.append(("RPUSH", f"l{k}", f"e{i}", str(i)))
        elif op == 3:
            cmds.append(("HSET", f"h{k}", f"f{i % 7}", f"x{i}"))
        elif op == 4:
            cmds.append(("SADD", f"t{k}", str(i % 50), f"m{i % 13}"))
        elif op == 5:
            cmds.append(("ZADD", f"z{k}", str(i * 0.5), f"z{i % 17}"))
        elif op == 6:
            cmds.append(("EXPIRE", f"s{k}", str(1000 + i)))
        elif op == 7:
            cmds.append(("LPOP", f"l{k}"))
        elif op == 8:
            cmds.append(("DEL", f"n{k}"))
        else:
            cmds.append(("SREM", f"t{k}", str(i % 50)))
        if len(cmds) == 500:
            pipeline(conn, cmds)
            cmds = []
    if cmds:
        pipeline(conn, cmds)


@pytest.mark.parametrize("master_kind,replica_kind", [("redis", "cinnabar"), ("cinnabar", "redis")])
def test_ten_thousand_streamed_writes_of_every_type(make_server, master_kind, replica_kind):
    """Issue 5 done-when 2: full sync, then 10,000 more writes of every type streamed; the
    datasets are identical key by key (type, value, TTL)."""
    extra = [("repl-diskless-sync-delay", ["0"])] if master_kind == "redis" else []
    master = make_server(master_kind, extra)
    mc = master.conn()
    populate(mc)
    replica = make_server(replica_kind, [("replicaof", ["127.0.0.1", str(master.port)])])
    rc = replica.conn()
    wait_for(link_up(rc), 30, "the replica's link to come up")
    ten_thousand_writes(mc)
    wait_for(caught_up(mc, rc), 30, "the replica to apply the 10,000 streamed writes")
    assert assert_same(mc, rc) > NKEYS


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_min_replicas_to_write(make_server, kind):
    """min-replicas-to-write / min-replicas-max-lag: a master without enough replicas that
    acknowledged within the lag refuses writes with -NOREPLICAS (EXEC of a writing
    transaction with EXECABORT), reads still work; INFO shows min_slaves_good_slaves. A
    replica that stops acknowledging (SIGSTOP) stops counting after the lag."""
    import os
    import signal

    noreplicas = b"-NOREPLICAS Not enough good replicas to write.\r\n"
    master = make_server(kind)
    mc, other = master.conn(), master.conn()
    assert mc.call("SET", "k", "before").raw == b"+OK\r\n"
    assert "min_slaves_good_slaves" not in info(mc)
    assert mc.call("CONFIG", "SET", "min-replicas-to-write", "1").raw == b"+OK\r\n"
    assert info(mc)["min_slaves_good_slaves"] == "0"
    assert mc.call("SET", "k", "v").raw == noreplicas
    assert mc.call("DEL", "k").raw == noreplicas
    assert mc.call("GET", "k").raw == b"$6\r\nbefore\r\n"
    # A write queued while refused flags the transaction.
    assert mc.call("MULTI").raw == b"+OK\r\n"
    assert mc.call("INCR", "n").raw == noreplicas
    assert mc.call("EXEC").raw == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    # Refused at EXEC time: the transaction is discarded with the reason.
    assert mc.call("CONFIG", "SET", "min-replicas-to-write", "0").raw == b"+OK\r\n"
    assert mc.call("MULTI").raw == b"+OK\r\n"
    assert mc.call("INCR", "n").raw == b"+QUEUED\r\n"
    assert other.call("CONFIG", "SET", "min-slaves-to-write", "1").raw == b"+OK\r\n"
    assert mc.call("EXEC").raw == (
        b"-EXECABORT Transaction discarded because of: NOREPLICAS Not enough good replicas to write.\r\n")
    assert mc.call("EXEC").raw == b"-ERR EXEC without MULTI\r\n"
    # A read-only transaction still runs.
    assert mc.call("MULTI").raw == b"+OK\r\n"
    assert mc.call("GET", "k").raw == b"+QUEUED\r\n"
    assert mc.call("EXEC").raw == b"*1\r\n$6\r\nbefore\r\n"
    # max-lag 0 disables the check.
    assert mc.call("CONFIG", "SET", "min-replicas-max-lag", "0").raw == b"+OK\r\n"
    assert mc.call("SET", "k", "lag0").raw == b"+OK\r\n"
    assert "min_slaves_good_slaves" not in info(mc)
    assert mc.call("CONFIG", "SET", "min-replicas-max-lag", "2").raw == b"+OK\r\n"
    got = mc.call("CONFIG", "GET", "min-slaves-*").to_py()
    assert dict(zip(got[::2], got[1::2])) == {b"min-slaves-max-lag": b"2", b"min-slaves-to-write": b"1"}
    # One replica that acknowledges: writes are accepted again.
    replica = make_server(kind)
    rc = replica.conn()
    assert rc.call("REPLICAOF", "127.0.0.1", str(master.port)).raw == b"+OK\r\n"
    wait_for(lambda: info(mc).get("min_slaves_good_slaves") == "1", 20, "one good replica")
    assert mc.call("SET", "k", "after").raw == b"+OK\r\n"
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    assert rc.call("GET", "k").raw == b"$5\r\nafter\r\n"
    # The replica stops acknowledging: after the lag it no longer counts.
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: info(mc).get("min_slaves_good_slaves") == "0", 30, "the stopped replica to stop counting")
        assert mc.call("SET", "k", "late").raw == noreplicas
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    wait_for(lambda: info(mc).get("min_slaves_good_slaves") == "1", 30, "the replica to count again")
    assert mc.call("SET", "k", "again").raw == b"+OK\r\n"


@pytest.mark.parametrize("master_kind,replica_kind", [("cinnabar", "cinnabar"), ("redis", "cinnabar"), ("cinnabar", "redis")])
def test_replica_announce_ip_and_port(make_server, master_kind, replica_kind):
    """replica-announce-ip / -port: the master lists the announced address (INFO, ROLE)."""
    master = make_server(master_kind)
    replica = make_server(replica_kind, [("replica-announce-ip", ["10.9.8.7"]), ("replica-announce-port", ["4444"])])
    mc, rc = master.conn(), replica.conn()
    assert rc.call("CONFIG", "GET", "slave-announce-ip").to_py() == [b"slave-announce-ip", b"10.9.8.7"]
    assert rc.call("REPLICAOF", "127.0.0.1", str(master.port)).raw == b"+OK\r\n"
    wait_for(link_up(rc), 20, "the link to come up")
    wait_for(lambda: "state=online" in info(mc).get("slave0", ""), 20, "the replica online")
    slave0 = info(mc)["slave0"]
    assert slave0.startswith("ip=10.9.8.7,port=4444,state=online,"), slave0
    role = mc.call("ROLE").to_py()
    assert role[2][0][:2] == [b"10.9.8.7", b"4444"], role


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_wait_uses_the_clients_own_offset(make_server, kind):
    """WAIT waits for the master offset as of the calling client's previous command (Redis
    7.0's c->woff): while the only replica is stopped, a client that wrote times out with 0,
    a client that has run nothing yet gets 1 at once."""
    import os
    import signal

    master = make_server(kind)
    replica = make_server(kind)
    writer, reader = master.conn(), master.conn()
    rc = replica.conn()
    assert rc.call("REPLICAOF", "127.0.0.1", str(master.port)).raw == b"+OK\r\n"
    wait_for(lambda: "state=online" in info(writer).get("slave0", ""), 20, "the replica online")
    assert writer.call("SET", "a", "1").raw == b"+OK\r\n"
    assert writer.call("WAIT", "1", "5000").raw == b":1\r\n"
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        assert writer.call("SET", "a", "2").raw == b"+OK\r\n"
        assert reader.call("WAIT", "1", "0", timeout=10).raw == b":1\r\n"
        assert writer.call("WAIT", "1", "200", timeout=10).raw == b":0\r\n"
        # Any command, a read too, moves the client's offset to the master's (7.0's
        # processCommand): now the reader waits for the SET it has seen.
        assert reader.call("GET", "a").raw == b"$1\r\n2\r\n"
        assert reader.call("WAIT", "1", "200", timeout=10).raw == b":0\r\n"
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    assert writer.call("WAIT", "1", "10000", timeout=20).raw == b":1\r\n"


@pytest.mark.parametrize("master_kind,replica_kind", [("cinnabar", "cinnabar"), ("redis", "cinnabar"), ("cinnabar", "redis")])
def test_evictions_replicate_as_dels(make_server, master_kind, replica_kind):
    """A master over its maxmemory evicts keys and streams a DEL for each; its replica does
    not evict by itself (replica-ignore-maxmemory yes) and ends with the master's keys."""
    master = make_server(master_kind, [("repl-diskless-sync-delay", ["0"])])
    mc = master.conn()
    replica = make_server(replica_kind, [("replicaof", ["127.0.0.1", str(master.port)])])
    rc = replica.conn()
    wait_for(link_up(rc), 20, "the replica's link to come up")
    value = "x" * 1000
    pipeline(mc, [("SET", f"a:{i}", value) for i in range(1000)])
    # Measure once the replica has drained its stream: queued frames are memory that goes.
    wait_for(caught_up(mc, rc), 20, "the replica to take the first writes")
    used = int(info(mc, "memory")["used_memory"])
    assert mc.call("CONFIG", "SET", "maxmemory-policy", "allkeys-random").raw == b"+OK\r\n"
    assert mc.call("CONFIG", "SET", "maxmemory", str(used + 200_000)).raw == b"+OK\r\n"
    for i in range(1500):  # ~1.5 MB over a 200 KB margin
        assert mc.call("SET", f"b:{i}", value).raw == b"+OK\r\n"
    # Lift the limit first: a master still over it keeps evicting from its cron.
    assert mc.call("CONFIG", "SET", "maxmemory", "0").raw == b"+OK\r\n"
    assert int(info(mc, "stats")["evicted_keys"]) >= 100
    wait_for(caught_up(mc, rc), 20, "the replica to apply the evictions")
    assert int(info(rc, "stats")["evicted_keys"]) == 0
    assert sorted(mc.call("KEYS", "*").to_py()) == sorted(rc.call("KEYS", "*").to_py())


SYNC_FIELDS = ["master_sync_total_bytes", "master_sync_read_bytes", "master_sync_left_bytes",
               "master_sync_perc", "master_sync_last_io_seconds_ago"]


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_info_shows_the_full_sync_transfer(make_server, kind):
    """While a replica receives its master's RDB, INFO replication shows the transfer
    (master_sync_* fields, in Redis's order, after slave_repl_offset); a streamed (`$EOF:`)
    transfer has no announced size, so the total is 0 as in Redis."""
    master = make_server(kind, [("repl-diskless-sync-delay", ["0"]), ("rdb-key-save-delay", ["2000"])])
    mc = master.conn()
    # ~4 s of transfer, and ~250 KB: several chunks arrive while it lasts (Cinnabar sends
    # 64 KB chunks, Redis 16 KB), so some bytes are read before the end.
    import os
    pipeline(mc, [("SET", f"k{i}", os.urandom(60).hex()) for i in range(2000)])
    replica = make_server(kind, [("replicaof", ["127.0.0.1", str(master.port)])])
    rc = replica.conn()
    seen = {}

    def streaming():
        # Before the `$EOF:` header arrives the size is still unknown (-1 in both servers).
        text = rc.call("INFO", "replication").to_py().decode()
        if "master_sync_total_bytes:0\r\n" not in text or "master_sync_read_bytes:0\r\n" in text:
            return False
        seen["text"] = text
        return True

    wait_for(streaming, 20, "the replica to report its transfer")
    text = seen["text"]
    names = [ln.split(":", 1)[0] for ln in text.splitlines() if ":" in ln]
    i = names.index("slave_repl_offset")
    assert names[i + 1:i + 6] == SYNC_FIELDS, names
    f = dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln)
    assert f["master_sync_in_progress"] == "1"
    assert f["master_sync_total_bytes"] == "0"  # diskless: streamed with an EOF mark
    read = int(f["master_sync_read_bytes"])
    assert read > 0 and int(f["master_sync_left_bytes"]) == -read
    assert f["master_sync_perc"] == "0.00"
    assert mc.call("CONFIG", "SET", "rdb-key-save-delay", "0").raw == b"+OK\r\n"
    wait_for(link_up(rc), 60, "the sync to finish")
    text = rc.call("INFO", "replication").to_py().decode()
    assert "master_sync_total_bytes" not in text and "master_sync_in_progress:0" in text
    assert rc.call("DBSIZE").to_py() == 2000


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_client_list_and_kill_by_type(make_server, kind):
    """The replica lists its master link (flags=M, user (superuser), type master) and counts
    it in connected_clients; CLIENT KILL TYPE MASTER drops it and the replica reconnects with
    a partial resync. CLIENT KILL filters by TYPE and USER as Redis 7.0 does."""
    master = make_server(kind, [("repl-diskless-sync-delay", ["0"])])
    mc = master.conn()
    replica = make_server(kind, [("replicaof", ["127.0.0.1", str(master.port)])])
    rc = replica.conn()
    wait_for(link_up(rc), 20, "the replica's link to come up")
    lines = rc.call("CLIENT", "LIST", "TYPE", "master").to_py().decode().splitlines()
    assert len(lines) == 1, lines
    f = dict(kv.split("=", 1) for kv in lines[0].split(" "))
    assert f["flags"] == "M" and f["user"] == "(superuser)" and f["addr"] == f"127.0.0.1:{master.port}", f
    assert int(info(rc, "clients")["connected_clients"]) == 2  # the master link and us
    assert rc.call("CLIENT", "LIST", "TYPE", "replica").to_py() == b""
    assert mc.call("CLIENT", "LIST", "TYPE", "replica").to_py().decode().count("flags=S") == 1
    me = rc.call("CLIENT", "LIST", "TYPE", "normal").to_py().decode()
    assert me.count("\n") == 1 and "flags=N" in me
    # Filters that match nothing kill nothing.
    assert rc.call_raw("CLIENT", "KILL", "TYPE", "pubsub") == b":0\r\n"
    assert rc.call_raw("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes") == b":0\r\n"
    assert rc.call_raw("CLIENT", "KILL", "USER", "default", "SKIPME", "yes") == b":0\r\n"
    assert rc.call_raw("CLIENT", "KILL", "TYPE", "foo") == b"-ERR Unknown client type 'foo'\r\n"
    assert rc.call_raw("CLIENT", "KILL", "USER", "bob") == b"-ERR No such user 'bob'\r\n"
    assert rc.call_raw("CLIENT", "KILL", "MAXAGE", "5") == b"-ERR syntax error\r\n"  # 7.2+
    assert rc.call_raw("CLIENT", "LIST", "TYPE", "foo") == b"-ERR Unknown client type 'foo'\r\n"
    partial = int(info(mc, "stats")["sync_partial_ok"])
    assert rc.call_raw("CLIENT", "KILL", "TYPE", "master") == b":1\r\n"
    wait_for(lambda: int(info(mc, "stats")["sync_partial_ok"]) > partial, 20, "the partial resync")
    wait_for(link_up(rc), 20, "the link to come back")
    assert mc.call("SET", "after", "kill").raw == b"+OK\r\n"
    wait_for(caught_up(mc, rc), 10, "the replica to catch up")
    assert rc.call("GET", "after").to_py() == b"kill"
