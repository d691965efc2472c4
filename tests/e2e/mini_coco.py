"""The miniature COCO 2017: every full-profile input, by its real file name and layout, a few megabytes small.

    mini = build(tmp / "mirror")              # the zips, the detection file, both checkpoints and both logs
    pin_digests(project / "repro/published.yaml", mini)   # a copy's digests now verify the miniature
    with FileServer(mini.root) as server:     # REPRO_MIRROR=server.url; server.requests lists what was fetched
        prepare_coco(root, published["sources"], mirror=server.url, det_file=server.url + "/" + DET_NAME)

A full-profile rehearsal runs the real download / verify / extract / evaluate / compare code on these files, so
each is written the way the original is: `val2017.zip` holds `val2017/<the 4 real sample jpgs>`, `train2017.zip`
`train2017/<12-digit id>.jpg`, `annotations_trainval2017.zip` the two person_keypoints JSON files in COCO's
keypoint format, the detection file is a subset of the real AP_H_56 boxes of those images, the checkpoints are the
published mmpose 0.x layout ({"meta", "state_dict"} of the full-size CPM, `meta["config"]` the config's text) and
the logs are mmcv TextLoggerHook log.json files ending at the published AP. Only the digests differ from the real
files; `pin_digests` writes them into a copy of published.yaml. Everything is deterministic in `seed`: the zips,
the detection file and the logs are byte-identical from one call to the next (zip member times are fixed), so their
digests are stable; the checkpoints hold the same weights and meta, but torch's legacy serialization names each
storage by its memory address, so their sha256 differs per call: take it from the returned `Mini`.
"""
import dataclasses
import hashlib
import http.server
import json
import math
import re
import shutil
import tempfile
import threading
import urllib.parse
import zipfile
from pathlib import Path

import numpy as np
import torch
import yaml

from repro.config import CPMConfig, SyntheticConfig
from repro.data import synthetic
from repro.model import build_cpm
from tests.conftest import CONFIGS, COCO_SAMPLE, REPO

CHECKPOINTS = {"256x192": "cpm_coco_256x192-aa4ba095_20200817.pth",
               "384x288": "cpm_coco_384x288-80feb4bc_20200821.pth"}
LOGS = {"256x192": "cpm_coco_256x192_20200817.log.json", "384x288": "cpm_coco_384x288_20200821.log.json"}
ZIPS = {"train2017": "train2017.zip", "val2017": "val2017.zip", "annotations": "annotations_trainval2017.zip"}
DET_NAME = "COCO_val2017_detections_AP_H_56_person.json"

# The published run (spec §2.1, §2.3, §3): 149,813 train instances, batch 8 x 64 / 8 x 32, 210 epochs.
TRAIN_INSTANCES = 149_813
RUN = {"256x192": dict(batch=64, gpus=8, input_size=(192, 256), heatmap=(24, 32), sigma=2, memory=7_321,
                       time="Mon Aug 17 09:47:12 2020"),
       "384x288": dict(batch=32, gpus=8, input_size=(288, 384), heatmap=(36, 48), sigma=3, memory=8_015,
                       time="Fri Aug 21 02:18:40 2020")}
EPOCHS, VAL_INTERVAL, LOG_INTERVAL = 210, 10, 50
# Published table (repro/published.yaml results) plus, for the stats it leaves out, values in proportion.
FINAL_STATS = {
    "256x192": {"AP": 0.623, "AP .5": 0.858, "AP .75": 0.706, "AP (M)": 0.589, "AP (L)": 0.690,
                "AR": 0.685, "AR .5": 0.902, "AR .75": 0.752, "AR (M)": 0.642, "AR (L)": 0.747},
    "384x288": {"AP": 0.650, "AP .5": 0.863, "AP .75": 0.725, "AP (M)": 0.607, "AP (L)": 0.726,
                "AR": 0.707, "AR .5": 0.905, "AR .75": 0.771, "AR (M)": 0.660, "AR (L)": 0.777},
}
ZIP_TIME = (2017, 9, 1, 0, 0, 0)    # fixed member times: the same content gives the same md5
TRAIN_ID_BASE = 600_000             # real sample images re-used for training get ids 600001...: no val id clashes
TRAIN_ANN_ID_BASE = 900_000_000     # and fresh annotation ids


