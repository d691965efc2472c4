"""The planted training regressions (tests/gates/test_planted_regressions.py) fine-tuned in fp32 with PyTorch's
and oneDNN's kernels capped at AVX2: the code path of a CPU without AVX-512 (where `amp: auto` trains fp32),
run on this one, so the tier-S bands' power on that kind of CPU is measured, not assumed. Not a timing.

    .venv/bin/python benchmarks/plants_fp32_avx2.py      # about 7 minutes on 2 cores

Needs data/smoke (any `scripts/repro.sh` run). Writes reports/benchmarks/plants_fp32_avx2.json: per plant the
fine-tuned AP and the stats outside their band (the exact-seed row left out, as in the test).
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_pipeline import AVX2_ENV  # noqa: E402


def measure(out: Path) -> None:
    import pytest

    from repro import atomic, config
    from repro.report import checks
    from tests.gates import test_planted_regressions as planted
    inputs = checks.load_inputs(REPO / "reports/metrics", config.PUBLISHED_PATH, REPO / "reports/baselines/smoke.json")
    results = {}
    for name, (overrides, patch) in {"none (correct code)": (None, None), **planted.PLANTS}.items():
        monkeypatch = pytest.MonkeyPatch()
        if patch:
            patch(monkeypatch)
        with tempfile.TemporaryDirectory() as work:
            metrics = planted.fine_tune(Path(work), REPO / "data/smoke",
                                        {**(overrides or {}), "profiles.smoke.train.amp": "none"})
            (Path(work) / "metrics").mkdir()
            rows = planted.tier_s(inputs, metrics, Path(work) / "metrics")
        monkeypatch.undo()
        results[name] = {"AP": metrics["AP"], "band_failures": planted.band_failures(rows)}
        print(name, round(metrics["AP"], 4), results[name]["band_failures"], flush=True)
    atomic.write_json(out, {"env": AVX2_ENV, "precision": "fp32", "config": planted.NAME, "plants": results})


if __name__ == "__main__":
    if os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":   # the caps must be set before torch loads
        sys.exit(subprocess.run([sys.executable, __file__], env={**os.environ, **AVX2_ENV}).returncode)
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    measure(REPO / "reports/benchmarks/plants_fp32_avx2.json")
