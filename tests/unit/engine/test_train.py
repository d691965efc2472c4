"""Training recipe pieces checked against values computed by hand (spec §3), plus BN buffer averaging over a
real 2-process gloo group, the open/closed recipe diff, --set overrides and resume bookkeeping."""
import dataclasses
import json
import logging
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from repro import config, distributed, recipe
from repro.config import TrainConfig
from repro.engine import runlog, train
from tests.conftest import CONFIGS, REPO


def _train_cfg(**over) -> TrainConfig:
    base = config.load(REPO / "params.yaml", "256x192", "full").train
    return dataclasses.replace(base, **over)


# ------------------------------------------------------------------------------------------- schedule

def test_lr_factor_published_warmup_is_mmengine_linear_lr():
    cfg = _train_cfg()   # warm-up 500 iterations from 0.001, milestones 170/200, gamma 0.1
    assert train.lr_factor(0, 0, cfg) == pytest.approx(0.001)
    assert train.lr_factor(1, 0, cfg) == pytest.approx(0.001 + 0.999 / 499)
    assert train.lr_factor(250, 0, cfg) == pytest.approx(0.001 + 0.999 * 250 / 499)
    assert train.lr_factor(499, 1, cfg) == pytest.approx(1.0)
    assert train.lr_factor(500, 1, cfg) == 1.0


def test_lr_factor_steps_down_at_zero_based_milestone_epochs():
    cfg = _train_cfg()
    it = 10_000   # long past warm-up
    assert train.lr_factor(it, 169, cfg) == 1.0
    assert train.lr_factor(it, 170, cfg) == pytest.approx(0.1)
    assert train.lr_factor(it, 199, cfg) == pytest.approx(0.1)
    assert train.lr_factor(it, 200, cfg) == pytest.approx(0.01)
    assert train.lr_factor(it, 209, cfg) == pytest.approx(0.01)


def test_scheduler_gives_hand_computed_lr_per_iteration():
    # 3 iterations per epoch, warm-up 4 iterations from 0.1, milestones at epochs 1 and 2, lr 1.0:
    # t:      0     1     2     3     4     5     6      7      8
    # warm: 0.1   0.4   0.7   1.0   1     1     1      1      1
    # decay:  1     1     1   0.5   0.5   0.5   0.25   0.25   0.25
    cfg = _train_cfg(lr=1.0, warmup_iters=4, warmup_ratio=0.1, milestones=(1, 2), gamma=0.5)
    model = nn.Linear(1, 1)
    opt = train.build_optimizer(model, cfg)
    sched = train.build_lr_scheduler(opt, cfg, iters_per_epoch=3)
    seen = []
    for _ in range(9):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1, 0.4, 0.7, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])


def test_scheduler_state_round_trip_continues_the_schedule():
    cfg = _train_cfg(lr=1.0, warmup_iters=4, warmup_ratio=0.1, milestones=(1, 2), gamma=0.5)
    opt = train.build_optimizer(nn.Linear(1, 1), cfg)
    sched = train.build_lr_scheduler(opt, cfg, 3)
    for _ in range(5):
        opt.step()
        sched.step()
    opt2 = train.build_optimizer(nn.Linear(1, 1), cfg)
    sched2 = train.build_lr_scheduler(opt2, cfg, 3)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    assert sched2.last_epoch == 5 and opt2.param_groups[0]["lr"] == pytest.approx(0.5)
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.25)


def test_optimizer_is_published_adam():
    opt = train.build_optimizer(nn.Linear(2, 2), _train_cfg())
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8 and group["weight_decay"] == 0.0


# ----------------------------------------------------------------------------------------------- loss

def test_heatmap_loss_is_sum_over_stages_of_weighted_mean_squared_error():
    # B=1, K=2, H=1, W=2. Keypoint 0 weight 1, keypoint 1 weight 0 (its errors must not count).
    gt = torch.tensor([[[[1.0, 0.0]], [[0.5, 0.5]]]])
    s1 = torch.tensor([[[[0.0, 0.0]], [[9.0, 9.0]]]])     # k0 errors 1, 0
    s2 = torch.tensor([[[[1.0, 2.0]], [[-9.0, 9.0]]]])    # k0 errors 0, 2
    w = torch.tensor([[1.0, 0.0]])
    # stage 1: (1² + 0²) / (B·K·H·W = 4) = 0.25; stage 2: (0² + 2²) / 4 = 1.0; no 0.5 factor.
    assert train.heatmap_loss([s1, s2], gt, w).item() == pytest.approx(1.25)


