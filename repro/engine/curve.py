"""A run's val AP per epoch against a reference training curve: where it falls below the band, when to stop.

    ref = curve.reference(published, "smoke", "256x192")          # published.yaml learning_curve
    rows = curve.compare_curve(measured, ref.points, ref.band)     # one row per validation of the run
    stop = curve.stop_verdict(epoch, ap, ref.points, margin, from_epoch)

The reference is a training log in mmpose 0.x format (repro.engine.mmpose_log): the published run's log in the full
profile, a committed log of our own reference run in the smoke profile; where each lives, and the band, are
data (repro/published.yaml `learning_curve`).

The published runs validate every 10 epochs. At an epoch between two reference validations the reference
is the straight line between them (AP rises smoothly within a constant learning rate; a run that validates
at the same epochs, as the published recipe does, needs no interpolation). Outside the reference's first
and last validation there is no reference: such a validation is reported, never flagged and never stopped
(extrapolating a learning curve guesses exactly what is being tested).
"""
import dataclasses
import math
from pathlib import Path

from repro.engine import mmpose_log


@dataclasses.dataclass(frozen=True)
class Reference:
    """One profile's reference curve for one config."""

    path: Path
    band: float                   # flag a validation more than this below the reference
    points: list                  # [(epoch, AP)] sorted by epoch


def reference_spec(published: dict, profile: str, name: str) -> tuple[Path, float]:
    """(log path, band) of `profile`/`name` from published.yaml `learning_curve`.

    Raises:
        KeyError: the profile or config has no reference log in published.yaml (a bug in that file).
    """
    spec = published["learning_curve"]
    return Path(spec["logs"][profile][name]), float(spec["band"][profile])


def reference(published: dict, profile: str, name: str) -> Reference:
    """Read the reference curve of `profile`/`name`.

    Raises:
        mmpose_log.LogFormatError: the log is missing, malformed or has no validation lines.
    """
    path, band = reference_spec(published, profile, name)
    if not path.is_file():
        raise mmpose_log.LogFormatError(
            f"{path}: no reference training log for {name} ({profile} profile); "
            + ("the full profile downloads it with the published checkpoint: repro download-published "
               f"--config {name} --dest {path.parent}" if profile == "full"
               else "write one from a reference run: python -m repro.engine.mmpose_log models/"
                    f"{name}/train_log.jsonl {path}"))
    points = [(p["epoch"], p["AP"]) for p in mmpose_log.read_curve(path)]
    return Reference(path, band, points)


def interpolate(points, epoch: int) -> float | None:
    """The reference AP at `epoch`: exact at a reference epoch, linear between two, None outside them."""
    if not points or epoch < points[0][0] or epoch > points[-1][0]:
        return None
    for (e0, a0), (e1, a1) in zip(points, points[1:]):
        if e0 <= epoch <= e1:
            return a0 + (a1 - a0) * (epoch - e0) / (e1 - e0)
    return points[0][1]   # a single reference validation at exactly this epoch


def compare_curve(measured, points, band: float) -> list[dict]:
    """One row per validation of the run, against the reference.

    Args:
        measured: [(epoch, AP)] of the run (models/<config>/val_history.csv).
        points: the reference [(epoch, AP)].
        band: how far below the reference a validation may fall before it is flagged.

    Returns:
        [{"epoch", "measured", "reference" (None outside the reference), "delta" (measured - reference),
        "below_band" (True, False, or None where there is no reference)}], sorted by epoch. A non-finite
        measured AP is flagged (a gate never passes on a non-finite number).
    """
    rows = []
    for epoch, ap in sorted(measured):
        ref = interpolate(points, epoch)
        if ref is None:
            rows.append({"epoch": epoch, "measured": ap, "reference": None, "delta": None, "below_band": None})
            continue
        below = not math.isfinite(ap) or ap < ref - band
        rows.append({"epoch": epoch, "measured": ap, "reference": ref, "delta": ap - ref, "below_band": below})
    return rows


def stop_verdict(epoch: int, ap: float, points, margin: float, from_epoch: int) -> dict | None:
    """Whether a run should stop after its validation at `epoch` (1-based): val AP < reference - margin.

    Returns:
        None to go on (before from_epoch, no reference at this epoch, or not below); else the verdict
        {"epoch", "AP", "reference", "margin", "reason"}. A non-finite AP stops the run too.
    """
    ref = interpolate(points, epoch) if epoch >= from_epoch else None
    if ref is None or (math.isfinite(ap) and ap >= ref - margin):
        return None
    return {"epoch": epoch, "AP": ap, "reference": round(ref, 6), "margin": margin,
            "reason": f"val AP {ap:.4f} at epoch {epoch} is below the reference {ref:.4f} - margin {margin} "
                      f"= {ref - margin:.4f}"}
