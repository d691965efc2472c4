"""`repro plan`: the time and device-hours of every stage of a profile, before it runs.

    repro plan [--profile smoke|full]          # probe this machine (repro/engine/probe.py), print, write JSON
    repro plan --profile full --gpu gtx-1660-super   # from repro/throughput.yaml instead of a probe
    repro plan --check                         # the written estimate beside the measured stage times

An estimate is arithmetic on three things: seconds per training step, per inference box and per loaded
item (the probe, or a device's images/s from repro/throughput.yaml), the size of the data (counted in
data/<profile> when it is there; else COCO's known sizes for `full` and the synthetic config's expected
counts for `smoke`) and the schedule (epochs, val_interval, world size, batch, workers). Not estimated:
COCO post-processing and pycocotools (seconds: reports/benchmarks/eval_cpu.md), the compare stage, process
start-up. The DVC stage `plan` writes reports/plan/<profile>.json before training; `compare` puts it beside
the measured times (models/<config>/metrics.json wall_time_s, reports/metrics/*.json eval_wall_time_s).
"""
import json
import math
from pathlib import Path

import yaml

from repro import atomic, config, records

THROUGHPUT_PATH = Path(__file__).parents[1] / "throughput.yaml"   # repro/throughput.yaml
PLAN_DIR = Path("reports/plan")
DOWNLOAD_MB_S = 50.0   # assumed download bandwidth for the full profile's data stage (--bandwidth)


def read_table(path=THROUGHPUT_PATH) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def data_sizes(cfg, table: dict, probed: dict) -> dict:
    """{"train_instances", "val_boxes", "basis"}: counted on disk if probed, else known or expected."""
    if "train_instances" in probed:
        return {"train_instances": probed["train_instances"], "val_boxes": probed["val_boxes"],
                "basis": f"counted in {cfg.data.root}"}
    if cfg.data.source == "coco":
        return {"train_instances": table["coco"]["train_instances"]["value"],
                "val_boxes": table["coco"]["val_boxes"]["value"], "basis": "COCO's known sizes (throughput.yaml)"}
    from repro.data.synthetic import SceneSpec
    spec, syn = SceneSpec(), cfg.synthetic
    people = (1 + spec.max_people) / 2   # 1..max_people per image, uniform
    boxes = people * (1 - spec.det_miss_rate) * (1 + spec.det_duplicate_rate) + spec.det_fp_per_image
    return {"train_instances": round(syn.train_images * people), "val_boxes": round(syn.val_images * boxes),
            "basis": "expected from the synthetic config (data not generated yet)"}


def validations(train_cfg) -> int:
    """How many validations a run does: every val_interval epochs and after the last (none if it is null)."""
    return sum(train_cfg.validates_after(epoch) for epoch in range(train_cfg.epochs))


def _loaded(compute_s: float, load_s: float, workers: int) -> float:
    """Time of a step whose data takes `load_s` to load: in series without workers, else overlapped."""
    return compute_s + load_s if workers == 0 else max(compute_s, load_s / workers)


def _workers(value, world: int) -> int:
    """A loader's workers; "auto" as this machine would size it for `world` local processes (a guess for another)."""
    from repro.data.loader import resolve_num_workers
    return resolve_num_workers(value, world)


def eval_seconds(cfg, t: dict, boxes: int, world: int = 1) -> float:
    """Inference over `boxes` detection boxes, sharded over `world` devices."""
    per_box = _loaded(t["eval_image_s"], t.get("val_item_s") or 0.0, _workers(cfg.eval.num_workers, world))
    return math.ceil(boxes / world) * per_box


def train_seconds(cfg, t: dict, sizes: dict, world: int) -> dict:
    """{"seconds", "iterations", "validations"} of one training run (validations included)."""
    batch = cfg.train.batch_per_gpu
    iters = math.ceil(math.ceil(sizes["train_instances"] / world) / batch)   # DistributedSampler, no drop_last
    step = t["train_step_s"] * batch / t["batch"]   # a probe at another batch scales linearly
    step = _loaded(step, (t.get("train_item_s") or 0.0) * batch, _workers(cfg.train.num_workers, world))
    n_val = validations(cfg.train)
    seconds = cfg.train.epochs * iters * step + n_val * eval_seconds(cfg, t, sizes["val_boxes"], world)
    return {"seconds": seconds, "iterations": cfg.train.epochs * iters, "validations": n_val}


