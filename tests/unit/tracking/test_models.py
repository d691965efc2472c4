"""Checkpoints as registered MLflow models (repro.tracking.models): what `models:/cpm-256x192/latest` loads is the
checkpoint's network, with its last stage as output; published checkpoints are registered apart; a store
failure keeps the model for `repro publish`; REPRO_TRACKING=0 registers nothing.

A narrow smoke-profile model with random weights at the 256x192 input size: a few seconds per logged model
(most of it torch.export)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from repro import checkpoint, config, tracking
from repro.evaluation.tracking_run import log_evaluation
from repro.tracking import models
from repro.engine import train
from repro.model import build_cpm
from tests.conftest import REPO

NAME = "cpm-256x192"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for key in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI", "REPRO_TRACKING"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("REPRO_PIPELINE_ID", "test-registry")
    return tmp_path


@pytest.fixture(scope="module")
def cfg():
    return config.load(REPO / "params.yaml", "256x192")   # the smoke profile's narrow CPM


def random_checkpoint(cfg, path, seed: int):
    """A checkpoint of ours whose outputs are far from zero (the published init gives ~0 everywhere)."""
    torch.manual_seed(seed)
    model = build_cpm(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                b.normal_(0, 0.1)
    checkpoint.save_checkpoint(path, model, meta={"config": cfg.to_dict()})
    return model.eval()


def expected_heatmaps(model, cfg):
    x = torch.from_numpy(models.example_input(cfg.codec.input_size))
    with torch.no_grad():
        return model(x)[-1], x


def client():
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking.tracking_uri())


def assert_registered_model_is(uri: str, model, cfg):
    import mlflow.pytorch
    loaded = mlflow.pytorch.load_model(uri)
    want, x = expected_heatmaps(model, cfg)
    with torch.no_grad():
        got = loaded(x)
    w, h = cfg.codec.input_size
    assert got.shape == want.shape == (2, 17, h // 8, w // 8)
    assert want.abs().max() > 0.1   # a meaningful comparison, not two near-zero maps
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():   # the batch is free: one crop and three crops work too
        assert loaded(x[:1]).shape[0] == 1 and loaded(torch.cat([x, x[:1]])).shape[0] == 3


def test_finished_training_registers_best_pth_as_cpm_config(store, cfg, monkeypatch):
    """train._run's end: best.pth becomes version 1 of cpm-256x192, alias `smoke`, with signature and example."""
    import mlflow
    made = {}

    def fake_fit(cfg, out_dir, env, state, resuming, run, tracker, *rest, **kw):
        made["model"] = random_checkpoint(cfg, out_dir / "best.pth", seed=1)
        return {"best": {"AP": 0.5}}

    monkeypatch.setattr(train, "_fit", fake_fit)
    monkeypatch.setattr("repro.data.coco.check_layout", lambda *a, **k: None)
    train.train(cfg, store / "models/256x192", resume=False, track=True)

    assert_registered_model_is(f"models:/{NAME}/latest", made["model"], cfg)
    assert_registered_model_is(f"models:/{NAME}@smoke", made["model"], cfg)
    c = client()
    version = c.get_model_version_by_alias(NAME, "smoke")
    run = c.get_run(version.run_id)
    assert run.info.run_name == "train-256x192-smoke" and run.info.status == "FINISHED"
    assert run.data.tags["repro.model"] == f"models:/{NAME}/{version.version}"
    assert version.tags["repro.source"] == "trained" and version.tags["repro.profile"] == "smoke"
    assert version.tags["repro.checkpoint.sha256"] == tracking.sha256_file(store / "models/256x192/best.pth")
    info = mlflow.models.get_model_info(f"models:/{NAME}/latest")
    w, h = cfg.codec.input_size
    [image], [heatmaps] = info.signature.inputs.inputs, info.signature.outputs.inputs
    assert (image.name, image.type, image.shape) == ("image", np.dtype(np.float32), (-1, 3, h, w))
    assert (heatmaps.name, heatmaps.type, heatmaps.shape) == ("heatmaps", np.dtype(np.float32), (-1, 17, h // 8, w // 8))
    assert info.flavors["pytorch"]["model_data"] == "data"
    local = mlflow.artifacts.download_artifacts(f"models:/{NAME}/latest")
    example = json.loads(open(f"{local}/input_example.json").read())
    np.testing.assert_array_equal(np.asarray(example, dtype=np.float32), models.example_input(cfg.codec.input_size))
    files = {p.name for p in Path(local).rglob("*") if p.is_file()}
    assert "model.pt2" in files and not files & {"model.pth", "pickle_module_info.txt"}   # no pickled code


def test_a_second_run_is_a_new_version_and_latest_follows_it(store, cfg):
    first = random_checkpoint(cfg, store / "a.pth", seed=1)
    second = random_checkpoint(cfg, store / "b.pth", seed=2)
    for path in ("a.pth", "b.pth"):
        tracking.publish({"kind": "train", "name": "train-256x192-smoke", "tags": {"git.commit": "abc"},
                          "params": {}, "model": models.model_spec(cfg, store / path, "trained")})
    assert client().get_registered_model(NAME).aliases == {"smoke": 2}
    assert_registered_model_is(f"models:/{NAME}/latest", second, cfg)
    assert_registered_model_is(f"models:/{NAME}/1", first, cfg)
    with pytest.raises(AssertionError):   # the check tells two networks apart
        assert_registered_model_is(f"models:/{NAME}/1", second, cfg)


def test_published_checkpoint_is_registered_apart(store, cfg):
    published = random_checkpoint(cfg, store / "published.pth", seed=3)
    record = {"AP": 0.62, "source": "published", "checkpoint": "published.pth", "config": "256x192"}
    run_id = log_evaluation("evaluate_published_256x192", cfg, record, model_checkpoint=store / "published.pth")
    c = client()
    assert [m.name for m in c.search_registered_models()] == [f"{NAME}-published"]   # not cpm-256x192/latest
    version = c.get_model_version(f"{NAME}-published", "1")
    assert version.run_id == run_id and version.tags["repro.source"] == "published"
    assert_registered_model_is(f"models:/{NAME}-published/latest", published, cfg)


def test_store_failure_keeps_the_model_for_repro_publish(store, cfg, monkeypatch):
    model = random_checkpoint(cfg, store / "best.pth", seed=4)
    real = models.log_checkpoint

    def broken(*a, **k):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(models, "log_checkpoint", broken)
    assert log_evaluation("evaluate_published_256x192", cfg, {"AP": 0.6, "source": "published"},
                          model_checkpoint=store / "best.pth") is None
    [marker] = (store / tracking.PENDING_DIR).glob("*.json")
    assert json.loads(marker.read_text())["model"]["checkpoint"] == str(store / "best.pth")

    monkeypatch.setattr(models, "log_checkpoint", real)
    done, failed = tracking.publish_pending(store / tracking.PENDING_DIR)
    assert len(done) == 1 and not failed and not marker.exists()
    assert_registered_model_is(f"models:/{NAME}-published/latest", model, cfg)


def test_tracking_off_registers_nothing(store, cfg, monkeypatch):
    random_checkpoint(cfg, store / "best.pth", seed=5)
    monkeypatch.setenv("REPRO_TRACKING", "0")
    assert log_evaluation("evaluate_published_256x192", cfg, {"AP": 0.6, "source": "published"},
                          model_checkpoint=store / "best.pth") is None
    assert not (store / "mlflow.db").exists() and not (store / tracking.PENDING_DIR).exists()


def test_a_checkpoint_of_another_network_is_refused_with_its_path(store, cfg, tmp_path):
    """The spec's network must match the file (a full-model spec on a narrow file): one CheckpointError line."""
    random_checkpoint(cfg, tmp_path / "narrow.pth", seed=6)
    spec = {**models.model_spec(cfg, tmp_path / "narrow.pth", "trained"), "model": {"num_keypoints": 17}}
    with pytest.raises(checkpoint.CheckpointError, match="narrow.pth: state_dict does not match"):
        models.load_module(spec)
