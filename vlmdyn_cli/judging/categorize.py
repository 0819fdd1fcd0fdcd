"""Categorising questions with an LLM judge backend (``vlmdyn data categorize --method llm --judge SPEC``).

The spec gives the backend, model and options; the prompt is always the
paper's four-way category prompt (``judges/prompts/category.txt``: Object,
Spatial, Bounding, Complex with example questions), answered by one letter.
Under llama-cpp a grammar allows only those letters. A reply that is not
exactly one of the letters gives ``None`` for that question (never a guessed
category). OCR and the sub-categories are added by the data side
(``vlmdyn_cli.data.llm_categorize``), as in the paper.
"""

from __future__ import annotations

import dataclasses

from vlmdyn_cli.data.categories import BOUNDING, COMPLEX, OBJECT, OCR, SPATIAL, Label
from vlmdyn_cli.errors import BadInput, Failure
from vlmdyn_cli.judging.backends import backend_class, create_backend
from vlmdyn_cli.judging.backends.base import ModelBackend, Prompt
from vlmdyn_cli.judging.spec import builtin_dir, load_spec
from vlmdyn_cli.judging.verdict import Completion, strip_wrapping

LETTERS: dict[str, tuple[str, str | None]] = {
    "O": (OBJECT, None), "S": (SPATIAL, None), "B": (BOUNDING, None), "C": (COMPLEX, None),
}
LETTER_GRAMMAR = "root ::= [" + "".join(LETTERS) + "]\n"


def category_prompt() -> str:
    return (builtin_dir() / "prompts" / "category.txt").read_text(encoding="utf-8").strip()


def parse_letter(text: str | None) -> tuple[str, str | None] | None:
    if not text:
        return None
    t = strip_wrapping(text).rstrip(".").strip()
    return LETTERS.get(t.upper()) if len(t) == 1 else None


class LlmCategorizer:
    """``categorize(questions, answers=None) -> list[Label | None]`` through any judge backend."""

    def __init__(self, judge: str = "local", backend_options: dict | None = None, **_ignored):
        spec = load_spec(judge)
        if spec.stages:             # a cascade: categorise with its LLM stage
            spec = spec.stages[-1]
        if not issubclass(backend_class(spec.backend), ModelBackend):
            raise BadInput(f"--method llm needs an LLM judge spec (e.g. local, gpt-4o-mini), not {spec.backend}; "
                           "use --method rules for the rule categoriser")
        backend_class(spec.backend).check_installed(spec)     # before any question is labelled
        self.spec = dataclasses.replace(spec, decoding=spec.decoding | {"score_mode": "off", "max_tokens": 4})
        self.method = f"llm:{spec.name}"
        self.backend_options = backend_options or {}
        self._backend = None
        self.prompt = category_prompt()

    def _prompt(self, i: int, question: str, answer: str | None) -> Prompt:
        item = f"Question: {question.strip()}"
        if answer:
            item += f"\nReference answer: {answer.strip()}"
        if "text_template" in self.spec.templates:   # a base model: plain text, letter after "Letter:"
            return Prompt(key=str(i), messages=[], text=f"{self.prompt}\n\n{item}\nLetter:",
                          grammar="root ::= \" \"? [" + "".join(LETTERS) + "]\n", verdict_prefix="")
        return Prompt(key=str(i), messages=[{"role": "system", "content": self.prompt},
                                            {"role": "user", "content": item}],
                      grammar=LETTER_GRAMMAR, verdict_prefix="")

    def categorize(self, questions: list[str], answers: list[str] | None = None) -> list[Label | None]:
        if answers is not None and len(answers) != len(questions):
            raise ValueError("answers must be as many as questions")
        if self._backend is None:
            self._backend = create_backend(self.spec, self.backend_options)
        out: list[Label | None] = [None] * len(questions)
        errors: list[str] = []

        def on_completion(c: Completion) -> None:
            if c.error:
                errors.append(c.error)
            got = parse_letter(c.text) if not c.error else None
            if got is not None:
                cat, sub = got
                out[int(c.key)] = Label(cat, sub, f"{self.method}: {c.text.strip()!r}")

        prompts = (self._prompt(i, q, answers[i] if answers else None) for i, q in enumerate(questions))
        self._backend.complete(prompts, on_completion)
        if questions and len(errors) == len(questions):   # an endpoint that answers nothing is not "no label"
            raise Failure(f"--method llm: no question could be categorised, every call to the judge "
                          f"{self.spec.name} ({self.spec.model}) failed (e.g. {errors[0][:300]}); "
                          "what was labelled before is kept, rerun to continue")
        return out