def device_timings(table: dict, gpu: str, cfg) -> dict:
    """Probe-like timings of `cfg` on a device of repro/throughput.yaml (the published network only)."""
    devices = table["devices"]
    if gpu not in devices:
        raise config.ConfigError(f"--gpu {gpu!r}: not in {THROUGHPUT_PATH.name} (have {', '.join(devices)})")
    if cfg.model != config.CPMConfig():
        raise config.ConfigError(f"--gpu {gpu}: the table holds the published network only; profile "
                                 f"{cfg.profile!r} uses another model (use --profile full, or probe this machine)")
    entry = devices[gpu]
    for kind in ("train", "infer"):
        if cfg.name not in entry[kind]:
            raise config.ConfigError(f"{THROUGHPUT_PATH.name}: devices.{gpu}.{kind} has no {cfg.name} entry")
    views = 2 if cfg.eval.flip_test else 1
    return {"device": gpu, "batch": cfg.train.batch_per_gpu,
            "train_step_s": cfg.train.batch_per_gpu / entry["train"][cfg.name],
            "eval_image_s": views / entry["infer"][cfg.name],
            "basis": f"{gpu}: train {entry['train_kind']}, inference {entry['infer_kind']} (throughput.yaml); "
                     f"data loading assumed hidden by workers"}


def _stage(stage: str, seconds: float, devices: int, basis: str) -> dict:
    return {"stage": stage, "seconds": round(seconds, 1), "devices": devices,
            "device_hours": round(seconds * devices / 3600, 4), "basis": basis}


def data_stage(cfg, table: dict, timings: dict, bandwidth_mb_s: float) -> dict:
    if cfg.data.source == "coco":
        size = table["coco"]["download_bytes"]["value"]
        return _stage("data", size / (bandwidth_mb_s * 1e6), 0,
                      f"{size / 1e9:.1f} GB at an assumed {bandwidth_mb_s:g} MB/s (--bandwidth)")
    images = cfg.synthetic.train_images + cfg.synthetic.val_images
    per = timings.get("synthetic_image_s")
    if per is None:
        return _stage("data", 0.0, 0, "not probed")
    return _stage("data", images * per, 0, f"{images} synthetic images x {per:.4f} s (probed)")


def build_plan(cfgs: dict, timings: dict, world: int, table: dict, hardware: str,
               bandwidth_mb_s: float = DOWNLOAD_MB_S) -> dict:
    """The plan of one profile.

    Args:
        cfgs: config name -> RunConfig (one per input size, same profile).
        timings: config name -> probe result or `device_timings`; "synthetic_image_s" optional.
        world: devices per training run (launch.local_world_size() here, train.gpus on a named GPU).
        table: repro/throughput.yaml.
        hardware: what the timings were taken on, for the report.
        bandwidth_mb_s: assumed download speed for COCO.

    Returns:
        {"profile", "hardware", "world_size", "sizes", "timings", "stages", "total_s", "total_device_hours"}.
    """
    first = next(iter(cfgs.values()))
    stages, sizes = [data_stage(first, table, timings[first.name], bandwidth_mb_s)], {}
    for name, cfg in cfgs.items():
        sizes[name] = data_sizes(cfg, table, timings[name])
        run = train_seconds(cfg, timings[name], sizes[name], world)
        stages.append(_stage(f"train@{name}", run["seconds"], world,
                             f"{run['iterations']} iterations of batch {cfg.train.batch_per_gpu} x {world}, "
                             f"{run['validations']} validations; {sizes[name]['basis']}"))
    for name, cfg in cfgs.items():
        seconds = eval_seconds(cfg, timings[name], sizes[name]["val_boxes"])
        stages.append(_stage(f"evaluate@{name}", seconds, 1, f"{sizes[name]['val_boxes']} boxes"))
    for name, cfg in cfgs.items():
        if cfg.data.source == "coco":
            seconds = eval_seconds(cfg, timings[name], sizes[name]["val_boxes"])
            stages.append(_stage(f"evaluate_published@{name}", seconds, 1, "same protocol, published weights"))
        else:
            stages.append(_stage(f"evaluate_published@{name}", 0.0, 0, "no published checkpoint in this profile"))
    stages.append(_stage("compare", 0.0, 0, "not estimated (seconds)"))
    return {"profile": first.profile, "hardware": hardware, "world_size": world, "sizes": sizes,
            "timings": timings, "stages": stages, "total_s": round(sum(s["seconds"] for s in stages), 1),
            "total_device_hours": round(sum(s["device_hours"] for s in stages), 4)}


