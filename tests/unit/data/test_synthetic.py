"""repro.data.synthetic: COCO layout readable by pycocotools, determinism, visibility rules, detector simulation."""
import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from repro.config import SyntheticConfig
from repro.data import synthetic
from repro.data.synthetic import DET_FILE, SceneSpec, generate
from repro.keypoints import KEYPOINT_NAMES, SKELETON

SMALL = SyntheticConfig(train_images=6, val_images=12, seed=0)
NOISY_DETECTOR = SceneSpec(det_miss_rate=0.2, det_fp_per_image=1.0, det_duplicate_rate=0.2)
K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


def quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "synthetic"
    summary = generate(SMALL, root, NOISY_DETECTOR)
    return root, summary


def annotations(root, split="val2017"):
    return json.loads((root / "annotations" / f"person_keypoints_{split}.json").read_text())


def test_layout_loads_with_pycocotools(data):
    root, summary = data
    for split, count in (("train2017", SMALL.train_images), ("val2017", SMALL.val_images)):
        coco = quiet(COCO, str(root / "annotations" / f"person_keypoints_{split}.json"))
        assert len(coco.getImgIds()) == count
        cat = coco.loadCats(1)[0]
        assert cat["name"] == "person" and cat["keypoints"] == list(KEYPOINT_NAMES)
        assert cat["skeleton"] == [[a + 1, b + 1] for a, b in SKELETON]
        for img in coco.loadImgs(coco.getImgIds()):
            assert img["file_name"] == f"{img['id']:012d}.jpg"
            pixels = cv2.imread(str(root / split / img["file_name"]))
            assert pixels.shape == (img["height"], img["width"], 3)
            assert 320 <= img["width"] <= 480 and 240 <= img["height"] <= 360
    dets = quiet(coco.loadRes, str(root / DET_FILE))
    assert len(dets.getAnnIds()) == summary["detections"] > 0
    assert summary["val_instances"] == len(coco.getAnnIds())


