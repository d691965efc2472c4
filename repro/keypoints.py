"""COCO person keypoint metadata: names, left/right pairs, OKS sigmas.

Flip indices are built from the names, so train-time flipping and test-time flip-back share one source.
"""
import numpy as np

KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# configs/_base_/datasets/coco.py, in KEYPOINT_NAMES order (spec §4.4).
OKS_SIGMAS = np.array([0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
                       0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089])

# Half-body split (spec §2.6): ids 0-10 are the upper body, 11-16 the lower body.
UPPER_BODY_IDS = tuple(range(0, 11))
LOWER_BODY_IDS = tuple(range(11, 17))

# COCO's 1-based limb list from person_keypoints_*.json "skeleton", stored 0-based.
SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
            (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))


def _mirror(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[len("left_"):]
    if name.startswith("right_"):
        return "left_" + name[len("right_"):]
    return name


FLIP_INDICES = tuple(KEYPOINT_NAMES.index(_mirror(n)) for n in KEYPOINT_NAMES)
