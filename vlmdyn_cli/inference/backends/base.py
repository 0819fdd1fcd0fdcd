"""What a generation backend does: load one checkpoint, answer batches of items."""

from __future__ import annotations

from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.inference.items import GenItem


class GenBackend:
    """One model at a time: ``load(path)``, then ``generate`` batches, then ``close()``."""

    name: str = "base"

    def load(self, checkpoint_path: str) -> None:
        raise NotImplementedError

    def generate(self, items: list[GenItem], cfg: GenConfig) -> list[str]:
        """One prediction per item, in order, stripped of the stop token and outer spaces."""
        raise NotImplementedError

    def close(self) -> None:
        """Free the loaded model (called before the next checkpoint is loaded)."""
