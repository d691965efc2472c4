"""MSRA heatmap codec (mmpose `MSRAHeatmap`, unbiased=False): encode, decode, flip-back (spec §2.8, §4.1, §4.2).

    heatmaps, weights = encode(keypoints_in, visible, cfg.codec)      # training targets (numpy)
    heatmaps, weights = encode_targets(kpts, vis, cfg.codec)          # the same, bit for bit, on kpts' device
    kpts_in, scores = decode(heatmaps, cfg.codec)                     # argmax + quarter-pixel step
    kpts_img = to_image(kpts_in, center, scale, cfg.codec.input_size) # back to image pixels
    heatmaps_flip = flip_back(model(x.flip(-1)))                      # flip test

Coordinates: `keypoints_in` are in input-crop pixels (after the affine of spec §2.7); heatmap pixel j covers
input pixel 8·j, with no half-pixel offsets (non-UDP). All functions are vectorised over leading batch
dimensions and keypoints.
"""
import numpy as np
import torch

from repro.config import CodecConfig
from repro.keypoints import FLIP_INDICES


def _stride(cfg: CodecConfig) -> np.ndarray:
    """Input pixels per heatmap pixel, (sx, sy), float32 as in mmpose's `scale_factor`."""
    return (np.asarray(cfg.input_size, np.float32) / np.asarray(cfg.heatmap_size, np.float32)).astype(np.float32)