def test_heatmap_loss_gradient_reaches_every_stage():
    gt = torch.zeros(2, 3, 4, 4)
    stages = [torch.ones(2, 3, 4, 4, requires_grad=True) for _ in range(3)]
    train.heatmap_loss(stages, gt, torch.ones(2, 3)).backward()
    # d/dp mean((p - 0)²) = 2p / N with N = 96
    for s in stages:
        assert torch.allclose(s.grad, torch.full_like(s, 2 / 96))


def _peak(h, w, x, y, value=1.0):
    m = torch.zeros(h, w)
    m[y, x] = value
    return m


def test_pose_pck_accuracy_matches_mmpose_by_hand():
    # H=10, W=40. mmpose normalises (x, y) distances by (H, W) (in that order): dx=1 -> 0.1, dy=1 -> 0.025.
    H, W = 10, 40
    target = torch.stack([_peak(H, W, 2, 2), _peak(H, W, 5, 5), _peak(H, W, 7, 3), _peak(H, W, 1, 1)])[None]
    pred = torch.stack([
        _peak(H, W, 3, 2),    # k0: dx = 1 -> 1/10 = 0.1, not < 0.05 -> miss
        _peak(H, W, 5, 6),    # k1: dy = 1 -> 1/40 = 0.025 < 0.05 -> hit
        _peak(H, W, 7, 4),    # k2: dy = 1 -> hit
        _peak(H, W, 30, 9),   # k3: far off, but masked out (invisible) -> ignored
    ])[None]
    mask = torch.tensor([[True, True, True, False]])
    assert train.pose_pck_accuracy(pred, target, mask).item() == pytest.approx(2 / 3)


def test_pose_pck_accuracy_treats_non_positive_maxima_as_missing():
    # get_heatmap_maximum puts (-1, -1) where the max <= 0: an all-zero prediction misses a real target.
    H, W = 8, 8
    target = _peak(H, W, 0, 0)[None, None]
    assert train.pose_pck_accuracy(torch.zeros(1, 1, H, W), target, torch.ones(1, 1, dtype=torch.bool)) == 0