@dataclasses.dataclass
class Mini:
    """What `build` wrote: the mirror directory, its files and the digests to pin in published.yaml."""

    root: Path                       # the mirror directory (flat, real basenames)
    files: dict                      # basename -> Path, every file written
    md5: dict                        # "train2017" / "val2017" / "annotations" -> md5 of the zip
    sha256_prefix: dict              # "256x192" / "384x288" -> first 8 hex of the checkpoint's sha256
    det_file: Path                   # the detection file in root
    val_images: int
    train_images: int
    real_train_images: int           # of train_images, copies of real sample images (the rest synthetic)
    train_instances: int             # annotations in person_keypoints_train2017.json
    val_instances: int
    det_boxes: int


# -------------------------------------------------------------------------------------------------- build

def build(dest: Path, sample: Path = COCO_SAMPLE, *, det_boxes: int = 12, train_images: int = 6, seed: int = 0,
          with_optimizer: bool = False) -> Mini:
    """Write the miniature COCO 2017 mirror into `dest` and return what is in it (see the module docstring).

    Args:
        dest: the mirror directory (created); files go in flat, by the real basenames.
        sample: the real COCO sample (4 val2017 jpgs, test_coco.json, test_coco_det_AP_H_56.json).
        det_boxes: boxes kept from the sample's detection file (the top-scoring of each image first).
        train_images: train2017 images: about half copies of real sample images, the rest synthetic people.
        seed: synthetic train people and checkpoint weights are drawn from it.
        with_optimizer: the checkpoints keep an `optimizer` entry, as mmcv writes a training checkpoint
            before `publish_model` strips it.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    sample = Path(sample)
    gt = json.loads((sample / "test_coco.json").read_text())
    val_names = [img["file_name"] for img in gt["images"]]

    files = {ZIPS["val2017"]: _zip(dest / ZIPS["val2017"],
                                   {f"val2017/{n}": (sample / n).read_bytes() for n in val_names})}
    train_json, train_jpgs, n_real = _train_split(gt, sample, train_images, seed)
    files[ZIPS["train2017"]] = _zip(dest / ZIPS["train2017"],
                                    {f"train2017/{n}": b for n, b in train_jpgs.items()})
    files[ZIPS["annotations"]] = _zip(dest / ZIPS["annotations"], {
        "annotations/person_keypoints_train2017.json": json.dumps(train_json).encode(),
        "annotations/person_keypoints_val2017.json": (sample / "test_coco.json").read_bytes()})
    dets = select_detections(json.loads((sample / "test_coco_det_AP_H_56.json").read_text()), det_boxes)
    (dest / DET_NAME).write_text(json.dumps(dets))
    files[DET_NAME] = dest / DET_NAME
    prefixes = {}
    for i, name in enumerate(CONFIGS):
        path = write_checkpoint(dest / CHECKPOINTS[name], name, seed=seed * 2 + i, with_optimizer=with_optimizer)
        files[path.name] = path
        prefixes[name] = _digest(path, "sha256")[:8]
        files[LOGS[name]] = write_log(dest / LOGS[name], name, seed=seed)
    return Mini(root=dest, files=files, md5={part: _digest(files[z], "md5") for part, z in ZIPS.items()},
                sha256_prefix=prefixes, det_file=dest / DET_NAME, val_images=len(val_names),
                train_images=len(train_jpgs), real_train_images=n_real,
                train_instances=len(train_json["annotations"]), val_instances=len(gt["annotations"]),
                det_boxes=len(dets))


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _zip(path: Path, members: dict) -> Path:
    """A zip with a directory entry first, as the COCO zips list theirs (`val2017/`), then the files in order.
    JPEGs are stored, JSON deflated; member times are fixed so the md5 only depends on the content."""
    with zipfile.ZipFile(path, "w") as zf:
        for folder in dict.fromkeys(name.split("/")[0] + "/" for name in members):
            info = zipfile.ZipInfo(folder, ZIP_TIME)
            info.external_attr = (0o40755 << 16) | 0x10
            zf.writestr(info, b"")
        for name, data in members.items():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".jpg") else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def _train_split(gt: dict, sample: Path, count: int, seed: int) -> tuple[dict, dict, int]:
    """person_keypoints_train2017.json content and {file_name: jpeg bytes} for `count` train images.

    The first count // 2 (at most all 4) are the real sample images with their real annotations, under new
    12-digit ids TRAIN_ID_BASE + k (train and val ids must not collide); the rest are synthetic people from
    repro.data.synthetic (its default scenes: 320-480 x 240-360 px), drawn from `seed`.
    """
    n_real = min(count // 2, len(gt["images"]))
    images, anns, jpgs = [], [], {}
    for k, img in enumerate(gt["images"][:n_real], start=1):
        new = dict(img, id=TRAIN_ID_BASE + k, file_name=f"{TRAIN_ID_BASE + k:012d}.jpg")
        new.pop("coco_url", None)   # it named the val2017 copy
        images.append(new)
        jpgs[new["file_name"]] = (sample / img["file_name"]).read_bytes()
        anns += [dict(a, image_id=new["id"]) for a in gt["annotations"] if a["image_id"] == img["id"]]
    if count > n_real:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = SyntheticConfig(train_images=count - n_real, val_images=0, seed=seed)
            synthetic.generate(cfg, Path(tmp) / "syn")
            syn = json.loads((Path(tmp) / "syn/annotations/person_keypoints_train2017.json").read_text())
            for img in syn["images"]:   # ids 1000001...: 12-digit, apart from the val and re-used ids
                images.append(img)
                jpgs[img["file_name"]] = (Path(tmp) / "syn/train2017" / img["file_name"]).read_bytes()
            anns += syn["annotations"]
    anns = [dict(a, id=TRAIN_ANN_ID_BASE + i) for i, a in enumerate(anns, start=1)]
    info = dict(gt.get("info", {}), description="repro miniature COCO 2017 train (real sample + synthetic)")
    return (dict(info=info, licenses=gt.get("licenses", []), images=images, annotations=anns,
                 categories=gt["categories"]), jpgs, n_real)


def select_detections(dets: list, count: int) -> list:
    """`count` boxes of the real detection file, every image's best first: the rank-0 box of each image, then
    the rank-1 boxes, ... (score order within a rank), returned in the file's own order."""
    images = list(dict.fromkeys(d["image_id"] for d in dets))
    if not len(images) <= count <= len(dets):
        raise ValueError(f"det_boxes={count}: need at least one per image ({len(images)}) and at most {len(dets)}")
    rank = {}
    for image in images:
        mine = sorted((i for i, d in enumerate(dets) if d["image_id"] == image), key=lambda i: -dets[i]["score"])
        rank.update({i: r for r, i in enumerate(mine)})
    keep = sorted(range(len(dets)), key=lambda i: (rank[i], -dets[i]["score"]))[:count]
    return [dets[i] for i in sorted(keep)]


