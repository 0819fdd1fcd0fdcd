"""Progress lines: the ETA runs at the rate since the first advance, so a slow start (loading a
model before the first item) does not inflate it."""

from __future__ import annotations

import io

from vlmdyn_cli import progress as P


def test_eta_leaves_out_the_time_before_the_first_item(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(P.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    rep = P.PlainReporter(stream=out, interval=0.0)
    with rep.task("judging", total=100) as h:
        now[0] = 10.0                      # 10 s to load a model, then the first item
        h.advance(1)
        assert h.eta is None               # one point: no rate yet
        now[0] = 12.0                      # then 1 item/s
        h.advance(2)
        assert h.eta == 97.0               # 97 left at 1/s (the overall 0.25/s would say 388)
        assert "ETA 1:37" in h.line(), h.line()
        now[0] = 20.0
        h.advance(97)
        assert h.eta == 0.0
    assert "ETA 1:37" in out.getvalue()                    # the plain lines carry the same estimate
