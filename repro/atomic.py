"""Atomic file writes: write a temporary file beside the target, fsync it, then rename it into place.

A reader (or a crash) never sees a half-written file, and an existing file survives a failed write.
Files are written with mode 0644 (mkstemp would leave 0600: unreadable to CI and other users); the file
and then its directory are fsynced, so a power loss after the rename keeps the new content. Temporary
files (`.<name>.*.tmp`) left by a killed writer are removed on the next write of that file.

Several files written as one set, all or none (e.g. compare's reports):

    with atomic.all_or_none():
        atomic.write_json("reports/comparison.json", ...)
        atomic.write_text("reports/comparison.md", ...)   # renamed into place only if the block succeeds
"""
import contextlib
import json
import os
import tempfile
from pathlib import Path

from repro.errors import ReproError

MODE = 0o644
_pending = []   # a stack: one [(tmp, path), ...] per open all_or_none() block


def check_writable(directory) -> Path:
    """Create `directory` if needed and check a file can be written there, before any expensive work.

    Raises:
        ReproError: naming the directory and the reason.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ReproError(f"{directory}: output directory is not writable ({e.strerror or e})") from None
    return directory


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_stale(path) -> list:
    """Remove temporary files a killed writer of `path` left beside it; returns the removed paths."""
    path = Path(path)
    stale = list(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def write_temporary(path, write, verify=None) -> Path:
    """Write a complete, fsynced, 0644 temporary file beside `path` and return its name (not yet renamed).

    Args:
        path: the eventual target; its parent directories are created.
        write: called with the open binary file.
        verify: called with the temporary path after writing; raise to refuse the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, MODE)
        if verify is not None:
            verify(Path(tmp))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _commit(staged: list) -> None:
    for tmp, path in staged:
        os.replace(tmp, path)
    for directory in {path.parent for _, path in staged}:
        _fsync_dir(directory)


def write_file(path, write, verify=None) -> Path:
    """Write `path` atomically through `write(f)` (see `write_temporary`); inside `all_or_none()`, the rename
    waits for the block to succeed."""
    path = Path(path)
    tmp = write_temporary(path, write, verify)
    if _pending:
        _pending[-1].append((tmp, path))
    else:
        _commit([(tmp, path)])
    return path


@contextlib.contextmanager
def all_or_none():
    """Stage every atomic write in the block; rename them all at the end, or delete them all on error."""
    _pending.append([])
    try:
        yield
    except BaseException:
        for tmp, _ in _pending.pop():
            tmp.unlink(missing_ok=True)
        raise
    staged = _pending.pop()
    if _pending:
        _pending[-1].extend(staged)   # nested: the outer block decides
    else:
        _commit(staged)


def write_bytes(path, data: bytes) -> Path:
    return write_file(path, lambda f: f.write(data))


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path, obj, indent: int = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")
