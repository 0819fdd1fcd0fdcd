"""The experiment database: open_db(), migrations, shared queries."""

from vlmdyn_cli.store.db import now, open_db, resolve_db_path, triple_hash, upsert_triples

__all__ = ["open_db", "resolve_db_path", "now", "triple_hash", "upsert_triples"]
