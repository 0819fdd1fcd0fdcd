"""A selection plan (`vlmdyn select PLAN.toml`): read, check, and compare with the stored one.

    name = "colours"                       # names the runs: <name>-r<round>-<candidate>-s<seed>
    base = ["base"]                        # imported dataset(s) of the starting mix
    seeds = [0, 1]                         # every run is trained once per seed
    judge = "rules"                        # judge spec of the benchmark

    [[round]]                              # tried in this order, one category of candidates each
    category = "spatial"
    candidates = ["position", "flipped"]   # imported datasets, each tried alone on top of the base

    [benchmark]
    datasets = ["bench"]                   # imported held-out evaluation data (never trained on)
    size = 0                               # QA pairs sampled from them (0 = all)

    [accept]
    tolerance = 1.0                        # points below the base that still count as comparable
    seed_margin = 0.0                      # standard errors of the seed-paired difference to demand

    [training]                             # `vlmdyn train` config sections for every run
    train = { lr = 0.001 }

Unknown keys, wrong types and empty lists are a ``BadInput`` naming the key
(with a did-you-mean); datasets are checked against the database by
``check_datasets`` before anything is trained.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlmdyn_cli.errors import BadInput, did_you_mean

TOP_KEYS = ("name", "base", "seeds", "judge", "round", "benchmark", "accept", "training")
ROUND_KEYS = ("category", "candidates")
BENCH_KEYS = ("datasets", "size")
ACCEPT_KEYS = ("tolerance", "seed_margin")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# what select sets itself in every run's training config
RESERVED_TRAINING = {"data": ("dataset",), "checkpoints": ("steps", "final", "include_step_0")}


@dataclass(frozen=True)
class Round:
    category: str
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class SelectPlan:
    name: str
    base: tuple[str, ...]
    rounds: tuple[Round, ...]
    benchmark: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    judge: str = "rules"
    bench_size: int = 0
    tolerance: float = 1.0
    seed_margin: float = 0.0
    training: dict = field(default_factory=dict)
    source: str = ""                     # the file it came from (not part of the plan's identity)

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(c for r in self.rounds for c in r.candidates)

    @property
    def order(self) -> dict[str, int]:
        """Canonical position of every training dataset: a mix is always listed in this order."""
        return {n: i for i, n in enumerate(self.base + self.candidates)}

    def mix(self, names) -> tuple[str, ...]:
        return tuple(sorted(set(names), key=self.order.__getitem__))

    def identity(self) -> dict:
        d = asdict(self)
        d.pop("source")
        return d


def _where(source: str) -> str:
    return source or "plan"


def _names(value, key: str, src: str, allow_str: bool = False) -> tuple[str, ...]:
    if allow_str and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadInput(f"{src}: '{key}' must be a non-empty list of dataset names, got {value!r}")
    dup = sorted({v for v in value if value.count(v) > 1})
    if dup:
        raise BadInput(f"{src}: '{key}' names {', '.join(dup)} more than once")
    return tuple(value)


def _number(value, key: str, src: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{src}: '{key}' must be a number, got {value!r} ({type(value).__name__})")
    if not value >= minimum or value != value or value == float("inf"):
        raise BadInput(f"{src}: '{key}' must be a finite number >= {minimum:g}, got {value!r}")
    return float(value)


def _unknown(table: dict, known: tuple[str, ...], where: str, src: str) -> None:
    for k in table:
        if k not in known:
            raise BadInput(f"{src}: unknown key '{where}{k}'{did_you_mean(k, known)}; known: {', '.join(known)}")


def _table(raw: dict, key: str, src: str) -> dict:
    t = raw.get(key, {})
    if not isinstance(t, dict):
        raise BadInput(f"{src}: '{key}' must be a table ([{key}])")
    return t


def parse_plan(raw: dict, source: str = "") -> SelectPlan:
    """The checked plan from parsed TOML (``source`` names the file in messages)."""
    src = _where(source)
    _unknown(raw, TOP_KEYS, "", src)
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadInput(f"{src}: 'name' must be a word of letters, digits, '_', '.' or '-' (it names the runs), "
                       f"got {name!r}")
    if "base" not in raw:
        raise BadInput(f"{src}: 'base' is missing: the imported dataset(s) of the starting mix")
    base = _names(raw["base"], "base", src, allow_str=True)
    rounds_raw = raw.get("round")
    if not isinstance(rounds_raw, list) or not rounds_raw:
        raise BadInput(f"{src}: no [[round]] tables: give at least one category of candidates")
    rounds = []
    for i, r in enumerate(rounds_raw, 1):
        if not isinstance(r, dict):
            raise BadInput(f"{src}: round {i} must be a table ([[round]])")
        _unknown(r, ROUND_KEYS, f"round[{i}].", src)
        cat = r.get("category")
        if not isinstance(cat, str) or not cat:
            raise BadInput(f"{src}: round {i}: 'category' must be a non-empty string, got {cat!r}")
        if not r.get("candidates"):
            raise BadInput(f"{src}: round {i} (category {cat!r}) has no candidates: an empty category")
        rounds.append(Round(cat, _names(r["candidates"], f"round[{i}].candidates", src)))
    every = list(base) + [c for r in rounds for c in r.candidates]
    dup = sorted({c for c in every if every.count(c) > 1})
    if dup:
        raise BadInput(f"{src}: dataset(s) {', '.join(dup)} appear more than once among base and candidates")
    bench = _table(raw, "benchmark", src)
    _unknown(bench, BENCH_KEYS, "benchmark.", src)
    if "datasets" not in bench:
        raise BadInput(f"{src}: [benchmark] datasets is missing: the imported held-out evaluation data")
    bench_ds = _names(bench["datasets"], "benchmark.datasets", src, allow_str=True)
    trained = sorted(set(bench_ds) & set(every))
    if trained:
        raise BadInput(f"{src}: benchmark dataset(s) {', '.join(trained)} are also trained on (base or candidate): "
                       "a benchmark the runs were trained on measures nothing")
    size = bench.get("size", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadInput(f"{src}: 'benchmark.size' must be an integer >= 0 (0 = all), got {size!r}")
    acc = _table(raw, "accept", src)
    _unknown(acc, ACCEPT_KEYS, "accept.", src)
    tolerance = _number(acc.get("tolerance", 1.0), "accept.tolerance", src)
    margin = _number(acc.get("seed_margin", 0.0), "accept.seed_margin", src)
    seeds = raw.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise BadInput(f"{src}: 'seeds' must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise BadInput(f"{src}: 'seeds' repeats a seed: {seeds}")
    judge = raw.get("judge", "rules")
    if not isinstance(judge, str) or not judge:
        raise BadInput(f"{src}: 'judge' must be a judge spec name or path, got {judge!r}")
    training = _table(raw, "training", src)
    for section, keys in RESERVED_TRAINING.items():
        given = training.get(section)
        for k in keys:
            if isinstance(given, dict) and k in given:
                raise BadInput(f"{src}: 'training.{section}.{k}' is set by select itself (the mix of each run, "
                               "its last step as the only checkpoint); remove it")
    if source and judge.endswith(".toml") and not Path(judge).is_absolute():
        judge = str((Path(source).parent / judge).resolve())
    return SelectPlan(name, base, tuple(rounds), bench_ds, tuple(seeds), judge, size, tolerance, margin,
                      training, source)


def load_plan(path: str | Path) -> SelectPlan:
    from vlmdyn_cli.training.config import read_toml

    return parse_plan(read_toml(path), str(path))


def training_config(plan: SelectPlan, mix: tuple[str, ...], out_dir: str):
    """The checked `vlmdyn train` config of one run of the plan."""
    from vlmdyn_cli.training.config import load_config

    ov = json.loads(json.dumps(plan.training))
    ov.setdefault("data", {})["dataset"] = list(mix)
    ov["checkpoints"] = {"steps": [], "final": True, "include_step_0": False}
    ov.setdefault("train", {}).setdefault("out_dir", out_dir)
    return load_config(None, ov, overrides_from=f"{_where(plan.source)} [training]")


# ---------------------------------------------------------------- the database side


def check_datasets(db, plan: SelectPlan) -> dict[str, dict]:
    """Every dataset of the plan by name ({id, name, source_sha256, n_qa}); BadInput naming the missing ones."""
    rows = {r["name"]: r for r in db.query("SELECT id, name, source_sha256, n_qa FROM datasets")}
    missing = [n for n in plan.base + plan.candidates + plan.benchmark if n not in rows]
    if missing:
        hints = "; ".join(f"'{n}'{did_you_mean(n, rows)}" for n in missing)
        raise BadInput(f"{_where(plan.source)}: dataset(s) not imported: {hints}. Imported: "
                       f"{', '.join(rows) or '(none)'}; import with `vlmdyn data import FILE --name NAME`")
    empty = [n for n in plan.base + plan.candidates + plan.benchmark if not rows[n]["n_qa"]]
    if empty:
        raise BadInput(f"{_where(plan.source)}: dataset(s) {', '.join(empty)} have no QA pairs")
    return rows


def canonical(plan: SelectPlan, datasets: dict[str, dict]) -> dict:
    """The plan as stored: its identity plus the content hash of every dataset it names."""
    return {**plan.identity(), "dataset_sha256": {n: datasets[n]["source_sha256"] for n in sorted(datasets)
                                                  if n in plan.base + plan.candidates + plan.benchmark}}


def plan_hash(canon: dict) -> str:
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


def changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """What differs between two canonical plans, as 'key: old -> new' lines."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changes(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def record_plan(db, plan: SelectPlan, datasets: dict[str, dict], write: bool = True) -> None:
    """Store the plan on its first run; refuse a changed plan under the same name (saying what changed)."""
    from vlmdyn_cli.store.db import now

    canon = canonical(plan, datasets)
    h = plan_hash(canon)
    row = db.execute("SELECT plan_hash, plan_json FROM select_plans WHERE name = ?", [plan.name]).fetchone()
    if row is None:
        if write:
            with db.atomic():
                db.conn.execute("INSERT INTO select_plans(name, plan_hash, plan_json, created_at) VALUES (?,?,?,?)",
                                [plan.name, h, json.dumps(canon, sort_keys=True), now()])
        return
    if row[0] != h:
        diff = changes(json.loads(row[1]), canon)
        raise BadInput(f"plan '{plan.name}' was run before with different contents; its runs would not match. "
                       f"Changed:\n  " + "\n  ".join(diff) + "\nRestore the plan or give it a new 'name'.")


def stored_plan(db, name: str) -> dict | None:
    row = db.execute("SELECT plan_json FROM select_plans WHERE name = ?", [name]).fetchone()
    return json.loads(row[0]) if row else None
