"""repro.report.tiers (+ checks, drift) and repro.report.baseline with hand-made metrics files: verdicts, strictness, tables,
drift, baseline."""
import json
import subprocess

import pytest
import yaml

from repro import cli, config, machine, records
from repro.report import baseline, checks, drift, tables, tiers
from tests.conftest import CONFIGS

NAMES = CONFIGS
PLATFORM = {"torch": "2.13.0+cpu", "numpy": "2.0", "arch": "x86_64", "cpu_isa": "AVX2"}
PROTOCOL = {"flip_test": True, "shift_heatmap": True, "use_gt_bbox": False, "keypoint_score_thr": 0.2,
            "nms_thr": 0.9, "amp": "none"}


@pytest.fixture
def published():
    with open(config.PUBLISHED_PATH) as f:
        return yaml.safe_load(f)


def record(values: dict, profile="full", source="trained", seed=0, **extra) -> dict:
    return {**values, "num_images": 100, "num_boxes": 250, "num_instances": 150, "profile": profile, "source": source,
            "seed": seed, "train_precision": "fp32", "eval": dict(PROTOCOL), **extra}


def shifted(published, name, delta: dict) -> dict:
    """The published results of `name` with per-metric offsets."""
    return {m: v + delta.get(m, 0.0) for m, v in published["models"][name]["results"].items()}


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def smoke_values(ap=0.30, seed_offset=0.0) -> dict:
    names = ("AP", "AP50", "AP75", "AP_M", "AP_L", "AR", "AR50", "AR75", "AR_M", "AR_L")
    return {m: round(ap + 0.01 * i + seed_offset, 4) for i, m in enumerate(names)}


def smoke_record(seed_offset=0.0, seed=0, train_loss=0.011) -> dict:
    """A trained smoke model's metrics file, with the mean training loss of its epoch."""
    return record(smoke_values(seed_offset=seed_offset), profile="smoke", seed=seed, train_loss=train_loss)


def fake_runs(seeds=(0, 1, 2)):
    """seed -> {name -> metrics}: seed s shifts every stat by 0.004*s (range 0.008, std 0.004) and the
    training loss by 0.00001*s (std 0.00001: 3 std is below the floor of 1% of the mean)."""
    return {s: {n: smoke_record(0.004 * s, s, train_loss=0.011 + 0.00001 * s) for n in NAMES} for s in seeds}


@pytest.fixture
def smoke_baseline(published):
    return baseline.derive_baseline(fake_runs(), published["metric_names"], published["tolerances"]["S"],
                                    PLATFORM)


def as_file(entry, precision="fp32") -> dict:
    """A baseline file holding one precision's entry."""
    return baseline.with_entry(None, precision, entry)


def inputs(tmp_path, published, base=None, platform=PLATFORM):
    """Gate inputs with `base`, one fp32 baseline entry (None: no baseline file)."""
    return checks.GateInputs(published=published, metrics_dir=tmp_path, baseline=None if base is None else as_file(base),
                            baseline_path=str(tmp_path / "smoke.json"), platform=platform)


def verdicts(result) -> dict:
    return {row.metric: row.verdict for row in result.rows}


# ------------------------------------------------------------------------------------------ tier A
def test_tier_a_passes_within_tolerance_at_the_boundary(tmp_path, published):
    # AP exactly 0.002 above (float 0.625 - 0.623 > 0.002 by 2e-18) and secondaries exactly 0.003 off.
    values = shifted(published, "256x192", {"AP": 0.002, "AP50": -0.003, "AR": 0.003})
    write(tmp_path / "published_256x192.json", record(values, source="published"))
    result = tiers.check_tier("A", "256x192", inputs(tmp_path, published))
    assert result.ran and not result.failed()
    assert set(verdicts(result).values()) == {"pass"}
    assert set(verdicts(result)) == {"AP", "AP50", "AP75", "AR", "AR50", "protocol"}


