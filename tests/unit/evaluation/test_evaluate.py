"""The evaluation protocol (repro/evaluation/evaluate.py): COCO keypoint AP on the mmpose COCO sample, flip test,
AMP / channels_last options, and evaluate_checkpoint end to end with its bad-input errors."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from repro import config
from repro.checkpoint import CheckpointError, load_checkpoint
from repro.config import DataConfig
from repro.data.coco import DatasetError
from repro.evaluation import evaluate
from repro.evaluation.evaluate import STAT_NAMES, coco_keypoint_eval, load_ground_truth, predict, score
from repro.evaluation.postprocess import Predictions
from repro.model import CPMConfig, build_cpm
from repro.keypoints import FLIP_INDICES
from tests.conftest import REPO

K = 17
TINY = {"feat_channels": 8, "middle_channels": 4, "stem_channels": 16, "num_stages": 2}   # a CPU-seconds CPM


@pytest.fixture
def smoke_cfg():
    return config.load(REPO / "params.yaml", "256x192", profile="smoke")


def gt_predictions(coco_sample) -> Predictions:
    """The sample's valid GT people as predictions: keypoints exact, every score 1."""
    data = json.loads((coco_sample / "test_coco.json").read_text())
    anns = [a for a in data["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]]
    kps = np.array([a["keypoints"] for a in anns], np.float64).reshape(-1, K, 3)
    boxes = np.array([a["bbox"] for a in anns], np.float64)
    # Unlabelled GT keypoints sit at (0, 0) in every person; put them at the box centre instead so that
    # two people do not look alike to OKS-NMS through their missing joints.
    centre = boxes[:, None, :2] + boxes[:, None, 2:] / 2
    xy = np.where(kps[..., 2:] > 0, kps[..., :2], centre)
    return Predictions(image_ids=np.array([a["image_id"] for a in anns], np.int64), keypoints=xy,
                       keypoint_scores=np.ones((len(anns), K)), bboxes=boxes, bbox_scores=np.ones(len(anns)),
                       areas=boxes[:, 2] * boxes[:, 3] * 1.25 ** 2)


def test_gt_as_predictions_gives_perfect_ap(coco_sample, smoke_cfg):
    preds = gt_predictions(coco_sample)
    results, metrics = score(preds, load_ground_truth(coco_sample / "test_coco.json"), smoke_cfg.eval)
    assert len(preds) == 12 and len(results) == 12              # NMS keeps all 12 distinct people
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AR"] == pytest.approx(1.0)
    assert metrics["AP50"] == pytest.approx(1.0) and metrics["AP75"] == pytest.approx(1.0)
    assert metrics["num_images"] == 4 and metrics["num_instances"] == 12 and metrics["num_boxes"] == 12
    assert list(metrics)[:10] == list(STAT_NAMES)


def test_worse_predictions_give_lower_ap(coco_sample, smoke_cfg):
    gt = load_ground_truth(coco_sample / "test_coco.json")
    perfect = score(gt_predictions(coco_sample), gt, smoke_cfg.eval)[1]
    noisy = gt_predictions(coco_sample)
    noisy.keypoints += np.random.default_rng(0).normal(0, 8.0, noisy.keypoints.shape)
    noisy_metrics = score(noisy, gt, smoke_cfg.eval)[1]
    assert noisy_metrics["AP"] < perfect["AP"] - 0.05
    dropped = gt_predictions(coco_sample)
    half = np.arange(len(dropped)) % 2 == 0
    dropped = Predictions(**{f.name: getattr(dropped, f.name)[half] for f in dataclasses.fields(dropped)})
    dropped_metrics = score(dropped, gt, smoke_cfg.eval)[1]
    assert dropped_metrics["AR"] == pytest.approx(0.5, abs=0.01)
    assert dropped_metrics["AP"] < 0.6 and dropped_metrics["num_instances"] == 6


def test_empty_predictions_give_zeros_with_counts(coco_sample):
    metrics = coco_keypoint_eval(load_ground_truth(coco_sample / "test_coco.json"), [])
    assert {k: metrics[k] for k in STAT_NAMES} == dict.fromkeys(STAT_NAMES, 0.0)
    assert metrics["num_images"] == 4 and metrics["num_instances"] == 0


def test_predictions_for_unknown_images_are_an_error(coco_sample):
    result = {"image_id": 999, "category_id": 1, "keypoints": [1.0] * 51, "score": 1.0}
    with pytest.raises(ValueError, match=r"not in the annotations.*999"):
        coco_keypoint_eval(load_ground_truth(coco_sample / "test_coco.json"), [result])


class MirrorEquivariant(nn.Module):
    """A fixed model for which the flip test is exact: flip_back(model(x.flip(-1))) == model(x).

    Heatmap column j reads input columns 8j-1 and 8j (their mean): flipping the input sends that pair to
    columns W_in-8j and W_in-1-8j, which flip back to heatmap column W_hm-j, and the one-column shift
    brings it home to j. This is what 'symmetric' has to mean under the shift: the 7/8-px offset a
    stride-8 network gets from the flip is exactly undone only for a read-out centred between 8j-1 and 8j.
    Each channel weights columns by a bump at c_k with c_mirror(k) = W_hm - c_k, so left and right
    channels differ and the channel swap matters. Stage 1 is a decoy (a different peak); only the last
    stage may be decoded.
    """

    def __init__(self, heatmap_w: int = 6, heatmap_h: int = 8):
        super().__init__()
        rng = np.random.default_rng(0)
        centres = np.full(K, heatmap_w / 2)
        rows = np.zeros(K)
        for k, m in enumerate(FLIP_INDICES):
            if k < m:
                centres[k], centres[m] = (c := rng.uniform(1.5, heatmap_w / 2)), heatmap_w - c
                rows[k] = rows[m] = rng.uniform(1, heatmap_h - 2)
        j, i = np.arange(heatmap_w), np.arange(heatmap_h)
        weight = np.exp(-(j - centres[:, None]) ** 2)[:, None, :] * np.exp(-(i - rows[:, None]) ** 2 / 4)[:, :, None]
        self.register_buffer("weight", torch.tensor(weight, dtype=torch.float32))   # (K, h, w)

    def forward(self, x):
        padded = nn.functional.pad(x[:, :1], (1, 0))                      # padded column p+1 = column p
        w = self.weight.shape[-1]
        read = (padded[:, :, ::8, 0::8][..., :w] + padded[:, :, ::8, 1::8][..., :w]) / 2
        heatmaps = read * self.weight                                      # (N, K, h, w)
        return [heatmaps.flip(-1), heatmaps]


def flip_batch(n=4, seed=0):
    x = torch.rand(n, 3, 64, 48, generator=torch.Generator().manual_seed(seed)) + 0.5
    return {"img": x, "center": torch.tensor([[24.0, 32.0]] * n), "scale": torch.tensor([[48.0, 64.0]] * n),
            "bbox": torch.zeros(n, 4), "bbox_score": torch.ones(n, dtype=torch.float64),
            "image_id": torch.arange(n)}


def test_flip_test_is_exact_for_a_mirror_equivariant_model(smoke_cfg):
    model, batch = MirrorEquivariant(), flip_batch()
    assert not torch.equal(model(batch["img"])[-1], model(batch["img"].flip(-1))[-1])   # flips do matter
    plain = predict(model, [batch], "cpu", dataclasses.replace(smoke_cfg.eval, flip_test=False))
    flipped = predict(model, [batch], "cpu", smoke_cfg.eval)
    np.testing.assert_array_equal(flipped.keypoints, plain.keypoints)
    np.testing.assert_array_equal(flipped.keypoint_scores, plain.keypoint_scores)
    # The same check fails without the shift, so it does test the flip-back.
    no_shift = predict(model, [batch], "cpu", dataclasses.replace(smoke_cfg.eval, shift_heatmap=False))
    assert not np.array_equal(no_shift.keypoints, plain.keypoints)


def test_predict_decodes_the_last_stage_to_image_coordinates(smoke_cfg):
    model, batch = MirrorEquivariant(), flip_batch(n=2)
    batch["center"] = torch.tensor([[100.0, 50.0], [0.0, 0.0]])
    batch["scale"] = torch.tensor([[96.0, 128.0], [48.0, 64.0]])        # 2x and 1x the input size
    preds = predict(model, [batch], "cpu", dataclasses.replace(smoke_cfg.eval, flip_test=False))
    hm = model(batch["img"])[-1]
    flat = hm.reshape(2, K, -1).argmax(-1)
    x_hm, y_hm = (flat % hm.shape[-1]).numpy(), (flat // hm.shape[-1]).numpy()
    x0 = (x_hm * 8 / 48 * 96 + 100 - 48)[0]                              # before the quarter-pixel step
    assert np.all(np.abs(preds.keypoints[0, :, 0] - x0) <= 0.25 * 8 * 2 + 1e-9)
    y1 = y_hm[1] * 8 - 32.0
    assert np.all(np.abs(preds.keypoints[1, :, 1] - y1) <= 0.25 * 8 + 1e-9)
    np.testing.assert_allclose(preds.areas, [96 * 128, 48 * 64])
    np.testing.assert_allclose(preds.keypoint_scores, hm.amax((-2, -1)).numpy(), rtol=1e-6)


def narrow_cpm(num_keypoints: int = K):
    torch.manual_seed(0)
    model = build_cpm(CPMConfig(num_keypoints=num_keypoints, **TINY))
    for m in model.modules():          # larger weights than the published init, so heatmaps have structure
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
    return model.eval()


@pytest.mark.parametrize("option", [{"channels_last": True}, {"amp": "bf16"}])
def test_channels_last_and_bf16_match_fp32(smoke_cfg, option):
    model, x = narrow_cpm(), torch.randn(2, 3, 64, 48)
    fp32 = evaluate._heatmaps(model, x, smoke_cfg.eval)
    other = evaluate._heatmaps(model, x, dataclasses.replace(smoke_cfg.eval, **option))
    assert other.dtype == torch.float32 and other.shape == fp32.shape == (2, 17, 8, 6)
    tol = 1e-4 if "channels_last" in option else 0.05
    assert (other - fp32).abs().max() <= tol * fp32.abs().max()


# ---------------------------------------------------------------- evaluate_checkpoint, end to end

def coco_layout(coco_sample, root, det_file=None):
    """The sample in the COCO layout DataConfig expects (symlinks), optionally with another det file."""
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "person_keypoints_val2017.json").symlink_to(coco_sample / "test_coco.json")
    (root / "val2017").mkdir()
    for jpg in coco_sample.glob("*.jpg"):
        (root / "val2017" / jpg.name).symlink_to(jpg)
    (root / "person_detection_results").mkdir()
    det = root / "person_detection_results" / "COCO_val2017_detections_AP_H_56_person.json"
    if det_file is None:
        det.symlink_to(coco_sample / "test_coco_det_AP_H_56.json")
    else:
        det.write_text(det_file)
    return root


def sample_cfg(smoke_cfg, root):
    """The smoke config reading the sample, with a narrower CPM and 64x48 crops (CPU seconds, not minutes)."""
    return dataclasses.replace(smoke_cfg, data=DataConfig(source="coco", root=str(root)),
                               model=dataclasses.replace(smoke_cfg.model, **TINY),
                               codec=dataclasses.replace(smoke_cfg.codec, input_size=(48, 64), heatmap_size=(6, 8)))


def save_published_format(model, path):
    """The layout of mmpose's published files: {"state_dict": {"backbone.<key>": tensor}, "meta": {}}."""
    torch.save({"state_dict": {"backbone." + k: v for k, v in model.state_dict().items()}, "meta": {}}, path)
    return path


@pytest.mark.parametrize("use_gt_bbox,boxes", [(False, 118), (True, 12)])
def test_evaluate_checkpoint_end_to_end(coco_sample, smoke_cfg, tmp_path, use_gt_bbox, boxes):
    cfg = sample_cfg(smoke_cfg, coco_layout(coco_sample, tmp_path / "coco"))
    ckpt = save_published_format(build_cpm(cfg.model), tmp_path / "narrow.pth")
    metrics = evaluate.evaluate_checkpoint(cfg, ckpt, tmp_path / "out", use_gt_bbox=use_gt_bbox)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert all(0.0 <= written[name] <= 1.0 or written[name] == -1.0 for name in STAT_NAMES)
    assert {k: written[k] for k in metrics} == metrics
    assert metrics["num_boxes"] == boxes and metrics["num_images"] == 4
    assert metrics["num_instances"] == len(predictions) and 0 < len(predictions) <= boxes
    assert {p["image_id"] for p in predictions} <= {785, 40083, 196141, 197388}
    settings = written["settings"]
    assert settings["flip_test"] is True and settings["shift_heatmap"] is True and settings["amp"] == "none"
    assert settings["boxes"] == ("gt" if use_gt_bbox else str(cfg.data.det_file))
    assert not list((tmp_path / "out").glob(".*.tmp"))                  # temp files renamed away


DETS = [{"image_id": 785, "category_id": 1, "bbox": [280.0, 44.0, 218.0, 346.0], "score": 0.99}]


@pytest.mark.parametrize("dets,message", [
    ([], r"no person boxes"),
    ([{**DETS[0], "image_id": 12345}], r"entry 0: image_id 12345 is not in the annotation file"),
    ([DETS[0], {**DETS[0], "score": math.nan}], r"entry 1: non-finite score"),
])
def test_bad_detection_files_are_errors_naming_the_entry(coco_sample, smoke_cfg, tmp_path, dets, message):
    root = coco_layout(coco_sample, tmp_path / "coco", det_file=json.dumps(dets))
    cfg = sample_cfg(smoke_cfg, root)
    ckpt = save_published_format(build_cpm(cfg.model), tmp_path / "narrow.pth")
    with pytest.raises(DatasetError, match=message) as err:
        evaluate.evaluate_checkpoint(cfg, ckpt, tmp_path / "out")
    assert "COCO_val2017_detections_AP_H_56_person.json" in str(err.value)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_checkpoint_for_another_keypoint_count_is_an_error_naming_the_key(coco_sample, smoke_cfg, tmp_path):
    cfg = sample_cfg(smoke_cfg, coco_layout(coco_sample, tmp_path / "coco"))
    other = build_cpm(dataclasses.replace(cfg.model, num_keypoints=16))
    ckpt = save_published_format(other, tmp_path / "k16.pth")
    with pytest.raises(CheckpointError, match=r"backbone\.stem\.9\.conv\.weight file \[16, .*\] model \[17, "):
        evaluate.evaluate_checkpoint(cfg, ckpt, tmp_path / "out")


def test_validate_single_process_matches_evaluate_checkpoint(coco_sample, smoke_cfg, tmp_path):
    cfg = sample_cfg(smoke_cfg, coco_layout(coco_sample, tmp_path / "coco"))
    model = build_cpm(cfg.model)
    ckpt = save_published_format(model, tmp_path / "narrow.pth")
    expected = evaluate.evaluate_checkpoint(cfg, ckpt, tmp_path / "out", use_gt_bbox=True)
    dataset = evaluate.build_test_dataset(cfg, use_gt_bbox=True)
    model.train()
    assert evaluate.validate(model, dataset, cfg.eval, "cpu") == expected
    assert model.training                                              # the trainer's mode is restored


def test_the_smoke_eval_batch_gives_the_published_batchs_predictions_bit_for_bit(coco_sample, smoke_cfg, tmp_path):
    # params.yaml's smoke eval.batch_size is smaller than the published 32 because it is faster on a CPU; that
    # is only allowed while boxes stay independent: the committed smoke reference network at its real input size
    # on 16 of the sample's detected boxes.
    cfg = dataclasses.replace(smoke_cfg, data=DataConfig(source="coco", root=str(coco_layout(coco_sample, tmp_path))))
    model = build_cpm(cfg.model)
    load_checkpoint(REPO / "reports/reference/smoke_256x192.pth", model)
    boxes = torch.utils.data.Subset(evaluate.build_test_dataset(cfg, use_gt_bbox=False), range(16))
    published = config.load(REPO / "params.yaml", "256x192", profile="full").eval.batch_size
    assert cfg.eval.batch_size < published == 32
    runs = [evaluate.predict_dataset(model, boxes, eval_cfg, "cpu")
            for eval_cfg in (cfg.eval, dataclasses.replace(cfg.eval, batch_size=published))]
    for field in ("keypoints", "keypoint_scores", "bboxes", "bbox_scores", "areas"):
        assert np.array_equal(getattr(runs[0], field), getattr(runs[1], field)), field


def _validate_worker(rank, world, init_file, cfg, ckpt, out_dir):
    """One rank of the distributed validate test (module level so that spawn can pickle it)."""
    import torch.distributed as dist

    from repro.checkpoint import load_checkpoint
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = build_cpm(cfg.model)
        load_checkpoint(ckpt, model)
        dataset = evaluate.build_test_dataset(cfg, use_gt_bbox=True)
        metrics = evaluate.validate(nn.parallel.DistributedDataParallel(model), dataset, cfg.eval, "cpu")
        (out_dir / f"rank{rank}.json").write_text(json.dumps(metrics))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_validate_distributed_shards_gathers_and_broadcasts(coco_sample, smoke_cfg, tmp_path):
    cfg = sample_cfg(smoke_cfg, coco_layout(coco_sample, tmp_path / "coco"))
    ckpt = save_published_format(build_cpm(cfg.model), tmp_path / "narrow.pth")
    expected = evaluate.evaluate_checkpoint(cfg, ckpt, tmp_path / "out", use_gt_bbox=True)
    torch.multiprocessing.spawn(_validate_worker, args=(3, tmp_path / "init", cfg, ckpt, tmp_path), nprocs=3)
    for rank in range(3):   # 12 boxes in shards of 4: every box once (num_boxes), same metrics everywhere
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == pytest.approx(expected)
    assert expected["num_boxes"] == 12


@pytest.mark.parametrize("n, world", [(12, 3), (10, 4), (2, 3), (0, 2), (7, 1)])
def test_shards_are_contiguous_and_concatenate_to_the_dataset_order(n, world):
    """validate's rank 0 concatenates the ranks' rows rank by rank. NMS breaks score ties by row order within
    an image, so that must be the dataset order; contiguous shards also keep an image on one rank."""
    shards = [evaluate.shard(n, world, r) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_predictions_take_keeps_the_rows_in_the_given_order():
    preds = Predictions(np.array([5, 6, 7]), np.arange(3 * 17 * 2.0).reshape(3, 17, 2), np.ones((3, 17)),
                        np.zeros((3, 4)), np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0]))
    taken = preds.take(np.array([2, 0]))
    assert taken.image_ids.tolist() == [7, 5] and taken.bbox_scores.tolist() == [0.3, 0.1]
    assert taken.keypoints.shape == (2, 17, 2) and taken.keypoints[0, 0].tolist() == [68.0, 69.0]


def test_the_reference_evaluation_of_the_full_profile_writes_its_stage_outs_saying_why(tmp_path, monkeypatch):
    """Tier E is the smoke profile's: under profile full the stage evaluate_reference@<config> still leaves its
    DVC outs (the metrics file and outputs/eval/reference_<config>), each a not_run record, or DVC fails the run."""
    from repro import config
    from repro.evaluation import run
    monkeypatch.setenv("REPRO_TRACKING", "0")
    cfg = config.load(REPO / "params.yaml", "256x192", profile="full")
    record = run.run_evaluate(cfg, "reference", metrics_path=tmp_path / "reports/metrics/reference_256x192.json",
                              eval_dir=tmp_path / "outputs/eval/reference_256x192", published_dir=tmp_path)
    assert record["status"] == "not_run" and "smoke" in record["reason"]
    for path in (tmp_path / "reports/metrics/reference_256x192.json",
                 tmp_path / "outputs/eval/reference_256x192/metrics.json"):
        assert json.loads(path.read_text())["status"] == "not_run"
