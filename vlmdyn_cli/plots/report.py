"""One self-contained document about an experiment: `vlmdyn report`.

Sections: the selection (dataset, runs, judge), Table 1 (category shares from
qa_pairs next to the paper's), the judge and its calibration (calibration_results),
accuracy per checkpoint x set x category with counts, every figure, the run configs.
HTML embeds the figures as base64 PNG (opens offline); Markdown writes the PNGs
into ``<name>_figures/`` beside the file.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from vlmdyn_cli.atomic import check_folder, check_output, write_text
from vlmdyn_cli.data.categories import CATEGORIES, PAPER_MIX
from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.plots import aggregate as A
from vlmdyn_cli.plots import figures as F
from vlmdyn_cli.progress import NullReporter

CAL_KEYS = (("n_items", "items"), ("n_scored", "scored"), ("n_unscored", "unscored"), ("accuracy", "accuracy"),
            ("precision", "precision"), ("recall", "recall"), ("f1", "F1"), ("kappa", "kappa"),
            ("auc_p_yes", "AUC of p_yes"))


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def calibration(db, judge: A.JudgeRef) -> dict | None:
    rows = A._q(db, "SELECT metrics_json, agreement_threshold, n_items, created_at FROM calibration_results "
                    "WHERE spec_hash = ? ORDER BY id DESC LIMIT 1", [judge.hash])
    if not rows:
        return None
    metrics = json.loads(rows[0][0])
    return {"agreement_threshold": rows[0][1], "n_items": rows[0][2], "created_at": rows[0][3],
            "metrics": {label: metrics.get(key) for key, label in CAL_KEYS if key in metrics}}


def accuracy_table(db, sel: A.Selection) -> tuple[list[str], list[dict]]:
    """Rows (set, step) with one cell per category plus 'all': mean, std, pooled counts."""
    A.ensure_cells(db, sel)
    by_cat = A.seed_stats(db, sel, ["s.name", "c.category"], cells_ready=True)
    overall = A.seed_stats(db, sel, ["s.name"], cells_ready=True)
    sets = {s["name"]: s for s in A.set_info(db, sel)}
    cats = [c for c in CATEGORIES if any(p.key[1] == c for p in by_cat)]
    if any(p.key[1] is None for p in by_cat):
        cats.append(None)
    rows: dict[tuple, dict] = {}
    for p in overall:
        rows[(p.key[0], p.step)] = {"set": p.key[0], "step": p.step, "all": p.as_dict()}
    for p in by_cat:
        rows.setdefault((p.key[0], p.step), {"set": p.key[0], "step": p.step})[p.key[1] or "(none)"] = p.as_dict()

    for (name, step), row in rows.items():
        info = sets.get(name, {})
        row["status"] = ("unseen" if info.get("kind") != "seen" else
                         "trained" if (info.get("k_step") or 0) <= step else "not yet trained")

    def order(key):
        s = sets.get(key[0], {})
        return (s.get("kind") != "seen", s.get("k_step") or 0, key[0], key[1])

    return [c or "(none)" for c in cats], [rows[k] for k in sorted(rows, key=order)]


def run_configs(db, sel: A.Selection) -> dict:
    rows = A._q(db, f"SELECT name, seed, model_id, status, total_steps, global_batch, checkpoint_steps_json, "
                    f"config_json FROM runs WHERE id IN ({A._ph(len(sel.runs))}) ORDER BY seed, name", sel.run_ids)
    configs = {r[0]: json.loads(r[7] or "{}") for r in rows}
    keys = set().union(*[c.keys() for c in configs.values()]) if configs else set()
    shared = {k: v for k in sorted(keys) if len({json.dumps(c.get(k), sort_keys=True) for c in configs.values()}) == 1
              for v in [next(iter(configs.values())).get(k)]}
    runs = [{"run": r[0], "seed": r[1], "model": r[2], "status": r[3], "total_steps": r[4], "global_batch": r[5],
             "checkpoints": r[6], "differs": {k: v for k, v in configs[r[0]].items() if k not in shared}}
            for r in rows]
    return {"shared": shared, "runs": runs}


def collect(db, sel: A.Selection, figure_dir: Path, reporter=None) -> dict:
    """Everything the report shows, figures rendered to PNG files in ``figure_dir``."""
    from vlmdyn_cli.plots.render import draw

    A.ensure_cells(db, sel, reporter)
    ds_id = sel.runs[0].dataset_id
    cats, table = accuracy_table(db, sel)
    figs = []
    with (reporter or NullReporter()).task("drawing figures", total=len(F.FIGURES), unit="figures") as task:
        for name in F.FIGURES:
            task.advance(0, figure=name)
            try:
                spec = F.build(db, name, sel)
            except BadInput as exc:
                figs.append({"name": name, "missing": str(exc)})
                task.advance(1)
                continue
            path = draw(spec, figure_dir / f"{name}.png")
            figs.append({"name": name, "title": spec["title"], "path": path, "caption": spec.get("caption", ""),
                         "notes": spec.get("notes", [])})
            task.advance(1)
    return {"dataset": sel.dataset, "runs": [r.name for r in sel.runs], "judge": sel.judge,
            "shares": A.category_shares(db, ds_id), "calibration": calibration(db, sel.judge),
            "totals": A.totals(db, sel), "categories": cats, "table": table, "figures": figs,
            "configs": run_configs(db, sel)}


def _cell(d: dict | None, html_mode: bool) -> str:
    if not d or d["mean"] is None:
        return ""
    sd = f" \u00b1 {100 * d['std']:.1f}" if d["std"] is not None else ""
    counts = f"{d['yes']}/{d['scored']}" + (f", {d['unscored']} unscored" if d["unscored"] else "")
    if html_mode:
        return f"{100 * d['mean']:.1f}{sd}<br><small>{counts}</small>"
    return f"{100 * d['mean']:.1f}{sd} ({counts})"


CALIBRATE_HINT = ("not calibrated: collect human labels (`vlmdyn calibrate sample`, `vlmdyn calibrate sheet`, "
                  "`vlmdyn calibrate import`, or rate in `vlmdyn tui`), then run "
                  "`vlmdyn calibrate report --judge {name}`")


def to_markdown(data: dict, fig_rel: str) -> str:
    j = data["judge"]
    out = [f"# vlmdyn report: {data['dataset']}", "",
           f"- runs ({len(data['runs'])}): {', '.join(data['runs'])}",
           f"- judge: **{j.name}** (spec `{j.hash[:16]}`)",
           f"- judged items: {data['totals']['scored']:,} scored, {data['totals']['unscored']:,} unscored "
           f"(excluded from every accuracy), {data['totals']['unjudged']:,} not judged yet", "",
           "## Table 1: skill categories (share of QA pairs)", "", "| category | QA pairs | share | paper |",
           "|---|---:|---:|---:|"]
    for s in data["shares"]:
        paper = PAPER_MIX.get(s["category"])
        out.append(f"| {s['category'] or '(uncategorised)'} | {s['n']:,} | {_pct(s['share'])}% | "
                   f"{f'{paper:.1f}%' if paper else ''} |")
    out += ["", "## Judge calibration", ""]
    cal = data["calibration"]
    if cal:
        out.append(f"Against human labels (agreement threshold {cal['agreement_threshold']}, "
                   f"{cal['n_items']} items, {cal['created_at']}):")
        out += ["", "| metric | value |", "|---|---:|"]
        out += [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in cal["metrics"].items()]
    else:
        out.append(CALIBRATE_HINT.format(name=j.name))
    out += ["", "## Figures", ""]
    for f in data["figures"]:
        if "missing" in f:
            out += [f"### {f['name']}", "", f"Not drawn: {f['missing']}", ""]
            continue
        out += [f"### {f['title']}", "", f"![{f['name']}]({fig_rel}/{Path(f['path']).name})", "",
                f"*{f['caption']}*" + ("".join(f" {n}." for n in f["notes"]) if f["notes"] else ""), ""]
    out += ["## Accuracy per checkpoint, set and category", "",
            "Mean \u00b1 1\u03c3 over seeds, in %; in brackets: yes/scored pooled over seeds, and unscored items.", "",
            "| set | step | status | all | " + " | ".join(data["categories"]) + " |",
            "|---|---:|---|---|" + "---|" * len(data["categories"])]
    for r in data["table"]:
        out.append(f"| {r['set']} | {r['step']} | {r['status']} | {_cell(r.get('all'), False)} | "
                   + " | ".join(_cell(r.get(c), False) for c in data["categories"]) + " |")
    out.append("")
    out += ["## Run configs", "", "Shared by all runs:", "", "```json",
            json.dumps(data["configs"]["shared"], indent=2, default=str), "```", "",
            "| run | seed | model | status | steps | batch | checkpoints | differs |", "|---|---:|---|---|---:|---:|---|---|"]
    for r in data["configs"]["runs"]:
        out.append(f"| {r['run']} | {r['seed']} | {r['model']} | {r['status']} | {r['total_steps']} | "
                   f"{r['global_batch']} | {r['checkpoints']} | `{json.dumps(r['differs'], default=str)}` |")
    return "\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;
padding:3px 8px;text-align:right;vertical-align:top}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
small{color:#666}img{max-width:100%;border:1px solid #eee}figure{margin:1.5em 0}figcaption{font-size:.9em;color:#444}
pre{background:#f6f6f6;padding:.8em;overflow:auto}.muted{color:#666}"""