@pytest.mark.parametrize("metric,delta", [("AP", 0.0025), ("AP", -0.0025), ("AP75", 0.0035)])
def test_tier_a_fails_outside_tolerance(tmp_path, published, metric, delta):
    write(tmp_path / "published_384x288.json",
          record(shifted(published, "384x288", {metric: delta}), source="published"))
    result = tiers.check_tier("A", "384x288", inputs(tmp_path, published))
    assert result.failed()
    assert [m for m, v in verdicts(result).items() if v == "fail"] == [metric]


def test_tier_a_not_run_in_the_smoke_profile_says_why(tmp_path, published):
    write(tmp_path / "published_256x192.json",
          {"status": "not_run", "reason": "profile 'smoke' has no published checkpoint", "source": "published"})
    result = tiers.check_tier("A", "256x192", inputs(tmp_path, published))
    assert not result.ran and result.rows == ()
    assert "no published checkpoint" in result.not_run


def test_tier_a_fails_when_the_eval_protocol_differs(tmp_path, published):
    rec = record(shifted(published, "256x192", {}), source="published")
    rec["eval"]["use_gt_bbox"] = True
    rec["eval"]["shift_heatmap"] = False
    write(tmp_path / "published_256x192.json", rec)
    result = tiers.check_tier("A", "256x192", inputs(tmp_path, published))
    protocol = [r for r in result.rows if r.metric == "protocol"][0]
    assert protocol.verdict == "fail"
    assert "use_gt_bbox" in protocol.note and "shift_heatmap=False" in protocol.note


def test_a_missing_metric_fails_rather_than_passing(tmp_path, published):
    values = shifted(published, "256x192", {})
    del values["AR50"]
    write(tmp_path / "published_256x192.json", record(values, source="published"))
    result = tiers.check_tier("A", "256x192", inputs(tmp_path, published))
    assert verdicts(result)["AR50"] == "fail"


# ------------------------------------------------------------------------------------------ tier C
@pytest.mark.parametrize("d_ap,expected", [(-0.005, "pass"), (0.0, "pass"), (0.010, "pass"),
                                           (-0.0051, "fail"), (0.0101, "suspect"), (0.02, "suspect")])
def test_tier_c_ap_verdict(tmp_path, published, d_ap, expected):
    write(tmp_path / "256x192.json", record(shifted(published, "256x192", {"AP": d_ap, "AR": -0.05})))
    result = tiers.check_tier("C", "256x192", inputs(tmp_path, published))
    assert verdicts(result)["AP"] == expected
    assert verdicts(result)["AR"] == "info"  # secondary stats are reported, not gated


def test_suspiciously_high_is_reported_but_fails_only_when_configured(tmp_path, published):
    write(tmp_path / "256x192.json", record(shifted(published, "256x192", {"AP": 0.02})))
    results = [tiers.check_tier("C", "256x192", inputs(tmp_path, published))]
    assert not results[0].failed(suspect_fails=False)
    assert results[0].failed(suspect_fails=True)
    assert tiers.failures(results, ("C",), strict=True, suspect_fails=False) == []
    assert "suspect" in tables.render_results(results)
    assert "GT boxes" in [r for r in results[0].rows if r.metric == "AP"][0].note


def test_tier_c_not_run_on_smoke_metrics(tmp_path, published):
    write(tmp_path / "256x192.json", record(smoke_values(), profile="smoke"))
    result = tiers.check_tier("C", "256x192", inputs(tmp_path, published))
    assert not result.ran and "profile 'smoke'" in result.not_run


# ------------------------------------------------------------------------------------------ tier S
def test_baseline_derivation_records_spread_and_rule(smoke_baseline):
    ap = smoke_baseline["configs"]["256x192"]["AP"]
    assert ap["per_seed"] == {"0": 0.30, "1": 0.304, "2": 0.308}
    assert ap["mean"] == pytest.approx(0.304)
    assert ap["std"] == pytest.approx(0.004)       # sample std of (0.300, 0.304, 0.308)
    assert ap["range"] == pytest.approx(0.008)
    assert ap["tolerance"] == pytest.approx(0.012)  # max(3 * 0.004, 0.008, floor 0.005)
    assert smoke_baseline["configs"]["256x192"]["num_images"]["tolerance"] == 0.0
    loss = smoke_baseline["configs"]["256x192"]["train_loss"]
    assert loss["mean"] == pytest.approx(0.01101)
    assert loss["tolerance"] == pytest.approx(0.01 * 0.01101)   # the floor relative to the loss, not 0.005
    assert smoke_baseline["rule"]["k_std"] == 3.0 and smoke_baseline["seeds"] == [0, 1, 2]
    assert smoke_baseline["platform"] == PLATFORM


