"""The vLLM backend (optional, GPU): same checkpoint folders, offline ``LLM.generate``.

Request building is plain Python (``build_requests``, ``sampling_args``) so it
is tested without vLLM or a GPU; only ``load``/``generate`` touch vLLM.
"""

from __future__ import annotations

from vlmdyn_cli.errors import BadInput, require
from vlmdyn_cli.inference.backends.base import GenBackend
from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.inference.items import GenItem, open_image

INSTALL_HINT = "pip install 'vlmdyn[vllm]'  (vLLM needs a CUDA GPU; use --backend hf on CPU)"


def build_requests(items: list[GenItem]) -> list[dict]:
    """One vLLM prompt dict per item: the training chat prompt, plus the image if any."""
    reqs = []
    for it in items:
        req: dict = {"prompt": it.prompt}
        if it.image_path is not None:
            req["multi_modal_data"] = {"image": open_image(it.image_path)}
        reqs.append(req)
    return reqs


def visible_devices(device: str, visible: str | None) -> str | None:
    """The CUDA_VISIBLE_DEVICES that puts ``--device cuda:K`` first (vLLM uses the first visible GPU).

    None = leave the environment as it is (``auto``, ``cuda``). K counts among the GPUs already
    visible when CUDA_VISIBLE_DEVICES is set, as torch does. BadInput for a K that is not there.
    """
    if not device.startswith("cuda:"):
        if device not in ("auto", "cuda"):
            raise BadInput(f"--device {device}: the vllm backend runs on CUDA GPUs (auto, cuda or cuda:K)")
        return None
    k = device.split(":", 1)[1]
    if not k.isdigit():
        raise BadInput(f"--device {device}: expected cuda:K with K a GPU number")
    if visible is None or not visible.strip():
        return k
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if int(k) >= len(ids):
        raise BadInput(f"--device {device}: only {len(ids)} GPUs are visible (CUDA_VISIBLE_DEVICES={visible})")
    return ids[int(k)]


def sampling_args(cfg: GenConfig) -> dict:
    """Keyword arguments for ``vllm.SamplingParams`` matching the hf backend's decoding."""
    args = {"max_tokens": cfg.max_new_tokens, "stop": [cfg.stop], "skip_special_tokens": True}
    if cfg.greedy:
        args["temperature"] = 0.0
    else:
        args.update(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed)
    return args


class VLLMBackend(GenBackend):
    name = "vllm"

    def __init__(self, device: str = "auto", dtype: str | None = None, threads: int = 0, **engine_args):
        import os

        pin = visible_devices(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
        if pin is not None:       # before vLLM (and torch.cuda) start: one shard per GPU
            os.environ["CUDA_VISIBLE_DEVICES"] = pin
        self.device = device
        self.vllm = require("vllm", INSTALL_HINT, "the vllm inference backend")
        self.dtype = dtype or "auto"
        self.engine_args = engine_args
        self.llm = None

    def load(self, checkpoint_path: str) -> None:
        self.close()
        self.llm = self.vllm.LLM(model=str(checkpoint_path), dtype=self.dtype,
                                 limit_mm_per_prompt={"image": 1}, **self.engine_args)

    def generate(self, items: list[GenItem], cfg: GenConfig) -> list[str]:
        params = self.vllm.SamplingParams(**sampling_args(cfg))
        outs = self.llm.generate(build_requests(items), params, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outs]

    def close(self) -> None:
        if self.llm is not None:
            self.llm = None
            import gc

            gc.collect()
