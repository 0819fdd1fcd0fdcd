"""L2T as published: the loss covers the instruction minus its fixed template text (METHOD.md section 6).

One example of each kind of LLaVA instruction, tokenised like training does, with the text of the
tokens that carry loss printed and asserted.
"""

from __future__ import annotations

import pytest

from vlmdyn_cli.models import chat
from vlmdyn_cli.models.chat import FIXED_TEXT_FILE, fixed_text, split_fixed_text

BOX_Q = "Please provide the bounding box coordinate of the region this sentence describes: woman in a brown shirt."
BOX_A = "[0.12, 0.30, 0.45, 0.88]"
DESCRIBE_Q = "Please provide a short description for this region: [0.12, 0.30, 0.45, 0.88]"
SHORT_Q = "What color is the bus?\nAnswer the question using a single word or phrase."
MC_Q = ("Who is in the water on the beach?\nA. bunny\nB. toilet\nC. whistle\nD. man\n"
        "Answer with the option's letter from the given choices directly.")
CAPTION_Q = "Provide a one-sentence caption for the provided image."
PLAIN_Q = "Why are the cats resting?"

# (question, answer) -> the exact text of the tokens that carry loss, question part then answer part.
# Tokens carry their leading space (" woman"), so a content word right after a template string brings
# the separating space with it.
CASES = {
    "bounding bbox": (BOX_Q, BOX_A, " woman in a brown shirt." + " " + BOX_A + "</s>"),
    "bounding describe": (DESCRIBE_Q, "a woman hugging a bear", " [0.12, 0.30, 0.45, 0.88] a woman hugging a bear</s>"),
    "short answer": (SHORT_Q, "red", "What color is the bus? red</s>"),
    "multiple choice": (MC_Q, "D", "Who is in the water on the beach?\nA. bunny\nB. toilet\nC. whistle\nD. man D</s>"),
    "whole template (TextCaps)": (CAPTION_Q, "A red bus on a street.", " A red bus on a street.</s>"),
    "no template": (PLAIN_Q, "They are tired.", "Why are the cats resting? They are tired.</s>"),
}


def _loss_text(question: str, answer: str, loss: str) -> str:
    """Train-time tokenisation of one turn with an image; the text of the tokens whose label is kept."""
    from vlmdyn_cli.models.registry import build_model
    from vlmdyn_cli.training.dataset import IGNORE, Conversation, conversation_text, encode_all

    conv = Conversation(1, [(question, answer)], "x.png")
    _, proc = build_model("tiny", {}, texts=[conversation_text(conv)[0]])
    tok = proc.tokenizer
    enc = encode_all([conv], tok, 4, loss, 512)
    kept = [int(i) for i, lab in zip(enc.ids[0], enc.labels[0]) if lab != IGNORE]
    assert tok.unk_token_id not in kept
    return tok.decode(kept)


@pytest.mark.parametrize("kind", list(CASES))
def test_l2t_loss_tokens_exclude_the_fixed_template_text(kind, capsys):
    question, answer, expected = CASES[kind]
    got = _loss_text(question, answer, "instruction+answer")
    with capsys.disabled():
        print(f"\n[{kind}] loss on: {got!r}")
    assert got == expected
    assert _loss_text(question, answer, "answer") == (" " + answer + "</s>")   # the default recipe: answer only


def test_every_template_string_is_removed_where_it_stands():
    t = fixed_text()
    assert "Please provide the bounding box coordinate of the region this sentence describes:" in t.prefixes
    assert "Please provide a short description for this region:" in t.prefixes
    assert "Answer the question using a single word or phrase." in t.suffixes
    assert "Answer with the option's letter from the given choices directly." in t.suffixes
    for p in t.prefixes:
        pieces = split_fixed_text(f"{p} the cat")
        assert pieces == [(p + " ", "template"), ("the cat", "question")]
        # only at the start: the same words inside a question are content
        assert split_fixed_text(f"Why say '{p}'?") == [(f"Why say '{p}'?", "question")]
    for s in t.suffixes:
        assert split_fixed_text(f"Is it red?\n{s}") == [("Is it red?", "question"), ("\n" + s, "template")]
        assert split_fixed_text(f"{s.upper()} Is it?") == [(f"{s.upper()} Is it?", "question")]


def test_split_pieces_rebuild_the_question_and_training_text_matches_inference():
    questions = [c[0] for c in CASES.values()] + [
        "  Is it red?  Please answer yes or no.  ",
        "Is it red?\nWhen the provided information is insufficient, respond with 'Unanswerable'.\n"
        "Answer the question using a single word or phrase.", "", "Answer yes or no."]
    for q in questions:
        assert "".join(s for s, _ in split_fixed_text(q)) == q
    for q, a, _ in CASES.values():
        text = "".join(s for s, _ in chat.render_conversation([(q, a)], True))
        assert text == chat.prompt_for(q, True) + " " + a + chat.EOS


def test_bad_data_file_is_refused(tmp_path):
    bad = tmp_path / "f.toml"
    bad.write_text('prefixes = ["ok"]\nsuffixes = [""]\n')
    with pytest.raises(ValueError, match="'suffixes' must be a list of non-empty strings"):
        fixed_text(bad)
    assert FIXED_TEXT_FILE.is_file()
