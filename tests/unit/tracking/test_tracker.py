"""repro.tracking.tracker: a training run's tracker reports a failing store once and goes on."""
import pytest

from repro import tracking
from tests.unit.tracking.helpers import BrokenClient


def test_a_training_tracker_reports_the_first_failure_once_and_goes_on():
    errors = []
    tracker = tracking.Tracker(BrokenClient(), "run1", on_error=errors.append)
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.flush()                                   # fails: reported, not raised
    tracker.log_text("x", "a.txt")
    tracker.end("FINISHED")
    assert len(errors) == 1 and isinstance(errors[0], ConnectionError) and tracker.failed


def test_a_tracker_without_on_error_raises_tracking_error():
    with pytest.raises(tracking.TrackingError, match="store went away"):
        tracking.Tracker(BrokenClient(), "run1").log_text("x", "a.txt")
