"""Several prompts in one llama.cpp batch, every token they share decoded once (a prefix trie).

The llama-cpp judge's ``parallel`` option (items per batch) uses this instead of its one-at-a-time
context. It is a second llama context on the same loaded model (the weights are shared; it has
its own KV cache) with ``n_seq_max = parallel + 1`` and a unified KV cache, so one KV cell can
belong to several sequences:

* sequence 0 holds the tokens every prompt of the last batch started with (the rubric, and
  whatever those items shared after it); it stays for the next batch, cut back only where the
  new batch's prompts differ from it;
* each prompt gets sequence i >= 1, a copy of sequence 0 (the cells are shared, not copied);
* ``evaluate`` brings every sequence to the tokens it wants in one ``llama_decode``: the new
  tokens of all sequences form a prefix trie (``plan_rows``), one batch row per trie node, and
  the row lists every sequence passing through that node (``n_seq_id > 1``). So the question
  and answer that several items share are decoded once, as one at a time decodes them once when
  such items come one after the other; the forced reply's slots are one decode for all items.

Rows of one trie only join sequences that hold the same tokens before them (llama.cpp requires
coupled sequences to end at the same position), and a row's parent always comes before it, so a
batch too big for one decode may be cut anywhere. The logits of each output row are copied at
once (``llama_get_logits_ith``), so a sequence that is asked for the tokens it already ends with
needs no decode. Nothing is saved or loaded (no ``save_state``: MEASURED.md, it copies the
logits buffer).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numpy as np


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def trie_size(token_lists: list[list[int]]) -> int:
    """Distinct nodes of the prefix trie of these token lists: the KV cells they need together."""
    ordered = sorted(token_lists)
    return sum(len(t) - (common_prefix(ordered[i - 1], t) if i else 0) for i, t in enumerate(ordered))


@dataclass
class Rows:
    """One batch: row r decodes ``token[r]`` at ``pos[r]`` for every sequence in ``seqs[r]``;
    ``last[s]`` is the row after which sequence s's logits are read."""

    token: list[int] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    seqs: list[list[int]] = field(default_factory=list)
    last: dict[int, int] = field(default_factory=dict)


def plan_rows(todo: dict[int, tuple[int, list[int]]]) -> Rows:
    """The prefix trie of what each sequence still needs: ``todo[s] = (keep, want)`` (it holds
    ``want[:keep]`` and needs ``want[keep:]``). Sequences share a row while they want the same
    tokens after the same kept tokens; rows come parent first."""
    rows = Rows()
    roots: dict[tuple, int] = {}
    child: dict[tuple[int, int], int] = {}        # (parent node, token) -> row; roots are negative
    for s, (keep, want) in todo.items():
        node = -1 - roots.setdefault((keep, tuple(want[:keep])), len(roots))
        for p in range(keep, len(want)):
            row = child.get((node, want[p]))
            if row is None:
                row = child[(node, want[p])] = len(rows.token)
                rows.token.append(want[p])
                rows.pos.append(p)
                rows.seqs.append([s])
            else:
                rows.seqs[row].append(s)
            node = row
        if len(want) > keep:
            rows.last[s] = node
    return rows


