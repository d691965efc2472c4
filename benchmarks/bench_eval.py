"""Cost of the evaluation protocol: post-processing and COCO AP at the real val2017 size, and inference speed.

    .venv/bin/python benchmarks/bench_eval.py                      # real size; full model: minutes on a CPU
    .venv/bin/python benchmarks/bench_eval.py --images 200 --ref-images 50 --models narrow \
        --out reports/benchmarks/tmp                               # a quick check that it runs

Part 1, post-processing (spec §4.3-§4.4) on a synthetic load shaped like the published run: --images
(5,000) images, --people (6,352) GT people, --boxes (104,125) detected boxes, generated with numpy (boxes
cluster on the people, with near-duplicates, plus false positives). Timed separately: rescoring,
OKS-NMS, building the result dicts, and pycocotools (loadRes + evaluate + accumulate + summarize).
The vectorised OKS-NMS is compared with a straightforward reference (per image: keep the best, compute
OKS with each remaining box one pair at a time, drop those above the threshold) on the first
--ref-images images, measured in the same run; both must keep the same boxes.

Part 2, inference (repro.evaluation.evaluate.predict: forward, flip-back, decode, to image coordinates) on random
256x192 crops, images/s with and without flip test, for the smoke profile's narrow CPM and the published
network. Writes <out>/eval_<device>.json and .md.
"""
import argparse
import contextlib
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmarks.bench_model import machine_info  # noqa: E402
from repro import atomic, config  # noqa: E402
from repro.evaluation.evaluate import coco_keypoint_eval, predict  # noqa: E402
from repro.evaluation.postprocess import Predictions, oks_nms, rescore, to_coco_results  # noqa: E402
from repro.model import CPMConfig, build_cpm  # noqa: E402
from repro.keypoints import NUM_KEYPOINTS, OKS_SIGMAS  # noqa: E402

K = NUM_KEYPOINTS
REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5000, help="val2017: 5,000")
    p.add_argument("--people", type=int, default=6352, help="val2017 GT people with keypoints: 6,352")
    p.add_argument("--boxes", type=int, default=104125, help="COCO_val2017_detections_AP_H_56_person: 104,125")
    p.add_argument("--ref-images", type=int, default=500, help="images the per-pair reference NMS runs on")
    p.add_argument("--models", default="narrow,full", help="comma list of narrow (smoke profile), full")
    p.add_argument("--batch", type=int, default=8, help="inference batch (the full model uses min(batch, 2))")
    p.add_argument("--iters", type=int, default=2, help="timed inference batches per setting (1 untimed first)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports/benchmarks")
    return p.parse_args(argv)


def synthetic_people(rng, n: int, width: float, height: float):
    """n people: xywh boxes inside the image and (n, K, 3) keypoints (x, y, v) inside their boxes."""
    w = rng.uniform(30, 300, n)
    h = w * rng.uniform(1.2, 3.0, n)
    h = np.minimum(h, height - 2)
    x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
    rel = rng.uniform(0.1, 0.9, (n, K, 2))
    xy = np.stack([x, y], -1)[:, None] + rel * np.stack([w, h], -1)[:, None]
    v = np.where(rng.random((n, K)) < 0.8, 2, 0)
    v[:, 0] = 2                                          # every person has at least one labelled keypoint
    kps = np.concatenate([np.where(v[..., None] > 0, xy, 0), v[..., None]], -1)
    return np.stack([x, y, w, h], -1), kps


