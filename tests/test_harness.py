# tests/test_harness.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Self-tests of the harness itself (no server needed): the RESP2/RESP3 reply
# parser, redis-cli style argument splitting, transcript parsing and the
# comparison rules. If these fail, every differential result is suspect.

from __future__ import annotations

import pytest

from lib.resp import Incomplete, ProtocolViolation, encode_command, parse_all, parse_reply
from lib.transcript import TranscriptError, compare, parse_transcript, split_args

COMPLETE = [
    b"+OK\r\n",
    b"-ERR wrong number of arguments for 'get' command\r\n",
    b":-42\r\n",
    b"$0\r\n\r\n",
    b"$-1\r\n",
    b"$5\r\na\r\nbc\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"*3\r\n:1\r\n$-1\r\n*2\r\n+a\r\n*-1\r\n",
    b"_\r\n",
    b",3.14\r\n",
    b",inf\r\n",
    b",-nan\r\n",
    b"#t\r\n",
    b"#f\r\n",
    b"!21\r\nSYNTAX invalid syntax\r\n",
    b"=15\r\ntxt:Some string\r\n",
    b"(3492890328409238509324850943850943825024385\r\n",
    b"%2\r\n+first\r\n:1\r\n+second\r\n%1\r\n+x\r\n_\r\n",
    b"~3\r\n:1\r\n:2\r\n:3\r\n",
    b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    b"|1\r\n+key-popularity\r\n*2\r\n:1\r\n:2\r\n*2\r\n:2039123\r\n:9543892\r\n",
    b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n",
    b"*?\r\n:1\r\n:2\r\n.\r\n",
    b"%?\r\n+a\r\n:1\r\n.\r\n",
]


@pytest.mark.parametrize("raw", COMPLETE, ids=[repr(r)[:40] for r in COMPLETE])
def test_parse_complete_and_every_prefix_incomplete(raw):
    r, end = parse_reply(raw + b"+NEXT\r\n")
    assert end == len(raw)
    assert r.raw == raw
    for cut in range(len(raw)):
        with pytest.raises(Incomplete):
            parse_reply(raw[:cut])


def test_parse_values():
    r, _ = parse_reply(b"*3\r\n:1\r\n$-1\r\n*2\r\n+a\r\n*-1\r\n")
    assert r.to_py() == [1, None, [b"a", None]]
    r, _ = parse_reply(b"%2\r\n+first\r\n:1\r\n+second\r\n#t\r\n")
    assert r.to_py() == {b"first": 1, b"second": True}
    r, _ = parse_reply(b"|1\r\n+k\r\n+v\r\n:7\r\n")
    assert r.type == ":" and r.to_py() == 7 and r.attrs.to_py() == {b"k": b"v"}
    r, _ = parse_reply(b"$?\r\n;2\r\nab\r\n;1\r\nc\r\n;0\r\n")
    assert r.value == b"abc"
    assert parse_reply(b"$-1\r\n")[0].is_null and parse_reply(b"*-1\r\n")[0].is_null and parse_reply(b"_\r\n")[0].is_null


@pytest.mark.parametrize("raw", [b"?x\r\n", b":abc\r\n", b"$-5\r\n", b"$3\r\nabcd\r\n", b"#x\r\n", b"*-2\r\n"])
def test_parse_violations(raw):
    with pytest.raises(ProtocolViolation):
        parse_reply(raw)


def test_parse_all_pipeline():
    assert [r.raw for r in parse_all(b"+PONG\r\n" * 3)] == [b"+PONG\r\n"] * 3


def test_encode_command():
    assert encode_command("SET", b"k\x00", 12) == b"*3\r\n$3\r\nSET\r\n$2\r\nk\x00\r\n$2\r\n12\r\n"
    assert encode_command() == b"*0\r\n"


@pytest.mark.parametrize(
    "line,args",
    [
        ("SET foo bar", [b"SET", b"foo", b"bar"]),
        ('  SET "a b"   c  ', [b"SET", b"a b", b"c"]),
        (r'SET k "\x00\xff\r\n\t\"\\"', [b"SET", b"k", b"\x00\xff\r\n\t\"\\"]),
        ("SET k ''", [b"SET", b"k", b""]),
        ('SET k ""', [b"SET", b"k", b""]),
        (r"SET k 'it\'s'", [b"SET", b"k", b"it's"]),
        (r'ECHO "\q"', [b"ECHO", b"q"]),
        ("ECHO héllo", [b"ECHO", "héllo".encode()]),
        ("", []),
    ],
)
def test_split_args(line, args):
    assert split_args(line) == args


