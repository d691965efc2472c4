"""repro.data.download against a local HTTP server on 127.0.0.1 (started per test; no other address is contacted).

    .venv/bin/python -m pytest tests/unit/data/test_download.py -q
"""
import hashlib
import http.server
import io
import json
import logging
import re
import socket
import stat
import threading
import time
import zipfile
from pathlib import Path

import pytest

from repro.data import download as dl

DATA = bytes(range(256)) * 40  # 10,240 bytes, every byte value present


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files`; `server.modes[path]` picks a misbehaviour:

    drop:N   first request sends the full Content-Length but only N bytes, then closes
    corrupt  one byte flipped in the body
    404, 403 always that status
    500:K    the first K requests get 500
    norange  ignores Range (always 200 with the whole file)
    stall:N  first request sends N bytes, then stalls past the client's timeout
    badrange a 206 whose Content-Range starts at the wrong byte
    """

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        count = srv.counts[self.path] = srv.counts.get(self.path, 0) + 1
        mode = srv.modes.get(self.path, "")
        body = srv.files.get(self.path)
        if body is None or mode in ("404", "403"):
            return self.send_error(int(mode or 404))
        if mode.startswith("500:") and count <= int(mode[4:]):
            return self.send_error(500)
        if mode == "corrupt":
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange":
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                return self.end_headers()
            self.send_response(206)
            shown = start + 1 if mode == "badrange" else start
            self.send_header("Content-Range", f"bytes {shown}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if mode.startswith("drop:") and count == 1:
            self.wfile.write(body[start:start + int(mode[5:])])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode.startswith("stall:") and count == 1:
            self.wfile.write(body[start:start + int(mode[6:])])
            self.wfile.flush()
            time.sleep(0.5)
            return
        self.wfile.write(body[start:])


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any connection to a non-loopback address; keep proxies and user env vars out of the tests."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "localhost"), f"test tried to reach {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                dl.MIRROR_ENV, dl.DET_FILE_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.files, srv.modes, srv.counts, srv.requests = {}, {}, {}, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def sleeps():
    return []


def fetch(server, path, dest, sleeps, **kw):
    kw.setdefault("timeout", 5)
    return dl.download(server.url + path, dest, progress=False, sleep=sleeps.append, **kw)


# ---------------------------------------------------------------------------------------------- download

def test_download_verifies_md5_and_renames_into_place(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    out = fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, md5=md5(DATA))
    assert out == tmp_path / "a.bin" and out.read_bytes() == DATA
    assert not (tmp_path / "a.bin.part").exists() and sleeps == []


def test_dropped_connection_resumes_with_range_request(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    server.modes["/a.bin"] = "drop:3000"
    out = fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, sha256=sha256(DATA))
    assert out.read_bytes() == DATA
    assert server.requests == [("/a.bin", None), ("/a.bin", "bytes=3000-")]
    assert sleeps == [1.0]


def test_read_timeout_mid_body_resumes(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    server.modes["/a.bin"] = "stall:4096"
    out = fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, md5=md5(DATA), timeout=0.1)
    assert out.read_bytes() == DATA
    assert server.requests == [("/a.bin", None), ("/a.bin", "bytes=4096-")]


def test_wrong_content_range_restarts_from_scratch(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    server.modes["/a.bin"] = "badrange"
    (tmp_path / "a.bin.part").write_bytes(DATA[:5000])
    out = fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, md5=md5(DATA))
    assert out.read_bytes() == DATA
    assert server.requests == [("/a.bin", "bytes=5000-"), ("/a.bin", None)]


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    (tmp_path / "a.bin.part").write_bytes(DATA[:5000])
    server.modes["/a.bin"] = "norange"
    out = fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, md5=md5(DATA))
    assert out.read_bytes() == DATA
    assert server.requests == [("/a.bin", "bytes=5000-")]


def test_complete_part_file_gets_416_and_is_verified(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    (tmp_path / "a.bin.part").write_bytes(DATA)
    out = fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, md5=md5(DATA))
    assert out.read_bytes() == DATA and server.requests == [("/a.bin", f"bytes={len(DATA)}-")]


def test_wrong_byte_is_a_checksum_error_leaving_nothing_behind(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    server.modes["/a.bin"] = "corrupt"
    with pytest.raises(dl.ChecksumError) as err:
        fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, md5=md5(DATA))
    msg = str(err.value)
    assert "a.bin" in msg and md5(DATA) in msg
    assert md5(DATA[:100] + bytes([DATA[100] ^ 0xFF]) + DATA[101:]) in msg
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status", [404, 403])
def test_404_403_are_immediate_and_name_url_and_status(server, tmp_path, sleeps, status):
    server.modes["/missing.bin"] = str(status)
    with pytest.raises(dl.HTTPStatusError, match=rf"/missing\.bin: HTTP {status}") as err:
        fetch(server, "/missing.bin", tmp_path / "m.bin", sleeps)
    assert err.value.status == status and err.value.url == server.url + "/missing.bin"
    assert len(server.requests) == 1 and sleeps == []
    assert list(tmp_path.iterdir()) == []


def test_500_is_retried_with_exponential_backoff(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    server.modes["/a.bin"] = "500:3"
    out = fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, md5=md5(DATA), backoff=0.5)
    assert out.read_bytes() == DATA
    assert sleeps == [0.5, 1.0, 2.0] and server.counts["/a.bin"] == 4


def test_retries_are_bounded(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    server.modes["/a.bin"] = "500:99"
    with pytest.raises(dl.DownloadError, match="failed after 3 attempts"):
        fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, retries=2)
    assert sleeps == [1.0, 2.0] and not (tmp_path / "a.bin").exists()


def test_sha256_prefix_is_checked(server, tmp_path, sleeps):
    server.files["/cpm-x.pth"] = DATA
    fetch(server, "/cpm-x.pth", tmp_path / "ok.pth", sleeps, sha256_prefix=sha256(DATA)[:8])
    with pytest.raises(dl.ChecksumError, match="sha256 prefix mismatch: expected 00000000"):
        fetch(server, "/cpm-x.pth", tmp_path / "bad.pth", sleeps, sha256_prefix="00000000")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.pth"]


def test_existing_verified_file_is_not_downloaded_again(server, tmp_path, sleeps):
    (tmp_path / "a.bin").write_bytes(DATA)
    fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, md5=md5(DATA))
    assert server.requests == []


def test_existing_bad_file_is_replaced(server, tmp_path, sleeps):
    server.files["/a.bin"] = DATA
    (tmp_path / "a.bin").write_bytes(b"stale")
    assert fetch(server, "/a.bin", tmp_path / "a.bin", sleeps, md5=md5(DATA)).read_bytes() == DATA


def test_mirror_directory_is_used_instead_of_network(server, tmp_path, sleeps, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.bin").write_bytes(DATA)
    out = fetch(server, "/some/dir/a.bin", tmp_path / "out" / "a.bin", sleeps, md5=md5(DATA), mirror=mirror)
    assert out.read_bytes() == DATA and server.requests == []
    monkeypatch.setenv(dl.MIRROR_ENV, str(mirror))  # the env var works the same way
    fetch(server, "/x/a.bin", tmp_path / "env" / "a.bin", sleeps, md5=md5(DATA))
    assert server.requests == []


def test_mirror_base_url_is_tried_first_then_origin(server, tmp_path, sleeps):
    server.files["/mirror/a.bin"] = DATA
    fetch(server, "/origin/a.bin", tmp_path / "a.bin", sleeps, mirror=server.url + "/mirror/")
    assert [p for p, _ in server.requests] == ["/mirror/a.bin"]
    server.files["/origin/b.bin"] = DATA
    fetch(server, "/origin/b.bin", tmp_path / "b.bin", sleeps, mirror=server.url + "/mirror")
    assert [p for p, _ in server.requests][1:] == ["/mirror/b.bin", "/origin/b.bin"]


def test_corrupt_mirror_file_is_an_error(server, tmp_path, sleeps):
    (tmp_path / "a.bin").write_bytes(b"not it")
    with pytest.raises(dl.ChecksumError):
        fetch(server, "/a.bin", tmp_path / "out" / "a.bin", sleeps, md5=md5(DATA), mirror=tmp_path)
    assert list((tmp_path / "out").iterdir()) == []


# ------------------------------------------------------------------------------------------- safe_extract

def make_zip(path: Path, members: dict) -> Path:
    """members: name -> bytes, or name -> ("symlink", target)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            if isinstance(content, tuple):
                info = zipfile.ZipInfo(name)
                info.create_system = 3
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, content[1])
            else:
                zf.writestr(name, content)
    return path


@pytest.mark.parametrize("member", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt",
                                    "..\\evil.txt"])
def test_safe_extract_refuses_escaping_members(tmp_path, member):
    z = make_zip(tmp_path / "bad.zip", {"fine.txt": b"1", member: b"x"})
    with pytest.raises(dl.UnsafeArchiveError, match=re.escape(repr(member))):
        dl.safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out" / "fine.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_safe_extract_refuses_symlinks(tmp_path):
    z = make_zip(tmp_path / "link.zip", {"data/link": ("symlink", "/etc/passwd")})
    with pytest.raises(dl.UnsafeArchiveError, match="'data/link' is a symlink"):
        dl.safe_extract(z, tmp_path / "out")


def test_safe_extract_extracts_marks_and_skips_rerun(tmp_path):
    z = make_zip(tmp_path / "v.zip", {"val2017/1.jpg": b"a", "val2017/2.jpg": b"b"})
    (tmp_path / "out" / "val2017").mkdir(parents=True)
    (tmp_path / "out" / "val2017" / "0.jpg").write_bytes(b"kept")  # merged, not clobbered
    out = dl.safe_extract(z, tmp_path / "out")
    assert sorted(p.name for p in (out / "val2017").iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert dl.extracted_marker(z, out).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # temp dir removed
    marker = dl.extracted_marker(z, out).read_text()
    z.unlink()
    dl.safe_extract(z, out)  # marked complete and every file verified in place: the zip is not even read
    assert dl.extracted_marker(z, out).read_text() == marker


def test_an_extraction_missing_a_file_is_not_reused(tmp_path):
    """A rerun of a data stage reuses an extraction only when every file its marker lists is there, whole."""
    z = make_zip(tmp_path / "v.zip", {"val2017/1.jpg": b"a", "val2017/2.jpg": b"bb"})
    out = dl.safe_extract(z, tmp_path / "out")
    assert dl.extraction_intact(z, out)
    (out / "val2017" / "2.jpg").write_bytes(b"b")     # truncated
    assert not dl.extraction_intact(z, out)
    dl.safe_extract(z, out)
    assert (out / "val2017" / "2.jpg").read_bytes() == b"bb" and dl.extraction_intact(z, out)
    (out / "val2017" / "1.jpg").unlink()               # deleted
    assert not dl.extraction_intact(z, out)


def test_no_download_starts_without_the_free_space_it_needs(coco_server, tmp_path, monkeypatch):
    """Known sizes plus extraction, checked before the download: one line naming the path, needed and free GB."""
    free = type("Usage", (), {"total": 10**12, "used": 0, "free": 2 * 10**9})
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: free)
    sources = dict(coco_server.sources, val2017=dict(coco_server.sources["val2017"], bytes=815585330,
                                                     extracted_bytes=2 * 10**9))
    root = tmp_path / "coco"
    with pytest.raises(dl.DownloadError) as e:
        dl.prepare_coco(root, sources, parts=("val2017",), detections=False, progress=False)
    message = str(e.value)
    assert "\n" not in message and str(root) in message and "val2017.zip" in message
    assert "needs 2.8 GB free, 2.0 GB are free" in message
    assert coco_server.requests == [] and not (root / "downloads").exists()   # nothing fetched, nothing written


# ------------------------------------------------------------------------------------------- prepare_coco

DETS = [{"image_id": 1, "category_id": 1, "bbox": [1.0, 2.0, 30.0, 40.0], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [0.0, 0.0, 10.0, 20.0], "score": 0.5}]


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.fixture
def coco_server(server):
    """Tiny fake COCO zips on the local server and a published.yaml-shaped `sources` dict for them."""
    ann = json.dumps({"images": [], "annotations": [], "categories": []})
    zips = {"train2017": zip_bytes({"train2017/000000000001.jpg": b"jpg1"}),
            "val2017": zip_bytes({"val2017/000000000002.jpg": b"jpg2"}),
            "annotations": zip_bytes({"annotations/person_keypoints_train2017.json": ann,
                                      "annotations/person_keypoints_val2017.json": ann})}
    names = {"train2017": "/zips/train2017.zip", "val2017": "/zips/val2017.zip",
             "annotations": "/annotations/annotations_trainval2017.zip"}
    sources = {}
    for part, body in zips.items():
        server.files[names[part]] = body
        sources[part] = {"url": server.url + names[part], "md5": md5(body)}
    sources["detections"] = {"filename": "COCO_val2017_detections_AP_H_56_person.json",
                             "pages": ["https://example.invalid/page"], "sha256": None, "num_boxes": 2}
    server.sources = sources
    return server


def test_prepare_coco_end_to_end(coco_server, tmp_path, sleeps, caplog):
    det = tmp_path / "dets.json"
    det.write_text(json.dumps(DETS))
    root = tmp_path / "coco"
    with caplog.at_level(logging.WARNING, logger="repro.data.download"):
        dl.prepare_coco(root, coco_server.sources, det_file=det, progress=False, sleep=sleeps.append)
    assert (root / "train2017" / "000000000001.jpg").read_bytes() == b"jpg1"
    assert (root / "val2017" / "000000000002.jpg").read_bytes() == b"jpg2"
    assert (root / "annotations" / "person_keypoints_val2017.json").is_file()
    placed = root / "person_detection_results" / "COCO_val2017_detections_AP_H_56_person.json"
    assert json.loads(placed.read_text()) == DETS
    digest = sha256(det.read_bytes())
    assert digest in caplog.text and digest in placed.with_name(placed.name + ".sha256").read_text()
    assert not (root / "downloads").exists()  # zips deleted after extraction
    n = len(coco_server.requests)
    dl.prepare_coco(root, coco_server.sources, progress=False)  # rerun: nothing fetched again
    assert len(coco_server.requests) == n == 3


def test_prepare_coco_bad_md5_names_the_zip(coco_server, tmp_path):
    sources = dict(coco_server.sources, val2017=dict(coco_server.sources["val2017"], md5="0" * 32))
    det = tmp_path / "dets.json"
    det.write_text(json.dumps(DETS))
    with pytest.raises(dl.ChecksumError, match="val2017.zip: md5 mismatch"):
        dl.prepare_coco(tmp_path / "coco", sources, det_file=det, parts=("val2017",), progress=False)
    assert not (tmp_path / "coco" / "val2017").exists()


def test_missing_det_file_is_a_clear_error(coco_server, tmp_path):
    with pytest.raises(dl.DownloadError) as err:
        dl.prepare_coco(tmp_path / "coco", coco_server.sources, parts=("annotations",), progress=False)
    msg = str(err.value)
    assert "COCO_val2017_detections_AP_H_56_person.json" in msg and "https://example.invalid/page" in msg
    assert dl.DET_FILE_ENV in msg


def test_det_file_from_env_url_with_pinned_sha256(coco_server, tmp_path, monkeypatch):
    body = json.dumps(DETS).encode()
    coco_server.files["/dets.json"] = body
    monkeypatch.setenv(dl.DET_FILE_ENV, coco_server.url + "/dets.json")
    det_src = dict(coco_server.sources["detections"], sha256=sha256(body))
    out = dl.place_detections(tmp_path, det_src, progress=False)
    assert out.read_bytes() == body and not out.with_name(out.name + ".sha256").exists()
    with pytest.raises(dl.ChecksumError, match="sha256 mismatch"):
        dl.place_detections(tmp_path / "b", dict(det_src, sha256="f" * 64), progress=False)


@pytest.mark.parametrize("content", ["<html>Google Drive</html>", json.dumps({"image_id": 1}),
                                     json.dumps([{"image_id": 1, "bbox": [0, 0, 1, 1]}])])
def test_det_file_format_is_checked(tmp_path, content):
    det = tmp_path / "d.json"
    det.write_text(content)
    with pytest.raises(ValueError, match="d.json|COCO_val2017"):
        dl.place_detections(tmp_path / "coco", {"filename": "x.json"}, det_file=det, progress=False)
    assert not (tmp_path / "coco" / "person_detection_results" / "x.json").exists()


# ---------------------------------------------------------------------------------------- fetch_published

def test_fetch_published_checkpoint_and_optional_log(server, tmp_path, sleeps, caplog):
    server.files["/cpm/cpm_coco_256x192-abc_2020.pth"] = DATA
    entry = {"checkpoint": "cpm_coco_256x192-abc_2020.pth", "sha256_prefix": sha256(DATA)[:8],
             "checkpoint_url": server.url + "/cpm/cpm_coco_256x192-abc_2020.pth",
             "log_url": server.url + "/cpm/cpm_coco_256x192_2020.log.json"}
    with caplog.at_level(logging.WARNING, logger="repro.data.download"):
        ckpt = dl.fetch_published(entry, tmp_path, progress=False, sleep=sleeps.append)
    assert ckpt.read_bytes() == DATA and "training log not downloaded" in caplog.text
    server.files["/cpm/cpm_coco_256x192_2020.log.json"] = b'{"mode": "train"}\n'
    dl.fetch_published(entry, tmp_path, progress=False)
    assert (tmp_path / "cpm_coco_256x192_2020.log.json").is_file()
    with pytest.raises(dl.ChecksumError, match="cpm_coco_256x192-abc_2020.pth: sha256 prefix mismatch"):
        dl.fetch_published(dict(entry, sha256_prefix="00000000"), tmp_path / "b", progress=False)


def test_published_yaml_has_what_download_reads():
    import yaml

    published = yaml.safe_load((Path(dl.__file__).parents[1] / "published.yaml").read_text())
    for part in dl.COCO_PARTS:
        src = published["sources"][part]
        assert src["url"].startswith("http") and len(src["md5"]) == 32
    det = published["sources"]["detections"]
    assert det["filename"] == "COCO_val2017_detections_AP_H_56_person.json" and det["pages"]
    for entry in published["models"].values():
        assert entry["checkpoint_url"].endswith("/" + entry["checkpoint"])
        assert entry["sha256_prefix"] in entry["checkpoint"]


# --------------------------------------------------------------------------------------- bad input, faults

def test_the_det_file_is_checked_before_the_coco_download(coco_server, tmp_path):
    with pytest.raises(dl.DownloadError, match="COCO_val2017_detections_AP_H_56_person.json"):
        dl.prepare_coco(tmp_path / "coco", coco_server.sources, progress=False)
    assert coco_server.requests == []          # nothing of the 20 GB was fetched first
    det = tmp_path / "dets.json"
    det.write_text(json.dumps([{**DETS[0], "bbox": [1.0, 2.0, 0.0, 40.0]}]))
    with pytest.raises(dl.DetectionFileError, match=r"dets.json: detection \[0\].*width or height <= 0"):
        dl.prepare_coco(tmp_path / "coco", coco_server.sources, det_file=det, progress=False)
    assert coco_server.requests == []


@pytest.mark.parametrize("box,message", [
    ({"bbox": [1.0, 2.0, 0.0, 40.0]}, "width or height <= 0"), ({"bbox": [1.0, 2.0, 30.0, -4.0]}, "<= 0"),
    ({"score": float("nan")}, "non-finite"), ({"score": "high"}, "field 'score' has a wrong type"),
])
def test_check_detections_refuses_boxes_without_area_and_bad_scores(tmp_path, box, message):
    det = tmp_path / "d.json"
    det.write_text(json.dumps([DETS[0], {**DETS[1], **box}]))
    with pytest.raises(dl.DetectionFileError, match=rf"d.json: detection \[1\].*{message}"):
        dl.check_detections(det)


def test_a_wrong_zip_leaves_nothing_and_a_fixed_source_then_works(coco_server, tmp_path):
    det = tmp_path / "dets.json"
    det.write_text(json.dumps(DETS))
    right = coco_server.files["/annotations/annotations_trainval2017.zip"]
    wrong = zip_bytes({"annotations/instances_val2017.json": "{}"})
    coco_server.files["/annotations/annotations_trainval2017.zip"] = wrong
    sources = dict(coco_server.sources, annotations={"url": coco_server.sources["annotations"]["url"]})  # no md5
    root = tmp_path / "coco"
    with pytest.raises(dl.DownloadError, match="does not contain annotations/person_keypoints_train2017.json.*again"):
        dl.prepare_coco(root, sources, det_file=det, parts=("annotations",), progress=False)
    assert not (root / "annotations").exists() and not list(root.glob(".extracted-*"))   # nothing marked done
    (root / "downloads" / "annotations_trainval2017.zip").unlink()   # what the message says to do
    coco_server.files["/annotations/annotations_trainval2017.zip"] = right
    dl.prepare_coco(root, sources, det_file=det, parts=("annotations",), progress=False)
    assert (root / "annotations" / "person_keypoints_val2017.json").is_file()


def test_a_marker_without_its_content_is_extracted_again(tmp_path):
    z = tmp_path / "val2017.zip"
    z.write_bytes(zip_bytes({"val2017/1.jpg": b"jpg"}))
    (tmp_path / ".out.extract-k1ll3d" / "val2017").mkdir(parents=True)   # a killed extraction's staging dir
    out = dl.safe_extract(z, tmp_path / "out", expected=("val2017",))
    (out / "val2017" / "1.jpg").unlink()
    (out / "val2017").rmdir()
    dl.safe_extract(z, out, expected=("val2017",))
    assert (out / "val2017" / "1.jpg").read_bytes() == b"jpg"
    assert not list(tmp_path.glob(".out.extract-*"))
