"""Tier A-subset end to end on the miniature COCO 2017 (tests/e2e/mini_coco.py: the real sample's images and
annotations in the real layout, a full-size published-format CPM checkpoint): `repro evaluate --source
published` with eval.val_images 2 evaluates two seeded images, records the subset and its bootstrap in the
metrics file and in MLflow, and `repro gate` judges it as A-subset, never as tier A.

    .venv/bin/python -m pytest tests/e2e/test_subset_tier.py -q -m slow
"""
import json
import shutil

import pytest
import yaml

from repro import cli, config
from repro.data import download as dl
from repro.evaluation import evaluate, subset
from repro.report import checks, tiers
from tests.conftest import COCO_SAMPLE, REPO
from tests.e2e import mini_coco as mc

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with data/full from the miniature mirror, a params.yaml asking for a subset of 2
    images, and the pinned published.yaml as the one config.published() reads."""
    if not (COCO_SAMPLE / "test_coco.json").is_file():
        pytest.skip(f"COCO sample not found at {COCO_SAMPLE}")
    for var in (dl.MIRROR_ENV, dl.DET_FILE_ENV, "MLFLOW_TRACKING_URI", config.TRACKING_ENV):
        monkeypatch.delenv(var, raising=False)
    mini = mc.build(tmp_path / "mirror")
    pinned = mc.copy_published_yaml(tmp_path / "published.yaml")
    mc.pin_digests(pinned, mini)
    published = yaml.safe_load(pinned.read_text())
    monkeypatch.setattr(config, "published", lambda path=None: published)
    dl.prepare_coco(tmp_path / "data" / "full", published["sources"], mirror=mini.root,
                    det_file=str(mini.det_file), parts=("val2017", "annotations"), progress=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["eval"]["val_images"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv(dl.MIRROR_ENV, str(mini.root))
    monkeypatch.chdir(tmp_path)
    yield tmp_path, published
    shutil.rmtree(mini.root)   # 250 MB of checkpoints


def test_subset_tier_end_to_end(workdir):
    tmp, published = workdir
    metrics = tmp / "reports" / "metrics" / "published_256x192.json"
    assert cli.main(["evaluate", "--config", "256x192", "--profile", "full", "--params", "params.yaml",
                     "--source", "published", "--metrics", str(metrics), "--out-dir", "outputs/eval/p"]) == 0
    record = json.loads(metrics.read_text())
    all_ids = evaluate.load_ground_truth(tmp / "data/full/annotations/person_keypoints_val2017.json").getImgIds()
    ids = subset.select_image_ids(all_ids, 2, seed=0)
    assert record["protocol"] == "subset" and record["source"] == "published"
    assert record["subset"] == {"n": 2, "seed": 0, "ids_sha256": subset.ids_digest(ids)}
    assert record["num_images"] == 2 and 0 < record["num_boxes"] < 12   # only those images' boxes
    assert record["bootstrap"]["resamples"] == 1000 and record["bootstrap"]["unit"] == "image"
    ap = record["bootstrap"]["stats"]["AP"]
    assert ap["lo"] <= record["AP"] <= ap["hi"] and ap["detectable_gap"] > 0

    from mlflow.tracking import MlflowClient   # the subset is in the MLflow run's params too
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")   # a client: no process-wide tracking URI left set
    run = client.search_runs([client.get_experiment_by_name("cpm-repro").experiment_id])[0]
    assert run.data.params["subset.ids_sha256"] == subset.ids_digest(ids)
    assert run.data.params["eval.val_images"] == "2"

    result = tiers.check_tier("A", "256x192", checks.GateInputs(published=published, metrics_dir=metrics.parent))
    assert result.tier == "A-subset" and result.rows
    # Two images cannot detect a 0.02 gap: never a pass (the test checkpoint's weights are not the real ones,
    # so its AP is far from 0.623: fail where the interval misses it, too_small where it does not).
    stats = [row for row in result.rows if row.metric in published["models"]["256x192"]["results"]]
    assert len(stats) == 5 and {row.verdict for row in stats} <= {"fail", "too_small"}
    assert ap["detectable_gap"] > 0.02 or {row.verdict for row in stats} == {"fail"}
    assert [row.verdict for row in result.rows if row.metric == "protocol"] == ["pass"]   # the published settings
