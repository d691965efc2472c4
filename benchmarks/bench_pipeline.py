"""How long the README's main command takes, per CPU kind: `scripts/repro.sh` (dvc repro, smoke profile) on a
fresh copy of this checkout, then the no-op rerun.

    .venv/bin/python benchmarks/bench_pipeline.py                 # every variant this CPU can run
    .venv/bin/python benchmarks/bench_pipeline.py --variants native

Variants (all on this machine, in the same run, so their ratios are comparable):
    native     the default: `amp: auto` (bf16 here if the CPU has it natively)
    fp32       train.amp none: what `auto` resolves to on a CPU without native bf16
    avx2-fp32  fp32 with PyTorch's and oneDNN's kernels capped at AVX2 (ATEN_CPU_CAPABILITY=avx2,
               ONEDNN_MAX_CPU_ISA=AVX2): the code path of an AVX2-only CPU, run on this one
The other CPU kind cannot be run here, so its time is estimated: the smoke training step (batch 16, 256x192,
forward + backward + Adam) is timed in each variant, and the avx2-fp32 run's compute (the train and evaluate
stages' own wall times) is scaled by REFERENCE_AVX2_STEP_S / (that step here), the rest (process start-up, dvc,
data generation, reports) kept; scaling the whole run is given as the upper bound. REFERENCE_AVX2_STEP_S is the
step time measured on a 2-core AMD EPYC without AVX-512 (DEVELOPERS.md: 1.0 s in fp32, 13.6 s in emulated bf16).
Each variant also reports `repro plan`'s estimate beside the measured time of every stage (comparison.json).
Writes reports/benchmarks/pipeline_cpu.{json,md}.
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from repro import atomic, config, machine  # noqa: E402

REFERENCE_AVX2_STEP_S = 1.0
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"}
VARIANTS = {"native": ({}, None), "fp32": ({}, "none"), "avx2-fp32": (AVX2_ENV, "none")}
BUDGET_S = {"native bf16": 360, "no native bf16 (fp32)": 600}   # issue 10: scripts/repro.sh on 2 cores


def fresh_copy(dest: Path) -> Path:
    """What a clone holds (tracked and new unignored files) with this checkout's .venv linked in."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, names):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    (dest / ".venv").symlink_to(REPO / ".venv")
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def set_amp(project: Path, amp: str | None) -> None:
    if amp is None:
        return
    path = project / "params.yaml"
    text = path.read_text()
    marker = "      amp: auto "
    assert marker in text, "params.yaml: the smoke profile's train.amp line moved; update this benchmark"
    path.write_text(text.replace(marker, f"      amp: {amp} ", 1))


def timed(cmd, cwd, env) -> float:
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed in {cwd}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.monotonic() - start


STEP_SNIPPET = """
import time, torch
from repro import config, machine
from repro.engine import train
cfg = machine.resolve_precision(config.load("params.yaml", "256x192"), "cpu")
model = train.build_model(cfg, type("E", (), {"device": torch.device("cpu"), "world_size": 1})())
opt = train.build_optimizer(model, cfg.train)
step = train._step(cfg.train, torch.device("cpu"))
x = torch.randn(16, 3, 256, 192).contiguous(memory_format=torch.channels_last)
t, w = torch.rand(16, 17, 32, 24), torch.ones(16, 17)
times = []
for i in range(8):
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=step.amp_dtype, enabled=step.amp_dtype is not None):
        out = model(x)
    loss = train.heatmap_loss([h.float() for h in out], t, w)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - start)
print(sorted(times[2:])[len(times[2:]) // 2])
"""