def synthetic_load(args, rng):
    """COCO ground truth (as a dict) and per-box predictions shaped like the published val run."""
    width, height = 640.0, 480.0
    gt_image = np.sort(rng.choice(args.images, args.people, p=rng.dirichlet(np.full(args.images, 0.3))))
    boxes, kps = synthetic_people(rng, args.people, width, height)
    images = [{"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": 640, "height": 480}
              for i in range(args.images)]
    anns = [{"id": j + 1, "image_id": int(gt_image[j]) + 1, "category_id": 1, "iscrowd": 0,
             "bbox": boxes[j].tolist(), "area": float(boxes[j, 2] * boxes[j, 3] * 0.6),
             "keypoints": kps[j].reshape(-1).tolist(), "num_keypoints": int((kps[j, :, 2] > 0).sum())}
            for j in range(args.people)]
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(K)], "skeleton": []}]}

    # Each box copies a GT person of its image (70% where there is one) or a fresh false-positive person,
    # with keypoint noise from tight (near-duplicates that NMS removes) to loose.
    people_per_image = np.bincount(gt_image, minlength=args.images)
    box_image = np.sort(rng.choice(args.images, args.boxes, p=(1 + 3 * people_per_image) / (
        args.images + 3 * args.people)))
    first = np.concatenate([[0], np.cumsum(people_per_image)[:-1]])
    has_gt = (people_per_image[box_image] > 0) & (rng.random(args.boxes) < 0.7)
    pick = first[box_image] + (rng.random(args.boxes) * np.maximum(people_per_image[box_image], 1)).astype(int)
    fp_boxes, fp_kps = synthetic_people(rng, args.boxes, width, height)
    src_boxes = np.where(has_gt[:, None], boxes[np.minimum(pick, args.people - 1)], fp_boxes)
    src_xy = np.where(has_gt[:, None, None], kps[np.minimum(pick, args.people - 1), :, :2], fp_kps[..., :2])
    src_xy = np.where(src_xy > 0, src_xy, src_boxes[:, None, :2] + src_boxes[:, None, 2:] / 2)
    noise = rng.choice([0.3, 3.0, 15.0], args.boxes, p=[0.2, 0.5, 0.3])[:, None, None]
    scale_w = np.maximum(src_boxes[:, 2], src_boxes[:, 3] * 0.75) * 1.25
    preds = Predictions(image_ids=box_image.astype(np.int64) + 1,
                        keypoints=src_xy + rng.normal(0, 1, (args.boxes, K, 2)) * noise,
                        keypoint_scores=rng.beta(2, 2, (args.boxes, K)),
                        bboxes=src_boxes, bbox_scores=rng.uniform(0, 1, args.boxes),
                        areas=scale_w * scale_w / 0.75)
    return gt, preds


# Alike in shape to tests/unit/evaluation/test_postprocess.py reference_nms on purpose: this one is the timed baseline (numpy
# over the 17 keypoints, as mmpose runs it), that one the per-keypoint oracle; merging would change either.
def reference_oks_nms(image_ids, keypoints, scores, areas, thr=0.9, sigmas=OKS_SIGMAS):
    """The straightforward version, mmpose's loop: per image (in order of first appearance), visit boxes in
    `scores.argsort()[::-1]` order, keep the best, OKS with each remaining one pair at a time (numpy over
    the 17 keypoints), drop those above thr, repeat."""
    variances = (2 * sigmas) ** 2
    kept = []
    for img in dict.fromkeys(image_ids.tolist()):
        idx = np.flatnonzero(image_ids == img)
        order = list(idx[scores[idx].argsort()[::-1]])
        while order:
            i, rest = order[0], order[1:]
            kept.append(i)
            remaining = []
            for j in rest:
                d2 = ((keypoints[i] - keypoints[j]) ** 2).sum(-1)
                oks = np.exp(-d2 / variances / ((areas[i] + areas[j]) / 2 + np.spacing(1)) / 2).mean()
                if oks <= thr:
                    remaining.append(j)
            order = remaining
    return np.array(kept, np.int64)


def timed(fn, *a):
    start = time.perf_counter()
    out = fn(*a)
    return out, time.perf_counter() - start


