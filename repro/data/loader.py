"""How the data loaders are sized and their workers set up (training and evaluation alike).

    workers = resolve_num_workers(cfg.train.num_workers, local_world_size)      # "auto" -> a count
    check_shm(workers, cfg.train.prefetch_factor, batch, sample_bytes(cfg.codec, training=True))
    DataLoader(ds, ..., **loader_options(workers, persistent, prefetch, device.type))

Crops leave the workers as uint8 (3·H·W bytes instead of 12·H·W) and are normalised on the device
(repro.data.transforms.normalize_images); training targets leave as crop keypoints and are drawn there
(repro.codec.encode_targets). Each worker runs OpenCV and torch on one thread: N workers per
process already use the cores, and OpenCV's default (one thread per core, in every worker) oversubscribes them.
Workers also keep freed memory on their heap (`keep_freed_memory`).
"""
import ctypes
import logging
import os
import random
import shutil

import cv2
import numpy as np
import torch

from repro.config import CodecConfig
from repro.errors import ReproError
from repro.keypoints import NUM_KEYPOINTS

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 16   # beyond this a worker's share of the prefetch memory outgrows its gain
SHM_PATH = "/dev/shm"   # where torch's worker processes put the tensors they hand over
# glibc mallopt parameters (malloc.h) and the values a worker sets: buffers up to an image of 16 MiB (2560x2048
# RGB) come from the heap, and up to 32 MiB of freed heap stays mapped.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES = 16 << 20, 32 << 20


class LoaderError(ReproError, ValueError):
    """A loader configuration this machine cannot run (e.g. the prefetch does not fit in /dev/shm)."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: what a SLURM or cgroup allocation leaves)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # macOS
        return os.cpu_count() or 1


def local_world_size() -> int:
    """The training processes on this node: torchrun's LOCAL_WORLD_SIZE, else SLURM's tasks on this node, else 1."""
    for name in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def resolve_num_workers(value, local_processes: int, cores: int | None = None, cap: int = MAX_AUTO_WORKERS) -> int:
    """A loader's worker count: `value` itself, or for "auto" the cores each local process may use, less one
    for the process itself (it runs the training step and collates), at least 1 and at most `cap`."""
    if value != "auto":
        return int(value)
    cores = available_cores() if cores is None else cores
    return max(1, min(cap, cores // max(1, local_processes) - 1))


def keep_freed_memory() -> bool:
    """Keep this process's freed image buffers mapped instead of handing them back to the kernel (glibc only;
    False elsewhere, and nothing changes).

    Why: glibc's default returns the top of the heap to the kernel once over ~2x the largest buffer freed so
    far, so every decoded image (0.9 MB for COCO) and its flipped copy land on fresh pages: about 350 page
    faults per training item, which made an item 1.4x slower (3.6 ms against 2.6 ms on the real sample,
    measured in one process on an AMD EPYC). The values in the buffers, and so every crop, are the same.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):   # not glibc (musl, macOS)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return (bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
            and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)))


def worker_init(worker_id: int) -> None:
    """Seed numpy and random from torch's per-worker seed, run OpenCV on one thread (torch's worker loop
    already sets torch to one) and keep freed memory mapped."""
    seed = torch.initial_seed() % 2**32   # torch seeds each worker from the loader's generator
    np.random.seed(seed)
    random.seed(seed)
    cv2.setNumThreads(1)   # a no-op after a fork from loader_options' process; needed under spawn
    keep_freed_memory()


def loader_options(num_workers: int, persistent: bool, prefetch_factor: int, device_type: str) -> dict:
    """DataLoader keyword arguments: pinned memory on CUDA only; persistence and prefetch only with workers
    (DataLoader refuses them without). With workers, this process's OpenCV is set to one thread too."""
    options = {"num_workers": num_workers, "pin_memory": device_type == "cuda", "worker_init_fn": worker_init}
    if num_workers > 0:
        # This process hands decoding to the workers; its OpenCV pool must be gone before they fork: a forked
        # worker that changes the thread count waits for pool threads it does not have (hangs, measured).
        cv2.setNumThreads(1)
        options.update(persistent_workers=persistent, prefetch_factor=prefetch_factor)
    return options


class WorkerRunBatches(torch.utils.data.Sampler):
    """The sequential batches of `batch_size` over n items, yielded so that each of `workers` loader workers gets
    one contiguous run of them: the loader hands its i-th batch to worker i % workers, and runs differ in length
    by at most one batch, longest first. For evaluation: a test-mode dataset keeps the last decoded image and an
    image's boxes are consecutive, so each image is decoded once, but for the at most workers - 1 that straddle
    two runs (dealt in order, every worker decoded nearly every image that spans two batches). The batches
    themselves are today's, box for box; `order` (positions in yield order) puts the rows back.
    """

    def __init__(self, n: int, batch_size: int, workers: int):
        batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
        w = max(1, workers)
        q, extra = divmod(len(batches), w)
        lengths = [q + (k < extra) for k in range(w)]
        starts = np.cumsum([0] + lengths[:-1])
        runs = [batches[start:start + length] for start, length in zip(starts, lengths)]
        self.batches = [run[j] for j in range(lengths[0]) for run in runs if j < len(run)]
        self.order = np.array([i for batch in self.batches for i in batch], np.int64)

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def sample_bytes(codec: CodecConfig, training: bool) -> int:
    """Bytes one for_device item puts in shared memory: the uint8 crop, plus in training the float32 crop
    keypoints and visibility (the heatmaps are made on the device)."""
    w, h = codec.input_size
    return 3 * w * h + (4 * NUM_KEYPOINTS * 3 if training else 0)


def check_shm(num_workers: int, prefetch_factor: int, batch: int, bytes_per_sample: int, key: str = "train",
              free_bytes: int | None = None) -> int:
    """Fail before training when /dev/shm cannot hold what the workers prefetch; warn above half of it.

    Returns the bytes needed (workers x prefetch x batch x bytes per sample).

    Raises:
        LoaderError: naming the keys to lower and the free space (Docker's default /dev/shm is 64 MB).
    """
    need = num_workers * prefetch_factor * batch * bytes_per_sample
    if need == 0:
        return 0
    if free_bytes is None:
        try:
            free_bytes = shutil.disk_usage(SHM_PATH).free
        except OSError:   # no /dev/shm (not Linux): torch uses files elsewhere
            return need
    what = (f"{num_workers} workers x {prefetch_factor} prefetch x {batch} batch x {bytes_per_sample} B = "
            f"{need / 2**20:.0f} MiB, {SHM_PATH} has {free_bytes / 2**20:.0f} MiB free")
    if need > free_bytes:
        raise LoaderError(f"{key}.num_workers/{key}.prefetch_factor: the loader's prefetch does not fit in shared "
                          f"memory ({what}); lower them, or enlarge {SHM_PATH} (docker run --shm-size=8g)")
    if 2 * need > free_bytes:
        log.warning("%s loader: the prefetch takes over half of shared memory (%s)", key, what)
    return need
