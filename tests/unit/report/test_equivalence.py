"""`repro gate` and `compare` over the seed ledger: TOST beside the single-run verdicts, both profiles."""
import json

from repro import cli, machine
from repro.evaluation import ledger
from repro.report import checks, compare, equivalence
from tests.conftest import REPO

BASELINE = REPO / "reports/baselines/smoke.json"
NAMES = ["AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L"]


def retrain(reports, profile, name, seed, ap):
    record = {"config": name, "profile": profile, "source": "trained", "seed": seed, **{m: ap for m in NAMES}}
    ledger.append(reports / "ledger", record, NAMES, commit="c0ffee")


def inputs(reports):
    return checks.load_inputs(reports / "metrics", baseline_path=BASELINE, platform={})


def test_tier_c_three_retrains_near_the_published_ap_are_equivalent(tmp_path):
    for seed, ap in enumerate([0.621, 0.624, 0.622]):
        retrain(tmp_path, "full", "256x192", seed, ap)
    e = equivalence.equivalence("C", "256x192", inputs(tmp_path))
    assert (e["seeds"], e["reference"], e["margin"]) == ([0, 1, 2], 0.623, 0.005)
    assert e["verdict"] == "equivalent" and abs(e["p_value"] - 0.019506) < 1e-6
    other = equivalence.equivalence("C", "384x288", inputs(tmp_path))   # no ledger for this config
    assert other["verdict"] == "not_enough_seeds" and other["seeds"] == []


def test_the_run_ledger_and_the_committed_one_are_read_together(tmp_path):
    """The evaluate stage appends to outputs/ledger (git-ignored); seeds there count with the committed ones in
    reports/ledger, and a (seed, commit) in both is one retrain, the run's value."""
    reports = tmp_path / "reports"
    for seed, ap in enumerate([0.621, 0.624]):
        retrain(reports, "full", "256x192", seed, ap)
    record = {"config": "256x192", "profile": "full", "source": "trained", "seed": 2, **{m: 0.622 for m in NAMES}}
    ledger.append(tmp_path / ledger.RUN_LEDGER_DIR, record, NAMES, commit="c0ffee")
    ledger.append(tmp_path / ledger.RUN_LEDGER_DIR, {**record, "seed": 1, "AP": 0.623}, NAMES, commit="c0ffee")
    e = equivalence.equivalence("C", "256x192", inputs(reports))
    assert e["seeds"] == [0, 1, 2] and e["n"] == 3 and abs(e["mean"] - (0.621 + 0.623 + 0.622) / 3) < 1e-12


def test_tier_s_uses_the_smoke_baseline_mean_and_tolerance(tmp_path):
    precision = machine.precision_name(machine.resolve_amp("auto", "cpu"))   # no metrics file: this machine's
    base = json.loads(BASELINE.read_text())["precisions"][precision]["configs"]["256x192"]["AP"]
    for seed, offset in enumerate([-0.002, 0.0, 0.002]):
        retrain(tmp_path, "smoke", "256x192", seed, base["mean"] + offset)
    e = equivalence.equivalence("S", "256x192", inputs(tmp_path))
    assert (e["reference"], e["margin"]) == (base["mean"], base["tolerance"])
    assert e["verdict"] == "equivalent"
    retrain(tmp_path, "smoke", "256x192", 3, base["mean"] + 3 * base["tolerance"])   # a far-off retrain
    assert equivalence.equivalence("S", "256x192", inputs(tmp_path))["verdict"] == "not_equivalent"


def test_gate_reports_not_enough_seeds_and_fails_only_when_equivalence_is_required(tmp_path, capsys):
    retrain(tmp_path, "full", "256x192", 0, 0.623)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "256x192.json").write_text(json.dumps(
        {"config": "256x192", "profile": "full", "source": "trained", "seed": 0,   # the published stats
         **checks.load_inputs(tmp_path / "metrics").published["models"]["256x192"]["results"]}))
    argv = ["--tier", "C", "--metrics-dir", str(tmp_path / "metrics"), "--baseline", str(BASELINE)]
    assert cli.main(["gate", *argv]) == 0   # the single run passes tier C; one seed is reported, not failed
    out = capsys.readouterr().out
    assert "Equivalence over retrains" in out and "not_enough_seeds" in out
    summary = tmp_path / "summary.md"
    assert cli.main(["gate", *argv, "--require-equivalence", "--summary", str(summary)]) == 1
    assert "C 256x192 equivalence: not_enough_seeds" in capsys.readouterr().out
    assert "### Equivalence over retrains" in summary.read_text()


def test_comparison_has_the_equivalence_section_and_mlflow_rows(tmp_path):
    reports = tmp_path / "reports"
    for seed, ap in enumerate([0.621, 0.624, 0.622]):
        retrain(reports, "full", "256x192", seed, ap)
    summary = compare.compare(reports / "metrics", tmp_path / "models", reports, "full", baseline_path=BASELINE)
    assert [(e["tier"], e["config"], e["verdict"]) for e in summary["equivalence"]] == [
        ("C", "256x192", "equivalent"), ("C", "384x288", "not_enough_seeds")]
    row = summary["results"]["C"]["256x192"]["AP_seed_mean"]   # logged to MLflow as C/256x192/AP_seed_mean
    assert (row["expected"], row["measured"], row["verdict"]) == (0.623, 0.6223, "equivalent")
    md = (reports / "comparison.md").read_text()
    assert "## Equivalence over retrains (seed ledger)" in md and "| C | 256x192 | 3 [0, 1, 2] |" in md
    assert "## Cost: estimate (`repro plan`) vs actual" in md and "does not exist" in md
