"""benchmarks/run.py and benchmarks/checks.py: a missed ratio target fails the run.

The runner is driven end to end on small benchmark scripts written here (each a real
process importing the real ``checks.py``), so what is tested is what CI runs: the exit
code, the table, the expected-to-fail list and a benchmark that crashes.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


SCRIPT = '''
import sys
from checks import Must, Ratio, finish
ours, base = float(sys.argv[1]), float(sys.argv[2])
sys.exit(finish("bench_{name}", [Ratio("{name}: new vs old", ours, base, "s", 2.0),
                                Must("{name}: nothing lost", True, "0 lost", "0 lost")]))
'''


@pytest.fixture
def runner(tmp_path, monkeypatch):
    run = load("run")
    shutil.copy(BENCH / "checks.py", tmp_path / "checks.py")
    for name in ("fast", "slow", "known"):
        (tmp_path / f"bench_{name}.py").write_text(SCRIPT.replace("{name}", name))
    (tmp_path / "bench_crash.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.setattr(run, "HERE", tmp_path)
    monkeypatch.setattr(run, "OUT", tmp_path / "out")
    monkeypatch.setattr(run, "BENCHMARKS", {
        "fast": (["1", "3"], ["1", "3"]),  # 3x faster: target 2x met
        "slow": (["1", "1.5"], []),      # 1.5x: missed
        "known": (["1", "1.2"], []),     # missed, but listed as expected to fail
        "crash": ([], []),
    })
    monkeypatch.setattr(run, "EXPECTED_TO_FAIL", {("known", "known: new vs old"): "issue 0 in progress"})
    return run


def statuses(report: dict) -> dict:
    return {(r["benchmark"], r["stage"]): r["status"] for r in report["rows"]}


def test_a_met_target_passes_and_the_table_is_written(runner, tmp_path, capsys):
    assert runner.main(["--quick", "--only", "fast,known"]) == 0
    report = json.loads((tmp_path / "out" / "run_quick.json").read_text())
    got = statuses(report)
    assert got[("fast", "fast: new vs old")] == "pass"
    assert got[("fast", "fast: nothing lost")] == "pass"
    assert got[("known", "known: new vs old")].startswith("expected to fail (issue 0 in progress)")
    row = next(r for r in report["rows"] if r["stage"] == "fast: new vs old")
    assert (row["ours"], row["baseline"], row["ratio"], row["target"]) == ("1 s", "3 s", "3.00x", ">= 2x")
    out = capsys.readouterr().out
    assert "fast: new vs old" in out and "4/4 ok" in out


def test_a_missed_target_or_a_crash_fails_the_run(runner, tmp_path):
    assert runner.main(["--quick", "--only", "slow"]) == 1
    report = json.loads((tmp_path / "out" / "run_quick.json").read_text())
    assert statuses(report)[("slow", "slow: new vs old")] == "FAIL (run 2 of 2)"
    assert runner.main(["--quick", "--only", "fast,crash"]) == 1
    report = json.loads((tmp_path / "out" / "run_quick.json").read_text())
    crash = statuses(report)[("crash", "(did not report its checks)")]
    assert crash.startswith("ERROR: exit 1")
    assert "boom" in (tmp_path / "out" / "logs" / "crash.log").read_text()


FLAKY = '''
import sys
from pathlib import Path
from checks import Ratio, finish
runs = Path(sys.argv[1])
n = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(n))
ours = 1.0 if n >= int(sys.argv[2]) else 2.0   # starved until run number argv[2]
sys.exit(finish("bench_flaky", [Ratio("flaky: new vs old", ours, 3.0, "s", 2.0)]))
'''


@pytest.mark.parametrize("good_from, attempts, status, runs", [
    (2, 2, "pass (run 2 of 2)", 2),   # starved once, met on the second run
    (3, 2, "FAIL (run 2 of 2)", 2),   # missed in every run: fails
    (1, 2, "pass", 1),                # met at once: not run again
    (2, 1, "FAIL", 1),                # --attempts 1: one run only
])
def test_a_missed_check_is_run_again_and_the_best_run_counts(runner, tmp_path, monkeypatch, good_from, attempts,
                                                            status, runs):
    (tmp_path / "bench_flaky.py").write_text(FLAKY)
    counter = tmp_path / "runs.txt"
    monkeypatch.setitem(runner.BENCHMARKS, "flaky", ([str(counter), str(good_from)], []))
    rc = runner.main(["--quick", "--only", "flaky", "--attempts", str(attempts)])
    report = json.loads((runner.OUT / "run_quick.json").read_text())
    assert statuses(report)[("flaky", "flaky: new vs old")] == status
    assert rc == (0 if status.startswith("pass") else 1)
    assert int(counter.read_text()) == runs


def test_an_expected_failure_that_passes_is_reported_stale(runner, monkeypatch):
    monkeypatch.setitem(runner.BENCHMARKS, "known", (["1", "5"], []))
    assert runner.main(["--quick", "--only", "known"]) == 0
    report = json.loads((runner.OUT / "run_quick.json").read_text())
    assert "stale" in statuses(report)[("known", "known: new vs old")]


def test_unknown_benchmark_names_are_refused(runner, capsys):
    assert runner.main(["--only", "fast,nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_readme_section_holds_the_table(runner, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{runner.README_START}\nstale table\n{runner.README_END}\nafter\n")
    assert runner.main(["--only", "fast", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "stale table" not in text and text.startswith("intro\n") and text.endswith("after\n")
    assert "| fast | fast: new vs old | 1 s | 3 s | 3.00x | >= 2x | pass |" in text


def test_every_benchmark_script_reports_through_checks():
    """Each benchmarks/bench_*.py is in run.py's list and ends through checks.finish (exit 1 on a miss)."""
    run = load("run")
    scripts = sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    assert scripts == sorted(run.BENCHMARKS)
    for name in scripts:
        assert "finish(" in (BENCH / f"bench_{name}.py").read_text(), name


def test_ratio_direction_and_robust_ratio():
    sys.path.insert(0, str(BENCH))
    try:
        checks = load("checks")
    finally:
        sys.path.remove(str(BENCH))
    assert checks.Ratio("t", 1.0, 4.0, "s", 3.0).passed                      # times: baseline / ours
    assert not checks.Ratio("r", 1.0, 4.0, "items/s", 3.0, higher_is_better=True).passed
    assert checks.Ratio("r", 8.0, 2.0, "items/s", 3.0, higher_is_better=True).ratio == 4.0
    assert not checks.Ratio("m", 10.0, 9.0, "q/s", 0.9, higher_is_better=True, robust_ratio=0.85).passed
