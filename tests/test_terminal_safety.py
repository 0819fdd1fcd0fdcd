"""Model, dataset and user text cannot drive the terminal through any human-readable CLI output.

Every C0 and C1 control character, DEL, the bidi overrides and the usual attack sequences
(OSC retitle, OSC 8 link, CSI clear screen, SGR colour) are planted in every text column a
listing shows, in names (dataset, run, judge) and in values that come back in error messages;
no such character may reach stdout or stderr (they are shown as visible \\xNN escapes), while
--json output keeps the exact text.
"""

from __future__ import annotations

import json
import re

import pytest

from helpers_judging import make_run

ATTACKS = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\x9b31m\u202eevil"
EVERY_CONTROL = "".join(chr(c) for c in [*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f, *range(0x80, 0xa0)])
PAYLOAD = f"A{ATTACKS}{EVERY_CONTROL}Z"
# what must never reach the terminal: C0 (but newline and tab), DEL, C1, bidi overrides/isolates
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def hostile_db(db, db_path, tmp_path):
    make_run(db, run_name="r1")
    with db.atomic():
        db.execute("UPDATE qa_pairs SET question = question || ?, answer = answer || ?", [PAYLOAD, PAYLOAD])
        db.execute("UPDATE generations SET prediction = prediction || ?", [PAYLOAD])
        db.execute("UPDATE datasets SET name = ?", [f"ds{PAYLOAD}"])
    return db_path


def _safe(text: str) -> None:
    bad = UNSAFE.findall(text)
    assert not bad, f"control characters reached the terminal: {sorted(set(map(hex, map(ord, bad))))}"


def test_every_listing_shows_hostile_text_literally(cli, hostile_db, tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"id": PAYLOAD, "question": PAYLOAD, "answer": "red", "prediction": PAYLOAD}) + "\n")
    runs = [
        ("judge", "--judge", "rules", "--run", "r1"),
        ("judge", "--judge", "rules", "--input", f),
        ("judgements", "list", "-n", "0"),
        ("judgements", "list", "-q", "red"),
        ("judgements", "status"),
        ("generations", "list", "--run", "r1"),
        ("generations", "summary", "--run", "r1"),
        ("runs", "list"),
        ("data", "list"),
    ]
    shown = ""
    for args in runs:
        r = cli(*args, "--db", hostile_db)
        assert r.code == 0, (args, r.err)
        _safe(r.out)
        _safe(r.err)
        shown += r.out
    assert "\\x1b]0;pwned" in shown and "\\x9b31m" in shown     # shown, as visible escapes
    r = cli("judgements", "list", "-n", "0", "--json", "--db", hostile_db)   # --json: the exact text
    assert PAYLOAD in "".join(row["prediction"] for row in json.loads(r.out))


@pytest.mark.parametrize("args,named", [
    (("generations", "list", "--run", PAYLOAD), "\\x1b]0;pwned"),
    (("judge", "--judge", PAYLOAD, "--input", "x.jsonl"), "\\x1b]0;pwned"),
    (("judgements", "list", "--judge", "rules", "-q", "\x1b\x07(\x9b"), "\\x1b\\x07(\\x9b"),
    (("data", "import", f"{ATTACKS}.json"), "\\x1b]0;pwned"),
    (("judge", "--judge", "rules", "--run", "r1", "--limit", ATTACKS), "--limit"),
    (("judgements", "list", "--verdict", ATTACKS), "\\x1b]0;pwned"),
], ids=["unknown run", "unknown judge", "search without words", "missing file", "usage error", "bad choice"])
def test_error_messages_quote_hostile_values_literally(cli, hostile_db, args, named):
    r = cli(*args, "--db", hostile_db)
    assert r.code == 2, r.err
    _safe(r.err)
    _safe(r.out)
    assert named in r.err


def test_bad_record_text_in_an_input_file_is_quoted_literally(cli, db_path, tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "a", "prediction": "p"}) + "\n" + PAYLOAD + "\n")
    r = cli("judge", "--judge", "rules", "--input", f, "--db", db_path)
    assert r.code == 2 and "line 2" in r.err
    _safe(r.err)
