"""Shared test fixtures."""
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
