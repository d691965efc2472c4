"""COCO top-down person dataset: one item per person box (GT boxes or detections), spec §2.2-§2.4.

    train = TopDownCocoDataset(cfg.data.train_ann, cfg.data.train_images, cfg.codec, cfg.augment,
                               is_training=True, seed=cfg.seed)
    train.set_epoch(epoch)          # each epoch; sample i draws from default_rng([seed, epoch, i])
    val = TopDownCocoDataset(cfg.data.val_ann, cfg.data.val_images, cfg.codec, cfg.augment,
                             is_training=False, det_file=cfg.data.det_file)

Training items: {"img" (3,H,W), "heatmaps" (K,h,w), "weights" (K,), "index"}; with for_device=True (what the
training loader uses) {"img" uint8, "keypoints" (K,2) in crop pixels, "visible" (K,), "index"}, and the device
makes the float image and the targets. Evaluation items: {"img", "center" (2,), "scale" (2,) aspect-fixed,
"bbox" (4,) xywh, "bbox_score", "image_id", "index"}.
Bad files raise DatasetError naming the file and the entry.
"""
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from repro.codec import encode
from repro.config import AugmentConfig, CodecConfig, DataConfig
from repro.data.detections import detection_problem
from repro.data.transforms import Geometry, bbox_xyxy_to_center_scale, build_transforms, to_tensor, transform_points
from repro.data.transforms import affine_crop, crop, to_uint8_tensor, warp_matrix
from repro.errors import ReproError
from repro.keypoints import NUM_KEYPOINTS

log = logging.getLogger(__name__)


class DatasetError(ReproError, ValueError):
    """A missing or malformed annotation, detection or image file; the message names file and entry."""


def check_layout(data: DataConfig, training: bool, det_boxes: bool) -> None:
    """The files a run reads exist (checked before any model is built or trained).

    Args:
        data: the run's data config.
        training: the train split is needed too.
        det_boxes: the detection file is needed (evaluation on detected boxes).

    Raises:
        DatasetError: naming every missing path, and how to make them.
    """
    need = [data.val_ann, data.val_images]
    need += [data.train_ann, data.train_images] if training else []
    need += [data.det_file] if det_boxes else []
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        raise DatasetError(f"{data.root}: data missing: {', '.join(missing)} (make it with `repro data` or "
                           f"`dvc repro data_val data_train`)")


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: {what} is not valid JSON ({e})") from None


