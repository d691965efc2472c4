"""Fixtures shared by the unit tests of the codec, the transforms and the COCO dataset."""
import pytest

from repro.config import AugmentConfig, CodecConfig

# The two published input sizes: input (w, h), heatmap (w, h), sigma.
SIZES = {"256x192": CodecConfig((192, 256), (24, 32), 2.0), "384x288": CodecConfig((288, 384), (36, 48), 3.0)}
# spec §2.6(c) defaults, as in params.yaml's recipe
AUG = AugmentConfig(bbox_padding=1.25, flip_prob=0.5, half_body_prob=0.3, half_body_min_total_keypoints=9,
                    half_body_min_upper_keypoints=2, half_body_min_lower_keypoints=3, half_body_padding=1.5,
                    half_body_upper_prob=0.7, shift_factor=0.16, shift_prob=0.3, scale_factor=0.5, scale_prob=1.0,
                    rotate_factor=80.0, rotate_prob=0.6)


@pytest.fixture(params=sorted(SIZES))
def codec(request) -> CodecConfig:
    """Each published size's codec config in turn."""
    return SIZES[request.param]
