"""The smoke profile's training on this CPU: speed and val AP of fp32, fp32 + channels_last and bf16 +
channels_last, and the AP of the untrained network, all with the real trainer and evaluator.

    .venv/bin/python benchmarks/bench_smoke.py                      # 256x192, the three settings, ~10 min
    .venv/bin/python benchmarks/bench_smoke.py --variants bf16_cl --set profiles.smoke.train.epochs=1

Each setting runs repro.smoke.run_smoke (synthetic data, repro.engine.train.train,
repro.evaluation.evaluate) in its own scratch directory with the smoke profile's values overridden by dotted
key. Speed ratios are against the fp32 setting measured in the same run. This is what chose the smoke
profile's `amp: bf16` and `channels_last: true` (params.yaml): faster with the same learning. Writes
<out>/smoke_cpu.json and .md.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from benchmarks.bench_model import machine_info  # noqa: E402
from repro import atomic, checkpoint, config, smoke  # noqa: E402
from repro.evaluation import evaluate  # noqa: E402
from repro.model import build_cpm  # noqa: E402

VARIANTS = {
    "fp32": {"profiles.smoke.train.amp": "none", "profiles.smoke.train.channels_last": False},
    "fp32_cl": {"profiles.smoke.train.amp": "none", "profiles.smoke.train.channels_last": True},
    "bf16_cl": {"profiles.smoke.train.amp": "bf16", "profiles.smoke.train.channels_last": True},
}


def untrained_ap(workdir: Path, name: str) -> float:
    """AP of the network as initialised (published init), evaluated like the trained ones."""
    cfg = config.load(workdir / "params.yaml", name)
    with smoke.inside(workdir):
        ckpt = checkpoint.save_checkpoint(Path("untrained.pth"), build_cpm(cfg.model))
        return evaluate.evaluate_checkpoint(cfg, ckpt, Path("outputs/untrained"))["AP"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="256x192")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra dotted params.yaml override for every variant (YAML value)")
    p.add_argument("--out", default="reports/benchmarks")
    args = p.parse_args(argv)
    import yaml
    extra = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    rows, scratch = [], Path(tempfile.mkdtemp(prefix="bench-smoke-"))
    for variant in args.variants.split(","):
        workdir = scratch / variant
        metrics = smoke.run_smoke(0, overrides={**VARIANTS[variant], **extra}, workdir=workdir,
                                     names=[args.config])[args.config]
        train = json.loads((workdir / "models" / args.config / "metrics.json").read_text())
        rows.append({"variant": variant, "AP": round(metrics["AP"], 4), "AP50": round(metrics["AP50"], 4),
                     "train_time_s": train["train_time_s"], "images_per_s": train["images_per_s"],
                     "epochs": train["epochs"], "iterations": train["iterations"]})
        print(rows[-1], flush=True)
    base = next((r for r in rows if r["variant"] == "fp32"), None)
    for r in rows:
        r["speed_vs_fp32"] = round(r["images_per_s"] / base["images_per_s"], 2) if base else None
    report = {"config": args.config, "overrides": extra, "untrained_AP": round(untrained_ap(workdir, args.config), 4),
              "rows": rows, "machine": machine_info(torch.device("cpu"))}
    out = Path(args.out)
    atomic.write_json(out / "smoke_cpu.json", report)
    lines = [f"# Smoke profile training on CPU ({args.config}, seed 0)", "",
             "| setting | val AP | AP50 | train s | images/s | speed vs fp32 |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['AP']:.4f} | {r['AP50']:.4f} | {r['train_time_s']:.0f} | "
              f"{r['images_per_s']:.1f} | {r['speed_vs_fp32']} |" for r in rows]
    lines += ["", f"Untrained network (published init), same evaluation: AP {report['untrained_AP']:.4f}.", "",
              f"Machine: {report['machine']['cpu_model']}, {report['machine']['cores_available']} cores, "
              f"torch {report['machine']['torch']}, {report['machine']['date_utc']}.", "",
              "Written by benchmarks/bench_smoke.py."]
    atomic.write_text(out / "smoke_cpu.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
