"""Start training on this node: in-process for one worker, under torchrun for several.

    python -m stages.train --config 256x192 --out models/256x192     # what dvc.yaml runs

The number of local workers is REPRO_NPROC if set, else the number of visible CUDA devices, else 1.
Several nodes: run `torchrun --nnodes N --rdzv-backend c10d --rdzv-endpoint HOST:PORT
--nproc-per-node G -m repro.engine.train --config ...` on each node yourself (README).
"""
import os
import shutil
import sys

import torch

from repro import config


def local_world_size() -> int:
    nproc = config.nproc()
    return nproc if nproc is not None else max(1, torch.cuda.device_count())


def under_torchrun() -> bool:
    """Under torchrun, or under srun (one task per GPU: repro.slurm gives it torchrun's variables)."""
    return "LOCAL_RANK" in os.environ or "SLURM_PROCID" in os.environ


def torchrun_command(nproc: int, module: str, argv: list) -> list:
    """The torchrun command line that runs `python -m module argv` on `nproc` local workers."""
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    return [torchrun, "--standalone", f"--nproc-per-node={nproc}", "-m", module, *argv]


def run(module: str, argv: list, main) -> None:
    """Call `main(argv)` here, or replace this process with torchrun when several workers are wanted."""
    nproc = local_world_size()
    if nproc > 1 and not under_torchrun():
        cmd = torchrun_command(nproc, module, argv)
        os.execv(cmd[0], cmd)
    main(argv)
