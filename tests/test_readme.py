"""The README's generated sections and set-up commands stay true."""

import re
from pathlib import Path

from vlmdyn_cli.readme import CLI_END, CLI_START, cli_reference, section

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    text = (ROOT / "README.md").read_text()
    assert section(text, CLI_START, CLI_END) == cli_reference(), \
        "README CLI reference is stale: run python -m vlmdyn_cli.readme README.md"


def test_readme_starts_with_the_two_setup_commands_and_ci_runs_the_test_one():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert first_block == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r'bin/vlmdyn"? demo', (ROOT / "scripts" / "demo.sh").read_text())
