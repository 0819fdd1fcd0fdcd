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
whatever its wording. Likewise a pair from a benchmark subtask that tests one
skill (``MME_SUBTASKS``: MME's position folder is Spatial, its cognition folders
Complex, ...) gets that skill. ``pair_source`` finds the source from an explicit
source name, the folders of the image path, or LLaVA's TextVQA prompt line
("Reference OCR token: ..."), and ``categorize.label_pairs`` applies it in front
of every method.
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
# Benchmarks whose subtask folders each test one skill, so the folder names the category. MME
# (MME_Benchmark_release_version/<subtask>/...): perception subtasks recognise, count or find
# attributes (Object), `position` asks where things are (Spatial), `OCR` reads text; its cognition
# subtasks reason, calculate, translate or run code (Complex).
MME_SUBTASKS: dict[str, str] = {
    "existence": OBJECT, "count": OBJECT, "color": OBJECT, "posters": OBJECT, "celebrity": OBJECT,
    "scene": OBJECT, "landmark": OBJECT, "artwork": OBJECT, "position": SPATIAL, "OCR": OCR,
    "commonsense_reasoning": COMPLEX, "numerical_calculation": COMPLEX, "text_translation": COMPLEX,
    "code_reasoning": COMPLEX,
}
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _key(name: str) -> str:
    return _NOT_ALNUM.sub("", name.lower())


# MME's OCR/ folder is one of the OCR sources above; the other subtasks, by normalised folder name
_MME = {_key(k): k for k in MME_SUBTASKS if MME_SUBTASKS[k] != OCR}
# folder or source names that say "this is MME" (then every subtask name above counts)
MME_MARKERS = frozenset({"mme", "mmebenchmark", "mmebenchmarkreleaseversion"})
# subtask names that cannot be anything but MME, honoured without a marker (LLaVA's MME question
# file gives image paths relative to the MME folder: "code_reasoning/0020.png")
MME_DISTINCT = frozenset(_key(k) for k in MME_SUBTASKS if MME_SUBTASKS[k] == COMPLEX)
# MME subtasks whose images sit in an images/ folder: "<subtask>/images/<file>" is MME without a marker
MME_WITH_IMAGES_DIR = frozenset({"artwork", "celebrity", "landmark", "posters", "scene"})
# LLaVA's TextVQA evaluation prompt lists the OCR tokens found in the image: the question is about its text
_OCR_TOKENS = re.compile(r"^\s*reference ocr tokens?:", re.I | re.M)


@dataclass(frozen=True)
class Source:
    """What a QA pair's source decides: its ``category`` (and ``subcategory``, or None to take the
    rules' cue where the category has sub-categories), named after the dataset or subtask (``name``)."""

    name: str
    category: str
    subcategory: str | None = None


def _keys(source: str | None, image_path: str | None) -> tuple[list[str], list[str]]:
    """Normalised names from the source field and the image path's folders (never the file name)."""
    src = [_key(n) for n in source.replace("\\", "/").split("/")] if source else []
    folders = [_key(n) for n in image_path.replace("\\", "/").split("/")[:-1]] if image_path else []
    return src, folders


def pair_source(source: str | None = None, image_path: str | None = None,
                question: str | None = None) -> Source | None:
    """What the source of a QA pair decides about its category, or None.

    - an OCR dataset (``OCR_SOURCES``) named by ``source`` or by any folder of ``image_path``
      (``textvqa/train_images/x.jpg``, ``/data/eval/TextVQA/val/x.jpg``): OCR;
    - an MME subtask folder (``MME_SUBTASKS``): that subtask's category, when the path or the
      source says MME, or the subtask name is MME's alone (``code_reasoning/``), or it is one of
      MME's ``<subtask>/images/`` folders;
    - a question carrying LLaVA's TextVQA prompt line "Reference OCR token: ...": OCR.
    """
    src, folders = _keys(source, image_path)
    names = src + folders
    mme = any(k in MME_MARKERS for k in names)
    for i, key in enumerate(folders):
        if key in _MME and (mme or key in MME_DISTINCT
                            or (key in MME_WITH_IMAGES_DIR and folders[i + 1:i + 2] == ["images"])):
            return _mme(key)
    for key in src:
        if key in _MME and (mme or key in MME_DISTINCT):
            return _mme(key)
    for key in names:
        name = _ocr_dataset(key)
        if name:
            return Source(name, OCR)
    if question and "token" in question and _OCR_TOKENS.search(question):
        return Source("an OCR benchmark (its prompt lists the image's OCR tokens)", OCR)
    return None


def _ocr_dataset(key: str) -> str | None:
    """The OCR dataset a normalised folder / source name names: exactly, or as the start of a longer
    name ("textvqaval", "textvqa051", "ocrvqaimages"); the short "ocr" (MME's subtask) only exactly."""
    if key in OCR_SOURCES:
        return OCR_SOURCES[key]
    for prefix in _OCR_PREFIXES:
        if key.startswith(prefix):
            return OCR_SOURCES[prefix]
    return None


_OCR_PREFIXES = tuple(k for k in OCR_SOURCES if k != "ocr")


def _mme(key: str) -> Source:
    name = _MME[key]
    return Source(f"MME {name}", MME_SUBTASKS[name])


def ocr_source(source: str | None = None, image_path: str | None = None) -> str | None:
    """The OCR dataset a QA pair comes from (name), or None: ``pair_source`` restricted to OCR."""
    hit = pair_source(source, image_path)
    return hit.name if hit is not None and hit.category == OCR else None


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
