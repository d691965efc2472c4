"""Bad input and faults through the real CLI: exit code, one-line message, nothing lost or half-written.

`repro.cli.main([...])` is the `repro` console script itself (the same error wrapper), so most probes run
in-process on a tiny synthetic project; the stage entry points and `python -m repro.engine.train` run as
subprocesses. Only `repro.cli`, `repro.atomic`, `repro.checkpoint` and the other modules that existed
before the wrapper are imported here, so this file also runs against the old code (each test fails there).
"""
import json
import math
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from repro import atomic, checkpoint, cli, config
from repro.data import synthetic
from repro.model import build_cpm
from tests.conftest import REPO

STATS = ("AP", "AP50", "AP75", "AR", "AR50")
PROTOCOL = {"flip_test": True, "shift_heatmap": True, "use_gt_bbox": False, "keypoint_score_thr": 0.2,
            "nms_thr": 0.9, "amp": "none"}
DET_FILE = "data/smoke/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"


# ------------------------------------------------------------------------------------------------ helpers

def repro(capsys, *args) -> tuple[int, str, str]:
    """`repro ARGS` in-process: (exit code, stdout, stderr)."""
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error_line(code: int, err: str, *names, exit_code: int = 2):
    """Exit `exit_code`, no traceback, and the last stderr line is the error naming every one of `names`."""
    assert code == exit_code, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert ": error: " in last and all(str(n) in last for n in names), last


def snapshot(root: Path) -> dict:
    """{relative path: bytes} of every file below `root` (temp files included), to prove nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """params.yaml and 4+4 synthetic images in the COCO layout (about a second)."""
    root = tmp_path_factory.mktemp("bad_input")
    params = config.override_params(config.read_params(REPO / "params.yaml"), {
        "profiles.smoke.data.synthetic.train_images": 4, "profiles.smoke.data.synthetic.val_images": 4})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cfg = config.load(root / "params.yaml", "256x192")
    synthetic.generate(cfg.synthetic, root / cfg.data.root)
    return root


@pytest.fixture
def work(project, tmp_path, monkeypatch) -> Path:
    """A private copy of the project (images symlinked), as the current directory, tracking off."""
    (tmp_path / "params.yaml").write_text((project / "params.yaml").read_text())
    data = tmp_path / "data" / "smoke"
    shutil.copytree(project / "data" / "smoke", data, ignore=lambda d, names: {"train2017", "val2017"})
    for images in ("train2017", "val2017"):   # the images are only read: shared
        (data / images).symlink_to(project / "data" / "smoke" / images)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REPRO_TRACKING", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def trained_checkpoint(work: Path, name: str = "256x192", **buffers) -> Path:
    """An untrained smoke model saved as our training run would (meta.config of `name`)."""
    cfg = config.load("params.yaml", name)
    model = build_cpm(cfg.model)
    for key, value in buffers.items():
        model.state_dict()[key].fill_(value)
    return checkpoint.save_checkpoint(work / "models" / name / "best.pth", model, {"config": cfg.to_dict()})


# ------------------------------------------------------------------------------------------------- gates

def full_record(**values) -> dict:
    with open(REPO / "repro" / "published.yaml") as f:
        published = yaml.safe_load(f)["models"]["256x192"]["results"]
    return {**published, **values, "num_images": 100, "num_boxes": 250, "num_instances": 150,
            "profile": "full", "source": "trained", "seed": 0, "eval": dict(PROTOCOL)}


def gate(capsys, metrics: Path, *args) -> tuple[int, str, str]:
    return repro(capsys, "gate", "--metrics-dir", metrics, "--params", metrics / "none.yaml", *args)


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_tier_c_fails_on_a_non_finite_ap(capsys, tmp_path, strict, bad):
    record = full_record()
    ok = gate(capsys, _write(tmp_path / "ok" / "256x192.json", record).parent, "--tier", "C")
    assert ok[0] == 0, ok[1]   # the same file with a finite AP passes: the failure below is the AP's
    code, out, err = gate(capsys, _write(tmp_path / "bad" / "256x192.json", {**record, "AP": bad}).parent,
                          "--tier", "C", *(["--strict"] if strict else []))
    assert code == 1 and f"C 256x192 AP: fail not a finite number: {bad}" in out, out + err


def test_tier_c_fails_on_a_non_finite_reported_stat(capsys, tmp_path):
    code, out, _ = gate(capsys, _write(tmp_path / "256x192.json", full_record(AR=math.nan)).parent, "--tier", "C")
    assert code == 1 and "C 256x192 AR: fail not a finite number: nan" in out


def test_tier_a_fails_on_nan(capsys, tmp_path):
    record = {**full_record(AP50=math.nan), "source": "published"}
    code, out, _ = gate(capsys, _write(tmp_path / "published_256x192.json", record).parent, "--tier", "A")
    assert code == 1 and "A 256x192 AP50: fail not a finite number: nan" in out


def smoke_record(ap=0.30, **extra) -> dict:
    return {"AP": ap, "profile": "smoke", "source": "trained", "seed": 0, "platform": {"here": 1},
            "train_precision": "fp32", **extra}


def smoke_baseline(*names, **stats) -> dict:
    entry = {"AP": {"per_seed": {"0": 0.3, "1": 0.3, "2": 0.3}, "mean": 0.3, "std": 0.0, "range": 0.0,
                    "tolerance": 0.01, **stats}}
    return {"profile": "smoke", "precisions": {"fp32": {
        "profile": "smoke", "seeds": [0, 1, 2], "platform": {"baseline": 1},
        "configs": {name: entry for name in names}}}}


def _write(path: Path, obj) -> Path:
    """`obj` as JSON (a str as is) at `path`; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_tier_s_fails_on_nan(capsys, tmp_path, bad):
    metrics = _write(tmp_path / "m" / "256x192.json", smoke_record(ap=bad)).parent
    base = _write(tmp_path / "smoke.json", smoke_baseline("256x192"))
    code, out, _ = gate(capsys, metrics, "--tier", "S", "--baseline", base)
    assert code == 1 and f"S 256x192 AP: fail not a finite number: {bad}" in out


