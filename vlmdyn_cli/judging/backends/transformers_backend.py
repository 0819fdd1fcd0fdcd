"""The `transformers` judge backend: a Hugging Face causal LM as the judge.

``model`` is a local folder or a hub id (downloaded by transformers when there is
network). ``load_in_4bit = true`` loads its linear layers as 4-bit NF4 weights through
bitsandbytes (the ``quant`` extra), on a CUDA GPU or on the CPU (compute in float32).

The prompt is the same as for every backend: the tokenizer's chat template when
it has one (system + user messages, generation prompt added), else the spec's
plain-text prompt. Full mode decodes greedily and returns the text for the shared
parser; p_yes is read from the logits at the first generated yes/no token. Score
mode ("only") is one forward pass over the prompt plus the reply's opening text
(``verdict_prefix``): p_yes = P(yes) / (P(yes) + P(no)) over the single-token case
and space variants of both words, from the next-token logits.

Spec options: ``load_in_4bit`` (bool), ``device`` (auto | cpu | cuda | cuda:N),
``dtype`` (auto | float32 | bfloat16 | float16), ``n_threads`` (CPU threads).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from vlmdyn_cli.errors import BadInput, require
from vlmdyn_cli.judging.backends.base import ModelBackend, OnCompletion, Options, Prompt
from vlmdyn_cli.judging.backends.verdict_probs import verdict_word
from vlmdyn_cli.judging.verdict import Completion

TORCH_HINT = "pip install torch transformers"
BNB_HINT = "pip install 'vlmdyn[quant]'  (bitsandbytes; its 4-bit NF4 runs on a CUDA GPU or the CPU)"
VARIANTS = ("yes", "Yes", "YES", "no", "No", "NO")


@dataclass(frozen=True)
class TransformersOptions(Options):
    load_in_4bit: bool = False    # 4-bit NF4 weights through bitsandbytes (the quant extra; CUDA or CPU)
    device: str = "auto"          # auto | cpu | cuda | cuda:N
    dtype: str = "auto"           # auto | float32 | bfloat16 | float16
    n_threads: int | None = None  # CPU threads for torch


class TransformersBackend(ModelBackend):
    Options = TransformersOptions

    def __init__(self, spec, options: TransformersOptions, context=None):
        super().__init__(spec, options, context)
        self.torch = torch = require("torch", TORCH_HINT, "the transformers judge backend")
        transformers = require("transformers", TORCH_HINT, "the transformers judge backend")
        self.notes: list[str] = []
        if not spec.model:
            raise BadInput("the transformers judge spec has no `model` (a local folder or a hub id)")
        self.model_ref = str(spec.model)
        self.max_tokens = int(spec.decoding.get("max_tokens", 64))
        if options.n_threads:
            torch.set_num_threads(options.n_threads)
        device = options.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BadInput(f"device={device} was asked for but torch sees no CUDA GPU (use device = \"cpu\")")
        self.device = device
        load_kwargs: dict = {}
        dtype = options.dtype
        if dtype != "auto":
            if not hasattr(torch, dtype):
                raise BadInput(f"dtype '{dtype}' is not a torch dtype (use auto, float32, bfloat16 or float16)")
            load_kwargs["dtype"] = getattr(torch, dtype)
        elif device == "cpu":
            load_kwargs["dtype"] = torch.float32
        if options.load_in_4bit:   # NF4 weights through bitsandbytes, on a CUDA GPU or the CPU (bitsandbytes >= 0.45)
            require("bitsandbytes", BNB_HINT, "load_in_4bit")
            compute = torch.bfloat16 if device.startswith("cuda") else torch.float32
            load_kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
            load_kwargs["device_map"] = device if device != "cuda" else "cuda:0"
            load_kwargs.pop("dtype", None)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_ref)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(self.model_ref, **load_kwargs)
        except (OSError, ValueError) as exc:
            raise BadInput(f"cannot load the transformers judge model '{self.model_ref}': "
                           f"{str(exc).splitlines()[0]} (a local folder with config.json and tokenizer files, "
                           "or a hub id when online)") from None
        if "quantization_config" not in load_kwargs:
            self.model.to(device)
        self.model.eval()
        self.chat = bool(getattr(self.tokenizer, "chat_template", None))
        self.yes_ids, self.no_ids = self._verdict_ids()
        if not self.yes_ids or not self.no_ids:
            self._note(f"the tokenizer of {self.model_ref} has no single-token 'yes'/'no': p_yes is not available")
        commit = getattr(self.model.config, "_commit_hash", None)
        self.resolved = f"{self.model_ref}@{commit[:12]}" if commit else self.model_ref

    def complete(self, prompts: Iterable[Prompt], on_completion: OnCompletion) -> None:
        for p in prompts:
            on_completion(self.respond(p))

    def close(self) -> None:
        self.model = None

    # ---- one item

    def prompt_text(self, req: Prompt) -> str:
        if self.chat and req.messages:
            return self.tokenizer.apply_chat_template(req.messages, add_generation_prompt=True, tokenize=False)
        if req.text is not None:
            return req.text
        return "\n\n".join(m["content"] for m in req.messages) + "\n"

    def respond(self, req: Prompt) -> Completion:
        torch = self.torch
        t0 = time.perf_counter()
        text = self.prompt_text(req)
        if req.score_only:
            text += req.verdict_prefix or ""
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=not self.chat)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        n_prompt = int(enc["input_ids"].shape[1])
        try:
            with torch.inference_mode():
                if req.score_only:
                    logits = self.model(**enc).logits[0, -1]
                    p = self._p_yes(logits)
                    return Completion(
                        key=req.key, text=None, p_yes=p, prompt_tokens=n_prompt, completion_tokens=0,
                        cost_usd=0.0, resolved_model=self.resolved, latency_s=time.perf_counter() - t0,
                        error=None if p is not None else "score mode: the tokenizer has no single-token yes/no")
                out = self.model.generate(
                    **enc, max_new_tokens=self.max_tokens, do_sample=False, output_scores=True,
                    return_dict_in_generate=True,
                    pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        except RuntimeError as exc:   # e.g. CUDA out of memory: this item unscored, the run goes on
            return Completion(key=req.key, error=f"model error: {str(exc).splitlines()[0]}",
                                 resolved_model=self.resolved, latency_s=time.perf_counter() - t0)
        new = out.sequences[0, n_prompt:]
        p_yes = None
        for step, tok in enumerate(new.tolist()):
            if verdict_word(self.tokenizer.decode([tok])):
                p_yes = self._p_yes(out.scores[step][0])
                break
        return Completion(
            key=req.key, text=self.tokenizer.decode(new, skip_special_tokens=True), p_yes=p_yes,
            prompt_tokens=n_prompt, completion_tokens=int(new.shape[0]), cost_usd=0.0,
            resolved_model=self.resolved, latency_s=time.perf_counter() - t0)

    # ---- helpers

    def _verdict_ids(self) -> tuple[list[int], list[int]]:
        yes, no = set(), set()
        for word in VARIANTS:
            for text in (word, " " + word):
                ids = self.tokenizer.encode(text, add_special_tokens=False)
                if len(ids) == 1 and ids[0] != self.tokenizer.unk_token_id:
                    (yes if word.lower() == "yes" else no).add(ids[0])
        return sorted(yes), sorted(no)

    def _p_yes(self, logits) -> float | None:
        if not self.yes_ids or not self.no_ids:
            return None
        torch = self.torch
        logp = torch.log_softmax(logits.float(), dim=-1)
        ly = torch.logsumexp(logp[self.yes_ids], dim=0)
        ln = torch.logsumexp(logp[self.no_ids], dim=0)
        return float(torch.sigmoid(ly - ln))

    def _note(self, message: str) -> None:
        self.notes.append(message)
        self.context.reporter.info(f"note: {message}")
