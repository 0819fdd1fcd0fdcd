"""Reading a file of triples to judge: one JSON object per line.

    {"id": "q1", "question": "...", "answer": "...", "prediction": "...", "category": "OCR"}

``question``, ``answer`` and ``prediction`` are required strings (instead of ``answer``,
``references`` may list several acceptable answers: judging/references.py); ``id`` is
optional (the line number when absent); any other field is passed through to
the output. The whole file is validated before anything is written: a bad line
fails with its line number.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.jsonl import input_file, lines, parse_object
from vlmdyn_cli.judging.references import encode
from vlmdyn_cli.store.db import immediate

REQUIRED = ("question", "answer", "prediction")


def read_triples_file(path: str | Path) -> list[dict]:
    return [obj for _, obj in read_triples_lines(path)]


def read_triples_lines(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, object) of every non-blank line, validated (see the module docstring)."""
    p = input_file(path, "triples file")
    rows: list[tuple[int, dict]] = []
    for lineno, line in lines(p):
        obj = parse_object(line, f"{p}: line {lineno}")
        if obj is None:
            continue
        if "answer" not in obj and "references" in obj:     # several acceptable answers, kept apart
            refs = obj["references"]
            if not isinstance(refs, list) or not refs or not all(isinstance(x, str) for x in refs):
                raise BadInput(f"{p}: line {lineno}: field 'references' must be a non-empty list of strings")
            obj["answer"] = encode(refs)
        for k in REQUIRED:
            if not isinstance(obj.get(k), str):
                what = "missing" if k not in obj else f"not a string ({type(obj[k]).__name__})"
                raise BadInput(f"{p}: line {lineno}: field '{k}' is {what}; each line needs "
                               f"string fields {', '.join(REQUIRED)}")
        obj.setdefault("id", lineno)
        rows.append((lineno, obj))
    if not rows:
        raise BadInput(f"{p}: no triples in the file")
    return rows


RESULT_FIELDS = ("status", "verdict", "reason", "decided_by", "ms", "md", "h", "p_yes", "resolved_model",
                 "cost_usd", "latency_s", "raw")


def judge_file(db, path: str | Path, spec, reporter=None, **kw):
    """Judge every line of a triples file; returns (summary, one result dict per input line, in order).

    The triples are stored with the file and its lines (one transaction, store/input_files.py) so
    the cache, ``judgements list`` and the TUI see them.
    """
    from vlmdyn_cli.judging.run import checked_options, judge_triples
    from vlmdyn_cli.store import judgements as store

    numbered = read_triples_lines(path)
    rows = [obj for _, obj in numbered]
    checked_options(spec, kw.get("backend_options"), ready=not kw.get("dry_run"))   # bad options, no key: nothing stored
    if kw.get("dry_run"):   # estimate inside a transaction that is rolled back: a dry run writes nothing
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            hashes = _store_file(db, path, numbered)
            summary = judge_triples(db, spec, hashes, reporter, **kw)
        finally:
            db.conn.execute("ROLLBACK")
        return summary, []
    with immediate(db):
        hashes = _store_file(db, path, numbered)
    summary = judge_triples(db, spec, hashes, reporter, **kw)
    found = store.rows_of(db, spec.hash, list(dict.fromkeys(hashes)))
    results = []
    for row, h in zip(rows, hashes):
        res = ({f: getattr(found[h], f) for f in RESULT_FIELDS} if h in found
               else {"status": "pending", "reason": "not judged in this invocation"})
        results.append(row | {"judge": spec.name} | res)
    return summary, results


def _store_file(db, path: str | Path, numbered: list[tuple[int, dict]]) -> list[str]:
    """Store the file's triples and record the file and its lines (caller's transaction); the hashes."""
    from vlmdyn_cli.store import input_files
    from vlmdyn_cli.store.db import file_sha256, upsert_triples

    hashes = upsert_triples(db, [(o["question"], o["answer"], o["prediction"]) for _, o in numbered])
    rows = [(line, _item_id(o["id"]), h) for (line, o), h in zip(numbered, hashes)]
    input_files.record(db.conn, str(path), file_sha256(path), rows)
    return hashes


def _item_id(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
