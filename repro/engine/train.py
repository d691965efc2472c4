"""Train one CPM config with the published recipe (spec §3): the same entry for 1 process, N or several nodes.

    python -m repro.engine.train --config 256x192 --out models/256x192                       # one process
    torchrun --standalone --nproc-per-node 8 -m repro.engine.train --config 256x192 --out models/256x192
    python -m repro.engine.train --config 256x192 --profile smoke --out /tmp/run --set train.epochs=2

A run resumes from last.pth in its work dir when it exists (model, optimizer, scheduler, epoch, RNG states,
best AP); a run killed between two epoch-end saves repeats that epoch exactly. Only rank 0 writes files and
MLflow. Outputs: out/{last.pth, best.pth, train_log.jsonl, val_history.csv, metrics.json, config.yaml}.

The work dir (--work-dir, default: out itself) holds those files while the run is under way; a finished run
moves them into out and removes it. The DVC stage trains in out/in_progress, which is none of the stage's
outs: DVC deletes a stage's outs before running it again, and a killed day-long run must still be there for
`dvc repro` to resume. Several processes or nodes read last.pth from the work dir, so it must be one shared
directory: every rank checks that it sees a token rank 0 wrote there before any work.
"""
import argparse
import dataclasses
import logging
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from repro import atomic, checkpoint, codec, config, distributed, machine, recipe, tracking
from repro.config import RunConfig, TrainConfig
from repro.data import loader as data_loader
from repro.data.transforms import normalize_images
from repro.engine import curve, launch, mmpose_log, precision, runlog
from repro.model import build_cpm
from repro.tracking import models

log = logging.getLogger("repro.train")   # name kept from before repro/engine/: log filters match it

PCK_THR = 0.05   # acc_pose: PCK at 0.05 of the heatmap size (mmpose pose_pck_accuracy)
# Items that may change between a checkpoint and its resumption (they do not change the numbers).
RESUME_FREE = {"train.epochs", "train.num_workers", "train.persistent_workers", "train.prefetch_factor",
               "eval.prefetch_factor", "train.log_interval", "train.skip_corrupt_images",
               "train.stop_below_published", "train.resume_adapt_world_size", "eval.num_workers", "eval.batch_size"}
WORK_DIR_TOKEN = ".rank0-token"   # written by rank 0 into the work dir, read back by every rank


# --------------------------------------------------------------------------------------------- recipe

def heatmap_loss(heatmaps: list, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Sum over stages of mean over (B, K, H, W) of w·(pred − gt)² (KeypointMSELoss, no 0.5; spec §3).

    Args:
        heatmaps: one (B, K, H, W) prediction per stage; all stages share target and weights.
        target: (B, K, H, W) Gaussian targets.
        weight: (B, K) target weights in {0, 1}.
    """
    w = weight[:, :, None, None]
    return sum(((h - target) ** 2 * w).mean() for h in heatmaps)


@torch.no_grad()
def pose_pck_accuracy(heatmap: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      thr: float = PCK_THR) -> torch.Tensor:
    """mmpose `pose_pck_accuracy`: argmax of pred vs argmax of target, PCK at thr·heatmap size.

    Distances are normalised by (H, W), in mmpose's order (x by H, y by W). Per keypoint: the fraction
    of masked samples within thr; the result is the mean over keypoints with any masked sample (0 if none).

    Args:
        heatmap, target: (B, K, H, W). mask: (B, K) bool, the joints that count (target weight > 0).
    """
    H, W = heatmap.shape[-2:]
    pred_xy, _ = codec.heatmap_maximum(heatmap.float())
    gt_xy, _ = codec.heatmap_maximum(target.float())
    norm = torch.tensor([H, W], dtype=torch.float32, device=heatmap.device)
    dist = torch.linalg.vector_norm((pred_xy - gt_xy) / norm, dim=-1)       # (B, K)
    counted = mask.sum(0)                                                  # (B, K) -> (K,)
    hits = ((dist < thr) & mask).sum(0)
    valid = counted > 0
    if not valid.any():
        return torch.zeros((), device=heatmap.device)
    return (hits[valid].float() / counted[valid].float()).mean()


def lr_factor(iteration: int, epoch: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier at a 0-based iteration of a 0-based epoch (spec §3).

    Linear warm-up (mmengine LinearLR, end=warmup_iters): r + (1 − r)·t/(warmup_iters − 1) for
    t < warmup_iters, then 1; times gamma for every milestone epoch <= epoch (MultiStepLR).
    """
    warm = 1.0
    if iteration < cfg.warmup_iters:
        r = cfg.warmup_ratio
        warm = r + (1 - r) * iteration / max(cfg.warmup_iters - 1, 1)
    return warm * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)


