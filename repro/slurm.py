"""SLURM beside torchrun: srun's environment read as torchrun's, so `repro train` under `srun` (one task per GPU)
joins the same process group that torchrun would make.

    srun --ntasks-per-node 8 --gpus-per-node 8 python -m repro.engine.train --config 256x192 --out models/256x192

`torch_env(os.environ)` maps SLURM_PROCID -> RANK, SLURM_NTASKS -> WORLD_SIZE, SLURM_LOCALID -> LOCAL_RANK,
the tasks on this node -> LOCAL_WORLD_SIZE, and the first host of SLURM_JOB_NODELIST -> MASTER_ADDR
(MASTER_PORT: kept if set, else one derived from the job id, so two jobs sharing a node do not collide).
Under torchrun (RANK already set) nothing changes. scripts/slurm_train.sh is the sbatch script.
"""
import re

DEFAULT_PORT = 29500


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "gpu[003-005,007],cpu1" -> "gpu003", "node7" -> "node7"."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise ValueError(f"SLURM_JOB_NODELIST: cannot read {nodelist!r}")
    prefix, ranges = m.groups()
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]   # zero padding kept: "003-005" -> "003"


def _tasks_on_node(env) -> str:
    """SLURM_NTASKS_PER_NODE, else the first count of SLURM_TASKS_PER_NODE ("8(x2)" -> "8")."""
    if env.get("SLURM_NTASKS_PER_NODE", "").isdigit():
        return env["SLURM_NTASKS_PER_NODE"]
    return re.match(r"\d*", env.get("SLURM_TASKS_PER_NODE", "")).group() or "1"


def torch_env(env) -> dict:
    """The torch.distributed variables srun's environment `env` implies; {} when not under srun or under torchrun."""
    if "RANK" in env or "SLURM_PROCID" not in env or "SLURM_NTASKS" not in env:
        return {}
    out = {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": env["SLURM_NTASKS"],
           "LOCAL_RANK": env.get("SLURM_LOCALID", "0"), "LOCAL_WORLD_SIZE": _tasks_on_node(env)}
    if "MASTER_ADDR" not in env:
        out["MASTER_ADDR"] = first_host(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or "127.0.0.1")
    if "MASTER_PORT" not in env:
        job = env.get("SLURM_JOB_ID", "0")
        out["MASTER_PORT"] = str(DEFAULT_PORT + int(job) % 10000 if job.isdigit() else DEFAULT_PORT)
    return out