def load_coco_keypoints(ann_file) -> tuple[list[dict], list[dict]]:
    """Read a COCO keypoint file; returns (images, person annotations), checked for the fields used."""
    path = Path(ann_file)
    data = _read_json(path, "annotation file")
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: not COCO keypoint JSON (top level is {type(data).__name__}, not an object)")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise DatasetError(f"{path}: not COCO keypoint JSON (missing key(s) {', '.join(missing)})")
    person = [c for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")]
    if not person:
        raise DatasetError(f"{path}: not COCO keypoint JSON (no category has 'keypoints')")
    if len(person[0]["keypoints"]) != NUM_KEYPOINTS:
        raise DatasetError(f"{path}: category {person[0].get('id')!r} has {len(person[0]['keypoints'])} "
                           f"keypoints, expected {NUM_KEYPOINTS}")
    for i, img in enumerate(data["images"]):
        for key, kind in (("id", int), ("file_name", str), ("width", int), ("height", int)):
            if not isinstance(img, dict) or not isinstance(img.get(key), kind):
                raise DatasetError(f"{path}: images[{i}]: field '{key}' missing or not {kind.__name__}")
    cat_id = person[0].get("id", 1)
    anns = [a for a in data["annotations"] if isinstance(a, dict) and a.get("category_id", cat_id) == cat_id]
    for key, length in (("keypoints", 3 * NUM_KEYPOINTS), ("bbox", 4)):
        try:   # one vectorised conversion; on failure, find and name the entry
            values = np.array([a[key] for a in anns]).reshape(len(anns), length)
            if anns and values.dtype.kind not in "iuf":   # strings, booleans, nulls
                raise TypeError(values.dtype)
        except (KeyError, TypeError, ValueError):
            for ann in anns:
                v = ann.get(key)
                if not (isinstance(v, list) and len(v) == length
                        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
                    raise DatasetError(f"{path}: annotation id {ann.get('id')!r}: '{key}' missing or not "
                                       f"{length} numbers") from None
    for ann in anns:
        if "image_id" not in ann:
            raise DatasetError(f"{path}: annotation id {ann.get('id')!r}: 'image_id' missing")
    return data["images"], anns


def gt_instances(images: list[dict], anns: list[dict]) -> dict[str, np.ndarray]:
    """Top-down instances from GT boxes with the 1.x filtering (spec §2.3).

    Order: images in file order, then annotations in file order; annotations of unknown images are ignored
    (as the COCO API does).
    """
    K = NUM_KEYPOINTS
    pos = {img["id"]: i for i, img in enumerate(images)}
    anns = sorted((a for a in anns if a.get("image_id") in pos), key=lambda a: pos[a["image_id"]])  # stable
    if not anns:
        return _stack([])
    image_index = np.array([pos[a["image_id"]] for a in anns], np.int64)
    limit = np.array([(images[i]["width"] - 1, images[i]["height"] - 1) for i in image_index], np.float64)
    xywh = np.array([a["bbox"] for a in anns], np.float64)
    box = np.clip(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1), 0, np.tile(limit, 2))
    box = box.astype(np.float32)
    kpts = np.array([a["keypoints"] for a in anns], np.float32).reshape(-1, K, 3)
    counted = np.count_nonzero(kpts[..., :2].max(axis=2), axis=1)   # 1.x fallback when num_keypoints is absent
    num = np.array([a.get("num_keypoints", c) for a, c in zip(anns, counted)])
    crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns])
    keep = (~crowd & (num != 0) & (box[:, 2] - box[:, 0] > 0) & (box[:, 3] - box[:, 1] > 0)
            & (kpts[..., :2].reshape(len(anns), -1).max(axis=1) > 0))
    return {"image_index": image_index[keep], "bbox": box[keep], "keypoints": kpts[keep, :, :2],
            "visible": np.minimum(1, kpts[keep, :, 2]),
            "bbox_score": np.ones(int(keep.sum()), np.float32),
            "ann_id": np.array([a.get("id", -1) for a in anns], np.int64)[keep]}


def _stack(rows) -> dict[str, np.ndarray]:
    K = NUM_KEYPOINTS
    return {
        "image_index": np.array([r[0] for r in rows], np.int64),
        "bbox": np.array([r[1] for r in rows], np.float32).reshape(-1, 4),             # xyxy
        "keypoints": np.array([r[2] for r in rows], np.float32).reshape(-1, K, 2),
        "visible": np.array([r[3] for r in rows], np.float32).reshape(-1, K),
        "bbox_score": np.array([r[4] for r in rows], np.float32),
        "ann_id": np.array([r[5] for r in rows], np.int64),
    }


def det_instances(det_file, images: list[dict], score_thr: float = 0.0) -> dict[str, np.ndarray]:
    """Instances from a detection results file (spec §2.4): category 1, score >= score_thr, boxes unclipped."""
    path = Path(det_file)
    dets = _read_json(path, "detection file")
    if not isinstance(dets, list):
        raise DatasetError(f"{path}: detection file must be a JSON list of {{image_id, category_id, bbox, score}}")
    index = {img["id"]: i for i, img in enumerate(images)}
    rows = []
    for i, det in enumerate(dets):
        problem = detection_problem(det)
        if problem:
            raise DatasetError(f"{path}: entry {i}: {problem}")
        if det["image_id"] not in index:
            raise DatasetError(f"{path}: entry {i}: image_id {det['image_id']} is not in the annotation file")
        if det["category_id"] != 1 or det["score"] < score_thr:
            continue
        xywh = np.asarray(det["bbox"], np.float32)
        box = np.concatenate([xywh[:2], xywh[:2] + xywh[2:]])   # no -1, no clipping
        rows.append((index[det["image_id"]], box, np.zeros((NUM_KEYPOINTS, 2), np.float32),
                     np.ones(NUM_KEYPOINTS, np.float32), det["score"], -1))
    return _stack(rows)


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode an image with cv2 (BGR uint8, EXIF orientation applied); DatasetError if missing or corrupt."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise DatasetError(f"{path}: image not found") from None
    # cv2 decodes a truncated JPEG with only a warning; a scan after the last end-of-image marker means cut off.
    # (Searched forward from that marker: a backward search for the scan marker read the whole file.)
    if raw[:2] == b"\xff\xd8" and raw.find(b"\xff\xda", raw.rfind(b"\xff\xd9") + 1) != -1:
        raise DatasetError(f"{path}: corrupt image (truncated JPEG)")
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), flags)
    if img is None:
        raise DatasetError(f"{path}: corrupt image (cv2 cannot decode it)")
    return img


