"""The README's main command on a fresh copy of this checkout: `scripts/repro.sh` runs `dvc repro` through
the smoke profile (synthetic data, both configs fine-tuned from the committed reference checkpoints and
evaluated, the reference checkpoints evaluated for tier E, comparison written, MLflow runs grouped), a second
run changes nothing, and the DVC views (metrics, params diff, plots) work on the outputs. How long it takes is
measured by benchmarks/bench_pipeline.py (reports/benchmarks/pipeline_cpu.md), not asserted here.

    scripts/test.sh -m slow tests/e2e/test_smoke_pipeline.py
"""
import json
import re

import pytest
from mlflow.tracking import MlflowClient

from repro import checkpoint, config, machine, records
from repro.evaluation import evaluate
from repro.model import build_cpm
from tests.conftest import CONFIGS, REPO, sh, assert_plot_png
from tests.e2e import mlflow_ui
from tests.e2e.conftest import repro_cmd, run

pytestmark = pytest.mark.slow
NAMES = CONFIGS


@pytest.fixture(scope="module")
def pipeline(smoke_pipeline):
    return smoke_pipeline


@pytest.mark.parametrize("name", NAMES)
def test_both_configs_are_trained_and_evaluated_with_all_ten_stats(pipeline, name):
    project, seconds = pipeline
    print(f"smoke pipeline: {seconds:.0f} s")
    metrics = json.loads((project / f"reports/metrics/{name}.json").read_text())
    assert set(evaluate.STAT_NAMES) <= metrics.keys()
    assert metrics["profile"] == "smoke" and metrics["source"] == "trained" and metrics["num_images"] > 0
    assert (project / f"models/{name}/best.pth").is_file()
    assert (project / f"outputs/eval/{name}/predictions.json").is_file()
    history = (project / f"models/{name}/val_history.csv").read_text().splitlines()
    assert history == ["epoch," + ",".join(evaluate.STAT_NAMES)], history   # val_interval null: no validation
    trained = json.loads((project / f"models/{name}/metrics.json").read_text())
    # best.pth is the last epoch's weights, and the evaluate stage is the one measurement of them
    best = checkpoint.read_checkpoint(project / f"models/{name}/best.pth")["meta"]["best"]
    assert best == {"epoch": trained["epochs"], "train_loss": metrics["train_loss"]}
    assert trained["recipe_diff"]["train.init_from"]["used"] == f"reports/reference/smoke_{name}.pth"
    assert trained["precision"]["train"] == ("bf16" if machine.native_bf16("cpu") else "fp32")
    # The record carries the mean training loss of the checkpoint's epoch (tier S bands it): the log's
    # interval means of the last epoch, weighted by their iterations, give it back to its 6 logged digits.
    log = [json.loads(line) for line in (project / f"models/{name}/train_log.jsonl").read_text().splitlines()]
    last = [r for r in log if r.get("mode") == "train" and r["epoch"] == trained["epochs"]]
    iters = [r["iter"] - p["iter"] for p, r in zip([{"iter": 0}, *last], last)]
    assert metrics["train_loss"] == pytest.approx(sum(r["loss"] * k for r, k in zip(last, iters)) / sum(iters),
                                                  abs=1e-6)


def test_comparison_is_written_and_the_smoke_gate_passes(pipeline):
    project, _ = pipeline
    summary = json.loads((project / "reports/comparison.json").read_text())
    assert summary["verdict"] == "pass", (project / "reports/comparison.md").read_text()
    assert all(summary["tiers"]["S"][n]["status"] == "ran" for n in NAMES)
    assert "not run" in (project / "reports/comparison.md").read_text()    # tiers A and C say why
    for png in ("val_ap.png", "published_vs_measured.png"):
        assert_plot_png(project / "reports/plots" / png)
    assert "## Diagnosis: 256x192_vs_384x288" in (project / "reports/comparison.md").read_text()
    diagnosis = json.loads((project / "reports/diagnosis/256x192_vs_384x288/diagnosis.json").read_text())
    assert diagnosis["a_report"]["ap"]["all"] == pytest.approx(
        json.loads((project / "reports/metrics/256x192.json").read_text())["AP"], abs=1e-4)
    done = run(repro_cmd("gate", "--strict"), project)
    assert "gate (strict, required tiers S, E): pass" in done.stdout


def test_trained_models_learned_and_an_untrained_one_scores_near_zero(pipeline):
    project, _ = pipeline
    cfg = config.load(project / "params.yaml", "256x192")
    untrained = checkpoint.save_checkpoint(project / "untrained.pth", build_cpm(cfg.model))
    # Not tracked: a run of it would be named evaluate_256x192 like the stage's, which the UI check below reads.
    run(repro_cmd("evaluate", "--config", "256x192", "--checkpoint", untrained, "--out-dir", "outputs/untrained"),
        project, REPRO_TRACKING="0")
    baseline_ap = json.loads((project / "outputs/untrained/metrics.json").read_text())["AP"]
    for name in NAMES:
        ap = json.loads((project / f"reports/metrics/{name}.json").read_text())["AP"]
        assert ap > 0.05 and ap > 10 * max(baseline_ap, 1e-3), (name, ap, baseline_ap)


