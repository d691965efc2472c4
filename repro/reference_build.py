"""`repro reference`: make tier E's committed smoke reference, or measure its fp32 op-order noise.

    repro reference                                        # train each config (params.yaml `reference`), write
    repro reference --from-checkpoints A.pth B.pth         # write from trained checkpoints (256x192, 384x288)
    repro reference --measure-noise                        # fp32 op-order noise of the committed reference

Writes reports/reference/smoke_<config>.pth (weights + meta, mmpose layout), smoke_<config>.predictions.json
(COCO results after NMS) and smoke.json (sha256s, the 10 stats, the data digests, the measured noise).
"""
import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from repro import atomic, config, machine
from repro.digest import sha256_file
from repro.evaluation import golden
from repro.evaluation.reference import INDEX, PROFILE, REFERENCE_DIR, data_digests, eval_config, load_index

SCRATCH = Path("data/reference")          # the reference runs' data (git-ignored)


def generate_val(cfg, root) -> dict:
    """The smoke val set (images, annotations, det file) of `cfg.synthetic` under `root`, without train images:
    each image depends only on [seed, split, index], so it equals the pipeline's data/smoke val set."""
    from repro.data.synthetic import generate
    return generate(dataclasses.replace(cfg.synthetic, train_images=0), root)


def _weights_only_copy(src, dest, cfg) -> Path:
    """Re-save a trained checkpoint as weights + meta (no optimizer or RNG state): ~1.3 MB."""
    from repro import checkpoint
    from repro.model import build_cpm
    model = build_cpm(cfg.model)
    checkpoint.load_checkpoint(src, model)
    meta = checkpoint.read_checkpoint(src)["meta"]
    return checkpoint.save_checkpoint(dest, model, {"config": meta.get("config", {}), "source": str(src)})


def write_reference(params, checkpoints: dict, data_root, command: str, train: dict | None = None,
                    out_dir=REFERENCE_DIR) -> dict:
    """Copy each checkpoint into `out_dir`, evaluate it on the val set at `data_root` and write smoke.json.

    Args:
        params: params.yaml path.
        checkpoints: {config name: trained .pth}.
        data_root: a generated smoke data set (at least its val split).
        command: the command line that made the reference (recorded).
        train: {config name: training summary} when `repro reference` trained them.
        out_dir: where the files go.

    Returns:
        The written index (smoke.json's content).
    """
    from repro.evaluation import evaluate
    out_dir = Path(out_dir)
    index = {"profile": PROFILE, "command": command,
             "made": {"platform": machine.fingerprint(), "date": datetime.date.today().isoformat()},
             "data": data_digests(config.DataConfig("synthetic", str(data_root))),
             "noise": (load_index(out_dir / INDEX.name) or {}).get("noise", {}), "configs": {}}
    for name, src in checkpoints.items():
        cfg = eval_config(params, name, data_root)
        ckpt = _weights_only_copy(src, out_dir / f"smoke_{name}.pth", cfg)
        with tempfile.TemporaryDirectory(prefix="repro-reference-") as tmp:
            metrics = evaluate.evaluate_checkpoint(cfg, ckpt, Path(tmp))
            preds = atomic.write_bytes(out_dir / f"smoke_{name}.predictions.json",
                                       (Path(tmp) / "predictions.json").read_bytes())
        index["configs"][name] = {"checkpoint": str(ckpt), "sha256": sha256_file(ckpt), "stats": metrics,
                                  "predictions": str(preds), "train": (train or {}).get(name, {})}
        print(f"{name}: AP {metrics['AP']:.4f} ({metrics['num_instances']} instances) -> {ckpt}")
    atomic.write_json(out_dir / INDEX.name, index)
    return index


def train_references(params, command: str, workdir=Path("outputs/reference")) -> dict:
    """Train each config of params.yaml `reference` on its own data (data/reference) and write the reference."""
    from repro.data.synthetic import generate
    from repro.engine.train import train
    spec = config.read_params(params)["reference"]
    base = config.load(params, next(iter(spec["configs"])), PROFILE)
    generate(dataclasses.replace(base.synthetic, **spec.get("synthetic", {})), SCRATCH)
    checkpoints, summaries = {}, {}
    for name, overrides in spec["configs"].items():
        sets = [f"data.root={SCRATCH}", *(f"{k}={json.dumps(v)}" for k, v in overrides.items())]
        cfg = config.with_overrides(config.load(params, name, PROFILE), sets)
        summaries[name] = train(cfg, workdir / name, resume=False, track=False)
        checkpoints[name] = workdir / name / "best.pth"
    return write_reference(params, checkpoints, SCRATCH, command, summaries)


