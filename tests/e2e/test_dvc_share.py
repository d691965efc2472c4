"""DVC as its users expect it, on the real dvc.yaml's output declarations, .gitignore and .dvc/config:
`dvc push` / `dvc pull` through the default local remote share a whole run, `dvc exp show` and `dvc metrics
diff` show each experiment's AP, and `repro record` commits a full-profile run while smoke outputs stay
uncommitted.

The project is tiny: the real train, evaluate and compare stages with their real outs/metrics/plots (and
cache settings) but a stand-in command that writes each declared output (AP = 0.5 + seed / 100). Seconds
per test, no training.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.report import record
from tests.conftest import CONFIGS, REPO

REAL = yaml.safe_load((REPO / "dvc.yaml").read_text())
STAGES = ("train", "evaluate", "compare")
UPSTREAM = {"train": [], "evaluate": ["models/${key}/best.pth"],
            "compare": ["reports/metrics/256x192.json", "reports/metrics/384x288.json"]}

FAKE = '''"""Writes every output dvc.yaml declares for one stage (stand-in for the real stage command)."""
import json, pathlib, sys, yaml
stage, key = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
params = yaml.safe_load(open("params.yaml"))
spec = yaml.safe_load(open("dvc.yaml"))["stages"][stage]
for field in ("outs", "metrics", "plots"):
    for item in spec.get("do", spec).get(field, []):
        path = pathlib.Path((next(iter(item)) if isinstance(item, dict) else item).replace("${key}", key))
        if not path.suffix:
            path = path / "predictions.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            ap = round(0.5 + params["seed"] / 100 + (0.001 if "384x288" in str(path) else 0), 4)
            stats = {"AP": ap, "AP50": 0.8, "AP75": 0.6, "AP_M": 0.5, "AP_L": 0.6, "AR": ap + 0.05, "AR50": 0.85,
                     "AR75": 0.65, "AR_M": 0.55, "AR_L": 0.65}
            if path.parts[:2] == ("reports", "stats"):
                text = json.dumps({**stats, "verdict": "pass"})
            else:   # a record: the stats and their provenance, as the real ones
                text = json.dumps({**stats, "config": key, "profile": params["profile"], "verdict": "pass",
                                   "recipe": {"diff": [{"name": "train.epochs", "published": 210, "used": 2}]},
                                   "platform": {"cpu": "x" * 40, "torch": "2.13.0"}})
        elif path.suffix == ".csv":
            text = "epoch,AP\\n1,0.5\\n"
        else:
            text = f"{stage} {key} seed {params['seed']} profile {params['profile']}\\n"
        path.write_text(text)
'''


def tiny_dvc_yaml() -> dict:
    """The real stages' outs, metrics and plots (cache flags included) around the stand-in command."""
    stages = {}
    for name in STAGES:
        real = REAL["stages"][name]
        body = real.get("do", real)
        stage = {"cmd": f"python fake.py {name}" + (" ${key}" if "foreach" in real else ""),
                 "deps": ["fake.py", *UPSTREAM[name]], "params": ["profile", "seed"]}
        stage.update({f: body[f] for f in ("outs", "metrics", "plots") if f in body})
        stages[name] = {"foreach": real["foreach"], "do": stage} if "foreach" in real else stage
    return {"stages": stages}


def env() -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "REPRO_"))},
            "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}


def run(*cmd, cwd, width=None) -> str:
    extra = {"COLUMNS": str(width)} if width else {}
    done = subprocess.run(cmd, cwd=cwd, env={**env(), **extra}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def dvc(*args, cwd, width=None) -> str:
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd, width=width)


