"""The full profile's pipeline, as `dvc repro --dry` lists it on a fresh copy: every stage, with the commands
that download, train on every GPU, evaluate ours and the published checkpoints, and compare.

DVC 3.67 fails a plain `--dry` on a fresh clone (it hashes the not-yet-created data/<profile> while looking
up its run cache), so the listing uses `--dry --force`, which lists every stage as a fresh clone would run it.
"""
import re
import subprocess

from tests.conftest import CONFIGS, REPO, fresh_copy



def test_full_profile_dry_run_lists_every_stage_command(tmp_path):
    project = fresh_copy(tmp_path)
    params = project / "params.yaml"
    params.write_text(re.sub(r"(?m)^profile: smoke", "profile: full", params.read_text()))
    done = subprocess.run([str(REPO / ".venv/bin/dvc"), "repro", "--dry", "--force"], cwd=project,
                          capture_output=True, text=True, timeout=300, env={"DVC_NO_ANALYTICS": "1",
                                                                           "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    commands = re.findall(r"(?m)^> (.*)$", done.stdout)
    evaluate = "python -m stages.evaluate --config {} --source {} --metrics-dir reports/metrics --eval-dir outputs/eval"
    assert commands == [
        "python -m stages.data --part val",
        "python -m stages.data --part train",
        "python -m stages.plan --out-dir reports/plan",
        "python -m stages.train --config 256x192 --out models/256x192",
        "python -m stages.train --config 384x288 --out models/384x288",
        *(f"python -m stages.evaluate --config {c} --source trained --checkpoint models/{c}/best.pth "
          "--metrics-dir reports/metrics --eval-dir outputs/eval --ledger-dir reports/ledger" for c in CONFIGS),
        *(f"python -m stages.evaluate --config {c} --source published --published-dir models/published "
          "--metrics-dir reports/metrics --eval-dir outputs/eval" for c in CONFIGS),
        *(evaluate.format(c, "reference") for c in CONFIGS),   # writes not_run in the full profile
        "python -m stages.compare --metrics-dir reports/metrics --models-dir models --eval-dir outputs/eval "
        "--out-dir reports",
    ]
    # The stages read the full profile: data goes to data/full (the train stage's dep).
    status = subprocess.run([str(REPO / ".venv/bin/dvc"), "status"], cwd=project, capture_output=True, text=True,
                            timeout=300, env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"})
    assert "data/full" in status.stdout and "data/smoke" not in status.stdout
