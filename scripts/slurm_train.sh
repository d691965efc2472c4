#!/bin/bash
# Train one config of the full recipe under SLURM: one task per GPU, srun starts them, and `repro train` reads
# its rank, world size and master from srun's environment (repro/slurm.py). mmpose's slurm_train.sh, for this tool.
#
#   sbatch --wait scripts/slurm_train.sh 256x192        # blocks until the job ends; exit status = the job's
#   dvc commit train@256x192 && dvc exp run -S profile=full
#
# The work dir (models/<config>/in_progress) must be on a file system every node shares. Resubmitting resumes
# from its last.pth. Override the allocation on the command line (sbatch --nodes 2 ...) or with SBATCH_* variables.
#SBATCH --job-name=repro-cpm
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=12
#SBATCH --output=logs/slurm-%j.out
set -euo pipefail
CONFIG=${1:?usage: sbatch --wait scripts/slurm_train.sh CONFIG (256x192 or 384x288) [repro train args...]}
shift
cd "${SLURM_SUBMIT_DIR:-.}"
mkdir -p logs
# --cpu-bind=none: each task's loader workers may use the cores the allocation gives it (num_workers: auto
# counts them through the CPU affinity).
exec srun --cpu-bind=none python -m repro.engine.train --config "$CONFIG" --profile full \
    --out "models/$CONFIG" --work-dir "models/$CONFIG/in_progress" "$@"