def git(*args, cwd) -> str:
    return run("git", *args, cwd=cwd)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """tmp_path/project: a git + DVC repo with the real .gitignore and .dvc/config (whose default remote
    `../cpm-repro-dvc-remote` is then tmp_path/cpm-repro-dvc-remote)."""
    for key, value in env().items():
        monkeypatch.setenv(key, value)   # repro.report.record's own git and dvc calls
    root = tmp_path / "project"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    dvc("init", "-q", cwd=root)
    (root / ".dvc/config").write_text((REPO / ".dvc/config").read_text())
    (root / ".gitignore").write_text((REPO / ".gitignore").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({"profile": "smoke", "seed": 0,
                                                      "configs": {c: {} for c in CONFIGS}}))
    (root / "dvc.yaml").write_text(yaml.safe_dump(tiny_dvc_yaml(), sort_keys=False))
    (root / "fake.py").write_text(FAKE)
    git("add", "-A", cwd=root)
    git("commit", "-qm", "tiny project", cwd=root)
    return root


def set_params(root: Path, **values):
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**params, **values}))


# The README's `dvc exp show` for comparing experiments on AP: keep the experiment, the seed and each AP column.
EXP_SHOW_AP = ["--drop", ".*", "--keep", r"Experiment|seed|.*/[0-9]+x[0-9]+\.json:AP$"]
EVALUATIONS = [t for c in CONFIGS for t in (c, f"published_{c}", f"reference_{c}")]
SHARED = ["models/256x192/best.pth", "models/256x192/last.pth", "models/384x288/metrics.json",
          "models/384x288/val_history.csv", "outputs/eval/256x192/predictions.json", "reports/metrics/256x192.json",
          "reports/metrics/384x288.json", "reports/comparison.json", "reports/comparison.md",
          "reports/stats/256x192.json"]


def test_default_remote_is_a_directory_beside_the_checkout():
    cfg = (REPO / ".dvc/config").read_text()
    assert "remote = local" in cfg and "url = ../../cpm-repro-dvc-remote" in cfg   # relative to .dvc/


def test_push_then_pull_in_a_clone_restores_the_run_and_nothing_reruns(project, tmp_path):
    dvc("repro", "-q", cwd=project)
    # Every output is git-ignored (DVC added no .gitignore of its own): only dvc.lock is new to git.
    assert git("status", "--porcelain", cwd=project).splitlines() == ["?? dvc.lock"]
    dvc("push", cwd=project)
    remote = tmp_path / "cpm-repro-dvc-remote"
    assert remote.is_dir() and any(p.is_file() for p in remote.rglob("*"))

    git("add", "dvc.lock", cwd=project)
    git("commit", "-qm", "the run", cwd=project)
    git("clone", "-q", str(project), str(tmp_path / "clone"), cwd=tmp_path)
    clone = tmp_path / "clone"
    dvc("pull", cwd=clone)
    for name in SHARED:
        assert (clone / name).read_bytes() == (project / name).read_bytes(), name
    assert json.loads(dvc("status", "--json", cwd=clone)) == {}   # up to date: dvc repro would rerun nothing


def experiment_metrics(show: list) -> dict:
    """{experiment name: {metrics file: its data}} from `dvc exp show --json`."""
    out = {}
    for commit in show:
        for exp in commit.get("experiments") or []:
            for rev in exp["revs"]:
                out[rev["name"]] = {path: m.get("data", m.get("error")) for path, m in rev["data"]["metrics"].items()}
    return out


def test_exp_show_and_metrics_diff_show_the_ap_of_two_experiments(project):
    dvc("exp", "run", "-q", "-S", "seed=1", "-n", "seed1", cwd=project)
    dvc("exp", "run", "-q", "-S", "seed=2", "-n", "seed2", cwd=project)
    shown = experiment_metrics(json.loads(dvc("exp", "show", "--json", cwd=project)))
    assert shown["seed1"]["reports/stats/256x192.json"]["AP"] == 0.51, shown["seed1"]
    assert shown["seed2"]["reports/stats/256x192.json"]["AP"] == 0.52, shown["seed2"]
    assert shown["seed2"]["reports/stats/384x288.json"]["AP"] == 0.521
    assert shown["seed2"]["reports/stats/256x192.json"]["verdict"] == "pass"
    # Only the small flat files are metrics: no record's provenance (recipe diff, platform) in the views.
    assert all(path.startswith("reports/stats/") for path in shown["seed2"]), sorted(shown["seed2"])
    diff = json.loads(dvc("metrics", "diff", "seed1", "seed2", "--json", cwd=project))
    ap = diff["reports/stats/256x192.json"]["AP"]
    assert (ap["old"], ap["new"]) == (0.51, 0.52) and abs(ap["diff"] - 0.01) < 1e-12
    assert set(diff["reports/stats/256x192.json"]) == {"AP", "AR"}   # only the stats that changed
    # The workspace holds the last experiment; main commits no dvc.lock, so `old` is empty, but it works.
    diff = json.loads(dvc("metrics", "diff", "main", "--json", cwd=project))
    assert diff["reports/stats/256x192.json"]["AP"] == {"old": None, "new": 0.52}


