"""`repro record`: commit a full-profile reproduction's results to git; the smoke profile's stay uncommitted.

    dvc exp run -S profile=full            # (or params.yaml profile: full, then scripts/repro.sh)
    repro record --push                    # dvc push, then one commit of reports/records/full/

Every pipeline output is git-ignored (a clone must run every stage, and the default smoke run must never be
committed by accident), and dvc.lock is left uncommitted. A real reproduction is worth keeping: `record`
copies what identifies and summarises it into `reports/records/<profile>/` and commits that directory
alone (whatever else is staged stays staged, uncommitted):

    dvc.lock, params.yaml                  the run: every dep, param and output hash (models, predictions)
    comparison.md, comparison.json         the verdicts
    metrics/*.json                         reports/metrics/ (10 COCO stats per model)

It refuses (one line, exit 2) a run whose comparison.json is not of a recorded profile (full), a pipeline
that is not up to date with dvc.lock (`dvc status`), and missing files. `--push` runs `dvc push` first, so
the recorded dvc.lock points at checkpoints and predictions the remote has. To get a recorded run back:

    git show REV:reports/records/full/dvc.lock > dvc.lock && git show REV:reports/records/full/params.yaml > params.yaml
    dvc pull                               # the recorded models/, outputs/eval/, reports/ from the remote
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from repro import atomic
from repro.errors import ReproError

RECORD_DIR = Path("reports/records")
RECORDED_PROFILES = ("full",)
FILES = {"dvc.lock": "dvc.lock", "params.yaml": "params.yaml", "reports/comparison.md": "comparison.md",
         "reports/comparison.json": "comparison.json"}
METRICS_DIR = Path("reports/metrics")
DVC = [sys.executable, "-m", "dvc"]   # the dvc of this environment, activated or not


class RecordError(ReproError):
    """A run that cannot be recorded; the message names the file and what is wrong."""


def _run(cmd: list, root: Path, what: str) -> str:
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    except OSError as e:
        raise RecordError(f"{what}: cannot run {' '.join(cmd[:3])} ({e})") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise RecordError(f"{what}: `{' '.join(cmd)}` exited {done.returncode}: {last[0]}")
    return done.stdout


def _check(root: Path, profiles) -> dict:
    """The run's comparison summary, after checking it can be recorded."""
    for name in [*FILES, str(METRICS_DIR)]:
        if not (root / name).exists():
            raise RecordError(f"{name}: missing; run the pipeline first (dvc exp run -S profile=full)")
    try:
        summary = json.loads((root / "reports/comparison.json").read_text())
        profile = summary["profile"]
    except (ValueError, KeyError, TypeError) as e:
        raise RecordError(f"reports/comparison.json: no readable `profile` ({type(e).__name__}: {e})") from None
    if profile not in profiles:
        raise RecordError(f"reports/comparison.json: profile {profile!r} is not recorded (only {', '.join(profiles)}; "
                          f"the {profile} profile's outputs stay uncommitted)")
    lock = yaml.safe_load((root / "dvc.lock").read_text()) or {}
    locked = (((lock.get("stages") or {}).get("compare") or {}).get("params") or {}).get("params.yaml", {})
    if locked.get("profile") != profile:
        raise RecordError(f"dvc.lock: stages.compare.params profile is {locked.get('profile')!r}, "
                          f"reports/comparison.json says {profile!r}; rerun the pipeline")
    status = json.loads(_run([*DVC, "status", "--json"], root, "dvc status") or "{}")
    if status:
        raise RecordError(f"dvc.lock: the workspace differs from it in {', '.join(sorted(status))} "
                          f"(dvc status); run dvc repro first")
    return summary


def record(root=".", push: bool = False, message: str | None = None, profiles=RECORDED_PROFILES) -> tuple[Path, str]:
    """Copy the run's record into reports/records/<profile>/ and commit that directory alone.

    Returns:
        (the record directory, the new commit's hash).

    Raises:
        RecordError: see the module docstring.
    """
    root = Path(root)
    summary = _check(root, profiles)
    if push:
        _run([*DVC, "push"], root, "dvc push")
    rel = RECORD_DIR / summary["profile"]
    dest = root / rel
    if (dest / "metrics").is_dir():
        shutil.rmtree(dest / "metrics")   # a model left out of this run leaves no stale file behind
    with atomic.all_or_none():   # the whole record or none of it
        for src, name in FILES.items():
            atomic.write_bytes(dest / name, (root / src).read_bytes())
        for path in sorted((root / METRICS_DIR).glob("*.json")):
            atomic.write_bytes(dest / "metrics" / path.name, path.read_bytes())
    aps = ", ".join(f"{p.stem} AP {json.loads(p.read_text()).get('AP')}"
                    for p in sorted((dest / "metrics").glob("*.json")))
    subject = f"record the {summary['profile']} reproduction: {summary.get('verdict')}"
    body = (message + "\n\n" if message else "") + f"{aps}\n\nrepro record: {rel}/ (dvc.lock, params.yaml, " \
        "comparison, metrics); `dvc pull` with this dvc.lock gets its models and predictions."
    _run(["git", "add", "--", str(rel)], root, "git add")
    _run(["git", "commit", "-q", "-m", subject, "-m", body, "--", str(rel)], root, "git commit")
    return dest, _run(["git", "rev-parse", "HEAD"], root, "git rev-parse").strip()
