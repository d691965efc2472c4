"""Checkpoints as MLflow models: the PyTorch flavour, registered per config (mlflow is imported lazily).

    spec = registry.model_spec(cfg, "models/256x192/best.pth", "trained")   # plain JSON: kept in pending markers
    version = registry.log_checkpoint(client, run_id, spec, uri)            # logged into run_id, registered

    model = mlflow.pytorch.load_model("models:/cpm-256x192/latest")         # a torch module, no repro needed
    heatmaps = model(images)    # (N, 3, H, W) float32, normalised crops -> (N, 17, H/8, W/8) last-stage heatmaps

Names: our trained checkpoints are versions of `cpm-<config>` (cpm-256x192, cpm-384x288), the published
mmpose checkpoints versions of `cpm-<config>-published`, so `models:/cpm-256x192/latest` is always a model
this harness trained. Each version is tagged repro.source, repro.config, repro.profile, repro.run_id,
repro.checkpoint (+ its sha256) and git.commit; a trained version also gets the alias of its profile
(`models:/cpm-256x192@full` is the newest full-profile model, `@smoke` the newest smoke one).

What is stored: the network with its last stage as the only output (the stage the published protocol
decodes), exported by torch.export into MLflow's `pt2` format (its default in 3.17): a graph and weights,
no pickled Python objects, so loading runs no code from the file and needs neither this repository nor
torchvision. The weights come from the checkpoint through `checkpoint.load_checkpoint` (torch.load with
weights_only=True), in fp32 on the CPU, in eval mode (BN uses its running statistics). The batch size is
free (the example holds 2 crops: torch.export fixes a batch of 1); H and W are the config's input size.
Signature: input `image` float32 (-1, 3, H, W), output `heatmaps` float32 (-1, 17, H/8, W/8). The input
example is 2 deterministic crops in quarter steps over [-2, 2] (short JSON: about 6 MB for 256x192 with
MLflow's serving copy, 15 MB for 384x288).
"""
import dataclasses
import os
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from repro.checkpoint import load_checkpoint
from repro.digest import sha256_file
from repro.model import CPMConfig, build_cpm

EXAMPLE_BATCH = 2   # > 1: torch.export would fix a batch dimension of 1


def registered_name(config: str, source: str) -> str:
    """cpm-<config> for our trained checkpoints, cpm-<config>-published for mmpose's."""
    return f"cpm-{config}" if source == "trained" else f"cpm-{config}-{source}"


def model_spec(cfg, checkpoint, source: str) -> dict:
    """What `log_checkpoint` needs, as plain JSON (a pending marker keeps it for `repro publish`)."""
    return {"checkpoint": str(checkpoint), "config": cfg.name, "profile": cfg.profile, "source": source,
            "registered_name": registered_name(cfg.name, source), "model": dataclasses.asdict(cfg.model),
            "input_size": [int(v) for v in cfg.codec.input_size]}


class FinalHeatmaps(nn.Module):
    """A CPM whose output is its last stage's heatmaps (N, K, H/8, W/8) instead of the list of every stage."""

    def __init__(self, cpm: nn.Module):
        super().__init__()
        self.cpm = cpm

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.cpm(image)[-1]


def load_module(spec: dict) -> FinalHeatmaps:
    """The checkpoint's network (weights_only load, fp32, CPU, eval mode) with the last stage as output."""
    cpm = build_cpm(CPMConfig(**spec["model"]))
    load_checkpoint(spec["checkpoint"], cpm)
    return FinalHeatmaps(cpm).float().eval()


def example_input(input_size) -> np.ndarray:
    """(2, 3, H, W) float32: normalised-image-like values in quarter steps over [-2, 2], the same every time."""
    w, h = input_size
    values = np.random.default_rng(0).integers(-8, 9, size=(EXAMPLE_BATCH, 3, h, w))
    return (values / 4).astype(np.float32)


def signature(input_size, num_keypoints: int):
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec
    w, h = input_size
    return ModelSignature(Schema([TensorSpec(np.dtype(np.float32), (-1, 3, h, w), "image")]),
                          Schema([TensorSpec(np.dtype(np.float32), (-1, num_keypoints, h // 8, w // 8), "heatmaps")]))


@contextmanager
def _fluent_store(uri: str, experiment_id: str):
    """mlflow.pytorch.log_model works through MLflow's global state: point it at this store and experiment
    (the logged model belongs to the run's experiment), then put the environment back."""
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_ID=experiment_id)
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def log_checkpoint(client, run_id: str, spec: dict, uri: str) -> str:
    """Log `spec`'s checkpoint into run `run_id` as an MLflow PyTorch model and register it.

    Returns:
        The new version of spec["registered_name"] (also the run's tag `repro.model`: models:/<name>/<version>).

    Raises:
        CheckpointError: the checkpoint does not load into the spec's network. MLflow's own exceptions
            pass through (the caller turns them into a TrackingError or a pending marker).
    """
    import mlflow.pytorch
    module = load_module(spec)
    run = client.get_run(run_id)
    name = spec["registered_name"]
    with _fluent_store(uri, run.info.experiment_id):
        info = mlflow.pytorch.log_model(
            module, name=name, signature=signature(spec["input_size"], spec["model"]["num_keypoints"]),
            input_example=example_input(spec["input_size"]), registered_model_name=name,
            serialization_format="pt2", run_id=run_id, validate_serving_input=False,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"])
    version = str(info.registered_model_version)
    tags = {"repro.source": spec["source"], "repro.config": spec["config"], "repro.profile": spec["profile"],
            "repro.run_id": run_id, "repro.checkpoint": spec["checkpoint"],
            "repro.checkpoint.sha256": sha256_file(spec["checkpoint"]),
            "git.commit": run.data.tags.get("git.commit", "unknown")}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if spec["source"] == "trained":
        client.set_registered_model_alias(name, spec["profile"], version)
    client.set_tag(run_id, "repro.model", f"models:/{name}/{version}")
    return version
