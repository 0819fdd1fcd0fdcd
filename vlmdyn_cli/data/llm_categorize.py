"""The paper's LLM labeller (``vlmdyn data categorize --method llm --judge SPEC``), METHOD.md section 2.

The paper asked gpt-4o-mini a four-way question (its Figure 6): Object Analysis, Spatial
Analysis, Bounding Box or Complex Reasoning, one letter back. OCR is not one of the letters:
OCR pairs come from the OCR datasets (the source rule, applied in front of every method by
``categorize.label_pairs``) and, for everything else, from the rules' OCR cues. So:

1. a question with an OCR cue of the rules (a title, an author, text to read) is OCR, with the
   rules' sub-category, and is never sent to the LLM;
2. every other question goes to the LLM with the paper's prompt (``judges/prompts/category.txt``),
   the question alone, as in the paper; the letter gives the category;
3. a Bounding letter gets its sub-category from the question: coordinates in it -> describe
   (the model is given the box), otherwise bbox (the model must output one).

A reply that is not one of the four letters leaves the question unlabelled (None).

The letter itself comes from the judge side (``LETTER_LLM``, a registry reference resolved when
the method is asked for: the data stage does not import the judging stage, which imports it).
"""

from __future__ import annotations

from vlmdyn_cli.data.categories import BBOX, BOUNDING, DESCRIBE, OCR, Label, load_ref

LETTER_LLM = "vlmdyn_cli.judging.categorize:LlmCategorizer"   # the 4-way prompt through a judge backend


class PaperLlmCategorizer:
    """``categorize(questions, answers=None) -> list[Label | None]``; ``requests`` shows what the LLM is asked."""

    def __init__(self, judge: str = "local", **opts):
        self.llm = load_ref(LETTER_LLM, "categorisation method 'llm'")(judge=judge, **opts)
        self.method = self.llm.method

    @staticmethod
    def ocr_cue(question: str) -> Label | None:
        from vlmdyn_cli.data.rules import classify

        lab, rule = classify(question)
        if lab.category != OCR:
            return None
        return Label(OCR, lab.subcategory, f"{lab.reason}; an OCR cue of the rules, so the LLM is not asked", rule)

    def requests(self, questions: list[str]) -> list:
        """The backend requests the LLM would get for ``questions`` (None where an OCR cue decides)."""
        build = getattr(self.llm, "_prompt", None) or self.llm._request   # the judge side's request builder
        return [None if self.ocr_cue(q) else build(i, q, None) for i, q in enumerate(questions)]

    def categorize(self, questions: list[str], answers: list[str] | None = None) -> list[Label | None]:
        out: list[Label | None] = [self.ocr_cue(q) for q in questions]
        ask = [i for i, lab in enumerate(out) if lab is None]
        if ask:
            got = self.llm.categorize([questions[i] for i in ask])   # the question only, as the paper did
            for i, lab in zip(ask, got):
                if lab is None:
                    continue
                if lab.category == BOUNDING:
                    from vlmdyn_cli.data.rules import COORDS

                    sub = DESCRIBE if COORDS.search(questions[i]) else BBOX
                    lab = Label(BOUNDING, sub, f"{lab.reason}; {sub}: "
                                + ("the question gives coordinates" if sub == DESCRIBE else "no coordinates given"))
                out[i] = lab
        return out
