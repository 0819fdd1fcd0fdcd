"""The experiment database and the queries the CLI and the TUI share.

db.py                connect() (the one way to open a connection), open_db(), migrate(), hashes
migrations.py        the named, ordered schema migrations
runs.py              Run, get_run()/find_run() (the one lookup by name), list_runs(), checkpoints()
search.py            fts_query(): user text -> a safe FTS5 query
judgement_queries.py iter_judgements() (list, search, export), judge_status()
judgements.py        the judge runner's writes: JudgementRow, upsert(), register_spec(), scored_hashes(),
                     the triples of a run or a list of hashes
batch_jobs.py        BatchJobs: a judge's Batch API job ids (openai_batches), lent to the backend
generations.py       list_generations()
datasets.py          a dataset's rows (ImageRow, ConversationRow, QaRow and their writers: importer, test data)
labels.py            save_label() (CLI import and TUI rater), add_items() (calibration samples), samples()
schema_doc.py        the schema as Markdown (README section, `vlmdyn db schema --markdown`)
(test databases are built through these writers by vlmdyn_cli/testing, not here)
"""

from vlmdyn_cli.store.db import connect, now, open_db, resolve_db_path, triple_hash, upsert_triples

__all__ = ["connect", "open_db", "resolve_db_path", "now", "triple_hash", "upsert_triples"]
