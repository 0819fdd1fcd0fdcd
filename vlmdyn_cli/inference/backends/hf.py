"""The default backend: transformers ``generate`` on a LLaVA checkpoint folder.

Batches are left-padded, so every prompt ends at the same position and the
new tokens line up; the attention mask hides the padding and ``generate``
derives position ids from it, and the KV cache makes each new token cost one
forward step. Greedy output is the same batched or one at a time (tested).
"""

from __future__ import annotations

from vlmdyn_cli.errors import BadInput
from vlmdyn_cli.inference.backends.base import GenBackend
from vlmdyn_cli.inference.config import GenConfig
from vlmdyn_cli.inference.items import GenItem, open_image


def resolve_device(device: str) -> str:
    """The torch device for ``--device`` (auto: cuda when available, else cpu); a device this machine
    does not have, or a name torch does not know, is bad input before anything is stored."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise BadInput(f"--device {device!r} is not a device: use auto, cpu, cuda or cuda:K") from None
    if dev.type == "cpu":
        return device
    backend = getattr(torch, dev.type, None)
    if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
        raise BadInput(f"--device {device}: this machine's torch has no {dev.type} device; use --device cpu "
                       "(or auto)")
    if dev.index is not None and hasattr(backend, "device_count") and dev.index >= backend.device_count():
        raise BadInput(f"--device {device}: only {backend.device_count()} {dev.type} device(s) are visible")
    return device


class HFBackend(GenBackend):
    name = "hf"

    def __init__(self, device: str = "auto", dtype: str | None = None, threads: int = 0):
        import torch

        self._threads_before = torch.get_num_threads()
        self.threads = threads
        if threads > 0:         # restored by close()
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.dtype_name = dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")
        self.model = self.processor = None

    def load(self, checkpoint_path: str) -> None:
        import torch

        from vlmdyn_cli.models.checkpoint import load_checkpoint

        self._free()
        try:
            self.model, self.processor, _ = load_checkpoint(
                checkpoint_path, device=self.device, dtype=getattr(torch, self.dtype_name))
        except BadInput:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. SafetensorError on a truncated weights file
            raise BadInput(f"checkpoint {checkpoint_path} cannot be loaded: {type(exc).__name__}: {exc}") from exc
        self.processor.tokenizer.padding_side = "left"

    def generate(self, items: list[GenItem], cfg: GenConfig) -> list[str]:
        import torch

        tok = self.processor.tokenizer
        images = [open_image(it.image_path) for it in items if it.image_path is not None]
        enc = self.processor(text=[it.prompt for it in items], images=images or None,
                             return_tensors="pt", padding=True).to(self.device)
        if "pixel_values" in enc:
            enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
        stop_id = tok.convert_tokens_to_ids(cfg.stop)
        kwargs = dict(max_new_tokens=cfg.max_new_tokens, do_sample=not cfg.greedy, use_cache=True,
                      pad_token_id=tok.pad_token_id,
                      eos_token_id=stop_id if stop_id is not None else tok.eos_token_id)
        if not cfg.greedy:
            kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p)
            torch.manual_seed(cfg.seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1]:]
        return [t.strip() for t in tok.batch_decode(new_tokens, skip_special_tokens=True)]

    def close(self) -> None:
        """Free the model and give torch back the thread count it had before."""
        self._free()
        if self.threads > 0:
            import torch

            torch.set_num_threads(self._threads_before)

    def _free(self) -> None:
        if self.model is not None:
            self.model = self.processor = None
            import gc

            gc.collect()
            if self.device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()
