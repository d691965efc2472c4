"""`repro plan --gpu` for real GPUs: the derived V100/A100/H100 rows of repro/throughput.yaml follow their rule
(dense peak x 40% / FLOP per sample counted by torch.utils.flop_counter), and the full recipe is planned on 8."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from repro.model import build_cpm
from repro.report import plan

PEAK_TFLOPS = {"v100": 15.7, "a100": 19.5, "a100-tf32": 156.0, "a100-bf16": 312.0, "h100": 67.0,
               "h100-tf32": 494.7, "h100-bf16": 989.4}


def flops(w: int, h: int) -> tuple[float, float]:
    """(forward, forward + backward) FLOP of one sample of the published CPM, on meta tensors (no compute)."""
    model = build_cpm().to("meta")
    x = torch.empty(1, 3, h, w, device="meta")
    with FlopCounterMode(display=False) as fwd:
        model(x)
    with FlopCounterMode(display=False) as both:
        sum(o.sum() for o in model(x)).backward()
    return fwd.get_total_flops(), both.get_total_flops()


@pytest.mark.parametrize("size, wh", [("256x192", (192, 256)), ("384x288", (288, 384))])
def test_derived_rows_follow_the_flop_rule(size, wh):
    fwd, both = flops(*wh)
    devices = plan.read_table()["devices"]
    for gpu, peak in PEAK_TFLOPS.items():
        row = devices[gpu]
        assert row["train_kind"] == row["infer_kind"] == "derived"
        assert row["train"][size] == pytest.approx(peak * 1e12 * 0.4 / both, abs=0.006)
        assert row["infer"][size] == pytest.approx(peak * 1e12 * 0.4 / fwd, abs=0.006)


def test_full_recipe_on_8_h100_in_tf32():
    p = plan.make_plan("params.yaml", "full", gpu="h100-tf32", nproc=8)
    train = {s["stage"]: s for s in p["stages"]}["train@256x192"]
    assert p["world_size"] == 8 and train["devices"] == 8
    iters = 210 * -(-(-(-149813 // 8)) // 64)   # ceil(ceil(instances / 8) / 64) per epoch
    assert train["seconds"] > iters * 64 / 525.85   # the steps alone; validations add to it
    assert train["device_hours"] == pytest.approx(train["seconds"] * 8 / 3600, abs=1e-3)
    assert 2.0 < train["seconds"] / 3600 < 2.3   # the compute-bound 2.1 h
