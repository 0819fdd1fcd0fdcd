"""Test data made one way: databases built through the library's own writers.

factories.py   small experiments row by row (dataset, conversations, run, sets, generations,
               judgements, calibration samples): what the tests' fixture helpers build with
synthdb.py     fill_synthetic(): a synthetic paper-scale experiment (plots, report, findings,
               TUI tests; benchmarks; docs/make_tui_svg.py)

Nothing here writes a table itself: a schema change is made once, in the writer the pipeline
uses (store/datasets.py, training/runs.py, evalsets/build.py, inference/store.py,
store/judgements.py, store/labels.py), and every test database follows.
"""
