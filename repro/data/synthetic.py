"""Synthetic COCO-format people: the embedded default data set (no COCO, no network).

    from repro.data.synthetic import generate
    generate(cfg.synthetic, "data/synthetic")      # or: python -m stages.data (profile smoke)

Writes the exact COCO 2017 layout under `root`: train2017/ and val2017/ JPEGs (12-digit ids),
annotations/person_keypoints_{train,val}2017.json and the val detection file
person_detection_results/COCO_val2017_detections_AP_H_56_person.json.

Each person is an articulated mannequin drawn with thick cv2 limbs and ball joints: a pose sampled from
plausible joint-angle ranges (standing, walking, arms raised or out, hands on hips, squats), varied
build, scale, yaw and rotation, and a head with nose, eyes and ears. Every figure faces the camera, so
its left side is on the image right when upright; that geometric cue survives a horizontal flip (which
swaps the labels), whereas a colour-per-side cue would be contradicted by flip augmentation and flip
test. Keypoints outside the image get v=0 (x=y=0, not counted), and so do 10% of the others: drawn but left
unlabelled, as COCO's annotators leave some (their target weight is 0, which the training loss must honour).
Keypoints covered by a later figure, an occluder patch, or the head (the far ear of a turned head) get v=1; the
rest v=2.

Everything is drawn from np.random.default_rng([seed, split, index]), so the same seed gives
byte-identical files and an image does not depend on how many others are generated.
"""
import json
import shutil
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from repro.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS, SKELETON

_K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
_SHIFT = 4                      # cv2 fixed-point bits: coordinates drawn to 1/16 px
_SPLITS = {"train2017": 0, "val2017": 1}
_DET_STREAM = 2                 # rng stream of the detection file, apart from the images
_ID_BASE = {"train2017": 1_000_000, "val2017": 0}   # image ids unique across the two splits
DET_FILE = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"


@dataclass(frozen=True)
class SceneSpec:
    """How scenes and the simulated person detector look. The defaults make the smoke data set."""

    width: tuple[int, int] = (320, 480)        # image width range, px
    height: tuple[int, int] = (240, 360)       # image height range, px
    max_people: int = 3                        # 1..max_people figures per image
    person_height: tuple[float, float] = (0.55, 1.0)   # standing height / image height
    cut_prob: float = 0.25                     # a figure may be placed across the image border
    occluder_prob: float = 0.4                 # chance per image of 1-2 occluder patches
    unlabelled_prob: float = 0.1               # an in-image keypoint the annotator left out (v=0, as in COCO)
    clutter: tuple[int, int] = (6, 16)         # background shapes per image
    det_miss_rate: float = 0.08                # people the detector misses
    det_fp_per_image: float = 0.4              # mean false-positive boxes per image (Poisson)
    det_duplicate_rate: float = 0.15           # extra low-score box on a detected person
    det_jitter: float = 0.05                   # sd of box centre shift and log-size, fraction of the box
    jpeg_quality: int = 90


# Segment lengths and thicknesses in units of standing height (~ ankle to head top).
_LEN = dict(torso=0.30, neck=0.125, upper_arm=0.165, forearm=0.15, thigh=0.245, shin=0.24,
            shoulder=0.115, hip=0.085, head=0.065)
_THICK = dict(upper_arm=0.055, forearm=0.045, thigh=0.08, shin=0.065, neck=0.05)

# (probability, abduction range, elbow range) in degrees; abduction 0 = arm hanging, 180 = straight up.
_ARM_POSES = ((0.35, (5, 25), (-20, 25)),       # hanging
              (0.15, (70, 110), (-30, 50)),     # out to the side
              (0.15, (135, 175), (-25, 25)),    # raised
              (0.15, (80, 140), (40, 100)),     # waving
              (0.10, (30, 55), (-125, -90)),    # hand on hip
              (0.10, (0, 180), (-120, 120)))    # anything
