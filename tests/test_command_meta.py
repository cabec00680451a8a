# tests/test_command_meta.py — owned by the COMMAND metadata work
# (crates/cinnabar-server/src/cmd/command_meta.rs, tools/gen_command_meta.py).
#
# Differential tests of COMMAND / COMMAND INFO / COMMAND DOCS / COMMAND COUNT /
# COMMAND LIST / COMMAND GETKEYS(ANDFLAGS) against redis-server 7.0, in RESP2
# and RESP3, for every command Cinnabar implements (the commands in its
# COMMAND LIST). Replies are compared byte for byte, with two normalisations:
#   * subcommand order: Redis lists subcommands in (per-process random) hash
#     order, so subcommand entries are compared as a set, and Redis's entries
#     for subcommands Cinnabar does not implement are dropped;
#   * COMMAND DOCS `summary`: Cinnabar writes its own summaries, so only the
#     type (bulk string) of that value is compared.

from __future__ import annotations

import pytest

from lib.resp import Reply

# Commands Redis implements as containers that Cinnabar serves as one table row (the handler
# parses the subcommand): COMMAND INFO cannot list their subcommands until they get rows.
KNOWN_FLAT_CONTAINERS = {"cluster": "CLUSTER subcommands are parsed by one handler, no table rows"}


def _hello(c, proto):
    if proto == 3:
        r = c.call("HELLO", "3")
        assert not r.is_error, r


@pytest.fixture
def conns(pair, request):
    redis, cinnabar = pair
    rc, cc = redis.conn(timeout=30), cinnabar.conn(timeout=30)
    return rc, cc


def _our_commands(cc) -> tuple[list[str], dict[str, list[str]]]:
    names = [n.decode() for n in cc.call("COMMAND", "LIST").to_py()]
    top = [n for n in names if "|" not in n]
    subs: dict[str, list[str]] = {t: [] for t in top}
    for n in names:
        if "|" in n:
            subs[n.split("|")[0]].append(n)
    return top, subs


def _canon(r: Reply, ours: set[str] | None, docs: bool = False):
    """A comparable form of a reply: leaves are their raw bytes; aggregates keep their type byte
    and (normalised) children."""
    if not r.is_aggregate or r.value is None:
        return r.raw
    kids = r.value
    if r.type == "%" or (docs and r.type == "*" and _looks_like_docs_map(kids)):
        pairs = [(kids[i], kids[i + 1]) for i in range(0, len(kids), 2)]
        out = []
        for k, v in pairs:
            if docs and k.raw.endswith(b"\r\nsummary\r\n"):
                out.append((k.raw, ("summary", v.type)))
            elif docs and k.raw.endswith(b"\r\nsubcommands\r\n"):
                if ours is not None and not ours and _is_flat_container(kids):
                    continue
                out.append((k.raw, _canon_subdocs(v, ours)))
            else:
                out.append((k.raw, _canon(v, ours, docs)))
        return (r.type, tuple(out))
    return (r.type, tuple(_canon(c, ours, docs) for c in kids))


def _is_flat_container(docs_kids) -> bool:
    # The docs of a command in KNOWN_FLAT_CONTAINERS (its "group" is its name for cluster).
    vals = {docs_kids[i].raw: docs_kids[i + 1].raw for i in range(0, len(docs_kids) - 1, 2)}
    return any(vals.get(b"$5\r\ngroup\r\n") == b"$%d\r\n%s\r\n" % (len(n), n.encode())
               for n in KNOWN_FLAT_CONTAINERS)


def _looks_like_docs_map(kids) -> bool:
    # A RESP2 docs map is a flat array whose first key is "summary".
    return len(kids) >= 2 and len(kids) % 2 == 0 and kids[0].raw == b"$7\r\nsummary\r\n"


def _canon_subdocs(v: Reply, ours):
    kids = v.value
    pairs = [(kids[i], kids[i + 1]) for i in range(0, len(kids), 2)]
    keep = sorted(
        (k.raw, _canon(x, ours, True)) for k, x in pairs if ours is None or k.to_py().decode() in ours
    )
    return (v.type, "subcommands", tuple(keep))


def _canon_info(r: Reply, ours: set[str] | None):
    """COMMAND INFO entry: the 10th element (subcommands) compared as a filtered set."""
    assert r.type == "*" and len(r.value) == 10, r.raw[:200]
    head = tuple(_canon(c, ours) for c in r.value[:9])
    if r.value[0].to_py().decode() in KNOWN_FLAT_CONTAINERS:
        return (head, "known flat container")
    subs = r.value[9]
    entries = sorted(
        _canon_info(s, None)
        for s in subs.value
        if ours is None or s.value[0].to_py().decode() in ours
    )
    return (head, subs.type, tuple(entries))


