"""The full profile's pipeline, as `dvc repro --dry` lists it on a fresh copy: every stage, with the commands
that download, train on every GPU, evaluate ours and the published checkpoints, and compare.

DVC 3.67 fails a plain `--dry` on a fresh clone (it hashes the not-yet-created data/<profile> while looking
up its run cache), so the listing uses `--dry --force`, which lists every stage as a fresh clone would run it;
`dvc status` first checks that every stage resolves under the full profile. The commands are compared with
DVC's own reading of dvc.yaml, not retyped here.
"""
import json
import re
import subprocess

from tests.conftest import CONFIGS, REPO, fresh_copy



def stage_commands(project) -> dict:
    """stage name -> its command, as DVC itself resolves dvc.yaml with this params.yaml (foreach expanded)."""
    code = ("import json; from dvc.repo import Repo\n"
            "with Repo('.') as repo:\n"
            "    print(json.dumps({s.addressing: s.cmd for s in repo.index.stages}))")
    done = subprocess.run([str(REPO / ".venv/bin/python"), "-c", code], cwd=project, capture_output=True, text=True,
                          timeout=300, env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_full_profile_dry_run_lists_every_stage_command(tmp_path):
    project = fresh_copy(tmp_path)
    params = project / "params.yaml"
    params.write_text(re.sub(r"(?m)^profile: smoke", "profile: full", params.read_text()))
    # `dvc status` resolves every stage's params and deps under the full profile (a key missing from it fails
    # here, which `--dry --force` alone would not show) and reads the full profile's data paths.
    status = subprocess.run([str(REPO / ".venv/bin/dvc"), "status"], cwd=project, capture_output=True, text=True,
                            timeout=300, env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"})
    assert status.returncode == 0, status.stderr
    assert "data/full" in status.stdout and "data/smoke" not in status.stdout
    done = subprocess.run([str(REPO / ".venv/bin/dvc"), "repro", "--dry", "--force"], cwd=project,
                          capture_output=True, text=True, timeout=300, env={"DVC_NO_ANALYTICS": "1",
                                                                           "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    listed = re.findall(r"(?m)^> (.*)$", done.stdout)
    stages = stage_commands(project)
    assert sorted(listed) == sorted(stages.values())   # every stage, once
    order = [next(name for name, cmd in stages.items() if cmd == c).split("@")[0] for c in listed]
    rank = {"data_val": 0, "data_train": 0, "plan": 1, "train": 2, "evaluate": 3, "evaluate_published": 3,
            "evaluate_reference": 3, "compare": 4}
    assert [rank[s] for s in order] == sorted(rank[s] for s in order), order
    # Both sizes train and are evaluated from their trained checkpoint and as published.
    for c in CONFIGS:
        assert f"python -m stages.train --config {c} --out models/{c}" in listed
        assert any(f"--config {c} --source trained --checkpoint models/{c}/best.pth" in cmd for cmd in listed)
        assert any(f"--config {c} --source published" in cmd for cmd in listed)
