"""Checkpoint load/save: mmpose's published layout, strict keys, refusal of unsafe files, atomic resume.

Published-format files are written here the way mmpose's publish_model leaves them: a dict with
`state_dict` ({"backbone." + key: tensor}) and `meta`, saved with plain torch.save.
Run: .venv/bin/python -m pytest tests/unit/test_checkpoint.py
"""
import io
import os
import pickle
import random

import numpy as np
import pytest
import torch
from torch import nn

import repro.checkpoint as checkpoint
from repro.checkpoint import (CheckpointError, capture_rng_state, load_checkpoint, read_checkpoint,
                              restore_rng_state, save_checkpoint)
from repro.model import CPMConfig, build_cpm

NARROW = CPMConfig(feat_channels=16, middle_channels=8, stem_channels=64, num_stages=3)


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Weights and BN running stats unlike the init, so a load that drops anything shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.2 + (0.5 if "running_var" in name else -0.1))
            else:
                t.fill_(seed)
    return model.eval()


# What mmpose 0.x's tools/train.py and mmcv's save_checkpoint put in `meta` (spec §1.5): the config as its
# pretty text, not a dict, beside the versions, the epoch, the iteration and the time.
PUBLISHED_META = {"mmpose_version": "0.6.0", "config": "log_level = 'INFO'\nmodel = dict(type='TopDown', ...)\n",
                  "epoch": 210, "iter": 61320, "mmcv_version": "1.1.1", "time": "Mon Aug 17 05:20:43 2020"}


def _publish(path, model: nn.Module, meta=None, pickle_module=pickle, optimizer=None):
    """A file in mmpose's published layout (plus an `optimizer` entry, as an unpublished mmcv file has)."""
    state = {"backbone." + k: v for k, v in model.state_dict().items()}
    ckpt = {"state_dict": state, "meta": PUBLISHED_META if meta is None else meta}
    if optimizer is not None:
        ckpt["optimizer"] = optimizer
    torch.save(ckpt, path, pickle_module=pickle_module)
    return path


def test_published_network_file_loads_with_identical_outputs(tmp_path):
    source = _randomize(build_cpm(), seed=1)
    path = _publish(tmp_path / "cpm_coco_256x192.pth", source)
    target = build_cpm()
    ckpt = load_checkpoint(path, target)
    assert ckpt["meta"]["epoch"] == 210
    x = torch.randn(1, 3, 64, 48)
    with torch.inference_mode():
        expected, actual = source(x), target.eval()(x)
    assert len(actual) == 6 and all(torch.equal(a, e) for a, e in zip(actual, expected))
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k


class _LegacyNumpyPickler(pickle.Pickler):
    """Writes numpy globals under numpy<2's `numpy.core` path, as files saved before numpy 2 do."""

    def __init__(self, file, protocol=None):
        self._target, self._buffer = file, io.BytesIO()
        super().__init__(self._buffer, protocol)

    def dump(self, obj):
        super().dump(obj)
        self._target.write(self._buffer.getvalue().replace(b"numpy._core.", b"numpy.core."))


class _LegacyNumpyPickle:
    Pickler = _LegacyNumpyPickler


@pytest.mark.parametrize("pickle_module", [pickle, _LegacyNumpyPickle], ids=["numpy2", "numpy1-names"])
def test_mmpose_1x_meta_with_numpy_arrays_loads(tmp_path, pickle_module):
    model = _randomize(build_cpm(NARROW), seed=2)
    dataset_meta = {"dataset_name": "coco", "num_keypoints": 17,
                    "sigmas": np.array([0.026, 0.025], dtype=np.float32),
                    "keypoint_colors": np.array([[51, 153, 255]], dtype=np.uint8),
                    "flip_indices": [0, 2, 1]}
    meta = {"dataset_meta": dataset_meta, "seed": np.int64(0), "best": np.float64(0.62)}
    path = _publish(tmp_path / "mmpose1x.pth", model, meta, pickle_module)
    if pickle_module is _LegacyNumpyPickle:
        assert b"numpy.core.multiarray" in _pickled_bytes(path)
    ckpt = load_checkpoint(path, build_cpm(NARROW))
    np.testing.assert_array_equal(ckpt["meta"]["dataset_meta"]["sigmas"], dataset_meta["sigmas"])
    assert ckpt["meta"]["best"] == 0.62


