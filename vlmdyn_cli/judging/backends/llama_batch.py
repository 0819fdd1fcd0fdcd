"""Several prompts in one llama.cpp batch: one sequence per prompt, their shared prefix decoded once.

The llama-cpp judge's ``parallel`` option (items per batch) uses this instead of its one-at-a-time
context. It is a second llama context on the same loaded model (the weights are shared; it has
its own KV cache) with ``n_seq_max = parallel + 1`` and a unified KV cache:

* sequence 0 holds the tokens every prompt of the batch starts with (the rubric, and whatever
  the items happen to share after it); it is decoded once and kept for the next batch, cut
  back only where a new batch's prompts differ from it;
* each prompt gets sequence i >= 1, a copy of sequence 0 (in a unified cache the cells are
  shared, not copied), and only its own suffix is decoded: all the suffixes in one
  ``llama_decode``, with an output row for the last token of each;
* ``evaluate`` later moves every sequence to new tokens (the next slot of a forced reply) the
  same way, cutting a sequence back where its new tokens differ from the ones it holds.

The logits of each output row are copied at once (``llama_get_logits_ith``), so a sequence
that is asked for the tokens it already ends with needs no decode. Nothing is saved or loaded
(no ``save_state``: MEASURED.md, it copies the logits buffer).
"""

from __future__ import annotations

import ctypes

import numpy as np


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class ParallelContext:
    """Sequence 0 = a shared prefix, sequences 1..n = prompts that start with it."""

    def __init__(self, llm, n_seq: int, n_ctx: int, n_threads: int):
        import llama_cpp
        from llama_cpp import _internals

        self._lib = llama_cpp
        params = llama_cpp.llama_context_params()
        ctypes.memmove(ctypes.byref(params), ctypes.byref(llm.context_params), ctypes.sizeof(params))
        params.n_ctx = n_ctx
        params.n_batch = n_ctx                  # one decode takes every suffix of a batch
        params.n_seq_max = n_seq + 1
        params.kv_unified = True                # the prefix's cells belong to every sequence
        params.n_threads = params.n_threads_batch = n_threads
        self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self.batch = _internals.LlamaBatch(n_tokens=n_ctx, embd=0, n_seq_max=1, verbose=False)
        self.n_ctx, self.n_seq, self.n_vocab = n_ctx, n_seq, llm.n_vocab()
        self.tokens: dict[int, list[int]] = {0: []}       # what each sequence holds
        self.logits: dict[int, np.ndarray] = {}           # the logits after a sequence's last token
        self.decoded = 0                                  # tokens decoded (benchmark: prefix reuse)

    def start(self, prefix: list[int], n: int) -> None:
        """Sequence 0 = ``prefix``; sequences 1..n = copies of it (earlier items' sequences dropped)."""
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
        if keep < len(prefix):
            self._decode({0: (keep, prefix[keep:])})
            self.tokens[0] = list(prefix)
        for s in range(1, n + 1):
            self._lib.llama_memory_seq_cp(mem, 0, s, -1, -1)
            self.tokens[s] = list(self.tokens[0])

    def evaluate(self, wants: dict[int, list[int]]) -> dict[int, np.ndarray]:
        """Bring each sequence to exactly its wanted tokens, decoding only what differs from what it
        holds (at least its last token, unless its logits there are kept); the logits after each."""
        mem = self.ctx.memory
        todo: dict[int, tuple[int, list[int]]] = {}
        for s, want in wants.items():
            have = self.tokens[s]
            if have == want and s in self.logits:
                continue
            keep = min(common_prefix(have, want), len(want) - 1)
            if keep < len(have) and not self._lib.llama_memory_seq_rm(mem, s, keep, -1):
                raise ValueError("this model's KV cache cannot be cut back; use parallel = 1")
            todo[s] = (keep, want[keep:])
            self.tokens[s] = list(want)
        if todo:
            self._decode(todo)
        return {s: self.logits[s] for s in wants}

    def _decode(self, todo: dict[int, tuple[int, list[int]]]) -> None:
        """Decode each sequence's new tokens (starting at its position ``keep``), as few decodes as
        the batch size allows; keep the logits after each sequence's last token."""
        b = self.batch.batch
        pending: list[tuple[int, int]] = []      # (sequence, batch row of its last token)

        def flush() -> None:
            if b.n_tokens == 0:
                return
            rc = self._lib.llama_decode(self.ctx.ctx, b)
            if rc != 0:
                raise ValueError(f"llama_decode failed ({rc}): the batch does not fit the context "
                                 f"of {self.n_ctx} tokens (lower parallel or raise n_ctx)")
            for s, row in pending:
                if s != 0:
                    ptr = self._lib.llama_get_logits_ith(self.ctx.ctx, row)
                    self.logits[s] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()
            self.decoded += b.n_tokens
            b.n_tokens = 0
            pending.clear()

        for s, (keep, new) in todo.items():
            for start in range(0, len(new), self.n_ctx):
                chunk = new[start:start + self.n_ctx]
                if b.n_tokens + len(chunk) > self.n_ctx:
                    flush()
                n0 = b.n_tokens
                for j, t in enumerate(chunk):
                    b.token[n0 + j] = t
                    b.pos[n0 + j] = keep + start + j
                    b.n_seq_id[n0 + j] = 1
                    b.seq_id[n0 + j][0] = s
                    b.logits[n0 + j] = False
                b.n_tokens = n0 + len(chunk)
            b.logits[b.n_tokens - 1] = True
            pending.append((s, b.n_tokens - 1))
        flush()
