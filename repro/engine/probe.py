"""A short timed probe of the real model and data pipeline on this machine, for `repro plan`.

    timings = repro.engine.probe.probe(cfg)        # seconds per training step, per eval image, per data item

The probe builds the configured network (`build_cpm(cfg.model)`) and times, after one warm-up each:
a few optimisation steps at the configured batch per device, precision (train.amp) and memory format
(forward, the published loss, backward, Adam step), and a few inference batches at eval.batch_size with
eval.amp and the flip test (both views in one forward, as `repro.evaluation.evaluate` runs them). When the data set is
on disk it also times loading a few training and validation items (decode, augmentation, targets), which
the loop pays in series when num_workers is 0. Random tensors stand in for images in the model timings:
the cost of a dense CNN does not depend on pixel values.
"""
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from repro import machine
from repro.config import RunConfig
from repro.engine import train
from repro.evaluation import evaluate
from repro.model import build_cpm

# Timed training steps after the warm-up: their median is the estimate, so a step slowed by another process
# on a shared machine does not set it (3 steps left the tiny-run ratio between 0.59 and 0.79 at load 9).
PROBE_STEPS = 5


def amp_dtype(mode: str, device: torch.device):
    """The autocast dtype of a train.amp / eval.amp value (None: fp32); `auto` as repro.machine resolves it."""
    return machine.autocast_dtype(machine.resolve_amp(mode, device.type))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, repeats: int, device: torch.device) -> float:
    """Median seconds of `fn()` over `repeats` calls after one untimed warm-up call (the median, so that one
    call slowed by another process on a shared machine does not set the estimate)."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_seconds(cfg: RunConfig, device: torch.device, steps: int = PROBE_STEPS,
                       batch: int | None = None) -> float:
    """Median seconds of one optimisation step of `cfg`'s model at `batch` (default: train.batch_per_gpu)."""
    batch = batch or cfg.train.batch_per_gpu
    (w, h), (hw, hh) = cfg.codec.input_size, cfg.codec.heatmap_size
    model = build_cpm(cfg.model).to(device).train()
    fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    images = torch.randn(batch, cfg.model.in_channels, h, w, device=device).contiguous(memory_format=fmt)
    target = torch.rand(batch, cfg.model.num_keypoints, hh, hw, device=device)
    weight = torch.ones(batch, cfg.model.num_keypoints, device=device)
    optimizer = train.build_optimizer(model, cfg.train)
    dtype = amp_dtype(cfg.train.amp, device)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            heatmaps = model(images)
        loss = train.heatmap_loss([x.float() for x in heatmaps], target, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()   # the loop reads the loss every step (a sync point)
    return _timed(step, steps, device)


def eval_image_seconds(cfg: RunConfig, device: torch.device, batches: int = PROBE_STEPS) -> float:
    """Seconds of inference per box (flip test included when configured) at eval.batch_size: the median of
    `batches` timed batches after a warm-up one, as many as the training probe's steps. (8 boxes at batch 4 made
    the full network's probe 12 boxes, 74 s on a 2-core AVX2 EPYC at 1.9 s a box at 256x192, 4.4 s at 384x288.)"""
    (w, h) = cfg.codec.input_size
    model = build_cpm(cfg.model).to(device).eval()
    if cfg.eval.channels_last:
        model = model.to(memory_format=torch.channels_last)
    images = torch.randn(cfg.eval.batch_size, cfg.model.in_channels, h, w, device=device)
    eval_cfg = dataclasses.replace(cfg.eval, amp=machine.resolve_amp(cfg.eval.amp, device.type))

    @torch.inference_mode()
    def forward():
        evaluate._heatmaps(model, images, eval_cfg).sum().item()
    return _timed(forward, batches, device) / cfg.eval.batch_size


def item_seconds(dataset, items: int = 8) -> float | None:
    """Seconds to load one item of `dataset` (mean over `items` spread over it), None when it is empty."""
    n = len(dataset)
    if n == 0:
        return None
    indices = [round(i * (n - 1) / max(1, items - 1)) for i in range(min(items, n))]
    dataset[indices[0]]   # warm-up: first file access, lazy imports
    start = time.perf_counter()
    for i in indices:
        dataset[i]
    return (time.perf_counter() - start) / len(indices)


def data_seconds(cfg: RunConfig) -> dict:
    """{"train_item_s", "val_item_s", "train_instances", "val_boxes"} when cfg.data is on disk, else {}."""
    if not (cfg.data.train_ann.is_file() and cfg.data.val_ann.is_file()):
        return {}
    train_ds, val_ds = train.build_datasets(cfg)
    return {"train_item_s": item_seconds(train_ds), "val_item_s": item_seconds(val_ds),
            "train_instances": len(train_ds), "val_boxes": len(val_ds)}


def synthetic_image_seconds(cfg: RunConfig, images: int = 6) -> float:
    """Seconds to generate one synthetic image with its annotations (a tiny data set in a scratch dir)."""
    from repro.data.synthetic import generate
    small = dataclasses.replace(cfg.synthetic, train_images=images - images // 3, val_images=images // 3)
    with tempfile.TemporaryDirectory(prefix="repro-plan-") as scratch:
        start = time.perf_counter()
        generate(small, Path(scratch) / "data")
        return (time.perf_counter() - start) / images


def probe(cfg: RunConfig, device=None, steps: int = PROBE_STEPS, batch: int | None = None) -> dict:
    """Time `cfg` on `device` (default: CUDA if visible, else CPU).

    Args:
        cfg: the resolved run configuration (model, codec, train, eval, data).
        device: where to time; the training device of this machine by default.
        steps: timed optimisation steps, and timed inference batches (each after one warm-up).
        batch: per-device training batch (default: the configured train.batch_per_gpu).

    Returns:
        {"device", "train_step_s", "batch", "eval_image_s", "train_item_s", "val_item_s", "train_instances",
        "val_boxes", "probe_s"}; the data entries only when the data set is on disk.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    start = time.perf_counter()
    previous = torch.are_deterministic_algorithms_enabled()
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # as repro.engine.train sets it
    torch.use_deterministic_algorithms(cfg.train.deterministic)   # as the run will (slower kernels on CUDA)
    try:
        step_s = train_step_seconds(cfg, device, steps, batch)
        image_s = eval_image_seconds(cfg, device, steps)
    finally:
        torch.use_deterministic_algorithms(previous)
    out = {"device": str(device), "train_step_s": step_s, "batch": batch or cfg.train.batch_per_gpu,
           "eval_image_s": image_s, **data_seconds(cfg)}
    out["probe_s"] = time.perf_counter() - start
    return out


def hardware_name(device: str) -> str:
    """The CPU or GPU model the probe ran on, with the thread count for a CPU."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{machine.cpu_model()}, {torch.get_num_threads()} threads"
