"""repro.report.compare: the reports and plots written from hand-made metrics files."""
import csv
import json
import os
import subprocess
import sys

import pytest
import yaml

from repro import config, machine
from repro.report import baseline, compare

from tests.unit.report.test_diagnose import gt_file  # noqa: F401  (fixture)
from tests.unit.report.test_tiers import NAMES, PLATFORM, fake_runs, record, shifted, write
from tests.unit.engine.test_mmpose_log import log_text
from tests.conftest import REPO, assert_plot_png


@pytest.fixture
def published():
    with open(config.PUBLISHED_PATH) as f:
        return yaml.safe_load(f)


@pytest.fixture
def tree(tmp_path, published, monkeypatch):
    """reports/metrics with full-profile metrics (trained + published checkpoint), val histories, a baseline."""
    monkeypatch.setattr(machine, "fingerprint", lambda: dict(PLATFORM))
    monkeypatch.delenv(config.GATE_TIERS_ENV, raising=False)
    metrics = tmp_path / "reports/metrics"
    write(metrics / "256x192.json", record(shifted(published, "256x192", {"AP": -0.003, "AR": 0.01})))
    write(metrics / "384x288.json", record(shifted(published, "384x288", {"AP": 0.02})))
    write(metrics / "published_256x192.json",
          record(shifted(published, "256x192", {"AP50": 0.001}), source="published"))
    write(metrics / "published_384x288.json",
          record(shifted(published, "384x288", {"AP": -0.004}), source="published"))
    base = baseline.derive_baseline(fake_runs(), published["metric_names"], published["tolerances"]["S"],
                                    PLATFORM)
    write(tmp_path / "reports/baselines/smoke.json", baseline.with_entry(None, "fp32", base))
    for name, aps in (("256x192", [0.1, 0.35, 0.5]), ("384x288", [0.2, 0.4])):
        path = tmp_path / "models" / name / "val_history.csv"
        path.parent.mkdir(parents=True)
        path.write_text("epoch,AP,AP50\n" + "".join(f"{10 * (i + 1)},{ap},0.9\n" for i, ap in enumerate(aps)))
    return tmp_path


def run(tree, profile="full"):
    return compare.compare(tree / "reports/metrics", tree / "models", tree / "reports", profile,
                           baseline_path=tree / "reports/baselines/smoke.json")


def test_comparison_json_holds_rounded_numbers_and_verdicts(tree):
    summary = run(tree)
    on_disk = json.loads((tree / "reports/comparison.json").read_text())
    assert on_disk == summary
    assert summary["verdict"] == "fail"       # 384x288 published checkpoint AP is 0.004 low (tier A ±0.002)
    assert summary["required_tiers"] == ["A", "C"]
    ap_c = summary["results"]["C"]["384x288"]["AP"]
    assert ap_c == {"expected": 0.65, "measured": 0.67, "delta": 0.02, "tolerance": ">= -0.0050",
                    "verdict": "suspect"}
    assert summary["results"]["C"]["256x192"]["AP"]["delta"] == -0.003
    assert summary["results"]["A"]["384x288"]["AP"]["verdict"] == "fail"
    assert summary["tiers"]["S"]["256x192"] == {
        "status": "not_run", "required": False, "verdict": "not_run",
        "reason": summary["tiers"]["S"]["256x192"]["reason"]}
    assert "profile 'full'" in summary["tiers"]["S"]["256x192"]["reason"]
    assert summary["counts"]["suspect"] == 1 and summary["counts"]["not_run"] == 4   # S and E, per config


def test_comparison_md_has_a_table_per_config_and_tier_and_says_what_did_not_run(tree):
    run(tree)
    md = (tree / "reports/comparison.md").read_text()
    for tier in "ACS":
        for name in NAMES:
            assert f"## Tier {tier}, {name}:" in md
    assert "| metric | published | measured | delta | tolerance | verdict | note |" in md
    assert "| AP | 0.6500 | 0.6700 | +0.0200 | >= -0.0050 | suspect |" in md
    assert "| AP | 0.6500 | 0.6460 | -0.0040 | ±0.0020 | fail |  |" in md
    assert "**not run**" in md and "## Which tiers ran" in md
    assert "Same weights and the same evaluation protocol" in md   # justification from published.yaml


def test_reports_are_byte_stable_across_runs(tree):
    run(tree)
    first = {p: (tree / "reports" / p).read_bytes() for p in
             ("comparison.md", "comparison.json", "plots/val_ap.csv", "plots/published_vs_measured.csv")}
    run(tree)
    assert first == {p: (tree / "reports" / p).read_bytes() for p in first}


