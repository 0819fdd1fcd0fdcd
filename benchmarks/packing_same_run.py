"""Packed and padded training of the same seed: identical order manifest, the same loss curve.

Trains the default tiny config for one epoch on the synthetic benchmark twice, with
``[train] packing`` off and on, same seed, and compares what must not move:

  manifest   conversation -> (step, position) rows: must be identical (Seen@k sets depend on them)
  loss       per-step loss: the two curves differ only by float rounding, which grows over an
             epoch of updates; reported as the largest per-step difference and the mean loss of
             the first and the last 10 % of the steps (must agree within --tolerance, relative)

Exits 1 when the manifests differ or the window means disagree.

    .venv/bin/python benchmarks/packing_same_run.py --images 400
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=0.02, help="relative difference allowed in window means")
    args = ap.parse_args()

    from bench_train import prepare

    from vlmdyn_cli.training.config import load_config
    from vlmdyn_cli.training.trainer import train

    tmp = Path(tempfile.mkdtemp(prefix="packing_same_run_"))
    db = prepare(tmp, args.images)
    out = {}
    for pack in (False, True):
        cfg = load_config(None, {"train": {"out_dir": str(tmp / "runs"), "packing": pack},
                                 "checkpoints": {"steps": [], "final": False}})
        s = train(db, cfg, seed=args.seed, run_name=f"packing-{pack}")
        losses = [r[0] for r in db.execute("SELECT loss FROM metrics WHERE run_id=? ORDER BY step", [s["run_id"]])]
        manifest = db.execute("SELECT conversation_id, step, position FROM run_order WHERE run_id=? "
                              "ORDER BY step, position", [s["run_id"]]).fetchall()
        out[pack] = (losses, manifest, s["train_seconds"])

    (l0, m0, t0), (l1, m1, t1) = out[False], out[True]
    k = max(1, len(l0) // 10)
    windows = {name: (sum(a[sl]) / k, sum(b[sl]) / k)
               for name, sl, a, b in (("first 10%", slice(0, k), l0, l1), ("last 10%", slice(-k, None), l0, l1))}
    print(f"{len(l0)} steps, {len(m0)} manifest rows; loop seconds padded {t0:.1f}, packed {t1:.1f}")
    print(f"  manifest identical: {m0 == m1}")
    print(f"  step 1 loss: padded {l0[0]:.6f} packed {l1[0]:.6f}; largest per-step |difference| "
          f"{max(abs(a - b) for a, b in zip(l0, l1)):.4f}")
    ok = m0 == m1
    for name, (a, b) in windows.items():
        agree = abs(a - b) <= args.tolerance * abs(a)
        ok &= agree
        print(f"  mean loss, {name} of the steps: padded {a:.4f} packed {b:.4f} ({'same' if agree else 'DIFFERENT'})")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
