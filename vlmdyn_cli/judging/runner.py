"""Running a judge over stored triples, with the content-addressed cache.

One judgement is keyed by (spec hash, triple hash): a rerun sends the backend
only what has no *scored* row yet (unscored rows are retried; ``rejudge``
forces everything). Results are written as they arrive, in batched
transactions, so a killed run loses at most the last unflushed batch and a
rerun completes it without duplicates (the UNIQUE key upserts).

    judge_triples(db, spec, hashes, reporter)    any stored triples
    judge_run(db, "run1", spec, sets=["unseen"])  a training run's generations
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends import create_backend
from vlmdyn_cli.judging.backends.base import JudgeResponse
from vlmdyn_cli.judging.parse import parse_output
from vlmdyn_cli.judging.prompts import estimate_tokens, render_request
from vlmdyn_cli.judging.spec import JudgeSpec
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store.db import now
from vlmdyn_cli.store.runs import get_run

FLUSH_ROWS = 200          # rows per write transaction
FLUSH_SECONDS = 2.0       # ... or at least this often, so a kill loses little work
FETCH_CHUNK = 500

COLUMNS = ("spec_hash", "triple_hash", "judge_name", "resolved_model", "status", "verdict", "reason",
           "decided_by", "raw", "ms", "md", "h", "p_yes", "prompt_tokens", "completion_tokens",
           "cost_usd", "latency_s", "created_at")
UPSERT_SQL = (
    f"INSERT INTO judgements({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT(spec_hash, triple_hash) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in COLUMNS[2:])
)


@dataclass
class JudgeSummary:
    judge: str
    spec_hash: str
    total: int = 0              # distinct triples asked for
    cached: int = 0             # already scored under this spec: no backend call
    new: int = 0                # sent (or, in a dry run, to be sent) to the backend
    scored: int = 0
    unscored: int = 0
    yes: int = 0
    no: int = 0
    backend_calls: int = 0      # requests handed to the backend
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    dry_run: bool = False
    est_prompt_tokens: int | None = None
    est_completion_tokens: int | None = None
    est_cost_usd: float | None = None
    stopped: str | None = None  # why the run stopped early (max cost)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def register_spec(db: Database, spec: JudgeSpec) -> None:
    import json

    db.conn.execute("INSERT OR IGNORE INTO judge_specs(hash, name, spec_json, created_at) VALUES (?,?,?,?)",
                    (spec.hash, spec.name, json.dumps(spec.record(), ensure_ascii=False), now()))


def scored_hashes(db: Database, spec_hash: str) -> set[str]:
    return {r[0] for r in db.conn.execute(
        "SELECT triple_hash FROM judgements WHERE spec_hash = ? AND status = 'scored'", (spec_hash,))}


def _fetch_triples(db: Database, hashes: list[str]) -> dict[str, tuple[str, str, str]]:
    out: dict[str, tuple[str, str, str]] = {}
    for i in range(0, len(hashes), FETCH_CHUNK):
        chunk = hashes[i:i + FETCH_CHUNK]
        q = f"SELECT hash, question, answer, prediction FROM triples WHERE hash IN ({','.join('?' * len(chunk))})"
        out.update({h: (qq, a, p) for h, qq, a, p in db.conn.execute(q, chunk)})
    return out


def _stage_for_llm(spec: JudgeSpec) -> JudgeSpec:
    return spec.stages[-1] if spec.stages else spec


def response_row(spec: JudgeSpec, resp: JudgeResponse, created_at: str) -> tuple:
    """The judgements row for one backend response (strict parse, never guessing)."""
    llm = _stage_for_llm(spec)
    fmt = resp.extra.get("format", llm.output)
    decided_by = resp.extra.get("decided_by", spec.name)
    stage = next((s for s in spec.stages if s.name == decided_by), llm)
    verdict = ms = md = h = None
    reason = resp.extra.get("reason")
    if resp.error:
        status, reason = "unscored", resp.error
    elif resp.text is None and resp.p_yes is not None:
        # score mode "only": the verdict is P(yes) against the spec's threshold
        thr = float(stage.decoding.get("threshold", 0.5))
        status, verdict = "scored", ("yes" if resp.p_yes >= thr else "no")
        reason = reason or f"p_yes {resp.p_yes:.4f} vs threshold {thr}"
    else:
        parsed = parse_output(resp.text, fmt)
        status, verdict, ms, md, h = parsed.status, parsed.verdict, parsed.ms, parsed.md, parsed.h
        if parsed.status == "unscored":
            reason = f"parse: {parsed.reason}"
    raw = resp.text if resp.text is not None else (f"p_yes={resp.p_yes:.6f}" if resp.p_yes is not None else None)
    cost = resp.cost_usd
    if cost is None and spec.backend in ("rules",):
        cost = 0.0
    return (spec.hash, resp.key, spec.name, resp.resolved_model, status, verdict, reason, decided_by, raw,
            ms, md, h, resp.p_yes, resp.prompt_tokens, resp.completion_tokens, cost, resp.latency_s,
            created_at)


class _Writer:
    """Buffers rows and writes them in transactions; thread-safe (backends may call from threads)."""

    def __init__(self, db: Database, spec: JudgeSpec, summary: JudgeSummary, task, flush_rows: int,
                 flush_seconds: float):
        self.db, self.spec, self.summary, self.task = db, spec, summary, task
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.lock = threading.RLock()
        # a cascade's LLM stage results are also stored under the stage's own spec (shared cache)
        self.llm_stage = spec.stages[-1] if spec.stages else None
        self.buf: list[tuple] = []
        self.last = time.monotonic()

    def on_result(self, resp: JudgeResponse) -> None:
        if resp.extra.get("not_sent"):
            return  # the backend never sent it (budget reached): not a judgement
        with self.lock:
            row = response_row(self.spec, resp, now())
            self.buf.append(row)
            stage = self.llm_stage
            if stage is not None and row[7] == stage.name and not resp.extra.get("reused"):
                self.buf.append(response_row(stage, resp, row[-1]))
            s = self.summary
            if row[4] == "scored":
                s.scored += 1
                s.yes += row[5] == "yes"
                s.no += row[5] == "no"
            else:
                s.unscored += 1
            s.cost_usd += row[15] or 0.0
            if len(self.buf) >= self.flush_rows or time.monotonic() - self.last >= self.flush_seconds:
                self.flush()
            self.task.advance(1, cached=s.cached, new=s.scored + s.unscored, unscored=s.unscored,
                              cost=f"${s.cost_usd:.4f}")

    def flush(self) -> None:
        with self.lock:
            if self.buf:
                with self.db.atomic():
                    self.db.conn.executemany(UPSERT_SQL, self.buf)
                self.buf.clear()
            self.last = time.monotonic()


def judge_triples(db: Database, spec: JudgeSpec, triple_hashes, reporter: Reporter | None = None, *,
                  rejudge: bool = False, limit: int | None = None, max_cost: float | None = None,
                  dry_run: bool = False, backend_options: dict | None = None,
                  flush_rows: int = FLUSH_ROWS, flush_seconds: float = FLUSH_SECONDS) -> JudgeSummary:
    """Judge stored triples (by hash) with ``spec``; returns counts, cost and what was cached."""
    reporter = reporter or NullReporter()
    t0 = time.perf_counter()
    hashes = list(dict.fromkeys(triple_hashes))
    summary = JudgeSummary(judge=spec.name, spec_hash=spec.hash, total=len(hashes), dry_run=dry_run)
    done = set() if rejudge else scored_hashes(db, spec.hash)
    todo = [h for h in hashes if h not in done]
    summary.cached = len(hashes) - len(todo)
    if limit is not None:
        todo = todo[:max(0, limit)]
    summary.new = len(todo)
    if dry_run:
        _estimate(db, spec, todo, summary, backend_options or {})
        summary.elapsed_s = time.perf_counter() - t0
        return summary
    with db.atomic():
        register_spec(db, spec)
        for stage in spec.stages:
            register_spec(db, stage)
    reporter.info(f"judge {spec.name} ({spec.hash[:12]}): {summary.cached} cached, {len(todo)} to judge")
    if not todo:
        summary.elapsed_s = time.perf_counter() - t0
        return summary

    opts = dict(backend_options or {})
    opts.setdefault("max_cost", max_cost)
    opts.update(db=db, spec_hash=spec.hash, reporter=reporter, rejudge=rejudge)
    backend = create_backend(spec, opts)
    with reporter.task(f"judging with {spec.name}", total=len(todo), unit="items") as task:
        writer = _Writer(db, spec, summary, task, flush_rows, flush_seconds)

        def requests():
            for i in range(0, len(todo), FETCH_CHUNK):
                chunk = todo[i:i + FETCH_CHUNK]
                with writer.lock:
                    triples = _fetch_triples(db, chunk)
                for h in chunk:
                    if max_cost is not None and summary.cost_usd >= max_cost:
                        summary.stopped = f"--max-cost ${max_cost:g} reached (spent ${summary.cost_usd:.4f})"
                        return
                    if h not in triples:
                        raise BadInput(f"triple {h[:12]} is not in the triples table")
                    summary.backend_calls += 1
                    yield render_request(spec, h, *triples[h])

        try:
            backend.run(requests(), writer.on_result)
        finally:
            writer.flush()
            backend.close()
    pending = getattr(backend, "pending_summary", None)
    if callable(pending):
        note = pending()
        if note:
            summary.notes.append(str(note))
    summary.elapsed_s = time.perf_counter() - t0
    return summary


def _estimate(db: Database, spec: JudgeSpec, todo: list[str], summary: JudgeSummary, opts: dict) -> None:
    """Dry run: estimated tokens and cost of the new items (rules-decided items cost nothing)."""
    from vlmdyn_cli.judging import prices
    from vlmdyn_cli.judging.cascade import cascade_rules

    llm = _stage_for_llm(spec)
    if spec.backend == "rules":
        summary.est_prompt_tokens = summary.est_completion_tokens = 0
        summary.est_cost_usd = 0.0
        return
    rules = cascade_rules(spec) if spec.stages else None
    llm_done = scored_hashes(db, llm.hash) if spec.stages else set()   # reused by the cascade
    n_llm, p_tok = 0, 0
    for i in range(0, len(todo), FETCH_CHUNK):
        triples = _fetch_triples(db, todo[i:i + FETCH_CHUNK])
        for h, t in triples.items():
            req = render_request(spec, h, *t)
            if rules is not None and (h in llm_done or rules.respond(req).text is not None):
                continue
            n_llm += 1
            p_tok += estimate_tokens(req)
    c_tok = n_llm * (1 if llm.score_mode == "only" else int(llm.decoding.get("max_tokens", 64)) // 2)
    summary.est_prompt_tokens, summary.est_completion_tokens = p_tok, c_tok
    o = llm.options | {k: v for k, v in opts.items() if v is not None}
    if llm.backend != "openai":
        summary.est_cost_usd = 0.0          # local backends: no money, only time
    else:
        # OpenAI's table applies to api.openai.com only; another server costs what the spec says (or unknown)
        base_url = o.get("base_url")
        table_model = llm.model if not base_url or "api.openai.com" in base_url else None
        price = prices.price_from_spec(table_model, o.get("price_in"), o.get("price_out"))
        summary.est_cost_usd = prices.cost_usd(price, p_tok, c_tok, batch=bool(o.get("batch")))
    if rules is not None:
        summary.notes.append(f"{summary.new - n_llm} of {summary.new} new items decided by rules or already "
                             f"judged by {llm.name}, {n_llm} go to {llm.name}")


# ---------------------------------------------------------------- runs


def run_triple_hashes(db: Database, run_name: str, sets: list[str] | None = None,
                      checkpoints: list[int] | None = None) -> list[str]:
    """Triple hashes of a run's generations, optionally restricted to eval sets and checkpoint steps."""
    run_id = get_run(db, run_name).id
    where, args = ["g.run_id = ?"], [run_id]
    join = ""
    if sets:
        known = [r[0] for r in db.conn.execute("SELECT name FROM eval_sets WHERE run_id = ?", (run_id,))]
        bad = [s for s in sets if s not in known]
        if bad:
            raise BadInput(f"run {run_name} has no eval set '{bad[0]}'; its sets: {', '.join(known) or '(none)'}")
        join = ("JOIN eval_set_members m ON m.qa_id = g.qa_id "
                "JOIN eval_sets s ON s.id = m.set_id AND s.run_id = g.run_id")
        where.append(f"s.name IN ({','.join('?' * len(sets))})")
        args += sets
    if checkpoints:
        where.append(f"g.step IN ({','.join('?' * len(checkpoints))})")
        args += list(checkpoints)
    _ensure_triples(db, run_id)
    sql = (f"SELECT g.triple_hash FROM generations g {join} WHERE {' AND '.join(where)} "
           "GROUP BY g.triple_hash ORDER BY MIN(g.step), MIN(g.id)")
    hashes = [r[0] for r in db.conn.execute(sql, args)]
    if not hashes:
        raise BadInput(f"run {run_name} has no generations for that selection (run `vlmdyn infer` first)")
    return hashes


def _ensure_triples(db: Database, run_id: int) -> None:
    """Generations whose triple is not stored yet get it (question/answer from qa_pairs)."""
    missing = db.conn.execute(
        "SELECT g.triple_hash, q.question, q.answer, g.prediction FROM generations g "
        "JOIN qa_pairs q ON q.id = g.qa_id LEFT JOIN triples t ON t.hash = g.triple_hash "
        "WHERE g.run_id = ? AND t.hash IS NULL", (run_id,)).fetchall()
    if missing:
        with db.atomic():
            db.conn.executemany("INSERT OR IGNORE INTO triples(hash, question, answer, prediction) "
                                "VALUES (?,?,?,?)", missing)


def judge_run(db: Database, run_name: str, spec: JudgeSpec, sets: list[str] | None = None,
              checkpoints: list[int] | None = None, reporter: Reporter | None = None, **kw) -> JudgeSummary:
    """Judge a run's generations (all, or the given eval sets / checkpoint steps)."""
    return judge_triples(db, spec, run_triple_hashes(db, run_name, sets, checkpoints), reporter, **kw)
