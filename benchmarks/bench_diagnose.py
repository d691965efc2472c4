"""Cost of `repro diagnose` at the real val2017 size (what the compare stage adds per diagnosed pair).

    .venv/bin/python benchmarks/bench_diagnose.py                   # 5,000 images, 6,352 people, 104,125 boxes
    .venv/bin/python benchmarks/bench_diagnose.py --images 500 --people 635 --boxes 10412 --out /tmp/bench

The load is bench_eval.py's synthetic one (boxes clustered on GT people with near-duplicates and false
positives), rescored and OKS-NMS'd as the protocol does: file A. File B is A with, in every fifth result,
one labelled keypoint moved onto its left/right twin and another 200 px away (inversions and misses).
Times diagnose.diagnose (both files: reading, matching, the breakdown and the six re-evaluations each) and
write_report. Writes <out>/diagnose_cpu.json and .md.
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmarks.bench_eval import parse_args, synthetic_load, timed  # noqa: E402
from benchmarks.bench_model import machine_info  # noqa: E402
from repro import atomic  # noqa: E402
from repro.evaluation.postprocess import oks_nms, rescore, to_coco_results  # noqa: E402
from repro.report import diagnose  # noqa: E402
from repro.keypoints import FLIP_INDICES  # noqa: E402


def perturbed(results: list[dict]) -> list[dict]:
    """Every fifth result: keypoint 5 (left shoulder) onto keypoint 6's place, keypoint 15 200 px right."""
    out = []
    for i, r in enumerate(results):
        kpts = list(r["keypoints"])
        if i % 5 == 0:
            kpts[15:17] = kpts[3 * FLIP_INDICES[5]:3 * FLIP_INDICES[5] + 2]
            kpts[45] += 200.0
        out.append({**r, "keypoints": kpts})
    return out


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    gt, preds = synthetic_load(args, rng)
    scores = rescore(preds.keypoint_scores, preds.bbox_scores, 0.2)
    results = to_coco_results(preds, scores, oks_nms(preds.image_ids, preds.keypoints, scores, preds.areas, 0.9))
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / name for name in ("gt.json", "a.json", "b.json")]
        for path, data in zip(paths, (gt, results, perturbed(results))):
            path.write_text(json.dumps(data))
        report, t_diagnose = timed(diagnose.diagnose, *paths)
        _, t_write = timed(diagnose.write_report, report, Path(tmp) / "out")
    record = {"machine": machine_info(torch.device(args.device)),
              "load": {"images": args.images, "gt_people": args.people, "boxes": args.boxes,
                       "results_per_file": len(results)},
              "seconds": {"diagnose_both_files": round(t_diagnose, 2), "write_report": round(t_write, 2)},
              "errors_b_minus_a": report["difference"]["errors"], "ap": {"a": report["a_report"]["ap"],
                                                                          "b": report["b_report"]["ap"]}}
    out = Path(args.out)
    atomic.write_json(out / "diagnose_cpu.json", record)
    atomic.write_text(out / "diagnose_cpu.md", markdown(record))
    print(markdown(record))


def markdown(record: dict) -> str:
    load, sec = record["load"], record["seconds"]
    machine = record["machine"]
    return (f"# Cost of `repro diagnose` (cpu)\n\nCPU {machine['cpu_model']}, {machine['cores_available']} cores "
            f"available, {machine['date_utc']}. Timings on a shared machine are "
            f"indicative only.\n\nSynthetic val2017-shaped load (benchmarks/bench_eval.py): {load['images']} "
            f"images, {load['gt_people']} GT people, {load['boxes']} boxes, {load['results_per_file']} results "
            f"per file after OKS-NMS; B has planted inversions and misses in every fifth result.\n\n"
            f"| step | seconds |\n|---|---|\n| diagnose (both files) | {sec['diagnose_both_files']} |\n"
            f"| write_report | {sec['write_report']} |\n\nAP all: A {record['ap']['a']['all']}, "
            f"B {record['ap']['b']['all']}; errors B - A: {record['errors_b_minus_a']}.\n")


if __name__ == "__main__":
    main()
