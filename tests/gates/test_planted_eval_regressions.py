"""Planted evaluation regressions (issue 10 item 5): each one, evaluated on the committed 256x192 smoke
reference, makes tier E fail on any platform; the unplanted code passes (tests/gates/test_tier_e.py).
Five evaluations of the reference (about a minute of CPU): marked slow, so CI's slow run executes it."""
import numpy as np
import pytest

from repro import codec
from repro.data import transforms

pytestmark = pytest.mark.slow


def _crop_half_pixel(monkeypatch):
    crop = transforms.affine_crop

    def shifted(img, matrix, input_size):
        m = np.array(matrix, np.float64)
        m[:, 2] += 0.5
        return crop(img, m, input_size)
    monkeypatch.setattr(transforms, "affine_crop", shifted)


PLANTS = {
    "flip shift removed": ({"shift_heatmap": False}, None),
    "rescoring threshold 0.3": ({"keypoint_score_thr": 0.3}, None),
    "OKS-NMS 0.5": ({"nms_thr": 0.5}, None),
    "no quarter-pixel step": (None, lambda mp: mp.setattr(codec, "refine_quarter", lambda locs, hm: locs)),
    "crop shifted half a pixel": (None, _crop_half_pixel),
}


@pytest.mark.parametrize("plant", PLANTS)
def test_planted_eval_regression_fails_tier_e(plant, run_tier_e, monkeypatch):
    overrides, patch = PLANTS[plant]
    if patch:
        patch(monkeypatch)
    results, problems = run_tier_e(["256x192"], overrides)
    assert results[0].ran, results[0].not_run
    assert any(" golden: fail" in p for p in problems), problems
