"""The README's generated sections and set-up commands stay true."""

import re
from pathlib import Path

from vlmdyn_cli.findings.checks import rules_markdown
from vlmdyn_cli.readme import (CLI_END, CLI_START, FINDINGS_END, FINDINGS_START, SCHEMA_END, SCHEMA_START,
                               cli_reference, replace_block, section, update)
from vlmdyn_cli.store.schema_doc import render_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    text = (ROOT / "README.md").read_text()
    assert section(text, CLI_START, CLI_END) == cli_reference(), \
        "README CLI reference is stale: run python -m vlmdyn_cli.readme README.md"


def test_findings_rules_are_current():
    text = (ROOT / "README.md").read_text()
    assert section(text, FINDINGS_START, FINDINGS_END) == rules_markdown(), \
        "README findings rules are stale: run python -m vlmdyn_cli.readme README.md"


def test_readme_starts_with_the_two_setup_commands_and_ci_runs_the_test_one():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert first_block == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r'bin/vlmdyn"? demo', (ROOT / "scripts" / "demo.sh").read_text())


def test_replace_block_only_touches_the_marked_section():
    text = replace_block("# Title\n\nIntro.\n", SCHEMA_START, SCHEMA_END, "GEN 1\n", "## Schema")
    assert text == f"# Title\n\nIntro.\n\n## Schema\n\n{SCHEMA_START}\nGEN 1\n{SCHEMA_END}\n"
    text += "\n## After\n\nMore.\n"
    again = replace_block(text, SCHEMA_START, SCHEMA_END, "GEN 2\n", "## Schema")
    assert again == text.replace("GEN 1", "GEN 2")
    assert section(again, SCHEMA_START, SCHEMA_END) == "GEN 2\n"


def test_update_writes_both_sections_once(tmp_path):
    p = tmp_path / "README.md"
    p.write_text("# Title\n", encoding="utf-8")
    assert update(p)
    text = p.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\n## CLI reference\n")
    assert section(text, CLI_START, CLI_END) == cli_reference()
    assert section(text, SCHEMA_START, SCHEMA_END) == render_markdown()
    assert not update(p) and p.read_text(encoding="utf-8") == text
