"""The loader (repro/data/loader.py): uint8 crops normalised and targets encoded on the device bit-identically
to the worker-side float path on the real COCO sample, persistent workers that follow set_epoch, one-thread
workers that reuse freed memory, the "auto" worker count, the /dev/shm check, and the config items (num_workers
auto, reduced_decode labels the run open)."""
import dataclasses
import logging
import platform
import resource

import cv2
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from repro import config, recipe
from repro.data import loader
from repro.data.coco import TopDownCocoDataset
from repro.data.transforms import normalize_images
from repro.engine import train
from tests.unit.conftest import AUG


def sample(root, codec, **kw):
    return TopDownCocoDataset(root / "test_coco.json", root, codec, AUG, **kw)


@pytest.mark.parametrize("training", [True, False])
def test_device_items_finished_on_the_device_equal_the_float_path(coco_sample, codec, training):
    """uint8 crops normalised, and crop keypoints encoded, where the training step runs: bit-identical."""
    det = None if training else coco_sample / "test_coco_det_AP_H_56.json"
    floats = sample(coco_sample, codec, is_training=training, det_file=det, seed=5)
    device = sample(coco_sample, codec, is_training=training, det_file=det, seed=5, for_device=True)
    indices = range(len(floats)) if training else range(0, len(floats), 9)   # 12 train items, 14 of 118 boxes
    for epoch in (0, 1, 2) if training else (0,):   # other flips, half bodies and rotations each epoch
        floats.set_epoch(epoch)
        device.set_epoch(epoch)
        a = default_collate([floats[i] for i in indices])
        b = default_collate([device[i] for i in indices])
        assert b["img"].dtype == torch.uint8 and b["img"].shape == a["img"].shape
        kept = b["img"].clone()
        img = normalize_images(b["img"])
        assert img.dtype == torch.float32 and torch.equal(a["img"], img)   # bit-identical, not close
        assert torch.equal(b["img"], kept)   # normalised in a new buffer: the batch itself is left as it came
        if training:
            assert "heatmaps" not in b   # 4·K·h·w bytes less per item in shared memory
            heatmaps, weights = train.training_targets(b, codec, torch.device("cpu"))
            assert torch.equal(heatmaps, a["heatmaps"]) and torch.equal(weights, a["weights"])
            assert (weights == 0).any() and (weights == 1).any()


def test_normalize_images_leaves_float_images_alone():
    x = torch.randn(2, 3, 8, 6)
    assert normalize_images(x) is x


