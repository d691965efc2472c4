"""Resumable, verified downloads and safe unzipping for the full-profile data and the published checkpoints.

    from repro.data.download import download, prepare_coco, fetch_published
    published = yaml.safe_load(open("repro/published.yaml"))
    prepare_coco("data/full", published["sources"], det_file="~/COCO_val2017_detections_AP_H_56_person.json")
    fetch_published(published["models"]["256x192"], "models/published")

A download goes to `<dest>.part`, is continued with an HTTP Range request after a dropped connection, is
retried with exponential backoff on connection errors, timeouts and 5xx, and is verified (md5, sha256 or
the sha256 prefix that mmpose file names carry) before `os.replace` moves it into place. A file that fails
its checksum is deleted; nothing unverified is ever left at `dest`.

Offline clusters: set REPRO_MIRROR (or pass `mirror=`) to a directory holding the files by their basename,
or to a base URL; it is tried before the internet URL. REPRO_DET_FILE names the person-detection file.
"""
import errno
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

from repro import config
from repro.data.detections import detection_problem
from repro.digest import file_digest
from repro.errors import ReproError

log = logging.getLogger(__name__)

MIRROR_ENV = config.MIRROR_ENV
DET_FILE_ENV = config.DET_FILE_ENV
CHUNK = 1 << 20
USER_AGENT = "repro-download/1 (+python-urllib)"
COCO_PARTS = ("train2017", "val2017", "annotations")
# What each COCO zip must leave under the root; a zip that does not is the wrong file.
COCO_EXPECTED = {
    "train2017": ("train2017",),
    "val2017": ("val2017",),
    "annotations": tuple(f"annotations/person_keypoints_{s}2017.json" for s in ("train", "val")),
}
_LOCAL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class DownloadError(ReproError, RuntimeError):
    """A download that could not be completed; the message names the URL or file."""


class HTTPStatusError(DownloadError):
    """A permanent HTTP error (403, 404, other 4xx): not retried."""

    def __init__(self, url: str, status: int, reason: str = ""):
        super().__init__(f"{url}: HTTP {status} {reason}".rstrip())
        self.url, self.status = url, status


class ChecksumError(DownloadError):
    """A file whose digest differs from the expected one (the bad file has been deleted)."""


class UnsafeArchiveError(ReproError, ValueError):
    """A zip member that would land outside the target directory (absolute, `..`, symlink)."""


class DetectionFileError(ReproError, ValueError):
    """A person-detection file that is not the mmpose/HRNet format (names the file and the entry)."""


class _Transient(DownloadError):
    """A retryable failure: 5xx, 429, short body, unexpected Content-Range."""


# ---------------------------------------------------------------------------------------------- checksums

def _checks(md5=None, sha256=None, sha256_prefix=None) -> list[tuple[str, str, bool]]:
    """(algorithm, expected hex, is_prefix) for each checksum given."""
    given = (("md5", md5, False), ("sha256", sha256, False), ("sha256", sha256_prefix, True))
    # str(): YAML reads an all-digit digest (a prefix like 12345678) as a number.
    return [(algo, str(value).lower(), is_prefix) for algo, value, is_prefix in given if value]


def verify(path, md5=None, sha256=None, sha256_prefix=None, label=None) -> None:
    """Raise ChecksumError (naming the file, the expected and the actual digest) unless all checks pass."""
    digests = {}
    for algo, expected, is_prefix in _checks(md5, sha256, sha256_prefix):
        if algo not in digests:
            digests[algo] = file_digest(path, algo)
        actual = digests[algo]
        if not (actual.startswith(expected) if is_prefix else actual == expected):
            what = f"{algo} prefix" if is_prefix else algo
            raise ChecksumError(f"{label or Path(path).name}: {what} mismatch: expected {expected}, "
                                f"got {actual} ({path}, {Path(path).stat().st_size} bytes)")


def _verify_or_delete(path: Path, label: str, **checks) -> None:
    try:
        verify(path, label=label, **checks)
    except ChecksumError:
        path.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------ fetching

