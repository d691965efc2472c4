"""Evaluation decodes each image once for all its boxes (TopDownCocoDataset's test-mode image cache), also with
loader workers (each takes one contiguous run of batches), and its predictions on the real sample's 118 detected
boxes are bit-identical to decoding the image for every box, in the same order."""
import dataclasses

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from repro import config
from repro.config import CPMConfig
from repro.data.coco import TopDownCocoDataset, read_image
from repro.data.transforms import crop, to_uint8_tensor
from repro.data.loader import WorkerRunBatches, loader_options
from repro.evaluation.evaluate import predict, predict_dataset
from repro.model import build_cpm
from tests.unit.conftest import AUG, SIZES


class DecodeEveryBox(Dataset):
    """The reference: the former test-mode item, one full decode per box."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        item = self.ds[i]   # its metadata; the pixels are made again from a fresh decode
        img = read_image(self.ds.image_path(i))
        item["img"] = to_uint8_tensor(crop(img, self.ds.geometry(i, img.shape[1]), self.ds.codec)[0])
        return item


def det_sample(root):
    return TopDownCocoDataset(root / "test_coco.json", root, SIZES["256x192"], AUG, is_training=False,
                              det_file=root / "test_coco_det_AP_H_56.json", for_device=True)


def test_each_image_is_decoded_once(coco_sample):
    ds = det_sample(coco_sample)
    assert len(ds) == 118
    for i in range(len(ds)):
        ds[i]
    assert ds.decodes == len(set(ds.instances["image_index"].tolist())) == 4


def test_predictions_equal_decoding_every_box(coco_sample):
    torch.manual_seed(0)
    model = build_cpm(CPMConfig(feat_channels=8, middle_channels=4, stem_channels=8, num_stages=2)).eval()
    eval_cfg = config.load("params.yaml", "256x192", "smoke").eval
    ds = det_sample(coco_sample)
    cached = predict(model, DataLoader(ds, batch_size=32), "cpu", eval_cfg)
    fresh = predict(model, DataLoader(DecodeEveryBox(det_sample(coco_sample)), batch_size=32), "cpu", eval_cfg)
    assert ds.decodes == 4
    assert len(cached.keypoints) == 118
    assert (cached.keypoints == fresh.keypoints).all() and (cached.keypoint_scores == fresh.keypoint_scores).all()
    assert (cached.image_ids == fresh.image_ids).all() and (cached.bboxes == fresh.bboxes).all()


class DecodesSoFar(Dataset):
    """Each item says which worker made it and how many images that worker has decoded so far."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        item = self.ds[i]
        return {"index": i, "worker": get_worker_info().id, "decodes": self.ds.decodes}


def worker_decodes(ds, batch_sampler, workers=2) -> int:
    dl = DataLoader(DecodesSoFar(ds), batch_sampler=batch_sampler, **loader_options(workers, False, 2, "cpu"))
    last = {}
    for b in dl:
        for w, d in zip(b["worker"].tolist(), b["decodes"].tolist()):
            last[w] = max(last.get(w, 0), d)
    return sum(last.values())


def test_loader_workers_decode_each_image_once(coco_sample):
    """Batches of 8 dealt in order made both workers decode every image (8 decodes of 4 images); a contiguous
    run of batches per worker decodes each image once, but for the one image that straddles the two runs."""
    images = len(set(det_sample(coco_sample).instances["image_index"].tolist()))
    dealt_in_order = [list(range(i, min(i + 8, 118))) for i in range(0, 118, 8)]
    assert worker_decodes(det_sample(coco_sample), dealt_in_order) == 2 * images
    runs = WorkerRunBatches(118, 8, 2)
    assert sorted(runs.order.tolist()) == list(range(118)) and runs.batches[0] == list(range(8))
    assert worker_decodes(det_sample(coco_sample), runs) <= images + 1


def test_predict_dataset_with_workers_keeps_the_dataset_order(coco_sample):
    torch.manual_seed(0)
    model = build_cpm(CPMConfig(feat_channels=8, middle_channels=4, stem_channels=8, num_stages=2)).eval()
    eval_cfg = dataclasses.replace(config.load("params.yaml", "256x192", "smoke").eval, batch_size=8)
    alone = predict_dataset(model, det_sample(coco_sample), eval_cfg, "cpu")
    with_workers = predict_dataset(model, det_sample(coco_sample), dataclasses.replace(eval_cfg, num_workers=2), "cpu")
    for field in ("image_ids", "keypoints", "keypoint_scores", "bboxes", "bbox_scores", "areas"):
        assert np.array_equal(getattr(alone, field), getattr(with_workers, field)), field