class ThreadCounts(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return torch.tensor([cv2.getNumThreads(), torch.get_num_threads()])


def test_workers_run_opencv_and_torch_on_one_thread():
    dl = DataLoader(ThreadCounts(), batch_size=1, **loader.loader_options(1, False, 2, "cpu"))
    assert [b.tolist() for b in dl] == [[[1, 1]], [[1, 1]]]


class DecodeFaults(Dataset):
    """Page faults per training item of the real sample, counted inside the worker that makes them."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return 1

    def __getitem__(self, _):
        for i in range(len(self.ds)):   # the first pass grows the heap
            self.ds[i]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            for i in range(len(self.ds)):
                self.ds[i]
        return torch.tensor((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / (3 * len(self.ds)))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only (not this C library)")
def test_workers_reuse_freed_image_memory(coco_sample):
    """glibc's default hands each decoded image's pages back, so every item faulted in ~350 fresh pages (1.4x
    slower). Counted in a worker: the setting is the worker's own, and bench_gpu's old loader has none."""
    from tests.unit.conftest import SIZES
    ds = sample(coco_sample, SIZES["256x192"], is_training=True, for_device=True)
    dl = DataLoader(DecodeFaults(ds), batch_size=None, **loader.loader_options(1, False, 2, "cpu"))
    faults = float(next(iter(dl)))
    assert faults < 20, f"{faults:.0f} page faults per item"


def test_persistent_workers_follow_set_epoch(coco_sample):
    from tests.unit.conftest import SIZES
    ds = sample(coco_sample, SIZES["256x192"], is_training=True, seed=1, for_device=True)
    ref = sample(coco_sample, SIZES["256x192"], is_training=True, seed=1, for_device=True)
    dl = DataLoader(ds, batch_size=4, **loader.loader_options(2, True, 2, "cpu"))
    seen = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        ref.set_epoch(epoch)
        got = torch.cat([b["img"] for b in dl])
        assert torch.equal(got, torch.stack([ref[i]["img"] for i in range(len(ref))]))
        seen.append(got)
    assert dl._iterator is not None and dl._iterator._persistent_workers   # the same workers served both
    assert not torch.equal(seen[0], seen[1])   # epoch 1 drew other augmentations


@pytest.mark.parametrize("cores, local, expected", [(16, 8, 1), (128, 8, 15), (256, 2, 16), (2, 1, 1), (4, 1, 3)])
def test_auto_workers_share_the_cores_between_local_processes(cores, local, expected):
    assert loader.resolve_num_workers("auto", local, cores=cores) == expected
    assert loader.resolve_num_workers(3, local, cores=cores) == 3


def test_auto_workers_count_the_affinity_mask():
    assert loader.available_cores() == len(__import__("os").sched_getaffinity(0))


@pytest.mark.parametrize("env, expected", [({"LOCAL_WORLD_SIZE": "8"}, 8), ({"SLURM_NTASKS_PER_NODE": "4"}, 4), ({}, 1)])
def test_local_world_size_from_torchrun_or_slurm(monkeypatch, env, expected):
    for name in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert loader.local_world_size() == expected


def test_shm_check_refuses_a_prefetch_that_does_not_fit(codec, caplog):
    item = loader.sample_bytes(codec, training=True)
    w, h = codec.input_size
    assert item == 3 * w * h + 4 * 17 * 3   # uint8 crop, float32 (x, y, visible) per keypoint
    need = 10 * 2 * 64 * item
    with pytest.raises(loader.LoaderError, match=r"train.num_workers/train.prefetch_factor: .*10 workers x 2 "
                                                 r"prefetch x 64 batch.*64 MiB free"):
        loader.check_shm(10, 2, 64, item, free_bytes=64 * 2**20)   # Docker's default /dev/shm
    with caplog.at_level(logging.WARNING):
        assert loader.check_shm(10, 2, 64, item, free_bytes=need + 1) == need
    assert "over half of shared memory" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        loader.check_shm(10, 2, 64, item, free_bytes=4 * need)
    assert not caplog.text
    assert loader.check_shm(0, 2, 64, item, free_bytes=0) == 0   # no workers: nothing crosses processes


def test_options_without_workers_leave_out_persistence_and_prefetch():
    assert "prefetch_factor" not in loader.loader_options(0, True, 4, "cuda")
    opts = loader.loader_options(3, True, 4, "cuda")
    assert opts["persistent_workers"] and opts["prefetch_factor"] == 4 and opts["pin_memory"]
    assert not loader.loader_options(3, True, 4, "cpu")["pin_memory"]


def test_full_profile_sizes_workers_automatically():
    cfg = config.load("params.yaml", "256x192", "full")
    assert cfg.train.num_workers == "auto" and cfg.eval.num_workers == "auto"
    assert recipe.recipe_diff(cfg, 8) == []


@pytest.mark.parametrize("value, message", [("many", r"train.num_workers: 'many' must be an int >= 0 or \"auto\""),
                                            (True, r"train.num_workers: expected int or str, got True"),
                                            (-2, r"train.num_workers: -2 must be")])
def test_bad_num_workers_is_named(value, message):
    params = config.read_params("params.yaml")
    params["profiles"]["smoke"]["train"]["num_workers"] = value
    with pytest.raises(config.ConfigError, match=message):
        config.resolve(params, "256x192", "smoke")


def test_reduced_decode_labels_the_run_open():
    cfg = config.load("params.yaml", "256x192", "full")
    fast = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, reduced_decode=True))
    assert recipe.recipe_diff(fast, 8) == [{"name": "train.reduced_decode", "published": False, "used": True}]
