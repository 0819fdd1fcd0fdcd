"""llama-cpp-python is the optional `local` extra: without it the default judge and the demo run,
and a llama.cpp judge stops with the install command, exit 2, nothing written.

Each case runs `vlmdyn` in a fresh Python process in which ``llama_cpp`` cannot be imported: a
finder placed first on ``sys.meta_path`` refuses it (as when the package is not installed) and
appends every attempt to a file, so a test can also tell that nothing even tried to import it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import helpers_judging as hj
from vlmdyn_cli.store import open_db

WITHOUT_LLAMA = r"""
import importlib.abc, json, os, sys

class NoLlamaCpp(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "llama_cpp" or name.startswith("llama_cpp."):
            with open(os.environ["ATTEMPTS"], "a") as f:
                f.write(name + "\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoLlamaCpp())
from vlmdyn_cli.cli.app import main
code = 0
for argv in json.loads(sys.argv[1]):     # one or more `vlmdyn ARGV` calls in this process
    try:
        code = max(code, main(argv))
    except SystemExit as exc:
        code = max(code, exc.code or 0)
assert "llama_cpp" not in sys.modules
sys.exit(code)
"""
INSTALL = "pip install 'vlmdyn[local]'"
TABLES = ("triples", "judgements", "judge_specs")


def vlmdyn_without_llama(tmp_path: Path, *args, calls: list[list[str]] | None = None,
                         timeout: float = 600) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run `vlmdyn ARGS` (or each of ``calls``) in one process where llama_cpp is not importable;
    (the process, the import attempts)."""
    attempts = tmp_path / "llama_cpp_attempts.txt"
    attempts.write_text("")
    env = {**os.environ, "ATTEMPTS": str(attempts), "VLMDYN_DEBUG": "0"}
    argvs = calls if calls is not None else [[str(a) for a in args]]
    p = subprocess.run([sys.executable, "-c", WITHOUT_LLAMA, json.dumps(argvs)], capture_output=True, text=True,
                       env=env, timeout=timeout, cwd=tmp_path)
    return p, attempts.read_text().split()


def counts(path: Path) -> dict[str, int]:
    c = sqlite3.connect(path)
    try:
        return {t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        c.close()


@pytest.fixture
def run_db(tmp_path) -> Path:
    path = tmp_path / "exp.db"
    d = open_db(path)
    hj.make_run(d)
    d.close()
    return path


def assert_one_line_install_hint(p: subprocess.CompletedProcess) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert INSTALL in lines[0] and "llama_cpp" in lines[0] and "Traceback" not in p.stderr


def test_the_default_judge_runs_without_llama_cpp_and_never_imports_it(tmp_path, run_db):
    p, attempts = vlmdyn_without_llama(tmp_path, "judge", "--run", "r1", "--judge", "cascade", "--db", run_db)
    assert p.returncode == 0, p.stderr
    assert attempts == []
    n = counts(run_db)
    assert n["judgements"] == 12 and n["triples"] == 12


@pytest.mark.parametrize("judge", ["local", "gemma-local", "rules-then-local.toml", "fitted-local-p_yes.toml"])
def test_a_llama_cpp_judge_without_the_extra_says_what_to_install_and_writes_nothing(tmp_path, run_db, judge):
    # the cascade would judge some items with its rules before building its llama.cpp stage, and the
    # fitted judge reaches the local judge only through a feature: both must stop before any work
    (tmp_path / "rules-then-local.toml").write_text(
        'name = "rules-then-local"\nbackend = "cascade"\nstages = ["rules", "local"]\n')
    lexical = (Path(__file__).parents[1] / "judges" / "lexical.toml").read_text()
    (tmp_path / "fitted-local-p_yes.toml").write_text(
        lexical.replace('name = "lexical"', 'name = "lexical-plus-local"')
        .replace('features = ["rules",', 'features = ["local-p_yes", "rules",')
        .replace("weights = [", "weights = [0.5, ").replace("mean = [", "mean = [0.5, ").replace("scale = [", "scale = [1.0, "))
    before = counts(run_db)
    p, attempts = vlmdyn_without_llama(tmp_path, "judge", "--run", "r1", "--judge", judge, "--db", run_db)
    assert_one_line_install_hint(p)
    assert attempts and attempts[0] == "llama_cpp"      # the blocker was what stopped it
    assert counts(run_db) == before == {"triples": 0, "judgements": 0, "judge_specs": 0}


def test_judging_a_file_with_a_llama_cpp_judge_creates_no_database(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"question": "What colour is it?", "answer": "red", "prediction": "red"}) + "\n")
    p, _ = vlmdyn_without_llama(tmp_path, "judge", "--input", f, "--judge", "local", "--db", tmp_path / "new.db")
    assert_one_line_install_hint(p)
    assert not (tmp_path / "new.db").exists()


def test_the_demo_with_a_llama_cpp_judge_stops_before_any_work(tmp_path):
    p, _ = vlmdyn_without_llama(tmp_path, "demo", "--judge", "local", "--out", tmp_path / "demo")
    assert_one_line_install_hint(p)
    assert not (tmp_path / "demo").exists()


def command_paths() -> list[list[str]]:
    """Every command and sub-command of the CLI, e.g. ["judge"], ["data", "import"]."""
    import typer

    from vlmdyn_cli.cli.app import app

    def walk(cmd, path):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():      # a group's sub-commands
            yield from walk(sub, path + [name])
    return list(walk(typer.main.get_command(app), []))


def test_start_up_and_every_help_import_no_llama_cpp(tmp_path):
    paths = command_paths()
    assert ["demo"] in paths and ["judge"] in paths and len(paths) > 10
    p, attempts = vlmdyn_without_llama(tmp_path, calls=[path + ["--help"] for path in paths])
    assert p.returncode == 0, p.stderr
    assert "vlmdyn demo" in p.stdout and "--judge" in p.stdout
    assert attempts == []


@pytest.mark.slow
def test_the_demo_runs_without_llama_cpp_and_never_imports_it(tmp_path):
    out = tmp_path / "demo"
    p, attempts = vlmdyn_without_llama(tmp_path, "demo", "--out", out, "--seeds", "1", "--images", "120",
                                       "--seen-size", "40", "--unseen-size", "40", "--json", timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    assert attempts == []
    res = json.loads(p.stdout)
    assert res["judge"] == "cascade" and (out / "report.html").stat().st_size > 1000
    assert counts(out / "vlmdyn.db")["judgements"] > 0
