"""The processes one run trains on: an accelerate ``Accelerator`` per ``train()`` call.

One process (``vlmdyn train``), or several under ``torchrun`` / ``accelerate
launch``: DDP (gloo on CPUs, NCCL on GPUs), or DeepSpeed / FSDP through an
accelerate config. Every rank runs the same code; only the main rank writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmdyn_cli.training.speed import set_threads


@dataclass(frozen=True)
class Dist:
    acc: object                  # accelerate.Accelerator
    main: bool                   # rank 0: the one that writes rows, checkpoints and progress
    world: int
    rank: int
    sharded: bool                # DeepSpeed / FSDP: optimizer state is saved through accelerate

    @property
    def device(self):
        return self.acc.device


def start(mixed_precision: str, threads: int) -> Dist:
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedDataParallelKwargs, DistributedType

    # several train() calls in one process (the demo, tests) may differ in mixed precision: start from a
    # fresh accelerator state each time (the process group, if any, is kept)
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    # cpu=True when there is no GPU: that is what lets torchrun/accelerate launch use gloo on CPUs;
    # find_unused_parameters: a micro-batch of text-only conversations leaves the vision tower unused
    acc = Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available(),
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    if acc.device.type == "cpu":
        set_threads(threads, acc.num_processes if acc.num_processes > 1 else 1)
    return Dist(acc, acc.is_main_process, acc.num_processes, acc.process_index,
                acc.distributed_type in (DistributedType.DEEPSPEED, DistributedType.FSDP))


def gather_rows(dist: Dist, rows: list) -> list:
    """Every rank's rows, on every rank (a collective when there are several processes)."""
    if dist.world == 1:
        return list(rows)
    from accelerate.utils import gather_object

    return gather_object(rows)


def gathered(dist: Dist, wrapped, model):
    """``model`` with the full state gathered from every rank, ready for ``save_pretrained``.

    A collective: every rank must call it (only the main rank then saves).
    """
    return _Stateful(model, dist.acc.get_state_dict(wrapped))


class _Stateful:
    """A model whose save_pretrained uses a given (possibly gathered) state dict."""

    def __init__(self, model, state):
        self.model, self.state = model, state

    def save_pretrained(self, path, **kw):
        state = {k.removeprefix("model."): v for k, v in self.state.items()}   # LossModule's own prefix
        self.model.save_pretrained(path, state_dict=state, **kw)
