"""The published evaluation protocol (spec §4): flip-test inference over person boxes, rescoring, OKS-NMS
and COCO keypoint AP with pycocotools.

    metrics = repro.evaluation.evaluate.evaluate_checkpoint(cfg, Path("models/256x192/best.pth"), Path("outputs/eval"))
    metrics = repro.evaluation.evaluate.validate(model, val_dataset, cfg.eval, device)     # from the trainer, any rank

Run it as a stage: `python -m stages.evaluate --config 256x192 --source trained --checkpoint ...`.
"""
import contextlib
import dataclasses
import io
import logging
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset

from repro import atomic, codec, config, distributed, machine
from repro.checkpoint import CheckpointError, check_config, load_checkpoint
from repro.config import CodecConfig, EvalConfig, RunConfig
from repro.data import loader as data_loader
from repro.data.coco import DatasetError, TopDownCocoDataset, check_layout
from repro.data.transforms import normalize_images
from repro.evaluation import subset
from repro.evaluation.results import protocol as record_protocol
from repro.evaluation.postprocess import Predictions, postprocess
from repro.model import build_cpm
from repro.keypoints import FLIP_INDICES

log = logging.getLogger(__name__)

# COCOeval.stats order for iouType="keypoints"; the one place these names are fixed (= published.yaml).
STAT_NAMES = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")


def _heatmaps(model, images: torch.Tensor, eval_cfg: EvalConfig) -> torch.Tensor:
    """Last-stage heatmaps (N, K, h, w) in fp32, averaged with the flipped-back flipped crop when flip_test."""
    if eval_cfg.flip_test:
        images = torch.cat([images, images.flip(-1)])   # one forward for both views (BN is in eval mode)
    if eval_cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    dtype = machine.autocast_dtype(eval_cfg.amp)
    with torch.autocast(images.device.type, dtype=dtype, enabled=dtype is not None):
        heatmaps = model(images)[-1].float()            # only the last stage is decoded (spec §1.3)
    if not eval_cfg.flip_test:
        return heatmaps
    plain, flipped = heatmaps.chunk(2)
    return (plain + codec.flip_back(flipped, FLIP_INDICES, eval_cfg.shift_heatmap)) / 2


def _as_numpy(x, dtype=np.float64) -> np.ndarray:
    return x.numpy().astype(dtype) if isinstance(x, torch.Tensor) else np.asarray(x, dtype)


@torch.inference_mode()
def predict(model, loader, device, eval_cfg: EvalConfig) -> Predictions:
    """Run the model over every box of `loader` and decode to image coordinates (spec §4.1-§4.2).

    Args:
        model: a CPM (or DDP-wrapped CPM) returning one heatmap tensor per stage.
        loader: batches of a test-mode TopDownCocoDataset: "img" (N, 3, H, W) normalised crops plus the
            box metadata "image_id", "center", "scale" (aspect-fixed, padded, pixels), "bbox" (xywh) and
            "bbox_score".
        device: where the model runs.
        eval_cfg: flip_test, shift_heatmap, amp ("none" | "bf16" | "fp16") and channels_last are used.

    Returns:
        One row per box. The geometry (input and heatmap sizes) is read from the tensors themselves.
    """
    was_training = model.training
    model.eval()
    eval_cfg = dataclasses.replace(eval_cfg, amp=machine.resolve_amp(eval_cfg.amp, torch.device(device).type))
    parts = []
    for step, batch in enumerate(loader):
        images = normalize_images(batch["img"].to(device, non_blocking=True))   # uint8 crops: normalised here
        heatmaps = _heatmaps(model, images, eval_cfg).cpu()      # CPU-GPU sync point, once per batch
        if not torch.isfinite(heatmaps).all():
            raise FloatingPointError(f"predict: the model produced non-finite heatmaps in batch {step}")
        geometry = CodecConfig(input_size=(images.shape[-1], images.shape[-2]),
                               heatmap_size=(heatmaps.shape[-1], heatmaps.shape[-2]), sigma=0.0)
        keypoints, scores = codec.decode(heatmaps, geometry)
        center, scale = _as_numpy(batch["center"]), _as_numpy(batch["scale"])
        parts.append(Predictions(
            image_ids=_as_numpy(batch["image_id"], np.int64),
            keypoints=codec.to_image(keypoints, center, scale, geometry.input_size),
            keypoint_scores=_as_numpy(scores),
            bboxes=_as_numpy(batch["bbox"]),
            bbox_scores=_as_numpy(batch["bbox_score"]),
            areas=scale.prod(axis=1)))
    model.train(was_training)
    return Predictions.concat(parts)