# ------------------------------------------------------------------------------------ op-order noise
# Each variant changes only the order of fp32 operations (memory layout, batch split, threads, CPU ISA).
IN_PROCESS_VARIANTS = {"channels_last_off": {"channels_last": False}, "batch_7": {"batch_size": 7},
                       "threads_1": {}, "threads_2": {}}
ISA_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"}


def _variant_results(params, name, data_root, variant, out_dir) -> list:
    import torch

    from repro.evaluation import evaluate
    threads = torch.get_num_threads()
    if variant.startswith("threads_"):
        torch.set_num_threads(int(variant.split("_")[1]))
    try:
        cfg = eval_config(params, name, data_root, IN_PROCESS_VARIANTS.get(variant, {}))
        evaluate.evaluate_checkpoint(cfg, Path(load_index()["configs"][name]["checkpoint"]), Path(out_dir))
    finally:
        torch.set_num_threads(threads)
    return json.loads((Path(out_dir) / "predictions.json").read_text())


def _isa_results(params, name, data_root, out_dir) -> list:
    """The same evaluation in a subprocess limited to AVX2 (stands in for a CPU without AVX-512)."""
    cmd = [sys.executable, "-m", "repro.reference_build", "--params", str(params), "--eval-only", name,
           "--data-root", str(data_root), "--out-dir", str(out_dir)]
    subprocess.run(cmd, check=True, env={**os.environ, **ISA_ENV})
    return json.loads((Path(out_dir) / "predictions.json").read_text())


def measure_noise(params, data_root, tol: dict) -> dict:
    """Per config and variant: max |delta| of each stat and the golden diff against the committed predictions."""
    from repro.evaluation import evaluate
    index, noise = load_index(), {}
    for name, entry in index["configs"].items():
        gold = json.loads(Path(entry["predictions"]).read_text())
        for variant in [*IN_PROCESS_VARIANTS, "isa_avx2"]:
            with tempfile.TemporaryDirectory(prefix="repro-noise-") as tmp:
                new = (_isa_results(params, name, data_root, tmp) if variant == "isa_avx2"
                       else _variant_results(params, name, data_root, variant, tmp))
                stats = json.loads((Path(tmp) / "metrics.json").read_text())
            d = golden.diff(gold, new, tol["keypoint_px"], tol["score_abs"])
            d["stats_max_abs"] = max(abs(stats[s] - entry["stats"][s]) for s in evaluate.STAT_NAMES)
            noise.setdefault(name, {})[variant] = d
            print(f"{name} {variant}: stats max |delta| {d['stats_max_abs']:.2e}; {golden.render(d)}", end="")
    return noise


def main(argv=None) -> int:
    """`repro reference`: make (train or copy), or measure the noise of, the committed smoke reference."""
    p = argparse.ArgumentParser(prog="repro reference", description=main.__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--from-checkpoints", nargs="+", metavar="PTH", help="one per config, in params order")
    p.add_argument("--measure-noise", action="store_true", help="record the op-order noise in smoke.json")
    p.add_argument("--eval-only", metavar="CONFIG", help=argparse.SUPPRESS)   # the ISA-limited subprocess
    p.add_argument("--data-root", default=str(SCRATCH))
    p.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    command = "repro reference " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.eval_only:
        _variant_results(args.params, args.eval_only, args.data_root, "isa", args.out_dir)
        return 0
    names = list(config.read_params(args.params)["configs"])
    if args.from_checkpoints and len(args.from_checkpoints) != len(names):
        p.error(f"--from-checkpoints: need one checkpoint per config {names}")
    missing = [c for c in args.from_checkpoints or [] if not Path(c).is_file()]
    if missing:
        p.error(f"--from-checkpoints: no such file: {', '.join(missing)}")
    if args.measure_noise:
        index = load_index()
        if index is None:
            p.error(f"{INDEX} does not exist: make the reference first")
        generate_val(eval_config(args.params, names[0], args.data_root), args.data_root)
        index["noise"] = measure_noise(args.params, args.data_root, config.published()["tolerances"]["E"])
        atomic.write_json(INDEX, index)
        return 0
    if args.from_checkpoints:
        generate_val(eval_config(args.params, names[0], args.data_root), args.data_root)
        write_reference(args.params, dict(zip(names, args.from_checkpoints)), args.data_root, command)
    else:
        train_references(args.params, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