# (probability, hip abduction range, knee range) in degrees.
_LEG_POSES = ((0.45, (0, 12), (-8, 8)),         # standing
              (0.20, (12, 32), (-15, 5)),       # wide stance
              (0.25, (-8, 35), (-35, 30)),      # walking / stepping
              (0.10, (30, 55), (-85, -45)))     # squat, bent knees


def _choice(rng, table):
    p = np.array([row[0] for row in table])
    return table[int(rng.choice(len(table), p=p / p.sum()))][1:]


def _unit(deg, down, out):
    a = np.deg2rad(deg)
    return np.cos(a) * down + np.sin(a) * out


def _pose(rng):
    """One figure in body units (pelvis at 0, x right, y down, height ~1): keypoints and draw geometry."""
    L = {k: v * rng.uniform(0.92, 1.08) for k, v in _LEN.items()}
    yaw = rng.uniform(-0.9, 0.9)                                   # rad; + turns the face to image right
    c, s = max(np.cos(yaw), 0.35), np.sin(yaw)
    lean = np.deg2rad(rng.normal(0, 6))
    up, right = np.array([np.sin(lean), -np.cos(lean)]), np.array([np.cos(lean), np.sin(lean)])
    down0, right0 = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    kp = np.zeros((NUM_KEYPOINTS, 2))
    shoulder_mid = up * L["torso"]
    for side, sign in (("left", 1.0), ("right", -1.0)):          # person's left is on the image right
        kp[_K[f"{side}_shoulder"]] = shoulder_mid + sign * right * L["shoulder"] * c
        kp[_K[f"{side}_hip"]] = sign * right0 * L["hip"] * c
        abd, elbow = (rng.uniform(*r) for r in _choice(rng, _ARM_POSES))
        fore = rng.uniform(0.75, 1.0) if rng.random() < 0.3 else 1.0   # foreshortening
        kp[_K[f"{side}_elbow"]] = kp[_K[f"{side}_shoulder"]] + L["upper_arm"] * fore * _unit(abd, -up, sign * right)
        kp[_K[f"{side}_wrist"]] = kp[_K[f"{side}_elbow"]] + L["forearm"] * _unit(abd + elbow, -up, sign * right)
        hip_abd, knee = (rng.uniform(*r) for r in _choice(rng, _LEG_POSES))
        fore = rng.uniform(0.6, 0.9) if knee < -40 else 1.0          # a squat's thighs point at the camera
        kp[_K[f"{side}_knee"]] = kp[_K[f"{side}_hip"]] + L["thigh"] * fore * _unit(hip_abd, down0, sign * right0)
        kp[_K[f"{side}_ankle"]] = kp[_K[f"{side}_knee"]] + L["shin"] * _unit(hip_abd + knee, down0, sign * right0)
    tilt = np.deg2rad(rng.normal(0, 8))
    head_up = np.cos(tilt) * up + np.sin(tilt) * right
    head_right = np.array([-head_up[1], head_up[0]])
    head = shoulder_mid + head_up * L["neck"]
    r = L["head"]
    kp[_K["nose"]] = head - head_up * 0.15 * r + head_right * 0.75 * r * s
    for side, sign in (("left", 1.0), ("right", -1.0)):
        kp[_K[f"{side}_eye"]] = head + head_up * 0.2 * r + head_right * r * (sign * 0.38 * c + 0.7 * s)
        kp[_K[f"{side}_ear"]] = head + head_right * r * (sign * 0.95 * c - 0.35 * s)
    hidden = np.zeros(NUM_KEYPOINTS, bool)                          # the far ear of a turned head
    hidden[_K["left_ear"]], hidden[_K["right_ear"]] = s > 0.45, s < -0.45
    geom = dict(head=head, head_up=head_up, r=r, neck=shoulder_mid, up=up, right=right, c=c,
                build=rng.uniform(0.85, 1.2), foot=right0)
    return kp, hidden, geom