class ParallelContext:
    """Sequence 0 = a shared prefix, sequences 1..n = prompts that start with it."""

    def __init__(self, llm, n_seq: int, n_ctx: int, n_threads: int):
        import llama_cpp
        from llama_cpp import _internals

        self._lib = llama_cpp
        params = llama_cpp.llama_context_params()
        ctypes.memmove(ctypes.byref(params), ctypes.byref(llm.context_params), ctypes.sizeof(params))
        params.n_ctx = n_ctx
        params.n_batch = n_ctx                  # one decode takes every new token of a batch
        params.n_seq_max = n_seq + 1
        params.kv_unified = True                # a cell may belong to several sequences
        params.n_threads = params.n_threads_batch = n_threads
        # (flash attention would skip the cells a row does not see, but it moved P(yes) by up to
        # 0.055 from one at a time on the benchmark's items, beyond its 0.05 tolerance: left as loaded)
        self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self.batch = _internals.LlamaBatch(n_tokens=n_ctx, embd=0, n_seq_max=n_seq + 1, verbose=False)
        self.n_ctx, self.n_seq, self.n_vocab = n_ctx, n_seq, llm.n_vocab()
        self.tokens: dict[int, list[int]] = {0: []}       # what each sequence holds
        self.logits: dict[int, np.ndarray] = {}           # the logits after a sequence's last token
        self.decoded = 0                                  # tokens decoded (benchmark: prefix reuse)
        self.decodes = 0                                  # llama_decode calls
        self._prefix: list[int] = []                      # what sequence 0 is to hold (start)

    def start(self, prefix: list[int], n: int) -> None:
        """Sequences 1..n = copies of sequence 0 cut back to where it agrees with ``prefix``
        (earlier items' sequences dropped); sequence 0 is brought to ``prefix`` with the items'
        first ``evaluate``, in the same rows."""
        mem = self.ctx.memory
        for s in [s for s in self.tokens if s != 0]:
            self._lib.llama_memory_seq_rm(mem, s, -1, -1)
            del self.tokens[s]
            self.logits.pop(s, None)
        keep = common_prefix(self.tokens[0], prefix)
        if keep < len(self.tokens[0]):
            if not self._lib.llama_memory_seq_rm(mem, 0, keep, -1):
                self._lib.llama_memory_seq_rm(mem, 0, -1, -1)
                keep = 0
            self.tokens[0] = self.tokens[0][:keep]
        for s in range(1, n + 1):
            self._lib.llama_memory_seq_cp(mem, 0, s, -1, -1)
            self.tokens[s] = list(self.tokens[0])
        self._prefix = list(prefix)

    def evaluate(self, wants: dict[int, list[int]]) -> dict[int, np.ndarray]:
        """Bring each sequence to exactly its wanted tokens, decoding only what differs from what it
        holds (at least its last token, unless its logits there are kept); the logits after each."""
        mem = self.ctx.memory
        todo: dict[int, tuple[int, list[int]]] = {}
        if len(self._prefix) > len(self.tokens[0]):          # sequence 0 joins the first rows
            todo[0] = (len(self.tokens[0]), self._prefix)
            self.tokens[0] = self._prefix
        for s, want in wants.items():
            have = self.tokens[s]
            if have == want and s in self.logits:
                continue
            keep = min(common_prefix(have, want), len(want) - 1)
            if keep < len(have) and not self._lib.llama_memory_seq_rm(mem, s, keep, -1):
                raise ValueError("this model's KV cache cannot be cut back; use parallel = 1")
            todo[s] = (keep, want)
            self.tokens[s] = list(want)
        if todo:
            self._decode(plan_rows(todo))
        return {s: self.logits[s] for s in wants}

    def _decode(self, rows: Rows) -> None:
        """Decode the rows (as few ``llama_decode`` calls as the batch size allows, each cut after
        a row: parents come first); keep the logits after each sequence's last row."""
        b = self.batch.batch
        out = {}
        for s, r in rows.last.items():
            if s != 0:
                out.setdefault(r, []).append(s)
        for start in range(0, len(rows.token), self.n_ctx):
            end = min(start + self.n_ctx, len(rows.token))
            for i, r in enumerate(range(start, end)):
                b.token[i] = rows.token[r]
                b.pos[i] = rows.pos[r]
                b.n_seq_id[i] = len(rows.seqs[r])
                for k, s in enumerate(rows.seqs[r]):
                    b.seq_id[i][k] = s
                b.logits[i] = r in out
            b.n_tokens = end - start
            rc = self._lib.llama_decode(self.ctx.ctx, b)
            b.n_tokens = 0
            if rc != 0:                            # the cache no longer matches what we hold: forget it
                self._lib.llama_memory_clear(self.ctx.memory, False)
                self.tokens, self.logits, self._prefix = {0: []}, {}, []
                raise ValueError(f"llama_decode failed ({rc}): the batch does not fit the context "
                                 f"of {self.n_ctx} tokens (lower parallel or raise n_ctx)")
            self.decoded += end - start
            self.decodes += 1
            for r in range(start, end):
                for s in out.get(r, ()):
                    ptr = self._lib.llama_get_logits_ith(self.ctx.ctx, r - start)
                    self.logits[s] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()
