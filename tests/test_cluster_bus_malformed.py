# tests/test_cluster_bus_malformed.py — malformed traffic on the cluster bus port (port+10000):
# garbage, bad signatures, short and huge totlen, unknown versions and types, truncated gossip.
# The node must drop the message or close the link — never crash, hang or stop serving — and
# its bus must still work afterwards (a real MEET from a second node succeeds).

from __future__ import annotations

import os
import socket
import struct

import pytest

from lib.wait import wait_for

BUS_OFFSET = 10000
HEADER_LEN = 2256


def header(totlen: int, ver: int = 1, msg_type: int = 0, count: int = 0, sig: bytes = b"RCmb") -> bytes:
    h = bytearray(HEADER_LEN)
    h[0:4] = sig
    struct.pack_into(">IHHHH", h, 4, totlen & 0xFFFFFFFF, ver, 7000, msg_type, count)
    h[40:80] = b"f" * 40  # sender name
    return bytes(h)


CASES = {
    "garbage": os.urandom(4096),
    "bad_signature": header(HEADER_LEN, sig=b"XXXX"),
    "short_totlen": header(8),
    "huge_totlen": header(0xFFFFFFF0)[:64],
    "unknown_version": header(HEADER_LEN, ver=99),
    "unknown_type": header(HEADER_LEN, msg_type=250),
    "truncated_gossip": header(HEADER_LEN + 104 * 3, count=3) + b"\x00" * 50,
    "gossip_count_lies": header(HEADER_LEN, count=1000),
    "update_too_short": header(HEADER_LEN + 10, msg_type=7) + b"\x00" * 10,
    "zero_bytes": b"\x00" * 10000,
}


def send_and_close(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(2)
            while s.recv(65536):
                pass
        except OSError:
            pass  # the node may reset the link: that is an allowed answer


def cluster_info(node) -> str:
    with node.conn() as c:
        v = c.call("CLUSTER", "INFO").to_py()
    return v.decode() if isinstance(v, bytes) else str(v)


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_bus_traffic_is_survived(make_server, case):
    node = make_server("cinnabar", cluster=True)
    bus = node.port + BUS_OFFSET
    for _ in range(3):
        send_and_close(bus, CASES[case])
    assert node.alive(), f"{case}: node died"
    assert node.ping_ok(), f"{case}: node stopped answering"
    assert "cluster_state:ok" in cluster_info(node)
    # The bus still works: a second node joins through a normal MEET.
    other = make_server("cinnabar", directives=[("cluster-enabled", ["yes"]), ("cluster-config-file", ["nodes.conf"]),
                                                ("cluster-node-timeout", ["5000"])])
    with other.conn() as c:
        assert c.call_raw("CLUSTER", "MEET", "127.0.0.1", str(node.port)) == b"+OK\r\n"
    wait_for(lambda: "cluster_known_nodes:2" in cluster_info(node), 20, f"{case}: MEET after malformed traffic")
    assert node.alive()