def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP request that writes or continues `part`; raises _Transient on a short or odd response."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    # A fresh opener reads the proxy environment now (the global one froze it at first use).
    opener = urllib.request.build_opener()
    try:
        resp = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:
            return  # range starts at the end: the .part is complete; verification decides
        if e.code >= 500 or e.code in (408, 429):
            raise _Transient(f"{url}: HTTP {e.code} {e.reason}") from None
        raise HTTPStatusError(url, e.code, str(e.reason)) from None
    with resp:
        try:
            start = _resume_offset(resp, have, url)
        except _Transient:
            part.unlink(missing_ok=True)  # the next attempt starts from byte 0
            raise
        if start == 0 and have:
            log.info("%s: server sent the whole file; restarting the download", url)
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        if length is not None:
            check_free_space(part.parent, int(length), f"downloading {part.name.removesuffix('.part')}")
        with open(part, "r+b" if start else "wb") as f, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                desc=part.name.removesuffix(".part"), disable=not (progress and sys.stderr.isatty())) as bar:
            f.seek(start)
            f.truncate()
            # read1 returns what has arrived, so a timeout later loses nothing already received.
            read = getattr(resp, "read1", resp.read)
            while chunk := read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
            got = f.tell()
    # urllib returns b"" (no exception) when the peer closes early, so the length is checked here.
    if total is not None and got < total:
        raise _Transient(f"{url}: connection closed after {got} of {total} bytes")


def _resume_offset(resp, have: int, url: str) -> int:
    """Byte offset the response body starts at: `have` for a matching 206, 0 for a 200 (Range ignored)."""
    if resp.status == 200:
        return 0
    if resp.status == 206:
        cr = resp.headers.get("Content-Range", "")
        try:
            start = int(cr.split()[1].split("-")[0])
        except (IndexError, ValueError):
            start = -1
        if start in (0, have):
            return start
        raise _Transient(f"{url}: asked for bytes {have}-, got Content-Range {cr!r}; restarting")
    raise _Transient(f"{url}: unexpected HTTP {resp.status}")


def _fetch(url: str, part: Path, timeout: float, retries: int, backoff: float, sleep, progress: bool) -> None:
    """_fetch_once with retries; a retry resumes from the bytes already in `part`."""
    for attempt in range(retries + 1):
        try:
            return _fetch_once(url, part, timeout, progress)
        except (_Transient, HTTPException, OSError) as e:  # OSError covers URLError, resets and timeouts
            if isinstance(e, urllib.error.URLError) and not isinstance(e.reason, OSError):
                raise DownloadError(f"{url}: {e.reason}") from e  # e.g. "unknown url type"
            if isinstance(e, OSError) and (e.filename or e.errno in _LOCAL_ERRNOS):
                raise  # the local disk, not the network: retrying will not help
            msg = str(e) if url in str(e) else f"{url}: {e}"
            if attempt == retries:
                raise DownloadError(f"{msg} (failed after {retries + 1} attempts)") from e
            delay = min(backoff * 2 ** attempt, 60.0)
            log.warning("%s; retry %d/%d in %.1f s", msg, attempt + 1, retries, delay)
            sleep(delay)


def _mirror_source(url: str, dest: Path, mirror) -> tuple[str, str] | None:
    """('file', path) or ('url', url) for `url` in the mirror, or None when the mirror lacks it."""
    mirror = mirror if mirror is not None else config.mirror()
    if not mirror:
        return None
    name = Path(urllib.parse.urlsplit(url).path).name or dest.name
    if urllib.parse.urlsplit(str(mirror)).scheme in ("http", "https", "ftp"):
        return "url", f"{str(mirror).rstrip('/')}/{urllib.parse.quote(name)}"
    for candidate in dict.fromkeys((name, dest.name)):
        path = Path(mirror).expanduser() / candidate
        if path.is_file():
            return "file", str(path)
    log.info("%s not in mirror %s; using %s", name, mirror, url)
    return None


