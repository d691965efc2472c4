"""Look at MLflow runs the way a person does: `mlflow ui` on an SQLite store, rendered by headless Chromium.

The REST API can say a run exists while the UI shows nothing (a store the server cannot read, a run in
another experiment, a metric logged under another key), so these helpers read the rendered page text.

    with serve(db_path) as base_url:
        text = render(f"{base_url}/#/experiments/1/runs", screenshot=tmp_path / "runs.png")
    assert_runs_shown(db_path, run_names=["evaluate_256x192"], ap_values=[0.4321])

Pages used (MLflow 3.x single-page app; `#/experiments/<id>` alone opens the GenAI "Overview", not runs):
    #/experiments/<experiment_id>/runs                  the runs table: run names (metric columns hidden)
    #/experiments/<experiment_id>/runs/<run_id>         one run: its metrics table, values at full precision
Everything is on 127.0.0.1; Chromium runs with a fresh profile and no proxy.
"""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal
from html import unescape
from pathlib import Path

SERVER_START_TIMEOUT_S = 90
RENDER_TIMEOUT_S = 90
VIRTUAL_TIME_MS = 30000   # headless virtual time: the SPA's fetches and timers settle before the DOM dump
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-proxy-server", "--window-size=4200,1800"]   # wide: the grid renders only the columns in view
# No proxies for our own 127.0.0.1 requests, whatever http_proxy says.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def chromium() -> str | None:
    """The Chromium binary (Debian's `chromium` package; scripts/test.sh installs it), or None."""
    return shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """End `proc` and its children (it leads its own process group): SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)   # children it left behind
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(grace)


@contextlib.contextmanager
def serve(db_path, timeout: float = SERVER_START_TIMEOUT_S):
    """`mlflow ui` on sqlite:///<db_path>, one worker, 127.0.0.1 on a free port: yields its base URL.

    Waits (at most `timeout` s) until /health answers; the server and the children it starts (uvicorn,
    MLflow's job runner) are always stopped on exit. Its output goes to mlflow_ui.log beside the database.
    """
    db_path = Path(db_path).resolve()
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = db_path.parent / "mlflow_ui.log"
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{db_path}",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=db_path.parent, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with _LOCAL.open(f"{base_url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited {proc.returncode}" if proc.poll() is not None else f"no /health in {timeout} s"
                raise RuntimeError(f"mlflow ui {why}: {' '.join(cmd)}\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base_url
    finally:
        _stop(proc)


def page_text(dom: str) -> str:
    """The visible text of a DOM dump, whitespace collapsed (scripts and styles dropped)."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", dom))).strip()


def render(url: str, screenshot=None, timeout: float = RENDER_TIMEOUT_S) -> str:
    """Load `url` in headless Chromium with a fresh profile; return the page text after the SPA settled.

    Uses `--dump-dom` with `--virtual-time-budget` (no DevTools client needed). With `screenshot` (a .png
    path) the same load is also captured, 1600x1800 (tall enough to include a run's metrics table), to
    see what a person would see.
    """
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium not found on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={VIRTUAL_TIME_MS}"]
        if screenshot is not None:
            cmd.append(f"--screenshot={Path(screenshot).resolve()}")
        cmd += ["--dump-dom", url]
        proc = subprocess.Popen(cmd, cwd=profile, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"chromium did not finish {url} in {timeout} s") from None
        finally:
            _stop(proc)
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"chromium exited {proc.returncode} on {url}\n{err.decode(errors='replace')[-3000:]}")
    return page_text(out.decode(errors="replace"))


def js_number(x) -> str:
    """A metric as the UI prints it (JavaScript's String(number)): 0.4321 -> "0.4321", 100.0 -> "100",
    0.0 -> "0", 3.2e-05 -> "0.000032", 1e-07 -> "1e-7". A str is taken as already formatted."""
    if isinstance(x, str):
        return x
    x = float(x)
    if x == 0 or (x.is_integer() and abs(x) < 1e21):
        return str(int(x))
    if 1e-6 <= abs(x) < 1e21:
        return format(Decimal(repr(x)), "f")    # repr is the shortest round trip, as in JS
    mantissa, exponent = repr(x).split("e")
    return f"{mantissa}e{int(exponent):+d}"