def test_mlflow_runs_of_one_repro_are_grouped_and_shown_in_the_ui(pipeline):
    project, _ = pipeline
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("cpm-repro")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    wanted = {"train-256x192-smoke", "train-384x288-smoke", "evaluate_256x192", "evaluate_384x288",
              "compare-smoke"}
    assert wanted <= runs.keys(), sorted(runs)
    assert len({runs[n].data.tags["repro.pipeline"] for n in wanted}) == 1
    assert runs["compare-smoke"].data.tags["repro.verdict"] == "pass"
    logged = [a.path for a in client.list_artifacts(runs["compare-smoke"].info.run_id, "diagnosis/256x192_vs_384x288")]
    assert logged == ["diagnosis/256x192_vs_384x288/keypoint_oks.png"]
    parents = {runs[n].data.tags.get("mlflow.parentRunId") for n in wanted}   # one parent, closed by compare
    assert len(parents) == 1 and None not in parents, parents
    parent = client.get_run(parents.pop())
    assert parent.info.status == "FINISHED" and parent.data.tags["repro.verdict"] == "pass"
    assert [r.info.run_name for r in runs.values() if r.info.status == "RUNNING"] == []
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    ap = {n: runs[f"evaluate_{n}"].data.metrics["AP"] for n in NAMES}
    assert ap == {n: json.loads((project / f"reports/metrics/{n}.json").read_text())["AP"] for n in NAMES}
    # the parent row carries each config's AP under the compare run's name (README: MLflow metric names)
    compared = runs["compare-smoke"].data.metrics
    assert {f"{n}/AP": parent.data.metrics.get(f"{n}/AP") for n in NAMES} == \
        {f"{n}/AP": compared[f"{n}/AP"] for n in NAMES} == {f"{n}/AP": round(ap[n], 4) for n in NAMES}
    mlflow_ui.assert_runs_shown(project / "mlflow.db", [f"evaluate_{n}" for n in NAMES], list(ap.values()))


def test_the_main_command_changes_no_tracked_file_and_drift_passes(pipeline):
    """A plain run records its seed-ledger row in outputs/ledger (git-ignored), never in the committed
    reports/ledger; and `repro drift` compares the trained records only, so a clean run shows none."""
    project, _ = pipeline
    status = sh(["git", "status", "--porcelain", "--untracked-files=no"], project).stdout
    assert status == "", status
    assert any((project / "outputs/ledger").glob("smoke_*.json"))
    done = run(repro_cmd("drift"), project)
    assert "drift: none" in done.stdout, done.stdout


def test_second_repro_changes_nothing_and_takes_seconds(pipeline):
    project, _ = pipeline
    before = {p: p.stat().st_mtime_ns for p in (project / "reports").rglob("*") if p.is_file()}
    done = sh(["scripts/repro.sh"], project)
    assert "Running stage" not in done.stdout, done.stdout
    assert {p: p.stat().st_mtime_ns for p in (project / "reports").rglob("*") if p.is_file()} == before


def test_dvc_metrics_params_and_plots_work_on_the_outputs(pipeline, tmp_path):
    project, _ = pipeline
    dvc = str(REPO / ".venv/bin/dvc")
    shown = sh([dvc, "metrics", "show"], project).stdout
    rows = [line.split()[0] for line in shown.splitlines() if line.startswith("reports/")]
    assert sorted(rows) == sorted(str(records.stats_path(c, s)) for c in NAMES for s in records.SOURCES), shown
    assert max(map(len, shown.splitlines())) <= 150, shown   # one row per evaluation, in a normal terminal
    stats = json.loads((project / "reports/stats/256x192.json").read_text())
    assert stats["verdict"] == "pass" and stats["AP"] == round(
        json.loads((project / "reports/metrics/256x192.json").read_text())["AP"], 4)
    params = project / "params.yaml"
    text = params.read_text()
    params.write_text(text.replace("\nseed: 0", "\nseed: 1", 1))
    try:
        diff = sh([dvc, "params", "diff"], project).stdout
    finally:
        params.write_text(text)
    assert re.search(r"(?m)^params\.yaml\s+seed\s+0\s+1\s*$", diff), diff   # path, param, old, new
    sh([dvc, "plots", "show", "--out", str(tmp_path / "plots")], project)
    html = (tmp_path / "plots/index.html").read_text()
    assert "val_ap" in html and "published_vs_measured" in html
