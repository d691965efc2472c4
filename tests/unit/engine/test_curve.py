"""repro.engine.curve: a run's val AP against a hand-made reference curve (interpolation, band flags, stop verdict)."""
import math
import urllib.parse
from pathlib import Path

import pytest

from repro import config
from repro.engine import curve
from repro.engine.mmpose_log import LogFormatError
from tests.unit.engine.test_mmpose_log import log_text

REF = [(10, 0.30), (20, 0.50), (30, 0.56)]


def test_interpolate_is_exact_at_reference_epochs_linear_between_and_none_outside():
    assert curve.interpolate(REF, 10) == 0.30 and curve.interpolate(REF, 30) == 0.56
    assert curve.interpolate(REF, 15) == pytest.approx(0.40)
    assert curve.interpolate(REF, 24) == pytest.approx(0.524)
    assert curve.interpolate(REF, 9) is None and curve.interpolate(REF, 31) is None
    assert curve.interpolate([(10, 0.3)], 10) == 0.3 and curve.interpolate([], 10) is None


def test_compare_curve_flags_only_validations_more_than_the_band_below():
    measured = [(5, 0.10), (10, 0.29), (15, 0.35), (20, 0.48), (25, 0.52), (30, 0.60), (40, 0.61)]
    rows = curve.compare_curve(measured, REF, band=0.02)
    flags = {r["epoch"]: r["below_band"] for r in rows}
    # 5, 40: outside the reference; 10: 0.29 >= 0.28; 15: ref 0.40 (interpolated), 0.35 < 0.38 flagged;
    # 20: exactly ref - band, not flagged; 25: ref 0.53, 0.52 within the band; 30: above.
    assert flags == {5: None, 10: False, 15: True, 20: False, 25: False, 30: False, 40: None}
    row15 = next(r for r in rows if r["epoch"] == 15)
    assert row15["reference"] == pytest.approx(0.40) and row15["delta"] == pytest.approx(-0.05)
    assert rows[0] == {"epoch": 5, "measured": 0.10, "reference": None, "delta": None, "below_band": None}


def test_compare_curve_flags_a_non_finite_measured_ap():
    assert curve.compare_curve([(20, math.nan)], REF, band=0.02)[0]["below_band"] is True


def test_stop_verdict_from_its_epoch_on_when_below_reference_minus_margin():
    assert curve.stop_verdict(10, 0.10, REF, margin=0.05, from_epoch=20) is None     # before from_epoch
    assert curve.stop_verdict(20, 0.45, REF, margin=0.05, from_epoch=20) is None     # exactly at the margin
    assert curve.stop_verdict(40, 0.00, REF, margin=0.05, from_epoch=20) is None     # no reference there
    verdict = curve.stop_verdict(20, 0.44, REF, margin=0.05, from_epoch=20)
    assert verdict == {"epoch": 20, "AP": 0.44, "reference": 0.5, "margin": 0.05,
                       "reason": "val AP 0.4400 at epoch 20 is below the reference 0.5000 - margin 0.05 = 0.4500"}
    assert curve.stop_verdict(25, math.nan, REF, margin=0.05, from_epoch=20)["epoch"] == 25


def published_with_log(tmp_path, text=None) -> dict:
    path = tmp_path / "ref.log.json"
    if text is not None:
        path.write_text(text)
    published = config.published()
    published["learning_curve"]["logs"]["smoke"]["256x192"] = str(path)
    return published


def test_reference_reads_the_profiles_log_and_band(tmp_path):
    ref = curve.reference(published_with_log(tmp_path, log_text([0.3, 0.5])), "smoke", "256x192")
    assert ref.points == [(10, 0.3), (20, 0.5)]
    assert ref.band == config.published()["learning_curve"]["band"]["smoke"]


def test_reference_missing_says_how_to_make_it(tmp_path):
    with pytest.raises(LogFormatError, match=rf"{tmp_path / 'ref.log.json'}: no reference training log for "
                                             r"256x192 \(smoke profile\).*python -m repro.engine.mmpose_log"):
        curve.reference(published_with_log(tmp_path), "smoke", "256x192")


def test_every_profile_and_config_has_a_reference_log_and_a_band():
    published = config.published()
    spec = published["learning_curve"]
    for profile in config.PROFILES:
        assert 0 < spec["band"][profile] < 0.1
        assert set(spec["logs"][profile]) == set(published["models"])
    for name, entry in published["models"].items():   # fetch_published puts the log beside the checkpoint
        log_name = Path(urllib.parse.urlsplit(entry["log_url"]).path).name
        assert spec["logs"]["full"][name] == f"models/published/{log_name}"
