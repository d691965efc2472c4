"""Tables as text: aligned plain text for the terminal, GitHub markdown for the reports. A leaf module: it
formats what it is given and imports nothing of the project but the baseline's loss keys."""
from repro.report.baseline import LOSS_KEYS

DP = 4   # decimals of a COCO stat in every report and JSON summary
CHECK_COLUMNS = ("tier", "config", "metric", "expected", "measured", "delta", "tolerance", "verdict", "note")
STATUS_COLUMNS = ("tier", "config", "status", "metrics file", "reason")
EQUIVALENCE_COLUMNS = ("tier", "config", "seeds", "mean AP", "std", "reference", "margin",
                       "90% CI", "p (TOST)", "verdict")


def rounded(value):
    """A number at DP decimals (None stays None), as comparison.json and the plots' CSVs hold it."""
    return None if value is None else round(float(value), DP)


def fmt(value, metric: str = "", sign: str = "") -> str:
    """A number as the tables show it: 4 decimals (COCO stats), 6 for the training loss (about 0.01)."""
    if value is None:
        return "-"
    digits = 6 if metric in LOSS_KEYS else 4
    return f"{value:{sign}.{digits}f}" if isinstance(value, float) else str(value)


def render(header, rows, markdown: bool = False, none: str = "-") -> str:
    """A fixed-column table: aligned plain text, or GitHub markdown; a None cell reads `none`."""
    rows = [[none if c is None else str(c).replace("|", "\\|") if markdown else str(c) for c in row]
            for row in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)]) + "\n"


def check_cells(row) -> list:
    """A gate check (repro.report.checks.Row) as the cells of CHECK_COLUMNS."""
    return [row.tier, row.config, row.metric, fmt(row.expected, row.metric), fmt(row.measured, row.metric),
            fmt(row.delta, row.metric, "+"), row.tolerance, row.verdict, row.note]


def status_cells(results) -> list:
    """One line per tier and config: ran or not, and why not."""
    return [[r.tier, r.config, "ran" if r.ran else "not_run", r.path, r.not_run] for r in results]


def render_results(results, markdown: bool = False) -> str:
    """The check table for every tier that ran, then which tiers ran and which did not, and why."""
    checks = [check_cells(row) for r in results for row in r.rows]
    text = render(CHECK_COLUMNS, checks, markdown) if checks else "(no checks: no tier ran)\n"
    return text + "\n" + render(STATUS_COLUMNS, status_cells(results), markdown)


def equivalence_cells(e: dict) -> list:
    ci = "-" if e["ci_low"] is None else f"[{e['ci_low']:.4f}, {e['ci_high']:.4f}]"
    p = "-" if e["p_value"] is None else f"{e['p_value']:.4f}"
    return [e["tier"], e["config"], f"{len(e['seeds'])} {e['seeds']}", fmt(e["mean"]), fmt(e["std"]),
            f"{fmt(e['reference'])} ({e['reference_is']})", fmt(e["margin"]), ci, p, e["verdict"]]


def render_equivalence(rows: list, markdown: bool = False) -> str:
    """The equivalence table (one row per tier and config)."""
    return render(EQUIVALENCE_COLUMNS, [equivalence_cells(e) for e in rows], markdown)
