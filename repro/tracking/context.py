"""What a run records about itself: the pipeline it belongs to, the code version (git), the environment
(pip freeze, torch/CUDA/cuDNN, CPU and GPU names) and the data it read (sha256 and MLflow dataset inputs)."""
import importlib.metadata
import json
import os
import platform
import subprocess
import uuid
from pathlib import Path

from repro import config, machine
from repro.digest import sha256_file

_FRESH_GROUP = uuid.uuid4().hex


def _is_dvc(cmdline: list) -> bool:
    """`dvc ...`, `/venv/bin/dvc ...`, `python /venv/bin/dvc ...` or `python -m dvc ...`."""
    for i, arg in enumerate(cmdline[:3]):
        if Path(arg).name in ("dvc", "dvc.exe") or (arg == "-m" and cmdline[i + 1:i + 2] == ["dvc"]):
            return True
    return False


def pipeline_group_id() -> str:
    """One id shared by every stage run of one `dvc repro` (the MLflow tag `repro.pipeline`).

    $REPRO_PIPELINE_ID if set; else derived from the nearest ancestor dvc process (pid + start time, so a
    recycled pid gives another id); else a fresh id for this process.
    """
    if config.pipeline_id():
        return config.pipeline_id()
    import psutil
    try:
        for proc in psutil.Process().parents():
            try:
                if _is_dvc(proc.cmdline()):
                    return f"dvc-{proc.pid}-{int(proc.create_time() * 1000)}"
            except (psutil.AccessDenied, psutil.ZombieProcess, psutil.NoSuchProcess):
                continue
    except psutil.Error:
        pass
    return _FRESH_GROUP


def git(*args: str) -> str | None:
    """git run in the checkout this code comes from (the run's code version, whatever the cwd)."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30, check=True,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def pip_freeze() -> str:
    dists = {(d.metadata["Name"] or "?", d.version) for d in importlib.metadata.distributions()}
    return "".join(f"{name}=={version}\n" for name, version in sorted(dists, key=lambda x: x[0].lower()))


def data_digests(cfg) -> dict:
    """sha256 of the annotation and detection files this run reads (those that exist)."""
    files = {"train_ann": cfg.data.train_ann, "val_ann": cfg.data.val_ann, "det_file": cfg.data.det_file}
    return {name: sha256_file(p) for name, p in files.items() if Path(p).is_file()}


def dataset_inputs(cfg, context: dict) -> list:
    """The annotation and detection files a run read, as MLflow dataset inputs (the UI's Dataset column):
    [{"name", "path", "digest" (the first 32 hex digits of the sha256 in `context`), "context"}]."""
    use = {"train_ann": (cfg.data.train_ann, "training"), "val_ann": (cfg.data.val_ann, "evaluation"),
           "det_file": (cfg.data.det_file, "evaluation")}
    return [{"name": name, "path": str(Path(path).resolve()), "digest": context[f"data.sha256.{name}"][:32],
             "context": role} for name, (path, role) in use.items() if f"data.sha256.{name}" in context]


def log_datasets(client, run_id: str, datasets: list) -> None:
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    inputs = [DatasetInput(MetaDataset(resolve_dataset_source(d["path"]), name=d["name"],
                                       digest=d["digest"])._to_mlflow_entity(),
                           tags=[InputTag("mlflow.data.context", d["context"])]) for d in datasets]
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


def run_context(cfg, world_size: int, recipe_diff: list) -> dict:
    """Tags that say what ran, where, on what: {tag: value} (values are strings)."""
    import torch   # here, not at import: stages that never touch a tensor (compare) start 2 s sooner

    from repro.recipe import recipe_status
    commit = git_commit()
    status = git("status", "--porcelain")
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    tags = {
        "repro.pipeline": pipeline_group_id(),
        "repro.config": cfg.name, "repro.profile": cfg.profile, "repro.seed": cfg.seed,
        "repro.world_size": world_size,
        "repro.recipe": recipe_status(recipe_diff), "repro.recipe_diff": json.dumps(recipe_diff),
        "git.commit": commit, "mlflow.source.git.commit": commit,
        "git.dirty": "unknown" if status is None else str(bool(status.strip())).lower(),
        "python.version": platform.python_version(), "platform": platform.platform(),
        "torch.version": torch.__version__, "torch.cuda": torch.version.cuda or "none",
        "torch.cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none",
        "hardware.cpu": machine.cpu_model(), "hardware.cpu_count": os.cpu_count(),
        "hardware.gpus": ", ".join(gpus) if gpus else "none",
    }
    tags.update({f"data.sha256.{name}": digest for name, digest in data_digests(cfg).items()})
    return {k: str(v) for k, v in tags.items()}


def git_commit() -> str:
    """The commit this code comes from, or "unknown" outside a checkout."""
    return (git("rev-parse", "HEAD") or "").strip() or "unknown"