def build_lr_scheduler(optimizer, cfg: TrainConfig, iters_per_epoch: int):
    """A per-iteration LambdaLR (step once per iteration) whose factor is `lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, it // iters_per_epoch, cfg))


def build_optimizer(model: nn.Module, cfg: TrainConfig):
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=cfg.weight_decay)


# ----------------------------------------------------------------------------------------------- data

def build_datasets(cfg: RunConfig):
    """(train, val): GT-box training instances with augmentation; val on det boxes unless use_gt_bbox."""
    from repro.data.coco import TopDownCocoDataset
    d = cfg.data
    train_ds = TopDownCocoDataset(d.train_ann, d.train_images, cfg.codec, cfg.augment, is_training=True,
                                  seed=cfg.seed, skip_corrupt=cfg.train.skip_corrupt_images,
                                  reduced_decode=cfg.train.reduced_decode, for_device=True)
    val_ds = TopDownCocoDataset(d.val_ann, d.val_images, cfg.codec, cfg.augment, is_training=False,
                                det_file=None if cfg.eval.use_gt_bbox else d.det_file,
                                det_score_thr=cfg.eval.det_score_thr, for_device=True)
    return train_ds, val_ds


def build_train_loader(dataset, cfg: RunConfig, env: distributed.DistEnv) -> DataLoader:
    """Shuffled, sharded by DistributedSampler (seed + epoch), no drop_last (mmengine round_up); workers
    sized by repro.data.loader (train.num_workers "auto": this node's cores per local process)."""
    t = cfg.train
    sampler = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    workers = data_loader.resolve_num_workers(t.num_workers, data_loader.local_world_size())
    item_bytes = data_loader.sample_bytes(cfg.codec, training=True)
    data_loader.check_shm(workers, t.prefetch_factor, t.batch_per_gpu, item_bytes)
    # Persistent workers see dataset.set_epoch(epoch): the epoch lives in shared memory.
    return DataLoader(dataset, batch_size=t.batch_per_gpu, sampler=sampler, drop_last=False,
                      generator=torch.Generator(),
                      **data_loader.loader_options(workers, t.persistent_workers, t.prefetch_factor, env.device.type))


def set_epoch(loader: DataLoader, epoch: int, seed: int, rank: int) -> None:
    """Select epoch `epoch` in the sampler, the dataset's augmentation and the workers' seeds."""
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    loader.generator.manual_seed(int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]))


# ----------------------------------------------------------------------------------------------- loop

@dataclasses.dataclass
class Step:
    """How one optimisation step runs: autocast dtype (None = fp32), fp16 grad scaler, memory format."""

    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    channels_last: bool = False