def _pickled_bytes(path) -> bytes:
    import zipfile
    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def test_preprocessor_buffers_are_dropped_like_mmpose(tmp_path):
    model = build_cpm(NARROW)
    state = {"backbone." + k: v for k, v in model.state_dict().items()}
    state["data_preprocessor.mean"] = torch.zeros(3, 1, 1)
    state["data_preprocessor.std"] = torch.ones(3, 1, 1)
    torch.save({"state_dict": state, "meta": {}}, tmp_path / "x.pth")
    load_checkpoint(tmp_path / "x.pth", build_cpm(NARROW))


def _mutate(state: dict, how: str) -> str:
    if how == "missing":
        state.pop("backbone.stem.9.conv.bias")
        return "backbone.stem.9.conv.bias [17]"
    if how == "unexpected":
        state["backbone.head.final_layer.weight"] = torch.zeros(17, 17, 1, 1)
        return "backbone.head.final_layer.weight [17, 17, 1, 1]"
    state["backbone.out_convs.1.1.conv.weight"] = torch.zeros(16, 16, 1, 1)
    return "backbone.out_convs.1.1.conv.weight file [16, 16, 1, 1] model [17, 16, 1, 1]"


@pytest.mark.parametrize("how", ["missing", "unexpected", "wrong shape"])
def test_key_mismatch_is_refused_naming_the_key(tmp_path, how):
    model = build_cpm(NARROW)
    state = {"backbone." + k: v for k, v in model.state_dict().items()}
    named = _mutate(state, how)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state, "meta": {}}, path)
    target = build_cpm(NARROW)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, target)
    assert str(path) in str(e.value) and f"{how} (1):\n    {named}\n" in str(e.value) + "\n"
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # nothing half-loaded


def test_all_mismatches_are_listed_together(tmp_path):
    state = {"backbone." + k: v for k, v in build_cpm(NARROW).state_dict().items()}
    named = [_mutate(state, how) for how in ("missing", "unexpected", "wrong shape")]
    torch.save({"state_dict": state, "meta": {}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "bad.pth", build_cpm(NARROW))
    assert all(n in str(e.value) for n in named)


def test_published_file_does_not_load_into_a_narrow_model(tmp_path):
    path = _publish(tmp_path / "full.pth", build_cpm())
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, build_cpm(NARROW))
    message = str(e.value)
    assert "unexpected (96):" in message and "wrong shape (98):" in message and "... and 73 more" in message
    assert "backbone.cpm_stages.0.model.0.conv.weight file [128, 49, 11, 11] model [16, 25, 11, 11]" in message


def test_wrapper_prefixed_keys_are_refused_with_a_hint(tmp_path):
    state = {"module.backbone." + k: v for k, v in build_cpm(NARROW).state_dict().items()}
    torch.save({"state_dict": state, "meta": {}}, tmp_path / "ddp.pth")
    with pytest.raises(CheckpointError, match="DDP or torch.compile wrapper"):
        load_checkpoint(tmp_path / "ddp.pth", build_cpm(NARROW))