def test_a_config_missing_from_the_baseline_fails_gate_and_drift(capsys, tmp_path):
    metrics = _write(tmp_path / "m" / "256x192.json", smoke_record()).parent
    _write(metrics / "384x288.json", smoke_record())
    base = _write(tmp_path / "smoke.json", smoke_baseline("256x192"))
    code, out, _ = gate(capsys, metrics, "--tier", "S", "--baseline", base)
    assert code == 1 and "S 384x288 baseline: fail" in out, out
    code, out, _ = repro(capsys, "drift", "--metrics-dir", metrics, "--baseline", base)
    assert code == 1 and "not in baseline" in out and "drift: none" not in out, out


@pytest.mark.parametrize("command", ["gate", "drift"])
def test_a_damaged_metrics_file_is_one_line_naming_it(capsys, tmp_path, command):
    metrics = _write(tmp_path / "m" / "256x192.json", '{"AP": 0.3, "prof').parent
    base = _write(tmp_path / "smoke.json", smoke_baseline("256x192"))
    code, _, err = repro(capsys, command, "--metrics-dir", metrics, "--baseline", base, "--params", "none.yaml")
    assert_error_line(code, err, metrics / "256x192.json", "not valid JSON")


@pytest.mark.parametrize("baseline,key", [
    ('{"configs": {"256x192": {"AP": {"mean": 0.3', "not valid JSON"),
    (json.dumps(smoke_baseline("256x192", tolerance=None)), "precisions.fp32.configs.256x192.AP.tolerance"),
    (json.dumps(smoke_baseline("256x192", mean=math.nan)), "precisions.fp32.configs.256x192.AP.mean"),
    (json.dumps({"precisions": {"fp32": {"configs": {"256x192": {}}}}}), "precisions.fp32.configs.256x192: no stats"),
])
@pytest.mark.parametrize("command", ["gate", "drift"])
def test_a_damaged_baseline_is_one_line_naming_file_and_key(capsys, tmp_path, command, baseline, key):
    metrics = _write(tmp_path / "m" / "256x192.json", smoke_record()).parent
    base = _write(tmp_path / "smoke.json", baseline)
    code, _, err = repro(capsys, command, "--metrics-dir", metrics, "--baseline", base, "--params", "none.yaml")
    assert_error_line(code, err, base, key)


