# tests/test_transcripts.py — owned by the test harness (tests/, .ci/, scripts/).
#
# One test per tests/transcripts/*.txt: the transcript is replayed in lockstep
# against a fresh redis-server 7.0 (oracle) and a fresh cinnabar-server with the
# same directives; every reply must be byte-identical except where a named
# exception directive says otherwise (see tests/lib/transcript.py and
# tests/transcripts/README.md).

from __future__ import annotations

from pathlib import Path

import pytest

from lib.transcript import Side, parse_transcript, run_transcript

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.txt"))


def test_transcripts_exist():
    assert len(TRANSCRIPTS) >= 10, "transcript files went missing"


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_transcript(path, make_server):
    t = parse_transcript(path)
    assert t.steps, f"{path.name} has no commands"
    redis = make_server("redis", list(t.config), cluster=t.cluster)
    cinnabar = make_server("cinnabar", list(t.config), cluster=t.cluster)
    a, b = Side("redis-server", redis), Side("cinnabar-server", cinnabar)
    try:
        res = run_transcript(t, a, b)
    finally:
        a.close()
        b.close()
    if res.allowed:
        print(res.report())
    assert res.ok, "\n" + res.report()
