"""MSRA codec: hand-computed targets, a loop reference port, decode border rules, round trips, flip-back."""
import numpy as np
import pytest
import torch

from repro.codec import decode, encode, encode_targets, flip_back, gaussian_patch, heatmap_maximum, to_image
from repro.keypoints import FLIP_INDICES, NUM_KEYPOINTS


def reference_encode(keypoints, visible, codec):
    """Per-keypoint loop written from spec §2.8 (paste a (6σ+1)² patch at the integer centre, cropped)."""
    W, H = codec.heatmap_size
    s = int(codec.sigma)
    r = 3 * s
    patch = np.exp(-((np.arange(2 * r + 1)[None, :] - r) ** 2 + (np.arange(2 * r + 1)[:, None] - r) ** 2)
                   / (2 * s * s))
    heatmaps, weights = np.zeros((len(keypoints), H, W)), np.zeros(len(keypoints))
    for k, ((x, y), v) in enumerate(zip(keypoints, visible)):
        mx, my = int(x / 8 + 0.5), int(y / 8 + 0.5)   # Python int() truncates toward zero
        if v < 0.5 or mx - r >= W or my - r >= H or mx + r + 1 < 0 or my + r + 1 < 0:
            continue
        weights[k] = 1
        for j in range(max(0, my - r), min(H, my + r + 1)):
            for i in range(max(0, mx - r), min(W, mx + r + 1)):
                heatmaps[k, j, i] = patch[j - my + r, i - mx + r]
    return heatmaps, weights


def test_encode_peak_at_rounded_centre_hand_computed(codec):
    s = codec.sigma
    hm, w = encode(np.array([[80.0, 96.0], [83.9, 99.9], [84.0, 100.0]]), np.ones(3), codec)
    assert w.tolist() == [1, 1, 1]
    assert hm.dtype == np.float32 and hm.shape == (3, codec.heatmap_size[1], codec.heatmap_size[0])
    # 80/8 + 0.5 = 10.5 -> 10; 83.9/8 + 0.5 = 10.99 -> 10; 84/8 + 0.5 = 11.0 -> 11
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (12, 10)
    assert np.unravel_index(hm[1].argmax(), hm[1].shape) == (12, 10)
    assert np.unravel_index(hm[2].argmax(), hm[2].shape) == (13, 11)
    assert hm[0, 12, 10] == 1.0
    assert hm[0, 12, 11] == pytest.approx(np.exp(-1 / (2 * s * s)), rel=1e-6)
    r = int(3 * s)
    assert hm[0, 12, 10 + r] == pytest.approx(np.exp(-4.5), rel=1e-6)   # window edge: (3σ)²/(2σ²)
    assert hm[0, 12 + r, 10 + r] == pytest.approx(np.exp(-9.0), rel=1e-5)  # square window corner
    if 10 + r + 1 < codec.heatmap_size[0]:
        assert hm[0, 12, 10 + r + 1] == 0.0
    assert (hm[0] > 0).sum() == (2 * r + 1) ** 2


def test_encode_truncates_toward_zero_and_handles_the_border(codec):
    W, H = codec.heatmap_size
    r = int(3 * codec.sigma)
    kp = np.array([[-7.0, 40.0],                 # -0.875 + 0.5 = -0.375 -> 0 (not -1)
                   [-12.0, 40.0],                # -1.5 + 0.5 = -1.0 -> -1: peak off the map, weight 1
                   [8.0 * (W + r - 1), 40.0],     # ul_x = W - 1: still touches the map
                   [8.0 * (W + r), 40.0],         # ul_x = W: outside, weight 0
                   [40.0, -8.0 * (r + 1) - 12],   # mu_y = -(r+2) -> br_y = -1 < 0: weight 0
                   [40.0, 40.0]])                # invisible
    hm, w = encode(kp, np.array([1, 1, 1, 1, 1, 0]), codec)
    assert w.tolist() == [1, 1, 1, 0, 0, 0]
    assert hm[0, 5].argmax() == 0 and hm[0, 5, 0] == 1.0
    assert hm[1, 5].argmax() == 0 and hm[1, 5, 0] == pytest.approx(np.exp(-1 / (2 * codec.sigma ** 2)), rel=1e-6)
    assert hm[2, 5, W - 1] == pytest.approx(np.exp(-4.5), rel=1e-6) and not hm[2, :, :W - 1].any()
    assert not hm[3:].any()


