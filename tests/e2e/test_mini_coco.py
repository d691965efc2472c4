"""The miniature COCO 2017 (tests/e2e/mini_coco.py) is what the real code expects: its zips download, verify and
extract with prepare_coco (from a mirror directory and over HTTP) into a tree the dataset accepts, its checkpoints
load strictly into the full-size CPM and carry the recorded sha256 prefix, its logs read as curves ending at the
published AP, and pin_digests changes exactly the digest lines of a published.yaml copy.

    .venv/bin/python -m pytest tests/e2e/test_mini_coco.py -q
"""
import ast
import difflib
import hashlib
import json
import shutil
import urllib.error
import urllib.request
import zipfile

import pytest
import torch
import yaml

from repro import config
from repro.checkpoint import load_checkpoint, read_checkpoint
from repro.config import CPMConfig, DataConfig
from repro.data import download as dl
from repro.data.coco import TopDownCocoDataset, check_layout
from repro.engine.mmpose_log import read_curve
from repro.model import build_cpm
from tests.conftest import COCO_SAMPLE, REPO
from tests.e2e import mini_coco as mc

SAMPLE_JPGS = ["000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg"]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """No proxy, mirror or detection file from the user's environment; only 127.0.0.1 is ever contacted."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                dl.MIRROR_ENV, dl.DET_FILE_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    if not (COCO_SAMPLE / "test_coco.json").is_file():
        pytest.skip(f"COCO sample not found at {COCO_SAMPLE}")
    mini = mc.build(tmp_path_factory.mktemp("mirror"))
    yield mini
    shutil.rmtree(mini.root)   # 250 MB of checkpoints: not left for pytest's kept basetemps


@pytest.fixture(scope="module")
def pinned(mini, tmp_path_factory):
    """(original text, pinned copy path) of repro/published.yaml."""
    path = mc.copy_published_yaml(tmp_path_factory.mktemp("pub") / "published.yaml")
    original = path.read_text()
    mc.pin_digests(path, mini)
    return original, path


def members(path):
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_the_zips_hold_the_real_layout(mini):
    assert members(mini.files["val2017.zip"]) == ["val2017/"] + [f"val2017/{n}" for n in SAMPLE_JPGS]
    train = members(mini.files["train2017.zip"])
    assert train[0] == "train2017/" and len(train) == 1 + mini.train_images == 7
    assert all(len(n.split("/")[1]) == len("000000000000.jpg") for n in train[1:])
    assert members(mini.files["annotations_trainval2017.zip"]) == [
        "annotations/", "annotations/person_keypoints_train2017.json", "annotations/person_keypoints_val2017.json"]
    with zipfile.ZipFile(mini.files["annotations_trainval2017.zip"]) as zf:
        val = zf.read("annotations/person_keypoints_val2017.json")
        train_ann = json.loads(zf.read("annotations/person_keypoints_train2017.json"))
    assert val == (COCO_SAMPLE / "test_coco.json").read_bytes()
    val_ids = {img["id"] for img in json.loads(val)["images"]}
    train_ids = {img["id"] for img in train_ann["images"]}
    assert len(train_ids) == 6 and not train_ids & val_ids
    assert train_ann["categories"] == json.loads(val)["categories"]
    assert {a["image_id"] for a in train_ann["annotations"]} == train_ids
    assert all(len(a["keypoints"]) == 51 and a["category_id"] == 1 for a in train_ann["annotations"])
    dets = json.loads(mini.det_file.read_text())
    assert len(dets) == mini.det_boxes == 12 and {d["image_id"] for d in dets} == val_ids
    assert mini.md5 == {part: hashlib.md5(mini.files[z].read_bytes()).hexdigest() for part, z in mc.ZIPS.items()}


def coco_layout_is_usable(root):
    """The tree is what the full profile's train and evaluate read: check_layout passes and both splits load."""
    data = DataConfig(source="coco", root=str(root))
    check_layout(data, training=True, det_boxes=True)
    cfg = config.load(REPO / "params.yaml", "256x192", profile="full")
    train = TopDownCocoDataset(data.train_ann, data.train_images, cfg.codec, cfg.augment, is_training=True)
    val = TopDownCocoDataset(data.val_ann, data.val_images, cfg.codec, cfg.augment, is_training=False,
                             det_file=data.det_file)
    assert len(train) > 0 and len(val) == 12
    assert train[len(train) - 1]["heatmaps"].shape == (17, 32, 24)   # the last is a synthetic person
    assert val[0]["img"].shape == (3, 256, 192)


