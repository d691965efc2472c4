"""What arithmetic a run uses on its device, decided once from the config and the device's facts, then set.

    s = settings(cfg.train, device_type, tf32_capable(device_type))   # a pure decision (unit-tested on CPU)
    apply(s)                                                           # sets torch.backends explicitly
    s.precision                                                        # "fp32" | "tf32" | "bf16" | "fp16"

Why explicit: PyTorch's default lets cuDNN convolutions run in TF32 on Ampere and later (10-bit mantissa)
while matmuls stay fp32, so `amp: none` on an A100/H100 is not the published runs' fp32 (2020, V100). The
published value of train.allow_tf32 is false; true makes the run open and is recorded as "tf32".
cudnn.benchmark picks the fastest convolution algorithms; it is off when deterministic is set, because its
choice can differ between runs.
"""
from dataclasses import dataclass

from repro import machine


@dataclass(frozen=True)
class Settings:
    cudnn_allow_tf32: bool
    matmul_allow_tf32: bool
    cudnn_benchmark: bool
    precision: str   # what the convolutions and matmuls of an amp-less step compute in, or the amp dtype


def tf32_capable(device_type: str) -> bool:
    """A CUDA device of compute capability 8.0 (Ampere) or later: the ones with TF32 tensor cores."""
    if device_type != "cuda":
        return False
    import torch
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


def settings(train_cfg, device_type: str, has_tf32: bool) -> Settings:
    """The backend settings for `train_cfg` (allow_tf32, amp resolved, deterministic) on this device."""
    tf32 = bool(train_cfg.allow_tf32) and device_type == "cuda"
    amp = machine.resolve_amp(train_cfg.amp, device_type)
    if amp != "none":
        name = machine.precision_name(amp)
    else:
        name = "tf32" if tf32 and has_tf32 else "fp32"
    return Settings(cudnn_allow_tf32=tf32, matmul_allow_tf32=tf32,
                    cudnn_benchmark=device_type == "cuda" and not train_cfg.deterministic, precision=name)


def apply(s: Settings) -> None:
    """Set the backend flags (every one, so nothing rides on PyTorch's defaults)."""
    import torch
    torch.backends.cudnn.allow_tf32 = s.cudnn_allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = s.matmul_allow_tf32
    torch.backends.cudnn.benchmark = s.cudnn_benchmark