# ------------------------------------------------------------------------------------------------ config

@pytest.mark.parametrize("item,key", [
    ("train.epochs=-3", "train.epochs: -3"), ("train.val_interval=0", "train.val_interval: 0"),
    ("train.lr=-0.1", "train.lr: -0.1"), ("train.batch_per_gpu=-2", "train.batch_per_gpu: -2"),
    ("train.gpus=0", "train.gpus: 0"), ("train.num_workers=-1", "train.num_workers: -1"),
    ("augment.flip_prob=1.5", "augment.flip_prob: 1.5"), ("eval.nms_thr=.nan", "eval.nms_thr: nan"),
    ("codec.sigma=-2", "sigma: -2"), ("codec.input_size=[0,256]", "input_size: (0, 256)"),
])
def test_train_refuses_out_of_range_values_before_any_work(capsys, work, item, key):
    code, _, err = repro(capsys, "train", "--config", "256x192", "--out", "models/x", "--no-track", "--set", item)
    assert_error_line(code, err, key)
    assert not (work / "models").exists()


def test_an_out_of_range_params_file_value_names_file_and_key(capsys, work):
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["configs"]["256x192"]["sigma"] = -2
    Path("params.yaml").write_text(yaml.safe_dump(params))
    code, _, err = repro(capsys, "evaluate", "--config", "256x192", "--checkpoint", "x.pth")
    assert_error_line(code, err, "params.yaml", "configs.256x192.sigma: -2")


# -------------------------------------------------------------------------------- data, checkpoints, output

@pytest.mark.parametrize("wh", [[0.0, 40.0], [30.0, -5.0]])
def test_a_detection_box_without_area_is_refused_naming_file_and_entry(capsys, work, wh):
    dets = json.loads(Path(DET_FILE).read_text())
    dets[3]["bbox"][2:] = wh
    Path(DET_FILE).write_text(json.dumps(dets))
    ckpt = trained_checkpoint(work)
    code, _, err = repro(capsys, "evaluate", "--config", "256x192", "--checkpoint", ckpt, "--out-dir", "out")
    assert_error_line(code, err, DET_FILE, "entry 3", "width or height <= 0")
    assert not (work / "out" / "metrics.json").exists()


def test_a_checkpoint_trained_at_another_size_is_refused(capsys, work):
    ckpt = trained_checkpoint(work, "256x192")   # CPM weights load at any size: only meta.config tells
    code, _, err = repro(capsys, "evaluate", "--config", "384x288", "--checkpoint", ckpt, "--out-dir", "out")
    assert_error_line(code, err, ckpt, "codec.input_size")
    assert not (work / "out").exists() or not any((work / "out").iterdir())


@pytest.mark.parametrize("key", ["stem.0.bn.running_var", "stem.0.conv.weight"])
def test_non_finite_weights_or_bn_buffers_are_refused(capsys, work, key):
    ckpt = trained_checkpoint(work, **{key: math.nan})
    code, _, err = repro(capsys, "evaluate", "--config", "256x192", "--checkpoint", ckpt, "--out-dir", "out")
    assert_error_line(code, err, ckpt, "non-finite", "backbone." + key)


def test_a_missing_checkpoint_is_one_line(capsys, work):
    code, _, err = repro(capsys, "evaluate", "--config", "256x192", "--checkpoint", "nope.pth")
    assert_error_line(code, err, "nope.pth")


def test_an_unwritable_output_dir_is_found_before_evaluating(capsys, work, monkeypatch):
    ckpt = trained_checkpoint(work)
    Path("blocker").write_text("a file where the output directory should go")
    from repro.evaluation import evaluate
    monkeypatch.setattr(evaluate, "predict", lambda *a, **k: pytest.fail("evaluated before checking the output"))
    code, _, err = repro(capsys, "evaluate", "--config", "256x192", "--checkpoint", ckpt, "--out-dir", "blocker/out")
    assert_error_line(code, err, "blocker/out", "not writable")


