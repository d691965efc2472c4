"""A seeded uniform subset of the val images (eval.val_images: N), and its bootstrap record.

    ids = select_image_ids(coco_gt.getImgIds(), n=500, seed=0)      # sorted, reproducible
    dataset, coco_gt = restrict(dataset, coco_gt, ids)               # all GT and all boxes of those images
    record = subset_record(coco_gt, results, ids, seed, tolerances)  # -> metrics file: protocol "subset"

`eval.val_images: null` (the default) evaluates every image, the published protocol, and none of this runs.
"""
import hashlib

import numpy as np
from pycocotools.coco import COCO

from repro.data.coco import DatasetError
from repro.evaluation import bootstrap

RESAMPLES = 1000        # bootstrap resamples of the images (percentile interval)
LEVEL = 0.95


def select_image_ids(image_ids, n: int, seed: int) -> list[int]:
    """`n` of `image_ids` drawn uniformly without replacement with numpy's Generator(seed), sorted.

    Raises:
        DatasetError: n is larger than the val set (names eval.val_images and both counts).
    """
    pool = np.sort(np.asarray(list(image_ids), np.int64))
    if n > len(pool):
        raise DatasetError(f"eval.val_images: {n} is more than the {len(pool)} images of the val annotations")
    return sorted(int(i) for i in np.random.default_rng(seed).choice(pool, size=n, replace=False))


def ids_digest(ids) -> str:
    """sha256 of the sorted ids written one per line: names the subset in the record and in MLflow."""
    return hashlib.sha256("".join(f"{i}\n" for i in sorted(ids)).encode()).hexdigest()


def restrict(dataset, coco_gt: COCO, ids) -> tuple:
    """The dataset's boxes and the ground truth of images `ids` only (the dataset is changed in place)."""
    keep = set(ids)
    image_ids = np.array([im["id"] for im in dataset.images], np.int64)
    rows = np.isin(image_ids[dataset.instances["image_index"]], list(keep))
    dataset.instances = {k: v[rows] for k, v in dataset.instances.items()}
    gt = dict(coco_gt.dataset)
    gt["images"] = [im for im in coco_gt.dataset["images"] if im["id"] in keep]
    gt["annotations"] = [a for a in coco_gt.dataset["annotations"] if a["image_id"] in keep]
    subset_gt = COCO()
    subset_gt.dataset = gt
    subset_gt.createIndex()
    return dataset, subset_gt


def subset_record(coco_gt: COCO, results: list[dict], ids, seed: int, tolerances: dict,
                  resamples: int = RESAMPLES) -> dict:
    """What a subset run adds to its metrics: protocol "subset", the subset (seed, n, digest) and per stat
    the percentile interval, its std and the detectable gap at tier A's tolerance for that stat."""
    table = bootstrap.image_table(coco_gt, results) if results else None
    intervals = {}
    if table is not None:
        draws = bootstrap.bootstrap(table, resamples, seed)
        lo, hi = bootstrap.percentile_interval(draws, LEVEL)
        for j, name in enumerate(bootstrap.STAT_NAMES):
            tol = tolerances["ap_abs"] if name == "AP" else tolerances["other_abs"]
            std = float(np.std(draws[:, j], ddof=1))
            intervals[name] = {"lo": float(lo[j]), "hi": float(hi[j]), "std": std,
                               "detectable_gap": bootstrap.detectable_gap(std, tol, LEVEL)}
    return {"protocol": "subset",
            "subset": {"n": len(ids), "seed": seed, "ids_sha256": ids_digest(ids)},
            "bootstrap": {"unit": "image", "method": "percentile", "level": LEVEL, "resamples": resamples,
                          "seed": seed, "power": 0.8, "stats": intervals}}