# ---------------------------------------------------------------------------------------------- checkpoints

def iters_per_epoch(name: str) -> int:
    """Iterations of one epoch of the published run (drop_last=False)."""
    return math.ceil(TRAIN_INSTANCES / (RUN[name]["batch"] * RUN[name]["gpus"]))


def config_text(name: str) -> str:
    """The run's config as mmcv's `Config.pretty_text` writes it (python source), mmpose 0.6's cpm_coco_<name>.py
    with its values resolved. Plausible, not the published file's bytes (which cannot be downloaded here)."""
    r = RUN[name]
    joints = list(range(17))
    det = f"data/coco/person_detection_results/{DET_NAME}"
    return f"""log_level = 'INFO'
load_from = None
resume_from = None
dist_params = dict(backend='nccl')
workflow = [('train', 1)]
checkpoint_config = dict(interval=10)
evaluation = dict(interval=10, metric='mAP', key_indicator='AP')
optimizer = dict(type='Adam', lr=0.0005)
optimizer_config = dict(grad_clip=None)
lr_config = dict(
    policy='step',
    warmup='linear',
    warmup_iters=500,
    warmup_ratio=0.001,
    step=[170, 200])
total_epochs = 210
log_config = dict(interval=50, hooks=[dict(type='TextLoggerHook')])
channel_cfg = dict(
    num_output_channels=17,
    dataset_joints=17,
    dataset_channel=[{joints}],
    inference_channel={joints})
model = dict(
    type='TopDown',
    pretrained=None,
    backbone=dict(
        type='CPM', in_channels=3, out_channels=17, feat_channels=128, num_stages=6),
    keypoint_head=dict(
        type='TopDownMultiStageHead',
        in_channels=17,
        out_channels=17,
        num_stages=6,
        num_deconv_layers=0,
        extra=dict(final_conv_kernel=0)),
    train_cfg=dict(),
    test_cfg=dict(
        flip_test=True,
        post_process=True,
        shift_heatmap=True,
        unbiased_decoding=False,
        modulate_kernel=11),
    loss_pose=dict(type='JointsMSELoss', use_target_weight=True))
data_cfg = dict(
    image_size={list(r['input_size'])},
    heatmap_size={list(r['heatmap'])},
    num_output_channels=17,
    num_joints=17,
    dataset_channel=[{joints}],
    inference_channel={joints},
    soft_nms=False,
    nms_thr=1.0,
    oks_thr=0.9,
    vis_thr=0.2,
    bbox_thr=1.0,
    use_gt_bbox=False,
    image_thr=0.0,
    bbox_file='{det}')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TopDownRandomFlip', flip_prob=0.5),
    dict(type='TopDownHalfBodyTransform', num_joints_half_body=8, prob_half_body=0.3),
    dict(type='TopDownGetRandomScaleRotation', rot_factor=40, scale_factor=0.5),
    dict(type='TopDownAffine'),
    dict(type='ToTensor'),
    dict(type='NormalizeTensor', mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    dict(type='TopDownGenerateTarget', sigma={r['sigma']}),
    dict(
        type='Collect',
        keys=['img', 'target', 'target_weight'],
        meta_keys=[
            'image_file', 'joints_3d', 'joints_3d_visible', 'center', 'scale',
            'rotation', 'bbox_score', 'flip_pairs'
        ])
]
data_root = 'data/coco'
data = dict(
    samples_per_gpu={r['batch']},
    workers_per_gpu=2,
    train=dict(
        type='TopDownCocoDataset',
        ann_file='data/coco/annotations/person_keypoints_train2017.json',
        img_prefix='data/coco/train2017/',
        data_cfg=data_cfg,
        pipeline=train_pipeline),
    val=dict(
        type='TopDownCocoDataset',
        ann_file='data/coco/annotations/person_keypoints_val2017.json',
        img_prefix='data/coco/val2017/',
        data_cfg=data_cfg),
    test=dict(
        type='TopDownCocoDataset',
        ann_file='data/coco/annotations/person_keypoints_val2017.json',
        img_prefix='data/coco/val2017/',
        data_cfg=data_cfg))
work_dir = './work_dirs/cpm_coco_{name}'
gpu_ids = range(0, 1)
"""


