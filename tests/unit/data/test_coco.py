"""TopDownCocoDataset: instance counts on the COCO sample, the §2.3 filtering on hand-made files, items,
per-sample determinism, and clear errors for bad input."""
import json
import logging

import cv2
import numpy as np
import pytest
import torch

from repro.data.coco import DatasetError, TopDownCocoDataset, reduction_factor
from repro.data.transforms import warp_matrix
from repro.keypoints import NUM_KEYPOINTS
from tests.unit.conftest import AUG, SIZES


def sample(root, codec, **kw):
    return TopDownCocoDataset(root / "test_coco.json", root, codec, AUG, **kw)


# --- the shared COCO sample (mmpose tests/data/coco, spec §7) -------------------------------------------

def test_sample_instance_counts(coco_sample, codec):
    det = coco_sample / "test_coco_det_AP_H_56.json"
    assert len(sample(coco_sample, codec, is_training=True)) == 12
    assert len(sample(coco_sample, codec, is_training=False)) == 12
    assert len(sample(coco_sample, codec, is_training=False, det_file=det)) == 118
    assert len(sample(coco_sample, codec, is_training=False, det_file=det, det_score_thr=0.3)) == 33


def test_sample_drops_the_annotations_without_keypoints(coco_sample, codec):
    ds = sample(coco_sample, codec, is_training=True)
    assert not {1202706, 508900} & set(ds.instances["ann_id"].tolist())
    assert set(np.unique(ds.instances["visible"])) <= {0.0, 1.0}


def test_training_item_shapes_and_determinism(coco_sample, codec):
    ds = sample(coco_sample, codec, is_training=True, seed=3)
    W, H = codec.input_size
    item = ds[4]
    assert item["img"].shape == (3, H, W) and item["img"].dtype == torch.float32
    assert item["heatmaps"].shape == (NUM_KEYPOINTS, H // 8, W // 8) and item["weights"].shape == (NUM_KEYPOINTS,)
    other = sample(coco_sample, codec, is_training=True, seed=3)
    _ = other[7], other[1]   # access history must not matter
    assert torch.equal(other[4]["img"], item["img"]) and torch.equal(other[4]["heatmaps"], item["heatmaps"])
    other.set_epoch(1)
    assert not torch.equal(other[4]["img"], item["img"])
    other.set_epoch(0)
    assert torch.equal(other[4]["img"], item["img"])


def test_eval_item_with_det_boxes_hand_computed(coco_sample, codec):
    ds = sample(coco_sample, codec, is_training=False, det_file=coco_sample / "test_coco_det_AP_H_56.json")
    det = json.loads((coco_sample / "test_coco_det_AP_H_56.json").read_text())[0]
    x, y, w, h = det["bbox"]
    item = ds[0]
    assert item["image_id"] == det["image_id"] and item["bbox_score"] == pytest.approx(det["score"])
    np.testing.assert_allclose(item["center"], [x + w / 2, y + h / 2], rtol=1e-6)   # no -1, no clip
    sw, sh = 1.25 * w, 1.25 * h
    aspect = codec.input_size[0] / codec.input_size[1]
    expected = (sw, sw / aspect) if sw > sh * aspect else (sh * aspect, sh)
    np.testing.assert_allclose(item["scale"], expected, rtol=1e-5)
    np.testing.assert_allclose(item["bbox"], det["bbox"], rtol=1e-5)


def test_eval_crop_equals_the_plain_cv2_crop(coco_sample, codec):
    ds = sample(coco_sample, codec, is_training=False)
    item = ds[0]
    img = cv2.imread(str(ds.image_path(0)), cv2.IMREAD_COLOR)
    W, H = codec.input_size
    # The matrix itself is checked bit for bit against mmpose's recipe in test_transforms.py; here the item's
    # pixels must be exactly that plain crop, BGR -> RGB and normalised.
    m = warp_matrix(item["center"].numpy(), item["scale"].numpy(), 0.0, codec.input_size)
    crop = cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR)[..., ::-1].astype(np.float32)
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    np.testing.assert_allclose(item["img"].numpy().transpose(1, 2, 0), (crop - mean) / std, atol=1e-5)


