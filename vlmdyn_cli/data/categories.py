"""Skill categories of QA pairs (METHOD.md section 2) and the categoriser registry.

Five categories, two of them with sub-categories::

    Bounding  bbox (answer is a box) | describe (question gives a box)
    Complex   -
    Object    -
    OCR       recognition (transcribe text) | semantic (genre, type, "is this a X book")
    Spatial   -

A categoriser turns questions (and optionally their reference answers) into
``Label`` objects. Categorisers live in a registry keyed by method name:
``rules`` (built in, ``vlmdyn_cli.data.rules``) and ``llm`` (the paper's 4-way
prompt through a judge backend, ``vlmdyn_cli.data.llm_categorize``, imported
only when asked for).

The OCR category also comes from where a pair comes from (METHOD.md section 2):
a QA pair of an OCR dataset (``OCR_SOURCES``: OCR-VQA, TextVQA, ...) is OCR
whatever its wording; ``ocr_source`` finds that dataset from an explicit source
name or the folders of the image path, and ``categorize.label_pairs`` applies
the rule in front of every method.
"""

from __future__ import annotations

import importlib
import re
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

# Source datasets whose QA pairs are OCR by construction, keyed by the source / folder name with
# everything but letters and digits dropped ("ocr_vqa", "OCR-VQA" -> "ocrvqa"). LLaVA-665k's image
# folders are ocr_vqa/ and textvqa/; "ocr" is an OCR subtask folder (e.g. MME's OCR/).
OCR_SOURCES: dict[str, str] = {
    "ocrvqa": "OCR-VQA", "textvqa": "TextVQA", "textcaps": "TextCaps", "stvqa": "ST-VQA",
    "docvqa": "DocVQA", "infographicvqa": "InfographicVQA", "ocrbench": "OCRBench", "ocr": "an OCR subtask",
}
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def ocr_source(source: str | None = None, image_path: str | None = None) -> str | None:
    """The OCR dataset a QA pair comes from, or None.

    ``source`` is an explicit source name (a LLaVA record's ``source`` field,
    or ``conversations.source``); ``image_path`` is checked folder by folder,
    so ``textvqa/train_images/x.jpg`` and ``/data/eval/TextVQA/val/x.jpg`` both
    name TextVQA. The file name itself is never read.
    """
    names = source.replace("\\", "/").split("/") if source else []
    if image_path:
        names += image_path.replace("\\", "/").split("/")[:-1]
    for name in names:
        key = _NOT_ALNUM.sub("", name.lower())
        if key in OCR_SOURCES:
            return OCR_SOURCES[key]
    return None


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
    "llm": "vlmdyn_cli.data.llm_categorize:PaperLlmCategorizer",
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
        factory = load_ref(factory, f"categorisation method {method!r}")
    return factory(**opts)


def load_ref(ref: str, what: str):
    """The object a ``"module:Attr"`` reference names, imported now; BadInput saying what is missing."""
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if module_name == missing or module_name.startswith(missing + "."):
            raise BadInput(f"{what} is not available: its module {module_name} is missing from this installation") \
                from exc
        raise BadInput(f"{what} needs the Python package {missing!r}, which is not installed "
                       f"(pip install {missing.split('.')[0]})") from exc
    if not hasattr(module, attr):
        raise BadInput(f"{what} is not available: {module_name} has no {attr}")
    return getattr(module, attr)
