"""Human labels: rater sheets in and out, and the human verdict of each item.

An *item* is a (question, reference answer, prediction) triple, identified in
the database by its content hash. A sample (``calibration_items``) gives items
short ids to print on a rater sheet. Labels are stored one row per
(item, rater) in ``human_labels``; an item's human verdict is "yes" when at
least ``agreement`` of its raters said yes (the paper: 75% of 4 raters).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.jsonl import input_file, lines, parse_object, read_text
from vlmdyn_cli.judging.references import encode
from vlmdyn_cli.store.db import immediate, now, triple_hash, upsert_triples
from vlmdyn_cli.store.labels import CalibrationItem, add_items, save_label

_TRUE = {"y", "yes", "1", "true"}
_FALSE = {"n", "no", "0", "false"}
SHEET_COLUMNS = ["item_id", "category", "question", "reference", "prediction", "label"]
# A spreadsheet runs a cell that starts with one of these as a formula (model text is untrusted: "=HYPERLINK(..."),
# and turns "+1" into 1: the rater sheet writes such a cell with a leading apostrophe, which spreadsheets show as
# text and which the import takes off again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = ("question", "reference", "answer", "prediction")


def sheet_cell(text: str) -> str:
    """A text cell of a rater sheet: never a formula to a spreadsheet."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def from_sheet_cell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_START) else text


def normalise_label(raw, where: str) -> str | None:
    """'yes'/'no' from y/n/1/0/true/false/yes/no (any case); None for an empty cell."""
    if raw is None:
        return None
    s = str(raw).strip().lower()
    if s == "":
        return None
    if s in _TRUE:
        return "yes"
    if s in _FALSE:
        return "no"
    raise BadInput(f"{where}: label {raw!r} is not yes/no (accepted: y, n, yes, no, 1, 0, true, false)")


@dataclass
class ParsedLabel:
    line: int
    item_id: str | None
    triple: tuple[str, str, str] | None
    rater: str
    label: str


@dataclass
class ImportResult:
    imported: int = 0
    unchanged: int = 0
    empty: int = 0
    raters: set = field(default_factory=set)
    new_items: int = 0