def test_encode_matches_the_loop_reference_over_random_keypoints(codec):
    rng = np.random.default_rng(0)
    W, H = codec.input_size
    kp = np.stack([rng.uniform(-120, W + 120, 400), rng.uniform(-120, H + 120, 400)], -1).astype(np.float32)
    vis = (rng.random(400) > 0.2).astype(np.float32)
    hm, w = encode(kp, vis, codec)
    ref_hm, ref_w = reference_encode(kp, vis, codec)
    np.testing.assert_array_equal(w, ref_w)
    np.testing.assert_allclose(hm, ref_hm, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dims", [(), (5,)])
def test_encode_targets_on_the_device_equals_encode_bit_for_bit(codec, dims):
    """Keypoints inside, on the border of and outside the crop, invisible ones, and a batch dimension."""
    rng = np.random.default_rng(3)
    W, H = codec.input_size
    shape = (*dims, 300)
    kp = np.stack([rng.uniform(-150, W + 150, shape), rng.uniform(-150, H + 150, shape)], -1).astype(np.float32)
    kp[..., :4, :] = [[-7.0, 40.0], [-12.0, 40.0], [8.0 * (codec.heatmap_size[0] + 6) - 4, 40.0], [40.0, 40.0]]
    vis = (rng.random(shape) > 0.2).astype(np.float32)
    hm, w = encode(kp, vis, codec)
    t_hm, t_w = encode_targets(torch.from_numpy(kp), torch.from_numpy(vis), codec)
    assert t_hm.dtype == torch.float32 and t_w.dtype == torch.float32
    np.testing.assert_array_equal(t_hm.numpy(), hm)
    np.testing.assert_array_equal(t_w.numpy(), w)
    assert 0 < (w == 0).sum() < w.size and (hm > 0).any()


def test_gaussian_patch_is_the_pasted_window(codec):
    r = int(3 * codec.sigma)
    patch = gaussian_patch(codec.sigma)
    hm, _ = encode(np.array([[8.0 * 12, 8.0 * 14]]), np.ones(1), codec)   # window inside the map
    np.testing.assert_array_equal(hm[0, 14 - r:14 + r + 1, 12 - r:12 + r + 1], patch)


def test_encode_vectorises_over_batch(codec):
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 150, (3, NUM_KEYPOINTS, 2))
    vis = np.ones((3, NUM_KEYPOINTS))
    hm, w = encode(kp, vis, codec)
    assert hm.shape[:2] == (3, NUM_KEYPOINTS) and w.shape == (3, NUM_KEYPOINTS)
    np.testing.assert_array_equal(hm[2], encode(kp[2], vis[2], codec)[0])


def _map(codec, values: dict) -> np.ndarray:
    W, H = codec.heatmap_size
    h = np.zeros((1, H, W), np.float32)
    for (y, x), v in values.items():
        h[0, y, x] = v
    return h


def test_decode_quarter_step_toward_the_higher_neighbour(codec):
    kp, score = decode(_map(codec, {(7, 5): 1.0, (7, 6): 0.5, (7, 4): 0.2, (6, 5): 0.3, (8, 5): 0.3}), codec)
    np.testing.assert_array_equal(kp, [[5.25 * 8, 7 * 8]])   # x toward the right, y neighbours tie -> 0
    assert score.tolist() == [1.0]
    kp, _ = decode(_map(codec, {(7, 5): 1.0, (6, 5): 0.5}), codec)
    np.testing.assert_array_equal(kp, [[5 * 8, 6.75 * 8]])


