"""repro.compare: the reports and plots written from hand-made metrics files."""
import csv
import json

import pytest
import yaml

from repro import baseline, compare, gates, machine

from tests.unit.test_gates import NAMES, PLATFORM, fake_runs, record, shifted, write


@pytest.fixture
def published():
    with open(gates.PUBLISHED_PATH) as f:
        return yaml.safe_load(f)


@pytest.fixture
def tree(tmp_path, published, monkeypatch):
    """reports/metrics with full-profile metrics (trained + published checkpoint), val histories, a baseline."""
    monkeypatch.setattr(machine, "fingerprint", lambda: dict(PLATFORM))
    monkeypatch.delenv(gates.TIERS_ENV, raising=False)
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
    assert (tree / "reports/plots/val_ap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_published_vs_measured_data_and_png(tree):
    run(tree)
    with open(tree / "reports/plots/published_vs_measured.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 5    # configs x (trained, published checkpoint) x published stats
    assert rows[0] == {"metric": "256x192 trained AP", "published": "0.623", "measured": "0.62"}
    assert (tree / "reports/plots/published_vs_measured.png").read_bytes()[:4] == b"\x89PNG"


def test_smoke_profile_without_anything_measured_is_not_run_not_pass(tmp_path, monkeypatch):
    monkeypatch.delenv(gates.TIERS_ENV, raising=False)
    summary = compare.compare(tmp_path / "reports/metrics", tmp_path / "models", tmp_path / "reports", "smoke",
                              baseline_path=tmp_path / "none.json")
    assert summary["verdict"] == "not_run"
    assert summary["counts"]["not_run"] == 8 and summary["counts"]["pass"] == 0
    assert (tmp_path / "reports/plots/val_ap.png").is_file()
    assert (tmp_path / "reports/plots/published_vs_measured.csv").read_text() == "metric,published,measured\n"
