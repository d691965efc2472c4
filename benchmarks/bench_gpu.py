"""Can the loader feed a GPU, and how fast is the full CPM on one: writes <out>/gpu_<device>.{json,md}.

    .venv/bin/python benchmarks/bench_gpu.py                       # CPU: the loader part only
    .venv/bin/python benchmarks/bench_gpu.py --epochs 2 --out /tmp/b   # quick check

reports/benchmarks/gpu_cpu_avx2.md is this script's output with every library held to AVX2 (OPENCV_CPU_DISABLE=
AVX512F,AVX512-SKX,AVX512-COMMON,AVX512-CNL,AVX512-CLX,AVX512-ICL, NPY_DISABLE_CPU_FEATURES for numpy's AVX-512
features, ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2; the report's note says so), renamed by hand.

Loader (every machine): training items of the real COCO sample at 256x192, faithful decode, batch 16, for 1..N
workers (N: the cores of this process's affinity), today's loader and the new one alternated --rounds times,
each setting in a fresh process (so that neither OpenCV's thread count nor the heap setting of one reaches the
next); medians:
  - before: float32 crops normalised in the workers, OpenCV at its default threads, workers re-created per epoch
    (the loader as it was before issue 23, rebuilt here);
  - after: repro.data.loader (uint8 crops normalised and targets encoded after the loader, one-thread OpenCV,
    persistent workers, freed memory kept mapped);
  - the ceiling: JPEG decode alone (cv2.imdecode of the same images) in this process, one thread.
Two per-core figures: samples/s / workers, and samples per CPU-second of all the loader's processes (the one
that counts the old workers' OpenCV threads). The workers one GPU of each kind would need = its derived
training samples/s (repro/throughput.yaml) / the after-loader's samples per CPU-second with one worker.

CUDA only (skipped, and said so in the report, without a GPU): the train step (forward, backward, Adam) of the
full CPM at both sizes in fp32 (TF32 off), TF32, bf16, each also with channels_last and torch.compile; peak
memory at the recipe batch; evaluation boxes/s (flip test, fp32); utilisation = samples/s x FLOP per sample /
the device's dense peak given with --peak-tflops.
"""
import argparse
import datetime
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
from repro import atomic  # noqa: E402
from repro.codec import encode_targets  # noqa: E402
from repro.config import CPMConfig, load  # noqa: E402
from repro.data import loader  # noqa: E402
from repro.data.coco import TopDownCocoDataset  # noqa: E402
from repro.data.transforms import normalize_images  # noqa: E402
from repro.report.plan import read_table  # noqa: E402

TARGET_RATIO = 1.3   # issue 23: the new loader's samples/s per worker core over the old one's, at 256x192
FLOP = {"256x192": (127.472e9, 376.302e9), "384x288": (286.813e9, 846.679e9)}   # fwd, fwd+bwd (tests/unit/test_plan_gpu.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--coco-dir", default=str(REPO.parent / "shared" / "coco_sample"))
    p.add_argument("--epochs", type=int, default=3, help="timed passes per loader setting")
    p.add_argument("--repeat", type=int, default=40, help="items per epoch = sample instances x this")
    p.add_argument("--rounds", type=int, default=3, help="old and new loader alternated this often; medians")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-workers", type=int, default=None, help="default: the cores of this process")
    p.add_argument("--steps", type=int, default=20, help="CUDA: timed train steps per setting")
    p.add_argument("--peak-tflops", type=json.loads, default=None,
                   help='CUDA: dense peaks for the utilisation, e.g. {"fp32": 67, "tf32": 494.7, "bf16": 989.4}')
    p.add_argument("--out", default=str(REPO / "reports" / "benchmarks"))
    p.add_argument("--measure", choices=("old", "new"), help=argparse.SUPPRESS)   # one setting, in a child
    p.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


class Repeated(Dataset):
    """`ds` visited `times` times per epoch (item i is ds[i % len(ds)]): enough work per epoch to time."""

    def __init__(self, ds, times: int):
        self.ds, self.times = ds, times

    def __len__(self):
        return len(self.ds) * self.times

    def __getitem__(self, i):
        return self.ds[i % len(self.ds)]