def test_missing_data_stops_training_before_it_writes_anything(capsys, work):
    shutil.rmtree("data/smoke")   # its image dirs are symlinks: the shared project is not touched
    code, _, err = repro(capsys, "train", "--config", "256x192", "--out", "models/x", "--no-track")
    assert_error_line(code, err, "data/smoke", "person_keypoints_train2017.json")
    assert not (work / "models").exists()


# --------------------------------------------------------------------------------- stages and --debug

def run_module(work: Path, *args, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "REPRO_TRACKING": "0", **env}
    environ.pop("REPRO_DEBUG", None) if "REPRO_DEBUG" not in env else None
    return subprocess.run([sys.executable, "-m", *args], cwd=work, env=environ, capture_output=True, text=True,
                          timeout=300)   # a hang guard only


@pytest.mark.parametrize("args,names", [
    (("stages.evaluate", "--config", "999", "--source", "trained"), ("stages.evaluate: error:", "999")),
    (("stages.train", "--config", "256x192", "--out", "m"), ("stages.train: error:", "data/smoke")),
    (("stages.data", "--part", "val", "--params", "missing.yaml"), ("stages.data: error:", "missing.yaml")),
    (("stages.compare",), ("stages.compare: error:", "256x192.json", "not valid JSON")),
    (("repro.engine.train", "--config", "256x192", "--out", "m", "--set", "train.sigma=1"), ("--set",)),
])
def test_every_stage_ends_bad_input_with_one_line_and_exit_2(tmp_path, args, names):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    _write(tmp_path / "reports" / "metrics" / "256x192.json", "{broken")
    done = run_module(tmp_path, *args)
    assert_error_line(done.returncode, done.stderr, *names)


@pytest.mark.parametrize("env,flag", [({}, ["--debug"]), ({"REPRO_DEBUG": "1"}, [])])
def test_debug_shows_the_traceback(tmp_path, env, flag):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    done = run_module(tmp_path, "repro.cli", "evaluate", "--config", "999", "--checkpoint", "x", *flag, **env)
    assert done.returncode == 2 and "Traceback" in done.stderr and "ConfigError" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("repro evaluate: error: ")


# ------------------------------------------------------------------------------------------------- files

def test_atomic_files_and_checkpoints_are_0644(tmp_path):
    written = [atomic.write_json(tmp_path / "a.json", {"x": 1}),
               checkpoint.save_checkpoint(tmp_path / "m.pth", torch.nn.Linear(2, 2))]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_atomic_writes_fsync_the_file_and_its_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real(fd)))
    atomic.write_text(tmp_path / "a.txt", "x")
    assert False in synced and True in synced   # the file, then the directory holding the new name


def test_stale_temp_files_are_removed_on_the_next_write(tmp_path):
    stale = [tmp_path / ".a.json.k1ll3d.tmp", tmp_path / ".m.pth.abc123.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    atomic.write_json(tmp_path / "a.json", {})
    checkpoint.save_checkpoint(tmp_path / "m.pth", torch.nn.Linear(2, 2))
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "m.pth"]


def test_compare_writes_its_reports_as_a_set(tmp_path, monkeypatch):
    from repro.report import compare
    reports, base = tmp_path / "reports", _write(tmp_path / "smoke.json", smoke_baseline("256x192"))
    metrics = _write(tmp_path / "metrics" / "256x192.json", smoke_record()).parent
    compare.compare(metrics, tmp_path / "models", reports, "smoke", baseline_path=base)
    before = snapshot(reports)

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(compare.plots, "write_published_vs_measured", broken)   # fails after the first files
    _write(metrics / "256x192.json", smoke_record(ap=0.9))
    with pytest.raises(OSError, match="disk full"):
        compare.compare(metrics, tmp_path / "models", reports, "smoke", baseline_path=base)
    assert snapshot(reports) == before   # no report replaced, no temp file left