def test_prepare_coco_from_a_mirror_directory(mini, pinned, tmp_path):
    sources = yaml.safe_load(pinned[1].read_text())["sources"]
    root = dl.prepare_coco(tmp_path / "coco", sources, mirror=mini.root, progress=False)
    coco_layout_is_usable(root)
    assert sorted(p.name for p in (root / "val2017").iterdir()) == SAMPLE_JPGS
    # The unpinned table does not verify the miniature: pinning is what makes the download code accept it.
    with pytest.raises(dl.ChecksumError, match="train2017.zip: md5 mismatch"):
        dl.prepare_coco(tmp_path / "unpinned", config.published()["sources"], mirror=mini.root, progress=False)


def test_prepare_coco_over_http_fetches_only_the_parts_asked_for(mini, pinned, tmp_path):
    sources = yaml.safe_load(pinned[1].read_text())["sources"]
    with mc.FileServer(mini.root) as server:
        det_url = f"{server.url}/{mc.DET_NAME}"   # an HTTP mirror is not searched for it: given as det_file
        dl.prepare_coco(tmp_path / "coco", sources, mirror=server.url, det_file=det_url,
                        parts=("val2017", "annotations"), progress=False)
        assert server.requests == ["/val2017.zip", "/annotations_trainval2017.zip", f"/{mc.DET_NAME}"]
        dl.prepare_coco(tmp_path / "coco", sources, mirror=server.url, progress=False)   # now train2017
        assert server.requests[3:] == ["/train2017.zip"]
    coco_layout_is_usable(tmp_path / "coco")


