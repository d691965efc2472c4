"""SLURM beside torchrun (repro/slurm.py): srun's environment read as torchrun's, and two local processes with
the environment srun sets joining one gloo group through distributed.setup (the path `repro train` takes)."""
import os
import socket
import subprocess
import sys

import pytest

from repro import slurm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("nodelist, host", [("gpu[003-005,007],cpu1", "gpu003"), ("node7", "node7"),
                                            ("a100-[12,14]", "a100-12"), ("n[1-2]", "n1")])
def test_first_host_of_a_node_list(nodelist, host):
    assert slurm.first_host(nodelist) == host


def test_srun_environment_becomes_torchruns():
    env = {"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_TASKS_PER_NODE": "8(x2)",
           "SLURM_JOB_NODELIST": "gpu[003-004]", "SLURM_JOB_ID": "123456"}
    assert slurm.torch_env(env) == {"RANK": "9", "WORLD_SIZE": "16", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "8",
                                    "MASTER_ADDR": "gpu003", "MASTER_PORT": str(29500 + 3456)}


def test_torchrun_and_plain_runs_are_left_alone():
    assert slurm.torch_env({"RANK": "0", "SLURM_PROCID": "0", "SLURM_NTASKS": "2"}) == {}
    assert slurm.torch_env({}) == {}
    kept = slurm.torch_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert "MASTER_ADDR" not in kept and "MASTER_PORT" not in kept


WORKER = """
import torch
from repro import distributed
env = distributed.setup("cpu")
total = distributed.reduce_mean(torch.tensor([float(env.rank + 1)]))
print(env.rank, env.world_size, env.local_rank, total.item(), flush=True)
distributed.cleanup(env)
"""


def test_two_srun_tasks_join_one_gloo_group():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_",
                                                                         "MASTER_"))}
    procs = []
    for rank in range(2):
        env = {**base, "PYTHONPATH": REPO, "SLURM_PROCID": str(rank), "SLURM_NTASKS": "2",
               "SLURM_LOCALID": str(rank), "SLURM_NTASKS_PER_NODE": "2", "SLURM_JOB_NODELIST": "localhost",
               "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=REPO, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert [o[0].split() for o in outs] == [["0", "2", "0", "1.5"], ["1", "2", "1", "1.5"]]
