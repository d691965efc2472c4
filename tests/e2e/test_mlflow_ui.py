"""The MLflow UI, in a real headless Chromium, shows the evaluation runs our library records, with their AP.

    scripts/test.sh -m slow tests/e2e/test_mlflow_ui.py
"""
import time

import pytest

from repro import config, tracking
from repro.evaluation.tracking_run import log_evaluation
from repro.report import tracking_run
from tests.conftest import REPO
from tests.e2e import mlflow_ui

pytestmark = pytest.mark.slow

RUNS = {"evaluate_256x192": 0.4321, "evaluate_384x288": 0.5678}
# The comparison's tier-C values per config (distinct from the evaluation runs' so a match is the parent row's).
PARENT = {"256x192": {"AP": 0.7123, "AP50": 0.9234, "AP75": 0.7345, "AR": 0.7456},
          "384x288": {"AP": 0.7567, "AP50": 0.9678, "AP75": 0.7789, "AR": 0.7891}}
SUMMARY = {"verdict": "pass", "required_tiers": ["C"],
           "tiers": {"C": {name: {"verdict": "pass"} for name in PARENT}},
           "results": {"C": {name: {stat: {"expected": None, "measured": v, "delta": None, "tolerance": None,
                                           "verdict": "pass"} for stat, v in stats.items()}
                             for name, stats in PARENT.items()}}}


def test_js_number_matches_the_ui():
    """The formats seen in MLflow 3.17's run page (JavaScript's String(number))."""
    assert [mlflow_ui.js_number(x) for x in (0.4321, 0.123456789, 100.0, 0.0, 3.2e-05, 1e-07, 1e21)] == \
        ["0.4321", "0.123456789", "100", "0", "0.000032", "1e-7", "1e+21"]


def test_mlflow_ui_shows_runs_and_ap(tmp_path, monkeypatch):
    if mlflow_ui.chromium() is None:
        pytest.skip("chromium not installed (scripts/test.sh installs Debian's `chromium`)")
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    cfg = config.load(REPO / "params.yaml", "256x192")
    for name, ap in RUNS.items():
        log_evaluation(name, cfg, {"AP": ap, "AP50": 0.8, "num_images": 100, "source": "trained",
                                   "checkpoint": "x.pth", "config": "256x192", "profile": "smoke"})

    start = time.monotonic()
    with mlflow_ui.serve(db) as base_url:
        print(f"\nmlflow ui answered /health after {time.monotonic() - start:.1f} s")
        mlflow_ui.assert_runs_shown(db, run_names=list(RUNS), ap_values=list(RUNS.values()), shots_dir=tmp_path,
                                    base_url=base_url)
        for shot in ["runs", *RUNS]:
            assert (tmp_path / f"{shot}.png").stat().st_size > 10_000, f"{shot}.png is (nearly) empty"

        # The check can fail: a value the UI does not show is reported as missing.
        with pytest.raises(AssertionError, match="does not show AP 0.4322"):
            mlflow_ui.assert_runs_shown(db, run_names=["evaluate_256x192"], ap_values=[0.4322], base_url=base_url)
    print(f"MLflow UI checked in {time.monotonic() - start:.1f} s; screenshots in {tmp_path}")


def test_saved_view_opens_the_runs_table_with_the_comparison_columns(tmp_path, monkeypatch):
    """The documented URL (README) opens the runs table with the saved view's columns and the stage runs
    grouped under their pipeline run (MLflow 3.17 picks the page from `workflowType`, not the experiment kind)."""
    if mlflow_ui.chromium() is None:
        pytest.skip("chromium not installed (scripts/test.sh installs Debian's `chromium`)")
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setenv("REPRO_PIPELINE_ID", "ui-test")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    cfg = config.load(REPO / "params.yaml", "256x192")
    for name, ap in RUNS.items():
        log_evaluation(name, cfg, {"AP": ap, "AP50": 0.8, "AP75": 0.5, "AR": 0.6, "source": "trained",
                                   "checkpoint": "x.pth"})
    tracking_run.log_comparison(cfg, SUMMARY, tmp_path / "comparison.md")
    tracking_run.close_pipeline(SUMMARY)   # the parent row carries each config's stats
    from mlflow.tracking import MlflowClient
    exp_id = MlflowClient(f"sqlite:///{db}").get_experiment_by_name("cpm-repro").experiment_id
    with mlflow_ui.serve(db) as base_url:
        text = mlflow_ui.render(f"{base_url}/#/experiments/{exp_id}?workflowType=machine_learning")
        assert text.startswith("Runs - Experiment"), text[:500]
        text = mlflow_ui.render(f"{base_url}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
                                f"&viewStateShareKey={tracking.VIEW_KEY}", screenshot=tmp_path / "view.png")
    assert "CPM comparison" in text and "error loading shared view" not in text.lower(), text[:3000]
    header = text.split("Hide run")[0].split()   # the grid's column headers come before the first row
    assert {"AP", "AP50", "AP75", "AR", "repro.config", "repro.profile", "repro.source", "repro.verdict"} <= set(
        header), text[:3000]
    assert "pipeline-ui-test" in text and "4 matching runs" in text, text[:3000]   # 3 children, 1 parent
    # The parent row, children collapsed, shows every config's AP, AP50, AP75, AR and the verdict.
    assert all(f"{name}/{stat}" in text for name in PARENT for stat in tracking.VIEW_STATS), text[:3000]
    row = mlflow_ui.row_text(text, "pipeline-ui-test", others=[*RUNS, "compare-smoke"])
    missing = mlflow_ui.values_shown(row, [v for stats in PARENT.values() for v in stats.values()])
    assert not missing and "pass" in row.split(), f"parent row lacks {missing}: {row[:2000]}"
