"""benchmarks/cpu_kind.py: measured where the CPU has no AVX-512, else emulated x the measured correction."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import cpu_kind  # noqa: E402


def test_avx512_is_read_from_the_flags_line(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("model name\t: AMD EPYC avx512 in the name\nflags\t\t: fpu sse avx2 fma\n")
    assert not cpu_kind.has_avx512(path)
    path.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_kind.has_avx512(path)


def test_without_avx512_the_measured_time_is_the_answer():
    out = cpu_kind.avx2_time("pipeline", 500.0, 300.0, avx512=False)
    assert out["seconds"] == 500.0 and out["basis"].startswith("measured")


def test_with_avx512_the_emulated_time_is_corrected():
    out = cpu_kind.avx2_time("suite", 600.0, 1000.0, avx512=True)
    assert out["seconds"] == 1000.0 * cpu_kind.CORRECTION["suite"] and out["basis"].startswith("emulated")
    assert cpu_kind.avx2_time("suite", 600.0, None, avx512=True)["seconds"] is None


def test_the_corrections_are_the_measured_ratios():
    assert cpu_kind.CORRECTION == {"pipeline": 2.35, "suite": 2.38}


def test_the_anchored_estimate_scales_the_real_time_by_the_ratio_measured_side_by_side():
    for what in ("pipeline", "suite"):
        commit, real = cpu_kind.ANCHORS[what]
        out = cpu_kind.anchored_time(what, 260.0, 520.0)
        assert out["seconds"] == round(real / 2, 1) and out["ratio"] == 0.5 and commit in out["basis"]
