"""Re-make docs/tui.svg and docs/tui-judgements.svg (the README's TUI screenshots).

A small synthetic experiment (3 seeds, 300 QA pairs per set, two judges) is
written to a temporary database, the app runs headless at 120x36 and Textual
exports the screen as SVG. Query timings are hidden so the picture is stable.

    /work/venv/bin/python docs/make_tui_svg.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent


async def _shoot(db_path: Path) -> None:
    from vlmdyn_cli.tui.app import create_app

    app = create_app(db_path, show_timings=False)
    async with app.run_test(size=(120, 36)) as pilot:
        for _ in range(5):
            await pilot.pause()
            await app.workers.wait_for_complete()
        app.save_screenshot(str(DOCS / "tui.svg"))
        await pilot.press("2")
        for _ in range(4):
            await pilot.pause()
            await app.workers.wait_for_complete()
        app.save_screenshot(str(DOCS / "tui-judgements.svg"))


def main() -> None:
    from vlmdyn_cli.store import open_db
    from vlmdyn_cli.testing.synthdb import fill_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "demo.db"
        db = open_db(db_path)
        fill_synthetic(db, seeds=3, set_size=300, judges=("openai/gpt-4o-mini", "rules"))
        db.close()
        asyncio.run(_shoot(db_path))
    print(f"wrote {DOCS / 'tui.svg'} and {DOCS / 'tui-judgements.svg'}")


if __name__ == "__main__":
    main()
