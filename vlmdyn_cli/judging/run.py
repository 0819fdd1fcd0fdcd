"""Running a judge over stored triples: plan, cache, budget, write.

    judge_triples(db, spec, hashes, reporter)    any stored triples
    judge_run(db, "run1", spec, sets=["unseen"])  a training run's generations

One judgement is keyed by (spec hash, triple hash). The plan sends the backend only
what has no *scored* row yet (unscored rows are judged again; ``rejudge`` judges
everything). The backend hands back one Verdict per item; each is written as it
arrives, in batched transactions, so a killed run loses at most the last unflushed
batch and a rerun completes it without duplicates (the UNIQUE key upserts).
``--max-cost`` is checked here and nowhere else. A dry run asks the backend for an
estimate and writes nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator

from sqlite_utils import Database

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.judging.backends import backend_class
from vlmdyn_cli.judging.backends.base import Context, Item
from vlmdyn_cli.judging.spec import JudgeSpec
from vlmdyn_cli.judging.verdict import Scores, Verdict
from vlmdyn_cli.progress import NullReporter, Reporter
from vlmdyn_cli.store import judgements as store
from vlmdyn_cli.store.batch_jobs import BatchJobs
from vlmdyn_cli.store.db import immediate, now
from vlmdyn_cli.store.runs import get_run

FLUSH_ROWS = 200          # rows per write transaction
FLUSH_SECONDS = 2.0       # ... or at least this often, so a kill loses little work
FETCH_CHUNK = 500


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
    backend_calls: int = 0      # items handed to the backend
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    dry_run: bool = False
    est_prompt_tokens: int | None = None
    est_completion_tokens: int | None = None
    est_cost_usd: float | None = None
    stopped: str | None = None  # why the run stopped early (max cost)
    unscored_reasons: dict = field(default_factory=dict)   # kind of reason -> items left unscored now
    retries: int = 0            # API attempts beyond the first of each item
    throttled: int = 0          # API answers 429 (rate limited)
    failure: str | None = None  # nothing could be judged because of the endpoint (the CLI exits 1)
    first_error: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def row_of(spec: JudgeSpec, v: Verdict, created_at: str) -> store.JudgementRow:
    """The judgements row of a verdict given by ``spec``."""
    ms, md, h = v.scores if v.scores is not None else (None, None, None)
    return store.JudgementRow(spec.hash, v.key, spec.name, v.resolved_model, v.status, v.verdict, v.reason,
                              v.decided_by or spec.name, v.raw, ms, md, h, v.p_yes, v.prompt_tokens,
                              v.completion_tokens, v.cost_usd, v.latency_s, created_at)


def verdict_of(row: store.JudgementRow) -> Verdict:
    scores = Scores(row.ms, row.md, row.h) if row.ms is not None else None
    return Verdict(row.triple_hash, row.status, row.verdict, row.reason, scores, row.p_yes, row.prompt_tokens,
                   row.completion_tokens, row.cost_usd, row.latency_s, row.resolved_model, row.decided_by, row.raw)


class _Writer:
    """Buffers rows and writes them in transactions; thread-safe (backends may call from threads)."""

    def __init__(self, db: Database, flush_rows: int, flush_seconds: float):
        self.db, self.flush_rows, self.flush_seconds = db, flush_rows, flush_seconds
        self.lock = threading.RLock()
        self.buf: list[store.JudgementRow] = []
        self.last = time.monotonic()

    def add(self, spec: JudgeSpec, v: Verdict) -> None:
        with self.lock:
            self.buf.append(row_of(spec, v, now()))
            if len(self.buf) >= self.flush_rows or time.monotonic() - self.last >= self.flush_seconds:
                self.flush()

    def flush(self) -> None:
        with self.lock:
            if self.buf:
                store.upsert(self.db, self.buf)
                self.buf.clear()
            self.last = time.monotonic()


def checked_options(spec: JudgeSpec, backend_options: dict | None = None, *, ready: bool = False):
    """The judge's backend options (its spec's [options] under command-line values), checked before any
    work: an unknown or mistyped one is BadInput naming it. ``ready``: also what the judge needs from
    the environment (an API key...), so a judge that cannot run stops before anything is stored."""
    cls = backend_class(spec.backend)
    options = cls.options_for(spec, backend_options)
    if ready:
        cls.ready(spec, options)
    return options


def preflight(spec: JudgeSpec, backend_options: dict | None = None) -> None:
    """Stop with BadInput, before any work, when this judge cannot run: bad options, a missing
    key or model, a server that cannot be reached."""
    cls = backend_class(spec.backend)
    backend = cls(spec, checked_options(spec, backend_options), Context())
    try:
        backend.check()
    finally:
        backend.close()


def _items(db: Database, hashes: list[str], lock) -> Iterator[Item]:
    for i in range(0, len(hashes), FETCH_CHUNK):
        chunk = hashes[i:i + FETCH_CHUNK]
        with lock:
            triples = store.fetch_triples(db, chunk)
        for h in chunk:
            if h not in triples:
                raise BadInput(f"triple {h[:12]} is not in the triples table")
            yield Item(h, *triples[h])


def judge_triples(db: Database, spec: JudgeSpec, triple_hashes, reporter: Reporter | None = None, *,
                  rejudge: bool = False, limit: int | None = None, max_cost: float | None = None,
                  dry_run: bool = False, backend_options: dict | None = None,
                  flush_rows: int = FLUSH_ROWS, flush_seconds: float = FLUSH_SECONDS) -> JudgeSummary:
    """Judge stored triples (by hash) with ``spec``; returns counts, cost and what was cached.

    ``backend_options``: command-line values (concurrency, n_threads, batch, batch_wait) over the
    spec's [options]; a name the backend does not take is BadInput, before any work.
    """
    t0 = time.perf_counter()
    if max_cost is not None and max_cost < 0:
        raise BadInput(f"--max-cost must be >= 0 (got {max_cost})")
    cls, options = backend_class(spec.backend), checked_options(spec, backend_options)
    # the plan: every distinct triple asked for that this judge has not scored yet
    hashes = list(dict.fromkeys(triple_hashes))
    summary = JudgeSummary(judge=spec.name, spec_hash=spec.hash, total=len(hashes), dry_run=dry_run)
    done = set() if rejudge else store.scored_hashes(db, spec.hash)
    todo = [h for h in hashes if h not in done]
    summary.cached = len(hashes) - len(todo)
    todo = todo if limit is None else todo[:max(0, limit)]
    summary.new = len(todo)
    writer = _Writer(db, flush_rows, flush_seconds)

    def stored(judge: JudgeSpec, key: str):
        with writer.lock:
            found = None if rejudge else store.scored_row(db, judge.hash, key)
        return None if found is None else (found[0], verdict_of(found[1]))

    def tally(name: str, n: int) -> None:
        if name == "retries":
            summary.retries += n
        elif name == "429s":
            summary.throttled += n

    context = Context(reporter=reporter or NullReporter(), stored=stored, remember=writer.add,
                      note=summary.notes.append, tally=tally, jobs=BatchJobs(db, spec.hash))
    if dry_run:
        est = cls.estimate(spec, options, list(_items(db, todo, writer.lock)), context)
        summary.est_prompt_tokens, summary.est_completion_tokens = est.prompt_tokens, est.completion_tokens
        summary.est_cost_usd = est.cost_usd
        summary.notes += est.notes + ([est.no_price] if est.no_price else [])
    else:
        if max_cost is not None and (priced := cls.estimate(spec, options, [], context)).cost_usd is None:
            raise BadInput(f"--max-cost needs a price for judge '{spec.name}': {priced.no_price}")
        backend = cls(spec, options, context) if todo else None   # (a missing key or model stops here)
        with immediate(db):
            for s in (spec, *spec.stages):
                store.register_spec(db, s.hash, s.name, s.record(), now())
        context.reporter.info(f"judge {spec.name} ({spec.hash[:12]}): {summary.cached} cached, "
                              f"{len(todo)} to judge")
        if backend is not None:
            _judge(db, backend, todo, summary, writer, context.reporter,
                   lambda items: _budgeted(items, cls, spec, options, context, summary, max_cost))
            summary.failure = endpoint_failure(spec, summary)
    summary.elapsed_s = time.perf_counter() - t0
    return summary


ENDPOINT_ERRORS = ("HTTP ", "connection error", "timeout", "malformed answer")   # (verdict reasons)


def reason_kind(reason: str | None) -> str:
    """The kind of an unscored reason, for counting: "HTTP 401", "connection error", "parse", ..."""
    r = (reason or "unknown").split(":")[0].split(" (")[0].strip()
    return "timeout" if r.startswith("timeout") else r[:60]


def endpoint_failure(spec: JudgeSpec, s: JudgeSummary) -> str | None:
    """Why no item could be judged, when every item sent failed on the endpoint (else None)."""
    if s.new == 0 or s.scored or s.unscored < s.backend_calls or not s.unscored_reasons:
        return None
    if not all(k.startswith(ENDPOINT_ERRORS) for k in s.unscored_reasons):
        return None
    last = spec.stages[-1] if spec.stages else spec
    where = (last.options.get("base_url") or "https://api.openai.com/v1") if last.backend == "openai" \
        else f"the {last.backend} judge {last.name} ({last.model})"
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(s.unscored_reasons.items(), key=lambda kv: -kv[1]))
    return (f"no item could be judged: every call to {where} failed ({kinds}; e.g. {s.first_error}). "
            "The items stay unscored and are judged again by the next run")


def _judge(db: Database, backend, todo: list[str], summary: JudgeSummary, writer: _Writer, reporter: Reporter,
           budgeted) -> None:
    """Hand the backend the items (while the budget lasts); store and count each verdict as it comes."""
    spec = backend.spec
    with reporter.task(f"judging with {spec.name}", total=len(todo), unit="items") as task:

        def on_verdict(v: Verdict) -> None:
            with writer.lock:
                writer.add(spec, v)
                s = summary
                if v.scored:
                    s.scored += 1
                    s.yes += v.verdict == "yes"
                    s.no += v.verdict == "no"
                else:
                    s.unscored += 1
                    kind = reason_kind(v.reason)
                    s.unscored_reasons[kind] = s.unscored_reasons.get(kind, 0) + 1
                    s.first_error = s.first_error or (v.reason or "")[:200]
                s.cost_usd += v.cost_usd or 0.0
                task.advance(1, cached=s.cached, new=s.scored + s.unscored, unscored=s.unscored,
                             cost=f"${s.cost_usd:.4f}")

        try:
            backend.run(budgeted(_items(db, todo, writer.lock)), on_verdict)
        finally:
            writer.flush()
            backend.close()


def _budgeted(items: Iterable[Item], cls, spec, options, context, summary: JudgeSummary,
              max_cost: float | None) -> Iterator[Item]:
    """The items, handed out while the --max-cost budget lasts (the one place it is checked).

    Spent money is what the verdicts so far report. A backend that pays later (the Batch
    API: costs known only when its jobs finish) is charged each item's estimate up front,
    and an item whose estimate no longer fits is not handed out.
    """
    reserved = 0.0
    for item in items:
        if max_cost is not None:
            est = cls.estimate(spec, options, [item], context).cost_usd or 0.0 if options.pays_later else 0.0
            if summary.cost_usd + reserved >= max_cost or summary.cost_usd + reserved + est > max_cost:
                summary.stopped = (f"--max-cost ${max_cost:g} reached (spent ${summary.cost_usd:.4f}"
                                   + (f", ${reserved:.4f} estimated for Batch API jobs)" if reserved else ")"))
                return
            reserved += est
        summary.backend_calls += 1
        yield item


# ---------------------------------------------------------------- runs


def run_triple_hashes(db: Database, run_name: str, sets: list[str] | None = None,
                      checkpoints: list[int] | None = None) -> list[str]:
    """Triple hashes of a run's generations, optionally restricted to eval sets and checkpoint steps."""
    run_id = get_run(db, run_name).id
    if sets:
        known = store.eval_set_names(db, run_id)
        bad = [s for s in sets if s not in known]
        if bad:
            raise BadInput(f"run {run_name} has no eval set '{bad[0]}'; its sets: {', '.join(known) or '(none)'}")
    hashes = store.run_triple_hashes(db, run_id, sets, checkpoints)
    if not hashes:
        raise BadInput(f"run {run_name} has no generations for that selection (run `vlmdyn infer` first)")
    return hashes


def judge_run(db: Database, run_name: str, spec: JudgeSpec, sets: list[str] | None = None,
              checkpoints: list[int] | None = None, reporter: Reporter | None = None, **kw) -> JudgeSummary:
    """Judge a run's generations (all, or the given eval sets / checkpoint steps)."""
    checked_options(spec, kw.get("backend_options"), ready=not kw.get("dry_run"))
    return judge_triples(db, spec, run_triple_hashes(db, run_name, sets, checkpoints), reporter, **kw)
