"""Convolutional Pose Machines, laid out exactly as mmpose's `CPM` backbone (spec §1).

The module tree reproduces mmpose's state-dict keys (`stem.0.conv.weight`, `cpm_stages.0.model.1.bn.bias`,
...), so a published checkpoint loads after stripping its `backbone.` prefix and nothing is renamed.
With default arguments this is the published network: 216 state-dict entries, 31,304,166 parameters.
"""
import torch
from torch import nn

from repro.config import CPMConfig   # pure config, lives in the torch-free repro.config


class ConvModule(nn.Module):
    """mmcv ConvModule: conv -> BN -> ReLU, or a plain biased conv when `norm_act` is False."""

    def __init__(self, cin: int, cout: int, kernel: int, norm_act: bool = True):
        super().__init__()
        # mmcv bias='auto': a conv followed by BN has no bias.
        self.conv = nn.Conv2d(cin, cout, kernel, padding=(kernel - 1) // 2, bias=not norm_act)
        self.bn = nn.BatchNorm2d(cout) if norm_act else None
        self.activate = nn.ReLU(inplace=True) if norm_act else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.activate(self.bn(x))
        return x


def _max_pool():
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)  # output size ceil(n / 2)


def _image_features(cin: int, feat: int) -> list:
    """The three 9x9 convs with max-pools that both `stem` and `middle` start with (stride 8)."""
    return [ConvModule(cin, feat, 9), _max_pool(), ConvModule(feat, feat, 9), _max_pool(),
            ConvModule(feat, feat, 9), _max_pool()]


class CpmBlock(nn.Module):
    """One refinement stage: three 11x11 CBRs on [previous heatmaps, image features]."""

    def __init__(self, cin: int, feat: int):
        super().__init__()
        self.model = nn.Sequential(ConvModule(cin, feat, 11), ConvModule(feat, feat, 11),
                                   ConvModule(feat, feat, 11))

    def forward(self, x):
        return self.model(x)


class CPM(nn.Module):
    """CPM backbone; `forward` returns one (N, K, H/8, W/8) heatmap tensor per stage."""

    def __init__(self, cfg: CPMConfig = CPMConfig()):
        super().__init__()
        self.cfg = cfg
        k, feat, mid, wide = cfg.num_keypoints, cfg.feat_channels, cfg.middle_channels, cfg.stem_channels
        self.stem = nn.Sequential(*_image_features(cfg.in_channels, feat), ConvModule(feat, mid, 5),
                                  ConvModule(mid, wide, 9), ConvModule(wide, wide, 1),
                                  ConvModule(wide, k, 1, norm_act=False))
        self.middle = nn.Sequential(*_image_features(cfg.in_channels, feat))
        refinements = range(cfg.num_stages - 1)
        self.cpm_stages = nn.ModuleList(CpmBlock(k + mid, feat) for _ in refinements)
        self.middle_conv = nn.ModuleList(nn.Sequential(ConvModule(feat, mid, 5)) for _ in refinements)
        self.out_convs = nn.ModuleList(
            nn.Sequential(ConvModule(feat, feat, 1), ConvModule(feat, k, 1, norm_act=False))
            for _ in refinements)
        self.init_weights()

    def init_weights(self):
        """Published init (spec §3): conv weights N(0, 0.001), conv biases 0, BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list:
        heatmaps = [self.stem(x)]                       # (N, K, H/8, W/8), linear output
        features = self.middle(x)                       # (N, feat, H/8, W/8), computed once
        for stage, middle_conv, out_conv in zip(self.cpm_stages, self.middle_conv, self.out_convs):
            # Order matters for the published weights: previous heatmaps first, then image features.
            z = torch.cat([heatmaps[-1], middle_conv(features)], dim=1)   # (N, K + mid, H/8, W/8)
            heatmaps.append(out_conv(stage(z)))
        return heatmaps


def build_cpm(cfg: CPMConfig = CPMConfig()) -> CPM:
    return CPM(cfg)
