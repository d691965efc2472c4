"""Top-down preprocessing: bbox -> center/scale, the mmpose 1.x training augmentation, one affine crop.

    tf = build_transforms(cfg.codec, cfg.augment, is_training=True)
    out = tf(img_bgr, center, scale, keypoints, visible, rng)    # out.img: normalised RGB (3, H, W) tensor

Training and test crops go through the same `affine_crop`. The random draws (spec §2.6(c)) only move
keypoints, center, scale and rotation (`sample_augmentation`); pixels are touched once, in `crop`, so a
sample's geometry can be fixed before the image is decoded. Draws come from the caller's
np.random.Generator, in the order flip, half-body, bbox transform.
"""
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from repro.config import AugmentConfig, CodecConfig
from repro.keypoints import FLIP_INDICES, LOWER_BODY_IDS, UPPER_BODY_IDS

# ImageNet statistics on 0-255 RGB (spec §2.1, 1.x PoseDataPreprocessor).
MEAN_RGB = np.array([123.675, 116.28, 103.53], np.float32)
STD_RGB = np.array([58.395, 57.12, 57.375], np.float32)


def bbox_xyxy_to_center_scale(bbox, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """Center and padded size (w, h) of xyxy boxes, without the aspect fix (1.x GetBBoxCenterScale).

    Args:
        bbox: (..., 4) x1, y1, x2, y2 in image pixels.
        padding: size multiplier (1.25).

    Returns:
        center (..., 2), scale (..., 2), float32.
    """
    bbox = np.asarray(bbox, np.float32)
    center = (bbox[..., :2] + bbox[..., 2:]) * np.float32(0.5)
    scale = (bbox[..., 2:] - bbox[..., :2]) * np.float32(padding)
    return center, scale


def fix_aspect_ratio(scale, aspect_ratio: float) -> np.ndarray:
    """Enlarge the short side so that w / h == aspect_ratio (1.x TopdownAffine._fix_aspect_ratio)."""
    scale = np.asarray(scale, np.float32)
    w, h = scale[..., 0], scale[..., 1]
    wide = w > h * aspect_ratio
    return np.stack([np.where(wide, w, h * aspect_ratio), np.where(wide, w / aspect_ratio, h)], -1).astype(np.float32)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b + (a - b) turned 90 degrees, in the dtype of a and b (mmpose `_get_3rd_point`)."""
    d = a - b
    return b + np.array([-d[1], d[0]], d.dtype)


def warp_matrix(center, scale, rotation: float, input_size) -> np.ndarray:
    """The 2x3 image -> crop matrix built exactly as mmpose 1.x `get_warp_matrix` builds it (spec §2.7).

    Three source points (the center, the center plus the horizontal half-width vector (-s_w/2, 0) turned
    by `rotation`, and a third point at 90 degrees) and their crop targets are stored in float32 and solved
    by cv2.getAffineTransform. The result equals the closed form of §2.7 only up to that float32 rounding
    (~2e-4 in the translation for typical boxes, more for tiny ones); building it the same way is what
    makes crops bit-identical to mmpose's (`closed_form_warp_matrix` is the test oracle). 0.x's
    `get_affine_transform` used the vertical vector (0, -s_w/2) instead: the same map, but its float32
    points round differently, and 70 of the real sample's 118 crops then differ from 1.x's by a gray level.

    Args:
        center: (cx, cy) in image pixels.
        scale: aspect-fixed crop size (s_w, s_h) in image pixels; only s_w is used.
        rotation: degrees, counter-clockwise in the image.
        input_size: (W, H) of the crop.

    Returns:
        M (2, 3) float64 with [x', y'] = M @ [x, y, 1].
    """
    W, H = input_size
    # mmpose's training rotation is a float32 draw, so sin/cos are float32 there; exact for test-time 0.
    theta = np.deg2rad(np.float32(rotation))
    sin, cos = np.float64(np.sin(theta)), np.float64(np.cos(theta))
    half = -0.5 * float(scale[0])
    c = np.asarray(center, np.float64)
    src = np.zeros((3, 2), np.float32)
    src[0] = c
    src[1] = c + np.array([cos * half, sin * half])   # _rotate_point((-s_w/2, 0), theta), summed in float64
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), np.float32)
    dst[0] = [W * 0.5, H * 0.5]
    dst[1] = [W * 0.5 - W * 0.5, H * 0.5]             # dst[0] + (-W/2, 0)
    dst[2] = _third_point(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst)


def closed_form_warp_matrix(center, scale, rotation: float, input_size) -> np.ndarray:
    """Test oracle only: the closed form of spec §2.7 in float64 (agrees with `warp_matrix` up to rounding).

    Not used for crops: mmpose's float32 three-point construction rounds differently (see `warp_matrix`).
    """
    W, H = input_size
    cx, cy = float(center[0]), float(center[1])
    theta = np.deg2rad(float(rotation))
    k = W / float(scale[0])
    cos, sin = k * np.cos(theta), k * np.sin(theta)
    return np.array([[cos, sin, W / 2 - (cos * cx + sin * cy)],
                     [-sin, cos, H / 2 - (-sin * cx + cos * cy)]])


def transform_points(points, matrix) -> np.ndarray:
    """Apply a 2x3 affine matrix to (..., 2) points as mmpose's TopdownAffine does (cv2.transform); float32."""
    pts = np.ascontiguousarray(points, np.float32)
    return cv2.transform(pts.reshape(1, -1, 2), np.asarray(matrix, np.float64)).reshape(pts.shape)


def affine_crop(img: np.ndarray, matrix, input_size) -> np.ndarray:
    """The one crop used for training and testing: cv2 INTER_LINEAR, constant-0 border (spec §2.7).

    The matrix is passed in float64 as mmpose passes it: a float32 copy would round it again.
    """
    W, H = input_size
    return cv2.warpAffine(img, np.asarray(matrix, np.float64), (int(W), int(H)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def to_tensor(crop_bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 (H, W, 3) -> RGB float32 (3, H, W) normalised with the ImageNet statistics."""
    # Per plane into one preallocated buffer: same float32 arithmetic as (rgb - mean) / std, ~9x faster.
    planes = cv2.split(crop_bgr)
    out = np.empty((3, *crop_bgr.shape[:2]), np.float32)
    for c in range(3):
        np.subtract(planes[2 - c], MEAN_RGB[c], out=out[c], dtype=np.float32)
        np.divide(out[c], STD_RGB[c], out=out[c])
    return torch.from_numpy(out)


def to_uint8_tensor(crop_bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 (H, W, 3) -> RGB uint8 (3, H, W): what a worker hands over; `normalize_images` finishes it."""
    return torch.from_numpy(np.ascontiguousarray(crop_bgr[..., ::-1].transpose(2, 0, 1)))


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB uint8 -> float32 normalised, on the images' device; float images pass unchanged.

    The same float32 operations as `to_tensor` (uint8 -> float32 is exact, then one IEEE subtraction and one
    division per element), so the result is bit-identical to normalising in the worker.
    """
    if images.dtype != torch.uint8:
        return images
    mean = torch.from_numpy(MEAN_RGB).to(images.device).view(1, 3, 1, 1)
    std = torch.from_numpy(STD_RGB).to(images.device).view(1, 3, 1, 1)
    return images.float().sub_(mean).div_(std)   # in place: one float buffer, not three


def truncnorm(rng: np.random.Generator, size: int) -> np.ndarray:
    """`size` draws of a standard normal truncated to [-1, 1] (scipy truncnorm(-1, 1)), by rejection."""
    out = np.empty(0)
    while out.size < size:  # acceptance 0.68; one round almost always suffices
        z = rng.standard_normal(2 * size + 8)
        out = np.concatenate([out, z[np.abs(z) <= 1]])
    return out[:size].astype(np.float32)


def flip_keypoints(keypoints, visible, img_width: int, flip_indices=FLIP_INDICES):
    """Mirror keypoints horizontally (x' = w - 1 - x) and swap left/right, visibility included."""
    idx = list(flip_indices)
    kp = np.asarray(keypoints, np.float32)[..., idx, :].copy()
    kp[..., 0] = img_width - 1 - kp[..., 0]
    return kp, np.asarray(visible)[..., idx].copy()


def half_body_ids(visible, cfg: AugmentConfig, rng: np.random.Generator):
    """1.x RandomHalfBody's choice: indices of the chosen visible half, or None to leave the box alone."""
    visible = np.asarray(visible)
    if visible.sum() < cfg.half_body_min_total_keypoints or rng.random() > cfg.half_body_prob:
        return None
    upper = [i for i in UPPER_BODY_IDS if visible[i] > 0]
    lower = [i for i in LOWER_BODY_IDS if visible[i] > 0]
    prefer_upper = rng.random() < cfg.half_body_upper_prob
    upper_ok = len(upper) >= cfg.half_body_min_upper_keypoints
    lower_ok = len(lower) >= cfg.half_body_min_lower_keypoints
    if not upper_ok and not lower_ok:
        return None
    if upper_ok and lower_ok:
        return upper if prefer_upper else lower
    return upper if upper_ok else lower


def half_body_box(keypoints, ids, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """Center = mean of the chosen keypoints; scale = (max - min) · padding, no aspect fix."""
    pts = np.asarray(keypoints, np.float32)[list(ids)]
    return pts.mean(axis=0), (pts.max(axis=0) - pts.min(axis=0)) * np.float32(padding)


def bbox_transform_params(cfg: AugmentConfig, rng: np.random.Generator):
    """1.x RandomBBoxTransform: (offset (2,), scale factor, rotation in degrees) from 4 truncnorm draws."""
    v = truncnorm(rng, 4)
    offset = v[:2] * np.float32(cfg.shift_factor) if rng.random() < cfg.shift_prob else np.zeros(2, np.float32)
    scale = np.float32(1 + cfg.scale_factor * v[2]) if rng.random() < cfg.scale_prob else np.float32(1)
    rotation = float(cfg.rotate_factor * v[3]) if rng.random() < cfg.rotate_prob else 0.0
    return offset, scale, rotation


@dataclass(frozen=True)
class Geometry:
    """Where one instance is cropped from, and its keypoints in image pixels after any flip."""

    center: np.ndarray      # (2,) image pixels
    scale: np.ndarray       # (2,) aspect-fixed crop size in image pixels
    rotation: float         # degrees
    flip: bool              # mirror the image before cropping
    keypoints: np.ndarray   # (K, 2) image pixels, flipped when `flip`
    visible: np.ndarray     # (K,) in {0, 1}, reordered when `flip`


def sample_augmentation(center, scale, keypoints, visible, img_width: int, aug: AugmentConfig,
                        codec: CodecConfig, rng: np.random.Generator) -> Geometry:
    """Draw the 1.x training augmentation for one instance: RandomFlip -> RandomHalfBody -> RandomBBoxTransform.

    Args:
        center, scale: from `bbox_xyxy_to_center_scale` (padded, not aspect-fixed).
        keypoints: (K, 2) image pixels; visible: (K,) in {0, 1}.
        img_width: width of the image, for the mirror x' = w - 1 - x.
        aug, codec: augmentation parameters and the input size (for the aspect fix).
        rng: the sample's generator.
    """
    center, scale = np.asarray(center, np.float32), np.asarray(scale, np.float32)
    keypoints, visible = np.asarray(keypoints, np.float32), np.asarray(visible, np.float32)
    flip = bool(rng.random() < aug.flip_prob)
    if flip:
        keypoints, visible = flip_keypoints(keypoints, visible, img_width)
        center = np.array([img_width - 1 - center[0], center[1]], np.float32)
    ids = half_body_ids(visible, aug, rng)
    if ids is not None:
        center, scale = half_body_box(keypoints, ids, aug.half_body_padding)
    offset, factor, rotation = bbox_transform_params(aug, rng)
    center = center + offset * scale
    scale = scale * factor
    W, H = codec.input_size
    return Geometry(center, fix_aspect_ratio(scale, W / H), rotation, flip, keypoints, visible)


def plain_geometry(center, scale, keypoints, visible, codec: CodecConfig) -> Geometry:
    """The test-time geometry: the padded box, aspect-fixed, no rotation or flip (spec §2.9)."""
    W, H = codec.input_size
    return Geometry(np.asarray(center, np.float32), fix_aspect_ratio(scale, W / H), 0.0, False,
                    np.asarray(keypoints, np.float32), np.asarray(visible, np.float32))


def crop(img: np.ndarray, geom: Geometry, codec: CodecConfig) -> tuple[np.ndarray, np.ndarray]:
    """Mirror (if asked) and affine-crop a BGR image; returns (crop (H, W, 3) uint8, M)."""
    if geom.flip:
        img = cv2.flip(img, 1)  # mmcv imflip
    m = warp_matrix(geom.center, geom.scale, geom.rotation, codec.input_size)
    return affine_crop(img, m, codec.input_size), m


@dataclass(frozen=True)
class Transformed:
    """One preprocessed instance."""

    img: torch.Tensor        # (3, H, W) float32, normalised RGB
    keypoints: np.ndarray    # (K, 2) input-crop pixels
    visible: np.ndarray      # (K,)
    center: np.ndarray       # (2,) image pixels
    scale: np.ndarray        # (2,) aspect-fixed crop size in image pixels
    rotation: float
    flip: bool
    matrix: np.ndarray       # (2, 3) image -> crop


class TopDownTransform:
    """Training (augmented) or test (plain) preprocessing of one instance; see `build_transforms`."""

    def __init__(self, codec: CodecConfig, augment: AugmentConfig, is_training: bool):
        self.codec, self.augment, self.is_training = codec, augment, is_training

    def geometry(self, center, scale, keypoints, visible, img_width: int, rng) -> Geometry:
        if not self.is_training:
            return plain_geometry(center, scale, keypoints, visible, self.codec)
        return sample_augmentation(center, scale, keypoints, visible, img_width, self.augment, self.codec, rng)

    def __call__(self, img, center, scale, keypoints, visible, rng=None) -> Transformed:
        """Args: img BGR uint8 (h, w, 3); center/scale padded box; keypoints (K, 2); visible (K,)."""
        geom = self.geometry(center, scale, keypoints, visible, img.shape[1], rng)
        patch, m = crop(img, geom, self.codec)
        return Transformed(to_tensor(patch), transform_points(geom.keypoints, m), geom.visible,
                           geom.center, geom.scale, geom.rotation, geom.flip, m)


def build_transforms(codec: CodecConfig, augment: AugmentConfig, is_training: bool) -> TopDownTransform:
    """The one preprocessing factory for training and evaluation crops."""
    return TopDownTransform(codec, augment, is_training)