class _Payload:
    """Unpickling this would create a directory: the classic os.system-style reduce."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _a_function():
    return "code"


@pytest.mark.parametrize("payload", ["reduce", "function", "instance"])
def test_file_holding_pickled_code_is_refused(tmp_path, payload):
    marker = tmp_path / "payload-ran"
    value = {"reduce": _Payload(marker), "function": _a_function, "instance": NARROW}[payload]
    state = {"backbone." + k: v for k, v in build_cpm(NARROW).state_dict().items()}
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": state, "meta": {"x": value}}, path)
    with pytest.raises(CheckpointError, match="refused") as e:
        load_checkpoint(path, build_cpm(NARROW))
    assert str(path) in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("content", ["tensor", "raw state_dict", "no state_dict", "garbage", "truncated"])
def test_file_without_the_checkpoint_layout_is_refused(tmp_path, content):
    path = tmp_path / "odd.pth"
    state = build_cpm(NARROW).state_dict()
    if content == "garbage":
        path.write_bytes(b"not a checkpoint" * 10)
    elif content == "truncated":
        torch.save({"state_dict": state, "meta": {}}, path)
        path.write_bytes(path.read_bytes()[:5000])
    else:
        obj = {"tensor": torch.zeros(3), "raw state_dict": state, "no state_dict": {"meta": {}}}[content]
        torch.save(obj, path)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(path)
    assert str(path) in str(e.value)


def test_saved_file_has_the_published_layout_and_loads_weights_only(tmp_path):
    model = _randomize(build_cpm(NARROW), seed=3)
    path = save_checkpoint(tmp_path / "sub" / "ours.pth", model, meta={"config": NARROW, "dir": tmp_path})
    raw = torch.load(path, weights_only=True)  # no allowlist needed for our own files
    assert set(raw) == {"state_dict", "meta"}
    assert list(raw["state_dict"]) == ["backbone." + k for k in model.state_dict()]
    assert raw["meta"]["config"]["feat_channels"] == 16 and raw["meta"]["dir"] == str(tmp_path)
    assert "repro_version" in raw["meta"]
    assert [p.name for p in path.parent.iterdir()] == ["ours.pth"]


def test_training_facts_give_the_precision_and_the_loss_of_the_checkpoints_epoch(tmp_path):
    """What the metrics record (and so tier S) takes from a checkpoint: its training precision and the mean
    training loss of the epoch that made it; None for what a file does not say (mmpose's published files)."""
    model = build_cpm(NARROW)
    ours = save_checkpoint(tmp_path / "best.pth", model, meta={"config": {"train": {"amp": "none"}},
                                                               "best": {"epoch": 2, "AP": 0.55, "train_loss": 0.0113}})
    assert checkpoint.training_facts(ours) == {"train_precision": "fp32", "train_loss": 0.0113}
    published = _publish(tmp_path / "published.pth", model)
    assert isinstance(checkpoint.read_checkpoint(published)["meta"]["config"], str)   # the 0.x text config
    assert checkpoint.training_facts(published) == {"train_precision": None, "train_loss": None}


def test_an_mmcv_file_with_optimizer_state_loads_its_weights(tmp_path):
    model = build_cpm(NARROW)
    optimizer = torch.optim.Adam(model.parameters()).state_dict()
    path = _publish(tmp_path / "epoch_210.pth", model, optimizer=optimizer)
    other = build_cpm(NARROW)
    ckpt = load_checkpoint(path, other)
    assert "optimizer" in ckpt and checkpoint.training_facts(path)["train_precision"] is None
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_save_unwraps_data_parallel(tmp_path):
    model = build_cpm(NARROW)
    path = save_checkpoint(tmp_path / "dp.pth", nn.DataParallel(model))
    assert list(torch.load(path, weights_only=True)["state_dict"]) == ["backbone." + k for k in model.state_dict()]
    load_checkpoint(path, nn.DataParallel(build_cpm(NARROW)))


def test_failed_save_leaves_previous_file_and_no_partial_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pth", build_cpm(NARROW), meta={"epoch": 1})
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, build_cpm(NARROW), meta={"epoch": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pth"]


def test_save_refuses_values_that_would_not_load_weights_only(tmp_path):
    with pytest.raises(CheckpointError, match="weights_only") as e:
        save_checkpoint(tmp_path / "x.pth", build_cpm(NARROW), meta={"fn": _a_function})
    assert "_a_function" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def _training_setup(seed: int):
    torch.manual_seed(seed)
    model = build_cpm(NARROW)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.001, total_iters=5),
        torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[7, 9], gamma=0.1)], milestones=[5])
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return model, opt, sched, scaler


def _train_step(model, opt, sched):
    x = torch.randn(2, 3, 32, 24)  # from the global RNG, so RNG restore matters
    loss = sum(o.square().mean() for o in model(x))
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def test_resume_roundtrip_continues_identically(tmp_path):
    model, opt, sched, scaler = _training_setup(seed=0)
    for _ in range(6):
        _train_step(model, opt, sched)
    random.seed(5), np.random.seed(5)
    save_checkpoint(tmp_path / "last.pth", model, {"config": NARROW}, optimizer=opt, lr_scheduler=sched,
                    scaler=scaler, epoch=3, iter=6, rng=capture_rng_state())
    _train_step(model, opt, sched)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    draws = (random.random(), np.random.rand(), torch.rand(1))

    resumed, opt2, sched2, scaler2 = _training_setup(seed=1)
    ckpt = load_checkpoint(tmp_path / "last.pth", resumed, optimizer=opt2, lr_scheduler=sched2, scaler=scaler2)
    assert (ckpt["epoch"], ckpt["iter"]) == (3, 6)
    restore_rng_state(ckpt["rng"])
    _train_step(resumed, opt2, sched2)
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert all(torch.equal(expected[k], v) for k, v in resumed.state_dict().items())
    assert (random.random(), np.random.rand(), torch.rand(1)) == draws


def test_resume_from_a_published_file_is_refused(tmp_path):
    path = _publish(tmp_path / "published.pth", build_cpm(NARROW))
    model, opt, _, _ = _training_setup(seed=0)
    with pytest.raises(CheckpointError, match="no 'optimizer' state"):
        load_checkpoint(path, model, optimizer=opt)