def test_reduced_decode_is_an_option_and_close(coco_sample, codec):
    faithful = sample(coco_sample, codec, is_training=False, det_file=coco_sample / "test_coco_det_AP_H_56.json")
    fast = sample(coco_sample, codec, is_training=False, det_file=coco_sample / "test_coco_det_AP_H_56.json",
                  reduced_decode=True, reduced_min_ratio=1.0)
    assert not faithful.reduced_decode
    diffs = [(faithful[i]["img"] - fast[i]["img"]).abs().mean().item() * 58 for i in range(0, 118, 7)]
    assert np.mean(diffs) < 6.0   # mean abs difference in 0-255 levels (aliasing vs box filter)
    assert reduction_factor(800, 192, 2.0) == 2 and reduction_factor(1600, 192, 2.0) == 4
    assert reduction_factor(300, 192, 2.0) == 1


# --- the §2.3 filtering on a hand-made file --------------------------------------------------------------

def kpts(points, v=2):
    out = [0] * (3 * NUM_KEYPOINTS)
    for k, (x, y) in points.items():
        out[3 * k:3 * k + 3] = [x, y, v]
    return out


def write_coco(tmp_path, anns, images=None, jpeg=True):
    images = images or [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}]
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(NUM_KEYPOINTS)]}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    if jpeg:
        for img in images:
            ok, buf = cv2.imencode(".jpg", np.full((img["height"], img["width"], 3), 128, np.uint8))
            (tmp_path / img["file_name"]).write_bytes(buf.tobytes())
    return tmp_path / "ann.json"


def ann(i, bbox, keypoints, **kw):
    return {"id": i, "image_id": 1, "category_id": 1, "bbox": bbox, "keypoints": keypoints,
            "num_keypoints": kw.pop("num_keypoints", 1), "iscrowd": kw.pop("iscrowd", 0), **kw}


def test_gt_filtering_hand_made(tmp_path):
    f = write_coco(tmp_path, [
        ann(1, [10, 5, 20, 30], kpts({0: (15, 10)}, v=2)),               # kept, v 2 -> 1
        ann(2, [10, 5, 20, 30], kpts({0: (15, 10)}), iscrowd=1),         # crowd
        ann(3, [10, 5, 20, 30], kpts({0: (15, 10)}), num_keypoints=0),   # no keypoints
        ann(4, [10, 5, 20, 30], kpts({}, v=0)),                          # max(kpts) <= 0
        ann(5, [70, 5, 20, 30], kpts({0: (15, 10)})),                    # clipped to x1 = x2 = 63: dropped
        ann(6, [-5, 40, 100, 30], kpts({0: (15, 42)}, v=1)),             # clipped to (0, 40, 63, 47): kept
    ])
    ds = TopDownCocoDataset(f, tmp_path, SIZES["256x192"], AUG, is_training=True)
    assert ds.instances["ann_id"].tolist() == [1, 6]
    np.testing.assert_array_equal(ds.instances["bbox"], [[10, 5, 30, 35], [0, 40, 63, 47]])
    assert ds.instances["visible"][:, 0].tolist() == [1, 1] and ds.instances["visible"][:, 1:].sum() == 0
    assert ds[1]["weights"].shape == (NUM_KEYPOINTS,)


# --- bad input ---------------------------------------------------------------------------------------------

GOOD = [ann(1, [10, 5, 20, 30], kpts({0: (15, 10)}))]


