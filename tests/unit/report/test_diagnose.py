"""repro.report.diagnose: each Ronchi & Perona error type planted alone is found alone, and only fixing it
recovers AP."""
import copy
import json
import math

import pytest

from repro import cli
from repro.report import diagnose
from repro.keypoints import KEYPOINT_NAMES, OKS_SIGMAS
from tests.conftest import assert_plot_png

K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
AREA = 10000.0
# Four labelled keypoints per person (COCO has many such people): one wrong keypoint moves the person's OKS
# by a quarter, enough to cross the AP thresholds 0.5..0.95.
POSE = {"left_shoulder": (40, 30), "right_shoulder": (60, 30), "left_wrist": (20, 80), "right_wrist": (80, 80)}
PEOPLE = {1: (1, (0, 0)), 2: (2, (0, 0)), 3: (2, (300, 0))}   # GT id: (image id, offset); 2 and 3 share image 2


def person(gt_id, image_id, offset) -> dict:
    kpts = [0] * 51
    for name, (x, y) in POSE.items():
        kpts[3 * K[name]:3 * K[name] + 3] = [x + offset[0], y + offset[1], 2]
    return {"id": gt_id, "image_id": image_id, "category_id": 1, "keypoints": kpts, "num_keypoints": len(POSE),
            "area": AREA, "bbox": [offset[0], offset[1], 100, 100], "iscrowd": 0}


@pytest.fixture
def gt_file(tmp_path):
    data = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in (1, 2)],
            "annotations": [person(g, img, off) for g, (img, off) in PEOPLE.items()],
            "categories": [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES), "skeleton": []}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(data))
    return path


def perfect() -> dict:
    """GT id -> a detection equal to that GT person."""
    return {g: {"image_id": img, "category_id": 1, "keypoints": person(g, img, off)["keypoints"], "score": 0.9}
            for g, (img, off) in PEOPLE.items()}


def move(result, name, x, y):
    result["keypoints"][3 * K[name]:3 * K[name] + 2] = [x, y]


def at_ks(ks, name) -> float:
    """Pixel distance from a GT keypoint at which its keypoint similarity is `ks` (area AREA)."""
    return math.sqrt(-math.log(ks) * 2 * AREA * (2 * OKS_SIGMAS[K[name]]) ** 2)


def jitter(dets):
    move(dets[1], "left_shoulder", 40, 30 + at_ks(0.6, "left_shoulder"))   # down, away from the right shoulder


def inversion(dets):
    move(dets[1], "left_wrist", 80, 80)          # on the same person's right wrist


def swap(dets):
    move(dets[2], "left_wrist", 320, 80)         # on person 3's left wrist (same image)


def miss(dets):
    move(dets[1], "right_wrist", 500, 400)       # near no one


def background_fp(dets):
    dets[99] = {**copy.deepcopy(dets[1]), "score": 0.99}
    for i in range(0, 51, 3):
        dets[99]["keypoints"][i] += 400         # a confident person where there is none


def false_negative(dets):
    del dets[3]


PLANTED = {"jitter": jitter, "inversion": inversion, "swap": swap, "miss": miss, "background_fp": background_fp,
           "false_negative": false_negative}


def planted(error) -> list:
    dets = perfect()
    PLANTED[error](dets)
    return list(dets.values())


def write(path, results):
    path.write_text(json.dumps(results))
    return path


@pytest.mark.parametrize("error", list(PLANTED))
def test_a_planted_error_is_found_alone_and_only_its_fix_recovers_ap(gt_file, error):
    coco_gt = diagnose.load_ground_truth(gt_file)
    report = diagnose.analyse(coco_gt, planted(error))
    assert diagnose.ap_all(coco_gt, planted(error)) == pytest.approx(report["ap"]["all"])   # = COCOeval.stats[0]
    found = {e: n for e, n in report["errors"].items() if e != "good" and n}
    assert found == {error: 1}
    assert report["ap"]["all"] < 1.0
    assert report["ap_recovered"][error] > 0.05
    others = {e: v for e, v in report["ap_recovered"].items() if e != error}
    assert others == pytest.approx(dict.fromkeys(others, 0.0), abs=1e-9)


def test_perfect_detections_have_no_errors_and_full_ap(gt_file):
    report = diagnose.analyse(diagnose.load_ground_truth(gt_file), list(perfect().values()))
    assert report["errors"] == {**dict.fromkeys(diagnose.ERRORS, 0), "good": 3 * len(POSE)}
    assert report["ap"] == {"all": pytest.approx(1.0), "medium": None, "large": pytest.approx(1.0)}  # no medium
    assert report["keypoint_ks"]["left_shoulder"] == pytest.approx(1.0)


def test_jitter_lowers_the_keypoint_similarity_of_that_keypoint_only(gt_file):
    report = diagnose.analyse(diagnose.load_ground_truth(gt_file), planted("jitter"))
    ks = report["keypoint_ks"]
    # person 1 of 3 has its left shoulder at ks 0.6: mean (0.6 + 1 + 1) / 3
    assert ks["left_shoulder"] == pytest.approx((0.6 + 2) / 3)
    assert [ks[name] for name in POSE if name != "left_shoulder"] == pytest.approx([1.0] * (len(POSE) - 1))
    assert ks["nose"] is None                  # labelled in no GT person: no number, not 0


