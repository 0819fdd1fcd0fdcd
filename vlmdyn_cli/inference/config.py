"""The generation config: what decides a prediction besides the model and the input.

Stored once in ``gen_configs`` under its content hash; every generation row
points at it. The batch size and device are left out on purpose: greedy
output does not depend on them (tests check batched == one at a time).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.models import chat
from vlmdyn_cli.store.db import sha256_text

# Names the prompt format; bump it if models.chat.prompt_for ever changes.
TEMPLATE_ID = "vlmdyn-llava-plain-v1"


@dataclass(frozen=True)
class GenConfig:
    max_new_tokens: int = 64
    temperature: float = 0.0        # 0 = greedy
    top_p: float = 1.0
    seed: int = 0                   # only used when sampling
    template: str = TEMPLATE_ID
    stop: str = chat.EOS

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise BadInput(f"--temperature must be a finite number >= 0, not {self.temperature}")
        if not (0 <= self.top_p <= 1):
            raise BadInput(f"--top-p must be from 0 to 1, not {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def to_json(self) -> str:
        d = asdict(self)
        if self.greedy:              # sampling knobs do not change greedy output
            d.pop("top_p")
            d.pop("seed")
        return json.dumps(d, sort_keys=True)

    @property
    def hash(self) -> str:
        return sha256_text(self.to_json())
