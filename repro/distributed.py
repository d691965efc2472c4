"""Process-group setup from torchrun's environment, and the few collectives the trainer needs.

One process (plain `python -m repro.engine.train ...`), N local processes or several nodes (torchrun sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) all go through `setup()`. The backend is nccl when
CUDA is available and gloo otherwise.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from repro import slurm


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: its global rank, the world size, its local rank and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool   # True when setup() created the process group (and cleanup() should destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str | None = None) -> DistEnv:
    """Join the process group torchrun describes (if any) and pick this process's device.

    Args:
        device: "cpu" or "cuda" to force one; None picks CUDA when available.
    """
    os.environ.update(slurm.torch_env(os.environ))   # under srun: SLURM's rank, world and master
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    owns_group = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                device_id=dev if use_cuda else None)
        owns_group = True
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistEnv(rank, world_size, local_rank, dev, owns_group)


def cleanup(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    return not is_dist() or dist.get_rank() == 0


def reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of `t` over all ranks (a copy; `t` itself is unchanged). Identity on one process."""
    t = t.detach().clone()
    if is_dist():
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def broadcast_object(obj, src: int = 0):
    """`obj` from rank `src` on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if is_dist():
        dist.barrier()


@torch.no_grad()
def average_buffers(model: nn.Module) -> None:
    """Average every floating-point buffer (BN running mean/var) across ranks, in place.

    mmengine's SyncBuffersHook does this at the end of each training epoch: with per-GPU BatchNorm each
    rank's running statistics drift apart, and the saved/validated model should carry their mean.
    Integer buffers (num_batches_tracked) are equal on every rank and are left alone.
    """
    if not is_dist():
        return
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    if not buffers:
        return
    flat = torch.cat([b.reshape(-1).to(torch.float64) for b in buffers])   # one collective, exact mean
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for b in buffers:
        n = b.numel()
        b.copy_(flat[offset:offset + n].view_as(b))
        offset += n


def all_gather_object(obj) -> list:
    """`obj` of every rank, in rank order (a list of one on a single process)."""
    if not is_dist():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
