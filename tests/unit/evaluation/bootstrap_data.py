"""Synthetic val sets for the bootstrap tests: ground truth from the smoke generator's scenes, predictions
made by perturbing each ground-truth person (no network), with a per-image difficulty so that the boxes of
one image are correlated, as they are on COCO (crowding, scale, detector quality)."""
import numpy as np
from pycocotools.coco import COCO

from repro.data import synthetic

SPEC = synthetic.SceneSpec(max_people=6)   # crowded images: their boxes share the image's difficulty


def ground_truth(n_images: int, seed: int = 0) -> dict:
    """A COCO keypoint annotation dict of `n_images` smoke-generator scenes."""
    images, anns = [], []
    for i in range(n_images):
        img, people = synthetic._render(np.random.default_rng([seed, i]), SPEC)
        images.append(dict(id=i + 1, file_name=f"{i + 1:012d}.jpg", width=img.shape[1], height=img.shape[0]))
        for p in people:
            if not np.any(p["v"] > 0):
                continue
            kps = np.concatenate([p["kp"], p["v"][:, None]], 1).ravel().tolist()
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=1, iscrowd=0, area=p["area"],
                             bbox=[float(b) for b in p["bbox"]], num_keypoints=int(np.sum(p["v"] > 0)),
                             keypoints=kps))
    return dict(images=images, annotations=anns, categories=synthetic._categories())


def as_coco(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def predictions(gt: dict, seed: int, extra_noise: float = 0.0) -> list[dict]:
    """One result per GT person (some missed) plus false positives; the keypoint error of an image is
    drawn once per image (log-normal), so images differ in difficulty. `extra_noise` (fraction of the
    person's size) is a planted regression added to every keypoint."""
    rng = np.random.default_rng(seed)
    by_image = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    results = []
    for image in gt["images"]:
        img_rng = np.random.default_rng([seed, image["id"]])
        difficulty = 0.04 * np.exp(img_rng.normal(0, 1.2))       # the image's keypoint error, of the size
        for a in by_image.get(image["id"], []):
            if img_rng.random() < 0.05:
                continue
            kp = np.asarray(a["keypoints"], float).reshape(17, 3)[:, :2]
            size = np.sqrt(max(a["area"], 1.0))
            kp = kp + img_rng.normal(0, size * (difficulty + extra_noise), kp.shape)
            score = float(np.clip(0.9 - 2 * difficulty + img_rng.normal(0, 0.1), 0.01, 1))
            results.append(_result(image["id"], kp, score, img_rng))
        for _ in range(int(img_rng.poisson(25 * difficulty))):            # false positives near a random place
            kp = img_rng.uniform(0, 1, (17, 2)) * (image["width"], image["height"])
            results.append(_result(image["id"], kp, float(img_rng.uniform(0.05, 0.6)), img_rng))
    return results


def _result(image_id, kp, score, rng) -> dict:
    kps = np.concatenate([kp, rng.uniform(0.3, 1.0, (17, 1))], 1).ravel().tolist()
    return dict(image_id=int(image_id), category_id=1, keypoints=kps, score=score)
