"""mmpose 0.x training logs (`*.log.json`, spec §6): read one into a validation curve, write ours in that format.

    curve = read_curve("models/published/cpm_coco_256x192_20200817.log.json")   # [{"epoch": 10, "AP": ...}]
    python -m repro.engine.mmpose_log models/256x192/train_log.jsonl reports/baselines/smoke_256x192.log.json

The format (mmcv TextLoggerHook): one JSON object per line; line 1 is the run's meta (`env_info`, `seed`);
train lines carry "mode": "train"; validation lines "mode": "val", a 1-based "epoch" and the COCO stats under
mmpose's names ("AP", "AP .5", ..., "AR (L)"; older HRNet-era logs spell "Ap .5").

Reading is strict where a file is wrong and lenient where it was only cut short: a final line that does not
parse and has no newline is what an interrupted download leaves, so it is dropped with a warning; any other
line that is not a JSON object is an error naming the file and line number. A log without validation lines,
or a validation line without a finite AP, is an error too (there would be no curve to compare with).
"""
import argparse
import json
import logging
import math
import sys
from pathlib import Path

from repro import atomic

log = logging.getLogger("repro.mmpose_log")   # name kept from before repro/engine/: log filters match it

# mmpose stat name -> ours (repro.evaluation.evaluate.STAT_NAMES order); "Ap .5" is the older spelling (spec §6).
MMPOSE_STATS = {"AP": "AP", "AP .5": "AP50", "AP .75": "AP75", "AP (M)": "AP_M", "AP (L)": "AP_L",
                "AR": "AR", "AR .5": "AR50", "AR .75": "AR75", "AR (M)": "AR_M", "AR (L)": "AR_L"}
OLD_SPELLINGS = {"Ap .5": "AP50"}
DECIMALS = 5   # mmcv rounds every float in the log to 5 decimals


class LogFormatError(ValueError):
    """A training log that cannot give a validation curve; the message names the file (and line)."""


def _records(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-empty line; a cut-off last line is dropped with a warning."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise LogFormatError(f"{path}: cannot read the training log ({e})") from None
    lines = text.splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines) and not text.endswith("\n"):
                log.warning("%s:%d: dropped a truncated last line (interrupted download?)", path, number)
                continue
            raise LogFormatError(f"{path}:{number}: not a JSON object ({e.msg})") from None
        if not isinstance(record, dict):
            raise LogFormatError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        records.append((number, record))
    return records


def _val_point(path: Path, number: int, record: dict) -> dict:
    """One validation line -> {"epoch", <our stat names>...}; errors name the line."""
    epoch = record.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise LogFormatError(f"{path}:{number}: validation line without a 1-based integer 'epoch' ({epoch!r})")
    point = {"epoch": epoch}
    for name, ours in {**MMPOSE_STATS, **OLD_SPELLINGS}.items():
        value = record.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            point[ours] = float(value)
    if not math.isfinite(point.get("AP", math.nan)):
        raise LogFormatError(f"{path}:{number}: validation line without a finite 'AP' ({record.get('AP')!r})")
    return point


def read_curve(path) -> list[dict]:
    """The validation curve of an mmpose 0.x `log.json`.

    Args:
        path: the log file.

    Returns:
        One dict per validation, sorted by epoch: {"epoch": 1-based int, "AP": float, and whichever of
        AP50 ... AR_L the line carries}. A repeated epoch (a resumed run) keeps its last line.

    Raises:
        LogFormatError: unreadable file, a malformed line other than a truncated last one, a bad
            validation line, or no validation line at all.
    """
    path = Path(path)
    points = {}
    for number, record in _records(path):
        if record.get("mode") == "val":
            point = _val_point(path, number, record)
            points[point["epoch"]] = point
    if not points:
        raise LogFormatError(f"{path}: no validation lines (\"mode\": \"val\"); not an mmpose training log?")
    return [points[e] for e in sorted(points)]


def _rounded(record: dict) -> dict:
    return {k: round(v, DECIMALS) if isinstance(v, float) else v for k, v in record.items()}


def to_mmpose(records: list[dict], seed: int | None, env_info: str = "") -> str:
    """Our train_log.jsonl records (repro.engine.runlog) as the text of an mmpose 0.x log.json.

    Args:
        records: the run's records in order: train intervals and validations (mode "train" / "val").
        seed: the run's seed (line 1, like runner.meta).
        env_info: free text for line 1's env_info.

    Returns:
        The log text, one JSON object per line, newline-terminated.
    """
    lines = [{"env_info": env_info, "seed": seed}]
    last_train = {}
    for r in records:
        if r.get("mode") == "train":
            last_train = r
            line = {"mode": "train", "epoch": r["epoch"], "iter": r["iter"], "lr": r["lr"]}
            if "memory" in r:
                line["memory"] = r["memory"]
            line.update(data_time=r["data_time"], mse_loss=r["loss"], acc_pose=r["acc_pose"], loss=r["loss"],
                        time=r["time"])
        elif r.get("mode") == "val":
            # mmcv's val line repeats the iteration count and lr of the epoch's last train line.
            line = {"mode": "val", "epoch": r["epoch"], "iter": last_train.get("iter", 0),
                    "lr": last_train.get("lr", 0.0)}
            line.update({mm: r[ours] for mm, ours in MMPOSE_STATS.items() if ours in r})
        else:
            continue
        lines.append(_rounded(line))
    return "".join(json.dumps(line) + "\n" for line in lines)


def write_log(train_log, out_path, seed: int | None = None, env_info: str = "") -> Path:
    """Convert a run's train_log.jsonl to an mmpose 0.x log.json at `out_path` (written atomically)."""
    train_log = Path(train_log)
    records = [json.loads(line) for line in train_log.read_text().splitlines() if line.strip()]
    text = to_mmpose(records, seed, env_info or f"converted by repro.engine.mmpose_log from {train_log}")
    return atomic.write_text(out_path, text)


def main(argv=None) -> None:
    """`python -m repro.engine.mmpose_log TRAIN_LOG OUT`: write a run's log in mmpose 0.x format."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("train_log", help="a run's train_log.jsonl (models/<config>/train_log.jsonl)")
    p.add_argument("out", help="the mmpose-format log.json to write")
    p.add_argument("--seed", type=int, default=None, help="the run's seed, recorded on line 1")
    p.add_argument("--note", default="", help="line 1's env_info text (default: where it came from)")
    args = p.parse_args(argv)
    try:
        out = write_log(args.train_log, args.out, args.seed, args.note)
        points = read_curve(out)   # the written file must read back as a curve
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"repro.engine.mmpose_log: error: {args.train_log}: {e}")
    print(f"{out}: {len(points)} validation(s), epochs {[p['epoch'] for p in points]}")


if __name__ == "__main__":
    main()
