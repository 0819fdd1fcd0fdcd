"""What an API judgement costs: a per-model price table and the cost of reported usage.

Prices are USD per 1M tokens (OpenAI's public list prices, standard tier, as of
2025; check https://openai.com/api/pricing before relying on a total). The Batch
API bills half of every price. A spec may override the table with ``price_in`` /
``price_out`` (for a provider behind ``base_url`` or a price change); a model the
table does not know (a local server) costs ``None``, not zero, so a total never
pretends to be complete. Which price applies to a judge: openai_wire.price.

Stored costs come from the usage the API reports for each call; only --dry-run
and --max-cost with --batch use estimated token counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input: float                 # USD per 1M prompt tokens
    output: float                # USD per 1M completion tokens
    cached_input: float | None = None   # USD per 1M prompt tokens served from the prompt cache

    def scaled(self, factor: float) -> "Price":
        cached = None if self.cached_input is None else self.cached_input * factor
        return Price(self.input * factor, self.output * factor, cached)


BATCH_DISCOUNT = 0.5

PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
}

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")   # gpt-4o-mini-2024-07-18, gpt-4-0613


def price_for(model: str | None) -> Price | None:
    """The price of ``model`` or of the family its dated snapshot belongs to; None if unknown."""
    if not model:
        return None
    name = model.strip().lower()
    if name.startswith("openai/"):
        name = name[len("openai/"):]
    if name in PRICES:
        return PRICES[name]
    base = _SNAPSHOT.sub("", name)
    return PRICES.get(base)


def cost_usd(
    price: Price | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    *,
    cached_tokens: int | None = None,
    batch: bool = False,
) -> float | None:
    """USD for one call's reported usage; None when the price or the usage is unknown."""
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    if batch:
        price = price.scaled(BATCH_DISCOUNT)
    cached = min(cached_tokens or 0, prompt_tokens) if price.cached_input is not None else 0
    usd = (
        (prompt_tokens - cached) * price.input
        + cached * (price.cached_input or 0.0)
        + completion_tokens * price.output
    )
    return usd / 1_000_000