def reduction_factor(crop_scale_w: float, input_w: int, min_ratio: float) -> int:
    """Largest k in (4, 2) with crop_scale_w / input_w >= min_ratio·k, else 1 (full-resolution decode)."""
    ratio = crop_scale_w / input_w
    return next((k for k in (4, 2) if ratio >= min_ratio * k), 1)


_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}


def reduced_crop(path: Path, geom: Geometry, img_width: int, codec: CodecConfig, min_ratio: float):
    """Crop from a 1/k-decoded JPEG (k from `reduction_factor`), flip folded into the matrix.

    Pixel i of the reduced image covers full pixels k·i .. k·i+k-1, so it sits at x = k·i + (k-1)/2.
    Returns (crop, M) with M the full-resolution image -> crop matrix (for keypoints).
    """
    k = reduction_factor(float(geom.scale[0]), codec.input_size[0], min_ratio)
    if k == 1:
        return crop(read_image(path), geom, codec)   # bit-identical to the faithful path
    img = read_image(path, _REDUCED_FLAGS[k])
    m = warp_matrix(geom.center, geom.scale, geom.rotation, codec.input_size)
    m3 = np.vstack([m, [0, 0, 1]])
    flip = np.array([[-1, 0, img_width - 1], [0, 1, 0], [0, 0, 1]], np.float64) if geom.flip else np.eye(3)
    unreduce = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1]], np.float64)
    return affine_crop(img, (m3 @ flip @ unreduce)[:2], codec.input_size), m