def to_html(data: dict) -> str:
    e = html.escape
    j = data["judge"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>vlmdyn report: {e(data['dataset'])}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>vlmdyn report: {e(data['dataset'])}</h1>",
             f"<p>Runs ({len(data['runs'])}): {e(', '.join(data['runs']))}<br>Judge: <b>{e(j.name)}</b> "
             f"<span class=muted>(spec {e(j.hash[:16])})</span><br>Judged items: {data['totals']['scored']:,} scored, "
             f"{data['totals']['unscored']:,} unscored (excluded from every accuracy), "
             f"{data['totals']['unjudged']:,} not judged yet</p>",
             "<h2>Table 1: skill categories</h2><table><tr><th>category</th><th>QA pairs</th><th>share</th>"
             "<th>paper</th></tr>"]
    for s in data["shares"]:
        paper = PAPER_MIX.get(s["category"])
        parts.append(f"<tr><td>{e(s['category'] or '(uncategorised)')}</td><td>{s['n']:,}</td>"
                     f"<td>{_pct(s['share'])}%</td><td>{f'{paper:.1f}%' if paper else ''}</td></tr>")
    parts.append("</table><h2>Judge calibration</h2>")
    cal = data["calibration"]
    if cal:
        parts.append(f"<p>Against human labels (agreement threshold {cal['agreement_threshold']}, "
                     f"{cal['n_items']} items, {e(str(cal['created_at']))}):</p><table>")
        for k, v in cal["metrics"].items():
            parts.append(f"<tr><td>{e(k)}</td><td>{v:.3f}</td></tr>" if isinstance(v, float)
                         else f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>")
        parts.append("</table>")
    else:
        parts.append(f"<p>{e(CALIBRATE_HINT.format(name=j.name))}</p>")
    parts.append("<h2>Figures</h2>")
    for f in data["figures"]:
        if "missing" in f:
            parts.append(f"<h3>{e(f['name'])}</h3><p>Not drawn: {e(f['missing'])}</p>")
            continue
        b64 = base64.b64encode(Path(f["path"]).read_bytes()).decode()
        notes = "".join(f" {e(n)}." for n in f["notes"])
        parts.append(f"<figure><img alt='{e(f['name'])}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption>{e(f['caption'])}{notes}</figcaption></figure>")
    parts.append("<h2>Accuracy per checkpoint, set and category</h2><p class=muted>Mean \u00b1 1\u03c3 over seeds "
                 "in %; below: yes/scored pooled over seeds, and unscored items (excluded).</p><table><tr><th>set</th>"
                 "<th>step</th><th>status</th><th>all</th>" + "".join(f"<th>{e(c)}</th>" for c in data["categories"]) + "</tr>")
    for r in data["table"]:
        parts.append(f"<tr><td>{e(r['set'])}</td><td>{r['step']}</td><td>{r['status']}</td><td>{_cell(r.get('all'), True)}</td>"
                     + "".join(f"<td>{_cell(r.get(c), True)}</td>" for c in data["categories"]) + "</tr>")
    parts.append("</table>")
    parts.append("<h2>Run configs</h2><p>Shared by all runs:</p><pre>"
                 + e(json.dumps(data["configs"]["shared"], indent=2, default=str)) + "</pre><table><tr><th>run</th>"
                 "<th>seed</th><th>model</th><th>status</th><th>steps</th><th>batch</th><th>checkpoints</th>"
                 "<th>differs</th></tr>")
    for r in data["configs"]["runs"]:
        parts.append(f"<tr><td>{e(r['run'])}</td><td>{r['seed']}</td><td>{e(r['model'])}</td><td>{e(r['status'])}"
                     f"</td><td>{r['total_steps']}</td><td>{r['global_batch']}</td><td>{e(str(r['checkpoints']))}</td>"
                     f"<td><code>{e(json.dumps(r['differs'], default=str))}</code></td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


MARKDOWN = (".md", ".markdown")


def check_report_out(out: Path) -> Path:
    """``--out`` as a report: .html or .md, a file that may be written (with, for .md, its figure folder)."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm", *MARKDOWN):
        raise BadInput(f"--out {out}: the report is written as .html or .md")
    check_output(out, "--out")
    if out.suffix.lower() in MARKDOWN:
        check_folder(out.parent / f"{out.stem}_figures", "--out's figure folder")
    return out


def write_report(db, sel: A.Selection, out: Path, reporter=None) -> dict:
    """Write ``out`` (.html or .md); returns a summary (path, figures drawn, figures missing)."""
    import tempfile

    out = check_report_out(out)
    if out.suffix.lower() in MARKDOWN:
        fig_dir = out.parent / f"{out.stem}_figures"
        data = collect(db, sel, fig_dir, reporter)
        write_text(out, to_markdown(data, fig_dir.name), "--out")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = collect(db, sel, Path(tmp), reporter)
            write_text(out, to_html(data), "--out")
    return {"path": str(out), "figures": [f["name"] for f in data["figures"] if "missing" not in f],
            "missing": {f["name"]: f["missing"] for f in data["figures"] if "missing" in f},
            "calibrated": data["calibration"] is not None}
