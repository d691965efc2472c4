"""A real single-node SLURM on this machine (Debian's slurm-wlm; scripts/test.sh installs it when run as root):
munged, slurmctld and slurmd started here on localhost with a throw-away slurm.conf, then `srun -n 2` starts two
tasks whose rank, world and master repro/slurm.py reads from srun's own environment, joining one gloo group
through distributed.setup, the path `repro train` takes (tests/unit/test_slurm.py sets that environment by hand).
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.unit.test_slurm import WORKER

pytestmark = pytest.mark.slow
DAEMONS = ("munged", "slurmctld", "slurmd", "srun")

CONF = """ClusterName=repro-test
SlurmctldHost={host}
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmUser=root
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmdSpoolDir={d}/spool
StateSaveLocation={d}/state
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=repro Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster; its daemons are stopped afterwards."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"no real SLURM here ({'missing ' + ', '.join(missing) if missing else 'not root'}): "
                    f"`apt-get install slurm-wlm` as root (scripts/test.sh does)")
    d = tmp_path_factory.mktemp("slurm")
    (d / "spool").mkdir(), (d / "state").mkdir()
    conf = d / "slurm.conf"
    conf.write_text(CONF.format(host=socket.gethostname().split(".")[0], cpus=os.cpu_count(), d=d))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    started = [subprocess.Popen(["munged", "--foreground", "--force"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)]
    try:
        for daemon in ("slurmctld", "slurmd"):
            started.append(subprocess.Popen([daemon, "-D"], env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 60   # the budget for a cluster that is worth testing on
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                                           text=True).stdout:
            if time.monotonic() > deadline:
                pytest.fail(f"SLURM did not start within 60 s: {(d / 'slurmctld.log').read_text()[-2000:]}")
            time.sleep(1)
        yield env
    finally:
        for proc in reversed(started):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_srun_tasks_join_one_gloo_group_through_the_srun_environment(cluster):
    base = {k: v for k, v in cluster.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_", "MASTER_"))}
    done = subprocess.run(["srun", "--nodes", "1", "--ntasks", "2", "--cpu-bind=none", sys.executable, "-c", WORKER],
                          env={**base, "PYTHONPATH": str(REPO)}, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = sorted(line.split() for line in done.stdout.splitlines() if line.strip())
    assert lines == [["0", "2", "0", "1.5"], ["1", "2", "1", "1.5"]], done.stdout