def test_pose_pck_accuracy_averages_per_keypoint_over_valid_keypoints():
    H, W = 8, 8
    t = _peak(H, W, 3, 3)
    target = torch.stack([torch.stack([t, t]), torch.stack([t, t])])            # (2, 2, 8, 8)
    pred = torch.stack([torch.stack([t, _peak(H, W, 7, 7)]), torch.stack([t, t])])
    # k0: 2/2 hits; k1: sample 0 misses, sample 1 masked out -> 0/1. Mean over keypoints = 0.5.
    mask = torch.tensor([[True, True], [True, False]])
    assert train.pose_pck_accuracy(pred, target, mask).item() == pytest.approx(0.5)
    assert train.pose_pck_accuracy(pred, target, torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0


# ------------------------------------------------------------------------------------ BN buffer sync

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _average_worker(rank: int, world: int, port: int, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    env = distributed.setup("cpu")
    try:
        bn = nn.BatchNorm2d(2)
        bn.running_mean.fill_(float(rank + 1))          # rank 0: 1, rank 1: 2 -> 1.5
        bn.running_var.copy_(torch.tensor([4.0, 8.0]) * (rank + 1))   # -> [6, 12]
        bn.num_batches_tracked.fill_(7)
        bn.weight.data.fill_(float(rank))                # parameters are not buffers: untouched
        distributed.average_buffers(bn)
        out.put((rank, bn.running_mean.tolist(), bn.running_var.tolist(), int(bn.num_batches_tracked),
                 bn.weight.data.tolist()))
    finally:
        distributed.cleanup(env)


def test_average_buffers_takes_the_mean_of_bn_statistics_across_two_gloo_ranks():
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    mp.start_processes(_average_worker, args=(2, _free_port(), out), nprocs=2, start_method="spawn")
    results = sorted(out.get() for _ in range(2))
    for rank, mean, var, nbt, weight in results:
        assert mean == [1.5, 1.5]
        assert var == [6.0, 12.0]
        assert nbt == 7
        assert weight == [float(rank)] * 2


def test_average_buffers_is_identity_without_a_process_group():
    bn = nn.BatchNorm2d(1)
    bn.running_mean.fill_(3.0)
    distributed.average_buffers(bn)
    assert bn.running_mean.item() == 3.0


# ------------------------------------------------------------------------------------- recipe status

@pytest.mark.parametrize("name", CONFIGS)
def test_published_config_on_eight_processes_is_closed(name):
    cfg = config.load(REPO / "params.yaml", name, "full")
    assert recipe.recipe_diff(cfg, world_size=8) == []
    assert recipe.recipe_status([]) == "closed"


@pytest.mark.parametrize("stop", [None, {"margin": 0.05, "from_epoch": 30}])
def test_published_recipe_stays_closed_with_the_early_stop_off_or_on(stop):
    """The stop only watches the validations: it changes no number the run computes before it acts."""
    params = config.read_params(REPO / "params.yaml")
    params["recipe"]["train"]["stop_below_published"] = stop
    assert recipe.recipe_diff(config.resolve(params, "256x192", "full"), world_size=8) == []


def test_published_config_on_one_process_is_open_on_world_size_only():
    cfg = config.load(REPO / "params.yaml", "256x192", "full")
    assert recipe.recipe_diff(cfg, world_size=1) == [{"name": "world_size", "published": 8, "used": 1}]


@pytest.mark.parametrize("name", CONFIGS)
def test_smoke_config_is_open_with_named_items(name):
    cfg = config.load(REPO / "params.yaml", name, "smoke")
    diff = recipe.recipe_diff(cfg, world_size=1)
    items = {d["name"]: (d["published"], d["used"]) for d in diff}
    assert recipe.recipe_status(diff) == "open"
    assert items["model.feat_channels"] == (128, cfg.model.feat_channels)
    assert items["train.epochs"] == (210, cfg.train.epochs)
    assert items["train.milestones"] == ([170, 200], list(cfg.train.milestones))
    assert items["data.source"] == ("coco", "synthetic")
    assert items["world_size"] == (8, 1)
    assert ("train.lr" in items) == (cfg.train.lr != 0.0005)   # equal values are not listed
    json.dumps(diff)                                     # plain data (MLflow tag, metrics.json)


def test_changed_sigma_makes_the_run_open():
    cfg = config.load(REPO / "params.yaml", "256x192", "full")
    cfg = dataclasses.replace(cfg, codec=dataclasses.replace(cfg.codec, sigma=3.0))
    assert recipe.recipe_diff(cfg, 8) == [{"name": "codec.sigma", "published": 2.0, "used": 3.0}]


@pytest.mark.parametrize("item", ["channels_last", "torch_compile", "allow_tf32", "reduced_decode"])
def test_each_speed_option_labels_the_run_open(item):
    """The published runs used none of them; each changes float operation order or the input pixels."""
    cfg = config.load(REPO / "params.yaml", "256x192", "full")
    assert recipe.recipe_diff(cfg, 8) == []
    faster = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **{item: True}))
    assert recipe.recipe_diff(faster, 8) == [{"name": f"train.{item}", "published": False, "used": True}]


# ----------------------------------------------------------------------------------------- overrides

def test_set_overrides_a_leaf_and_revalidates():
    cfg = config.load(REPO / "params.yaml", "256x192", "smoke")
    new = config.with_overrides(cfg, ["train.epochs=3", "train.milestones=[1, 2]", "seed=5", "train.lr=1e-3"])
    assert (new.train.epochs, new.train.milestones, new.seed, new.train.lr) == (3, (1, 2), 5, 1e-3)
    assert new.model == cfg.model


@pytest.mark.parametrize("item", ["train.nope=1", "train=1", "train.epochs", "name=x", "train.epochs=abc",
                                  "train.milestones=[3, 1]"])
def test_set_rejects_unknown_keys_and_bad_values(item):
    cfg = config.load(REPO / "params.yaml", "256x192", "smoke")
    with pytest.raises(config.ConfigError):
        config.with_overrides(cfg, [item])


# ------------------------------------------------------------------------------------------- run log

