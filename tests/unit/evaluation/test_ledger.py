"""The seed ledger: one entry per seed and commit, appended by evaluation of trained models."""
import json

import pytest

from repro.evaluation import ledger

NAMES = ["AP", "AR"]


def record(seed, ap, source="trained"):
    return {"config": "256x192", "profile": "smoke", "source": source, "seed": seed, "AP": ap, "AR": ap + 0.05,
            "checkpoint": "models/256x192/best.pth"}


def test_append_keeps_one_entry_per_seed_and_commit(tmp_path):
    ledger.append(tmp_path, record(0, 0.10), NAMES, commit="a")
    ledger.append(tmp_path, record(1, 0.11), NAMES, commit="a")
    path = ledger.append(tmp_path, record(0, 0.10), NAMES, commit="a")   # the same retrain evaluated again
    assert path == tmp_path / "smoke_256x192.json"
    data = json.loads(path.read_text())
    assert [(e["seed"], e["commit"]) for e in data["entries"]] == [(1, "a"), (0, "a")]
    assert data["entries"][1]["metrics"] == {"AP": 0.10, "AR": pytest.approx(0.15)}
    assert ledger.values_by_seed(data) == {1: 0.11, 0: 0.10}


def test_a_new_commit_of_a_seed_is_kept_and_its_value_counts(tmp_path):
    ledger.append(tmp_path, record(0, 0.10), NAMES, commit="a")
    path = ledger.append(tmp_path, record(0, 0.12), NAMES, commit="b")
    data = ledger.read(path)
    assert len(data["entries"]) == 2
    assert ledger.values_by_seed(data) == {0: 0.12}   # one value per seed: the newest


def test_published_checkpoints_and_non_finite_metrics_are_refused(tmp_path):
    with pytest.raises(ValueError, match="only trained models"):
        ledger.append(tmp_path, record(0, 0.1, source="published"), NAMES, commit="a")
    with pytest.raises(ValueError, match="non-finite"):
        ledger.append(tmp_path, record(0, float("nan")), NAMES, commit="a")
    assert not list(tmp_path.iterdir())


def test_no_ledger_reads_as_none(tmp_path):
    assert ledger.read(tmp_path / "full_256x192.json") is None
    assert ledger.values_by_seed(None) == {}
