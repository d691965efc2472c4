"""Evaluation decodes each image once for all its boxes (TopDownCocoDataset's test-mode image cache), and its
predictions on the real sample's 118 detected boxes are bit-identical to decoding the image for every box."""
import torch
from torch.utils.data import DataLoader, Dataset

from repro import config
from repro.config import CPMConfig
from repro.data.coco import TopDownCocoDataset, read_image
from repro.data.transforms import crop, to_uint8_tensor
from repro.evaluation.evaluate import predict
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
