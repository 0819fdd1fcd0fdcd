"""What a selection found: per round, each candidate against the base, the decision, the per-category
change; the final composition as a `vlmdyn train` dataset list; the dry-run commands; a figure."""

from __future__ import annotations

import json
import shlex

from vlmdyn_cli.atomic import save_figure
from vlmdyn_cli.select.loop import Arm, Walk


def _arm(a: Arm, base: Arm | None = None) -> dict:
    ms = a.mean_sd()
    d = {"label": a.label, "mix": list(a.mix), "runs": [r.as_dict() for r in a.runs],
         "mean": None if ms is None else round(ms[0], 2),
         "sd": None if ms is None or ms[1] is None else round(ms[1], 2),
         "by_category": {c: round(v, 2) for c, v in a.category_accuracy().items()}}
    if base is not None and a.ready and base.ready:
        b = base.category_accuracy()
        d["category_change"] = {c: round(v - b[c], 2) for c, v in a.category_accuracy().items() if c in b}
    if a.decision is not None:
        d["decision"] = a.decision.as_dict()
    return d


def dataset_sizes(db, names) -> dict[str, dict]:
    marks = ",".join("?" * len(names))
    return {r[0]: {"conversations": r[1], "qa_pairs": r[2]} for r in db.execute(
        f"SELECT name, n_kept, n_qa FROM datasets WHERE name IN ({marks})", list(names))}


def build_report(db, w: Walk) -> dict:
    p = w.plan
    out: dict = {"plan": p.name, "source": p.source, "judge": p.judge, "seeds": list(p.seeds),
                 "benchmark": list(p.benchmark), "tolerance": p.tolerance, "seed_margin": p.seed_margin,
                 "complete": w.complete, "rounds": []}
    for r in w.rounds:
        out["rounds"].append({"round": r.number, "category": r.category, "decided": r.decided,
                              "base": _arm(r.base), "candidates": [_arm(a, r.base) for a in r.candidates],
                              "kept": r.kept})
    if w.selected is not None:
        sizes = dataset_sizes(db, w.selected.mix)
        out["selected"] = {**_arm(w.selected, w.rounds[0].base if w.rounds else None),
                           "datasets": [{"name": n, **sizes.get(n, {})} for n in w.selected.mix],
                           "train_config": {"data": {"dataset": list(w.selected.mix)}}}
        out["all"] = _arm(w.everything, w.rounds[0].base if w.rounds else None)
    out["pending"] = [{"run": s.name, "mix": list(s.mix), "seed": s.seed, "status": s.status} for s in w.pending]
    return out


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _mean(a: dict) -> str:
    if a["mean"] is None:
        return "pending"
    return f"{a['mean']:.1f}" + (f" ± {a['sd']:.1f}" if a["sd"] is not None else "")


def _changes(a: dict) -> str:
    ch = a.get("category_change") or {}
    return ", ".join(f"{c} {v:+.1f}" for c, v in ch.items()) or "-"


