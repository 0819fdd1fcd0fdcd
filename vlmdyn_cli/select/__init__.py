"""`vlmdyn select`: Individual Select dataset selection (METHOD.md section 6) over ordinary runs.

    plan.py      the plan (TOML): checked, stored, changed-plan refusal
    overlap.py   the benchmark QA pairs, and the refusal of a benchmark the runs train on
    decision.py  the acceptance rule (tolerance, seed margin) on benchmark numbers
    loop.py      the rounds: train, evaluate (infer + judge), decide, merge; resumable
    report.py    the per-round table, per-category change, final composition, figure
"""