def test_decode_takes_the_first_maximum_and_flags_nonpositive_maps(codec):
    kp, _ = decode(_map(codec, {(9, 3): 0.7, (4, 8): 0.7}), codec)
    np.testing.assert_array_equal(kp, [[8 * 8, 4 * 8]])      # row-major first: (y=4, x=8)
    for value in (0.0, -0.5):
        kp, score = decode(_map(codec, {(4, 8): value}) + (value if value < 0 else 0), codec)
        np.testing.assert_array_equal(kp, [[-8.0, -8.0]])    # (-1, -1) heatmap px, times the stride
        assert score[0] == np.float32(value)


@pytest.mark.parametrize("where, refined", [
    ((5, 1), (False, True)),     # x = 1: x is not refined (1 < x fails), y is
    ((5, -1), (False, True)),    # x = W-1
    ((0, 5), (False, False)),    # y = 0: y not refined (1 < y), and x not refined (0 < y fails), 1.x rule
    ((1, 5), (True, False)),     # y = 1: x refined (0 < y), y not (1 < y)
    ((-1, 5), (True, False)),    # y = H-1: x refined (y < H), y not (y < H-1)
    ((5, 0), (False, False)),    # x = 0: x not refined, y not refined (0 < x fails)
])
def test_decode_border_rules_of_mmpose_1x(codec, where, refined):
    W, H = codec.heatmap_size
    y, x = where[0] % H, where[1] % W
    values = {(y, x): 1.0}
    for dy, dx in ((0, 1), (1, 0)):        # higher neighbour to the right and below, where they exist
        if y + dy < H and x + dx < W:
            values[(y + dy, x + dx)] = 0.5
    kp, _ = decode(_map(codec, values), codec)
    expected = [(x + 0.25 * refined[0]) * 8, (y + 0.25 * refined[1]) * 8]
    np.testing.assert_array_equal(kp[0], expected)


def test_decode_torch_and_numpy_agree_on_a_batch(codec):
    rng = np.random.default_rng(2)
    hm = rng.normal(size=(4, NUM_KEYPOINTS, codec.heatmap_size[1], codec.heatmap_size[0])).astype(np.float32)
    kp_np, s_np = decode(hm, codec)
    kp_t, s_t = decode(torch.from_numpy(hm), codec)
    assert isinstance(kp_t, torch.Tensor) and kp_np.shape == (4, NUM_KEYPOINTS, 2)
    np.testing.assert_array_equal(kp_np, kp_t.numpy())
    np.testing.assert_array_equal(s_np, hm.reshape(4, NUM_KEYPOINTS, -1).max(-1))


def test_heatmap_maximum_first_index_on_ties():
    hm = torch.zeros(1, 1, 3, 4)
    hm[0, 0, 2, 1] = hm[0, 0, 1, 3] = hm[0, 0, 2, 3] = 2.0
    locs, _ = heatmap_maximum(hm)
    assert locs[0, 0].tolist() == [3.0, 1.0]


def test_encode_decode_round_trip_within_half_a_heatmap_pixel(codec):
    """The target peak is at round-half-up(x/8) and is symmetric, so decode adds no quarter step.

    Bound: |decoded - x| <= 0.5 heatmap px = 4 input px (reached at x = 8m + 4); in image pixels that
    is 4 · s_w / W_in (s_w the aspect-fixed crop width).
    """
    rng = np.random.default_rng(3)
    W, H = codec.input_size
    kp = np.stack([rng.uniform(16, W - 17, 300), rng.uniform(16, H - 17, 300)], -1).astype(np.float32)
    hm, _ = encode(kp, np.ones(300), codec)
    dec, _ = decode(hm, codec)
    np.testing.assert_array_equal(dec, 8 * np.floor(kp / 8 + 0.5))
    assert np.abs(dec - kp).max() <= 4.0
    center, scale = np.array([[300.0, 200.0]]), np.array([[W * 1.7, H * 1.7]])
    err = np.abs(to_image(dec[None], center, scale, codec.input_size) - to_image(kp[None], center, scale,
                                                                                   codec.input_size))
    assert err.max() <= 4.0 * 1.7 + 1e-9


