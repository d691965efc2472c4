"""The bootstrap over images (repro.evaluation.bootstrap): exact pycocotools stats for any image resample,
an interval that covers the full-set AP at its nominal rate, a planted shift detected, and the same
coverage check failing when boxes are resampled instead of images."""
import json

import numpy as np
import pytest
from scipy.stats import binom

from tests.unit.evaluation import bootstrap_data as data
from repro.evaluation import bootstrap, evaluate


def _reference(coco_gt, results) -> np.ndarray:
    metrics = evaluate.coco_keypoint_eval(coco_gt, results)
    return np.array([metrics[name] for name in bootstrap.STAT_NAMES])


def _renamed(gt: dict, results: list, image_ids) -> tuple:
    """The images `image_ids` (duplicates allowed) as new images 1..n with their GT and results: what a
    resample is when scored by COCOeval itself."""
    by_id = {im["id"]: im for im in gt["images"]}
    images, anns, res = [], [], []
    for new, old in enumerate(image_ids, 1):
        images.append({**by_id[old], "id": new})
        mine = [a for a in gt["annotations"] if a["image_id"] == old]
        anns += [{**a, "id": len(anns) + k, "image_id": new} for k, a in enumerate(mine, 1)]
        res += [{**r, "image_id": new} for r in results if r["image_id"] == old]
    return data.as_coco({**gt, "images": images, "annotations": anns}), res


@pytest.fixture(scope="module")
def small_set():
    gt = data.ground_truth(60, seed=3)
    return gt, data.predictions(gt, seed=4)


def test_stats_equal_pycocotools_on_the_real_sample(coco_sample):
    gt = json.loads((coco_sample / "test_coco.json").read_text())
    gt["images"] = [im for im in gt["images"] if any(a["image_id"] == im["id"] for a in gt["annotations"])]
    coco = data.as_coco(gt)
    rng = np.random.default_rng(0)
    results = []
    for a in gt["annotations"]:   # the GT moved by a few pixels, and some copies: a real sample's results
        for _ in range(1 + int(rng.integers(0, 2))):
            kp = np.asarray(a["keypoints"], float).reshape(17, 3)
            kp[:, :2] += rng.normal(0, 4, (17, 2))
            results.append(dict(image_id=a["image_id"], category_id=1, score=float(rng.uniform(0.2, 1)),
                                keypoints=kp.ravel().tolist()))
    table = bootstrap.image_table(coco, results)
    assert np.array_equal(bootstrap.stats(table), _reference(coco, results))
    idx = [0, 0, len(table.image_ids) - 1]
    renamed = _renamed(gt, results, table.image_ids[idx])
    assert np.array_equal(bootstrap.stats(table, idx), _reference(*renamed))


def test_a_resample_with_duplicates_equals_cocoeval_on_the_renamed_images(small_set):
    gt, results = small_set
    table = bootstrap.image_table(data.as_coco(gt), results)
    assert np.array_equal(bootstrap.stats(table), _reference(data.as_coco(gt), results))
    for seed in range(3):
        idx = bootstrap.draw_images(len(table.image_ids), 1, seed)[0]
        assert len(set(idx)) < len(idx)   # duplicates present
        assert np.array_equal(bootstrap.stats(table, idx), _reference(*_renamed(gt, results, table.image_ids[idx])))


# ------------------------------------------------------------------------------- coverage and power
POPULATION, N, SUBSETS, RESAMPLES, LEVEL = 1000, 100, 150, 400, 0.95
# Each subset's interval covers the full-set AP or not: a Binomial(SUBSETS, 0.95) count when the interval is
# right (subsets of 100 of 1000 images overlap little, so nearly independent). Accept the central 99.8% of
# it: [133, 149] of 150. A right method fails this 1 time in 500; a wrong one that covers 88% or less fails
# it nearly always.
LOW, HIGH = binom.ppf(0.001, SUBSETS, LEVEL), binom.ppf(0.999, SUBSETS, LEVEL)


@pytest.fixture(scope="module")
def population():
    gt = data.ground_truth(POPULATION, seed=0)
    coco = data.as_coco(gt)
    return gt, coco, bootstrap.image_table(coco, data.predictions(gt, seed=1))


def _subsets(seed=5):
    rng = np.random.default_rng(seed)
    return [np.sort(rng.choice(POPULATION, N, replace=False)) for _ in range(SUBSETS)]


def image_interval(table, positions, seed):
    lo, hi = bootstrap.percentile_interval(bootstrap.bootstrap(table, RESAMPLES, seed, positions), LEVEL)
    return lo[0], hi[0]


def box_interval(table, positions, seed):
    """The wrong method: the subset's detections resampled one by one, as if boxes were independent."""
    area = table.areas["all"]
    rows, npig, rng = bootstrap.rows_of(area, positions), int(area.npig[positions].sum()), np.random.default_rng(seed)
    aps = []
    for _ in range(RESAMPLES):
        p, _ = bootstrap.precision_recall(area, rows[rng.integers(0, len(rows), len(rows))], npig, table.rec_thrs)
        aps.append(np.mean(p[p > -1]))
    return tuple(np.quantile(aps, [(1 - LEVEL) / 2, (1 + LEVEL) / 2]))


def covered(table, interval) -> int:
    full = bootstrap.stats(table)[0]
    return sum(lo <= full <= hi for lo, hi in (interval(table, pos, i) for i, pos in enumerate(_subsets())))


@pytest.mark.slow
def test_the_image_interval_covers_the_full_set_ap_at_its_nominal_rate(population):
    assert LOW <= covered(population[2], image_interval) <= HIGH


@pytest.mark.slow
def test_the_coverage_check_fails_when_boxes_are_resampled(population):
    assert covered(population[2], box_interval) < LOW


@pytest.mark.slow
def test_a_planted_regression_is_detected(population):
    """Predictions with extra keypoint noise (a planted regression) against the clean full-set AP as the
    'published' number: the widened-interval check (tier A's 0.002) flags it in at least 80% of subsets
    once the planted gap is past the subsets' detectable gap; and the clean predictions pass at ~95%."""
    gt, coco, clean = population
    shifted = bootstrap.image_table(coco, data.predictions(gt, seed=1, extra_noise=0.03))
    published, tol = bootstrap.stats(clean)[0], 0.002
    gap = published - bootstrap.stats(shifted)[0]
    subsets = _subsets(seed=9)[:40]
    flagged, gaps = 0, []
    for i, pos in enumerate(subsets):
        draws = bootstrap.bootstrap(shifted, RESAMPLES, i, pos)[:, 0]
        lo, hi = bootstrap.percentile_interval(draws, LEVEL)
        flagged += not (lo - tol <= published <= hi + tol)
        gaps.append(bootstrap.detectable_gap(np.std(draws, ddof=1), tol, LEVEL))
    assert gap > np.median(gaps)   # the planted regression is one these subsets should catch
    assert flagged >= 0.8 * len(subsets)