def test_the_server_serves_ranges_and_404(mini):
    body = mini.det_file.read_bytes()
    with mc.FileServer(mini.root) as server:
        req = urllib.request.Request(f"{server.url}/{mc.DET_NAME}", headers={"Range": "bytes=100-"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 206 and resp.read() == body[100:]
            assert resp.headers["Content-Range"] == f"bytes 100-{len(body) - 1}/{len(body)}"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{server.url}/missing.zip", timeout=5)
        assert e.value.code == 404
        assert server.requests == [f"/{mc.DET_NAME}", "/missing.zip"]


@pytest.mark.parametrize("name", mc.CONFIGS)
def test_checkpoints_are_the_published_format(mini, name):
    path = mini.files[mc.CHECKPOINTS[name]]
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith(mini.sha256_prefix[name])
    # read_checkpoint loads with weights_only=True; load_checkpoint is strict: every key and shape of the full CPM.
    ckpt = load_checkpoint(path, build_cpm(CPMConfig()))
    assert sorted(ckpt) == ["meta", "state_dict"]
    meta = ckpt["meta"]
    assert isinstance(meta["config"], str) and ast.parse(meta["config"])
    assert {k: meta[k] for k in ("epoch", "mmpose_version")} == {"epoch": 210, "mmpose_version": "0.6.0+4c2a2f1"}
    assert isinstance(meta["time"], str) and isinstance(meta["iter"], int)
    assert len(ckpt["state_dict"]) == 216 and all(k.startswith("backbone.") for k in ckpt["state_dict"])


def test_the_two_checkpoints_differ(mini):
    a, b = (read_checkpoint(mini.files[mc.CHECKPOINTS[n]])["state_dict"] for n in mc.CONFIGS)
    assert not torch.equal(a["backbone.stem.0.conv.weight"], b["backbone.stem.0.conv.weight"])
    assert mini.sha256_prefix["256x192"] != mini.sha256_prefix["384x288"]


def test_a_checkpoint_with_optimizer_state_loads(tmp_path):
    path = mc.write_checkpoint(tmp_path / mc.CHECKPOINTS["256x192"], "256x192", seed=0, with_optimizer=True)
    model = build_cpm(CPMConfig())
    ckpt = load_checkpoint(path, model)
    assert sorted(ckpt) == ["meta", "optimizer", "state_dict"]
    assert len(ckpt["optimizer"]["param_groups"][0]["params"]) == len(list(model.parameters()))


def test_fetch_published_verifies_the_pinned_prefix(mini, pinned, tmp_path):
    models = yaml.safe_load(pinned[1].read_text())["models"]
    with mc.FileServer(mini.root) as server:
        ckpt = dl.fetch_published(models["256x192"], tmp_path, mirror=server.url, progress=False)
        assert server.requests == [f"/{mc.CHECKPOINTS['256x192']}", f"/{mc.LOGS['256x192']}"]
    assert ckpt.name == mc.CHECKPOINTS["256x192"] and (tmp_path / mc.LOGS["256x192"]).is_file()
    ckpt = dl.fetch_published(models["384x288"], tmp_path, mirror=mini.root, progress=False)
    assert ckpt.read_bytes() == mini.files[mc.CHECKPOINTS["384x288"]].read_bytes()


@pytest.mark.parametrize("name", mc.CONFIGS)
def test_logs_read_as_curves_ending_at_the_published_ap(mini, name):
    path = mini.files[mc.LOGS[name]]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(lines[0]) == ["env_info", "seed"]
    assert {line["mode"] for line in lines[1:]} == {"train", "val"}
    curve = read_curve(path)
    assert [p["epoch"] for p in curve] == list(range(10, 211, 10))
    assert curve[-1]["AP"] == config.published()["models"][name]["results"]["AP"]
    assert curve[-1]["AP50"] == config.published()["models"][name]["results"]["AP50"]
    aps = [p["AP"] for p in curve]
    assert aps[0] < 0.35 and max(aps) == aps[-1] and aps[8] < aps[-1] - 0.03   # rises, best at the end
    assert all(len(p) == 11 for p in curve)   # every stat under its mmpose name


def test_pin_digests_changes_only_the_digest_lines(mini, pinned):
    original, path = pinned
    changed = [(a, b) for a, b in zip(original.splitlines(), path.read_text().splitlines()) if a != b]
    assert len(original.splitlines()) == len(path.read_text().splitlines())
    diff = list(difflib.unified_diff(original.splitlines(), path.read_text().splitlines(), n=0, lineterm=""))
    assert len(changed) == 6, "\n".join(diff)
    new = {b.split(":")[0].strip(): b.split(":", 1)[1].split("#")[0].strip().strip("'") for _, b in changed}
    assert sorted(new) == ["md5", "num_boxes", "sha256_prefix"]
    pinned_yaml = yaml.safe_load(path.read_text())
    assert {p: pinned_yaml["sources"][p]["md5"] for p in mc.ZIPS} == mini.md5
    assert {n: pinned_yaml["models"][n]["sha256_prefix"] for n in mc.CONFIGS} == mini.sha256_prefix
    assert pinned_yaml["sources"]["detections"]["num_boxes"] == 12
    assert pinned_yaml["sources"]["detections"]["sha256"] is None   # comment and value kept
    assert "# record one here once a verified copy is known" in path.read_text()


def test_pin_digests_fails_loudly(mini, tmp_path):
    with pytest.raises(ValueError, match="pin a copy"):
        mc.pin_digests(REPO / "repro" / "published.yaml", mini)
    text = (REPO / "repro" / "published.yaml").read_text()
    missing = tmp_path / "missing.yaml"
    missing.write_text(text.replace("    md5: 442b8da7639aecaf257c1dceb8ba8c80\n", ""))
    with pytest.raises(ValueError, match="sources.val2017.md5"):
        mc.pin_digests(missing, mini)
    twice = tmp_path / "twice.yaml"
    twice.write_text(text.replace("    sha256_prefix: aa4ba095\n", "    sha256_prefix: aa4ba095\n" * 2))
    with pytest.raises(ValueError, match="models.256x192.sha256_prefix"):
        mc.pin_digests(twice, mini)


def test_an_all_digit_prefix_is_quoted_so_it_stays_a_string():
    text = "models:\n  a:\n    sha256_prefix: aa4ba095   # note\n"
    out = mc.set_yaml_scalars(text, {("models", "a", "sha256_prefix"): "01234567"})
    assert out == "models:\n  a:\n    sha256_prefix: '01234567'   # note\n"