def test_metrics_show_is_one_row_per_evaluation_and_exp_show_compares_ap_at_a_glance(project):
    """The README's views: `dvc metrics show` one row per evaluation within a normal terminal, and its
    `dvc exp show` invocation one row per experiment with the APs and the seed, nothing else."""
    dvc("exp", "run", "-q", "-S", "seed=1", "-n", "seed1", cwd=project)
    dvc("exp", "run", "-q", "-S", "seed=2", "-n", "seed2", cwd=project)
    lines = [line for line in dvc("metrics", "show", cwd=project).splitlines() if line.strip()]
    rows = [line for line in lines if line.startswith("reports/")]
    assert sorted(r.split()[0] for r in rows) == sorted(f"reports/stats/{t}.json" for t in EVALUATIONS), lines
    assert max(map(len, lines)) <= 150, "\n".join(lines)
    table = dvc("exp", "show", *EXP_SHOW_AP, "--no-pager", cwd=project, width=150)
    assert "seed1" in table and "seed2" in table and "0.521" in table and "0.511" in table, table
    assert all(f"reports/stats/{c}.json:AP" in table for c in CONFIGS), table
    assert "AP50" not in table and "published_" not in table and "profile" not in table, table
    assert max(map(len, table.splitlines())) <= 150, table



def test_record_commits_a_full_profile_run_alone_and_a_clone_pulls_it_back(project, tmp_path):
    dvc("repro", "-q", cwd=project)
    with pytest.raises(record.RecordError, match="profile 'smoke' is not recorded"):
        record.record(project)

    set_params(project, profile="full", seed=3)
    dvc("repro", "-q", cwd=project)
    set_params(project, seed=4)
    with pytest.raises(record.RecordError, match="dvc.lock: the workspace differs from it in compare, "):
        record.record(project)   # a param changed and the pipeline did not run again
    set_params(project, seed=3)
    (project / "unrelated.txt").write_text("staged, not part of the record\n")
    git("add", "unrelated.txt", cwd=project)
    dest, commit = record.record(project, push=True, message="tiny test run")

    assert dest == project / "reports/records/full"
    committed = git("show", "--name-only", "--format=", commit, cwd=project).split()
    assert sorted(committed) == [f"reports/records/full/{n}" for n in (
        "comparison.json", "comparison.md", "dvc.lock", "metrics/256x192.json", "metrics/384x288.json", "params.yaml")]
    assert git("diff", "--cached", "--name-only", cwd=project).split() == ["unrelated.txt"]   # still only staged
    assert "record the full reproduction: pass" in git("log", "-1", "--format=%B", cwd=project)
    assert "256x192 AP 0.53" in git("log", "-1", "--format=%B", cwd=project)
    tracked = git("ls-files", cwd=project).split()
    assert not [p for p in tracked if p.startswith(("models/", "outputs/", "reports/metrics/"))]
    assert "dvc.lock" not in tracked and "reports/comparison.json" not in tracked   # the run's own files: uncommitted

    # The record gets the run back on another machine: its dvc.lock and params, then dvc pull.
    git("clone", "-q", str(project), str(tmp_path / "clone"), cwd=tmp_path)
    clone = tmp_path / "clone"
    for name in ("dvc.lock", "params.yaml"):
        (clone / name).write_text((clone / "reports/records/full" / name).read_text())
    dvc("pull", cwd=clone)
    for name in SHARED:
        assert (clone / name).read_bytes() == (project / name).read_bytes(), name
    assert json.loads(dvc("status", "--json", cwd=clone)) == {}