def test_missing_image_names_the_file(tmp_path):
    f = write_coco(tmp_path, GOOD, jpeg=False)
    ds = TopDownCocoDataset(f, tmp_path, SIZES["256x192"], AUG, is_training=True)
    with pytest.raises(DatasetError, match=r"a\.jpg: image not found"):
        ds[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_jpeg_names_the_file(tmp_path, damage):
    f = write_coco(tmp_path, GOOD)
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg at all" if damage == "garbage" else data[:len(data) // 2])
    ds = TopDownCocoDataset(f, tmp_path, SIZES["256x192"], AUG, is_training=False)
    with pytest.raises(DatasetError, match=r"a\.jpg: corrupt image"):
        ds[0]


def test_skip_corrupt_returns_the_next_readable_instance_and_counts(tmp_path, caplog):
    images = [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
              {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}]
    anns = [ann(1, [10, 5, 20, 30], kpts({0: (15, 10)})), {**ann(2, [10, 5, 20, 30], kpts({0: (15, 10)})),
                                                             "image_id": 2}]
    f = write_coco(tmp_path, anns, images)
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    strict = TopDownCocoDataset(f, tmp_path, SIZES["256x192"], AUG, is_training=True)
    with pytest.raises(DatasetError):
        strict[0]
    ds = TopDownCocoDataset(f, tmp_path, SIZES["256x192"], AUG, is_training=True, skip_corrupt=True)
    with caplog.at_level(logging.WARNING, logger="repro.data.coco"):
        item = ds[0]
    assert item["index"] == 1 and ds.skipped == 1 and "a.jpg" in caplog.text


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[]", "top level is list"),
    (json.dumps({"images": [], "annotations": []}), "missing key.*categories"),
    (json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}),
     "no category has 'keypoints'"),
    (json.dumps({"images": [{"id": 1, "file_name": "a.jpg", "width": 9}], "annotations": [],
                 "categories": [{"id": 1, "keypoints": ["k"] * NUM_KEYPOINTS}]}), r"images\[0\]: field 'height'"),
    (json.dumps({"images": [], "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}],
                 "categories": [{"id": 1, "keypoints": ["k"] * NUM_KEYPOINTS}]}), "annotation id 7: 'keypoints'"),
    (json.dumps({"images": [], "annotations": [{"id": 8, "image_id": 1, "category_id": 1, "bbox": [0, "3", 1, 1],
                                                "keypoints": [0] * 3 * NUM_KEYPOINTS}],
                 "categories": [{"id": 1, "keypoints": ["k"] * NUM_KEYPOINTS}]}), "annotation id 8: 'bbox'"),
    (json.dumps({"images": [], "annotations": [{"id": 9, "category_id": 1, "bbox": [0, 0, 1, 1],
                                                "keypoints": [0] * 3 * NUM_KEYPOINTS}],
                 "categories": [{"id": 1, "keypoints": ["k"] * NUM_KEYPOINTS}]}), "annotation id 9: 'image_id'"),
])
def test_bad_annotation_file_is_named(tmp_path, content, message):
    (tmp_path / "ann.json").write_text(content)
    with pytest.raises(DatasetError, match=message) as e:
        TopDownCocoDataset(tmp_path / "ann.json", tmp_path, SIZES["256x192"], AUG, is_training=True)
    assert "ann.json" in str(e.value)


def test_missing_annotation_file_is_named(tmp_path):
    with pytest.raises(DatasetError, match="nope.json: annotation file not found"):
        TopDownCocoDataset(tmp_path / "nope.json", tmp_path, SIZES["256x192"], AUG, is_training=True)


DET = {"image_id": 1, "category_id": 1, "bbox": [1.0, 2.0, 10.0, 20.0], "score": 0.9}


@pytest.mark.parametrize("bad, message", [
    ({k: v for k, v in DET.items() if k != "score"}, "entry 1: field 'score' missing"),
    ({**DET, "bbox": [1, 2, 3]}, "entry 1: field 'bbox' has a wrong type"),
    ({**DET, "bbox": [1, 2, "3", 4]}, "entry 1: field 'bbox' has a wrong type"),
    ({**DET, "image_id": "1"}, "entry 1: field 'image_id' has a wrong type"),
    ({**DET, "score": None}, "entry 1: field 'score' has a wrong type"),
    ({**DET, "image_id": 99}, "entry 1: image_id 99 is not in the annotation file"),
    ("box", "entry 1: not an object"),
])
def test_bad_detection_entry_is_named(tmp_path, bad, message):
    f = write_coco(tmp_path, GOOD)
    (tmp_path / "det.json").write_text(json.dumps([DET, bad]))
    with pytest.raises(DatasetError, match=message) as e:
        TopDownCocoDataset(f, tmp_path, SIZES["256x192"], AUG, is_training=False, det_file=tmp_path / "det.json")
    assert "det.json" in str(e.value)


def test_detection_file_must_be_a_list(tmp_path):
    f = write_coco(tmp_path, GOOD)
    (tmp_path / "det.json").write_text(json.dumps({"dets": []}))
    with pytest.raises(DatasetError, match="det.json: detection file must be a JSON list"):
        TopDownCocoDataset(f, tmp_path, SIZES["256x192"], AUG, is_training=False, det_file=tmp_path / "det.json")


def test_detections_filter_category_and_score(tmp_path):
    f = write_coco(tmp_path, GOOD)
    dets = [DET, {**DET, "category_id": 2}, {**DET, "score": 0.1}, {**DET, "score": 0}]
    (tmp_path / "det.json").write_text(json.dumps(dets))
    ds = TopDownCocoDataset(f, tmp_path, SIZES["256x192"], AUG, is_training=False, det_file=tmp_path / "det.json")
    assert len(ds) == 3
    thr = TopDownCocoDataset(f, tmp_path, SIZES["256x192"], AUG, is_training=False, det_file=tmp_path / "det.json",
                             det_score_thr=0.3)
    assert len(thr) == 1 and thr[0]["bbox_score"] == pytest.approx(0.9)