def encode(keypoints: np.ndarray, visible: np.ndarray, cfg: CodecConfig) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised Gaussian targets at the rounded heatmap location of each keypoint (spec §2.8).

    Args:
        keypoints: (..., K, 2) keypoints in input-crop pixels.
        visible: (..., K) visibility in {0, 1} (v' = min(1, v)); v < 0.5 gives an empty map and weight 0.
        cfg: the codec geometry and sigma.

    Returns:
        heatmaps (..., K, H, W) float32 with peak 1 at the integer centre mu = int(x/8 + 0.5) (truncating
        toward zero), zero outside the (6σ+1)² window; weights (..., K) float32, also 0 when the window
        lies entirely outside the map.
    """
    W, H = cfg.heatmap_size
    sigma = float(cfg.sigma)
    radius = 3 * sigma
    size = int(np.ceil(2 * radius + 1))          # mmpose: len(arange(0, 2r+1))
    centre = float(size // 2)                    # x0 = y0 of the patch
    kp = np.asarray(keypoints, np.float32) / _stride(cfg)          # float32, like mmpose
    mu = (kp + np.float32(0.5)).astype(np.int64)                    # truncates toward zero
    left_top = (mu - radius).astype(np.int64)                       # (..., K, 2)
    right_bottom = (mu + radius + 1).astype(np.int64)
    vis = np.asarray(visible, np.float32)
    outside = ((left_top[..., 0] >= W) | (left_top[..., 1] >= H)
               | (right_bottom[..., 0] < 0) | (right_bottom[..., 1] < 0))
    on = (vis >= 0.5) & ~outside
    weights = np.where(outside, np.float32(0), vis).astype(np.float32)

    # Patch coordinate of every map column/row: g = pixel - left; inside the patch iff 0 <= g < min(size, r-l).
    gx = np.arange(W)[None, :] - left_top[..., 0, None]             # (..., K, W)
    gy = np.arange(H)[None, :] - left_top[..., 1, None]             # (..., K, H)
    in_x = (gx >= 0) & (gx < np.minimum(size, (right_bottom[..., 0] - left_top[..., 0])[..., None]))
    in_y = (gy >= 0) & (gy < np.minimum(size, (right_bottom[..., 1] - left_top[..., 1])[..., None]))
    dx2 = ((gx - centre) ** 2).astype(np.float32)
    dy2 = ((gy - centre) ** 2).astype(np.float32)
    d2 = dy2[..., :, None] + dx2[..., None, :]                      # (..., K, H, W)
    gauss = np.exp(-d2 / np.float32(2 * sigma ** 2)).astype(np.float32)
    mask = in_y[..., :, None] & in_x[..., None, :] & on[..., None, None]
    return np.where(mask, gauss, np.float32(0)), weights


def gaussian_patch(sigma: float) -> np.ndarray:
    """The (6σ+1)² unnormalised Gaussian with peak 1 that mmpose pastes at each keypoint (spec §2.8), float32,
    computed with the same numpy operations as `encode`'s values (that is what makes `encode_targets`, which
    only places copies of it, bit-identical to `encode`)."""
    size = int(np.ceil(6 * float(sigma) + 1))
    g = np.arange(size) - float(size // 2)
    d2 = (g[:, None] ** 2).astype(np.float32) + (g[None, :] ** 2).astype(np.float32)
    return np.exp(-d2 / np.float32(2 * sigma ** 2)).astype(np.float32)


def encode_targets(keypoints: torch.Tensor, visible: torch.Tensor,
                   cfg: CodecConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """`encode` on the keypoints' device: what loader workers leave to the GPU (they send 17 points, not 52 KB
    of maps at 256x192). The window arithmetic is `encode`'s step for step (float32 division and rounding,
    float64 window bounds); the values are copies of numpy's `gaussian_patch`, so the device's own exp never
    enters and the maps equal `encode`'s bit for bit.

    Args:
        keypoints: (..., K, 2) input-crop pixels; visible: (..., K).

    Returns:
        heatmaps (..., K, H, W) float32, weights (..., K) float32, on the keypoints' device.
    """
    W, H = cfg.heatmap_size
    dev = keypoints.device
    radius = 3 * float(cfg.sigma)
    patch = torch.from_numpy(gaussian_patch(cfg.sigma)).to(dev)
    size = patch.shape[0]
    kp = keypoints.to(torch.float32) / torch.from_numpy(_stride(cfg)).to(dev)
    mu = (kp + 0.5).to(torch.int64)                                   # truncates toward zero, as numpy's astype
    left_top = (mu.double() - radius).to(torch.int64)
    right_bottom = (mu.double() + radius + 1).to(torch.int64)
    vis = visible.to(torch.float32)
    outside = ((left_top[..., 0] >= W) | (left_top[..., 1] >= H)
               | (right_bottom[..., 0] < 0) | (right_bottom[..., 1] < 0))
    on = (vis >= 0.5) & ~outside
    weights = torch.where(outside, torch.zeros_like(vis), vis)
    gx = torch.arange(W, device=dev) - left_top[..., 0, None]        # (..., K, W) patch column of each map column
    gy = torch.arange(H, device=dev) - left_top[..., 1, None]
    in_x = (gx >= 0) & (gx < torch.clamp(right_bottom[..., 0] - left_top[..., 0], max=size)[..., None])
    in_y = (gy >= 0) & (gy < torch.clamp(right_bottom[..., 1] - left_top[..., 1], max=size)[..., None])
    values = patch[gy.clamp(0, size - 1)[..., :, None], gx.clamp(0, size - 1)[..., None, :]]
    mask = in_y[..., :, None] & in_x[..., None, :] & on[..., None, None]
    return torch.where(mask, values, torch.zeros((), device=dev)), weights


def _as_tensor(x) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, True
    return torch.from_numpy(np.ascontiguousarray(x)), False


def heatmap_maximum(heatmaps) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax location (first maximum) and value per map; (-1, -1) where the maximum is <= 0 (spec §4.2.1).

    Args:
        heatmaps: (..., K, H, W) tensor.

    Returns:
        locations (..., K, 2) float32 (x, y) in heatmap pixels; scores (..., K) float32.
    """
    H, W = heatmaps.shape[-2:]
    flat = heatmaps.reshape(*heatmaps.shape[:-2], H * W)
    # torch.argmax does not promise the first index on ties (CUDA); the smallest index at the max does.
    scores = flat.max(dim=-1).values
    idx = torch.arange(H * W, device=flat.device)
    first = torch.where(flat == scores[..., None], idx, H * W).min(dim=-1).values
    locs = torch.stack([first % W, first // W], dim=-1).to(torch.float32)
    locs = torch.where((scores <= 0)[..., None], torch.full_like(locs, -1.0), locs)
    return locs, scores.to(torch.float32)


def refine_quarter(locs: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
    """Move each location 0.25 px toward its higher neighbour, with mmpose 1.x border rules (spec §4.2.2).

    x is refined iff 1 < x < W-1 and 0 < y < H; y iff 1 < y < H-1 and 0 < x < W (each on its own).
    """
    H, W = heatmaps.shape[-2:]
    x = locs[..., 0].to(torch.int64)
    y = locs[..., 1].to(torch.int64)
    ref_x = (x > 1) & (x < W - 1) & (y > 0) & (y < H)
    ref_y = (y > 1) & (y < H - 1) & (x > 0) & (x < W)
    flat = heatmaps.reshape(*heatmaps.shape[:-2], H * W)

    def at(yy, xx):  # value at (yy, xx), indices clamped (masked out where invalid anyway)
        i = yy.clamp(0, H - 1) * W + xx.clamp(0, W - 1)
        return torch.gather(flat, -1, i[..., None])[..., 0]

    dx = torch.where(ref_x, at(y, x + 1) - at(y, x - 1), torch.zeros_like(flat[..., 0]))
    dy = torch.where(ref_y, at(y + 1, x) - at(y - 1, x), torch.zeros_like(flat[..., 0]))
    step = torch.stack([torch.sign(dx), torch.sign(dy)], dim=-1).to(torch.float32) * 0.25
    return locs + step


def decode(heatmaps, cfg: CodecConfig):
    """Keypoints in input-crop pixels and their scores from heatmaps (spec §4.2 steps 1-3).

    Args:
        heatmaps: (..., K, H, W) torch tensor or numpy array.
        cfg: codec geometry (the stride is input_size / heatmap_size).

    Returns:
        keypoints (..., K, 2) float32 in input pixels, scores (..., K) float32; torch tensors (on the input's
        device) for a tensor input, numpy arrays for a numpy input. A map with max <= 0 decodes to
        (-1, -1)·stride, as in mmpose.
    """
    hm, is_tensor = _as_tensor(heatmaps)
    locs, scores = heatmap_maximum(hm)
    locs = refine_quarter(locs, hm)
    keypoints = locs * torch.as_tensor(_stride(cfg), device=locs.device)
    if is_tensor:
        return keypoints, scores
    return keypoints.numpy(), scores.numpy()


def to_image(keypoints, center, scale, input_size) -> np.ndarray:
    """Input-crop pixels -> image pixels for an unrotated crop (spec §4.2.4, non-UDP).

    Args:
        keypoints: (N, K, 2) in input pixels.
        center: (N, 2) crop centres in image pixels.
        scale: (N, 2) aspect-fixed, padded crop sizes (w, h) in image pixels.
        input_size: (w, h) of the network input.

    Returns:
        (N, K, 2) float64 holding float32 values: p / input · scale + c − scale / 2, evaluated in float64
        and rounded to float32, as mmpose's add_pred_to_datasample writes it into its float32 keypoints.
    """
    if isinstance(keypoints, torch.Tensor):
        keypoints = keypoints.detach().cpu().numpy()
    kp = np.asarray(keypoints, np.float64)
    center = np.asarray(center, np.float64)[..., None, :]
    scale = np.asarray(scale, np.float64)[..., None, :]
    image = kp / np.asarray(input_size, np.float64) * scale + center - 0.5 * scale
    return image.astype(np.float32).astype(np.float64)


def flip_back(heatmaps: torch.Tensor, flip_indices=FLIP_INDICES, shift: bool = True) -> torch.Tensor:
    """Undo a horizontal input flip on predicted heatmaps (spec §4.1 steps 3-4).

    Args:
        heatmaps: (N, K, H, W) predictions for the flipped input.
        flip_indices: channel k of the result is channel flip_indices[k] of the flipped map.
        shift: shift right by one column, keeping column 0 (compensates the 7/8 px offset).

    Returns:
        (N, K, H, W) heatmaps aligned with the unflipped input.
    """
    out = heatmaps.flip(-1)[:, list(flip_indices)]
    if shift:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out