def step_seconds(project: Path, env: dict) -> float:
    """Median time of one smoke training step (batch 16, 256x192) in `project`'s configuration."""
    out = subprocess.run([str(REPO / ".venv/bin/python"), "-c", STEP_SNIPPET], cwd=project, env=env,
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def run_variant(name: str, scratch: Path) -> dict:
    extra_env, amp = VARIANTS[name]
    project = fresh_copy(scratch / name)
    set_amp(project, amp)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REPRO_", "VIRTUAL_ENV"))}
    env.update(extra_env, DVC_NO_ANALYTICS="1")
    first = timed(["scripts/repro.sh"], project, env)
    second = timed(["scripts/repro.sh"], project, env)
    trained = {n: json.loads((project / f"models/{n}/metrics.json").read_text()) for n in ("256x192", "384x288")}
    comparison = json.loads((project / "reports/comparison.json").read_text())
    cost = comparison["cost"]
    return {"variant": name, "env": extra_env, "first_run_s": round(first, 1), "noop_rerun_s": round(second, 1),
            "train_wall_s": {n: m["wall_time_s"] for n, m in trained.items()},
            "compute_s": round(sum(r["actual_s"] or 0 for r in cost
                                   if r["stage"].startswith(("train", "evaluate"))), 1),
            "plan": cost, "precision": trained["256x192"]["precision"]["train"],
            "verdict": comparison["verdict"],   # a time is only worth reporting for a run that passes its gates
            "step_s": round(step_seconds(project, env), 3)}


def markdown(result: dict) -> str:
    lines = ["# The default pipeline (`scripts/repro.sh`, smoke profile) per CPU kind\n",
             "| variant | train precision | first run s | no-op rerun s | train 256x192 s | train 384x288 s |"
             " smoke step s | gate verdict |", "|---|---|---|---|---|---|---|---|"]
    for r in result["variants"]:
        lines.append(f"| {r['variant']} | {r['precision']} | {r['first_run_s']} | {r['noop_rerun_s']} | "
                     f"{r['train_wall_s']['256x192']} | {r['train_wall_s']['384x288']} | {r['step_s']} | "
                     f"{r['verdict']} |")
    lines += ["", "Estimated time on the other kind of CPU (2-core AMD EPYC without AVX-512, fp32):"]
    for key, value in result["estimates"].items():
        lines.append(f"- {key}: {value}")
    for r in result["variants"]:
        lines += ["", f"`repro plan`'s estimate beside the measured time, variant {r['variant']}:", "",
                  "| stage | estimate s | actual s | actual / estimate |", "|---|---|---|---|"]
        lines += [f"| {c['stage']} | {c['estimate_s']} | {c['actual_s']} | {c['ratio']} |" for c in r["plan"]]
    lines += ["", f"Budgets (issue 10): {result['budgets_s']}.",
              f"Machine: {result['machine']['cpu_model']}, bf16 {result['machine']['bf16']}, "
              f"torch {result['machine']['torch']}, {result['date']}.", "", "Written by benchmarks/bench_pipeline.py."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", default=str(REPO / "reports/benchmarks/pipeline_cpu"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        variants = [run_variant(v, Path(scratch)) for v in args.variants]
    by = {v["variant"]: v for v in variants}
    estimates = {}
    if "avx2-fp32" in by:
        avx2 = by["avx2-fp32"]
        scale = REFERENCE_AVX2_STEP_S / avx2["step_s"]
        estimates["scale (reference AVX2 step / avx2-fp32 step here)"] = round(scale, 2)
        estimates["first run, estimated s (compute scaled)"] = round(
            avx2["first_run_s"] + avx2["compute_s"] * (scale - 1), 1)
        estimates["first run, upper bound s (everything scaled)"] = round(avx2["first_run_s"] * scale, 1)
        estimates["no-op rerun, estimated s"] = round(avx2["noop_rerun_s"] * scale, 1)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine.fingerprint(), "profile": config.load(REPO / "params.yaml").profile,
              "variants": variants, "estimates": estimates, "budgets_s": BUDGET_S,
              "reference_avx2_step_s": REFERENCE_AVX2_STEP_S}
    atomic.write_json(f"{args.out}.json", result)
    atomic.write_text(f"{args.out}.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