def metric_shown(text: str, key: str, value) -> bool:
    """Whether page text shows metric `key` with `value` (the run page's metrics table: "AP 0.4321")."""
    return re.search(rf"(?<!\S){re.escape(key)} {re.escape(js_number(value))}(?!\S)", text) is not None


def row_text(text: str, row: str, others=()) -> str:
    """The part of a runs-table page text that is run `row`'s row: from its name to the next of `others`
    (the names of runs that may follow it, e.g. its children when expanded) or the end."""
    match = re.search(rf"(?<!\S){re.escape(row)}(?!\S)", text)
    assert match, f"the runs table has no row {row!r}; the page reads:\n{text[:3000]}"
    rest = text[match.end():]
    ends = [m.start() for m in (re.search(rf"(?<!\S){re.escape(o)}(?!\S)", rest) for o in others) if m]
    return rest[:min(ends, default=len(rest))]


def values_shown(text: str, values) -> list:
    """The entries of `values` that `text` does not show as whole tokens (JavaScript's formatting)."""
    return [v for v in values if not re.search(rf"(?<!\S){re.escape(js_number(v))}(?!\S)", text)]


def _latest_runs(db_path, experiment: str, run_names: list) -> tuple[str, dict, dict]:
    """(experiment id, {run name: run id of the newest run so named}, {run name: the name of the row that
    shows it in the runs table: its parent run's, since child runs are collapsed under it}) from the store."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=f"sqlite:///{Path(db_path).resolve()}")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {db_path}"
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1000)
    ids, names, rows = {}, {r.info.run_id: r.info.run_name for r in runs}, {}
    for run in runs:
        if run.info.run_name not in ids:
            ids[run.info.run_name] = run.info.run_id
            rows[run.info.run_name] = names.get(run.data.tags.get("mlflow.parentRunId"), run.info.run_name)
    missing = [n for n in run_names if n not in ids]
    assert not missing, f"runs {missing} not in experiment {experiment!r} of {db_path} (has {sorted(ids)})"
    return exp.experiment_id, {n: ids[n] for n in run_names}, {n: rows[n] for n in run_names}


def assert_runs_shown(db_path, run_names: list, ap_values: list | None = None, experiment: str = "cpm-repro",
                      metric: str = "AP", shots_dir=None, base_url: str | None = None) -> None:
    """Serve `db_path` with `mlflow ui` and check in Chromium that the experiment's runs page lists every
    name in `run_names` (a child run: its parent's row) and that each run's page shows `metric` = the matching entry of `ap_values`
    (None skips one). A name used by several runs means the newest. With `shots_dir`, screenshots of
    every page checked are saved there (runs.png, <run name>.png). With `base_url`, a server already
    started by `serve(db_path)` is used instead of a new one (saves its start-up, ~10 s).

    The runs table is virtualized: keep to a few dozen runs so all rows fit the window.
    """
    if ap_values is not None:
        assert len(ap_values) == len(run_names), "ap_values must match run_names one to one"
    exp_id, run_ids, rows = _latest_runs(db_path, experiment, run_names)
    shot = (lambda name: Path(shots_dir) / f"{name}.png") if shots_dir else (lambda name: None)
    with (contextlib.nullcontext(base_url) if base_url else serve(db_path)) as base_url:
        url = f"{base_url}/#/experiments/{exp_id}/runs"
        text = render(url, screenshot=shot("runs"))
        missing = [n for n in run_names if not re.search(rf"(?<!\S){re.escape(rows[n])}(?!\S)", text)]
        assert not missing, f"{url} does not show runs {missing}; the page reads:\n{text[:3000]}"
        for name, value in zip(run_names, ap_values or [None] * len(run_names)):
            if value is None:
                continue
            url = f"{base_url}/#/experiments/{exp_id}/runs/{run_ids[name]}"
            text = render(url, screenshot=shot(name))
            assert name in text, f"{url} is not run {name}'s page; it reads:\n{text[:3000]}"
            assert metric_shown(text, metric, value), (
                f"{url} does not show {metric} {js_number(value)} for run {name}; it reads:\n{text[:3000]}")