def training_targets(batch: dict, codec_cfg: config.CodecConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, H, W) heatmaps and (B, K) weights, encoded on `device` from the crop keypoints of for_device items
    (build_datasets)."""
    return codec.encode_targets(batch["keypoints"].to(device, non_blocking=True),
                                batch["visible"].to(device, non_blocking=True), codec_cfg)


def train_one_epoch(model, optimizer, lr_scheduler, loader, device, epoch: int, step: Step,
                    run: runlog.RunLog, log_interval: int, epochs: int, codec_cfg: config.CodecConfig) -> dict:
    """One pass over `loader`; returns {"loss", "acc_pose", "time", "samples"} of this epoch.

    Raises:
        FloatingPointError: the loss (averaged over ranks, so every rank stops together) is not finite.
    """
    model.train()
    n, window, totals = len(loader), [], {"loss": 0.0, "acc": 0.0}
    acc_sum = torch.zeros((), device=device)
    start = end = time.perf_counter()
    bar = run.progress(loader, epoch, epochs)
    for i, batch in enumerate(bar):
        images = normalize_images(batch["img"].to(device, non_blocking=True))   # uint8 from the workers
        target, weight = training_targets(batch, codec_cfg, device)
        if step.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        data_time = time.perf_counter() - end
        with torch.autocast(device.type, dtype=step.amp_dtype, enabled=step.amp_dtype is not None):
            heatmaps = model(images)
        heatmaps = [h.float() for h in heatmaps]
        loss = heatmap_loss(heatmaps, target, weight)
        loss_value = distributed.reduce_mean(loss).item()   # CPU-GPU sync point; the same on every rank
        iteration = lr_scheduler.last_epoch                  # 0-based global iteration
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"non-finite loss {loss_value} at epoch {epoch + 1}, iteration {i + 1} "
                                     f"(global {iteration + 1}); stopping")
        acc_sum += pose_pck_accuracy(heatmaps[-1], target, weight > 0)
        optimizer.zero_grad(set_to_none=True)
        if step.scaler is not None:
            step.scaler.scale(loss).backward()
            step.scaler.step(optimizer)
            step.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        lr_scheduler.step()
        run.iteration(iteration + 1, loss_value, lr)
        window.append((loss_value, time.perf_counter() - end, data_time))
        end = time.perf_counter()
        if (i + 1) % log_interval == 0 or i + 1 == n:
            acc = distributed.reduce_mean(acc_sum).item() / len(window)
            totals["loss"] += sum(w[0] for w in window)
            totals["acc"] += acc * len(window)
            record = _interval_record(window, acc, lr, epoch, i, n, iteration, device)
            run.train_interval(record, eta_s=record["time"] * ((epochs - epoch) * n - i - 1), bar=bar)
            window, acc_sum = [], torch.zeros((), device=device)
    return {"loss": totals["loss"] / n, "acc_pose": totals["acc"] / n, "time": time.perf_counter() - start,
            "samples": len(loader.sampler) * loader.sampler.num_replicas}


def _interval_record(window, acc, lr, epoch, i, n, iteration, device) -> dict:
    k = len(window)
    record = {"epoch": epoch + 1, "iter": i + 1, "iters": n, "step": iteration + 1, "lr": lr,
              "loss": sum(w[0] for w in window) / k, "acc_pose": acc,
              "time": sum(w[1] for w in window) / k, "data_time": sum(w[2] for w in window) / k}
    record["loss_kpt"] = record["loss"]
    if device.type == "cuda":
        record["memory"] = torch.cuda.max_memory_allocated(device) // 2**20   # MB, like mmengine
    return record


# ------------------------------------------------------------------------------------------------ run

def _seed_and_mode(cfg: RunConfig) -> None:
    """Seed python/numpy/torch with cfg.seed (same model init on every rank) and set deterministic mode."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(cfg.train.deterministic)
    torch.backends.cudnn.deterministic = cfg.train.deterministic


def build_model(cfg: RunConfig, env: distributed.DistEnv) -> nn.Module:
    model = build_cpm(cfg.model)
    if cfg.train.sync_bn and env.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)   # CUDA only
    model = model.to(env.device)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _step(cfg: TrainConfig, device: torch.device) -> Step:
    dtype = machine.autocast_dtype(cfg.amp)
    scaler = torch.amp.GradScaler(device.type) if cfg.amp == "fp16" and device.type == "cuda" else None
    return Step(amp_dtype=dtype, scaler=scaler, channels_last=cfg.channels_last)


def _resume_free(key: str) -> bool:
    """A flattened config key in RESUME_FREE or under one (train.stop_below_published.margin)."""
    return any(key == free or key.startswith(free + ".") for free in RESUME_FREE)


def _resume_meta(path: Path, cfg: RunConfig, world_size: int) -> dict:
    """The `meta` of the checkpoint to resume from, after checking it was made with this configuration and
    this number of processes (or that the user opted in to adapting the schedule to another one)."""
    meta = checkpoint.read_checkpoint(path)["meta"]
    saved, now = tracking.flatten(meta.get("config", {})), tracking.flatten(cfg.to_dict())
    changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k) and not _resume_free(k))
    if changed:
        items = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise config.ConfigError(f"{path} was written with another configuration ({items}); "
                                 f"delete it or train with --no-resume into a fresh --out")
    before = meta.get("world_size", world_size)
    if before != world_size and not cfg.train.resume_adapt_world_size:
        batch = cfg.train.batch_per_gpu   # equal on both sides: checked with the configuration above
        raise config.ConfigError(
            f"{path} was written by {before} processes x {batch} per process, this run has {world_size} x "
            f"{batch}: resuming would change the iterations per epoch and so the schedule. Resume on {before} "
            f"processes, or set train.resume_adapt_world_size: true to re-derive the schedule (the run is "
            f"then recorded as open)")
    return meta


