# tests/test_config.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Startup / configuration: the server is started like redis-server, from a
# config file or from `--directive value` arguments; the walkthrough's cluster
# node config (seed/redis-cluster-docker-walkthrough.md) is accepted; bad
# directives make the server exit non-zero. Replies are compared with the
# oracle where they are deterministic.

from __future__ import annotations

import subprocess

import pytest

from lib.ports import free_port
from lib.resp import RespConnection


@pytest.mark.parametrize("via", ["file", "args"])
def test_start_via_file_or_args(make_server, via):
    replies = []
    for kind in ("redis", "cinnabar"):
        s = make_server(kind, [("maxmemory", "12mb"), ("timeout", "7"), ("databases", "4")], via=via)
        with s.conn() as c:
            replies.append([
                c.call_raw("CONFIG", "GET", "maxmemory"),
                c.call_raw("CONFIG", "GET", "timeout"),
                c.call_raw("CONFIG", "GET", "databases"),
                c.call_raw("SELECT", "3"),
                c.call_raw("SELECT", "4"),
                c.call_raw("CONFIG", "GET", "port"),
            ])
            assert replies[-1][-1] == b"*2\r\n$4\r\nport\r\n$%d\r\n%d\r\n" % (len(str(s.port)), s.port)
            replies[-1].pop()
    assert replies[1] == replies[0]


def test_walkthrough_node_config(make_server):
    """The per-node redis.conf of the user's walkthrough (cluster-enabled,
    cluster-config-file, cluster-node-timeout, appendonly yes)."""
    replies = []
    for kind in ("redis", "cinnabar"):
        s = make_server(
            kind,
            [
                ("cluster-enabled", "yes"),
                ("cluster-config-file", "nodes-8001.conf"),
                ("cluster-node-timeout", "5000"),
                ("appendonly", "yes"),
            ],
        )
        with s.conn() as c:
            replies.append([
                c.call_raw("CONFIG", "GET", "cluster-enabled"),
                c.call_raw("CONFIG", "GET", "cluster-node-timeout"),
                c.call_raw("CONFIG", "GET", "appendonly"),
                c.call_raw("CONFIG", "GET", "cluster-config-file"),
                # no slots assigned yet: the cluster is down
                c.call_raw("SET", "foo", "bar"),
                c.call_raw("GET", "foo"),
                c.call_raw("CLUSTER", "KEYSLOT", "foo"),
                c.call_raw("CLUSTER", "COUNTKEYSINSLOT", "12182"),
            ])
            info = c.call("CLUSTER", "INFO").value
            assert b"cluster_state:fail" in info
            assert b"cluster_slots_assigned:0" in info
        assert (s.dir / "nodes-8001.conf").exists(), "cluster-config-file not written in dir"
    assert replies[1] == replies[0]


@pytest.mark.parametrize(
    "directives",
    [
        [("no-such-directive", "1")],
        [("port", "notanumber")],
        [("maxmemory", "lots")],
        [("cluster-enabled", "maybe")],
        [("databases", "0")],
    ],
    ids=["unknown", "bad_port", "bad_maxmemory", "bad_bool", "zero_databases"],
)
@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_bad_config_exits_nonzero(tmp_path, directives, kind):
    from conftest import binaries

    conf = tmp_path / "bad.conf"
    port = free_port()
    lines = [f"port {port}", "bind 127.0.0.1", f'dir "{tmp_path}"', 'save ""']
    lines += [" ".join([n, v]) for n, v in directives]
    conf.write_text("\n".join(lines) + "\n")
    p = subprocess.Popen([binaries()[kind], str(conf)], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        import os
        import signal

        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        pytest.fail(f"{kind} kept running with a bad config {directives}")
    assert p.returncode != 0, out.decode(errors="replace")
    with pytest.raises(OSError):
        RespConnection("127.0.0.1", port, connect_timeout=1).close()


def test_shutdown_nosave_exits(make_server):
    for kind in ("redis", "cinnabar"):
        s = make_server(kind)
        with s.conn() as c:
            c.send_command("SHUTDOWN", "NOSAVE")
            assert c.read_raw() in (b"<EOF>",), kind
        assert s.proc.wait(timeout=20) == 0, f"{kind} exit status after SHUTDOWN NOSAVE"
