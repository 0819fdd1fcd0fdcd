"""A small word-level tokenizer trained on the dataset text (for the `tiny` model).

Pieces are words (with their leading space), decimal numbers like
``0.25`` (box coordinates: one token each), single digits, single
punctuation marks and whitespace runs, so decoding is an exact
concatenation: ``decode(encode(text)) == text`` for every in-vocabulary
text, which keeps exact-match scoring honest. Tokenisation is also stable
under concatenation at word boundaries, so a prompt tokenised alone
(inference) gives the same ids as inside a training conversation.
"""

from __future__ import annotations

import re
from typing import Iterable

from vlmdyn_cli.models.chat import EOS, IMAGE_TOKEN

PAD, UNK = "<pad>", "<unk>"
SPECIAL_TOKENS = (PAD, UNK, EOS, IMAGE_TOKEN)
PIECE_PATTERN = r" ?\d+\.\d+| ?[A-Za-z]+| ?\d| ?[^\sA-Za-z\d]|\s+"
_SPECIAL_SPLIT = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))


def _plain_chunks(texts: Iterable[str]) -> Iterable[str]:
    """Text with the special tokens cut out (they are added to the vocabulary separately)."""
    for t in texts:
        for chunk in _SPECIAL_SPLIT.split(t):
            if chunk:
                yield chunk


def build_word_tokenizer(texts: Iterable[str], vocab_size: int = 4000):
    """Train a word-level tokenizer on ``texts``; returns a ``PreTrainedTokenizerFast``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                        min_frequency=1, show_progress=False)
    tok.train_from_iterator(_plain_chunks(texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token=UNK, pad_token=PAD, eos_token=EOS,
        extra_special_tokens={"image_token": IMAGE_TOKEN}, padding_side="right",
        model_max_length=100_000,
    )