def _colours(rng):
    skin = np.array([60, 90, 130]) + rng.uniform(0, 1) * np.array([140, 130, 110])  # BGR, dark to light
    vivid = lambda: rng.uniform(20, 235, 3)  # noqa: E731
    return dict(skin=skin, shirt=vivid(), pants=vivid(), shoes=rng.uniform(10, 80, 3),
                hair=rng.uniform(10, 120) * np.array([0.6, 0.8, 1.0]), sleeve=rng.random() < 0.5)


class _Painter:
    """Draws each primitive on the image (colour, anti-aliased) and on the figure's mask."""

    def __init__(self, img, mask, to_px):
        self.img, self.mask, self.to_px = img, mask, to_px

    def _pt(self, p):
        q = np.round(self.to_px(np.asarray(p, float)) * (1 << _SHIFT)).astype(np.int64)
        return int(q[0]), int(q[1])

    def line(self, a, b, thick, colour):
        t = max(2, int(round(thick * self.scale)))
        for canvas, col, aa in ((self.img, colour, cv2.LINE_AA), (self.mask, 255, cv2.LINE_8)):
            cv2.line(canvas, self._pt(a), self._pt(b), tuple(float(x) for x in np.atleast_1d(col)), t, aa, _SHIFT)

    def disc(self, p, radius, colour):
        rad = max(1, int(round(radius * self.scale * (1 << _SHIFT))))
        for canvas, col, aa in ((self.img, colour, cv2.LINE_AA), (self.mask, 255, cv2.LINE_8)):
            cv2.circle(canvas, self._pt(p), rad, tuple(float(x) for x in np.atleast_1d(col)), -1, aa, _SHIFT)

    def poly(self, pts, colour):
        q = np.array([self._pt(p) for p in pts], np.int32)
        cv2.fillPoly(self.img, [q], tuple(float(x) for x in colour), cv2.LINE_AA, _SHIFT)
        cv2.fillPoly(self.mask, [q], 255, cv2.LINE_8, _SHIFT)


def _draw_figure(p: _Painter, kp, geom, col):
    """Back to front: legs, torso, head and face, arms (in front of the torso); ball joints darker."""
    k, b = lambda name: kp[_K[name]], geom["build"]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        hip, knee, ankle = k(f"{side}_hip"), k(f"{side}_knee"), k(f"{side}_ankle")
        p.line(ankle, ankle + geom["foot"] * sign * 0.045 + [0, 0.02], 0.045, col["shoes"])
        p.line(hip, knee, _THICK["thigh"] * b, col["pants"])
        p.line(knee, ankle, _THICK["shin"] * b, col["pants"] * 0.8)
        p.disc(knee, 0.034 * b, col["pants"] * 0.5)
        p.disc(ankle, 0.026, col["shoes"] * 0.6 + 40)
    up, right, c = geom["up"], geom["right"], geom["c"]
    ls, rs, lh, rh = k("left_shoulder"), k("right_shoulder"), k("left_hip"), k("right_hip")
    widen = lambda q, side, dy: q + side * right * 0.035 * c * b + up * dy  # noqa: E731
    p.poly([widen(ls, 1, 0.015), widen(rs, -1, 0.015), widen(rh, -1, -0.03), widen(lh, 1, -0.03)], col["shirt"])
    p.line(geom["neck"], geom["head"], _THICK["neck"] * b, col["skin"] * 0.85)
    head, hu, r = geom["head"], geom["head_up"], geom["r"]
    p.disc(head + hu * 0.2 * r, 1.08 * r, col["hair"])
    p.disc(head - hu * 0.05 * r, r, col["skin"])
    for side in ("left", "right"):
        if not geom["hidden"][_K[f"{side}_ear"]]:
            p.disc(k(f"{side}_ear"), 0.25 * r, col["skin"] * 0.75)
        p.disc(k(f"{side}_eye"), 0.14 * r, np.array([30.0, 25, 20]))
    p.disc(k("nose"), 0.16 * r, col["skin"] * 0.6)
    for side in ("left", "right"):
        sh, el, wr = k(f"{side}_shoulder"), k(f"{side}_elbow"), k(f"{side}_wrist")
        p.disc(sh, 0.04 * b, col["shirt"] * 0.55)
        p.line(sh, el, _THICK["upper_arm"] * b, col["shirt"])
        p.line(el, wr, _THICK["forearm"] * b, col["shirt"] * 0.8 if col["sleeve"] else col["skin"])
        p.disc(el, 0.03 * b, col["shirt"] * 0.5)
        p.disc(wr + (wr - el) * 0.18, 0.03, col["skin"])
        p.disc(wr, 0.018, col["skin"] * 0.6)
    for hip in (lh, rh):
        p.disc(hip, 0.035 * b, col["pants"] * 0.5)


