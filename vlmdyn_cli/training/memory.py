"""Refuse a batch that cannot fit, before any weights are allocated.

The estimate is deliberately simple: fp32 weights + gradients + two AdamW
moments for trainable parameters, plus activations of the largest
micro-batch (about 24 values per hidden unit per layer per token, and the
logits three times over). It only has to catch configurations that are
clearly impossible on this device, with a message that says what to change.
"""

from __future__ import annotations

from vlmdyn_cli.errors import BadInput


def estimate_bytes(n_params: int, n_trainable: int, batch: int, seq_len: int, hidden: int, layers: int,
                   vocab: int, bytes_per_value: int = 4) -> int:
    states = n_params * bytes_per_value + n_trainable * (4 + 8)
    activations = batch * seq_len * (24 * hidden * layers + 3 * vocab) * bytes_per_value
    return states + activations


def available_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info()[0]
    import psutil

    return psutil.virtual_memory().available


def check_fits(need: int, device: str, what: str) -> None:
    have = available_bytes(device)
    if need > 0.9 * have:
        raise BadInput(
            f"not enough memory for {what}: needs about {need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB free on "
            f"{device}. Lower [train] per_device_batch (and raise grad_accum to keep the global batch), lower "
            "[data] max_length, set [model] gradient_checkpointing = true, use mixed_precision = \"bf16\", "
            "freeze parts ([parts] freeze), or shard with DeepSpeed/FSDP (examples/accelerate_*.yaml)")