def test_baseline_tolerance_has_a_floor_when_seeds_agree(published):
    runs = {s: {"256x192": smoke_record(seed=s)} for s in (0, 1, 2)}
    tier_s = published["tolerances"]["S"]
    base = baseline.derive_baseline(runs, published["metric_names"], tier_s, PLATFORM)
    assert base["configs"]["256x192"]["AP"]["tolerance"] == tier_s["floor"]
    assert base["configs"]["256x192"]["train_loss"]["tolerance"] == pytest.approx(tier_s["loss_floor_rel"] * 0.011)


def test_baseline_tolerance_pools_the_spread_of_every_precision(published):
    """fp32 seeds shift AP by 0.004 per seed (std 0.004), bf16 seeds agree: the pooled std is
    sqrt((2 * 0.004**2 + 0) / (2 + 2)), and each precision keeps its own mean and range."""
    tier_s = published["tolerances"]["S"]
    fp32 = baseline.derive_baseline(fake_runs(), published["metric_names"], tier_s, PLATFORM)
    agreeing = {s: {"256x192": smoke_record(seed=s)} for s in (0, 1, 2)}
    bf16 = baseline.derive_baseline(agreeing, published["metric_names"], tier_s, PLATFORM)
    base = baseline.with_entry(baseline.with_entry(None, "fp32", fp32), "bf16", bf16)
    pooled = (2 * 0.004 ** 2 / 4) ** 0.5
    for precision, own_range in (("fp32", 0.008), ("bf16", 0.0)):
        ap = base["precisions"][precision]["configs"]["256x192"]["AP"]
        assert ap["pooled_std"] == pytest.approx(pooled)
        assert ap["tolerance"] == pytest.approx(max(3 * pooled, own_range, tier_s["floor"]))
    assert base["precisions"]["bf16"]["configs"]["256x192"]["AP"]["tolerance"] > 0.005   # wider than alone
    assert "384x288" not in base["precisions"]["bf16"]["configs"]   # only fp32 has it: its own std stays
    assert base["precisions"]["fp32"]["configs"]["384x288"]["AP"]["tolerance"] == pytest.approx(0.012)
    assert base["precisions"]["fp32"]["configs"]["256x192"]["num_boxes"]["tolerance"] == 0.0


def test_baseline_needs_three_seeds_and_agreeing_counts(published):
    tier_s = published["tolerances"]["S"]
    with pytest.raises(ValueError, match="at least 3 seeds"):
        baseline.derive_baseline(fake_runs((0, 1)), published["metric_names"], tier_s, PLATFORM)
    runs = fake_runs()
    runs[1]["256x192"]["num_instances"] = 149          # kept after NMS: depends on the model, may differ
    baseline.derive_baseline(runs, published["metric_names"], tier_s, PLATFORM)
    runs[2]["384x288"]["num_boxes"] = 251               # the detection file's boxes: must not differ
    with pytest.raises(ValueError, match="count differs"):
        baseline.derive_baseline(runs, published["metric_names"], tier_s, PLATFORM)


def test_tier_s_passes_and_the_baseline_seed_reproduces_exactly(tmp_path, published, smoke_baseline):
    write(tmp_path / "256x192.json", fake_runs()[0]["256x192"])
    result = tiers.check_tier("S", "256x192", inputs(tmp_path, published, smoke_baseline))
    assert set(verdicts(result).values()) == {"pass"}
    assert verdicts(result)["exact(seed=0)"] == "pass"


