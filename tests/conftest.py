"""Shared test fixtures."""
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real COCO sample lives in ../shared beside a checkout (CI has it; a user's clone may not).
COCO_SAMPLE = REPO.parent / "shared" / "coco_sample"


@pytest.fixture
def coco_sample() -> Path:
    if not (COCO_SAMPLE / "test_coco.json").is_file():
        pytest.skip(f"COCO sample not found at {COCO_SAMPLE} (../shared beside the checkout)")
    return COCO_SAMPLE


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def fresh_copy(dest: Path) -> Path:
    """What a clone of this checkout holds (tracked and new unignored files), committed in a new repo."""
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    # The already-built environment: scripts/env.sh finds its stamp up to date and installs nothing.
    (dest / ".venv").symlink_to(REPO / ".venv")
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "fresh clone", cwd=dest)
    return dest
