"""Rescoring, OKS-NMS and the COCO result format (repro/evaluation/postprocess.py), checked by hand and against
a straightforward per-pair reference written here (mmpose's `oks_iou` / `oks_nms` loops)."""
import numpy as np
import pytest

from repro.evaluation.postprocess import (Predictions, check_finite, oks_matrix, oks_nms, postprocess, rescore,
                                          to_coco_results)
from repro.keypoints import OKS_SIGMAS

K = len(OKS_SIGMAS)


def reference_oks(a, b, area_a, area_b):
    """OKS of two instances, one keypoint at a time (mmpose oks_iou, vis_thr=None)."""
    total = 0.0
    for k in range(K):
        d2 = (a[k, 0] - b[k, 0]) ** 2 + (a[k, 1] - b[k, 1]) ** 2
        e = d2 / (2 * OKS_SIGMAS[k]) ** 2 / ((area_a + area_b) / 2 + np.spacing(1)) / 2
        total += np.exp(-e)
    return total / K


def reference_nms(image_ids, keypoints, scores, areas, thr):
    """mmpose's CocoMetric + oks_nms, one image at a time: images in order of first appearance, an image's
    rows in input (instance id) order, `order = scores.argsort()[::-1]`, keep the first, drop all remaining
    with OKS > thr against it, repeat; results written in kept order."""
    kept = []
    for img in dict.fromkeys(image_ids.tolist()):
        idx = np.flatnonzero(image_ids == img)
        order = list(idx[scores[idx].argsort()[::-1]])
        while order:
            i, rest = order[0], order[1:]
            kept.append(i)
            order = [j for j in rest if reference_oks(keypoints[i], keypoints[j], areas[i], areas[j]) <= thr]
    return np.array(kept, dtype=np.int64)


def person(cx, cy, size=100.0, rng=None):
    """17 keypoints spread over a size x size box around (cx, cy)."""
    rng = rng or np.random.default_rng(0)
    return np.array([cx, cy]) + rng.uniform(-size / 2, size / 2, (K, 2))


def test_rescore_hand_computed():
    scores = np.zeros((4, K))
    scores[0, :4] = [0.2, 0.5, 0.9, 0.1]   # 0.2 is not strictly above: mean(0.5, 0.9) = 0.7
    scores[1, :3] = [0.2, 0.15, 0.2]       # nothing above 0.2 -> 0
    scores[2, :] = 1.0                     # mean 1.0
    scores[3, :2] = [0.3, 0.21]            # mean 0.255
    bbox = np.array([0.8, 0.9, 0.5, 2.0])
    np.testing.assert_allclose(rescore(scores, bbox, 0.2), [0.56, 0.0, 0.5, 0.51])


def test_rescore_is_bit_identical_to_mmpose_sequential_loop():
    """CocoMetric compares each float32 keypoint score with the Python float thr, adds those above one at a
    time onto an int 0, divides by the count and multiplies by the float32 bbox score. Under numpy 1.x
    (what mmcv 2.x wheels for mmpose 1.3.2 are built against) scalar float32 with a Python number promotes
    to float64, so this loop is written with Python floats; note float32(0.2) > 0.2 there. Sums of at most
    17 float32 values above 0.2 are exact in float64 whatever the order, so the vectorised sum is bit-equal."""
    rng = np.random.default_rng(6)
    kpt = rng.uniform(0, 1.2, (500, K)).astype(np.float32)
    kpt[::7] = np.float32(0.2)                                   # exactly at the threshold: not counted
    bbox = rng.uniform(0, 1, 500).astype(np.float32)
    expected = []
    for row, b in zip(kpt, bbox):
        total, count = 0.0, 0
        for v in map(float, row):
            if v > 0.2:
                total, count = total + v, count + 1
        expected.append(float(b) * (total / count if count else 0.0))
    assert rescore(kpt.astype(np.float64), bbox.astype(np.float64), 0.2).tolist() == expected


def test_oks_matrix_hand_computed_and_symmetric():
    a = person(100, 100)
    b = a.copy()
    b[0, 0] += 3.0                          # only the nose moves, 3 px
    area_a, area_b = 40000.0, 20000.0
    e = 9.0 / (2 * 0.026) ** 2 / ((area_a + area_b) / 2 + np.spacing(1)) / 2
    expected = (16 + np.exp(-e)) / 17
    m = oks_matrix(np.stack([a, b]), np.array([area_a, area_b]))
    np.testing.assert_allclose(m, [[1.0, expected], [expected, 1.0]], rtol=1e-12)