def test_annotation_fields(data):
    ann = annotations(data[0])["annotations"]
    assert {a["id"] for a in ann} == set(range(1, len(ann) + 1))
    for a in ann:
        assert a["category_id"] == 1 and a["iscrowd"] == 0 and a["area"] > 0
        kp = np.array(a["keypoints"]).reshape(17, 3)
        assert set(kp[:, 2]) <= {0, 1, 2}
        assert a["num_keypoints"] == np.sum(kp[:, 2] > 0) > 0


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = SyntheticConfig(train_images=3, val_images=3, seed=7)
    generate(cfg, tmp_path / "a")
    generate(cfg, tmp_path / "b")
    generate(SyntheticConfig(train_images=3, val_images=3, seed=8), tmp_path / "c")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 3 + 3 + 2 + 1
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert all((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files)


def test_visibility_rules_by_hand():
    """v=0 outside the image or left unlabelled (zeroed), v=2 where the figure is on top, v=1 under others or
    hidden by the head."""
    labels = np.zeros((20, 30), np.uint8)
    labels[:, :15] = 1                      # this figure covers the left half
    labels[:, 15:25] = 2                    # another figure in front on the right
    kp = np.zeros((17, 2))
    kp[:] = (5, 5)
    kp[0], kp[1], kp[2], kp[3] = (-2, 5), (18, 5), (5, 25), (29.5, 19.5)
    hidden = np.zeros(17, bool)
    hidden[4] = True
    mask = (labels == 1).astype(np.uint8) * 255
    person = dict(kp=kp, hidden=hidden, mask=mask, label=1)
    out = synthetic._annotate(person, labels, np.zeros(17, bool))
    assert out["v"][:5].tolist() == [0, 1, 0, 1, 1]
    assert out["v"][5:].tolist() == [2] * 12
    assert out["kp"][0].tolist() == [0, 0] and out["kp"][2].tolist() == [0, 0]
    assert out["bbox"] == [0, 0, 29.5, 20] and out["area"] == 15 * 20
    unlabelled = np.zeros(17, bool)
    unlabelled[[1, 6]] = True               # drawn in the image, left out by the annotator
    out = synthetic._annotate(person, labels, unlabelled)
    assert out["v"][:7].tolist() == [0, 0, 0, 1, 1, 2, 0] and out["kp"][6].tolist() == [0, 0]


def test_a_tenth_of_the_labelled_keypoints_are_left_unlabelled():
    """The weight-0 keypoints the training loss must ignore: the same scenes drawn with and without them differ
    only in about 10% of the labels turned to v=0, never in the pixels."""
    labelled = dropped = 0
    for index in range(20):
        (img0, people0), (img1, people1) = (
            synthetic._render(np.random.default_rng([0, 0, index]), synthetic.SceneSpec(unlabelled_prob=p))
            for p in (0.0, 0.1))
        assert np.array_equal(img0, img1)
        for a, b in zip(people0, people1):
            assert np.all((b["v"] == a["v"]) | (b["v"] == 0))
            labelled += int(np.sum(a["v"] > 0))
            dropped += int(np.sum((a["v"] > 0) & (b["v"] == 0)))
    assert 0.05 < dropped / labelled < 0.15, (dropped, labelled)


def test_generated_data_has_every_visibility(data):
    v = np.concatenate([np.array(a["keypoints"])[2::3] for split in ("train2017", "val2017")
                        for a in annotations(data[0], split)["annotations"]])
    assert np.all(np.isin(v, (0, 1, 2))) and all(np.sum(v == x) > 0 for x in (0, 1, 2))


def test_frontal_figures_have_left_on_the_image_right():
    """Before the global rotation every figure faces the camera: its left side has the larger x."""
    for i in range(200):
        kp, hidden, _ = synthetic._pose(np.random.default_rng([1, i]))
        for part in ("shoulder", "hip", "eye"):
            assert kp[K[f"left_{part}"], 0] > kp[K[f"right_{part}"], 0], (i, part)
        assert not (hidden[K["left_ear"]] and hidden[K["right_ear"]])
        if not hidden[K["left_ear"]] and not hidden[K["right_ear"]]:
            assert kp[K["left_ear"], 0] > kp[K["right_ear"], 0]
        assert kp[K["nose"], 1] < kp[K["left_shoulder"], 1]      # head above the shoulders (y down)


def test_bbox_encloses_labelled_keypoints(data):
    for a in annotations(data[0])["annotations"]:
        x, y, w, h = a["bbox"]
        kp = np.array(a["keypoints"]).reshape(17, 3)
        kp = kp[kp[:, 2] > 0]
        assert np.all(kp[:, 0] >= x - 0.01) and np.all(kp[:, 0] <= x + w + 0.01)
        assert np.all(kp[:, 1] >= y - 0.01) and np.all(kp[:, 1] <= y + h + 0.01)


def test_detection_file_has_false_positives_and_misses(data):
    root, s = data
    dets = json.loads((root / DET_FILE).read_text())
    assert s["det_false_positive"] > 0 and s["det_missed"] > 0 and s["det_duplicate"] > 0
    assert len(dets) == s["det_true"] + s["det_duplicate"] + s["det_false_positive"]
    assert s["det_true"] + s["det_missed"] == s["val_instances"]
    for d in dets:
        assert set(d) == {"image_id", "category_id", "bbox", "score"} and d["category_id"] == 1
        assert d["bbox"][2] > 0 and d["bbox"][3] > 0 and 0 < d["score"] < 1


def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    return iw * ih / (aw * ah + bw * bh - iw * ih)


def test_perfect_detector_gives_one_box_per_person(tmp_path):
    spec = SceneSpec(det_miss_rate=0, det_fp_per_image=0, det_duplicate_rate=0)
    s = generate(SyntheticConfig(train_images=0, val_images=8, seed=3), tmp_path / "d", spec)
    dets = json.loads((tmp_path / "d" / DET_FILE).read_text())
    gts = annotations(tmp_path / "d")["annotations"]
    assert s["det_false_positive"] == s["det_missed"] == s["det_duplicate"] == 0
    assert len(dets) == len(gts) == s["val_instances"]
    for gt, det in zip(gts, dets):
        assert det["image_id"] == gt["image_id"] and iou(gt["bbox"], det["bbox"]) > 0.5


def test_ground_truth_as_predictions_scores_ap_one(data):
    ann_file = str(data[0] / "annotations" / "person_keypoints_val2017.json")
    gt = quiet(COCO, ann_file)
    results = [dict(image_id=a["image_id"], category_id=1, keypoints=a["keypoints"], score=1.0)
               for a in gt.loadAnns(gt.getAnnIds())]
    dt = quiet(gt.loadRes, results)
    ev = COCOeval(gt, dt, "keypoints")
    for step in (ev.evaluate, ev.accumulate, ev.summarize):
        quiet(step)
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[5] == pytest.approx(1.0)


def test_replaces_each_part_only_after_success(tmp_path, monkeypatch):
    root = tmp_path / "syn"
    (root / "val2017").mkdir(parents=True)
    (root / "val2017" / "stale.jpg").write_bytes(b"from an older data set")
    generate(SyntheticConfig(train_images=1, val_images=1, seed=0), root)
    assert not (root / "val2017" / "stale.jpg").exists() and (root / "annotations").is_dir()

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_detections", broken)
    with pytest.raises(RuntimeError):
        generate(SyntheticConfig(train_images=1, val_images=2, seed=1), root)
    assert len(annotations(root)["images"]) == 1                  # the old data set survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]   # no temporary directory left


def test_writes_only_the_parts_asked_for(tmp_path):
    """Each DVC data stage owns some parts of data/<profile> (data_val: val2017, annotations, detections;
    data_train: train2017), and they are the same bytes as when the whole set is written at once."""
    cfg = SyntheticConfig(train_images=2, val_images=2, seed=0)
    whole, split = tmp_path / "whole", tmp_path / "split"
    generate(cfg, whole)
    generate(cfg, split, parts=("train2017",))
    assert sorted(p.name for p in split.iterdir()) == ["train2017"]
    generate(cfg, split, parts=("val2017", "annotations", "person_detection_results"))
    files = lambda root: {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}  # noqa: E731
    assert files(split) == files(whole)


def test_a_hundred_images_are_written_and_each_decodes_to_its_annotated_size(tmp_path):
    """(How long it takes is benchmarks/bench_data.py's, not a test's.)"""
    import cv2
    root = tmp_path / "hundred"
    generate(SyntheticConfig(train_images=100, val_images=0, seed=0), root)
    with open(root / "annotations/person_keypoints_train2017.json") as f:
        images = json.load(f)["images"]
    assert len(images) == 100
    for image in images:
        decoded = cv2.imread(str(root / "train2017" / image["file_name"]))
        assert decoded is not None and decoded.shape[:2] == (image["height"], image["width"]), image