def load_ground_truth(ann_file) -> COCO:
    """pycocotools COCO of a keypoint annotation file, without its progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(ann_file))


def coco_keypoint_eval(coco_gt: COCO, results: list[dict]) -> dict:
    """COCO keypoint AP/AR of `results` against `coco_gt` with pycocotools (spec §4.4), silenced.

    Args:
        coco_gt: the ground truth (person_keypoints_*.json loaded with pycocotools).
        results: COCO keypoint results (see repro.evaluation.postprocess.to_coco_results); not modified.

    Returns:
        A flat dict: the 10 stats named in STAT_NAMES, num_images (images evaluated) and num_instances
        (results evaluated). With no results every stat is 0.0 and num_instances is 0 (pycocotools cannot
        load an empty result list).

    Raises:
        ValueError: a result names an image id that is not in the ground truth.
    """
    image_ids = coco_gt.getImgIds()
    counts = {"num_images": len(image_ids), "num_instances": len(results)}
    if not results:
        log.warning("no predictions to evaluate: every COCO stat is reported as 0.0")
        return {**{name: 0.0 for name in STAT_NAMES}, **counts}
    unknown = sorted({r["image_id"] for r in results} - set(image_ids))
    if unknown:
        raise ValueError(f"{len(unknown)} predicted image id(s) are not in the annotations "
                         f"(first: {unknown[:5]}); were the boxes made for another annotation file?")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes([dict(r) for r in results])   # loadRes adds fields to each dict
        coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")      # COCO sigmas, maxDets 20
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {**{name: float(v) for name, v in zip(STAT_NAMES, coco_eval.stats)}, **counts}


def score(preds: Predictions, coco_gt: COCO, eval_cfg: EvalConfig) -> tuple[list[dict], dict]:
    """Rescore, OKS-NMS and evaluate: the COCO results kept and the metrics (with num_boxes added)."""
    results = postprocess(preds, eval_cfg.keypoint_score_thr, eval_cfg.nms_thr)
    return results, {**coco_keypoint_eval(coco_gt, results), "num_boxes": len(preds)}


def predict_dataset(model, dataset, eval_cfg: EvalConfig, device) -> Predictions:
    """`predict` over every box of `dataset`, rows in its order. The loader is sized like the training one
    (repro.data.loader: eval.num_workers "auto" is the cores per local process), and each of its workers takes
    one contiguous run of the batches (repro.data.loader.WorkerRunBatches), so that an image is decoded once."""
    workers = data_loader.resolve_num_workers(eval_cfg.num_workers, data_loader.local_world_size())
    batches = data_loader.WorkerRunBatches(len(dataset), eval_cfg.batch_size, workers)
    loader = DataLoader(dataset, batch_sampler=batches,
                        **data_loader.loader_options(workers, eval_cfg.persistent_workers, eval_cfg.prefetch_factor,
                                                     torch.device(device).type))
    return predict(model, loader, device, eval_cfg).take(np.argsort(batches.order, kind="stable"))


def shard(n: int, world: int, rank: int) -> range:
    """Rank `rank`'s boxes: one contiguous run of n / world of them. Runs keep an image's boxes together
    (one decode, on one rank), and the ranks' runs concatenated rank by rank are the dataset order."""
    return range(rank * n // world, (rank + 1) * n // world)


def validate(model, dataset, eval_cfg: EvalConfig, device) -> dict:
    """Evaluate `model` on a test-mode dataset from every rank; every rank gets the same metrics.

    Under torch.distributed each rank predicts a contiguous shard (`shard`: disjoint, together all of them);
    rank 0 gathers the shards, post-processes and evaluates, and broadcasts the metrics dict. Without a process
    group the whole dataset runs here.

    Args:
        model: the model, DDP-wrapped or not (the wrapper is bypassed: inference needs no collectives).
        dataset: a test-mode TopDownCocoDataset (its `ann_file` is the ground truth).
        eval_cfg: the evaluation settings.
        device: this rank's device.

    Returns:
        The metrics dict of `coco_keypoint_eval` plus num_boxes.
    """
    if isinstance(model, DistributedDataParallel):
        model = model.module
    if not distributed.is_dist():
        preds = predict_dataset(model, dataset, eval_cfg, device)
        return score(preds, load_ground_truth(dataset.ann_file), eval_cfg)[1]
    rank, world = dist.get_rank(), dist.get_world_size()
    preds = predict_dataset(model, Subset(dataset, shard(len(dataset), world, rank)), eval_cfg, device)
    gathered = [None] * world
    dist.all_gather_object(gathered, preds)
    metrics = None
    if rank == 0:   # OKS-NMS breaks score ties by row order within an image: the rows are in dataset order
        metrics = score(Predictions.concat(gathered), load_ground_truth(dataset.ann_file), eval_cfg)[1]
    return distributed.broadcast_object(metrics)


def build_test_dataset(cfg: RunConfig, use_gt_bbox: bool) -> TopDownCocoDataset:
    """The val set of `cfg.data` over GT boxes or over the detection file (spec §2.4).

    Raises:
        DatasetError: the detection file holds no person boxes at or above `eval.det_score_thr` (an
            empty or wrong file; evaluating it would report AP 0 for a data problem); plus the dataset's
            own errors (missing file, an image id not in the annotations, NaN scores, ...), each naming
            the file and entry.
    """
    det_file = None if use_gt_bbox else cfg.data.det_file
    dataset = TopDownCocoDataset(cfg.data.val_ann, cfg.data.val_images, cfg.codec, cfg.augment,
                                 is_training=False, det_file=det_file, det_score_thr=cfg.eval.det_score_thr,
                                 for_device=True)
    if det_file is not None and len(dataset) == 0:
        raise DatasetError(f"{det_file}: no person boxes (category_id 1, score >= {cfg.eval.det_score_thr})")
    return dataset


def evaluate_checkpoint(cfg: RunConfig, checkpoint: Path, out_dir: Path, use_gt_bbox: bool | None = None,
                        device=None) -> dict:
    """Evaluate one checkpoint file (ours or a published mmpose file) with the published protocol.

    Writes out_dir/predictions.json (the COCO results after NMS) and out_dir/metrics.json (the metrics
    plus the settings used), each atomically.

    Args:
        cfg: the run config; model, codec, augment.bbox_padding, data and eval are used.
        checkpoint: a `.pth` in mmpose's layout ({"state_dict": {"backbone.<key>": ...}, "meta": ...}).
        out_dir: where the two files go (created).
        use_gt_bbox: GT boxes instead of the detection file; None takes cfg.eval.use_gt_bbox.
        device: None picks CUDA when available.

    Returns:
        The flat metrics dict: STAT_NAMES, num_images, num_instances (kept after NMS), num_boxes; with
        eval.val_images N also protocol "subset", subset and bootstrap (repro.evaluation.subset).

    Raises:
        CheckpointError: the file is missing, does not load into cfg.model (names the keys and shapes),
            holds NaN/Inf, or its stored training config differs from `cfg` (see checkpoint.check_config).
        DatasetError: a data file is missing (coco.check_layout); see `build_test_dataset`.
        ReproError: `out_dir` is not writable.
    """
    use_gt_bbox = cfg.eval.use_gt_bbox if use_gt_bbox is None else use_gt_bbox
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = machine.resolve_precision(cfg, device.type)
    check_layout(cfg.data, training=False, det_boxes=not use_gt_bbox)   # before any work: inputs, output
    atomic.check_writable(out_dir)
    if not Path(checkpoint).is_file():
        raise CheckpointError(f"{checkpoint}: no such checkpoint file")
    model = build_cpm(cfg.model)
    check_config(load_checkpoint(checkpoint, model)["meta"], cfg.to_dict(), checkpoint)
    dataset, coco_gt = build_test_dataset(cfg, use_gt_bbox), load_ground_truth(cfg.data.val_ann)
    if cfg.eval.val_images is not None:   # tier A-subset: a seeded subset of the images, before inference
        ids = subset.select_image_ids(coco_gt.getImgIds(), cfg.eval.val_images, cfg.eval.val_seed)
        dataset, coco_gt = subset.restrict(dataset, coco_gt, ids)
    preds = predict_dataset(model.to(device), dataset, cfg.eval, device)
    results, metrics = score(preds, coco_gt, cfg.eval)
    if cfg.eval.val_images is not None:
        metrics = {**metrics, **subset.subset_record(coco_gt, results, ids, cfg.eval.val_seed,
                                                     config.published()["tolerances"]["A"])}
    settings = {"checkpoint": str(checkpoint), "config": cfg.name, "profile": cfg.profile,
                "boxes": "gt" if use_gt_bbox else str(cfg.data.det_file),
                **record_protocol(cfg.eval), "channels_last": cfg.eval.channels_last,
                "det_score_thr": cfg.eval.det_score_thr, "device": str(device)}
    out_dir = Path(out_dir)
    atomic.write_json(out_dir / "predictions.json", results, indent=None)
    atomic.write_json(out_dir / "metrics.json", {**metrics, "settings": settings})
    log.info("%s on %s: AP %.4f (%d images, %d instances kept of %d boxes)", checkpoint, settings["boxes"],
             metrics["AP"], metrics["num_images"], metrics["num_instances"], metrics["num_boxes"])
    return metrics