def test_run_log_drops_records_of_epochs_after_the_checkpoint(tmp_path):
    run = runlog.RunLog(tmp_path, stat_names=("AP",))
    for epoch in range(3):
        run.train_interval({"epoch": epoch + 1, "iter": 1, "iters": 1, "step": epoch + 1, "lr": 0.1,
                            "loss": 1.0, "acc_pose": 0.0, "time": 0.1, "data_time": 0.0}, eta_s=0)
        run.validation(epoch, epoch + 1, {"AP": 0.1 * epoch})
    resumed = runlog.RunLog(tmp_path, stat_names=("AP",), resume_epoch=2)   # epochs 1, 2 completed
    assert [r["epoch"] for r in resumed.records] == [1, 1, 2, 2]
    lines = (tmp_path / runlog.TRAIN_LOG).read_text().splitlines()
    assert len(lines) == 4
    assert (tmp_path / runlog.VAL_HISTORY).read_text() == "epoch,AP\n1,0.0000\n2,0.1000\n"


def test_run_log_writes_the_val_history_header_before_any_validation(tmp_path):
    runlog.RunLog(tmp_path, stat_names=("AP", "AR"))   # a run with train.val_interval null never adds a row
    assert (tmp_path / runlog.VAL_HISTORY).read_text() == "epoch,AP,AR\n"


@pytest.mark.parametrize("interval,epochs,validated", [(10, 25, [10, 20, 25]), (2, 2, [2]), (1, 3, [1, 2, 3]),
                                                       (None, 2, [])])
def test_validations_fall_every_val_interval_epochs_and_after_the_last_or_never(interval, epochs, validated):
    cfg = config.with_overrides(config.load(REPO / "params.yaml", "256x192", "smoke"),
                                [f"train.epochs={epochs}", f"train.val_interval={'null' if interval is None else interval}"])
    assert [e + 1 for e in range(epochs) if cfg.train.validates_after(e)] == validated


def test_run_log_is_silent_on_other_ranks(tmp_path):
    run = runlog.RunLog(tmp_path, stat_names=("AP",), enabled=False)
    run.validation(0, 1, {"AP": 0.5})
    run.write_metrics({"a": 1})
    assert list(tmp_path.iterdir()) == []


class _OneStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return [self.conv(x)]


def test_non_finite_loss_stops_with_a_clear_error():
    model = _OneStage()
    opt = train.build_optimizer(model, _train_cfg())
    sched = train.build_lr_scheduler(opt, _train_cfg(), 1)
    bad = {"img": torch.full((1, 3, 2, 2), math.nan), "keypoints": torch.zeros(1, 2, 2), "visible": torch.ones(1, 2)}

    class Loader(list):
        sampler = type("S", (), {"num_replicas": 1, "__len__": lambda self: 1})()

    with pytest.raises(FloatingPointError, match="non-finite loss nan at epoch 1, iteration 1"):
        train.train_one_epoch(model, opt, sched, Loader([bad]), torch.device("cpu"), 0,
                              train.Step(), runlog.RunLog(".", enabled=False), 1, 1,
                              config.CodecConfig((16, 16), (2, 2), 2.0))   # 2x2 targets, as the model's maps
    assert torch.isfinite(model.conv.weight).all()   # no step was taken


# ------------------------------------------------------------------------------------- early stop

class TagTracker:
    def __init__(self):
        self.tags = {}

    def set_tags(self, tags):
        self.tags.update(tags)


def test_check_stop_records_the_verdict_logs_it_and_tags_the_run(caplog):
    cfg = dataclasses.replace(config.load(REPO / "params.yaml", "256x192", "full").train,
                              stop_below_published=config.StopBelowPublished(margin=0.05, from_epoch=30))
    reference, state, tracker = [(10, 0.40), (20, 0.50), (30, 0.55)], {"stopped_early": None}, TagTracker()
    train._check_stop(cfg, reference, 19, 0.30, state, tracker)          # epoch 20: before from_epoch
    assert state["stopped_early"] is None and tracker.tags == {}
    with caplog.at_level(logging.WARNING, logger="repro.train"):
        train._check_stop(cfg, reference, 29, 0.49, state, tracker)      # epoch 30: 0.49 < 0.55 - 0.05
    assert state["stopped_early"]["epoch"] == 30 and state["stopped_early"]["AP"] == 0.49
    assert "stopping early (train.stop_below_published): val AP 0.4900 at epoch 30" in caplog.text
    assert tracker.tags == {"repro.stopped_early": "true", "repro.stopped_early.epoch": 30,
                            "repro.stopped_early.reason": state["stopped_early"]["reason"]}