def _adapt_world_size(meta: dict, world_size: int) -> dict:
    """meta["train_state"] with this resumption's change of world size recorded (train_state["world_sizes"]:
    one entry per change, carried by every later checkpoint and listed in the recipe diff)."""
    state = dict(meta["train_state"])
    before = meta.get("world_size", world_size)
    if before != world_size:
        change = f"{before} -> {world_size} after epoch {state['epoch'] + 1}"
        state["world_sizes"] = [*state.get("world_sizes", []), change]
        log.warning("resuming on %d processes instead of %d (train.resume_adapt_world_size): the iteration "
                    "count is re-derived from the epoch; the run is open", world_size, before)
    return state


def check_shared_work_dir(work_dir: Path, env: distributed.DistEnv) -> None:
    """Every rank must see the work dir rank 0 writes (several nodes: a shared file system), since every rank
    resumes from its last.pth. Rank 0 writes a fresh token; after a barrier each rank reads it back.

    Raises:
        config.ConfigError: on every rank, when some rank cannot read the token (naming the ranks).
    """
    if env.world_size == 1:
        return
    token = work_dir / WORK_DIR_TOKEN
    expected = f"{os.getpid()}-{time.time_ns()}" if env.is_main else None
    if env.is_main:
        atomic.write_text(token, expected)
    expected = distributed.broadcast_object(expected)
    distributed.barrier()
    try:
        seen = token.read_text() == expected
    except OSError:
        seen = False
    seen_by = distributed.all_gather_object((env.rank, seen))
    if env.is_main:   # every rank has read it (all_gather waits for all)
        token.unlink(missing_ok=True)
    missing = [rank for rank, ok in seen_by if not ok]
    if missing:
        raise config.ConfigError(
            f"{work_dir}: rank(s) {missing} cannot see the files rank 0 writes there; with several nodes the "
            f"out dir (and its work dir) must be on a shared file system, since every rank resumes from its last.pth")


def _start_tracking(cfg, out_dir, env, diff, run_id, track: bool):
    """MLflow run on rank 0; a store failure there stops every rank, before any data is read."""
    tracker, error = tracking.NullTracker(), None
    if env.is_main and track:
        try:
            tracker = tracking.start(cfg, out_dir, env.world_size, diff, resume_run_id=run_id)
        except tracking.TrackingError as e:
            error = str(e)
    error = distributed.broadcast_object(error)
    if error:
        raise tracking.TrackingError(error)
    return tracker


def _stop_reference(cfg: RunConfig, env: distributed.DistEnv) -> list | None:
    """The reference curve of train.stop_below_published ([(epoch, AP)]; None when the stop is off).

    Read on rank 0 and sent to every rank, so that all ranks take the same decision from the same
    validation metrics and stop together; a missing or bad log stops every rank before any data is read.
    """
    if cfg.train.stop_below_published is None:
        return None
    points, error = None, None
    if env.is_main:
        try:
            points = curve.reference(config.published(), cfg.profile, cfg.name).points
        except mmpose_log.LogFormatError as e:
            error = f"train.stop_below_published: {e}"
    points, error = distributed.broadcast_object((points, error))
    if error:
        raise mmpose_log.LogFormatError(error)
    return points


def _check_stop(cfg: TrainConfig, reference, epoch: int, ap: float, state: dict, tracker) -> None:
    """After the validation at 0-based `epoch`: put the verdict in state["stopped_early"] if the run must stop."""
    if reference is None:
        return
    stop = cfg.stop_below_published
    verdict = curve.stop_verdict(epoch + 1, ap, reference, stop.margin, stop.from_epoch)
    if verdict is None:
        return
    state["stopped_early"] = verdict
    log.warning("stopping early (train.stop_below_published): %s; last.pth and best.pth are kept",
                verdict["reason"])
    tracker.set_tags({"repro.stopped_early": "true", "repro.stopped_early.epoch": verdict["epoch"],
                      "repro.stopped_early.reason": verdict["reason"]})