def test_tier_s_exact_check_fails_on_a_tiny_change_on_the_same_platform(tmp_path, published, smoke_baseline):
    rec = fake_runs()[1]["256x192"]
    rec["AP75"] += 1e-4   # inside the tolerance band, but seed 1 on this platform must be bit-identical
    write(tmp_path / "256x192.json", rec)
    result = tiers.check_tier("S", "256x192", inputs(tmp_path, published, smoke_baseline))
    assert verdicts(result)["AP75"] == "pass"
    assert verdicts(result)["exact(seed=1)"] == "fail"
    assert "AP75" in [r.note for r in result.rows if r.metric == "exact(seed=1)"][0]


def test_tier_s_exact_check_not_run_on_another_platform(tmp_path, published, smoke_baseline):
    rec = fake_runs()[1]["256x192"]
    rec["AP75"] += 1e-4
    write(tmp_path / "256x192.json", rec)
    other = {**PLATFORM, "cpu_isa": "AVX512"}
    result = tiers.check_tier("S", "256x192", inputs(tmp_path, published, smoke_baseline, platform=other))
    assert verdicts(result)["exact(seed=1)"] == "not_run" and not result.failed()


def test_tier_s_fails_past_the_measured_tolerance(tmp_path, published, smoke_baseline):
    rec = fake_runs()[0]["384x288"]
    rec["AP"] = smoke_baseline["configs"]["384x288"]["AP"]["mean"] - 0.013   # tolerance is 0.012
    write(tmp_path / "384x288.json", rec)
    result = tiers.check_tier("S", "384x288", inputs(tmp_path, published, smoke_baseline))
    assert verdicts(result)["AP"] == "fail"
    assert "fail" in tables.render_results([result])


@pytest.mark.parametrize("loss,verdict", [(0.0111, "pass"), (0.01113, "fail"), (0.0138, "fail"), (None, "fail")])
def test_tier_s_bands_the_training_loss(tmp_path, published, smoke_baseline, loss, verdict):
    """A bug in the loss that the COCO stats of a short fine-tune cannot see (ignored target weights: +27%
    measured) fails on train_loss alone; a record without the loss fails rather than passing."""
    rec = fake_runs()[1]["256x192"]
    rec["train_loss"] = loss   # baseline mean 0.01101, band 0.00011
    write(tmp_path / "256x192.json", rec)
    result = tiers.check_tier("S", "256x192", inputs(tmp_path, published, smoke_baseline))
    assert verdicts(result)["train_loss"] == verdict
    assert all(v == "pass" for m, v in verdicts(result).items() if m in published["metric_names"])


def test_tier_s_not_run_without_a_baseline(tmp_path, published):
    write(tmp_path / "256x192.json", fake_runs()[0]["256x192"])
    result = tiers.check_tier("S", "256x192", inputs(tmp_path, published, None))
    assert not result.ran and "repro baseline --seeds 0 1 2" in result.not_run


# ------------------------------------------------------------------------------------------ strictness
def test_missing_metrics_are_reported_not_passed(tmp_path, published, smoke_baseline):
    results = tiers.check_all(inputs(tmp_path, published, smoke_baseline))
    assert [(r.tier, r.config) for r in results] == [(t, n) for t in "ACSE" for n in NAMES]
    assert not any(r.ran for r in results)
    problems = tiers.failures(results, ("S",), strict=False)
    assert problems == ["no tier ran: nothing was measured, so nothing can pass"]
    table = tables.render_results(results)
    assert "not_run" in table and "does not exist" in table


def test_strict_mode_fails_only_for_required_tiers_not_run(tmp_path, published, smoke_baseline):
    for name in NAMES:
        write(tmp_path / f"{name}.json", fake_runs()[0][name])
    results = tiers.check_all(inputs(tmp_path, published, smoke_baseline))
    assert tiers.failures(results, ("S",), strict=False) == []
    assert tiers.failures(results, ("S",), strict=True) == []
    strict_a = tiers.failures(results, ("S", "A"), strict=True)
    assert len(strict_a) == 2 and all("required tier not run" in p for p in strict_a)
    assert tiers.failures(results, ("S", "A"), strict=False) == []


