"""The data layer: COCO-layout data sets on disk and the items the model reads.

coco (top-down person dataset), transforms (the one affine, flips, augmentation), synthetic (the smoke
profile's generated people), download (verified COCO and published-checkpoint downloads). Imports only the
flat core (repro.config, repro.codec, repro.keypoints, ...).
"""