def _gather_rng() -> dict:
    """Every rank's RNG states, so a resumed run restores each rank's own."""
    return {"ranks": distributed.all_gather_object(checkpoint.capture_rng_state())}


def _restore_rng(rng: dict, rank: int) -> None:
    ranks = rng["ranks"]
    checkpoint.restore_rng_state(ranks[rank] if rank < len(ranks) else ranks[0])


def train(cfg: RunConfig, out_dir, resume: bool = True, track: bool | None = None, work_dir=None) -> dict:
    """Train `cfg` into `out_dir` on this process group (torchrun env) or alone; returns metrics.json's dict.

    Args:
        cfg: the resolved run configuration.
        out_dir: where checkpoints, logs and metrics go (rank 0 writes).
        resume: continue from work_dir/last.pth when it exists.
        track: record the run in MLflow (default: on unless $REPRO_TRACKING is "0").
        work_dir: where the files are written while the run is under way (default: out_dir); a finished run
            moves them into out_dir and removes it. Every rank reads it: it must be shared.

    Raises:
        tracking.TrackingError: the MLflow store is unreachable (before training starts).
        config.ConfigError: last.pth was written with a different configuration or world size, or a rank
            cannot see the work dir.
        FloatingPointError: the loss became non-finite.
    """
    track = tracking.enabled() if track is None else track
    env = distributed.setup()
    try:
        return _run(cfg, Path(out_dir), Path(work_dir or out_dir), resume, track, env)
    finally:
        distributed.cleanup(env)


def _run(cfg: RunConfig, out_dir: Path, work: Path, resume: bool, track: bool, env: distributed.DistEnv) -> dict:
    from repro.evaluation import evaluate   # pycocotools etc.: imported when training, not on import
    cfg = machine.resolve_precision(cfg, env.device.type)   # `auto` -> what runs here, recorded everywhere
    from repro.data.coco import check_layout
    if env.is_main:   # before any work: the data it reads and the directories it writes
        check_layout(cfg.data, training=True, det_boxes=not cfg.eval.use_gt_bbox)
        atomic.check_writable(out_dir)
        atomic.check_writable(work)
    check_shared_work_dir(work, env)
    _seed_and_mode(cfg)
    arithmetic = precision.settings(cfg.train, env.device.type, precision.tf32_capable(env.device.type))
    precision.apply(arithmetic)   # TF32 and cudnn.benchmark set explicitly, never PyTorch's defaults
    last = work / "last.pth"
    meta = _resume_meta(last, cfg, env.world_size) if env.is_main and resume and last.is_file() else None
    meta = distributed.broadcast_object(meta)
    state = _adapt_world_size(meta, env.world_size) if meta else {
        "epoch": -1, "best": None, "final": None, "train_time_s": 0.0, "wall_time_s": 0.0, "samples": 0}
    diff = recipe.recipe_diff(cfg, env.world_size) + [
        {"name": "resumed_world_size", "published": None, "used": change} for change in state.get("world_sizes", [])]
    reference = _stop_reference(cfg, env)
    tracker = _start_tracking(cfg, out_dir, env, diff, (meta or {}).get("mlflow_run_id"), track)
    run = runlog.RunLog(work, tracker, evaluate.STAT_NAMES, env.is_main, resume_epoch=state["epoch"] + 1)
    log.info("training %s (%s profile) seed %d on %d process(es), %s, %s; recipe %s%s", cfg.name, cfg.profile,
             cfg.seed, env.world_size, env.device, arithmetic.precision, recipe.recipe_status(diff),
             f" ({len(diff)} items differ)" if diff else "")
    try:
        run.write_config(cfg.to_dict())
        summary = _fit(cfg, work, env, state, meta is not None, run, tracker, diff, evaluate, reference)
        if env.is_main and work != out_dir:
            _move_outputs(work, out_dir)
        tracker.log_artifact(out_dir / "best.pth", "checkpoints")
        if (out_dir / "best.pth").is_file():   # an MLflow model, registered as cpm-<config> (tracking/models.py)
            tracker.log_model(models.model_spec(cfg, out_dir / "best.pth", "trained"))
        tracker.log_metrics(tracking.summary_metrics(summary, "best"), step=0)   # the run's result: best/AP...
        tracking.gather_logs(tracker, out_dir)
        tracker.end("FINISHED")
        return summary
    except BaseException as e:
        tracking.gather_logs(tracker, work if (work / runlog.TRAIN_LOG).exists() else out_dir)
        tracker.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise


def _move_outputs(work: Path, out_dir: Path) -> None:
    """A finished run's files from its work dir into out_dir (renames, so each lands whole), then the work dir
    goes: a later run of the stage (changed code or params) must start afresh, not resume a finished run."""
    for path in sorted(work.iterdir()):
        if path.is_file():
            os.replace(path, out_dir / path.name)
    shutil.rmtree(work)


def _fit(cfg, out_dir, env, state, resuming, run, tracker, diff, evaluate, reference=None) -> dict:
    train_ds, val_ds = build_datasets(cfg)
    loader = build_train_loader(train_ds, cfg, env)
    model = build_model(cfg, env)
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_lr_scheduler(optimizer, cfg.train, len(loader))
    step = _step(cfg.train, env.device)
    if resuming:
        ckpt = checkpoint.load_checkpoint(out_dir / "last.pth", model, optimizer, scheduler, step.scaler)
        _restore_rng(ckpt["rng"], env.rank)
        if state.get("world_sizes"):   # adapted (train.resume_adapt_world_size): the epoch decides the schedule
            scheduler.last_epoch = (state["epoch"] + 1) * len(loader)
            for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
                group["lr"] = base * lr_factor(scheduler.last_epoch, state["epoch"] + 1, cfg.train)
        log.info("resumed from %s after epoch %d (iteration %d)", out_dir / "last.pth", state["epoch"] + 1,
                 scheduler.last_epoch)
    elif cfg.train.init_from:   # weights only: optimizer, schedule and RNG start fresh
        checkpoint.load_checkpoint(cfg.train.init_from, model)
        log.info("initialised from %s", cfg.train.init_from)
    ddp = model if env.world_size == 1 else DistributedDataParallel(
        model, device_ids=[env.local_rank] if env.device.type == "cuda" else None, broadcast_buffers=False)
    if cfg.train.torch_compile:   # the forward only: checkpoints and validation use the module itself
        ddp = torch.compile(ddp)
    meta = {"config": cfg.to_dict(), "mlflow_run_id": tracker.run_id, "world_size": env.world_size}
    # Resumed after an early stop: the verdict stands while the stop is on; turned off, training goes on.
    state["stopped_early"] = state.get("stopped_early") if reference is not None else None
    last_epoch = state["epoch"] + 1 if state["stopped_early"] else cfg.train.epochs
    for epoch in range(state["epoch"] + 1, last_epoch):
        t0 = time.perf_counter()
        set_epoch(loader, epoch, cfg.seed, env.rank)
        stats = train_one_epoch(ddp, optimizer, scheduler, loader, env.device, epoch, step, run,
                                cfg.train.log_interval, cfg.train.epochs, cfg.codec)
        distributed.average_buffers(model)   # mmengine SyncBuffersHook: per-GPU BN stats -> their mean
        run.epoch_end(epoch, {"loss": stats["loss"], "acc_pose": stats["acc_pose"], "time": stats["time"],
                              "lr": optimizer.param_groups[0]["lr"]})
        if cfg.train.validates_after(epoch):
            metrics = evaluate.validate(model, val_ds, cfg.eval, env.device)
            run.validation(epoch, scheduler.last_epoch, metrics)
            # The epoch's mean training loss goes with its checkpoint: tier S bands it (a loss bug that the
            # COCO stats of a short fine-tune cannot see, like ignored target weights, moves it directly).
            state["final"] = {"epoch": epoch + 1, **metrics, "train_loss": stats["loss"]}
            if state["best"] is None or metrics["AP"] > state["best"]["AP"]:
                state["best"] = state["final"]
                if env.is_main:
                    checkpoint.save_checkpoint(out_dir / "best.pth", model, {**meta, "best": state["best"]},
                                               epoch=epoch, iter=scheduler.last_epoch)
            _check_stop(cfg.train, reference, epoch, metrics["AP"], state, tracker)
        elif cfg.train.val_interval is None and epoch + 1 == cfg.train.epochs:
            # Not validated (the pipeline's evaluate stage measures these weights): the last epoch is the best.
            state["final"] = state["best"] = {"epoch": epoch + 1, "train_loss": stats["loss"]}
            if env.is_main:
                checkpoint.save_checkpoint(out_dir / "best.pth", model, {**meta, "best": state["best"]},
                                           epoch=epoch, iter=scheduler.last_epoch)
        state.update(epoch=epoch, train_time_s=state["train_time_s"] + stats["time"],
                     samples=state["samples"] + stats["samples"],
                     wall_time_s=state["wall_time_s"] + time.perf_counter() - t0)
        rng = _gather_rng()
        if env.is_main:   # atomic: a kill leaves the previous epoch's file
            checkpoint.save_checkpoint(out_dir / "last.pth", model, {**meta, "train_state": state},
                                       optimizer=optimizer, lr_scheduler=scheduler, scaler=step.scaler,
                                       epoch=epoch, iter=scheduler.last_epoch, rng=rng)
        if state["stopped_early"]:   # the same decision on every rank (same metrics, same reference)
            break
    summary = _summary(cfg, env, state, scheduler.last_epoch, diff)
    run.write_metrics(summary)
    return summary


