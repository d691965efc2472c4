"""The precision decision (repro/engine/precision.py), a pure function of the config and the device's facts:
TF32 only when asked and recorded as tf32, cudnn.benchmark on CUDA unless deterministic, amp names kept."""
import dataclasses

import pytest
import torch

from repro import config, recipe
from repro.engine import precision


def train_cfg(**kw):
    return dataclasses.replace(config.load("params.yaml", "256x192", "full").train, **kw)


@pytest.mark.parametrize("allow, has_tf32, expected", [(False, True, "fp32"), (True, True, "tf32"),
                                                       (True, False, "fp32"), (False, False, "fp32")])
def test_tf32_is_set_explicitly_and_recorded(allow, has_tf32, expected):
    s = precision.settings(train_cfg(allow_tf32=allow), "cuda", has_tf32)
    assert s.cudnn_allow_tf32 is allow and s.matmul_allow_tf32 is allow   # cuDNN too: its default is on
    assert s.precision == expected


def test_published_recipe_is_true_fp32_and_benchmarked_on_a_gpu():
    s = precision.settings(train_cfg(), "cuda", True)
    assert (s.cudnn_allow_tf32, s.matmul_allow_tf32, s.cudnn_benchmark, s.precision) == (False, False, True, "fp32")


def test_deterministic_turns_cudnn_benchmark_off():
    assert not precision.settings(train_cfg(deterministic=True), "cuda", True).cudnn_benchmark


def test_cpu_never_uses_tf32_or_benchmark():
    s = precision.settings(train_cfg(allow_tf32=True), "cpu", False)
    assert (s.cudnn_allow_tf32, s.cudnn_benchmark, s.precision) == (False, False, "fp32")


@pytest.mark.parametrize("amp, name", [("bf16", "bf16"), ("fp16", "fp16")])
def test_amp_names_its_dtype_even_with_tf32(amp, name):
    assert precision.settings(train_cfg(amp=amp, allow_tf32=True), "cuda", True).precision == name


def test_apply_sets_every_flag():
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        precision.apply(precision.Settings(False, True, True, "tf32"))
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.benchmark) == (False, True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark = before


def test_allow_tf32_labels_the_run_open():
    cfg = config.load("params.yaml", "256x192", "full")
    fast = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, allow_tf32=True))
    assert recipe.recipe_diff(fast, 8) == [{"name": "train.allow_tf32", "published": False, "used": True}]
