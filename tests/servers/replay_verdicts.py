"""A loopback OpenAI-compatible server that answers with verdicts stored in a JSONL file.

Human-judgement datasets often carry a strong judge's verdict of every item (e.g. the
``gpt4`` field of examples/calibration/nq/dev.jsonl). This server plays that judge: for a
chat request whose prompt holds "Question: ..." and "Prediction: ..." (judges/prompts/
item_user.txt), it answers in the gpt-4o-mini output format, ``{'p': 'yes', 'MS': 5,
'MD': 5, 'H': 5}`` for a stored yes and ``{'p': 'no', 'MS': 1, 'MD': 1, 'H': 1}`` for a no
(the dataset has no rubric scores: these are placeholders). An item it does not know gets
a reply that is not a verdict (stored unscored), never an invented one.

    python tests/servers/replay_verdicts.py examples/calibration/nq/dev.jsonl --field gpt4
    -> prints the base URL (http://127.0.0.1:PORT/v1) and serves until killed (or --seconds)
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

if __package__ in (None, ""):      # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from servers.fake_openai import FakeOpenAI
else:
    from .fake_openai import FakeOpenAI

_ITEM = re.compile(r"Question: (.*?)\nCorrect answer: .*?\nPrediction: (.*)\Z", re.S)
REPLY = {"yes": "{'p': 'yes', 'MS': 5, 'MD': 5, 'H': 5}", "no": "{'p': 'no', 'MS': 1, 'MD': 1, 'H': 1}"}


def load_verdicts(path: str | Path, field: str = "gpt4") -> dict[tuple[str, str], str]:
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            out[(r["question"].strip(), r["prediction"].strip())] = r[field]
    return out


class ReplayVerdicts(FakeOpenAI):
    """``with ReplayVerdicts("dev.jsonl") as srv: srv.base_url``; ``srv.unknown`` counts misses."""

    def __init__(self, path: str | Path, field: str = "gpt4", **kw):
        self.verdicts = load_verdicts(path, field)
        self.unknown = 0
        super().__init__(answer=self._reply, **kw)

    def _reply(self, body: dict) -> str:
        user = [m for m in body.get("messages", []) if m.get("role") == "user"]
        m = _ITEM.search(str(user[-1].get("content", ""))) if user else None
        v = self.verdicts.get((m.group(1).strip(), m.group(2).strip())) if m else None
        if v not in REPLY:
            self.unknown += 1
            return "unknown item"        # not a verdict: the judge stores it unscored (parse error)
        return REPLY[v]


def main(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--field", default="gpt4")
    ap.add_argument("--seconds", type=float, default=3600.0, help="stop after this long (default 1 h)")
    a = ap.parse_args(argv)
    with ReplayVerdicts(a.file, a.field) as srv:
        print(srv.base_url, flush=True)
        end = time.monotonic() + a.seconds
        try:
            while time.monotonic() < end:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main(sys.argv[1:])