def _old_seed_worker(worker_id):   # the former worker_init_fn: seeds only, OpenCV at its default threads
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def _cpu_seconds() -> tuple[float, float]:
    """CPU time of this process, and of its children that have been reaped (the loader's finished workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def training_items(args, for_device: bool) -> Repeated:
    root = Path(args.coco_dir)
    cfg = load(REPO / "params.yaml", "256x192", "full")
    return Repeated(TopDownCocoDataset(root / "test_coco.json", root, cfg.codec, cfg.augment, is_training=True,
                                       for_device=for_device), args.repeat)


def time_loader(args, workers: int, new: bool) -> dict:
    """One loader setting, run in a fresh process (`--measure`): samples/s of wall time, and samples per
    CPU-second of all the loader's processes (this one, which only receives the batches, and its workers, with
    their OpenCV threads). Workers start inside the timed span, as a training run pays them: once for the new
    loader, every epoch for the old one. The new loader's device share (normalising its uint8 crops, encoding
    its targets) runs on a GPU node's device, not on its cores: it is timed on its own, after the loader."""
    torch.set_num_threads(1)   # the share below on one core, as the rest
    ds = training_items(args, for_device=new)
    cpu, start, n = _cpu_seconds(), time.perf_counter(), 0
    if new:
        dl = DataLoader(ds, batch_size=args.batch, **loader.loader_options(workers, True, 2, "cpu"))
    else:
        dl = DataLoader(ds, batch_size=args.batch, num_workers=workers, worker_init_fn=_old_seed_worker)
    for epoch in range(args.epochs):
        ds.ds.set_epoch(epoch)
        for b in dl:
            n += len(b["img"])
    wall = time.perf_counter() - start
    del dl   # shuts the persistent workers down and reaps them, so that their CPU time is counted
    gc.collect()
    main_cpu, workers_cpu = (after - before for before, after in zip(cpu, _cpu_seconds()))
    out = {"samples_s": n / wall, "samples_per_cpu_s": n / (main_cpu + workers_cpu),
           "main_cpu_ms_per_sample": 1e3 * main_cpu / n, "workers_cpu_ms_per_sample": 1e3 * workers_cpu / n}
    if new:
        share = time.process_time()
        for _ in range(10):
            normalize_images(b["img"])
            encode_targets(b["keypoints"], b["visible"], ds.ds.codec)
        out["device_share_cpu_ms_per_sample"] = 1e3 * (time.process_time() - share) / (10 * len(b["img"]))
    return out