def test_strict_and_required_tiers_come_from_flag_env_or_profile(monkeypatch):
    monkeypatch.delenv(config.STRICT_GATES_ENV, raising=False)
    monkeypatch.delenv(config.GATE_TIERS_ENV, raising=False)
    assert not tiers.strict_enabled() and tiers.strict_enabled(True)
    monkeypatch.setenv(config.STRICT_GATES_ENV, "1")
    assert tiers.strict_enabled()
    assert tiers.required_tiers("smoke") == ("S", "E") and tiers.required_tiers("full") == ("A", "C")
    monkeypatch.setenv(config.GATE_TIERS_ENV, "A,C")
    assert tiers.required_tiers("smoke") == ("A", "C")
    assert tiers.required_tiers("smoke", ["S"]) == ("S",)


# ------------------------------------------------------------------------------------------ tables
def test_table_has_fixed_columns_and_4dp_numbers(tmp_path, published):
    write(tmp_path / "published_256x192.json",
          record(shifted(published, "256x192", {"AP": 0.00123456}), source="published"))
    result = tiers.check_tier("A", "256x192", inputs(tmp_path, published))
    text = tables.render_results([result])
    header = text.splitlines()[0].split()
    assert header == list(tables.CHECK_COLUMNS)
    ap_line = [line for line in text.splitlines() if " AP " in line][0].split()
    assert ap_line[:8] == ["A", "256x192", "AP", "0.6230", "0.6242", "+0.0012", "±0.0020", "pass"]
    md = tables.render_results([result], markdown=True)
    assert md.startswith("| tier | config | metric | expected | measured | delta | tolerance | verdict | note |")


