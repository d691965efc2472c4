"""Where the default pipeline's time goes: each `dvc repro` stage of the smoke profile run on its own, timed,
on a fresh copy of this checkout, plus the bare import time of each stage module (the start-up every stage
pays before any work).

    .venv/bin/python benchmarks/bench_stages.py

Runs fp32 as on a CPU without AVX-512; on a CPU with AVX-512 with the kernels capped at AVX2 (bench_pipeline's
avx2-fp32 variant) and every time also given x the pipeline's measured correction (benchmarks/cpu_kind.py).
Writes reports/benchmarks/stages_cpu.{json,md}.
"""
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import cpu_kind  # noqa: E402
from bench_pipeline import AVX2_ENV, fresh_copy, set_amp  # noqa: E402
from repro import atomic, machine  # noqa: E402

MODULES = ["stages.data", "stages.plan", "stages.train", "stages.evaluate", "stages.compare"]


def run(cmd, cwd, env) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - start, done.stdout + done.stderr


def markdown(result: dict) -> str:
    factor, total = result["factor"], result["total_s"]
    basis = (f"emulated (AVX2-capped, fp32) x {factor}, the measured correction" if result["avx512"]
             else "measured (this CPU has no AVX-512)")
    lines = ["# The default pipeline, stage by stage (smoke profile, fp32)\n",
             f"Times here and on a 2-core CPU without AVX-512 ({basis}).", "",
             "| stage | s here | s without AVX-512 | share |", "|---|---|---|---|"]
    lines += [f"| {s['stage']} | {s['seconds']} | {round(s['seconds'] * factor, 1)} | "
              f"{100 * s['seconds'] / total:.0f}% |" for s in result["stages"]]
    lines += [f"| all | {round(total, 1)} | {round(total * factor, 1)} | 100% |", "",
              "Start-up: `python -c 'import <module>'` (each stage pays this before any work):", "",
              "| module | s here | s without AVX-512 |", "|---|---|---|"]
    lines += [f"| {i['module']} | {i['seconds']} | {round(i['seconds'] * factor, 1)} |" for i in result["imports"]]
    lines += ["", f"Machine: {result['machine']['cpu_model']}, {os.cpu_count()} cores, {result['date']}. The "
              "machine may be shared: compare shares within this table, not with other runs.", "",
              "Written by benchmarks/bench_stages.py."]
    return "\n".join(lines) + "\n"


def main() -> None:
    avx512 = cpu_kind.has_avx512()
    factor = cpu_kind.CORRECTION["pipeline"] if avx512 else 1.0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REPRO_", "VIRTUAL_ENV"))}
    env.update(AVX2_ENV if avx512 else {}, DVC_NO_ANALYTICS="1")
    env["PATH"] = f"{REPO / '.venv/bin'}{os.pathsep}{env['PATH']}"
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as scratch:
        project = fresh_copy(Path(scratch) / "repo")
        set_amp(project, "none")
        if not (project / ".dvc").is_dir():   # as scripts/repro.sh does
            run(["dvc", "init", "-q"], project, env)
        # dvc.yaml's order is a topological one (`--dry` cannot plan stages whose inputs do not exist yet)
        order = run(["dvc", "stage", "list", "--name-only"], project, env)[1].split()
        stages = [{"stage": s, "seconds": round(run(["dvc", "repro", "--single-item", s], project, env)[0], 1)}
                  for s in order]
        imports = [{"module": m, "seconds": round(run([str(REPO / ".venv/bin/python"), "-c", f"import {m}"],
                                                      project, env)[0], 2)} for m in MODULES]
    total = sum(s["seconds"] for s in stages)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine.fingerprint(), "avx512": avx512, "env": AVX2_ENV if avx512 else {},
              "factor": factor, "stages": stages, "imports": imports, "total_s": round(total, 1)}
    text = markdown(result)
    atomic.write_json(REPO / "reports/benchmarks/stages_cpu.json", result)
    atomic.write_text(REPO / "reports/benchmarks/stages_cpu.md", text)
    print(text)


if __name__ == "__main__":
    main()