def test_val_ap_plot_data_per_config_and_png(tree):
    run(tree)
    with open(tree / "reports/plots/val_ap.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["config"], r["epoch"], r["AP"]) for r in rows] == [
        ("256x192", "10", "0.1"), ("256x192", "20", "0.35"), ("256x192", "30", "0.5"),
        ("384x288", "10", "0.2"), ("384x288", "20", "0.4")]
    assert_plot_png(tree / "reports/plots/val_ap.png")


def test_published_vs_measured_data_and_png(tree):
    run(tree)
    with open(tree / "reports/plots/published_vs_measured.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 5    # configs x (trained, published checkpoint) x published stats
    assert rows[0] == {"metric": "256x192 trained AP", "published": "0.623", "measured": "0.62"}
    assert_plot_png(tree / "reports/plots/published_vs_measured.png")


def test_smoke_profile_without_anything_measured_is_not_run_not_pass(tmp_path, monkeypatch):
    monkeypatch.delenv(config.GATE_TIERS_ENV, raising=False)
    summary = compare.compare(tmp_path / "reports/metrics", tmp_path / "models", tmp_path / "reports", "smoke",
                              baseline_path=tmp_path / "none.json")
    assert summary["verdict"] == "not_run"
    assert summary["counts"]["not_run"] == 8 and summary["counts"]["pass"] == 0
    assert (tmp_path / "reports/plots/val_ap.png").is_file()
    assert (tmp_path / "reports/plots/published_vs_measured.csv").read_text() == "metric,published,measured\n"


# ----------------------------------------------------------------------------------------- learning curve

@pytest.fixture
def curve_tree(tree, published):
    """The tree plus a published.yaml whose full-profile reference logs are in the tree: 256x192's exists
    (val AP 0.30, 0.40, 0.50 at epochs 10, 20, 30; the run has 0.10, 0.35, 0.50), 384x288's does not."""
    logs = tree / "models/published"
    logs.mkdir(parents=True)
    (logs / "ref_256x192.log.json").write_text(log_text([0.30, 0.40, 0.50]))
    published["learning_curve"]["logs"]["full"] = {name: str(logs / f"ref_{name}.log.json") for name in NAMES}
    (tree / "published.yaml").write_text(yaml.safe_dump(published))
    return tree


def run_curve(tree):
    return compare.compare(tree / "reports/metrics", tree / "models", tree / "reports", "full",
                           published_path=tree / "published.yaml",
                           baseline_path=tree / "reports/baselines/smoke.json")


def test_learning_curve_flags_validations_below_the_band_in_comparison_json(curve_tree):
    summary = run_curve(curve_tree)
    lc = summary["learning_curve"]["256x192"]
    assert (lc["status"], lc["band"], lc["flagged"]) == ("ran", 0.02, 2)   # epochs 10 and 20; 30 is on the curve
    assert [(r["epoch"], r["measured"], r["reference"], r["delta"], r["below_band"]) for r in lc["validations"]] \
        == [(10, 0.1, 0.3, -0.2, True), (20, 0.35, 0.4, -0.05, True), (30, 0.5, 0.5, 0.0, False)]
    assert lc["reference_curve"] == [[10, 0.3], [20, 0.4], [30, 0.5]]
    missing = summary["learning_curve"]["384x288"]
    assert missing["status"] == "not_run" and "ref_384x288.log.json: no reference training log" in missing["reason"]
    assert summary["verdict"] == "fail"   # from tier A (see above): the curve flags are reported, not gated
    assert json.loads((curve_tree / "reports/comparison.json").read_text())["learning_curve"] == \
        summary["learning_curve"]


def test_a_run_that_never_validated_has_no_learning_curve_and_says_why(curve_tree):
    (curve_tree / "models/256x192/val_history.csv").write_text("epoch,AP\n")   # train.val_interval null
    lc = run_curve(curve_tree)["learning_curve"]["256x192"]
    assert lc["status"] == "not_run" and lc["validations"] == []
    assert "no validation (train.val_interval null" in lc["reason"]


def test_learning_curve_section_in_comparison_md(curve_tree):
    run_curve(curve_tree)
    md = (curve_tree / "reports/comparison.md").read_text()
    section = md.split("## Learning curve against the reference run")[1].split("## Tolerances")[0]
    assert "2 of 3 validation(s) below the band" in section
    assert "| 20 | 0.3500 | 0.4000 | -0.0500 | **below band** |" in section
    assert "| 30 | 0.5000 | 0.5000 | +0.0000 | ok |" in section
    assert "### 384x288" in section and "**not run**" in section


def test_learning_curve_plot_data_and_png(curve_tree):
    run_curve(curve_tree)
    with open(curve_tree / "reports/plots/learning_curve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[1] == {"config": "256x192", "epoch": "20", "measured": "0.35", "reference": "0.4",
                       "lower_bound": "0.38", "below_band": "True"}
    assert len(rows) == 3                   # 384x288 has no reference: no rows
    assert_plot_png(curve_tree / "reports/plots/learning_curve.png")


class RecordingTracker:
    def __init__(self):
        self.metrics, self.tags, self.artifacts = [], {}, []

    def log_metrics(self, metrics, step):
        self.metrics += [(k, step, v) for k, v in metrics.items()]

    def set_tags(self, tags):
        self.tags.update(tags)

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append((path.name, artifact_path))


def test_learning_curve_goes_to_the_compare_run(curve_tree):
    summary = run_curve(curve_tree)
    tracker = RecordingTracker()
    compare.log_learning_curve(tracker, summary["learning_curve"], curve_tree / "reports/plots")
    assert ("256x192/val/AP", 20, 0.35) in tracker.metrics
    assert ("curve/256x192/reference", 30, 0.5) in tracker.metrics
    assert tracker.tags == {"repro.curve.256x192": "2 below band", "repro.curve.384x288": "not_run"}
    assert tracker.artifacts == [("learning_curve.png", "plots"), ("learning_curve.csv", "plots")]
@pytest.mark.parametrize("profile,present,candidate,section", [
    ("smoke", ("256x192", "384x288"), "384x288", "## Diagnosis: 256x192_vs_384x288"),           # two configs
    ("full", ("published_256x192", "256x192", "384x288"), "256x192", "## Diagnosis: 256x192"),  # vs published
])
def test_comparison_md_diagnoses_the_pipeline_predictions(tree, gt_file, profile, present, candidate, section):
    """A miss planted in the candidate's predictions (B) is found in its section; 384x288 has no published
    predictions in the full case, so it has no section."""
    from tests.unit.report.test_diagnose import perfect, planted
    for name in present:
        results = planted("miss") if name == candidate else perfect().values()
        out = tree / "outputs/eval" / name / "predictions.json"
        out.parent.mkdir(parents=True)
        out.write_text(json.dumps(list(results)))
    compare.compare(tree / "reports/metrics", tree / "models", tree / "reports", profile,
                    baseline_path=tree / "reports/baselines/smoke.json", eval_dir=tree / "outputs/eval",
                    gt_path=gt_file)
    text = (tree / "reports/comparison.md").read_text()
    assert text.count("## Diagnosis") == 1 and section in text
    pair = section.split(": ")[1]
    report = json.loads((tree / "reports/diagnosis" / pair / "diagnosis.json").read_text())
    assert (report["a_report"]["errors"]["miss"], report["b_report"]["errors"]["miss"]) == (0, 1)
    assert (tree / "reports/diagnosis" / pair / "keypoint_oks.png").is_file()


def test_comparison_md_says_when_there_is_nothing_to_diagnose(tree, gt_file):
    run_args = (tree / "reports/metrics", tree / "models", tree / "reports", "full")
    compare.compare(*run_args, baseline_path=tree / "reports/baselines/smoke.json", eval_dir=tree / "outputs/eval",
                    gt_path=gt_file)
    assert "## Diagnosis\n\nNot run: no pair of prediction files" in (tree / "reports/comparison.md").read_text()
    assert json.loads((tree / "reports/diagnosis/pairs.json").read_text()) == []


def test_compare_imports_no_torch(tree):
    """The platform the gates compare comes from each record; this machine's fingerprint (which needs torch, 2 s
    of the compare stage) is read only for a record without one."""
    probe = ("import sys; from repro.report import compare\n"
             f"compare.compare({str(tree / 'reports/metrics')!r}, {str(tree / 'models')!r}, {str(tree / 'reports')!r},"
             f" 'full', baseline_path={str(tree / 'reports/baselines/smoke.json')!r})\n"
             "print('TORCH', 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "REPRO_TRACKING": "0"})
    assert done.stdout.strip().endswith("TORCH False"), done.stdout + done.stderr
    assert (tree / "reports/comparison.json").is_file()