@pytest.mark.parametrize("ks,label", [(0.49, "miss"), (0.51, "jitter"), (0.84, "jitter"), (0.86, "good")])
def test_keypoint_similarity_thresholds_are_the_toolkits(gt_file, ks, label):
    coco_gt = diagnose.load_ground_truth(gt_file)
    dets = perfect()
    move(dets[1], "left_shoulder", 40, 30 + at_ks(ks, "left_shoulder"))
    labels, own, _ = diagnose.classify(coco_gt, dets[1], 1)
    assert own[K["left_shoulder"]] == pytest.approx(ks)
    assert labels[K["left_shoulder"]] == label


def test_keypoint_similarity_is_measured_against_the_matched_person_not_the_best_match(gt_file):
    report = diagnose.analyse(diagnose.load_ground_truth(gt_file), planted("inversion"))
    assert report["keypoint_ks"]["left_wrist"] == pytest.approx(2 / 3, abs=1e-3)   # person 1's is ~0


@pytest.mark.parametrize("error,target", [("jitter", 0.85), ("miss", 0.5), ("inversion", 1.0)])
def test_a_corrected_keypoint_lands_on_its_target_similarity(gt_file, error, target):
    coco_gt = diagnose.load_ground_truth(gt_file)
    dets = planted(error)
    labels, _, best = diagnose.classify(coco_gt, dets[0], 1)
    fixed = diagnose.corrected(dets[0], coco_gt.anns[1], labels, best, error)
    labels_after, own, _ = diagnose.classify(coco_gt, fixed, 1)
    k = labels.index(error)
    assert own[k] == pytest.approx(target)
    assert labels_after[k] in ("good", "jitter")


def test_diagnose_reports_the_difference_and_the_largest_losses(gt_file, tmp_path):
    a = write(tmp_path / "a.json", list(perfect().values()))
    b = write(tmp_path / "b.json", planted("miss"))
    report = diagnose.diagnose(gt_file, a, b)
    assert report["difference"]["errors"]["miss"] == 1
    assert report["difference"]["ap"]["all"] < 0
    assert [(r["image_id"], r["gt_id"], r["oks_a"], r["oks_b"]) for r in report["largest_losses"]] == \
        [(1, 1, 1.0, pytest.approx(0.75, abs=1e-4))]


def coco_sample_results(coco_sample) -> list:
    """The sample's GT people as predictions (score 1)."""
    data = json.loads((coco_sample / "test_coco.json").read_text())
    return [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in data["annotations"] if a["num_keypoints"] > 0]


def test_cli_on_the_coco_sample_finds_the_perturbed_people(coco_sample, tmp_path, capsys):
    gt_as_results = coco_sample_results(coco_sample)
    perturbed = copy.deepcopy(gt_as_results)
    for r in perturbed[:3]:                    # three people: their first three labelled keypoints 200 px right
        labelled = [i for i in range(0, 51, 3) if r["keypoints"][i + 2] > 0][:3]
        r["keypoints"] = [v + 200 if i in labelled else v for i, v in enumerate(r["keypoints"])]
    a, b = write(tmp_path / "a.json", gt_as_results), write(tmp_path / "b.json", perturbed)
    out = tmp_path / "diagnosis"
    assert cli.main(["diagnose", str(a), str(b), "--gt", str(coco_sample / "test_coco.json"),
                     "--out", str(out)]) == 0
    report = json.loads((out / "diagnosis.json").read_text())
    assert report["a_report"]["ap"]["all"] == pytest.approx(1.0)
    assert report["b_report"]["ap"]["all"] < 1.0
    localisation = {side: sum(report[side]["errors"][e] for e in diagnose.KEYPOINT_ERRORS)
                    for side in ("a_report", "b_report")}
    assert localisation == {"a_report": 0, "b_report": 9}
    assert report["b_report"]["errors"]["miss"] > 0
    assert {r["image_id"] for r in report["largest_losses"]} == {r["image_id"] for r in perturbed[:3]}
    assert len(report["largest_losses"]) == 3
    assert_plot_png(out / "keypoint_oks.png")
    assert "## Diagnosis" in (out / "diagnosis.md").read_text() == capsys.readouterr().out.rstrip("\n") + "\n"


@pytest.mark.parametrize("content,message", [
    ("{}", "must be a JSON list"),
    ('[{"image_id": 1, "keypoints": [1, 2], "score": 1}]', "result 0: 'keypoints' must be 51"),
    ('[{"image_id": 7, "keypoints": ' + json.dumps([0] * 51) + ', "score": 1}]', "image_id 7 is not in"),
    ("not json", "not a readable JSON"),
])
def test_bad_results_give_one_line_naming_the_file(gt_file, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    good = write(tmp_path / "good.json", list(perfect().values()))
    assert cli.main(["diagnose", str(good), str(bad), "--gt", str(gt_file), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and message in err
    assert not (tmp_path / "o").exists()


def test_a_ground_truth_that_is_not_coco_keypoints_gives_one_line(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]}))
    results = write(tmp_path / "r.json", [])
    assert cli.main(["diagnose", str(results), str(results), "--gt", str(gt), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(gt) in err and "no category with keypoints" in err


def test_an_empty_result_file_misses_every_person(gt_file, tmp_path):
    report = diagnose.diagnose(gt_file, write(tmp_path / "a.json", list(perfect().values())),
                               write(tmp_path / "b.json", []))
    assert report["b_report"]["ap"]["all"] == 0.0
    assert report["b_report"]["errors"]["false_negative"] == len(PEOPLE)
    assert len(report["largest_losses"]) == len(PEOPLE)
