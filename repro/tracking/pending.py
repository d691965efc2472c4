"""A run that could not be recorded, kept as a marker file for `repro publish` (repro/tracking/outbox.py)."""
import logging
import os
import time
from pathlib import Path

from repro import atomic

log = logging.getLogger("repro.tracking.outbox")

# Where a run that could not be recorded waits for `repro publish` (relative to the repo root).
PENDING_DIR = Path("outputs/unpublished")


def keep_pending(run: dict, error: Exception) -> Path:
    """Keep `run` for `repro publish` and say so in one line (the results themselves are already on disk)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    marker = PENDING_DIR / f"{run['name']}-{stamp}-{os.getpid()}.json"
    atomic.write_json(marker, {**run, "error": f"{type(error).__name__}: {error}"})
    log.error("MLflow failed (%s); the results are written, the run is kept in %s: "
              "run `repro publish` when the store is back", str(error).splitlines()[0][:300], marker)
    return marker
