"""How long scripts/env.sh takes to build .venv from constraints.txt on a fresh clone of this checkout.

    .venv/bin/python benchmarks/bench_setup.py             # uv cold and warm cache, pip warm cache
    .venv/bin/python benchmarks/bench_setup.py --no-pip    # uv only

Variants, in the same run (so their ratios compare):
    uv-cold   an empty uv cache and no uv yet: includes bootstrapping uv from PyPI
    uv-warm   .venv removed, the uv cache from uv-cold kept (the README's "about a minute")
    pip-warm  REPRO_INSTALLER=pip with this user's pip cache: the fallback, and what env.sh did before
Package downloads come from wherever pip's configuration points (on some machines local wheel directories,
where "cold" downloads little): the markdown says which indexes were used. Writes
reports/benchmarks/setup_cpu.{json,md}.
"""
import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from repro import atomic, machine  # noqa: E402

BUDGET_S = 60   # issue 26: set-up in about a minute with a warm package cache


def clone(dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    return dest


def setup_seconds(project: Path, env: dict) -> float:
    """Wall time of sourcing scripts/env.sh in `project` (which builds .venv), after removing any .venv."""
    shutil.rmtree(project / ".venv", ignore_errors=True)
    start = time.monotonic()
    done = subprocess.run(["bash", "-c", "source scripts/env.sh"], cwd=project, env=env,
                          capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"env.sh failed in {project}:\n{done.stderr[-3000:]}")
    return seconds


def installed_torch(project: Path) -> str:
    return subprocess.run([str(project / ".venv/bin/python"), "-c", "import torch; print(torch.__version__)"],
                          check=True, capture_output=True, text=True).stdout.strip()


def markdown(result: dict) -> str:
    lines = ["# Set-up: scripts/env.sh builds .venv on a fresh clone\n",
             "| variant | seconds | torch installed |", "|---|---|---|"]
    lines += [f"| {r['variant']} | {r['seconds']} | {r['torch']} |" for r in result["variants"]]
    lines += ["", f"Budget (issue 26): about {result['budget_s']} s with a warm package cache.",
              f"pip configuration handed to uv: `{result['pip_config']}`.",
              "Set-up is downloads, file copies and compiling bytecode (Python, not vector kernels), so no "
              "AVX2 emulation factor applies; the disk, network and core speed do differ between machines: "
              "pip took 205 s on a real 2-core EPYC without AVX-512 (issue 26).",
              f"Machine: {result['machine']['cpu_model']}, ISA {result['machine']['cpu_isa']}, "
              f"{os.cpu_count()} cores, {result['date']}.",
              "", "Written by benchmarks/bench_setup.py."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-pip", action="store_true", help="skip the pip fallback (minutes)")
    parser.add_argument("--out", default=str(REPO / "reports/benchmarks/setup_cpu"))
    args = parser.parse_args(argv)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_", "REPRO_"))}
    base["PATH"] = os.pathsep.join(p for p in base["PATH"].split(os.pathsep) if "/.venv/" not in p + "/")
    variants = []
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as scratch:
        scratch = Path(scratch)
        project = clone(scratch / "clone")
        uv_env = dict(base, UV_CACHE_DIR=str(scratch / "uv-cache"), REPRO_TOOLS=str(scratch / "tools"))
        runs = [("uv-cold", uv_env), ("uv-warm", uv_env)]
        if not args.no_pip:
            runs.append(("pip-warm", dict(base, REPRO_INSTALLER="pip")))
        for name, env in runs:
            seconds = setup_seconds(project, env)
            variants.append({"variant": name, "seconds": round(seconds, 1), "torch": installed_torch(project)})
            print(variants[-1], flush=True)
    pip_config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                                text=True).stdout.strip().replace("\n", "; ")
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine.fingerprint(), "variants": variants, "budget_s": BUDGET_S,
              "pip_config": pip_config}
    atomic.write_json(f"{args.out}.json", result)
    atomic.write_text(f"{args.out}.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