# ------------------------------------------------------------------------------------------ mains
def setup_repo(tmp_path, published, smoke_baseline, monkeypatch):
    """A working directory with published.yaml, a baseline and metrics files; returns common argv."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.STRICT_GATES_ENV, raising=False)
    monkeypatch.delenv(config.GATE_TIERS_ENV, raising=False)
    monkeypatch.delenv("REPRO_PROFILE", raising=False)
    monkeypatch.setattr(checks.machine, "fingerprint", lambda: dict(PLATFORM))
    (tmp_path / "published.yaml").write_text(yaml.safe_dump(published))
    write(tmp_path / "reports/baselines/smoke.json", as_file(smoke_baseline))
    (tmp_path / "params.yaml").write_text("profile: smoke\n")
    return ["--published", "published.yaml", "--metrics-dir", "reports/metrics"]


def test_gate_main_exit_codes(tmp_path, published, smoke_baseline, monkeypatch, capsys):
    argv = setup_repo(tmp_path, published, smoke_baseline, monkeypatch)
    assert cli.main(["gate", *argv]) == 1                       # nothing measured
    for name in NAMES:
        write(tmp_path / f"reports/metrics/{name}.json", fake_runs()[0][name])
    assert cli.main(["gate", *argv]) == 0                       # S passes, A/C not run (reported)
    assert cli.main(["gate", *argv, "--strict", "--tier", "A"]) == 1
    summary = tmp_path / "summary.md"
    assert cli.main(["gate", *argv, "--tier", "S", "--summary", str(summary)]) == 0
    assert "| S | 256x192 | AP |" in summary.read_text()
    out = capsys.readouterr().out
    assert "required tier not run" in out and "gate (not strict): pass" in out


def test_drift_reads_only_the_trained_records_of_a_default_run(tmp_path, published, smoke_baseline, monkeypatch,
                                                                capsys):
    """A default run also writes reference_<config>.json (tier E) and published_<config>.json (tier A, not run):
    they are other evaluations, not configs missing from the baseline. A planted drift still fails."""
    argv = setup_repo(tmp_path, published, smoke_baseline, monkeypatch)
    for name in NAMES:
        write(records.metrics_path(name, "trained", "reports/metrics"), fake_runs()[2][name])
        write(records.metrics_path(name, "reference", "reports/metrics"), {**fake_runs()[2][name], "source": "reference"})
        write(records.metrics_path(name, "published", "reports/metrics"),
              {"status": "not_run", "reason": "profile 'smoke'", "config": name, "source": "published"})
    assert cli.main(["drift", *argv]) == 0, capsys.readouterr().out
    assert "drift: none" in capsys.readouterr().out
    planted = {**fake_runs()[2]["256x192"], "AP": fake_runs()[2]["256x192"]["AP"] + 0.2}
    write(records.metrics_path("256x192", "trained", "reports/metrics"), planted)
    assert cli.main(["drift", *argv]) == 1
    assert "DRIFT" in capsys.readouterr().out


def test_drift_main_against_working_tree_and_git_revision(tmp_path, published, smoke_baseline, monkeypatch,
                                                          capsys):
    argv = setup_repo(tmp_path, published, smoke_baseline, monkeypatch)
    for name in NAMES:
        write(tmp_path / f"reports/metrics/{name}.json", fake_runs()[2][name])
    assert cli.main(["drift", *argv]) == 0
    out = capsys.readouterr().out
    assert "Path" in out and "Change" in out and "reports/metrics/256x192.json" in out

    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    git("add", "reports/baselines/smoke.json")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline")
    moved = json.loads(json.dumps(smoke_baseline))
    moved["configs"]["256x192"]["AP"]["mean"] = 0.5     # the working-tree baseline now disagrees
    write(tmp_path / "reports/baselines/smoke.json", as_file(moved))
    assert cli.main(["drift", *argv]) == 1
    assert "DRIFT" in capsys.readouterr().out
    assert cli.main(["drift", *argv, "--rev", "HEAD"]) == 0
    assert cli.main(["drift", *argv, "--rev", "HEAD", "--baseline", "nope.json"]) == 2


def run_baseline(monkeypatch, argv, run_smoke) -> int:
    """`repro baseline ARGV` with the smoke runs injected."""
    monkeypatch.setattr(cli, "smoke_runner", run_smoke)
    return cli.main(["baseline", *argv])


def test_baseline_main_derives_and_writes_atomically_from_injected_runs(tmp_path, published, smoke_baseline,
                                                                         monkeypatch):
    setup_repo(tmp_path, published, smoke_baseline, monkeypatch)
    calls = []

    def run_smoke(seed, amp):
        calls.append((seed, amp))
        return fake_runs((seed,))[seed]

    out = tmp_path / "reports/baselines/new.json"
    assert run_baseline(monkeypatch, ["--seeds", "2", "0", "1", "--precisions", "fp32", "--out", str(out),
                                "--published", "published.yaml"], run_smoke) == 0
    assert calls == [(0, "none"), (1, "none"), (2, "none")]
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(as_file(smoke_baseline)))
    # The seeds of the precision the default run trains in here (fp32 without native bf16) are retrains of it:
    # they go into the seed ledger, bf16 ones only where bf16 is the default.
    fp32_default = not machine.native_bf16("cpu")
    assert (tmp_path / "reports/ledger/smoke_256x192.json").is_file() == fp32_default
    # Measuring another precision keeps the entry already there.
    assert run_baseline(monkeypatch, ["--seeds", "0", "1", "2", "--precisions", "bf16", "--out", str(out),
                                "--published", "published.yaml"], run_smoke) == 0
    assert calls[-1] == (2, "bf16")
    entries = json.loads((tmp_path / "reports/ledger/smoke_384x288.json").read_text())["entries"]
    assert sorted(e["seed"] for e in entries) == [0, 1, 2] and entries[0]["metrics"]["AP"] == 0.30
    assert sorted(json.loads(out.read_text())["precisions"]) == ["bf16", "fp32"]
    assert not list(out.parent.glob(".*.tmp"))
    assert 2 == run_baseline(monkeypatch, ["--seeds", "0", "1", "--out", str(out), "--published", "published.yaml"], run_smoke)


def test_baseline_ledger_entries_name_the_commit_measured_not_their_own_writes(tmp_path, published,
                                                                               smoke_baseline, monkeypatch):
    """In a clean checkout whose ledger is tracked, the first append modifies a tracked file; the later
    entries must still name the clean commit, not "<sha>+dirty"."""
    setup_repo(tmp_path, published, smoke_baseline, monkeypatch)
    default = machine.precision_name(machine.resolve_amp("auto", "cpu"))
    argv = ["--seeds", "0", "1", "2", "--precisions", default, "--published", "published.yaml"]
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True, text=True)  # noqa: E731
    git("init", "-q")
    assert run_baseline(monkeypatch, argv, lambda seed, amp: fake_runs((seed,))[seed]) == 0
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ledger tracked")
    head = git("rev-parse", "HEAD").stdout.strip()
    assert run_baseline(monkeypatch, argv, lambda seed, amp: fake_runs((seed,))[seed]) == 0
    for name in NAMES:
        entries = json.loads((tmp_path / f"reports/ledger/smoke_{name}.json").read_text())["entries"]
        assert [e["commit"] for e in entries if e["commit"].startswith(head)] == [head] * 3, entries


def test_drift_flags_metrics_that_are_not_from_the_smoke_profile(tmp_path, published, smoke_baseline):
    write(tmp_path / "256x192.json", record(smoke_values(), profile="full"))
    rows = drift.drift_rows(inputs(tmp_path, published, smoke_baseline))
    verdict = {(r[0].rsplit("/", 1)[-1], r[1]): r[-1] for r in rows}
    assert verdict[("256x192.json", "AP")] == "not smoke"
    assert verdict[("384x288.json", "AP")] == "missing"


# ------------------------------------------------------------------------------------------ tier E
DIGESTS = {"val_annotations": "a" * 64, "val_images": "b" * 64, "det_file": "c" * 64}


def _golden(tmp_path, name, x0=10.0) -> str:
    results = [{"image_id": 1, "category_id": 1, "bbox": [0.0, 0.0, 50.0, 100.0], "score": 0.8,
                "keypoints": [v for k in range(17) for v in (x0 + k, 20.0 + k, 0.5)]}]
    write(tmp_path / name, results)
    return str(tmp_path / name)


def reference_inputs(tmp_path, published, values=None):
    """Gate inputs with a tiny reference (stats smoke_values(), one golden instance) for 256x192."""
    ref = {"profile": "smoke", "data": dict(DIGESTS), "configs": {"256x192": {
        "checkpoint": "x.pth", "sha256": "0" * 64, "predictions": _golden(tmp_path, "golden.json"),
        "stats": {**(values or smoke_values()), "num_images": 100, "num_boxes": 250, "num_instances": 150}}}}
    return checks.GateInputs(published=published, metrics_dir=tmp_path, platform=PLATFORM, reference=ref,
                            reference_path=str(tmp_path / "ref.json"))


def reference_record(tmp_path, values=None, x0=10.0, data=None) -> dict:
    return record(values or smoke_values(), profile="smoke", source="reference",
                  predictions=_golden(tmp_path, "new.json", x0), data=data or dict(DIGESTS))


def tier_e(tmp_path, published, rec):
    write(tmp_path / "reference_256x192.json", rec)
    return tiers.check_tier("E", "256x192", reference_inputs(tmp_path, published))


def test_tier_e_passes_on_the_reference_itself(tmp_path, published):
    result = tier_e(tmp_path, published, reference_record(tmp_path))
    assert result.ran and set(verdicts(result).values()) == {"pass"}
    assert set(verdicts(result)) == {*published["metric_names"], "golden", "data"}


@pytest.mark.parametrize("metric,delta,verdict", [("AP", 0.002, "pass"), ("AP", 0.0021, "fail"),
                                                  ("AR75", -0.0021, "fail"), ("AR75", 0.0019, "pass")])
def test_tier_e_stats_within_the_tolerance(tmp_path, published, metric, delta, verdict):
    values = smoke_values()
    values[metric] += delta
    assert verdicts(tier_e(tmp_path, published, reference_record(tmp_path, values)))[metric] == verdict


@pytest.mark.parametrize("bad", [float("nan"), None])
def test_tier_e_nan_or_missing_stat_fails(tmp_path, published, bad):
    values = smoke_values()
    values["AP"] = bad
    assert verdicts(tier_e(tmp_path, published, reference_record(tmp_path, values)))["AP"] == "fail"


def test_tier_e_golden_diff_fails_and_names_the_moved_instance(tmp_path, published):
    result = tier_e(tmp_path, published, reference_record(tmp_path, x0=10.5))
    row = next(r for r in result.rows if r.metric == "golden")
    assert row.verdict == "fail" and "17/17 keypoints changed" in row.note, row
    assert "image 1 box [0.0, 0.0, 50.0, 100.0]: nose 0.50px" in row.note


def test_tier_e_golden_diff_fails_without_predictions(tmp_path, published):
    rec = reference_record(tmp_path)
    rec["predictions"] = str(tmp_path / "missing.json")
    assert verdicts(tier_e(tmp_path, published, rec))["golden"] == "fail"


def test_tier_e_fails_when_the_data_differ(tmp_path, published):
    rec = reference_record(tmp_path, data={**DIGESTS, "val_images": "d" * 64})
    row = next(r for r in tier_e(tmp_path, published, rec).rows if r.metric == "data")
    assert row.verdict == "fail" and "data differ: val_images" in row.note


def test_tier_e_not_run_without_reference_or_smoke_record(tmp_path, published):
    inputs_ = checks.GateInputs(published=published, metrics_dir=tmp_path, reference=None,
                               reference_path=str(tmp_path / "ref.json"))
    write(tmp_path / "reference_256x192.json", reference_record(tmp_path))
    assert "does not exist" in tiers.check_tier("E", "256x192", inputs_).not_run
    write(tmp_path / "reference_384x288.json", reference_record(tmp_path))
    assert "no reference for 384x288" in tiers.check_tier("E", "384x288", reference_inputs(tmp_path, published)).not_run
    write(tmp_path / "reference_256x192.json", {**reference_record(tmp_path), "profile": "full"})
    assert "needs profile 'smoke'" in tiers.check_tier("E", "256x192", reference_inputs(tmp_path, published)).not_run


def test_tier_e_golden_diff_fails_on_a_changed_instance_score_alone(tmp_path, published):
    rec = reference_record(tmp_path)
    new = json.loads(open(rec["predictions"]).read())
    new[0]["score"] += 0.05
    write(tmp_path / "new.json", new)
    assert verdicts(tier_e(tmp_path, published, rec))["golden"] == "fail"


def test_a_new_tier_is_one_row_one_check_and_one_tolerance_entry(tmp_path, published, monkeypatch):
    """README "Extending": a tier X reading the trained record with its own check is a row of tiers.TABLE, its
    check function and tolerances.X in published.yaml; the gate, its strict mode and the report pick it up."""
    def check_x(name, record, inputs):
        bound = inputs.published["tolerances"]["X"]["ap_abs"]
        return [checks.Row("X", name, "AP", 0.3, record["AP"], f"±{bound}",
                           "pass" if abs(record["AP"] - 0.3) <= bound else "fail")]
    row = tiers.Tier("X", "trained", "smoke", "the smoke pipeline", check_x, "published")
    monkeypatch.setattr(tiers, "TABLE", (*tiers.TABLE, row))
    monkeypatch.setattr(tiers, "TIERS", {**tiers.TIERS, "X": row})
    published["tolerances"]["X"] = {"title": "a new tier", "justification": "for the test", "ap_abs": 0.01}
    inputs = checks.GateInputs(published=published, metrics_dir=tmp_path)
    assert "X" in tiers.profile_tiers("smoke")
    assert tiers.failures([tiers.check_tier("X", "256x192", inputs)], ("X",), strict=True)   # no record: not run
    write(records.metrics_path("256x192", "trained", tmp_path), {**fake_runs()[0]["256x192"], "AP": 0.305})
    result = tiers.check_tier("X", "256x192", inputs)
    assert [r.verdict for r in result.rows] == ["pass"] and tiers.failures([result], ("X",), strict=True) == []
    write(records.metrics_path("256x192", "trained", tmp_path), {**fake_runs()[0]["256x192"], "AP": 0.35})
    assert tiers.failures([tiers.check_tier("X", "256x192", inputs)], ("X",), strict=True)