class TopDownCocoDataset(torch.utils.data.Dataset):
    """One item per person instance of a COCO keypoint file (GT boxes) or of a detection file.

    Args:
        ann_file: COCO person_keypoints JSON.
        image_dir: directory holding the images named by `file_name`.
        codec, augment: crop geometry / target and the training augmentation (augment.bbox_padding is
            also the test-time padding).
        is_training: augment and return targets; otherwise plain crops with center/scale/score.
        det_file: detection results (evaluation only); None means GT boxes.
        det_score_thr: keep detections with score >= this (published: 0.0).
        seed: base seed; sample i of epoch e draws from np.random.default_rng([seed, e, i]).
        skip_corrupt: training only: replace an unreadable image by the next readable index (counted in
            `skipped` of this process, logged) instead of raising.
        reduced_decode: decode JPEGs at 1/2 or 1/4 resolution when the crop shrinks the image by at least
            `reduced_min_ratio`·k (faster, not bit-identical; off by default = faithful).
        for_device: leave the device's share to the device, bit-identically: "img" is the RGB uint8 crop
            (3, H, W) (normalised there by transforms.normalize_images), and training items carry the crop
            keypoints and visibility instead of heatmaps and weights (codec.encode_targets). Default: the
            normalised float32 crop, and the targets encoded here.
    """

    def __init__(self, ann_file, image_dir, codec: CodecConfig, augment: AugmentConfig, *, is_training: bool,
                 det_file=None, det_score_thr: float = 0.0, seed: int = 0, skip_corrupt: bool = False,
                 reduced_decode: bool = False, reduced_min_ratio: float = 2.0, for_device: bool = False):
        if is_training and det_file is not None:
            raise ValueError("det_file is for evaluation only; training uses GT boxes")
        self.image_dir = Path(image_dir)
        self.codec, self.augment, self.is_training = codec, augment, is_training
        self.seed = seed
        # In shared memory, so that persistent loader workers (copies of this object) see set_epoch.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.for_device = for_device
        self.decodes, self._last_image = 0, None
        self.skip_corrupt, self.skipped = skip_corrupt and is_training, 0
        self.reduced_decode, self.reduced_min_ratio = reduced_decode, reduced_min_ratio
        self.ann_file = Path(ann_file)   # the ground truth for evaluation (repro.evaluation.evaluate)
        self.images, anns = load_coco_keypoints(ann_file)
        self.instances = (det_instances(det_file, self.images, det_score_thr) if det_file is not None
                          else gt_instances(self.images, anns))
        self.transform = build_transforms(codec, augment, is_training)

    def __len__(self) -> int:
        return len(self.instances["image_index"])

    def set_epoch(self, epoch: int):
        """Select the augmentation draws of `epoch` (call each epoch, like sampler.set_epoch)."""
        self._epoch.fill_(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.images[self.instances["image_index"][index]]["file_name"]

    def __getitem__(self, index: int) -> dict:
        if not self.skip_corrupt:
            return self._item(index)
        for step in range(len(self)):
            j = (index + step) % len(self)
            try:
                return self._item(j)
            except DatasetError as e:
                self.skipped += 1
                log.warning("skipping instance %d (skipped so far in this process: %d): %s", j, self.skipped, e)
        raise DatasetError(f"{self.image_dir}: no readable image for any instance")

    def geometry(self, index: int, img_width: int | None = None) -> Geometry:
        """Crop geometry of instance `index` in the current epoch (training: drawn from its own rng).

        img_width (for the flip mirror) defaults to the annotated image width.
        """
        inst = {k: v[index] for k, v in self.instances.items()}
        center, scale = bbox_xyxy_to_center_scale(inst["bbox"], self.augment.bbox_padding)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.is_training else None
        width = self.images[inst["image_index"]]["width"] if img_width is None else img_width
        return self.transform.geometry(center, scale, inst["keypoints"], inst["visible"], width, rng)

    def _decoded(self, index: int) -> np.ndarray:
        """The decoded image of instance `index`. Test mode keeps the last one: the boxes of an image are
        consecutive (GT boxes by construction, detection files by image), so each image is decoded once."""
        key = int(self.instances["image_index"][index])
        if self._last_image is not None and self._last_image[0] == key:
            return self._last_image[1]
        img = read_image(self.image_path(index))
        self.decodes += 1   # of this process (each loader worker counts its own)
        if not self.is_training:   # crop() never writes into it
            self._last_image = (key, img)
        return img

    def _item(self, index: int) -> dict:
        image = self.images[self.instances["image_index"][index]]
        if self.reduced_decode:
            geom = self.geometry(index)
            patch, m = reduced_crop(self.image_path(index), geom, image["width"], self.codec, self.reduced_min_ratio)
        else:
            img = self._decoded(index)
            geom = self.geometry(index, img.shape[1])   # mirror about the decoded width, as mmpose does
            patch, m = crop(img, geom, self.codec)
        pixels = to_uint8_tensor(patch) if self.for_device else to_tensor(patch)
        if self.is_training:
            keypoints = transform_points(geom.keypoints, m)
            if self.for_device:
                return {"img": pixels, "keypoints": torch.from_numpy(keypoints),
                        "visible": torch.from_numpy(np.asarray(geom.visible, np.float32)), "index": index}
            heatmaps, weights = encode(keypoints, geom.visible, self.codec)
            return {"img": pixels, "heatmaps": torch.from_numpy(heatmaps),
                    "weights": torch.from_numpy(weights), "index": index}
        x1, y1, x2, y2 = self.instances["bbox"][index]
        return {"img": pixels, "center": torch.from_numpy(geom.center),
                "scale": torch.from_numpy(geom.scale), "bbox": torch.tensor([x1, y1, x2 - x1, y2 - y1]),
                "bbox_score": float(self.instances["bbox_score"][index]), "image_id": int(image["id"]),
                "index": index}