def write_checkpoint(path: Path, name: str, seed: int, with_optimizer: bool = False) -> Path:
    """A published-format checkpoint of the full-size CPM (build_cpm(CPMConfig()), weights from `seed`).

    Layout (spec §1.5): {"meta", "state_dict"} with every key `backbone.<key>`; meta as mmpose's tools/train.py
    (mmpose_version, config = pretty text, env_info, seed) and mmcv's runner.save_checkpoint (epoch, iter,
    mmcv_version, time) fill it. BN running statistics are set to plausible trained values, not the init's
    0 / 1. Saved in torch's legacy (non-zip) serialization, which is what a 2020 file is: torch < 1.6 wrote
    nothing else, and mmpose's publish_model passes _use_new_zipfile_serialization=False on later torch
    (recalled, not verified against the 2020 tool). That format keys storages by memory address, so the bytes
    (and the sha256) differ per call while the loaded content does not. `with_optimizer` adds an Adam `optimizer` entry of plain
    data and tensors (moments for the first parameter only, to keep the file small).
    """
    torch.manual_seed(seed)
    model = build_cpm(CPMConfig())
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 2.0, generator=gen)
            m.num_batches_tracked.fill_(EPOCHS * iters_per_epoch(name))
    state = {f"backbone.{k}": v for k, v in model.state_dict().items()}
    meta = {"env_info": _env_info(), "seed": None, "mmpose_version": "0.6.0+4c2a2f1", "config": config_text(name),
            "epoch": EPOCHS, "iter": EPOCHS * iters_per_epoch(name), "mmcv_version": "1.1.1",
            "time": RUN[name]["time"]}
    ckpt = {"meta": meta, "state_dict": state}
    if with_optimizer:
        params = list(model.parameters())
        ckpt["optimizer"] = {
            "state": {0: {"step": EPOCHS * iters_per_epoch(name), "exp_avg": torch.zeros_like(params[0]),
                          "exp_avg_sq": torch.zeros_like(params[0])}},
            "param_groups": [{"lr": 5e-06, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0,
                              "amsgrad": False, "initial_lr": 0.0005, "params": list(range(len(params)))}]}
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    return path