def bench_postprocess(args) -> dict:
    rng = np.random.default_rng(args.seed)
    (gt, preds), t_gen = timed(synthetic_load, args, rng)
    scores, t_rescore = timed(rescore, preds.keypoint_scores, preds.bbox_scores, 0.2)
    keep, t_nms = timed(oks_nms, preds.image_ids, preds.keypoints, scores, preds.areas, 0.9)
    results, t_format = timed(to_coco_results, preds, scores, keep)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
    metrics, t_eval = timed(coco_keypoint_eval, coco_gt, results)

    sub = preds.image_ids <= args.ref_images                # the reference is slow: a subset of images
    args_sub = (preds.image_ids[sub], preds.keypoints[sub], scores[sub], preds.areas[sub])
    keep_vec, t_vec_sub = timed(oks_nms, *args_sub)
    keep_ref, t_ref_sub = timed(reference_oks_nms, *args_sub)
    if keep_vec.tolist() != keep_ref.tolist():
        raise SystemExit("vectorised and reference OKS-NMS keep different boxes")
    per_image = np.bincount(preds.image_ids)
    return {
        "load": {"images": args.images, "gt_people": args.people, "boxes": args.boxes,
                 "boxes_per_image_mean": round(args.boxes / args.images, 2),
                 "boxes_per_image_max": int(per_image.max()), "kept_after_nms": int(len(keep)),
                 "generate_s": round(t_gen, 3)},
        "seconds": {"rescore": round(t_rescore, 4), "oks_nms": round(t_nms, 4), "to_coco_results": round(t_format, 4),
                    "cocoeval": round(t_eval, 4),
                    "total": round(t_rescore + t_nms + t_format + t_eval, 4)},
        "nms_vs_reference": {"images": args.ref_images, "boxes": int(sub.sum()),
                             "vectorised_s": round(t_vec_sub, 4), "reference_s": round(t_ref_sub, 4),
                             "speedup": round(t_ref_sub / t_vec_sub, 2), "same_kept_boxes": True},
        "metrics_on_synthetic": {k: round(v, 4) for k, v in metrics.items()},
    }


def bench_inference(args, device) -> list[dict]:
    smoke = config.load(REPO / "params.yaml", "256x192", profile="smoke")
    models = {"narrow": (smoke.model, args.batch), "full": (CPMConfig(), min(args.batch, 2))}
    rows = []
    for name in args.models.split(","):
        cpm_cfg, batch = models[name]
        torch.manual_seed(args.seed)
        model = build_cpm(cpm_cfg).to(device).eval()
        n = batch
        data = {"img": torch.randn(n, 3, 256, 192), "center": torch.tensor([[96.0, 128.0]] * n),
                "scale": torch.tensor([[192.0, 256.0]] * n), "bbox": torch.zeros(n, 4),
                "bbox_score": torch.ones(n), "image_id": torch.arange(n)}
        for flip in (False, True):
            eval_cfg = dataclasses.replace(smoke.eval, flip_test=flip)
            predict(model, [data], device, eval_cfg)                       # untimed first batch
            _, seconds = timed(predict, model, [data] * args.iters, device, eval_cfg)
            rows.append({"model": name, "flip_test": flip, "batch": batch, "iters": args.iters,
                         "images_per_s": round(batch * args.iters / seconds, 3)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def to_markdown(report: dict) -> str:
    m, p = report["machine"], report["postprocess"]
    s, ref, load = p["seconds"], p["nms_vs_reference"], p["load"]
    lines = [f"# Evaluation cost ({m['device']})", "",
             f"CPU {m['cpu_model']}, {m['cores_available']} cores available, torch {m['torch']}, "
             f"{m['torch_threads']} threads, {m['date_utc']}. Timings on a shared machine are indicative only.",
             "", f"## Post-processing and COCO AP: {load['images']} images, {load['gt_people']} GT people, "
             f"{load['boxes']} boxes (synthetic; {load['boxes_per_image_mean']} per image, max "
             f"{load['boxes_per_image_max']}; {load['kept_after_nms']} kept after OKS-NMS)", "",
             "| step | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in s.items()]
    lines += ["", f"OKS-NMS on the first {ref['images']} images ({ref['boxes']} boxes), same run: vectorised "
              f"{ref['vectorised_s']:.4f} s, per-pair reference {ref['reference_s']:.4f} s, speed-up "
              f"{ref['speedup']:.2f}x, same kept boxes: {ref['same_kept_boxes']}.", "",
              "## Inference (predict: forward, flip-back, decode), random 256x192 crops", "",
              "| model | flip test | batch | images/s |", "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['flip_test']} | {r['batch']} | {r['images_per_s']:.3f} |"
              for r in report["inference"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    post = bench_postprocess(args)
    print(json.dumps(post), flush=True)
    report = {"machine": machine_info(device), "config": vars(args), "postprocess": post,
              "inference": bench_inference(args, device) if args.models else []}
    out = Path(args.out)
    atomic.write_json(out / f"eval_{device.type}.json", report)
    atomic.write_text(out / f"eval_{device.type}.md", to_markdown(report))
    print(to_markdown(report))
    return report


if __name__ == "__main__":
    main()
