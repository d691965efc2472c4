"""The val subset (repro.evaluation.subset) and the tier A-subset verdict (repro.report.subset_tier)."""
import numpy as np
import pytest

from repro import config
from repro.config import ConfigError
from repro.data.coco import DatasetError, TopDownCocoDataset
from repro.evaluation import evaluate, subset
from repro.report import checks, subset_tier, tiers
from tests.conftest import REPO


def test_the_subset_is_seeded_uniform_and_sorted():
    ids = list(range(1000, 6000))
    a = subset.select_image_ids(ids, 500, seed=0)
    assert a == subset.select_image_ids(list(reversed(ids)), 500, seed=0) == sorted(a)   # order-free, sorted
    assert len(set(a)) == 500 and a != subset.select_image_ids(ids, 500, seed=1)
    # uniform: about a tenth of each tenth of the id range
    assert np.histogram(a, bins=10, range=(1000, 6000))[0].min() > 25
    assert subset.ids_digest(a) == subset.ids_digest(list(reversed(a))) != subset.ids_digest(a[1:])


def test_a_subset_larger_than_val_is_refused_naming_the_key():
    with pytest.raises(DatasetError, match=r"eval.val_images: 6 is more than the 5 images"):
        subset.select_image_ids(range(5), 6, seed=0)


def _params(**eval_items) -> dict:
    params = config.read_params(REPO / "params.yaml")
    params["eval"].update(eval_items)   # the top-level eval section: what `dvc exp run -S eval.val_images=N` sets
    return params


def test_val_images_config():
    assert config.load(REPO / "params.yaml").eval.val_images is None   # default: all, the published protocol
    cfg = config.resolve(_params(val_images=500), "256x192", "full")
    assert cfg.eval.val_images == 500 and cfg.to_dict()["eval"]["val_images"] == 500
    with pytest.raises(ConfigError, match="eval.val_images: 0 must be null"):
        config.resolve(_params(val_images=0), "256x192", "full")


def test_restrict_keeps_every_gt_and_box_of_the_chosen_images(coco_sample, codec):
    ann, det = coco_sample / "test_coco.json", coco_sample / "test_coco_det_AP_H_56.json"
    dataset = TopDownCocoDataset(ann, coco_sample, codec, _augment(), is_training=False, det_file=det)
    coco = evaluate.load_ground_truth(ann)
    ids = subset.select_image_ids(coco.getImgIds(), 2, seed=0)
    image_of = lambda d: {d.images[i]["id"] for i in d.instances["image_index"]}  # noqa: E731
    boxes_before = sum(dataset.images[i]["id"] in ids for i in dataset.instances["image_index"])
    dataset, sub = subset.restrict(dataset, coco, ids)
    assert image_of(dataset) <= set(ids) and len(dataset) == boxes_before > 0
    assert sorted(sub.getImgIds()) == ids
    assert len(sub.getAnnIds()) == len(coco.getAnnIds(imgIds=ids)) > 0


def _augment():
    return config.load(REPO / "params.yaml").augment


METRICS = ("AP", "AP50", "AP75", "AR", "AR50")


def _record(lo, hi, gap, n=500):
    """A subset record whose every stat has the interval [lo, hi] (std 0: only the verdict is tested)."""
    stats = {m: {"lo": lo, "hi": hi, "std": 0.0, "detectable_gap": gap} for m in METRICS}
    return {"protocol": "subset", **{m: (lo + hi) / 2 for m in METRICS},
            "subset": {"n": n, "seed": 0, "ids_sha256": "x"}, "bootstrap": {"stats": stats}}


TOL = {"ap_abs": 0.002, "other_abs": 0.003}


@pytest.mark.parametrize("lo, hi, gap, verdict", [
    (0.610, 0.630, 0.015, "pass"),       # published inside
    (0.600, 0.620, 0.015, "fail"),       # 0.623 above 0.620 + 0.002 (AP) / 0.623 <= 0.623 for AR
    (0.590, 0.640, 0.030, "too_small"),  # inside, but blind to 0.02 AP: never a pass
])
def test_the_verdict(lo, hi, gap, verdict):
    rows = subset_tier.subset_rows("256x192", _record(lo, hi, gap), {"AP": 0.623}, TOL)
    assert [r.verdict for r in rows] == [verdict] and rows[0].tier == "A-subset"


import json  # noqa: E402


def test_a_subset_record_is_never_tier_a(tmp_path):
    """Tier A reads the published_<config> record; a subset there is judged as A-subset, and too_small
    fails `repro gate --strict` (and only strict: it is not a measured failure)."""
    published = config.published()
    record = {"profile": "full", "source": "published", "config": "256x192",
              "eval": {"flip_test": True, "shift_heatmap": True, "keypoint_score_thr": 0.2, "nms_thr": 0.9,
                       "use_gt_bbox": False, "amp": "none"}}
    expected = published["models"]["256x192"]["results"]
    path = tmp_path / "published_256x192.json"
    inputs = checks.GateInputs(published=published, metrics_dir=tmp_path)
    for lo, hi, gap, verdict in ((0.55, 0.95, 0.015, "pass"), (0.55, 0.95, 0.03, "too_small")):
        path.write_text(json.dumps({**record, **_record(lo, hi, gap)}))
        result = tiers.check_tier("A", "256x192", inputs)
        assert result.tier == "A-subset" and [r.verdict for r in result.rows] == [verdict] * len(expected) + ["pass"]
    assert tiers.failures([result], ("A",), strict=True) and not tiers.failures([result], ("A",), strict=False)
    # bf16 inference: an `open` info row, the protocol row still checks the rest (a missing flip shift fails)
    path.write_text(json.dumps({**record, **_record(0.55, 0.95, 0.015),
                                "eval": {**record["eval"], "amp": "bf16", "shift_heatmap": False}}))
    rows = {r.metric: r for r in tiers.check_tier("A", "256x192", inputs).rows}
    assert rows["precision"].verdict == "info" and "open" in rows["precision"].note
    assert rows["protocol"].verdict == "fail" and "shift_heatmap" in rows["protocol"].note


def test_dvc_set_param_reaches_the_config_and_the_stage(tmp_path):
    """`dvc exp run -S profile=full -S eval.val_images=500 evaluate_published`: DVC's override of the
    existing key gives the resolved config 500, and the stage lists `eval` in its params, so it reruns."""
    from dvc.utils.hydra import apply_overrides
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    apply_overrides(str(path), ["profile=full", "eval.val_images=500"])
    assert config.load(path, "256x192").eval.val_images == 500
    import yaml
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate_published"]["do"]
    assert "eval" in stage["params"]
