"""Cost of tier A-subset on a CPU: full-model flip-test inference (boxes/s) and the image bootstrap.

    .venv/bin/python benchmarks/bench_subset.py              # about 3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_subset.py --iters 1 --out reports/benchmarks/tmp   # a quick check

Inference: the published 256x192 CPM (full size) on random crops, one forward of each crop and its mirror
(repro.evaluation.evaluate._heatmaps, what `predict` runs per batch), channels_last, in fp32 and in bf16 where
the CPU has it natively (machine.native_bf16_cpu; bf16 differs from the published fp32, so such a run is
recorded open), for each --batches and --threads; the fastest setting gives the minutes for N images at
val2017's 20.8 boxes per image (104,125 / 5,000), and the 1 -> 2 thread speed-up extrapolates to 8 and 16
cores (an estimate: it assumes that efficiency holds). 384x288 costs 2.25x the FLOPs.
Bootstrap: 1000 resamples (repro.evaluation.bootstrap) of N synthetic images, timed per N and scaled to 20
result rows per image (its cost is linear in the rows). Writes <out>/subset_cpu.json and .md.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmarks.bench_model import machine_info  # noqa: E402
from repro import atomic, config, machine  # noqa: E402
from repro.evaluation import bootstrap, evaluate  # noqa: E402
from repro.model import build_cpm  # noqa: E402
from tests.unit import bootstrap_data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BOXES_PER_IMAGE = 104125 / 5000
SUBSET_SIZES = (100, 500, 1000)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="4,8", help="boxes per batch (each runs with its mirror: 2x crops)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--iters", type=int, default=2, help="timed batches per setting (1 untimed first)")
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--out", default="reports/benchmarks")
    p.add_argument("--summarize", help="only rebuild the summary and .md from this measured subset_cpu.json")
    return p.parse_args(argv)


def boxes_per_s(model, eval_cfg, batch: int, iters: int) -> float:
    crops = torch.randn(batch, 3, 256, 192)
    with torch.inference_mode():
        evaluate._heatmaps(model, crops, eval_cfg)            # untimed: first-call allocations
        start = time.perf_counter()
        for _ in range(iters):
            evaluate._heatmaps(model, crops, eval_cfg)
    return batch * iters / (time.perf_counter() - start)


def bench_inference(args) -> list[dict]:
    cfg = config.load(REPO / "params.yaml", "256x192", profile="full")
    model = build_cpm(cfg.model).eval().to(memory_format=torch.channels_last)
    precisions = ["none"] + (["bf16"] if machine.native_bf16_cpu() else [])
    rows, threads = [], [int(t) for t in args.threads.split(",")]
    for amp in precisions:
        eval_cfg = dataclasses.replace(cfg.eval, amp=amp, channels_last=True, flip_test=True)
        for batch in (int(b) for b in args.batches.split(",")):
            for n in threads:
                torch.set_num_threads(n)
                rate = boxes_per_s(model, eval_cfg, batch, args.iters)
                rows.append({"precision": "bf16" if amp == "bf16" else "fp32", "batch": batch, "threads": n,
                             "boxes_per_s": round(rate, 3)})
                print(rows[-1], flush=True)
    torch.set_num_threads(max(threads))
    return rows


def bench_bootstrap(args) -> list[dict]:
    gt = bootstrap_data.ground_truth(max(SUBSET_SIZES), seed=0)
    table = bootstrap.image_table(bootstrap_data.as_coco(gt), bootstrap_data.predictions(gt, seed=1))
    rows = []
    for n in SUBSET_SIZES:
        positions = np.arange(n)
        start = time.perf_counter()
        bootstrap.bootstrap(table, args.resamples, 0, positions)
        seconds = time.perf_counter() - start
        per_image = table.areas["all"].count[positions].mean()
        rows.append({"images": n, "resamples": args.resamples, "rows_per_image": round(float(per_image), 2),
                     "seconds": round(seconds, 2), "seconds_at_20_rows": round(seconds * 20 / per_image, 1)})
        print(rows[-1], flush=True)
    return rows


def summary(inference: list[dict]) -> dict:
    """Per precision: the fastest setting, the minutes for N images with the measured 1- and 2-thread
    rates, and for 8 and 16 cores the 1-thread rate times the cores: linear scaling, an upper bound (the
    measured 1 -> 2 thread efficiency is beside it; on a loaded machine it says little)."""
    out = {}
    for precision in sorted({r["precision"] for r in inference}):
        mine = [r for r in inference if r["precision"] == precision]
        one = max(r["boxes_per_s"] for r in mine if r["threads"] == 1)
        two = max(r["boxes_per_s"] for r in mine if r["threads"] == 2)
        rates = {"1 (measured)": one, "2 (measured)": two, "8 (linear, upper bound)": one * 8,
                 "16 (linear, upper bound)": one * 16}
        out[precision] = {"best": max(mine, key=lambda r: r["boxes_per_s"]),
                          "two_thread_efficiency": round(two / one / 2, 3),
                          "minutes": {cores: {n: round(n * BOXES_PER_IMAGE / rate / 60, 1) for n in SUBSET_SIZES}
                                      for cores, rate in rates.items()}}
    return out


def markdown(result: dict) -> str:
    m = result["machine"]
    out = [f"# Tier A-subset on CPU ({m['cpu_model']}, {m['cores_available']} cores, torch {m['torch']})\n",
           f"Load average at the end (1, 5, 15 min): {m.get('load_average_1_5_15', 'not recorded (this run predates the field; uptime showed about 8 on 2 cores)')}.\n",
           "Full-size CPM 256x192, flip test (two crops per box), channels_last; random crops. "
           "384x288 costs about 2.25x. bf16 differs from the published fp32: a bf16 run is `open`.\n",
           "| precision | batch | threads | boxes/s |", "|---|---|---|---|"]
    out += [f"| {r['precision']} | {r['batch']} | {r['threads']} | {r['boxes_per_s']} |" for r in result["inference"]]
    out += ["", f"Minutes of inference for N images at {BOXES_PER_IMAGE:.1f} boxes per image (8 and 16 cores: "
            "the 1-thread rate times the cores, an upper bound):\n",
            "| precision | cores | " + " | ".join(f"N={n}" for n in SUBSET_SIZES) + " |",
            "|---|---|" + "---|" * len(SUBSET_SIZES)]
    for precision, s in result["summary"].items():
        for cores, minutes in s["minutes"].items():
            out.append(f"| {precision} | {cores} | "
                       + " | ".join(str(minutes[n]) for n in SUBSET_SIZES) + " |")
    out += ["", "Bootstrap (1000 image resamples, one core; seconds scaled to 20 result rows per image):\n",
            "| images | rows/image measured | seconds measured | seconds at 20 rows/image |", "|---|---|---|---|"]
    out += [f"| {r['images']} | {r['rows_per_image']} | {r['seconds']} | {r['seconds_at_20_rows']} |"
            for r in result["bootstrap"]]
    return "\n".join(out) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.summarize:
        result = json.loads(Path(args.summarize).read_text())
        return write(Path(args.out), {**result, "summary": summary(result["inference"])})
    inference = bench_inference(args)
    torch.set_num_threads(1)
    boot = bench_bootstrap(args)
    # The load average says whether other work shared the cores (then boxes/s is low and threads do not help).
    result = {"machine": {**machine_info(torch.device("cpu")), "load_average_1_5_15": os.getloadavg()},
              "inference": inference, "bootstrap": boot, "summary": summary(inference)}
    write(Path(args.out), result)


def write(out: Path, result: dict):
    atomic.write_json(out / "subset_cpu.json", result)
    atomic.write_text(out / "subset_cpu.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
