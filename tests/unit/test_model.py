"""CPM model: published key layout, parameter count, output shapes, wiring and init (spec §1).

The expected layout is written out from the spec §1.4 table with literal numbers, not derived from the
model or CPMConfig, so a wrong width or a missing BN in model.py cannot hide behind the reference.
Run: .venv/bin/python -m pytest tests/unit/test_model.py
"""
import pytest
import torch
from torch import nn

from repro.model import CPM, CPMConfig, build_cpm

NARROW = CPMConfig(feat_channels=16, middle_channels=8, stem_channels=64, num_stages=3)


def _cbr(prefix, cin, cout, k):
    """Conv (no bias) + BN: 6 state-dict entries."""
    return {f"{prefix}.conv.weight": (cout, cin, k, k),
            **{f"{prefix}.bn.{n}": (cout,) for n in ("weight", "bias", "running_mean", "running_var")},
            f"{prefix}.bn.num_batches_tracked": ()}


def _conv(prefix, cin, cout):
    """Linear 1x1 conv with bias: 2 entries."""
    return {f"{prefix}.conv.weight": (cout, cin, 1, 1), f"{prefix}.conv.bias": (cout,)}


def _published_layout() -> dict:
    """Spec §1.2 / §1.4 table, without the `backbone.` prefix."""
    layout = {**_cbr("stem.0", 3, 128, 9), **_cbr("stem.2", 128, 128, 9), **_cbr("stem.4", 128, 128, 9),
              **_cbr("stem.6", 128, 32, 5), **_cbr("stem.7", 32, 512, 9), **_cbr("stem.8", 512, 512, 1),
              **_conv("stem.9", 512, 17),
              **_cbr("middle.0", 3, 128, 9), **_cbr("middle.2", 128, 128, 9), **_cbr("middle.4", 128, 128, 9)}
    for i in range(5):
        layout.update({**_cbr(f"middle_conv.{i}.0", 128, 32, 5),
                       **_cbr(f"cpm_stages.{i}.model.0", 49, 128, 11),
                       **_cbr(f"cpm_stages.{i}.model.1", 128, 128, 11),
                       **_cbr(f"cpm_stages.{i}.model.2", 128, 128, 11),
                       **_cbr(f"out_convs.{i}.0", 128, 128, 1),
                       **_conv(f"out_convs.{i}.1", 128, 17)})
    return layout


@pytest.fixture(scope="module")
def published():
    torch.manual_seed(0)
    return build_cpm()


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_state_dict_matches_published_layout(published):
    expected = _published_layout()
    assert len(expected) == 216
    actual = {k: tuple(v.shape) for k, v in published.state_dict().items()}
    assert sorted(set(actual) - set(expected)) == [] and sorted(set(expected) - set(actual)) == []
    assert actual == expected
    tracked = [v for k, v in published.state_dict().items() if k.endswith("num_batches_tracked")]
    assert len(tracked) == 34 and all(t.dtype == torch.int64 for t in tracked)


def test_parameter_count_matches_published(published):
    assert _params(published) == 31_304_166
    # Per-part counts from the spec §1.4 table.
    assert _params(published.stem) == 4_388_561
    assert _params(published.middle) == 2_686_080
    stage0 = (_params(published.middle_conv[0]) + _params(published.cpm_stages[0])
              + _params(published.out_convs[0]))
    assert stage0 == 4_845_905


def test_only_the_two_linear_convs_have_bias_and_no_bn(published):
    biased = sorted(n for n, m in published.named_modules() if isinstance(m, nn.Conv2d) and m.bias is not None)
    assert biased == ["out_convs.0.1.conv", "out_convs.1.1.conv", "out_convs.2.1.conv", "out_convs.3.1.conv",
                      "out_convs.4.1.conv", "stem.9.conv"]
    pools = [m for m in published.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 6
    assert all((p.kernel_size, p.stride, p.padding, p.ceil_mode) == (3, 2, 1, False) for p in pools)


@pytest.mark.parametrize("size,heatmap", [((256, 192), (32, 24)), ((384, 288), (48, 36))],
                         ids=["256x192", "384x288"])
def test_published_network_outputs_six_heatmaps_at_stride_8(published, size, heatmap):
    with torch.inference_mode():
        outs = published.eval()(torch.randn(1, 3, *size))
    assert len(outs) == 6
    assert all(o.shape == (1, 17, *heatmap) for o in outs)


@pytest.mark.parametrize("size,heatmap", [((256, 192), (32, 24)), ((384, 288), (48, 36)),
                                          ((33, 17), (5, 3))], ids=["256x192", "384x288", "odd-33x17"])
def test_narrow_config_outputs_one_heatmap_per_stage(size, heatmap):
    # The odd size checks max-pool k3/s2/p1: each pool gives ceil(n / 2), 33 -> 17 -> 9 -> 5.
    model = build_cpm(NARROW)
    outs = model(torch.randn(2, 3, *size))
    assert len(outs) == 3
    assert all(o.shape == (2, 17, *heatmap) for o in outs)
    sum(o.square().mean() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_stage_input_is_previous_heatmaps_then_image_features():
    torch.manual_seed(0)
    model = build_cpm(NARROW).eval()
    for m in model.modules():  # make the default tiny weights produce distinguishable activations
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.3)
    seen = []
    model.cpm_stages[1].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    x = torch.randn(1, 3, 64, 48)
    with torch.inference_mode():
        outs = model(x)
        middle = model.middle_conv[1](model.middle(x))
    (z,) = seen
    assert z.shape[1] == 17 + 8
    assert torch.equal(z[:, :17], outs[1])   # heatmaps of the previous stage first
    assert torch.equal(z[:, 17:], middle)    # then this stage's own features from `middle`
    assert all((o < 0).any() for o in outs)  # linear outputs: no ReLU after the last conv


def test_init_follows_published_recipe(published):
    convs = [m for m in published.modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    assert weights.numel() > 30_000_000
    assert abs(weights.mean().item()) < 1e-6
    assert weights.std().item() == pytest.approx(0.001, rel=0.01)
    big = published.cpm_stages[0].model[1].conv.weight  # 1.98 M draws on its own
    assert big.std().item() == pytest.approx(0.001, rel=0.01)
    assert all(torch.all(m.bias == 0) for m in convs if m.bias is not None)
    for bn in (m for m in published.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
        assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
        assert (bn.eps, bn.momentum) == (1e-5, 0.1)


def test_default_config_is_the_published_network():
    assert CPMConfig() == CPMConfig(in_channels=3, num_keypoints=17, feat_channels=128, middle_channels=32,
                                    stem_channels=512, num_stages=6)
    assert isinstance(build_cpm(), CPM)