def _precision(cfg, device_type: str) -> dict:
    """What training and validation computed in: "tf32" where train.allow_tf32 ran on a TF32 GPU (the backend
    flags are process-wide, so validation too), else the amp dtype or "fp32"."""
    tf32 = precision.tf32_capable(device_type)
    return {part: precision.settings(dataclasses.replace(cfg.train, amp=amp), device_type, tf32).precision
            for part, amp in (("train", cfg.train.amp), ("eval", cfg.eval.amp))}


def _summary(cfg, env, state, iterations: int, diff: list) -> dict:
    return {
        "config": cfg.name, "profile": cfg.profile, "seed": cfg.seed,
        "best": state["best"], "final": state["final"],
        "stopped_early": state.get("stopped_early"),   # None, or the verdict of train.stop_below_published
        "epochs": state["epoch"] + 1, "iterations": iterations,
        "wall_time_s": round(state["wall_time_s"], 3), "train_time_s": round(state["train_time_s"], 3),
        "images_per_s": round(state["samples"] / state["train_time_s"], 3) if state["train_time_s"] else 0.0,
        "world_size": env.world_size,
        "loader_workers": {part: data_loader.resolve_num_workers(c.num_workers, data_loader.local_world_size())
                           for part, c in (("train", cfg.train), ("eval", cfg.eval))},   # "auto" resolved
        "precision": _precision(cfg, env.device.type),
        "recipe": recipe.recipe_status(diff),
        "recipe_diff": {d["name"]: {"published": d["published"], "used": d["used"]} for d in diff},
    }


# ------------------------------------------------------------------------------------------------ CLI

def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        main = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"
        logging.basicConfig(level=logging.INFO if main else logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv=None) -> None:
    """`python -m repro.engine.train` / `repro train`: parse args, resolve the config, train (under errors.run_main)."""
    p = argparse.ArgumentParser(prog="repro train", description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--config", required=True, help="input size, a key of params.yaml configs (256x192)")
    p.add_argument("--profile", default=None, help="smoke | full (default: params.yaml profile)")
    p.add_argument("--out", required=True, help="output directory (resumes from its last.pth)")
    p.add_argument("--work-dir", help="where the run's files stay until it has finished (default: OUT; then "
                                      "it resumes from WORK_DIR/last.pth); shared by every rank")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a resolved config item, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument("--no-resume", action="store_true", help="start over even if last.pth exists in the work dir")
    p.add_argument("--no-track", action="store_true", help="do not record the run in MLflow")
    args = p.parse_args(argv)
    _setup_logging()
    try:
        cfg = config.with_overrides(config.load(args.params, args.config, args.profile), args.set)
        train(cfg, args.out, resume=not args.no_resume, track=False if args.no_track else None,
              work_dir=args.work_dir)
    except (tracking.TrackingError, FloatingPointError, mmpose_log.LogFormatError) as e:   # exit 1, one line
        raise SystemExit(f"repro train: error: {e}") from None


def run_train(argv: list) -> None:
    """The train step (`python -m stages.train`, `repro train`): `main(argv)` in this process for one local
    worker, under torchrun for several (repro.engine.launch). The input is main's command line because
    torchrun's workers parse it again."""
    return launch.run("repro.engine.train", argv, main)


if __name__ == "__main__":
    from repro import errors
    sys.exit(errors.run_main(main, prog="repro train"))
