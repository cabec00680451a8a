# tests/lib/ports.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Free-port picking. Ports come from a fixed window (12000-15999) whose
# cluster-bus companions (port + 10000: 22000-25999) are also below Linux's
# ephemeral range, so outgoing connections never steal them. Both the port
# and its bus port must be bindable. Port 6379 (and anything near the Debian
# service's port) is never handed out, and a port is handed out at most once
# per test process. Cross-process races are handled by the caller retrying
# with a fresh port when a server fails to bind (see server.Server.start).

from __future__ import annotations

import os
import random
import socket

PORT_MIN = 12000
PORT_MAX = 15999
BUS_OFFSET = 10000
FORBIDDEN = {6379, 16379, 6380, 16380}

_handed_out: set[int] = set()
_rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little"))


def _bindable(port: int) -> bool:
    for family, addr in ((socket.AF_INET, "127.0.0.1"),):
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    # Also make sure nothing listens on the wildcard address for that port.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
    except OSError:
        return False
    finally:
        s.close()
    return True


def free_port(with_bus: bool = True) -> int:
    """A port (and port+10000 when with_bus) that is currently free."""
    for _ in range(2000):
        port = _rng.randint(PORT_MIN, PORT_MAX)
        if port in _handed_out or port in FORBIDDEN:
            continue
        if not _bindable(port):
            continue
        if with_bus and not _bindable(port + BUS_OFFSET):
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found in the test window")
