"""repro.tracking.lifecycle: dead runs are closed, runs are grouped under their pipeline and viewable."""
import json
import subprocess
import sys
import time

from repro import config, tracking
from repro.evaluation.tracking_run import log_evaluation
from repro.report import tracking_run
from tests.conftest import REPO
from tests.unit.tracking.helpers import RECORD, client


def row(measured, delta):
    return {"expected": None, "measured": measured, "delta": delta, "tolerance": 0.01, "verdict": "pass"}


# comparison.json's shape (report/compare.summarize): tier A reads published_<config>.json, C <config>.json.
SUMMARY = {"verdict": "pass", "required_tiers": ["A", "C"],
           "tiers": {"A": {"256x192": {"verdict": "pass"}}, "C": {"256x192": {"verdict": "pass"},
                                                                   "384x288": {"verdict": "pass"}}},
           "results": {"A": {"256x192": {"AP": row(0.7, 0.0), "AP50": row(0.9, 0.0)}},
                       "C": {"256x192": {"AP": row(0.43, -0.2), "AP50": row(0.8, None), "AP75": row(0.45, None),
                                         "AR": row(0.5, None), "APm": row(0.4, None)},
                             "384x288": {"AP": row(0.52, None)}}}}


def test_experiment_opens_on_the_runs_table_with_the_saved_view(store):
    cfg = config.load(REPO / "params.yaml", "256x192")
    log_evaluation("evaluate_256x192", cfg, RECORD)
    tags = client().get_experiment_by_name("cpm-repro").tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(tags[f"mlflow.sharedViewState.{tracking.VIEW_KEY}"])
    columns = json.loads(view["state"])["selectedColumns"]
    assert columns[:len(tracking.VIEW_COLUMNS)] == tracking.VIEW_COLUMNS
    assert {"metrics.`AP`", "metrics.`AR`", "tags.`repro.verdict`"} <= set(columns)
    # the parent run's per-config results (close_pipeline), for every config of the published table
    assert {f"metrics.`{name}/AP`" for name in config.published()["models"]} <= set(columns)


def test_stage_runs_of_one_pipeline_are_children_of_one_parent_closed_by_compare(store):
    cfg = config.load(REPO / "params.yaml", "256x192")
    ids = [log_evaluation(name, cfg, RECORD) for name in ("evaluate_a", "evaluate_b")]
    parents = {client().get_run(i).data.tags["mlflow.parentRunId"] for i in ids}
    assert len(parents) == 1
    parent = client().get_run(parents.pop())
    assert parent.data.tags["repro.stage"] == "pipeline" and parent.info.status == "RUNNING"
    tracking.close_pipeline("pass")
    parent = client().get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["repro.verdict"] == "pass"


def test_compare_closes_the_parent_run_with_each_configs_stats_under_the_compare_runs_names(store):
    """The saved view shows the pipeline's results on the parent row: its metrics are the compare child's
    `<config>/<stat>` values of the trained records, nothing else."""
    cfg = config.load(REPO / "params.yaml", "256x192")
    log_evaluation("evaluate_256x192", cfg, RECORD)
    child = tracking_run.log_comparison(cfg, SUMMARY, store / "comparison.md")
    tracking_run.close_pipeline(SUMMARY)
    c = client()
    parent = c.get_run(c.get_run(child).data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED" and parent.data.tags["repro.verdict"] == "pass"
    assert parent.data.metrics == {"256x192/AP": 0.43, "256x192/AP50": 0.8, "256x192/AP75": 0.45,
                                   "256x192/AR": 0.5, "384x288/AP": 0.52}
    compared = c.get_run(child).data.metrics
    assert {k: compared[k] for k in parent.data.metrics} == parent.data.metrics


def test_a_measured_value_is_logged_once_under_its_records_name():
    metrics = tracking_run.comparison_metrics(SUMMARY)
    assert metrics["256x192/AP"] == 0.43 and metrics["published_256x192/AP"] == 0.7
    assert metrics["A/256x192/AP/delta"] == 0.0 and metrics["C/256x192/AP/delta"] == -0.2
    assert not any(k.startswith(("A/", "C/")) and not k.endswith("/delta") for k in metrics)


def test_a_running_run_whose_process_is_gone_is_marked_killed(store):
    cfg = config.load(REPO / "params.yaml", "256x192")
    live = log_evaluation("evaluate_live", cfg, RECORD)
    c = client()
    c.update_run(live, status="RUNNING")               # owned by this (live) process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    orphan = log_evaluation("evaluate_orphan", cfg, RECORD)
    c.update_run(orphan, status="RUNNING")
    c.set_tag(orphan, "repro.owner.pid", dead)          # as if its process had been killed
    log_evaluation("evaluate_next", cfg, RECORD)   # the next run sweeps
    assert c.get_run(orphan).info.status == "KILLED"
    assert c.get_run(live).info.status == "RUNNING"


def test_system_metrics_are_sampled_into_a_run_until_it_ends(store):
    tracker = tracking.open_run("train-x", {}, {})
    tracking.start_system_metrics(tracker, tracking.tracking_uri(), interval=0.5)
    c = client()
    for _ in range(240):   # hang guard only: the first sample comes after about one interval
        if any(k.startswith("system/") for k in c.get_run(tracker.run_id).data.metrics):
            break
        time.sleep(0.25)
    tracker.end("FINISHED")
    metrics = c.get_run(tracker.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics and "system/system_memory_usage_megabytes" in metrics
    assert tracker.monitor is None