@pytest.mark.parametrize("line", ['SET "abc', "SET 'abc", 'SET "a"b', "SET 'a'b"])
def test_split_args_errors(line):
    with pytest.raises(TranscriptError):
        split_args(line)


def _tx(tmp_path, text):
    p = tmp_path / "t.txt"
    p.write_text(text)
    return parse_transcript(p)


def test_transcript_parsing(tmp_path):
    t = _tx(
        tmp_path,
        '@cluster\n@config maxmemory 1mb\n# c\n\nSET a 1\n@sort\nKEYS *\n@range 2\nTTL a\n@raw "*1\\r\\n$4\\r\\nPING\\r\\n"\n'
        '@allow-diff because reasons\nINFO\n@wait-until ":-2\\r\\n" PTTL a\n',
    )
    assert t.cluster and t.config == [("maxmemory", ["1mb"])]
    kinds = [s.kind for s in t.steps]
    assert kinds == ["cmd", "cmd", "cmd", "@raw", "cmd", "@wait-until"]
    assert t.steps[1].mods == {"sort": True}
    assert t.steps[2].mods == {"range": 2.0}
    assert t.steps[3].args == [b"*1\r\n$4\r\nPING\r\n"]
    assert t.steps[4].mods == {"allow-diff": "because reasons"}
    assert t.steps[5].args[0] == b":-2\r\n"


@pytest.mark.parametrize(
    "text",
    ["@sleep-ms 10\n", "@sleep 1\n", "PING\n@cluster\n", "@bogus\n", "@sort\n", "@allow-diff\nPING\n", 'SET "x\n'],
)
def test_transcript_errors(tmp_path, text):
    with pytest.raises(TranscriptError):
        _tx(tmp_path, text)


def test_compare_rules():
    assert compare(b"+OK\r\n", b"+OK\r\n", {})
    assert not compare(b"+OK\r\n", b"$2\r\nOK\r\n", {})
    assert not compare(b"+OK\r\n", b"<EOF>", {"ignore-value": True})
    assert compare(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", b"*2\r\n$1\r\nb\r\n$1\r\na\r\n", {"sort": True})
    assert not compare(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", b"*2\r\n$1\r\nb\r\n$1\r\nb\r\n", {"sort": True})
    pairs_a = b"*4\r\n$1\r\nk\r\n$1\r\n1\r\n$1\r\nj\r\n$1\r\n2\r\n"
    pairs_b = b"*4\r\n$1\r\nj\r\n$1\r\n2\r\n$1\r\nk\r\n$1\r\n1\r\n"
    pairs_c = b"*4\r\n$1\r\nj\r\n$1\r\n1\r\n$1\r\nk\r\n$1\r\n2\r\n"
    assert compare(pairs_a, pairs_b, {"sort-pairs": True})
    assert not compare(pairs_a, pairs_c, {"sort-pairs": True})
    assert compare(b":100\r\n", b":99\r\n", {"range": 1})
    assert not compare(b":100\r\n", b":98\r\n", {"range": 1})
    assert not compare(b":100\r\n", b"$3\r\n100\r\n", {"range": 1})
    assert compare(b"$3\r\nabc\r\n", b"$2\r\nxy\r\n", {"ignore-value": True})
    assert not compare(b"$3\r\nabc\r\n", b"$-1\r\n", {"ignore-value": True})
    assert not compare(b"*1\r\n:1\r\n", b"*2\r\n:1\r\n:1\r\n", {"ignore-value": True})


def test_free_ports_never_collide_with_the_debian_service():
    from lib.ports import BUS_OFFSET, FORBIDDEN, free_port

    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    for p in ports:
        assert p not in FORBIDDEN and p + BUS_OFFSET not in FORBIDDEN
        assert p != 6379 and p + BUS_OFFSET < 32768  # below the ephemeral range


def test_known_failures_file_parses(tmp_path):
    import conftest

    entries = conftest.load_known_failures()
    assert all(reason for reason in entries.values())
    bad = tmp_path / "kf.txt"
    bad.write_text("test_x.py::test_y\n")
    with pytest.raises(pytest.UsageError):
        conftest.load_known_failures(bad)
    good = tmp_path / "kf2.txt"
    good.write_text("# c\n\ntests/test_x.py::test_y[a]  # not yet\n")
    assert conftest.load_known_failures(good) == {"tests/test_x.py::test_y[a]": "not yet"}


def test_port_6379_is_refused():
    from lib.resp import RespConnection

    with pytest.raises(ValueError):
        RespConnection("127.0.0.1", 6379)
