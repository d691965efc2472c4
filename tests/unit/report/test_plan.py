"""repro plan: stage arithmetic from the config, and the estimate against a tiny measured training run."""
import copy
import json

import pytest

from repro import config
from repro.engine import probe
from repro.report import plan
from tests.conftest import REPO

PARAMS = config.read_params(REPO / "params.yaml")


def tiny_params(root) -> dict:
    """The smoke profile shrunk to seconds: 24 synthetic images, 2 epochs of batch 8."""
    params = copy.deepcopy(PARAMS)
    smoke = params["profiles"]["smoke"]
    smoke["data"] = {"source": "synthetic", "root": str(root),
                     "synthetic": {"train_images": 24, "val_images": 6, "seed": 0}}
    smoke["train"].update(epochs=2, val_interval=2, batch_per_gpu=8, warmup_iters=5, milestones=[1],
                          log_interval=5, init_from=None)   # from scratch: no reference checkpoint in tmp_path
    return params


def fake_timings(step=1.0, image=0.1, item=0.0):
    return {"device": "cpu", "batch": 16, "train_step_s": step, "eval_image_s": image, "train_item_s": item,
            "val_item_s": item}


def test_train_estimate_follows_the_schedule_and_the_data_size():
    params = copy.deepcopy(PARAMS)
    params["profiles"]["smoke"]["train"].update(epochs=8, val_interval=4)
    cfg = config.resolve(params, "256x192", "smoke")   # batch 16, 8 epochs, val every 4 -> 2 validations
    sizes = {"train_instances": 100, "val_boxes": 10}
    run = plan.train_seconds(cfg, fake_timings(step=1.0, image=0.5), sizes, world=1)
    # ceil(100 / 16) = 7 steps of 1 s per epoch, 8 epochs, plus 2 validations of 10 boxes x 0.5 s
    assert run == {"seconds": 8 * 7 * 1.0 + 2 * 10 * 0.5, "iterations": 56, "validations": 2}
    # two devices: each sees ceil(100 / 2) = 50 instances -> 4 steps; validation is sharded too
    assert plan.train_seconds(cfg, fake_timings(step=1.0, image=0.5), sizes, world=2)["seconds"] == 8 * 4 + 2 * 5 * 0.5
    # num_workers 0 (smoke): loading 16 items at 0.01 s is paid in series with each step
    loaded = plan.train_seconds(cfg, fake_timings(step=1.0, image=0.5, item=0.01), sizes, world=1)
    assert loaded["seconds"] == pytest.approx(8 * 7 * 1.16 + 2 * 10 * 0.51)
    # a probe at batch 8 (--probe-batch) scales linearly to the configured 16
    halved = {**fake_timings(step=0.5, image=0.5), "batch": 8}
    assert plan.train_seconds(cfg, halved, sizes, world=1)["seconds"] == 8 * 7 * 1.0 + 2 * 10 * 0.5


def test_full_profile_on_a_named_gpu_uses_the_table_and_coco_sizes():
    cfgs = {n: config.resolve(PARAMS, n, "full") for n in PARAMS["configs"]}
    table = plan.read_table()
    timings = {n: plan.device_timings(table, "gtx-1660-super", c) for n, c in cfgs.items()}
    result = plan.build_plan(cfgs, timings, 8, table, "gtx-1660-super")
    train = next(s for s in result["stages"] if s["stage"] == "train@256x192")
    # 149,813 instances / 8 GPUs / batch 64 = 293 iterations x 210 epochs at 64 / 12.9 s each,
    # plus 21 validations of ceil(104,125 / 8) boxes x 2 views / 38.7 images/s
    expected = 210 * 293 * 64 / 12.9 + 21 * 13016 * 2 / 38.7
    assert train["seconds"] == pytest.approx(expected, abs=0.1)
    assert train["device_hours"] == pytest.approx(expected * 8 / 3600, abs=1e-4)
    evaluate = next(s for s in result["stages"] if s["stage"] == "evaluate_published@384x288")
    assert evaluate["seconds"] == pytest.approx(104125 * 2 / 21.0, abs=0.1)


def test_named_gpu_refuses_a_model_it_has_no_numbers_for():
    cfg = config.resolve(PARAMS, "256x192", "smoke")
    with pytest.raises(config.ConfigError, match="published network only"):
        plan.device_timings(plan.read_table(), "gtx-1660-super", cfg)
    with pytest.raises(config.ConfigError, match="'tpu-v5'"):
        plan.device_timings(plan.read_table(), "tpu-v5", config.resolve(PARAMS, "256x192", "full"))


def test_check_puts_the_measured_time_beside_the_estimate(tmp_path):
    (tmp_path / "models" / "256x192").mkdir(parents=True)
    (tmp_path / "models" / "256x192" / "metrics.json").write_text(json.dumps({"wall_time_s": 150.0}))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "256x192.json").write_text(json.dumps({"AP": 0.1, "eval_wall_time_s": 5.0}))
    written = {"stages": [{"stage": "train@256x192", "seconds": 100.0}, {"stage": "evaluate@256x192", "seconds": 10.0},
                          {"stage": "train@384x288", "seconds": 100.0}, {"stage": "compare", "seconds": 0.0}]}
    (tmp_path / "smoke.json").write_text(json.dumps(written))
    rows = plan.cost_rows(tmp_path / "smoke.json", tmp_path / "models", tmp_path / "metrics")
    assert [(r["stage"], r["actual_s"], r["ratio"]) for r in rows] == [
        ("train@256x192", 150.0, 1.5), ("evaluate@256x192", 5.0, 0.5), ("train@384x288", None, None),
        ("compare", None, None)]
    assert plan.cost_rows(tmp_path / "full.json", tmp_path / "models", tmp_path / "metrics") == []


@pytest.mark.slow
def test_estimate_is_within_2x_of_a_tiny_measured_training_run(tmp_path, monkeypatch):
    """Estimate and measurement on the same machine in the same test: a ratio, never an absolute time."""
    from repro.data.synthetic import generate
    from repro.engine import train

    params = tiny_params(tmp_path / "data")
    cfg = config.resolve(params, "256x192", "smoke")
    generate(cfg.synthetic, cfg.data.root)
    monkeypatch.chdir(tmp_path)   # models and logs of the run stay in the scratch dir
    timings = probe.probe(cfg)
    estimate = plan.train_seconds(cfg, timings, plan.data_sizes(cfg, plan.read_table(), timings), world=1)
    measured = train.train(cfg, tmp_path / "run", resume=False, track=False)["wall_time_s"]
    ratio = measured / estimate["seconds"]
    print(f"estimate {estimate['seconds']:.1f} s, measured {measured:.1f} s, ratio {ratio:.3f}")   # shown by -rA
    assert 0.5 <= ratio <= 2.0, f"estimate {estimate['seconds']:.1f} s, measured {measured:.1f} s"
