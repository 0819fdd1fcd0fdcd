"""Skill categories of QA pairs (METHOD.md section 2) and the categoriser registry.

Five categories, two of them with sub-categories::

    Bounding  bbox (answer is a box) | describe (question gives a box)
    Complex   -
    Object    -
    OCR       recognition (transcribe text) | semantic (genre, type, "is this a X book")
    Spatial   -

A categoriser turns questions (and optionally their reference answers) into
``Label`` objects. Categorisers live in a registry keyed by method name:
``rules`` (built in, ``vlmdyn_cli.data.rules``) and ``llm`` (the judge backends,
``vlmdyn_cli.judging.categorize:LlmCategorizer``, imported only when asked for).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Protocol

from vlmdyn_cli.errors import BadInput, did_you_mean

BOUNDING, COMPLEX, OBJECT, OCR, SPATIAL = "Bounding", "Complex", "Object", "OCR", "Spatial"
CATEGORIES: tuple[str, ...] = (BOUNDING, COMPLEX, OBJECT, OCR, SPATIAL)

BBOX, DESCRIBE = "bbox", "describe"
RECOGNITION, SEMANTIC = "recognition", "semantic"
SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    BOUNDING: (BBOX, DESCRIBE),
    OCR: (RECOGNITION, SEMANTIC),
    COMPLEX: (),
    OBJECT: (),
    SPATIAL: (),
}

# Share of QA pairs per category in LLaVA-665k (Table 1 of the paper), in percent.
PAPER_MIX: dict[str, float] = {BOUNDING: 34.5, COMPLEX: 13.8, OBJECT: 19.8, OCR: 14.2, SPATIAL: 17.7}


@dataclass(frozen=True)
class Label:
    """One categorisation: the category, its sub-category (or None) and why.

    ``rule`` names the deciding rule for the rule categoriser (None otherwise).
    """

    category: str
    subcategory: str | None = None
    reason: str = ""
    rule: str | None = None

    def __post_init__(self):
        check_label(self.category, self.subcategory)


def check_label(category: str, subcategory: str | None) -> None:
    """Raise ValueError unless (category, subcategory) is a valid pair."""
    if category not in SUBCATEGORIES:
        raise ValueError(f"unknown category {category!r}; valid: {', '.join(CATEGORIES)}")
    subs = SUBCATEGORIES[category]
    if subcategory is None:
        return
    if subcategory not in subs:
        valid = ", ".join(subs) if subs else "none"
        raise ValueError(f"unknown sub-category {subcategory!r} for {category}; valid: {valid}")


class Categorizer(Protocol):
    """What every categoriser offers. ``method`` is stored in qa_pairs.category_method."""

    method: str

    def categorize(self, questions: list[str], answers: list[str] | None = None) -> list[Label]: ...


# method name -> factory(**opts) -> Categorizer. Values may be "module:Attr" strings
# so optional parts are imported only when somebody asks for them.
_REGISTRY: dict[str, Callable[..., Categorizer] | str] = {
    "rules": "vlmdyn_cli.data.rules:RuleCategorizer",
    "llm": "vlmdyn_cli.judging.categorize:LlmCategorizer",
}


def register_categorizer(method: str, factory: Callable[..., Categorizer] | str) -> None:
    _REGISTRY[method] = factory


def methods() -> list[str]:
    return sorted(_REGISTRY)


def get_categorizer(method: str, **opts) -> Categorizer:
    """The categoriser registered as ``method``; BadInput listing valid ones otherwise."""
    if method not in _REGISTRY:
        raise BadInput(f"unknown categorisation method {method!r}{did_you_mean(method, _REGISTRY)}; "
                       f"valid methods: {', '.join(methods())}")
    factory = _REGISTRY[method]
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or "?"
            if module_name == missing or module_name.startswith(missing + "."):
                raise BadInput(f"categorisation method {method!r} is not available: its module "
                               f"{module_name} is missing from this installation") from exc
            raise BadInput(f"categorisation method {method!r} needs the Python package {missing!r}, "
                           f"which is not installed (pip install {missing.split('.')[0]})") from exc
        if not hasattr(module, attr):
            raise BadInput(f"categorisation method {method!r} is not available: {module_name} "
                           f"has no {attr}")
        factory = getattr(module, attr)
    return factory(**opts)