def render_text(rep: dict) -> str:
    """The report as plain text (a table per round, then the final composition)."""
    lines = [f"Selection plan {rep['plan']}: judge {rep['judge']}, seeds {rep['seeds']}, benchmark "
             f"{' + '.join(rep['benchmark'])}; keep when candidate >= base - {rep['tolerance']:g} points"
             + (f" with a margin of {rep['seed_margin']:g} standard errors over seed noise"
                if rep["seed_margin"] else "")
             + ". Accuracy in % of scored benchmark items, mean ± sd over seeds."]
    for r in rep["rounds"]:
        lines.append("")
        lines.append(f"Round {r['round']} ({r['category']}): base {' + '.join(r['base']['mix'])} = "
                     f"{_mean(r['base'])}")
        lines.append(f"  {'candidate':<16} {'accuracy':>14} {'vs base':>8}  {'decision':<9} per-category change")
        for a in r["candidates"]:
            d = a.get("decision")
            lines.append(f"  {a['label'].split('-', 1)[1]:<16} {_mean(a):>14} "
                         f"{'' if d is None else format(d['diff'], '+.1f'):>8}  "
                         f"{'' if d is None else ('keep' if d['keep'] else 'reject'):<9} {_changes(a)}")
        for a in r["candidates"]:
            if a.get("decision"):
                lines.append(f"    {a['label'].split('-', 1)[1]}: {a['decision']['reason']}")
        if r["decided"]:
            lines.append(f"  kept: {', '.join(r['kept']) or '(none)'}")
    if "selected" in rep:
        s, a = rep["selected"], rep["all"]
        lines += ["", f"Selected mix: {' + '.join(s['mix'])} = {_mean(s)} (vs first base: {_changes(s)})",
                  f"All candidates: {' + '.join(a['mix'])} = {_mean(a)} (vs first base: {_changes(a)})",
                  "Final composition (a `vlmdyn train` dataset list):"]
        for d in s["datasets"]:
            lines.append(f"  {d['name']}: {d.get('conversations', '?')} conversations, {d.get('qa_pairs', '?')} QA pairs")
        lines.append(f"  [data]\n  dataset = {json.dumps(s['mix'])}")
    if rep["pending"]:
        lines += ["", f"Not finished: {len(rep['pending'])} run(s) to train or evaluate, e.g. "
                      f"{rep['pending'][0]['run']} ({rep['pending'][0]['status']}); run `vlmdyn select` "
                      "again (or `--dry-run` for their commands)"]
    return "\n".join(lines)


def _toml_value(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(v)


def train_commands(w: Walk, db_path: str, out_dir: str) -> list[str]:
    """One `vlmdyn train` command per pending run that is not trained yet (each independent: run them in
    parallel, e.g. under `accelerate launch -m vlmdyn_cli train ...`), then `vlmdyn select` collects them."""
    cmds = []
    for s in w.pending:
        if s.status == "done":
            continue
        sets = [f"data.dataset={json.dumps(list(s.mix))}", "checkpoints.steps=[]", "checkpoints.final=true",
                f"train.out_dir={json.dumps(out_dir)}"]
        for section, body in w.plan.training.items():
            for k, v in body.items():
                if not (section == "train" and k == "out_dir"):
                    sets.append(f"{section}.{k}={_toml_value(v)}")
        args = ["vlmdyn", "train", "--db", str(db_path), "--seed", str(s.seed), "--run", s.name]
        if s.status != "missing":
            args.append("--resume")
        for x in sets:
            args += ["--set", x]
        cmds.append(shlex.join(args))
    return cmds


def draw_figure(rep: dict, path) -> str:
    """Bars per round: base and each candidate (mean ± sd), kept ones solid, rejected hatched."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = []
    for r in rep["rounds"]:
        arms.append((f"r{r['round']} base", r["base"], None))
        arms += [(a["label"].split("-", 1)[1], a, (a.get("decision") or {}).get("keep")) for a in r["candidates"]]
    if "selected" in rep:
        arms += [("selected", rep["selected"], None), ("all", rep["all"], None)]
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(arms) + 1), 3.6))
    for i, (label, a, keep) in enumerate(arms):
        m = a["mean"] or 0.0
        ax.bar(i, m, yerr=a["sd"] or 0, color="#888888" if keep is None else ("#2a7" if keep else "#c44"),
               hatch=None if keep in (None, True) else "//", edgecolor="black", capsize=3)
    ax.set_xticks(range(len(arms)), [x[0] + (" (pending)" if x[1]["mean"] is None else "") for x in arms],
                  rotation=30, ha="right")
    ax.set_ylabel("benchmark accuracy (%)")
    ax.set_title(f"Individual Select: {rep['plan']} (green kept, red rejected)")
    fig.tight_layout()
    save_figure(fig, path, "--figure", format="png", dpi=120)
    plt.close(fig)
    return str(path)