def test_oks_matrix_matches_per_pair_reference():
    rng = np.random.default_rng(1)
    kps = rng.uniform(0, 200, (6, K, 2))
    areas = rng.uniform(1e3, 5e4, 6)
    m = oks_matrix(kps, areas)
    ref = np.array([[reference_oks(kps[i], kps[j], areas[i], areas[j]) for j in range(6)] for i in range(6)])
    np.testing.assert_allclose(m, ref, rtol=1e-12)


def test_oks_nms_removes_near_duplicate_keeps_distinct_people():
    a = person(100, 100)
    dup = a + 0.5                           # half a pixel away: OKS ~ 1
    far = person(400, 300, rng=np.random.default_rng(5))
    kps = np.stack([dup, a, far, a])
    image_ids = np.array([7, 7, 7, 8])      # the last row is the same pose in another image
    scores = np.array([0.6, 0.9, 0.5, 0.1])
    areas = np.full(4, 100.0 * 100.0 * 1.25 ** 2)
    keep = oks_nms(image_ids, kps, scores, areas, thr=0.9)
    assert keep.tolist() == [1, 2, 3]       # the higher-scored twin survives, in score order


def test_oks_nms_threshold_is_strict():
    a = person(100, 100)
    kps, areas = np.stack([a, a + 20.0]), np.full(2, 1e4)
    oks = oks_matrix(kps, areas)[0, 1]
    ids, scores = np.zeros(2, np.int64), np.array([1.0, 0.5])
    assert oks_nms(ids, kps, scores, areas, thr=oks).tolist() == [0, 1]        # OKS == thr is kept
    assert oks_nms(ids, kps, scores, areas, thr=oks - 1e-9).tolist() == [0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oks_nms_matches_reference_on_crowded_images(seed):
    rng = np.random.default_rng(seed)
    n = 300
    image_ids = rng.integers(0, 12, n)
    people = rng.uniform(0, 300, (30, 2))                   # boxes cluster on a few people
    centers = people[rng.integers(0, 30, n)]
    base = rng.uniform(-40, 40, (K, 2))
    kps = centers[:, None, :] + base + rng.normal(0, rng.choice([0.5, 5, 30], n)[:, None, None], (n, K, 2))
    scores = rng.uniform(0, 1, n)
    areas = rng.uniform(2e3, 2e4, n)
    keep = oks_nms(image_ids, kps, scores, areas, thr=0.9)
    ref = reference_nms(image_ids, kps, scores, areas, 0.9)
    assert 0 < len(keep) < n                 # the case exercises suppression
    assert keep.tolist() == ref.tolist()


@pytest.mark.parametrize("chunk", [1 << 21, 1])
def test_oks_nms_matches_reference_over_many_image_sizes(chunk, monkeypatch):
    """Images are batched by size (and chunked); sizes 1..30, several images per size, shuffled rows."""
    import repro.evaluation.postprocess
    monkeypatch.setattr(repro.evaluation.postprocess, "_CHUNK", chunk)
    rng = np.random.default_rng(3)
    sizes = np.repeat(np.arange(1, 31), 3)
    image_ids = rng.permutation(np.repeat(np.arange(len(sizes)) * 7 + 5, sizes))
    n = len(image_ids)
    people = rng.uniform(0, 300, (n // 3, 2))[rng.integers(0, n // 3, n)]
    kps = people[:, None, :] + rng.uniform(-40, 40, (K, 2)) + rng.normal(0, 1, (n, K, 2)) * rng.choice(
        [0.5, 30], n)[:, None, None]
    scores = np.round(rng.uniform(0, 1, n), 2)              # with ties
    areas = rng.uniform(2e3, 2e4, n)
    keep = oks_nms(image_ids, kps, scores, areas, thr=0.9)
    assert keep.tolist() == reference_nms(image_ids, kps, scores, areas, 0.9).tolist()
    assert len(keep) < n


def test_oks_nms_empty():
    assert oks_nms(np.zeros(0, np.int64), np.zeros((0, K, 2)), np.zeros(0), np.zeros(0)).tolist() == []


def test_equal_scores_are_visited_in_reversed_argsort_order_not_input_order():
    """Three far-apart people with one score (e.g. all scored 0): argsort leaves the ties in place and the
    reversal puts the last row first, so mmpose writes them as rows 2, 1, 0."""
    kps = np.stack([person(100, 100), person(400, 100), person(700, 100)])
    keep = oks_nms(np.zeros(3, np.int64), kps, np.zeros(3), np.full(3, 1e4))
    assert keep.tolist() == [2, 1, 0]


def test_of_two_tied_duplicates_the_later_row_survives():
    a = person(100, 100)
    kps = np.stack([a, a + 0.5, person(400, 300, rng=np.random.default_rng(5))])
    scores = np.array([0.4, 0.4, 0.7])
    keep = oks_nms(np.zeros(3, np.int64), kps, scores, np.full(3, 1e4), thr=0.9)
    assert keep.tolist() == [2, 1]        # old input-order tie break kept row 0 instead


def test_results_come_image_by_image_in_order_of_first_appearance():
    """CocoMetric groups by image in a dict (insertion order), it does not sort the image ids."""
    kps = np.stack([person(100 * i, 100) for i in range(5)])
    image_ids = np.array([9, 3, 9, 5, 3])
    keep = oks_nms(image_ids, kps, np.array([0.1, 0.5, 0.3, 0.2, 0.5]), np.full(5, 1e4))
    assert keep.tolist() == [2, 0, 4, 1, 3]


def test_ties_in_large_images_match_the_per_image_argsort():
    """Images bigger than numpy's small-array insertion sort (16), most scores tied at 0 or rounded:
    the batched row-wise argsort must give each image the order its own 1-D argsort gives."""
    rng = np.random.default_rng(8)
    sizes = np.repeat([17, 40, 129], 4)
    image_ids = rng.permutation(np.repeat(np.arange(len(sizes)) + 100, sizes))
    n = len(image_ids)
    kps = rng.uniform(0, 3000, (n, 1, 2)) + rng.uniform(-40, 40, (n, K, 2))
    scores = np.where(rng.random(n) < 0.6, 0.0, np.round(rng.uniform(0, 1, n), 1))
    keep = oks_nms(image_ids, kps, scores, np.full(n, 1e4), thr=0.9)
    assert keep.tolist() == reference_nms(image_ids, kps, scores, np.full(n, 1e4), 0.9).tolist()
    first = np.flatnonzero(image_ids == image_ids[0])
    assert keep[:len(first)].tolist() != first[np.lexsort((first, -scores[first]))].tolist()  # not input order


def make_preds(n=3):
    rng = np.random.default_rng(0)
    return Predictions(image_ids=np.arange(n, dtype=np.int64) + 10, keypoints=rng.uniform(0, 100, (n, K, 2)),
                       keypoint_scores=rng.uniform(0, 1, (n, K)), bboxes=rng.uniform(0, 50, (n, 4)),
                       bbox_scores=np.ones(n), areas=np.full(n, 5000.0))


def test_to_coco_results_format():
    preds = make_preds()
    scores = np.array([0.1, 0.2, 0.3])
    results = to_coco_results(preds, scores, np.array([2, 0]))
    assert [r["image_id"] for r in results] == [12, 10]
    r = results[0]
    assert set(r) == {"image_id", "category_id", "keypoints", "score", "bbox"}
    assert r["category_id"] == 1 and r["score"] == 0.3 and len(r["keypoints"]) == 3 * K
    assert r["keypoints"][:3] == [*preds.keypoints[2, 0].tolist(), preds.keypoint_scores[2, 0]]
    assert r["bbox"] == preds.bboxes[2].tolist()
    assert all(type(v) in (int, float) for v in [r["image_id"], r["score"], *r["keypoints"], *r["bbox"]])


def test_postprocess_keeps_distinct_people_and_scores_them():
    preds = make_preds()
    results = postprocess(preds)
    assert len(results) == 3
    expected = rescore(preds.keypoint_scores, preds.bbox_scores)
    np.testing.assert_allclose([r["score"] for r in results], expected)


def test_concat_and_empty():
    preds = make_preds()
    both = Predictions.concat([preds, Predictions.empty(), preds])
    assert len(both) == 6 and both.keypoints.shape == (6, K, 2)
    assert len(Predictions.concat([])) == 0
    assert postprocess(Predictions.empty()) == []


def test_non_finite_score_is_an_error_naming_the_row():
    preds = make_preds()
    preds.bbox_scores[1] = np.nan
    with pytest.raises(ValueError, match=r"bbox_scores.*row 1, image_id 11"):
        check_finite(preds)
    with pytest.raises(ValueError, match="non-finite"):
        postprocess(preds)
