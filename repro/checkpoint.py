"""One checkpoint format, one save/load pair: mmpose's published layout plus our resume state.

    ckpt = load_checkpoint("cpm_coco_256x192-aa4ba095_20200817.pth", model)     # published weights
    save_checkpoint("models/256x192/last.pth", model, meta={"config": cfg.to_dict()},
                    optimizer=opt, lr_scheduler=sched, scaler=scaler, epoch=e, iter=i,
                    rng=capture_rng_state())
    ckpt = load_checkpoint("models/256x192/last.pth", model, optimizer=opt, lr_scheduler=sched,
                           scaler=scaler)                                        # resume
    restore_rng_state(ckpt["rng"]); start_epoch = ckpt["epoch"] + 1

File layout (spec §1.5): a dict with `state_dict` (every key prefixed `backbone.`) and `meta`. mmpose's
`publish_model` keeps exactly these two; our training files add `optimizer`, `lr_scheduler`, `scaler`,
`epoch`, `iter` and `rng`. Everything is tensors and plain Python values, so every file loads with
`torch.load(..., weights_only=True)`: loading never runs code stored in a file.

Wrappers: `module.` (DDP/DataParallel) and `_orig_mod.` (torch.compile) prefixes are never stripped from
keys. mmpose files do not have them (mmcv unwraps DDP before saving), and we unwrap the model object on
save and load instead, so our files cannot have them either. A file that does carry them comes from some
other tool; it is refused with a hint rather than silently rewritten.
"""
import dataclasses
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

import repro
from repro import atomic, machine
from repro.errors import ReproError

PREFIX = "backbone."  # mmpose's TopdownPoseEstimator attribute holding the CPM backbone

