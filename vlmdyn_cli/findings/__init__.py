"""The paper's findings checked on any experiment database.

    report = check_findings(db, like="demo-s*", judge="rules")
    for f in report.findings: print(f.id, f.verdict, f.why)

``data`` reads the judged counts per run, checkpoint, set and category; ``checks``
holds one rule per finding of METHOD.md section 5. The report also says how many
items each set excluded as unscored, and every finding whose data is missing says
what is missing ("cannot be shown") instead of a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.findings.checks import CANNOT, CHECKS, NOT_OBSERVED, OBSERVED, Finding
from vlmdyn_cli.findings.data import Study, load_study

__all__ = ["CANNOT", "NOT_OBSERVED", "OBSERVED", "Finding", "FindingsReport", "check_findings"]


@dataclass
class FindingsReport:
    judge: str
    runs: list[str]
    findings: list[Finding]
    unscored: list[dict]                 # per set name: unscored / generated over runs and checkpoints
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"judge": self.judge, "runs": self.runs, "notes": self.notes, "unscored": self.unscored,
                "findings": [f.to_dict() for f in self.findings]}


def check_findings(db, runs: list[str] | None = None, like: str | None = None, judge: str | None = None,
                   reporter=None) -> FindingsReport:
    """Check every finding on the selected runs (one per seed) under one judge.

    BadInput (exit 2) when nothing can be computed: no runs, no judgements, no sets, or
    every finding lacks its data (the message lists what is missing).
    """
    study = load_study(db, runs=runs, like=like, judge=judge, reporter=reporter)
    findings = [check(study) for check in CHECKS]
    if all(f.verdict == CANNOT for f in findings):
        reasons = list(dict.fromkeys(f.why for f in findings))
        raise BadInput("no finding can be computed on these runs:\n  " + "\n  ".join(reasons[:8]))
    return FindingsReport(study.judge.label, [rd.name for rd in study.runs], findings, _unscored(study),
                          study.notes)


def _unscored(study: Study) -> list[dict]:
    rows: dict[str, list[int]] = {}
    for rd in study.runs:
        for s in rd.sets.values():
            acc = rows.setdefault(s.name, [0, 0])
            for step in rd.steps:
                u, g = rd.unscored(step, s)
                acc[0] += u
                acc[1] += g
    order = sorted(rows, key=lambda n: (not n.startswith("seen@"), int(n[5:]) if n[5:].isdigit() else 0, n))
    return [{"set": n, "unscored": rows[n][0], "generated": rows[n][1]} for n in order]