def _env_info() -> str:
    return ("sys.platform: linux\nPython: 3.7.7 (default, May  7 2020, 21:25:33) [GCC 7.3.0]\nCUDA available: True\n"
            "GPU 0,1,2,3,4,5,6,7: Tesla V100-SXM2-32GB\nPyTorch: 1.5.0\nTorchVision: 0.6.0\nOpenCV: 4.3.0\n"
            "MMCV: 1.1.1\nMMPose: 0.6.0+4c2a2f1")


# ---------------------------------------------------------------------------------------------------- logs

def val_ap(name: str, epoch: int, seed: int = 0) -> float:
    """The miniature's validation AP curve: rises from ~0.30 at epoch 10 to a plateau ~0.035 under the final AP,
    steps up after the learning-rate drops (they act from epochs 171 and 201, so the validations at 180 and 210
    see them) and ends at the published AP exactly."""
    final = FINAL_STATS[name]["AP"]
    if epoch > 170:
        return final - {180: 0.006, 190: 0.005, 200: 0.004}.get(epoch, 0.0)
    noise = np.random.default_rng([seed, epoch, CONFIGS.index(name)]).normal(0, 0.002)
    return (final - 0.036) * (1 - 0.5 * math.exp(-(epoch - 10) / 40)) + noise


def lr_at(global_iter: int, epoch: int) -> float:
    """The lr of 0-based `global_iter` in 1-based `epoch` (spec §3; mmcv's step policy with linear warm-up):
    warm-up over 500 iterations from ratio 0.001, x0.1 after epochs 170 and 200."""
    lr = 5e-4 * 0.1 ** sum(epoch > m for m in (170, 200))
    if global_iter < 500:
        lr *= 1 - (1 - global_iter / 500) * (1 - 0.001)
    return lr


def log_text(name: str, seed: int = 0) -> str:
    """An mmpose 0.x / mmcv TextLoggerHook log.json (spec §6): line 1 runner.meta, a train line every 50 iterations
    of every epoch, a val line every 10 epochs with the COCO stats under mmpose's names; floats to 5 decimals."""
    rng = np.random.default_rng([seed, 7, CONFIGS.index(name)])
    per_epoch, final = iters_per_epoch(name), FINAL_STATS[name]
    lines = [{"env_info": _env_info(), "seed": None}]
    for epoch in range(1, EPOCHS + 1):
        progress = 1 - math.exp(-epoch / 50) + (0.05 if epoch > 170 else 0)
        for it in range(LOG_INTERVAL, per_epoch + 1, LOG_INTERVAL):
            global_iter = (epoch - 1) * per_epoch + it
            loss = 0.0021 - 0.0013 * progress + rng.normal(0, 2e-5)
            lines.append({"mode": "train", "epoch": epoch, "iter": it, "lr": lr_at(global_iter - 1, epoch),
                          "memory": RUN[name]["memory"], "data_time": abs(rng.normal(0.03, 0.01)),
                          "mse_loss": loss, "acc_pose": 0.25 + 0.5 * progress + rng.normal(0, 0.005),
                          "loss": loss, "time": abs(rng.normal(0.62, 0.03))})
        if epoch % VAL_INTERVAL == 0:
            ratio = val_ap(name, epoch, seed) / final["AP"]
            stats = {k: (v if epoch == EPOCHS else min(v * ratio, 0.999)) for k, v in final.items()}
            lines.append({"mode": "val", "epoch": epoch, "iter": per_epoch, "lr": lr_at(epoch * per_epoch - 1, epoch),
                          **stats})
    rounded = ({k: round(v, 5) if isinstance(v, float) else v for k, v in line.items()} for line in lines)
    return "".join(json.dumps(line) + "\n" for line in rounded)


def write_log(path: Path, name: str, seed: int = 0) -> Path:
    path.write_text(log_text(name, seed))
    return path


# ------------------------------------------------------------------------------------------------- pinning