def test_decode_of_a_subpixel_peak_is_within_a_quarter_heatmap_pixel(codec):
    """A smooth peak at mu + d (|d| < 0.5) decodes to mu ± 0.25: error <= 0.25 heatmap px = 2 input px."""
    W, H = codec.heatmap_size
    rng = np.random.default_rng(4)
    true = np.stack([rng.uniform(2, W - 3, 200), rng.uniform(2, H - 3, 200)], -1)
    xs, ys = np.arange(W), np.arange(H)
    hm = np.exp(-((xs[None, None, :] - true[:, None, None, 0]) ** 2 + (ys[None, :, None] - true[:, None, None, 1]) ** 2)
                / (2 * codec.sigma ** 2)).astype(np.float32)
    dec, _ = decode(hm, codec)
    assert np.abs(dec / 8 - true).max() <= 0.25 + 1e-6


def test_to_image_hand_computed():
    # p / input * scale + c - scale / 2: (96, 128) is the crop centre -> c
    out = to_image(np.array([[[96.0, 128.0], [0.0, 0.0]]]), [[50.0, 60.0]], [[150.0, 200.0]], (192, 256))
    np.testing.assert_allclose(out, [[[50.0, 60.0], [-25.0, -40.0]]])


def test_to_image_is_mmpose_float64_expression_stored_in_float32():
    """mmpose evaluates kp / input_size * scale + center - 0.5 * scale with float32 keypoints, center and scale
    and an int input size (so in float64) and assigns it into its float32 keypoint array: one rounding."""
    rng = np.random.default_rng(2)
    kp = (rng.integers(0, 96, (50, NUM_KEYPOINTS, 2)) * 2.0).astype(np.float32)   # decoded: multiples of 2
    center = rng.uniform(0, 640, (50, 2)).astype(np.float32)
    scale = rng.uniform(10, 700, (50, 2)).astype(np.float32)
    out = to_image(kp, center, scale, (192, 256))
    expected = np.empty_like(kp)
    expected[...] = kp / (192, 256) * scale[:, None] + center[:, None] - 0.5 * scale[:, None]
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float64


def test_flip_back_hand_computed():
    hm = torch.arange(NUM_KEYPOINTS * 2 * 4, dtype=torch.float32).reshape(1, NUM_KEYPOINTS, 2, 4)
    out = flip_back(hm)
    # channel 1 (left_eye) comes from channel 2 (right_eye), mirrored, then shifted right keeping column 0
    row = hm[0, 2, 0].flip(0)
    assert out[0, 1, 0].tolist() == [row[0], row[0], row[1], row[2]]
    assert torch.equal(flip_back(hm, shift=False)[0, 0], hm[0, 0].flip(-1))
    assert [FLIP_INDICES[i] for i in FLIP_INDICES] == list(range(NUM_KEYPOINTS))


def test_flip_back_of_flipped_targets_matches_the_unflipped_targets(codec):
    """Targets of the mirrored crop (x' = W_in - 1 - x, left/right swapped), flipped back and shifted,
    equal the original targets for integer keypoints (columns 1.., column 0 is kept from before the shift)."""
    rng = np.random.default_rng(5)
    W, H = codec.input_size
    kp = np.stack([rng.integers(0, W, (8, NUM_KEYPOINTS)), rng.integers(0, H, (8, NUM_KEYPOINTS))], -1)
    kp = kp.astype(np.float32)
    vis = np.ones((8, NUM_KEYPOINTS))
    flipped = kp[:, list(FLIP_INDICES)].copy()
    flipped[..., 0] = W - 1 - flipped[..., 0]
    hm, _ = encode(kp, vis, codec)
    hm_f, _ = encode(flipped, vis, codec)
    back = flip_back(torch.from_numpy(hm_f)).numpy()
    np.testing.assert_array_equal(back[..., 1:], hm[..., 1:])
    inner = (kp[..., 0] >= 16) & (kp[..., 0] < W - 16)
    dec, dec_back = decode(hm, codec)[0], decode(back, codec)[0]
    np.testing.assert_array_equal(dec[inner], dec_back[inner])