def test_early_stop_settings_may_change_on_resume():
    """The stop changes no computed number, so a run may be resumed with it turned on, off or retuned."""
    assert train._resume_free("train.stop_below_published")
    assert train._resume_free("train.stop_below_published.margin")
    assert not train._resume_free("train.lr") and not train._resume_free("train.stop_below")


def test_missing_reference_log_stops_the_run_before_any_data_is_read(tmp_path, monkeypatch):
    params = config.read_params(REPO / "params.yaml")
    params["recipe"]["train"]["stop_below_published"] = {"margin": 0.05, "from_epoch": 2}
    params["profiles"]["smoke"]["train"]["val_interval"] = 1   # the stop needs validations
    cfg = config.resolve(params, "256x192", "smoke")
    env = distributed.DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), owns_group=False)
    monkeypatch.chdir(tmp_path)   # no reports/baselines/smoke_256x192.log.json here
    with pytest.raises(train.mmpose_log.LogFormatError,
                       match=r"^train.stop_below_published: reports/baselines/smoke_256x192.log.json: no reference"):
        train._stop_reference(cfg, env)
    assert train._stop_reference(config.resolve(config.read_params(REPO / "params.yaml"), "256x192", "smoke"),
                                 env) is None   # off: nothing is read


# ------------------------------------------------------------------ resume on another world size

def _last_pth(path, cfg, world_size: int, epoch: int = 99):
    from repro import checkpoint
    from repro.model import build_cpm
    state = {"epoch": epoch, "best": None, "final": None, "train_time_s": 1.0, "wall_time_s": 1.0, "samples": 8}
    return checkpoint.save_checkpoint(path, build_cpm(cfg.model), {"config": cfg.to_dict(), "world_size": world_size,
                                                                   "train_state": state})


def test_resume_on_another_world_size_is_refused_naming_both(tmp_path):
    """100 epochs on 8 GPUs resumed on 7 would put the first LR decay at epoch 183: refused, before any work."""
    cfg = config.load(REPO / "params.yaml", "256x192", "smoke")
    path = _last_pth(tmp_path / "last.pth", cfg, world_size=8)
    with pytest.raises(config.ConfigError) as e:
        train._resume_meta(path, cfg, world_size=7)
    message = str(e.value)
    assert "\n" not in message and "written by 8 processes x 16 per process" in message
    assert "this run has 7 x 16" in message and "train.resume_adapt_world_size" in message
    assert train._resume_meta(path, cfg, world_size=8)["world_size"] == 8   # the same world size resumes


def test_an_adapted_resume_is_recorded_and_carried(tmp_path):
    cfg = config.load(REPO / "params.yaml", "256x192", "smoke")
    adapt = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resume_adapt_world_size=True))
    meta = train._resume_meta(_last_pth(tmp_path / "last.pth", cfg, world_size=8), adapt, world_size=7)
    state = train._adapt_world_size(meta, 7)
    assert state["world_sizes"] == ["8 -> 7 after epoch 100"]
    again = train._adapt_world_size({"world_size": 7, "train_state": state}, 7)   # a later resume on 7
    assert again["world_sizes"] == ["8 -> 7 after epoch 100"]
    assert train._resume_free("train.resume_adapt_world_size")


# ------------------------------------------------------------- every rank sees the work dir

def _work_dir_worker(rank: int, world: int, port: int, dirs, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    env = distributed.setup("cpu")
    try:
        train.check_shared_work_dir(dirs[rank], env)
        out.put((rank, None))
    except config.ConfigError as e:
        out.put((rank, str(e)))
    finally:
        distributed.cleanup(env)


@pytest.mark.parametrize("shared", [True, False])
def test_every_rank_checks_it_sees_the_work_dir_rank_0_writes(tmp_path, shared):
    """Two gloo ranks; without a shared file system each node sees its own directory at that path (here: rank 1
    is given another one), and both ranks stop with the reason instead of a FileNotFoundError at resume."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    dirs = [tmp_path / "a", tmp_path / ("a" if shared else "b")]
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    mp.start_processes(_work_dir_worker, args=(2, _free_port(), dirs, out), nprocs=2, start_method="spawn")
    results = dict(out.get() for _ in range(2))
    if shared:
        assert results == {0: None, 1: None}
    else:
        for rank in (0, 1):
            assert "rank(s) [1] cannot see" in results[rank] and "shared file system" in results[rank]