@pytest.mark.parametrize("proto", [2, 3])
def test_command_info_each(conns, proto):
    rc, cc = conns
    _hello(rc, proto)
    _hello(cc, proto)
    top, subs = _our_commands(cc)
    assert top, "COMMAND LIST is empty"
    bad = []
    for name in top:
        ours = set(subs[name])
        a = rc.call("COMMAND", "INFO", name)
        b = cc.call("COMMAND", "INFO", name)
        if a.raw == b.raw:
            continue
        if a.value and a.value[0].value is None:
            bad.append(f"{name}: not a redis command")
            continue
        redis_container = len(a.value[0].value[9].value) > 0
        if (not ours and not redis_container) or _canon_info(a.value[0], ours) != _canon_info(
            b.value[0], ours
        ):
            bad.append(f"{name}:\n  redis:    {a.raw[:600]!r}\n  cinnabar: {b.raw[:600]!r}")
        for full in sorted(ours):
            a = rc.call_raw("COMMAND", "INFO", full)
            b = cc.call_raw("COMMAND", "INFO", full)
            if a != b:
                bad.append(f"{full}:\n  redis:    {a[:600]!r}\n  cinnabar: {b[:600]!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("proto", [2, 3])
def test_command_docs_each(conns, proto):
    rc, cc = conns
    _hello(rc, proto)
    _hello(cc, proto)
    top, subs = _our_commands(cc)
    bad = []
    for name in top + [s for n in top for s in subs[n]]:
        ours = set(subs.get(name, []))
        a = rc.call("COMMAND", "DOCS", name)
        b = cc.call("COMMAND", "DOCS", name)
        if _canon(a, ours, True) != _canon(b, ours, True):
            bad.append(f"{name}:\n  redis:    {a.raw[:600]!r}\n  cinnabar: {b.raw[:600]!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("proto", [2, 3])
def test_command_all(conns, proto):
    """COMMAND (and COMMAND INFO / COMMAND DOCS without names): our entries are Redis's."""
    rc, cc = conns
    _hello(rc, proto)
    _hello(cc, proto)
    top, subs = _our_commands(cc)
    for args in (["COMMAND"], ["COMMAND", "INFO"]):
        a = {e.value[0].to_py(): e for e in rc.call(*args).value}
        b = {e.value[0].to_py(): e for e in cc.call(*args).value}
        assert sorted(b) == sorted(n.encode() for n in top)
        for name, e in b.items():
            ours = set(subs[name.decode()])
            assert _canon_info(e, ours) == _canon_info(a[name], ours), name
    a, b = rc.call("COMMAND", "DOCS"), cc.call("COMMAND", "DOCS")
    ad = {a.value[i].to_py(): a.value[i + 1] for i in range(0, len(a.value), 2)}
    bd = {b.value[i].to_py(): b.value[i + 1] for i in range(0, len(b.value), 2)}
    assert sorted(bd) == sorted(n.encode() for n in top)
    for name, d in bd.items():
        ours = set(subs[name.decode()])
        assert _canon(d, ours, True) == _canon(ad[name], ours, True), name


def test_command_count_and_list(conns):
    rc, cc = conns
    top, subs = _our_commands(cc)
    assert cc.call("COMMAND", "COUNT").to_py() == len(top)
    redis_names = {n.decode() for n in rc.call("COMMAND", "LIST").to_py()}
    ours = set(top) | {s for n in top for s in subs[n]}
    assert ours <= redis_names, sorted(ours - redis_names)
    for filt in (
        ["ACLCAT", "read"],
        ["ACLCAT", "WRITE"],
        ["ACLCAT", "keyspace"],
        ["ACLCAT", "nosuch"],
        ["PATTERN", "*get*"],
        ["PATTERN", "CONFIG|*"],
        ["PATTERN", "z*"],
        ["MODULE", "foo"],
    ):
        a = {n.decode() for n in rc.call("COMMAND", "LIST", "FILTERBY", *filt).to_py()}
        b = [n.decode() for n in cc.call("COMMAND", "LIST", "FILTERBY", *filt).to_py()]
        assert len(b) == len(set(b))
        assert set(b) == a & ours, filt
    for bad in (
        ["COMMAND", "LIST", "FILTERBY"],
        ["COMMAND", "LIST", "FILTERBY", "PATTERN"],
        ["COMMAND", "LIST", "FILTERBY", "nosuch", "x"],
        ["COMMAND", "LIST", "foo"],
        ["COMMAND", "LIST", "FILTERBY", "PATTERN", "a", "b"],
        ["COMMAND", "COUNT", "x"],
        ["COMMAND", "INFO", "nosuch", "get", "config|nosuch", "get|x", "a|b|c"],
        ["COMMAND", "DOCS", "nosuch"],
    ):
        assert rc.call_raw(*bad) == cc.call_raw(*bad), bad


GETKEYS_LINES = [
    ["get", "k"],
    ["GET", "k"],
    ["set", "k", "v"],
    ["set", "k", "v", "get"],
    ["mset", "a", "1", "b", "2"],
    ["mset", "a", "1", "b"],
    ["del", "a", "b", "c"],
    ["mget", "a"],
    ["rename", "a", "b"],
    ["copy", "a", "b", "db", "1"],
    ["object", "encoding", "k"],
    ["memory", "usage", "k"],
    ["config", "get", "x"],
    ["config", "nosuch"],
    ["ping"],
    ["nosuch", "a"],
    ["lmove", "a", "b", "left", "right"],
    ["blpop", "a", "b", "0"],
    ["sinterstore", "d", "a", "b"],
    ["zunionstore", "d", "2", "a", "b"],
    ["zunionstore", "d", "5", "a", "b"],
    ["zunionstore", "d", "x", "a", "b"],
    ["zinterstore", "d", "1", "a", "weights", "1"],
    ["zrangestore", "d", "s", "0", "1"],
    ["sort", "k", "by", "w*", "store", "d"],
    ["sort_ro", "k", "get", "#"],
    ["bitop", "and", "d", "a", "b"],
    ["bitfield", "k", "get", "u8", "0"],
    ["bitfield", "k", "set", "u8", "0", "1"],
    ["bitfield", "k", "overflow", "wrap", "get", "u8", "0"],
    ["bitfield", "k", "get", "u8"],
    ["bitfield_ro", "k", "get", "u8", "0"],
    ["set", "k", "v", "ex", "10"],
    ["getrange", "k", "0", "1"],
    ["zadd", "z", "1", "m"],
    ["rpoplpush", "a", "b"],
    ["msetnx", "a", "1", "b", "2"],
    ["sintercard", "2", "a", "b"],
    ["zdiffstore", "d", "2", "a", "b"],
    ["zunion", "2", "a", "b"],
    ["blmpop", "0", "2", "a", "b", "left"],
    ["bzmpop", "0", "1", "a", "min"],
    ["pfmerge", "d", "a"],
    ["xreadgroup", "group", "g", "c", "streams", "a", "0"],
    ["lmpop", "2", "a", "b", "left"],
    ["zmpop", "1", "a", "min"],
    ["smove", "a", "b", "m"],
    ["hset", "h", "f", "v"],
    ["georadius", "k", "0", "0", "1", "km", "store", "d"],
    ["xread", "streams", "a", "b", "0", "0"],
    ["eval", "return 1", "0"],
    ["eval", "return 1", "2", "a", "b"],
    ["publish", "c", "m"],
    ["subscribe", "c"],
    ["watch", "a", "b"],
    ["exists", "a"],
    ["getex", "k", "persist"],
    ["lcs", "a", "b"],
    ["expire", "k", "10"],
    ["touch", "a", "b"],
]


@pytest.mark.parametrize("proto", [2, 3])
@pytest.mark.parametrize("sub", ["GETKEYS", "GETKEYSANDFLAGS"])
def test_command_getkeys(conns, proto, sub):
    rc, cc = conns
    _hello(rc, proto)
    _hello(cc, proto)
    if cc.call("COMMAND", "INFO", f"command|{sub}").value[0].value is None:
        pytest.skip(f"COMMAND {sub} is not in our table")
    top, _ = _our_commands(cc)
    ours = set(top)
    bad = []
    for line in GETKEYS_LINES + [["get"], []]:
        if line and line[0].lower() not in ours and line[0] != "nosuch":
            continue
        a = rc.call_raw("COMMAND", sub, *line)
        b = cc.call_raw("COMMAND", sub, *line)
        if a != b:
            bad.append(f"{line}:\n  redis:    {a!r}\n  cinnabar: {b!r}")
    assert not bad, "\n".join(bad)




def test_containers_have_subcommand_rows(conns):
    rc, cc = conns
    top, subs = _our_commands(cc)
    flat = []
    for name in top:
        a = rc.call("COMMAND", "INFO", name).value[0]
        if a.value is not None and a.value[9].value and not subs[name]:
            flat.append(name)
    unexpected = sorted(set(flat) - set(KNOWN_FLAT_CONTAINERS))
    assert not unexpected, f"containers without subcommand rows: {unexpected}"