def pin_digests(published_yaml: Path, mini: Mini) -> None:
    """Rewrite, in place, the digests of a COPY of repro/published.yaml so that the download code verifies the
    miniature: sources.{train2017,val2017,annotations}.md5, models.<cfg>.sha256_prefix and
    sources.detections.num_boxes. Every other byte of the file (comments, order, the other values) is kept.

    Raises:
        ValueError: `published_yaml` is the checkout's own file, or a key is not found exactly once.
    """
    published_yaml = Path(published_yaml)
    if published_yaml.resolve() == (REPO / "repro" / "published.yaml").resolve():
        raise ValueError(f"{published_yaml}: pin a copy, not the checkout's published.yaml")
    values = {("sources", part, "md5"): mini.md5[part] for part in ZIPS}
    values |= {("models", name, "sha256_prefix"): mini.sha256_prefix[name] for name in CONFIGS}
    values[("sources", "detections", "num_boxes")] = mini.det_boxes
    text = set_yaml_scalars(published_yaml.read_text(), values)
    published_yaml.write_text(text)


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[\w.-]+):(?P<sep> *)(?P<value>[^#\r\n]*?)(?P<rest> *(?:#.*)?)$")


def set_yaml_scalars(text: str, values: dict) -> str:
    """Replace the scalar at each key path (a tuple of mapping keys) in block-style YAML text, line by line.

    Paths come from indentation; block scalars (`key: >-`, `|`) are skipped. A value that YAML would not read
    back as itself (an all-digit hex string reads as a number) is single-quoted.

    Raises:
        ValueError: a path found zero times or more than once, or a value that does not read back.
    """
    lines = text.splitlines(keepends=True)
    stack, hits, block_indent = [], {path: 0 for path in values}, None
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        indent = len(body) - len(body.lstrip(" "))
        if block_indent is not None:
            if not body.strip() or indent > block_indent:
                continue
            block_indent = None
        m = _KEY_LINE.match(body)
        if not m:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m["key"]))
        if m["value"].strip()[:1] in (">", "|"):
            block_indent = indent
        path = tuple(key for _, key in stack)
        if path in values:
            hits[path] += 1
            new = _yaml_scalar(values[path])
            lines[i] = f"{m['indent']}{m['key']}:{m['sep'] or ' '}{new}{m['rest']}{line[len(body):]}"
    wrong = {".".join(p): n for p, n in hits.items() if n != 1}
    if wrong:
        raise ValueError(f"published.yaml: keys not found exactly once (path: times found): {wrong}")
    out = "".join(lines)
    data = yaml.safe_load(out)
    for path, value in values.items():
        got = data
        for key in path:
            got = got[key]
        if got != value:
            raise ValueError(f"published.yaml: {'.'.join(path)} reads back as {got!r}, not {value!r}")
    return out


def _yaml_scalar(value) -> str:
    text = str(value)
    return text if yaml.safe_load(f"k: {text}")["k"] == value else f"'{text}'"


# -------------------------------------------------------------------------------------------------- server

class _Handler(http.server.BaseHTTPRequestHandler):
    """GET of the files in server.directory (flat), with `Range: bytes=a-[b]`; 404 for anything else."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        self.server.requests.append(path)
        file = self.server.directory / Path(path).name
        if "/" in path.lstrip("/") or not file.is_file():
            return self.send_error(404)
        size = file.stat().st_size
        start, end = 0, size - 1
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if rng:
            start, end = int(rng[1]), min(int(rng[2] or size - 1), size - 1)
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                return self.end_headers()
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        with open(file, "rb") as f:
            f.seek(start)
            left = end - start + 1
            try:
                while left > 0 and (chunk := f.read(min(left, 1 << 20))):
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass


class FileServer:
    """An HTTP server on 127.0.0.1 (a free port) serving `directory`'s files by basename, in a daemon thread.

        with FileServer(mini.root) as server:
            download(server.url + "/val2017.zip", ...)
            assert "/train2017.zip" not in server.requests

    `url` is the base URL (for REPRO_MIRROR / mirror=); `requests` lists every requested path, in order.
    """

    def __init__(self, directory):
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.directory, self._httpd.requests = Path(directory), []
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.requests = self._httpd.requests
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def copy_published_yaml(dest: Path) -> Path:
    """A copy of the checkout's repro/published.yaml at `dest` (for pin_digests)."""
    return Path(shutil.copyfile(REPO / "repro" / "published.yaml", dest))
