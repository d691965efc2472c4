"""The MLflow store: whether tracking is on, where it records, and a check that it takes writes, made before
a stage's work (a store that cannot be reached fails within a few seconds, before any data is read).

Store: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db. Experiment: $MLFLOW_EXPERIMENT_NAME, else
"cpm-repro". REPRO_TRACKING=0 records nothing.
"""
import logging
import os
import socket
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from repro import config
from repro.errors import ReproError

DEFAULT_EXPERIMENT = "cpm-repro"
CHECK_TIMEOUT_S = 5.0


class TrackingError(ReproError, RuntimeError):
    """The MLflow store cannot be used; raised before training starts. One line like bad input, but exit
    code 1: the input is fine, the store is not."""

    exit_code = 1


def enabled() -> bool:
    """Whether runs are recorded: $REPRO_TRACKING unset or anything but "0"."""
    return config.tracking_enabled()


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else an SQLite file in the current directory (the repo root under DVC)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def sqlite_path(uri: str) -> Path | None:
    rest = uri[len("sqlite://"):]
    if rest in ("", "/", "/:memory:"):
        return None
    return Path(rest[1:] if rest.startswith("/") else rest)   # sqlite:///rel or sqlite:////abs


def preflight() -> None:
    """Before a stage's work: the store must take writes (when tracking is on).

    Raises:
        TrackingError: it cannot, with the URI and the reason.
    """
    if enabled():
        check_store(tracking_uri())


def check_store(uri: str, timeout: float = CHECK_TIMEOUT_S) -> None:
    """Fail fast, with the URI in the message, when the tracking store cannot be reached.

    http(s): the server must answer within `timeout` (any HTTP status counts as reachable). sqlite: the
    database's directory must exist and the file must open. file: the directory must be creatable.
    Other schemes are left to MLflow.
    """
    scheme = urllib.parse.urlparse(uri).scheme
    hint = "set MLFLOW_TRACKING_URI to a reachable store (or unset it for ./mlflow.db)"
    if scheme in ("http", "https"):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except urllib.error.HTTPError:
            pass   # the server answered
        except (urllib.error.URLError, socket.timeout, OSError) as e:
            raise TrackingError(f"MLflow tracking server {uri} is unreachable ({e}); {hint}") from None
    elif scheme == "sqlite":
        path = sqlite_path(uri)
        if path is None:
            return
        if not path.parent.is_dir():
            raise TrackingError(f"MLflow store {uri}: directory {path.parent} does not exist; {hint}")
        _probe_sqlite(uri, path, timeout, hint)
    elif scheme in ("", "file"):
        path = Path(urllib.parse.urlparse(uri).path if scheme else uri)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingError(f"MLflow store {uri}: cannot create {path} ({e}); {hint}") from None


def _probe_sqlite(uri: str, path: Path, timeout: float, hint: str) -> None:
    """Change `path` (its user_version header field, rolled back: nothing is written), so a read-only or locked
    database is found now, not after the work, in SQLAlchemy's tracebacks. A missing file needs a
    writable directory (MLflow creates it)."""
    if not path.exists():
        if not os.access(path.parent, os.W_OK):
            raise TrackingError(f"MLflow store {uri}: directory {path.parent} is not writable; {hint}")
        return
    try:
        con = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            version = con.execute("pragma user_version").fetchone()[0]
            con.execute("begin immediate")   # a lock alone passes on a read-only file: change a page
            con.execute(f"pragma user_version = {int(version) + 1}").fetchall()   # the error comes on fetch
            con.execute("rollback")
        finally:
            con.close()
    except sqlite3.Error as e:
        raise TrackingError(f"MLflow store {uri}: cannot write {path} ({e}); {hint}") from None


def quiet_mlflow() -> None:
    import mlflow  # noqa: F401  (mlflow sets its loggers up on import; quieten them afterwards)
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Fail in seconds, not minutes of exponential back-off, if the server goes away mid-run.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
