"""docs/architecture.md stays true: every path it names exists, and every package is on the map."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()


def _package_block() -> list[str]:
    return DOC.split("```", 2)[1].splitlines()


def test_every_package_of_vlmdyn_cli_is_on_the_map():
    named = {m.group(1) for line in _package_block() if (m := re.match(r"  (\w+)/", line))}
    packages = {p.parent.name for p in (ROOT / "vlmdyn_cli").glob("*/__init__.py")}
    assert packages - named == set(), f"packages missing from docs/architecture.md: {packages - named}"
    assert named - packages == set(), f"docs/architecture.md names packages that do not exist: {named - packages}"


def test_every_module_the_map_names_exists():
    missing, package = [], None
    for line in _package_block():
        m = re.match(r"  (\w+)/", line)
        if m:
            package = m.group(1)
        elif not line.startswith("  "):
            package = None                # vlmdyn_cli/ itself, or judges/, examples/, ... (not modules)
        if package is None:
            continue
        for mod in re.findall(r"(?<![\w/.])(\w+)\.py", line):
            if not list((ROOT / "vlmdyn_cli" / package).rglob(f"{mod}.py")):
                missing.append(f"{package}/{mod}.py")
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_the_judgement_path_names_real_files():
    block = DOC.split("## One judgement, file by file", 1)[1]
    paths = set(re.findall(r"\b((?:cli|judging|store)/[\w/]+\.py)", block))
    assert len(paths) >= 5
    assert [p for p in sorted(paths) if not (ROOT / "vlmdyn_cli" / p).is_file()] == []
