"""What a training run leaves in its output directory, and its progress display (rank 0 only).

    out_dir/train_log.jsonl   one JSON object per logged train interval / validation (mmpose-like keys)
    out_dir/val_history.csv   epoch, AP, AP50, ... one row per validation (for `dvc plots`)
    out_dir/metrics.json      best + final validation, epochs, iterations, wall time, images/s, recipe
    out_dir/config.yaml       the resolved configuration

Every file is rewritten whole to a temporary name and renamed (repro.atomic), so a killed run leaves
complete files; on resume the rows of epochs after the checkpoint are dropped before the run goes on.
Progress: a tqdm bar per epoch when stderr is a terminal, else a `logging` line every log_interval
iterations (parsed by nothing; the JSON lines are the machine-readable copy).
"""
import csv
import datetime
import io
import json
import logging
import sys
from pathlib import Path

import yaml

from repro import atomic
from repro.tracking import LOG_FILES, NullTracker

log = logging.getLogger("repro.train")   # name kept from before repro/engine/: log filters match it

TRAIN_LOG, VAL_HISTORY, METRICS, CONFIG = LOG_FILES   # a run's files, which its MLflow run also carries


def _round(record: dict) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()}


class RunLog:
    """Rank 0's record of one run; on other ranks (`enabled=False`) every method does nothing.

    Args:
        out_dir: the run's output directory.
        tracker: MLflow run (tracking.Tracker) or NullTracker.
        stat_names: validation metric names, in column order.
        enabled: True on rank 0 only.
        resume_epoch: number of epochs already completed (rows of later epochs are dropped).
    """

    def __init__(self, out_dir, tracker=None, stat_names=(), enabled=True, resume_epoch: int = 0):
        self.out_dir, self.tracker, self.enabled = Path(out_dir), tracker or NullTracker(), enabled
        self.stat_names = tuple(stat_names)
        self.records, self.val_rows = [], []
        self.tty = enabled and sys.stderr.isatty()
        if enabled and resume_epoch > 0:
            self._reload(resume_epoch)
        elif enabled:   # the header from the start: a run that never validates (val_interval null) still has it
            self._write_csv()

    def _reload(self, completed: int) -> None:
        path = self.out_dir / TRAIN_LOG
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            # A train record of epoch E (1-based) belongs to a completed epoch iff E <= completed.
            self.records = [r for r in rows if r.get("epoch", 0) <= completed]
        self.val_rows = [r for r in self.records if r.get("mode") == "val"]
        self._write_log()
        self._write_csv()

    # --------------------------------------------------------------------------------- progress
    def progress(self, loader, epoch: int, epochs: int):
        """`loader` wrapped in a tqdm bar (it/s, ETA) when stderr is a terminal on rank 0."""
        if not self.tty:
            return loader
        from tqdm import tqdm
        return tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", dynamic_ncols=True, leave=False,
                    file=sys.stderr)

    def iteration(self, step: int, loss: float, lr: float) -> None:
        """Per-iteration loss and learning rate (MLflow, buffered), step = global iteration."""
        if self.enabled:
            self.tracker.log_metrics({"train/loss": loss, "train/lr": lr}, step)

    def train_interval(self, record: dict, eta_s: float, bar=None) -> None:
        """One logged interval: {"epoch" (1-based), "iter", "step", "lr", "loss", "acc_pose", "time", ...}."""
        if not self.enabled:
            return
        record = _round({"mode": "train", **record})
        self.records.append(record)
        self._write_log()
        if bar is not None and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{record['loss']:.5f}", acc=f"{record['acc_pose']:.3f}",
                            lr=f"{record['lr']:.2e}", refresh=False)
        elif not self.tty:
            eta = datetime.timedelta(seconds=int(eta_s))
            log.info("Epoch(train) [%d][%d/%d]  lr: %.4e  eta: %s  time: %.4f  data_time: %.4f  "
                     "loss: %.6f  acc_pose: %.4f", record["epoch"], record["iter"], record["iters"],
                     record["lr"], eta, record["time"], record["data_time"], record["loss"],
                     record["acc_pose"])

    def epoch_end(self, epoch: int, metrics: dict) -> None:
        """Per-epoch training summary; MLflow step = epoch (1-based)."""
        if self.enabled:
            self.tracker.log_metrics({f"epoch/{k}": v for k, v in metrics.items()}, epoch + 1)
            self.tracker.flush()

    def validation(self, epoch: int, step: int, metrics: dict) -> None:
        """One validation: a JSON line, a CSV row, MLflow val/* at step = epoch (1-based), a log line."""
        if not self.enabled:
            return
        row = _round({"mode": "val", "epoch": epoch + 1, "step": step, **metrics})
        self.records.append(row)
        self.val_rows.append(row)
        self._write_log()
        self._write_csv()
        self.tracker.log_metrics({f"val/{k}": v for k, v in metrics.items()
                                  if isinstance(v, (int, float))}, epoch + 1)
        log.info("Epoch(val) [%d]  %s", epoch + 1,
                 "  ".join(f"{k}: {metrics[k]:.4f}" for k in self.stat_names if k in metrics))

    # ------------------------------------------------------------------------------------ files
    def _write_log(self) -> None:
        atomic.write_text(self.out_dir / TRAIN_LOG, "".join(json.dumps(r) + "\n" for r in self.records))

    def _write_csv(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["epoch", *self.stat_names])
        for row in self.val_rows:
            writer.writerow([row["epoch"], *(f"{row[k]:.4f}" if k in row else "" for k in self.stat_names)])
        atomic.write_text(self.out_dir / VAL_HISTORY, buf.getvalue())

    def write_config(self, config: dict) -> None:
        if self.enabled:
            atomic.write_text(self.out_dir / CONFIG, yaml.safe_dump(config, sort_keys=False))

    def write_metrics(self, summary: dict) -> None:
        if self.enabled:
            atomic.write_json(self.out_dir / METRICS, summary)