def _duration(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def render(plan: dict, markdown: bool = False) -> str:
    """The plan as a table: stage, estimated time, devices, device-hours, basis."""
    from repro.report.tables import render as table
    rows = [[s["stage"], _duration(s["seconds"]), f"{s['seconds']:.1f}", s["devices"], f"{s['device_hours']:.4f}",
             s["basis"]] for s in plan["stages"]]
    rows.append(["total", _duration(plan["total_s"]), f"{plan['total_s']:.1f}", "",
                 f"{plan['total_device_hours']:.4f}", ""])
    return table(("stage", "time", "seconds", "devices", "device-hours", "basis"), rows, markdown)


# ------------------------------------------------------------------------------------------------ main

def make_plan(params_path="params.yaml", profile: str | None = None, gpu: str | None = None,
              steps: int | None = None, probe_batch: int | None = None,
              bandwidth_mb_s: float = DOWNLOAD_MB_S, nproc: int | None = None) -> dict:
    """Resolve every config of the profile, time it (probe here, or the `gpu` table entry) and plan it.
    With `gpu`, `nproc` GPUs train each config (default: its train.gpus).

    Args:
        params_path: params.yaml.
        profile: smoke | full (default: params.yaml's).
        gpu: a device of repro/throughput.yaml instead of probing this machine.
        steps: timed training steps per config in the probe (default: params.yaml plan.probe_steps, else
            repro.engine.probe.PROBE_STEPS).
        probe_batch: probe at this batch instead of train.batch_per_gpu (scaled linearly; for a slow CPU;
            default: params.yaml plan.probe_batch).
        bandwidth_mb_s: assumed download speed of COCO.

    Returns:
        The plan (see `build_plan`).
    """
    params = config.read_params(params_path)
    try:
        cfgs = {name: config.resolve(params, name, profile) for name in params["configs"]}
    except config.ConfigError as e:
        raise config.ConfigError(f"{params_path}: {e}") from None
    table = read_table()
    first = next(iter(cfgs.values()))
    if gpu:
        timings = {name: device_timings(table, gpu, cfg) for name, cfg in cfgs.items()}
        return build_plan(cfgs, timings, nproc or first.train.gpus, table, f"{gpu} (throughput.yaml)",
                          bandwidth_mb_s)
    from repro.engine import launch, probe
    settings = params.get("plan") or {}   # params.yaml `plan`: what the DVC stage probes with
    steps = steps or settings.get("probe_steps") or probe.PROBE_STEPS
    probe_batch = probe_batch or settings.get("probe_batch")
    timings = {name: probe.probe(cfg, steps=steps, batch=probe_batch) for name, cfg in cfgs.items()}
    if first.data.source == "synthetic":
        timings[first.name]["synthetic_image_s"] = probe.synthetic_image_seconds(first)
    world = launch.local_world_size()
    return build_plan(cfgs, timings, world, table, probe.hardware_name(timings[first.name]["device"]),
                      bandwidth_mb_s)


def write(plan: dict, out_dir=PLAN_DIR) -> Path:
    """reports/plan/<profile>.json."""
    return atomic.write_json(Path(out_dir) / f"{plan['profile']}.json", plan)


def run_plan(params_path="params.yaml", profile: str | None = None, out_dir=PLAN_DIR, **options) -> tuple:
    """The plan step (`python -m stages.plan`, `repro plan`): estimate every stage of the profile and write it.

    Args:
        params_path: params.yaml.
        profile: smoke | full (default: params.yaml's).
        out_dir: the plan goes to <out_dir>/<profile>.json (reports/plan).
        **options: make_plan's gpu, steps, probe_batch, bandwidth_mb_s.

    Returns:
        (the plan, the path written).
    """
    plan = make_plan(params_path, profile, **options)
    return plan, write(plan, out_dir)


# ------------------------------------------------------------------- estimate against the measured times
def actual_seconds(stage: str, models_dir, metrics_dir) -> float | None:
    """The measured wall time of a stage after a run, or None when it was not recorded."""
    kind, _, name = stage.partition("@")
    if kind == "train":
        path, key = Path(models_dir) / name / "metrics.json", "wall_time_s"
    elif kind in ("evaluate", "evaluate_published"):
        source = "trained" if kind == "evaluate" else "published"
        path, key = records.metrics_path(name, source, metrics_dir), "eval_wall_time_s"
    else:
        return None
    try:
        value = json.loads(path.read_text()).get(key)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def cost_rows(plan_path: Path, models_dir: Path, metrics_dir: Path) -> list:
    """[{"stage", "estimate_s", "actual_s", "ratio"}] per stage of the plan `repro plan` wrote at plan_path
    (ratio = actual / estimate; None where unknown); [] when there is no plan."""
    if not plan_path.is_file():
        return []
    rows = []
    for s in json.loads(plan_path.read_text())["stages"]:
        actual = actual_seconds(s["stage"], models_dir, metrics_dir)
        ratio = actual / s["seconds"] if actual is not None and s["seconds"] > 0 else None
        rows.append({"stage": s["stage"], "estimate_s": s["seconds"], "actual_s": actual,
                     "ratio": None if ratio is None else round(ratio, 3)})
    return rows


def render_cost(rows: list, markdown: bool = False) -> str:
    """The estimate-vs-actual table."""
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    from repro.report.tables import render
    return render(("stage", "estimate s", "actual s", "actual / estimate"),
                 [[r["stage"], fmt(r["estimate_s"], ".1f"), fmt(r["actual_s"], ".1f"), fmt(r["ratio"], ".3f")]
                  for r in rows], markdown)
