"""The seed ledger: every finished retrain's metrics by seed, for equivalence over N retrains (tier C / S).

    repro.evaluation.ledger.append(Path("reports/ledger"), record)      # the evaluate stage, for a trained model
    repro.evaluation.ledger.read(ledger_path(Path("reports/ledger"), "full", "256x192"))

One file per profile and config, reports/ledger/<profile>_<config>.json:

    {"profile": "full", "config": "256x192",
     "entries": [{"seed": 0, "commit": "<git sha>", "checkpoint": "...", "metrics": {"AP": .., ...}}, ...]}

An entry is keyed by (seed, commit): evaluating the same seed at the same commit again replaces its entry
(the ledger never counts one retrain twice); another commit or seed appends. The file is not a DVC out
(DVC would delete it before each evaluate run): it accumulates across `dvc exp run -S seed=N` runs.

Two ledgers of the same layout, read together: the committed one (reports/ledger, written only when asked:
`repro baseline`, or `repro evaluate --ledger-dir reports/ledger`) and this checkout's run ledger
(outputs/ledger, git-ignored), which the evaluate stage appends to, so a plain `dvc repro` changes no tracked
file. `read_all` merges them, the run ledger last (its entry of a seed and commit wins).
"""
import json
import math
import subprocess
from pathlib import Path

from repro import atomic

LEDGER_DIR = Path("reports/ledger")       # committed
RUN_LEDGER_DIR = Path("outputs/ledger")   # this checkout's runs (git-ignored)


def ledger_path(ledger_dir, profile: str, name: str) -> Path:
    """reports/ledger/<profile>_<config>.json."""
    return Path(ledger_dir) / f"{profile}_{name}.json"


def git_commit(cwd=None) -> str:
    """HEAD's sha, "+dirty" when the tracked tree has changes, or "unknown" outside git."""
    def git(*args):
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None
    sha = git("rev-parse", "HEAD")
    if not sha:
        return "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def read(path) -> dict | None:
    """The ledger at `path`, or None when there is none yet."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def read_all(paths) -> dict | None:
    """The entries of several ledger files of one profile and config, in order, an entry of a (seed, commit)
    taken from the last file that has it; None when none of them exists."""
    ledgers = [ledger for ledger in map(read, paths) if ledger is not None]
    if not ledgers:
        return None
    entries = {}
    for ledger in ledgers:
        entries.update({(e["seed"], e["commit"]): e for e in ledger["entries"]})
    return {**ledgers[0], "entries": list(entries.values())}


def append(ledger_dir, record: dict, metric_names, commit: str | None = None) -> Path:
    """Record one evaluated retrain (a reports/metrics/<config>.json record with source "trained").

    Args:
        ledger_dir: reports/ledger.
        record: the metrics record; its profile, config and seed key the entry.
        metric_names: the stats to keep (published.yaml `metric_names`); non-finite values are refused.
        commit: the code version (default: `git_commit()`).

    Returns:
        The ledger file written.
    """
    if record.get("source") != "trained":
        raise ValueError(f"only trained models go into the seed ledger, not source {record.get('source')!r}")
    metrics = {m: record.get(m) for m in metric_names}
    bad = {m: v for m, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)}
    if bad:
        raise ValueError(f"config {record.get('config')} seed {record.get('seed')}: non-finite metrics {bad}")
    path = ledger_path(ledger_dir, record["profile"], record["config"])
    ledger = read(path) or {"profile": record["profile"], "config": record["config"], "entries": []}
    entry = {"seed": int(record["seed"]), "commit": commit or git_commit(),
             "checkpoint": record.get("checkpoint"), "metrics": metrics}
    kept = [e for e in ledger["entries"] if (e["seed"], e["commit"]) != (entry["seed"], entry["commit"])]
    ledger["entries"] = [*kept, entry]   # appended last: the newest entry of a seed wins in values_by_seed
    return atomic.write_json(path, ledger)


def values_by_seed(ledger: dict | None, metric: str = "AP") -> dict:
    """seed -> value of `metric`, one per seed: its most recently recorded entry (entries are in append order)."""
    out = {}
    for entry in (ledger or {}).get("entries", []):
        out[entry["seed"]] = entry["metrics"][metric]
    return out