# mmpose 1.x writes `meta["dataset_meta"]` with numpy arrays (sigmas, colours, weights). Unpickling
# those needs exactly these reconstructors; each is also named under numpy<2's `numpy.core` path,
# which is what files written before numpy 2 refer to. Nothing else is added to torch's allowlist.
_NUMPY_GLOBALS = [
    np.ndarray,
    np.dtype,
    (np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    np._core.multiarray._reconstruct,
    (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
    np._core.multiarray.scalar,
    # An unpickled dtype is an instance of its DType class (numpy >= 1.25), which must be allowed to be
    # built: the fixed-size bool/int/float/complex/str/bytes ones, not `object`.
    *(type(np.dtype(code)) for code in "?bhilqBHILQefdgFDGUS"),
]

# mmpose's BasePoseEstimator load hook drops these (spec §1.5); they are preprocessing, not weights.
_DROPPED_KEYS = ("data_preprocessor.mean", "data_preprocessor.std")


class CheckpointError(ReproError, RuntimeError):
    """A checkpoint file that cannot be used; the message names the file and what is wrong."""


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain CPM inside DDP / DataParallel / torch.compile wrappers (see module docstring)."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch._dynamo OptimizedModule
            model = model._orig_mod
        else:
            return model


def read_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint file safely (weights_only) and check its top-level layout.

    Args:
        path: the `.pth` file.
        map_location: passed to `torch.load`.

    Returns:
        The checkpoint dict; `state_dict` is a dict of tensors.

    Raises:
        CheckpointError: the file is unreadable, holds anything but tensors and plain data (e.g. pickled
            code or class instances), or is not a dict with a `state_dict` of tensors.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({e})") from None
        reason = next((line.strip() for line in str(e).splitlines()
                       if any(w in line for w in ("GLOBAL", "Can only build", "Unsupported"))), "")
        raise CheckpointError(f"{path}: refused, it holds more than tensors and plain data "
                              f"(pickled code or objects). {reason}") from None
    except Exception as e:  # legacy/garbage bytes, truncated zip, corrupt record
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        what = f"a dict with keys {sorted(map(str, ckpt))}" if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: expected a dict with 'state_dict' and 'meta' (mmpose layout), "
                              f"got {what}")
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'state_dict' must map names to tensors")
    return ckpt


def _listing(title: str, items: list, limit: int = 25) -> list:
    """`title (n):` then one item per line, at most `limit` of them."""
    more = [f"  ... and {len(items) - limit} more"] if len(items) > limit else []
    return [f"{title} ({len(items)}):"] + [f"  {item}" for item in items[:limit]] + more


def _mismatch_report(file_sd: dict, model_sd: dict) -> list:
    """Missing, unexpected and wrongly shaped keys, named as in the file (with `backbone.`), with shapes."""
    file_keys = {k for k in file_sd if k not in _DROPPED_KEYS}
    model_shape = {PREFIX + k: list(v.shape) for k, v in model_sd.items()}
    missing = sorted(set(model_shape) - file_keys)
    unexpected = sorted(file_keys - set(model_shape))
    wrong = sorted(k for k in file_keys & set(model_shape) if list(file_sd[k].shape) != model_shape[k])
    lines = []
    if missing:
        lines += _listing("missing", [f"{k} {model_shape[k]}" for k in missing])
    if unexpected:
        lines += _listing("unexpected", [f"{k} {list(file_sd[k].shape)}" for k in unexpected])
        if any(k.startswith(("module.", "_orig_mod.")) for k in unexpected):
            lines.append("hint: keys start with 'module.'/'_orig_mod.': the file was saved from a DDP or "
                         "torch.compile wrapper; save the unwrapped model instead")
    if wrong:
        lines += _listing("wrong shape", [f"{k} file {list(file_sd[k].shape)} model {model_shape[k]}"
                                          for k in wrong])
    return lines


def load_checkpoint(path, model: nn.Module, optimizer=None, lr_scheduler=None, scaler=None,
                    map_location="cpu") -> dict:
    """Load weights strictly into `model` and, if given, the optimizer / LR scheduler / scaler state.

    Args:
        path: an mmpose checkpoint (published or ours).
        model: the CPM (a DDP or compiled wrapper is unwrapped).
        optimizer, lr_scheduler, scaler: objects whose `load_state_dict` receives the saved state;
            the file must hold that state.
        map_location: passed to `torch.load`.

    Returns:
        The whole checkpoint dict (`meta`, `epoch`, `iter`, `rng`, ... as saved).

    Raises:
        CheckpointError: see `read_checkpoint`; or the keys/shapes do not match the model exactly (the
            message lists missing, unexpected and wrongly shaped keys); or a weight or BN buffer holds NaN
            or Inf; or requested state is absent.
    """
    ckpt = read_checkpoint(path, map_location)
    model = _unwrap(model)
    file_sd, model_sd = ckpt["state_dict"], model.state_dict()
    report = _mismatch_report(file_sd, model_sd)
    if report:
        raise CheckpointError(f"{path}: state_dict does not match the model:\n  " + "\n  ".join(report))
    check_finite(file_sd, path)
    model.load_state_dict({k[len(PREFIX):]: v for k, v in file_sd.items() if k not in _DROPPED_KEYS},
                          strict=True)
    for name, obj in (("optimizer", optimizer), ("lr_scheduler", lr_scheduler), ("scaler", scaler)):
        if obj is None:
            continue
        if name not in ckpt:
            raise CheckpointError(f"{path}: has no '{name}' state to resume from (a published file "
                                  f"holds weights only)")
        obj.load_state_dict(ckpt[name])
    return ckpt


def check_finite(state_dict: dict, path) -> None:
    """Refuse weights or BN buffers holding NaN or Inf (a diverged run would otherwise evaluate to AP 0).

    Raises:
        CheckpointError: naming the file and the first offending keys.
    """
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: non-finite values (NaN/Inf) in {len(bad)} tensor(s): "
                              f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")


# The parts of our resolved config that decide what the weights mean at test time.
MATCHED_SECTIONS = ("codec", "model")


def check_config(meta: dict, config: dict, path) -> None:
    """A training file's `meta.config` must match the config it is evaluated with (codec and model).

    The CPM weights load at any input size, so a 256x192 file evaluated as 384x288 would run silently;
    the config the training run stored says which it is. Published mmpose files carry no such meta and
    are matched by key and shape only.

    Raises:
        CheckpointError: naming the file and every differing dotted key.
    """
    saved = meta.get("config") if isinstance(meta, dict) else None
    if not isinstance(saved, dict):
        return
    diffs = [f"{s}.{k}: {saved.get(s, {}).get(k)!r} in the file, {v!r} here"
             for s in MATCHED_SECTIONS for k, v in config[s].items() if saved.get(s, {}).get(k) != v]
    if diffs:
        raise CheckpointError(f"{path}: trained with another config ({saved.get('name')!r}, here "
                              f"{config.get('name')!r}): {'; '.join(diffs)}")


def _to_plain(obj):
    """Dataclasses -> dicts, paths -> str, numpy scalars -> Python numbers. Anything else that is not
    plain data is left alone and refused by the weights_only check after writing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _to_plain(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_to_plain(v) for v in obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_checkpoint(path, model: nn.Module, meta: dict | None = None, *, optimizer=None,
                    lr_scheduler=None, scaler=None, epoch: int | None = None, iter: int | None = None,
                    rng: dict | None = None) -> Path:
    """Write `model` in mmpose's layout, plus optional resume state, atomically.

    The file is written to a temporary name in the same directory (repro.atomic: 0644, fsynced) and renamed
    over `path` only once complete and checked to be weights_only-loadable, so `path` never holds a
    partial file.

    Args:
        path: destination `.pth`; parent directories are created.
        model: the CPM (a DDP or compiled wrapper is unwrapped, so keys never get `module.`).
        meta: plain data (config dict, versions, ...); dataclasses and paths are converted.
        optimizer, lr_scheduler, scaler: saved through their `state_dict()`.
        epoch, iter: training progress (stored under these names, as mmcv does).
        rng: from `capture_rng_state()`.

    Returns:
        The written path.

    Raises:
        CheckpointError: some value is not loadable with weights_only (names the offending global).
    """
    path = Path(path)
    ckpt = {"meta": _to_plain({"repro_version": repro.__version__, **(meta or {})}),
            "state_dict": {PREFIX + k: v for k, v in _unwrap(model).state_dict().items()}}
    for name, obj in (("optimizer", optimizer), ("lr_scheduler", lr_scheduler), ("scaler", scaler)):
        if obj is not None:
            ckpt[name] = obj.state_dict()
    for name, value in (("epoch", epoch), ("iter", iter), ("rng", rng)):
        if value is not None:
            ckpt[name] = _to_plain(value)

    def refuse_unsafe(tmp: Path):
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(tmp)
        if unsafe:
            raise CheckpointError(f"{path}: not saved, these values would not load with weights_only: "
                                  f"{unsafe}; store plain data (dict/list/str/number) or tensors")

    atomic.write_file(path, lambda f: torch.save(ckpt, f), verify=refuse_unsafe)
    return path


def training_facts(path) -> dict:
    """What a checkpoint of ours says of its training, for the metrics record: `train_precision` ("fp32",
    "bf16", ...; from the resolved config in its meta) and `train_loss` (the mean training loss of the epoch
    that made it); None for what the file does not say (a published mmpose file, an older checkpoint)."""
    return training_facts_of(read_checkpoint(path)["meta"])


def training_facts_of(meta: dict) -> dict:
    """`training_facts` from a checkpoint's meta already read. Ours holds the resolved config as a dict; a
    published mmpose 0.x file holds the config's text there (spec §1.5), which says nothing we record."""
    saved = meta.get("config") if isinstance(meta, dict) else None
    amp = saved.get("train", {}).get("amp") if isinstance(saved, dict) else None
    return {"train_precision": None if amp is None else machine.precision_name(amp),
            "train_loss": ((meta.get("best") if isinstance(meta, dict) else None) or {}).get("train_loss")}


def capture_rng_state() -> dict:
    """Python, numpy (legacy global), torch CPU and CUDA generator states as tensors and plain data."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {**np_state, "state": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                                        "pos": int(np_state["state"]["pos"])}},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of `capture_rng_state`; CUDA states are restored only where CUDA is available."""
    random.setstate(_as_tuples(state["python"]))
    np_state = dict(state["numpy"])
    np_state["state"] = {"key": state["numpy"]["state"]["key"].numpy().astype(np.uint32),
                         "pos": state["numpy"]["state"]["pos"]}
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(x):
    # random.setstate needs tuples; they survive torch.save, this only guards against list round-trips.
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x