def read_label_file(path: Path, rater: str | None = None) -> tuple[list[ParsedLabel], int]:
    """Parse a filled rater sheet (CSV) or a JSONL file of labels.

    Each row needs a label, a rater (column/field ``rater`` or ``--rater``) and
    either an ``item_id`` (or ``id``) or the full triple (``question``,
    ``reference``/``answer``, ``prediction``). Returns (labels, empty_rows).

    JSONL rows may also come in the shape of human-judgement datasets (e.g. NQ answers rated
    by several people): ``references`` (a list of acceptable answers, kept apart) instead of
    ``reference``, and ``votes`` (one yes/no per rater) and/or ``human`` (the majority) instead
    of ``label``; other fields (a reference judge's stored verdict...) are ignored.
    """
    path = input_file(path, "label file")
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".jsonl":
        for i, line in lines(path):      # split at \n only: a JSON string may hold U+2028 or U+0085
            obj = parse_object(line, f"{path}:{i}")
            if obj is not None:
                rows.append((i, obj))
    elif path.suffix.lower() in (".csv", ".tsv"):
        with io.StringIO(read_text(path), newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            if not reader.fieldnames or "label" not in [c.strip() for c in reader.fieldnames]:
                raise BadInput(f"{path}: no 'label' column (columns: {reader.fieldnames})")
            for i, r in enumerate(reader, start=2):
                row = {k.strip(): v for k, v in r.items() if k}
                rows.append((i, {k: from_sheet_cell(v) if k in _TEXT_COLUMNS and isinstance(v, str) else v
                                 for k, v in row.items()}))
    else:
        raise BadInput(f"{path}: unsupported label file type (use .csv, .tsv or .jsonl)")
    out: list[ParsedLabel] = []
    empty = 0
    for line, r in rows:
        where = f"{path}:{line}"
        labels = _row_labels(r, rater, where)
        if not labels:
            empty += 1
            continue
        item_id = str(r.get("item_id") or r.get("id") or "").strip() or None
        ref = _reference(r, where)
        triple = None
        if r.get("question") is not None and ref is not None and r.get("prediction") is not None:
            triple = (str(r["question"]), ref, str(r["prediction"]))
        if item_id is None and triple is None:
            raise BadInput(f"{where}: needs an item_id or question/reference/prediction")
        out += [ParsedLabel(line, item_id, triple, who, label) for who, label in labels]
    return out, empty


def _reference(r: dict, where: str) -> str | None:
    """The row's reference answer(s): ``references`` (a list, kept apart: judging/references.py),
    else ``reference`` or ``answer``."""
    if "references" in r:
        refs = r["references"]
        if not isinstance(refs, list) or not refs or not all(isinstance(x, str) and x.strip() for x in refs):
            raise BadInput(f"{where}: 'references' must be a non-empty list of non-empty strings")
        return encode(refs)
    ref = r.get("reference", r.get("answer"))
    return None if ref is None else str(ref)


def _row_labels(r: dict, rater: str | None, where: str) -> list[tuple[str, str]]:
    """(rater, yes/no) pairs of one row: its ``label`` (with ``rater`` or --rater), or its ``votes``
    (one per rater, named vote1, vote2... by position), or its ``human`` majority (rater "human")."""
    if "votes" in r:
        votes = r["votes"]
        if not isinstance(votes, list):
            raise BadInput(f"{where}: 'votes' must be a list of yes/no labels")
        out = []
        for i, v in enumerate(votes, start=1):
            lab = normalise_label(v, f"{where}: vote {i}")
            if lab is not None:
                out.append((f"{rater or 'vote'}{i}", lab))
        return out
    if "label" not in r and "human" in r:
        lab = normalise_label(r["human"], f"{where}: field 'human'")
        return [] if lab is None else [(rater or "human", lab)]
    label = normalise_label(r.get("label"), where)
    if label is None:
        return []
    who = (r.get("rater") or rater or "").strip()
    if not who:
        raise BadInput(f"{where}: no rater (add a 'rater' column or pass --rater NAME)")
    return [(who, label)]


def import_labels(db: Database, path: Path, rater: str | None = None, sample: str | None = None) -> ImportResult:
    """Validate every row first, then write all labels in one transaction."""
    labels, empty = read_label_file(path, rater)
    res = ImportResult(empty=empty)
    ids = _item_ids(db, sample)
    resolved: list[tuple[str, ParsedLabel]] = []
    new_triples: dict[str, tuple[str, str, str]] = {}
    new_ids: dict[str, str | None] = {}        # new triple -> the id its row gave (its sample item id)
    for lab in labels:
        where = f"{path}:{lab.line}"
        h = None
        if lab.item_id is not None and lab.item_id in ids:
            h = ids[lab.item_id]
            if lab.triple is not None and triple_hash(*lab.triple) != h:
                raise BadInput(f"{where}: item {lab.item_id} has different question/reference/prediction "
                               "text than the sample in the database")
        elif lab.triple is not None and lab.item_id is not None and (sample or _names_a_sample(db, lab.item_id)):
            raise BadInput(f"{where}: unknown item id {lab.item_id!r}"
                           + (f" in sample {sample!r}" if sample else "")
                           + "; a row that adds a new item must not claim an id of an existing sample "
                             "(drop --sample to import rows with their own ids as a new sample)")
        elif lab.triple is not None:
            h = triple_hash(*lab.triple)
            if not _triple_exists(db, h):
                new_triples[h] = lab.triple
                new_ids.setdefault(h, lab.item_id)
        else:
            raise BadInput(f"{where}: unknown item id {lab.item_id!r}"
                           + (f" in sample {sample!r}" if sample else "")
                           + " (draw a sample with `vlmdyn calibrate sample` first)")
        resolved.append((h, lab))
    # conflicts inside the file and against stored labels
    seen: dict[tuple[str, str], tuple[str, int]] = {}
    for h, lab in resolved:
        prev = seen.get((h, lab.rater))
        if prev and prev[0] != lab.label:
            raise BadInput(f"{path}:{lab.line}: rater {lab.rater!r} labels this item {lab.label!r} but "
                           f"{prev[0]!r} on line {prev[1]}")
        seen[(h, lab.rater)] = (lab.label, lab.line)
    with immediate(db):     # the stored labels read under the write lock: another import cannot slip in between
        stored = _stored_labels(db, {h for h, _ in resolved})
        for (h, who), (label, line) in seen.items():
            old = stored.get((h, who))
            if old is not None and old != label:
                raise BadInput(f"{path}:{line}: rater {who!r} already labelled this item {old!r} "
                               f"(now {label!r}); remove the old label first or fix the sheet")
        if new_triples:
            upsert_triples(db, list(new_triples.values()))
            res.new_items = len(new_triples)
        ts = now()
        for (h, who), (label, _line) in seen.items():
            if stored.get((h, who)) == label:
                res.unchanged += 1
                continue
            save_label(db.conn, h, who, label, str(path.name), ts)
            res.imported += 1
            res.raters.add(who)
        # new items join --sample, else a sample named after the file
        add_items(db.conn, [CalibrationItem(sample or path.stem, item_id or "t" + h[:12], h, source=f"file:{path.name}")
                            for h, item_id in new_ids.items()], keep_existing=True, created_at=ts)
    return res


def _item_ids(db: Database, sample: str | None) -> dict[str, str]:
    sql = "SELECT item_id, triple_hash FROM calibration_items"
    args: list = []
    if sample:
        sql += " WHERE sample = ?"
        args.append(sample)
    return {r[0]: r[1] for r in db.execute(sql, args).fetchall()}


def _names_a_sample(db: Database, item_id: str) -> bool:
    """Whether an id has the form of an item of an existing sample (``NAME-0001``)."""
    name, _, num = item_id.rpartition("-")
    return bool(name) and num.isdigit() and db.execute(
        "SELECT 1 FROM calibration_items WHERE sample = ? LIMIT 1", [name]).fetchone() is not None


def _triple_exists(db: Database, h: str) -> bool:
    return db.execute("SELECT 1 FROM triples WHERE hash = ?", [h]).fetchone() is not None


def _stored_labels(db: Database, hashes: set[str]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    hs = list(hashes)
    for i in range(0, len(hs), 500):
        chunk = hs[i:i + 500]
        q = f"SELECT triple_hash, rater, label FROM human_labels WHERE triple_hash IN ({','.join('?' * len(chunk))})"
        for h, r, lab in db.execute(q, chunk).fetchall():
            out[(h, r)] = lab
    return out


@dataclass
class HumanVerdicts:
    verdict: dict[str, str]                  # triple hash -> yes/no (items with enough raters)
    share_yes: dict[str, float]
    n_raters: dict[str, int]
    too_few: dict[str, int]                  # excluded items -> their rater count
    ratings: dict[str, list[str]]            # triple hash -> all labels (for Fleiss)
    by_rater: dict[str, dict[str, str]]      # rater -> triple hash -> label


def human_verdicts(db: Database, agreement: float = 0.75, min_raters: int = 1,
                   sample: str | None = None) -> HumanVerdicts:
    if not 0 < agreement <= 1:
        raise BadInput(f"--agreement must be in (0, 1], got {agreement}")
    sql = "SELECT h.triple_hash, h.rater, h.label FROM human_labels h"
    args: list = []
    if sample:
        sql += " JOIN calibration_items c ON c.triple_hash = h.triple_hash AND c.sample = ?"
        args.append(sample)
    ratings: dict[str, list[str]] = defaultdict(list)
    by_rater: dict[str, dict[str, str]] = defaultdict(dict)
    for h, rater, label in db.execute(sql, args).fetchall():
        ratings[h].append(label)
        by_rater[rater][h] = label
    verdict, share, nr, too_few = {}, {}, {}, {}
    for h, labs in ratings.items():
        nr[h] = len(labs)
        share[h] = labs.count("yes") / len(labs)
        if len(labs) < min_raters:
            too_few[h] = len(labs)
            continue
        verdict[h] = "yes" if share[h] >= agreement - 1e-12 else "no"
    return HumanVerdicts(verdict, share, nr, too_few, dict(ratings), dict(by_rater))
