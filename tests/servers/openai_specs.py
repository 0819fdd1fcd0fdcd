"""Helpers for the openai-backend tests: user judge specs and triples files written to a temp folder."""

from __future__ import annotations

import json
from pathlib import Path

FAKE_KEY = "sk-vlmdyn-CANARY-7f3a9c21e5b84d06a1b2c3d4e5f60789"


def builtin_prompt(name: str) -> str:
    from vlmdyn_cli.judging.spec import builtin_dir

    return str(Path(str(builtin_dir())) / "prompts" / name)


def write_spec(folder: Path, name: str = "api-test", *, output: str = "rubric-dict", score_mode: str = "with-verdict",
               max_tokens: int = 40, options: dict | None = None, text_template: str | None = None) -> Path:
    """A user spec with backend = "openai"; options go to its [options] table."""
    if text_template:
        templates = f'text_template = "{builtin_prompt(text_template)}"'
    else:
        system = "rubric_system.txt" if output == "rubric-dict" else "verdict_system.txt"
        templates = (f'system_template = "{builtin_prompt(system)}"\n'
                     f'user_template = "{builtin_prompt("item_user.txt")}"')
    opts = "\n".join(f"{k} = {json.dumps(v)}" for k, v in (options or {}).items())
    p = folder / f"{name}.toml"
    p.write_text(f'''name = "{name}"
backend = "openai"
model = "gpt-4o-mini"
output = "{output}"
{templates}

[decoding]
temperature = 0.0
max_tokens = {max_tokens}
score_mode = "{score_mode}"

[options]
{opts}
''')
    return p


def write_triples(path: Path, questions: list[str], answer: str = "red", prediction: str = "red") -> Path:
    with path.open("w") as f:
        for i, q in enumerate(questions):
            f.write(json.dumps({"id": f"t{i}", "question": q, "answer": answer, "prediction": prediction}) + "\n")
    return path


def rows_by_question(db_path: Path) -> dict[str, dict]:
    """Stored judgements keyed by the triple's question."""
    import sqlite3

    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute("SELECT t.question, j.* FROM judgements j JOIN triples t ON t.hash = j.triple_hash").fetchall()
        return {r["question"]: dict(r) for r in rows}
    finally:
        con.close()