def download(url: str, dest, md5=None, sha256=None, sha256_prefix=None, mirror=None, retries: int = 5,
             progress: bool = True, timeout: float = 60.0, backoff: float = 1.0,
             sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download `url` to `dest` (resumable, retried, verified, atomic).

    Args:
        url: http(s) or file URL.
        dest: final path; the download is staged in `<dest>.part` and renamed into place when verified.
        md5, sha256, sha256_prefix: expected digests (any subset); a mismatch raises ChecksumError and
            deletes the staged file. An existing `dest` that passes them is kept without downloading.
        mirror: directory holding files by basename, or a base URL, tried before `url`
            (default: env REPRO_MIRROR).
        retries: retries after connection errors, timeouts and 5xx; 403/404 fail at once (HTTPStatusError).
        progress: show a tqdm bar on stderr (only when stderr is a TTY).
        timeout: socket timeout in seconds for connecting and for each read.
        backoff, sleep: retry n waits `backoff * 2**n` s (at most 60) via `sleep` (injectable for tests).

    Returns:
        `dest` as a Path.
    """
    dest = Path(dest).expanduser()
    checks = dict(md5=md5, sha256=sha256, sha256_prefix=sha256_prefix)
    if dest.is_file():
        try:
            verify(dest, **checks)
            log.info("%s: present and verified, not downloading", dest)
            return dest
        except ChecksumError as e:
            log.warning("%s; deleting it and downloading again", e)
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    split = urllib.parse.urlsplit(url)
    if split.scheme == "file":
        source = ("file", urllib.request.url2pathname(split.path))
    else:
        source = _mirror_source(url, dest, mirror)
    if source and source[0] == "file":
        log.info("%s: copying %s", dest.name, source[1])
        check_free_space(dest.parent, Path(source[1]).stat().st_size, f"copying {dest.name}")
        shutil.copyfile(source[1], part)
    else:
        fetch = dict(timeout=timeout, retries=retries, backoff=backoff, sleep=sleep, progress=progress)
        try:
            _fetch(source[1] if source else url, part, **fetch)
        except HTTPStatusError as e:
            if not source or e.status not in (403, 404):
                raise
            log.info("%s; falling back to %s", e, url)
            part.unlink(missing_ok=True)
            _fetch(url, part, **fetch)
    _verify_or_delete(part, dest.name, **checks)
    os.replace(part, dest)
    return dest


# ------------------------------------------------------------------------------------------------ archives

def _check_member(info: zipfile.ZipInfo, zip_path) -> None:
    name = info.filename.replace("\\", "/")
    parts = name.split("/")
    if name.startswith("/") or (len(parts[0]) == 2 and parts[0][1] == ":"):
        raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} has an absolute path")
    if ".." in parts:
        raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} points outside the target (..)")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{zip_path}: member {info.filename!r} is a symlink")


def _merge_into(src: Path, dst: Path) -> None:
    """Move `src` to `dst`: a rename when `dst` is free, else merge directories file by file."""
    if not dst.exists():
        os.replace(src, dst)
    elif src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge_into(child, dst / child.name)
    else:
        os.replace(src, dst)


def extracted_marker(zip_path, target_dir) -> Path:
    """The file whose presence says `zip_path` was fully extracted into `target_dir` (it lists every file)."""
    return Path(target_dir) / f".extracted-{Path(zip_path).name}"


def extraction_intact(zip_path, target_dir, expected=()) -> bool:
    """True when the marker of `zip_path` exists and every file it lists is in `target_dir` with its size.

    This is the check before a finished extraction is reused (a rerun of a data stage, a resumed download):
    a deleted or truncated file sends the zip through download and extraction again. It reads no zip, so it
    works after the zip is deleted; 118k files of train2017 take a second or two to stat.
    """
    target, marker = Path(target_dir), extracted_marker(zip_path, target_dir)
    try:
        files = json.loads(marker.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for name, size in files.items():
        try:
            if (target / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return all((target / p).exists() for p in expected)


def safe_extract(zip_path, target_dir, expected=()) -> Path:
    """Extract a zip into `target_dir`, refusing members that would land outside it.

    Every member is checked before anything is written (absolute paths, `..` components and symlinks raise
    UnsafeArchiveError naming the member), and so is the free space the members need. The archive is unpacked
    into a temporary directory beside `target_dir`, checked to hold every `expected` path, moved in, and a
    marker listing every file and its size is written last, so an interrupted run or a wrong zip leaves nothing
    in `target_dir` and a finished one whose files are all in place (`extraction_intact`) is skipped next time.

    Args:
        zip_path: the archive.
        target_dir: where its members go (created).
        expected: paths, relative to `target_dir`, the archive must produce (e.g. COCO_EXPECTED[part]).

    Returns:
        `target_dir` as a Path.

    Raises:
        DownloadError: an expected path is missing; nothing was moved into `target_dir`.
    """
    target = Path(target_dir)
    marker = extracted_marker(zip_path, target)
    if extraction_intact(zip_path, target, expected):
        log.info("%s already extracted into %s (every file verified in place)", Path(zip_path).name, target)
        return target
    marker.unlink(missing_ok=True)   # a marker without its content (a deleted file, an older run): extract again
    with zipfile.ZipFile(zip_path) as zf:
        members = zf.infolist()
        for info in members:
            _check_member(info, zip_path)
        target.mkdir(parents=True, exist_ok=True)
        check_free_space(target, sum(i.file_size for i in members), f"extracting {Path(zip_path).name}")
        for stale in target.parent.glob(f".{target.name}.extract-*"):   # left by a killed extraction
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
        try:
            for info in tqdm(members, desc=f"unzip {Path(zip_path).name}", unit="file", file=sys.stderr,
                             disable=not sys.stderr.isatty()):
                zf.extract(info, tmp)
            missing = [p for p in expected if not (tmp / p).exists()]
            if missing:
                raise DownloadError(f"{zip_path}: wrong archive, it does not contain {', '.join(missing)}; "
                                    f"nothing was extracted into {target}. Delete {zip_path} (or fix the "
                                    f"source or REPRO_MIRROR copy) and run `repro data` again")
            for child in tmp.iterdir():
                _merge_into(child, target / child.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    staged = marker.with_name(marker.name + ".tmp")
    files = {i.filename: i.file_size for i in members if not i.is_dir()}
    staged.write_text(json.dumps({"zip": Path(zip_path).name, "members": len(members), "files": files}) + "\n")
    os.replace(staged, marker)
    return target


# ---------------------------------------------------------------------------------------------------- COCO

def prepare_coco(root, sources: dict, mirror=None, det_file=None, parts=COCO_PARTS, detections: bool = True,
                 keep_zips: bool = False, **download_kw) -> Path:
    """Build (part of) the full-profile COCO tree <root>/{annotations,train2017,val2017,person_detection_results}.

    Zips are staged in <root>/downloads (outside every DVC out, so a partial download survives a rerun) and
    extracted into <root>. A zip whose extraction is intact (`extraction_intact`) is neither downloaded nor
    extracted again; before each download the free space for the zip and its extraction is checked.

    Args:
        root: the COCO root (the full profile's cfg.data.root: data/full).
        sources: published.yaml `sources`: {train2017|val2017|annotations: {url, md5, bytes, extracted_bytes},
            detections: {...}}.
        mirror: see download(); default env REPRO_MIRROR.
        det_file: path or URL of COCO_val2017_detections_AP_H_56_person.json (default env REPRO_DET_FILE).
        parts: which zips to fetch (evaluation needs val2017 and annotations, training train2017 too).
        detections: place the detection file too (evaluation on detected boxes needs it).
        keep_zips: keep the zips in <root>/downloads after extraction (default: delete them).
        **download_kw: passed to download() (retries, progress, timeout, backoff, sleep).

    Returns:
        `root` as a Path.
    """
    root = Path(root).expanduser()
    det_source = sources.get("detections", {})
    # The detection file cannot be downloaded for the user: find out before the 20 GB of zips.
    det_file = find_detections(root, det_source, det_file, mirror) if detections else None
    for part in parts:
        src = sources[part]
        zip_path = root / "downloads" / Path(urllib.parse.urlsplit(src["url"]).path).name
        expected = COCO_EXPECTED.get(part, ())
        if extraction_intact(zip_path, root, expected):
            log.info("%s: extracted and verified in %s, not downloading", zip_path.name, root)
        else:
            if not zip_path.is_file():   # a verified zip kept from before needs no room for itself
                check_free_space(root, _space_needed(src, zip_path, mirror),
                                 f"downloading and extracting {zip_path.name}")
            download(src["url"], zip_path, md5=src.get("md5"), mirror=mirror, **download_kw)
            safe_extract(zip_path, root, expected)
        if not keep_zips:
            zip_path.unlink(missing_ok=True)
    if (root / "downloads").is_dir() and not any((root / "downloads").iterdir()):
        (root / "downloads").rmdir()
    if detections:
        place_detections(root, det_source, det_file=det_file, mirror=mirror, **download_kw)
    return root


GB = 1e9


def check_free_space(path, need_bytes: int, what: str) -> None:
    """Raise DownloadError, in one line naming `path` and the GB needed and free, when the file system
    holding `path` has less than `need_bytes` free. Runs before the work, so a full disk is not met hours in."""
    path = Path(path)
    probe = next(p for p in (path, *path.parents) if p.exists())
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        raise DownloadError(f"{path}: {what} needs {need_bytes / GB:.1f} GB free, {free / GB:.1f} GB are free "
                            f"there; free some space or point data/ at a larger disk")


def _space_needed(src: dict, zip_path: Path, mirror) -> int:
    """Bytes one zip still needs: what is left to download plus its extraction. Exact for a local mirror copy
    (its size and its members' sizes); otherwise published.yaml's recorded `bytes` and `extracted_bytes`."""
    found = _mirror_source(src["url"], zip_path, mirror)
    if found and found[0] == "file":
        with zipfile.ZipFile(found[1]) as zf:
            size, extracted = Path(found[1]).stat().st_size, sum(i.file_size for i in zf.infolist())
    else:
        size, extracted = src.get("bytes", 0), src.get("extracted_bytes", 0)
    part = zip_path.with_name(zip_path.name + ".part")
    return max(0, size - (part.stat().st_size if part.is_file() else 0)) + extracted


def find_detections(root, det_source: dict, det_file=None, mirror=None):
    """Where the detection file will come from: `det_file`, REPRO_DET_FILE, the mirror, or the copy in place.

    A local file is format-checked here, so a wrong file is refused before anything is downloaded.

    Returns:
        A local path or URL to fetch it from, or None when the copy already at its destination is used.

    Raises:
        DownloadError: none of these has it (the message lists the pages to download it from).
        DetectionFileError: the local file is not in the mmpose/HRNet format.
    """
    name = det_source.get("filename", "COCO_val2017_detections_AP_H_56_person.json")
    dest = Path(root) / "person_detection_results" / name
    det_file = det_file or config.det_file()
    if not det_file and not dest.is_file() and (found := _mirror_source(name, dest, mirror)):
        det_file = found[1]   # a copy in a mirror directory, or its URL under a mirror base URL
    if not det_file and not dest.is_file():
        raise _no_detections(name, det_source, f"not found at {dest}")
    if det_file and urllib.parse.urlsplit(str(det_file)).scheme not in ("http", "https", "ftp", "file"):
        if not Path(det_file).expanduser().is_file():
            raise DownloadError(f"detection file {det_file} (det_file / {DET_FILE_ENV}) does not exist")
        check_detections(Path(det_file).expanduser(), det_source.get("num_boxes"))
    return det_file


def _no_detections(name: str, det_source: dict, where: str) -> DownloadError:
    pages = "\n  ".join(det_source.get("pages", [])) or "(see repro/published.yaml sources.detections)"
    return DownloadError(
        f"person-detection file {name} {where}. It is not downloadable from a fixed URL; "
        f"download it from one of these pages:\n  {pages}\nthen pass its path or URL with "
        f"{DET_FILE_ENV}=/path/to/{name} (or det_file=...), or put it in the {MIRROR_ENV} mirror.")


def place_detections(root, det_source: dict, det_file=None, mirror=None, **download_kw) -> Path:
    """Put the person-detection boxes at <root>/person_detection_results/<filename>, verified and checked.

    `det_file` (or env REPRO_DET_FILE) is a local path or a URL; with neither, an existing file is kept.
    The file is checked against det_source["sha256"] when recorded; when not, its sha256 is logged and
    written beside it (<filename>.sha256) so it can be pinned in published.yaml.
    """
    name = det_source.get("filename", "COCO_val2017_detections_AP_H_56_person.json")
    dest = Path(root) / "person_detection_results" / name
    sha256 = det_source.get("sha256")
    det_file = find_detections(root, det_source, det_file, mirror)
    if det_file:
        if urllib.parse.urlsplit(str(det_file)).scheme not in ("http", "https", "ftp", "file"):
            det_file = Path(det_file).expanduser().resolve().as_uri()
        if dest.is_file() and not sha256:
            dest.unlink()  # nothing to verify the old copy against: take the one given now
        try:
            download(str(det_file), dest, sha256=sha256, mirror=mirror, **download_kw)
        except HTTPStatusError as e:
            if e.status != 404:
                raise
            raise _no_detections(name, det_source, f"not found at {det_file}") from None
    else:
        _verify_or_delete(dest, name, sha256=sha256)
    try:
        check_detections(dest, det_source.get("num_boxes"))
    except DetectionFileError as e:
        dest.unlink()
        raise DetectionFileError(f"{e} (given as {det_file})" if det_file else str(e)) from None
    if not sha256:
        digest = file_digest(dest)
        dest.with_name(name + ".sha256").write_text(f"{digest}  {name}\n")
        log.warning("%s: sha256 %s (no checksum recorded; pin it as sources.detections.sha256)", name, digest)
    return dest


def check_detections(path, num_boxes=None) -> int:
    """Check the mmpose/HRNet detection format: a JSON list of dicts with image_id, category_id, bbox, score.

    Scores and boxes must be finite numbers and every box [x, y, w, h] must have w, h > 0.

    Returns:
        The number of boxes. A count that differs from `num_boxes` is logged, not raised.
    """
    try:
        with open(path) as f:
            boxes = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DetectionFileError(f"{path}: not a JSON file ({e}); a cloud-drive link may have returned a web "
                                 "page: download the file in a browser and pass its path") from None
    if not isinstance(boxes, list) or not boxes:
        raise DetectionFileError(f"{path}: expected a non-empty JSON list of detections")
    for i, box in enumerate(boxes):
        problem = detection_problem(box)
        if problem:
            raise DetectionFileError(f"{path}: detection [{i}]: {problem}")
    if num_boxes is not None and len(boxes) != num_boxes:
        log.warning("%s: %d boxes, published file has %d", path, len(boxes), num_boxes)
    return len(boxes)


# ------------------------------------------------------------------------------------------------- models

def fetch_published(entry: dict, dest_dir, mirror=None, **download_kw) -> Path:
    """Download a published checkpoint (verified by its sha256 prefix) and, best effort, its training log.

    Args:
        entry: published.yaml models[name] (checkpoint_url, checkpoint, sha256_prefix, log_url).
        dest_dir: directory to put both files in.
        mirror: see download().
        **download_kw: passed to download().

    Returns:
        Path of the checkpoint.
    """
    dest_dir = Path(dest_dir)
    ckpt = download(entry["checkpoint_url"], dest_dir / entry["checkpoint"],
                    sha256_prefix=entry["sha256_prefix"], mirror=mirror, **download_kw)
    if entry.get("log_url"):
        log_dest = dest_dir / Path(urllib.parse.urlsplit(entry["log_url"]).path).name
        try:
            download(entry["log_url"], log_dest, mirror=mirror, **download_kw)
        except DownloadError as e:
            log.warning("training log not downloaded (optional): %s", e)
    return ckpt
