"""What this machine is: its CPU, whether it computes bf16 natively, what `amp: auto` resolves to, and the
platform fingerprint that decides whether the same seed must reproduce the same floats.

    machine.native_bf16("cpu")            # True on x86 with avx512_bf16 or amx_bf16, arm64 with bf16
    cfg = machine.resolve_precision(cfg)  # train.amp / eval.amp "auto" -> "bf16" or "none"
    machine.fingerprint()                 # {"torch", "numpy", "arch", "cpu_isa", "cpu_model", "bf16"}

Why `auto` exists: PyTorch runs bf16 autocast on any CPU, but without native bf16 instructions it emulates
them, and the smoke training step went from 1.0 s in fp32 to 13.6 s in bf16 on an AVX2-only EPYC.
"""
import dataclasses
import platform
from pathlib import Path

AUTO = "auto"
CPUINFO = Path("/proc/cpuinfo")
# x86: AVX512_BF16 (Cooper Lake, Zen 4 and later) or AMX (Sapphire Rapids); arm64: FEAT_BF16.
_X86_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
_ARM_BF16_FEATURES = {"bf16"}


def _cpuinfo_text() -> str:
    try:
        return CPUINFO.read_text()
    except OSError:
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name ("AMD EPYC 9R14 96-Core Processor"), or the best platform guess."""
    for line in (_cpuinfo_text() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine()


def cpu_features(cpuinfo: str | None = None) -> set:
    """The instruction-set flags of the first CPU listed (x86 `flags`, arm64 `Features`)."""
    for line in (_cpuinfo_text() if cpuinfo is None else cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def native_bf16_cpu(cpuinfo: str | None = None) -> bool:
    """True when the CPU has bf16 instructions (no emulation under torch.autocast)."""
    return bool(cpu_features(cpuinfo) & (_X86_BF16_FLAGS | _ARM_BF16_FEATURES))


def native_bf16(device_type: str) -> bool:
    """Native bf16 on this device type ("cpu" or "cuda")."""
    if device_type == "cuda":
        import torch
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return native_bf16_cpu()


def default_device_type() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def autocast_dtype(amp: str):
    """The torch dtype autocast runs in for an amp mode: bfloat16 ("bf16"), float16 ("fp16"), None (fp32)."""
    import torch   # here: the gates read this module without needing torch
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)


def resolve_amp(mode: str, device_type: str) -> str:
    """"auto" -> "bf16" where bf16 is native on `device_type`, else "none" (fp32); other modes unchanged."""
    if mode != AUTO:
        return mode
    return "bf16" if native_bf16(device_type) else "none"


def resolve_precision(cfg, device_type: str | None = None):
    """`cfg` (a RunConfig) with train.amp and eval.amp resolved for `device_type` (default: CUDA if present).

    Everything downstream (checkpoint meta, MLflow params, recipe diff, metrics) then records the precision
    that actually ran.
    """
    device_type = device_type or default_device_type()
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, amp=resolve_amp(cfg.train.amp, device_type)),
        eval=dataclasses.replace(cfg.eval, amp=resolve_amp(cfg.eval.amp, device_type)))


def precision_name(amp: str) -> str:
    """The arithmetic an amp mode means: "none" -> "fp32", "bf16", "fp16"."""
    return "fp32" if amp == "none" else amp


def fingerprint() -> dict:
    """What decides whether the same seed reproduces the same floats: library versions, CPU model and ISA.

    `bf16` says whether this CPU computes bf16 natively ("native") or torch emulates it ("emulated");
    `threads` is torch's intra-op thread count, which changes how float sums are split and so the last bits.
    """
    import numpy as np
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__, "arch": platform.machine(),
            "cpu_isa": torch.backends.cpu.get_cpu_capability(), "cpu_model": cpu_model(),
            "bf16": "native" if native_bf16_cpu() else "emulated", "threads": torch.get_num_threads()}