def measure_in_fresh_process(args, workers: int, new: bool) -> dict:
    """`time_loader` in a new interpreter: the new loader sets this process's OpenCV to one thread, which a
    later old loader's forked workers would inherit."""
    cmd = [sys.executable, __file__, "--measure", "new" if new else "old", "--workers", str(workers),
           "--coco-dir", args.coco_dir, "--epochs", str(args.epochs), "--repeat", str(args.repeat),
           "--batch", str(args.batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f"bench_gpu: {' '.join(cmd[2:])} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def decode_ceiling(ds, seconds: float = 3.0) -> float:
    """JPEG decodes per CPU-second of the sample's images in this process on one thread: no loader can beat
    it per core."""
    cv2.setNumThreads(1)
    blobs = [np.fromfile(ds.image_path(i), np.uint8) for i in range(len(ds))]
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        cv2.imdecode(blobs[n % len(blobs)], cv2.IMREAD_COLOR)
        n += 1
    return n / (time.process_time() - start)


def loader_part(args) -> dict:
    """Old and new loader for 1..N workers, `--rounds` times in alternation; the medians of each."""
    cores = loader.available_cores()
    rows = []
    for w in range(1, (args.max_workers or cores) + 1):
        runs = {"before": [], "after": []}
        for _ in range(args.rounds):
            runs["before"].append(measure_in_fresh_process(args, w, new=False))
            runs["after"].append(measure_in_fresh_process(args, w, new=True))
        med = {side: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for side, rs in runs.items()}
        before, after = med["before"], med["after"]
        rows.append({"workers": w, "before_s": round(before["samples_s"], 1), "after_s": round(after["samples_s"], 1),
                     "before_per_worker": round(before["samples_s"] / w, 1),
                     "after_per_worker": round(after["samples_s"] / w, 1),
                     "ratio_per_worker": round(after["samples_s"] / before["samples_s"], 3),
                     "before_per_cpu_s": round(before["samples_per_cpu_s"], 1),
                     "after_per_cpu_s": round(after["samples_per_cpu_s"], 1),
                     "ratio_per_cpu_s": round(after["samples_per_cpu_s"] / before["samples_per_cpu_s"], 3),
                     "device_share_cpu_ms": round(after["device_share_cpu_ms_per_sample"], 3), "runs": runs})
    items = training_items(args, for_device=False)
    ceiling = decode_ceiling(items.ds)
    per_core = rows[0]["after_per_cpu_s"]   # what one busy core delivers, the process's share included
    need = {gpu: {"256x192": round(row["train"]["256x192"] / per_core, 1)}   # the size the loader ran at
            for gpu, row in read_table()["devices"].items() if gpu.startswith(("v100", "a100", "h100"))}
    return {"rows": rows, "decode_ceiling_per_core": round(ceiling, 1), "workers_needed": need, "cores": cores,
            "items_per_epoch": len(items), "batch": args.batch, "epochs": args.epochs,
            "rounds": args.rounds}


def cuda_part(args) -> dict:
    """The train step, memory and evaluation speed of the full CPM (runs only on CUDA)."""
    from repro.engine import precision
    from repro.engine.train import heatmap_loss
    from repro.model import build_cpm
    dev, out = torch.device("cuda"), {"device": torch.cuda.get_device_name(), "train": [], "eval": []}
    for size, batch in (("256x192", 64), ("384x288", 32)):
        h, w = (int(v) for v in size.split("x"))
        for mode in ("fp32", "tf32", "bf16"):
            for layout in ("contiguous", "channels_last", "compile"):
                torch.backends.cudnn.benchmark = True
                torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
                model = build_cpm(CPMConfig()).to(dev)
                x = torch.randn(batch, 3, h, w, device=dev)
                target = torch.rand(batch, 17, h // 8, w // 8, device=dev)
                weight = torch.ones(batch, 17, device=dev)
                if layout != "contiguous":
                    model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
                step_model = torch.compile(model) if layout == "compile" else model
                opt = torch.optim.Adam(model.parameters(), lr=5e-4)

                def step():
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16"):
                        loss = heatmap_loss([o.float() for o in step_model(x)], target, weight)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                for _ in range(3):
                    step()   # warm-up: cudnn.benchmark's search, compilation
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                torch.cuda.synchronize()
                rate = args.steps * batch / (time.perf_counter() - start)
                peak = (args.peak_tflops or {}).get(mode)
                out["train"].append({"size": size, "batch": batch, "precision": mode, "layout": layout,
                                     "samples_s": round(rate, 1),
                                     "peak_memory_mib": torch.cuda.max_memory_allocated() // 2**20,
                                     "utilisation": round(rate * FLOP[size][1] / (peak * 1e12), 3) if peak else None})
                del model, step_model, opt
                torch.cuda.empty_cache()
        model = build_cpm(CPMConfig()).to(dev).eval()
        precision.apply(precision.Settings(False, False, True, "fp32"))
        x = torch.randn(32, 3, h, w, device=dev)
        with torch.inference_mode():
            for _ in range(3):
                model(x), model(x.flip(-1))
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                model(x), model(x.flip(-1))   # flip test: two forward passes per box
            torch.cuda.synchronize()
        out["eval"].append({"size": size, "boxes_s": round(args.steps * 32 / (time.perf_counter() - start), 1)})
    return out


def render(result: dict) -> str:
    L, ld = [], result["loader"]
    L.append(f"# Loader and GPU benchmark ({result['device']})\n")
    L.append(f"{result['host']}; {result['when']}. {ld['items_per_epoch']} training items per epoch (the COCO "
             f"sample's 12 instances x {ld['items_per_epoch'] // 12}), 256x192, faithful decode, batch {ld['batch']}, "
             f"{ld['epochs']} epochs per setting, worker start-up included; each setting in a fresh process, old "
             f"and new alternated {ld['rounds']} times, medians. {result['note']}\n")
    L.append("Per worker = samples/s / workers (the old workers' OpenCV also runs threads on idle cores). "
             "Per CPU-second = samples / CPU time of all the loader's processes (workers, their threads, and the "
             "training process that receives the batches): what a core delivers when every core is busy, as on "
             "a GPU node. The new loader leaves normalisation and target encoding to the device; on this CPU "
             f"that share costs {ld['rows'][0]['device_share_cpu_ms']} ms per sample on one thread (timed apart, "
             "not in the figures; on a GPU it is one elementwise kernel and one gather per batch).\n")
    L.append("| workers | before samples/s | after samples/s | after / before | before per CPU-s | "
             "after per CPU-s | after / before per CPU-s |")
    L.append("|---|---|---|---|---|---|---|")
    for r in ld["rows"]:
        L.append(f"| {r['workers']} | {r['before_s']} | {r['after_s']} | {r['ratio_per_worker']} | "
                 f"{r['before_per_cpu_s']} | {r['after_per_cpu_s']} | {r['ratio_per_cpu_s']} |")
    L.append(f"\nCeiling, JPEG decode alone in one thread: {ld['decode_ceiling_per_core']} images per CPU-second.\n")
    worst = min(min(r["ratio_per_worker"], r["ratio_per_cpu_s"]) for r in ld["rows"])
    L.append(f"Target (issue 23): at least {TARGET_RATIO}x the old loader's samples/s per worker core. Lowest "
             f"after / before above: {worst}, so the target is **{'met' if worst >= TARGET_RATIO else 'not met'}** "
             "on this machine.\n")
    L.append("Workers one GPU would need (its derived training samples/s in repro/throughput.yaml / the new "
             "loader's samples per CPU-second with 1 worker; each worker takes one core), and the cores of an "
             "8-GPU node they take with each GPU's training process:\n")
    L.append("| GPU row | workers at 256x192 | cores of an 8-GPU node |")
    L.append("|---|---|---|")
    for gpu, need in ld["workers_needed"].items():
        L.append(f"| {gpu} | {need['256x192']} | {8 * (math.ceil(need['256x192']) + 1)} |")
    gpu = result.get("cuda")
    if gpu is None:
        L.append("\n**GPU part: did not run** (no CUDA device here). It is ready: run this script on a GPU.")
    else:
        L.append(f"\n## {gpu['device']}\n")
        L.append("| size | batch | precision | layout | samples/s | peak MiB | utilisation |")
        L.append("|---|---|---|---|---|---|---|")
        for r in gpu["train"]:
            L.append(f"| {r['size']} | {r['batch']} | {r['precision']} | {r['layout']} | {r['samples_s']} | "
                     f"{r['peak_memory_mib']} | {r['utilisation']} |")
        L.append("\n| size | eval boxes/s (flip test, fp32, batch 32) |\n|---|---|")
        for r in gpu["eval"]:
            L.append(f"| {r['size']} | {r['boxes_s']} |")
    return "\n".join(L) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(time_loader(args, args.workers, new=args.measure == "new")))
        return
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name().lower().replace(" ", "-") if cuda else "cpu"
    result = {"device": device, "host": f"{platform.machine()}, {loader.available_cores()} cores, cv2 {cv2.__version__}",
              "when": datetime.datetime.now().isoformat(timespec="seconds"),
              "note": os.environ.get("BENCH_NOTE", "")}
    result["loader"] = loader_part(args)
    result["cuda"] = cuda_part(args) if cuda else None
    out = Path(args.out)
    atomic.write_json(out / f"gpu_{device}.json", result)
    (out / f"gpu_{device}.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
