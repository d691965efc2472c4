"""Throughput of the published CPM network: training step and inference, fp32 vs bf16, NCHW vs NHWC.

    .venv/bin/python benchmarks/bench_model.py                         # CPU, 1 warm-up + 1 timed iteration
    .venv/bin/python benchmarks/bench_model.py --device cuda --warmup 5 --iters 20
    .venv/bin/python benchmarks/bench_model.py --iters 1 --warmup 0 --train-batch 1 --infer-batch 1 \
        --size 64x48 --out reports/benchmarks/tmp                      # a quick check that it runs

Settings: {train = forward+backward at --train-batch, infer = forward at --infer-batch} x {fp32, bf16
autocast} x {contiguous, channels_last}. Each setting runs --warmup untimed iterations, then --iters timed
ones; images/s = batch * iters / total time. Ratios are against the fp32 + contiguous setting of the same
mode measured in the same run, so they compare like with like on one machine. Writes
<out>/model_<device>.json and .md with the machine description.

CPU run time: the defaults are 8 settings x 2 iterations at batch 8 / 32, about 5 minutes at ~0.5 img/s
training on a quiet 2-core machine, longer where bf16 has no hardware support (AVX2-only CPUs emulate
it, several times slower than fp32); `--precisions fp32` halves it. On CUDA, cudnn.benchmark is on and
fp32 convolutions use TF32 if torch allows it (recorded as `cudnn_allow_tf32`).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from repro.model import build_cpm  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--size", default="256x192", help="input HxW (published: 256x192 or 384x288)")
    p.add_argument("--train-batch", type=int, default=8, help="batch for forward+backward")
    p.add_argument("--infer-batch", type=int, default=32, help="batch for forward only")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations (default: cpu 1, cuda 5)")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default: cpu 1, cuda 20)")
    p.add_argument("--modes", default="train,infer", help="comma list of train, infer")
    p.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16 (autocast)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--out", default="reports/benchmarks", help="output directory")
    return p.parse_args(argv)


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # CUDA launches are asynchronous: time the work, not the launch


def _step_fn(model, mode: str, x: torch.Tensor, bf16: bool):
    """One training (forward+backward) or inference iteration on fixed input `x`."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16)

    def train_step():
        model.zero_grad(set_to_none=True)
        with autocast:
            outs = model(x)
        loss = sum(o.float().square().mean() for o in outs)  # stands in for the 6-stage MSE
        loss.backward()

    def infer_step():
        with torch.inference_mode(), autocast:
            model(x)

    model.train(mode == "train")
    return train_step if mode == "train" else infer_step


def time_setting(model, device, mode, batch, size, bf16, channels_last, warmup, iters) -> dict:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    x = torch.randn(batch, 3, *size, device=device).contiguous(memory_format=fmt)
    step = _step_fn(model, mode, x, bf16)
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return {"mode": mode, "batch": batch, "precision": "bf16" if bf16 else "fp32",
            "channels_last": channels_last, "iters": iters, "warmup": warmup,
            "sec_per_iter_mean": round(statistics.fmean(times), 4), "sec_per_iter_min": round(min(times), 4),
            "images_per_s": round(batch * iters / sum(times), 4)}


def machine_info(device: torch.device) -> dict:
    cpu = platform.processor()
    if Path("/proc/cpuinfo").is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), cpu)
    info = {"cpu_model": cpu, "logical_cores": os.cpu_count(),
            "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(), "python": platform.python_version(),
            "platform": platform.platform(), "device": str(device),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), cudnn_benchmark=torch.backends.cudnn.benchmark,
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32)
    return info


def add_ratios(results: list) -> None:
    """images/s relative to the fp32 + contiguous row of the same mode (same run, same machine)."""
    for r in results:
        base = next((b for b in results if b["mode"] == r["mode"] and b["precision"] == "fp32"
                     and not b["channels_last"]), None)  # None when fp32 was not run
        r["ratio_vs_fp32_contiguous"] = round(r["images_per_s"] / base["images_per_s"], 3) if base else None


def to_markdown(report: dict) -> str:
    m, c = report["machine"], report["config"]
    lines = [f"# CPM model benchmark ({m['device']})", "",
             f"Published network, input {c['size']}, warm-up {c['warmup']}, timed iterations {c['iters']}.",
             f"CPU {m['cpu_model']}, {m['logical_cores']} logical cores ({m['cores_available']} available), "
             f"torch {m['torch']}, {m['torch_threads']} threads" + (f", GPU {m['gpu']}" if "gpu" in m else "")
             + f", {m['date_utc']}.", "",
             "| mode | batch | precision | channels_last | images/s | s/iter (mean) | ratio vs fp32 contiguous |",
             "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        ratio = "-" if r["ratio_vs_fp32_contiguous"] is None else f"{r['ratio_vs_fp32_contiguous']:.3f}"
        lines.append(f"| {r['mode']} | {r['batch']} | {r['precision']} | {r['channels_last']} | "
                     f"{r['images_per_s']:.4f} | {r['sec_per_iter_mean']:.4f} | {ratio} |")
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    warmup = args.warmup if args.warmup is not None else (5 if on_gpu else 1)
    iters = args.iters if args.iters is not None else (20 if on_gpu else 1)
    size = tuple(int(v) for v in args.size.split("x"))
    precisions, modes = args.precisions.split(","), args.modes.split(",")
    if not set(precisions) <= {"fp32", "bf16"} or not set(modes) <= {"train", "infer"}:
        raise SystemExit(f"--precisions {args.precisions!r} / --modes {args.modes!r}: unknown value")
    if args.threads:
        torch.set_num_threads(args.threads)
    if on_gpu:
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
    torch.manual_seed(0)
    model = build_cpm().to(device)
    batches = {"train": args.train_batch, "infer": args.infer_batch}
    results = []
    for mode in modes:
        for bf16 in (p == "bf16" for p in precisions):
            for channels_last in (False, True):
                r = time_setting(model, device, mode, batches[mode], size, bf16, channels_last, warmup, iters)
                print(json.dumps(r), flush=True)
                results.append(r)
    add_ratios(results)
    report = {"machine": machine_info(device), "results": results,
              "config": {"size": args.size, "warmup": warmup, "iters": iters, "batches": batches,
                         "network": "published CPM (31,304,166 parameters)"}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"model_{device.type}"
    _write_atomic(out / f"{name}.json", json.dumps(report, indent=2) + "\n")
    _write_atomic(out / f"{name}.md", to_markdown(report))
    print(to_markdown(report))
    return report


if __name__ == "__main__":
    main()