def _background(rng, w, h, spec: SceneSpec):
    """Smooth colour field plus noise, then random rectangles, circles, ellipses and lines."""
    low = rng.uniform(30, 225, (3, 4, 3)).astype(np.float32)
    img = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 6, ((h + 3) // 4, (w + 3) // 4, 1)).astype(np.float32).repeat(4, 0).repeat(4, 1)[:h, :w]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(*spec.clutter, endpoint=True))):
        col = tuple(float(x) for x in rng.uniform(0, 255, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(rng.integers(8, max(9, min(w, h) // 3)))
        kind = rng.integers(4)
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), col, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), size // 2, col, -1, cv2.LINE_AA)
        elif kind == 2:
            cv2.ellipse(img, (x, y), (size // 2, size // 5 + 1), float(rng.uniform(0, 180)), 0, 360, col, -1)
        else:
            x2, y2 = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.line(img, (x, y), (x2, y2), col, int(rng.integers(1, 8)), cv2.LINE_AA)
    return img


def _place(rng, kp, w, h, spec: SceneSpec):
    """A similarity transform body units -> pixels: scale, rotation, and a position on (or across) the image."""
    height = rng.uniform(*spec.person_height) * h
    angle = np.deg2rad(rng.normal(0, 12) if rng.random() < 0.85 else rng.uniform(-60, 60))
    rot = height * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = kp @ rot.T
    lo, hi = pts.min(0) - 0.05 * height, pts.max(0) + 0.05 * height
    if rng.random() < spec.cut_prob or np.any(hi - lo > (w, h)):
        centre = rng.uniform((0, 0), (w, h))
    else:
        centre = rng.uniform((hi - lo) / 2, (w, h) - (hi - lo) / 2)
    offset = centre - (lo + hi) / 2
    return (lambda p: p @ rot.T + offset), height


def _occluders(rng, img, labels, people, spec: SceneSpec):
    """Textured patches over a random keypoint of a random figure."""
    h, w = labels.shape
    if not people or rng.random() >= spec.occluder_prob:
        return
    for _ in range(int(rng.integers(1, 3))):
        person = people[int(rng.integers(len(people)))]
        x, y = person["kp"][int(rng.integers(NUM_KEYPOINTS))] + rng.normal(0, 0.04, 2) * person["height"]
        ax = (person["height"] * rng.uniform(0.06, 0.15, 2)).astype(int) + 2
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (int(x), int(y)), (int(ax[0]), int(ax[1])), float(rng.uniform(0, 180)), 0, 360, 255, -1)
        if rng.random() < 0.5:
            cv2.rectangle(mask, (int(x - ax[0]), int(y - ax[1])), (int(x + ax[0]), int(y + ax[1])), 255, -1)
        sel = mask > 0
        stripes = (np.indices((h, w)).sum(0) // int(rng.integers(3, 9)) % 2)[sel, None]
        img[sel] = np.clip(rng.uniform(0, 255, 3) * (0.7 + 0.3 * stripes), 0, 255).astype(np.uint8)
        labels[sel] = 255


def _render(rng, spec: SceneSpec):
    """One image and its people: each with pixel keypoints (17,2), v (17,), bbox, area."""
    w = 2 * int(rng.integers(spec.width[0] // 2, spec.width[1] // 2, endpoint=True))
    h = 2 * int(rng.integers(spec.height[0] // 2, spec.height[1] // 2, endpoint=True))
    img = _background(rng, w, h, spec)
    labels = np.zeros((h, w), np.uint8)         # which figure (1-based) or occluder (255) is on top
    people = []
    for i in range(int(rng.integers(1, spec.max_people, endpoint=True))):
        kp, hidden, geom = _pose(rng)
        to_px, height = _place(rng, kp, w, h, spec)
        mask = np.zeros((h, w), np.uint8)
        painter = _Painter(img, mask, to_px)
        painter.scale = height
        geom["hidden"] = hidden
        _draw_figure(painter, kp, geom, _colours(rng))
        labels[mask > 0] = i + 1
        people.append(dict(kp=to_px(kp), hidden=hidden, mask=mask, height=height, label=i + 1))
    _occluders(rng, img, labels, people, spec)
    return img, [_annotate(p, labels, rng.random(NUM_KEYPOINTS) < spec.unlabelled_prob) for p in people]


def _annotate(person, labels, unlabelled):
    h, w = labels.shape
    kp = person["kp"]
    inside = (kp[:, 0] >= 0) & (kp[:, 0] < w) & (kp[:, 1] >= 0) & (kp[:, 1] < h)
    xi = np.clip(kp[:, 0], 0, w - 1).astype(int)
    yi = np.clip(kp[:, 1], 0, h - 1).astype(int)
    on_top = labels[yi, xi] == person["label"]
    v = np.where(inside & ~unlabelled, np.where(on_top & ~person["hidden"], 2, 1), 0)
    ys, xs = np.nonzero(person["mask"])
    x0, y0, x1, y1 = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else (0, 0, 0, 0)
    if np.any(v > 0):       # the box holds the silhouette and every labelled keypoint
        x0, y0 = min(x0, kp[v > 0, 0].min()), min(y0, kp[v > 0, 1].min())
        x1, y1 = max(x1, kp[v > 0, 0].max()), max(y1, kp[v > 0, 1].max())
    return dict(kp=np.where(v[:, None] > 0, kp, 0.0), v=v, bbox=[x0, y0, x1 - x0, y1 - y0],
                area=float(len(xs)))


def _detections(rng, image_id, people, w, h, spec: SceneSpec):
    """Simulated person detector: jittered true boxes, duplicates, false positives and misses."""
    dets, stats = [], dict(true=0, duplicate=0, false_positive=0, missed=0)
    for person in people:
        if rng.random() < spec.det_miss_rate:
            stats["missed"] += 1
            continue
        x, y, bw, bh = person["bbox"]
        visible = np.mean(person["v"] > 0)
        for dup in range(2 if rng.random() < spec.det_duplicate_rate else 1):
            jitter = spec.det_jitter * (3 if dup else 1)
            cx, cy = x + bw * (0.5 + rng.normal(0, jitter)), y + bh * (0.5 + rng.normal(0, jitter))
            sw, sh = bw * np.exp(rng.normal(0, jitter)), bh * np.exp(rng.normal(0, jitter))
            score = np.clip(0.55 + 0.4 * visible + rng.normal(0, 0.05), 0.05, 0.999) * (0.3 if dup else 1)
            dets.append(_det(image_id, [cx - sw / 2, cy - sh / 2, sw, sh], score))
            stats["duplicate" if dup else "true"] += 1
    for _ in range(int(rng.poisson(spec.det_fp_per_image))):
        bh = rng.uniform(0.25, 0.8) * h
        bw = bh * rng.uniform(0.3, 0.8)
        dets.append(_det(image_id, [rng.uniform(-0.1, 0.9) * w, rng.uniform(-0.1, 0.7) * h, bw, bh],
                         rng.uniform(0.02, 0.6)))
        stats["false_positive"] += 1
    return dets, stats


def _det(image_id, box, score):
    return dict(image_id=image_id, category_id=1, bbox=[round(float(b), 2) for b in box],
                score=round(float(score), 4))


def _categories():
    return [dict(supercategory="person", id=1, name="person", keypoints=list(KEYPOINT_NAMES),
                 skeleton=[[a + 1, b + 1] for a, b in SKELETON])]


def _write_split(cfg, root: Path, split: str, count: int, spec: SceneSpec):
    """Images and the annotation file of one split; returns the image records, people and counts."""
    (root / split).mkdir(parents=True)
    images, annotations, per_image = [], [], []
    for index in range(count):
        rng = np.random.default_rng([cfg.seed, _SPLITS[split], index])
        img, people = _render(rng, spec)
        image_id = _ID_BASE[split] + index + 1
        name = f"{image_id:012d}.jpg"
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
        (root / split / name).write_bytes(buf.tobytes())
        images.append(dict(id=image_id, file_name=name, width=img.shape[1], height=img.shape[0]))
        people = [p for p in people if np.any(p["v"] > 0)]
        for p in people:
            kps = np.concatenate([np.round(p["kp"], 2), p["v"][:, None]], 1).ravel().tolist()
            annotations.append(dict(
                id=_ID_BASE[split] + len(annotations) + 1, image_id=image_id, category_id=1, iscrowd=0,
                area=p["area"], bbox=[round(float(b), 2) for b in p["bbox"]],
                num_keypoints=int(np.sum(p["v"] > 0)),
                keypoints=[int(x) if i % 3 == 2 else float(x) for i, x in enumerate(kps)]))
        per_image.append((image_id, people, img.shape[1], img.shape[0]))
    ann = dict(info=dict(description=f"repro synthetic people, seed {cfg.seed}"), licenses=[],
               images=images, annotations=annotations, categories=_categories())
    path = root / "annotations" / f"person_keypoints_{split}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(ann))
    return per_image, len(annotations)


PARTS = ("train2017", "val2017", "annotations", "person_detection_results")   # the subdirectories of root


def generate(cfg, root, spec: SceneSpec = SceneSpec(), parts=PARTS) -> dict:
    """Write the synthetic data set to `root`, replacing each part only once the new set is complete.

    Args:
        cfg: a `repro.config.SyntheticConfig` (train_images, val_images, seed).
        root: destination directory (COCO layout below it).
        spec: scene and detector knobs; the default is the smoke data set.
        parts: which of PARTS to write (each DVC data stage owns some of them); the whole set is generated
            either way, since the train annotations come from rendering the train images.

    Returns:
        Counts: images and annotated people per split, and the detection file's true, duplicate,
        false-positive and missed boxes.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"synthetic.generate: unknown part(s) {unknown}; parts are {PARTS}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _, n_train = _write_split(cfg, tmp, "train2017", cfg.train_images, spec)
        val, n_val = _write_split(cfg, tmp, "val2017", cfg.val_images, spec)
        dets, det_stats = [], dict(true=0, duplicate=0, false_positive=0, missed=0)
        for index, (image_id, people, w, h) in enumerate(val):
            d, s = _detections(np.random.default_rng([cfg.seed, _DET_STREAM, index]), image_id, people, w, h, spec)
            dets += d
            det_stats = {k: det_stats[k] + s[k] for k in det_stats}
        (tmp / DET_FILE).parent.mkdir(parents=True)
        (tmp / DET_FILE).write_text(json.dumps(dets))
        for part in parts:
            _replace(tmp / part, root / part)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(train_images=cfg.train_images, val_images=cfg.val_images, train_instances=n_train,
                val_instances=n_val, detections=len(dets), **{f"det_{k}": v for k, v in det_stats.items()})


def _replace(new: Path, dest: Path) -> None:
    """Put directory `new` at `dest`, moving the old one aside first, so `dest` is never half-written."""
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    if dest.exists():
        os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)
