"""repro.evaluation.golden: the diff reports exactly the moved keypoints, changed scores and unmatched instances."""
import copy

import pytest

from repro.evaluation import golden
from repro.keypoints import KEYPOINT_NAMES


def _result(image_id, bbox, x0=10.0, score=0.8):
    kps = []
    for k in range(17):
        kps += [x0 + k, 20.0 + k, 0.5]
    return {"image_id": image_id, "category_id": 1, "keypoints": kps, "score": score, "bbox": bbox}


@pytest.fixture
def gold():
    return [_result(1, [0.0, 0.0, 50.0, 100.0]), _result(1, [60.0, 5.0, 40.0, 90.0]),
            _result(2, [1.0, 2.0, 3.0, 4.0])]


def diff(a, b):
    return golden.diff(a, b, keypoint_px=0.01, score_abs=1e-4)


def test_identical_results_report_nothing(gold):
    d = diff(gold, copy.deepcopy(gold))
    assert (d["matched"], d["only_golden"], d["only_new"], d["changed_keypoints"], d["changed_instances"]) \
        == (3, 0, 0, 0, 0)
    assert d["first_changed"] == [] and d["num_keypoints"] == 3 * 17


def test_a_moved_keypoint_is_named_with_its_displacement(gold):
    new = copy.deepcopy(gold)
    new[1]["keypoints"][3 * 9] += 3.0       # left_wrist x
    new[1]["keypoints"][3 * 9 + 1] += 4.0   # and y: 5 px
    d = diff(gold, new)
    assert d["moved_keypoints"] == 1 and d["changed_keypoints"] == 1 and d["changed_instances"] == 1
    assert d["max_keypoint_px"] == pytest.approx(5.0)
    assert d["changed_fraction"] == pytest.approx(1 / 51)
    assert d["first_changed"] == [{"image_id": 1, "bbox": [60.0, 5.0, 40.0, 90.0],
                                   "keypoints": {KEYPOINT_NAMES[9]: 5.0}, "score_delta": 0.0}]
    assert "left_wrist 5.00px" in golden.render(d)


def test_a_moved_keypoint_within_tolerance_is_not_reported(gold):
    new = copy.deepcopy(gold)
    new[0]["keypoints"][0] += 0.005
    assert diff(gold, new)["changed_keypoints"] == 0


def test_changed_scores_are_reported(gold):
    new = copy.deepcopy(gold)
    new[0]["score"] += 0.01
    new[2]["keypoints"][2] -= 0.2
    d = diff(gold, new)
    assert d["moved_keypoints"] == 0 and d["changed_keypoints"] == 1 and d["changed_instances"] == 2
    assert d["max_score_abs"] == pytest.approx(0.01) and d["max_keypoint_score_abs"] == pytest.approx(0.2)
    assert [i["image_id"] for i in d["first_changed"]] == [1, 2]


def test_dropped_and_added_instances_are_unmatched(gold):
    new = copy.deepcopy(gold[:2]) + [_result(3, [0.0, 0.0, 1.0, 1.0])]
    d = diff(gold, new)
    assert (d["matched"], d["only_golden"], d["only_new"], d["changed_keypoints"]) == (2, 1, 1, 0)


def test_boxes_match_after_rounding_to_1e_3(gold):
    new = copy.deepcopy(gold)
    new[0]["bbox"] = [v + 1e-5 for v in new[0]["bbox"]]
    assert diff(gold, new)["matched"] == 3
    new[0]["bbox"][0] += 0.01
    assert diff(gold, new)["only_golden"] == 1


def test_first_changed_is_capped(gold):
    new = copy.deepcopy(gold)
    for r in new:
        r["score"] += 1
    d = golden.diff(gold, new, keypoint_px=0.01, score_abs=1e-4, max_listed=2)
    assert d["changed_instances"] == 3 and len(d["first_changed"]) == 2


def test_changed_instance_fraction_counts_instance_scores(gold):
    new = copy.deepcopy(gold)
    new[0]["score"] += 0.01
    d = diff(gold, new)
    assert d["changed_fraction"] == 0.0 and d["changed_instance_fraction"] == pytest.approx(1 / 3)
