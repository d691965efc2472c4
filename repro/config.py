"""params.yaml -> typed, frozen, validated run configuration.

    cfg = repro.config.load("params.yaml", "256x192")          # profile from params.yaml
    cfg = repro.config.load("params.yaml", "384x288", profile="full")

Resolution: the config's own values (input size, sigma, batch, GPUs) and the published `recipe`, then the
selected profile's overrides. An unknown key, a missing key, a wrong type or a value out of range
(`RANGES`: epochs >= 1, sigma > 0, probabilities in [0, 1], ...) is an error naming the dotted key and the file.
"""
import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from repro.errors import ReproError


class ConfigError(ReproError, ValueError):
    """A bad value in params.yaml; the message names the file and the dotted key."""


@dataclass(frozen=True)
class CPMConfig:
    """Shape of one member of the CPM family. Defaults are the published network (spec §1.2)."""

    in_channels: int = 3
    num_keypoints: int = 17
    feat_channels: int = 128     # width of the image-feature and refinement convs
    middle_channels: int = 32    # width of the per-stage image features concatenated with heatmaps
    stem_channels: int = 512     # width of the stage-1 9x9 and 1x1 convs (fixed at 512 in mmpose)
    num_stages: int = 6          # stage 1 + (num_stages - 1) refinement stages


@dataclass(frozen=True)
class CodecConfig:
    """Input/heatmap geometry and the MSRA target (spec §2.1, §2.8)."""

    input_size: tuple[int, int]     # (w, h)
    heatmap_size: tuple[int, int]   # (w, h)
    sigma: float


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation, mmpose 1.x (spec §2.6(c)); also holds the bbox padding used at test time."""

    bbox_padding: float
    flip_prob: float
    half_body_prob: float
    half_body_min_total_keypoints: int
    half_body_min_upper_keypoints: int
    half_body_min_lower_keypoints: int
    half_body_padding: float
    half_body_upper_prob: float
    shift_factor: float
    shift_prob: float
    scale_factor: float
    scale_prob: float
    rotate_factor: float
    rotate_prob: float


@dataclass(frozen=True)
class StopBelowPublished:
    """Opt-in early stop: after a validation at epoch >= from_epoch (1-based) with val AP below the
    reference curve (repro/published.yaml learning_curve) minus margin, the run ends (repro/engine/curve.py)."""

    margin: float
    from_epoch: int


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and schedule (spec §3). batch_per_gpu/gpus are resolved from the config when null."""

    epochs: int
    lr: float
    weight_decay: float
    warmup_iters: int
    warmup_ratio: float
    milestones: tuple[int, ...]
    gamma: float
    # Validate every N epochs and after the last; None: never during training (best.pth is then the last
    # epoch's weights, measured by the evaluate stage alone)
    val_interval: int | None
    batch_per_gpu: int
    gpus: int
    sync_bn: bool
    amp: str
    channels_last: bool
    num_workers: int | str   # a count, or "auto" (repro.data.loader.resolve_num_workers)
    log_interval: int
    deterministic: bool
    skip_corrupt_images: bool
    # Weights to start from instead of the published init (None: from scratch, as published). "{config}" in
    # the path is replaced by the config name, so one profile value serves both input sizes.
    init_from: str | None = None
    stop_below_published: StopBelowPublished | None = None   # None: train every epoch (published)
    # Resuming on another number of processes changes the iterations per epoch: refused unless this is set,
    # which re-derives the iteration from the epoch and records the change (the run is then open).
    resume_adapt_world_size: bool = False
    # Loader (repro/data/loader.py). They do not change the numbers, except reduced_decode (a 1/2 or 1/4
    # JPEG decode where the crop shrinks the image: faster, not bit-identical; published false, so open).
    persistent_workers: bool = True
    prefetch_factor: int = 2
    reduced_decode: bool = False
    # TF32 convolutions and matmuls on Ampere and later CUDA GPUs (repro/engine/precision.py); published false.
    allow_tf32: bool = False
    torch_compile: bool = False   # torch.compile of the training forward (a speed option; published false)

    def validates_after(self, epoch: int) -> bool:
        """Whether the run validates after 0-based `epoch`: every val_interval epochs and after the last;
        never when val_interval is null."""
        return self.val_interval is not None and ((epoch + 1) % self.val_interval == 0 or epoch + 1 == self.epochs)


@dataclass(frozen=True)
class EvalConfig:
    """Test-time protocol (spec §4)."""

    flip_test: bool
    shift_heatmap: bool
    use_gt_bbox: bool
    det_score_thr: float
    keypoint_score_thr: float
    nms_thr: float
    batch_size: int
    amp: str
    channels_last: bool
    num_workers: int | str   # a count, or "auto" like train.num_workers
    persistent_workers: bool = False   # evaluation iterates its loader once per validation
    prefetch_factor: int = 2
    # A seeded uniform subset of N val images (tier A-subset, repro.evaluation.subset); None: all of them,
    # the published protocol.
    val_images: int | None = None
    val_seed: int = 0


@dataclass(frozen=True)
class DataConfig:
    """Where the COCO-layout data lives. Synthetic data is written in the same layout as COCO.

    The root is data/<profile> (the DVC out of the `data` stage), so switching profiles never mixes data.
    """

    source: str   # coco | synthetic
    root: str

    @property
    def train_ann(self) -> Path:
        return Path(self.root) / "annotations" / "person_keypoints_train2017.json"

    @property
    def val_ann(self) -> Path:
        return Path(self.root) / "annotations" / "person_keypoints_val2017.json"

    @property
    def train_images(self) -> Path:
        return Path(self.root) / "train2017"

    @property
    def val_images(self) -> Path:
        return Path(self.root) / "val2017"

    @property
    def det_file(self) -> Path:
        return Path(self.root) / "person_detection_results" / "COCO_val2017_detections_AP_H_56_person.json"


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the generated synthetic COCO-format data set."""

    train_images: int = 400
    val_images: int = 100
    seed: int = 0


@dataclass(frozen=True)
class RunConfig:
    """Everything one train/evaluate run of one input size needs."""

    name: str          # "256x192" or "384x288"
    profile: str
    seed: int
    data: DataConfig
    synthetic: SyntheticConfig
    model: CPMConfig
    codec: CodecConfig
    augment: AugmentConfig
    train: TrainConfig
    eval: EvalConfig

    def to_dict(self) -> dict:
        """Plain nested dict (tuples as lists), for MLflow params and the resolved-config file."""
        return _plain(dataclasses.asdict(self))


PROFILES = ("smoke", "full")
AMP_MODES = ("none", "bf16", "fp16", "auto")   # auto: bf16 where native, else fp32 (repro.machine)


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in (override or {}).items():
        out[key] = _merge(base.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def _coerce(value, annotation, key: str):
    """Check one value against its dataclass annotation; ints are accepted where floats are expected."""
    origin = typing.get_origin(annotation)
    if origin is types.UnionType and type(None) in typing.get_args(annotation):   # `X | None`
        if value is None:
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        origin = typing.get_origin(annotation)
    if origin is types.UnionType:   # `int | str` (num_workers: a count or "auto"): the first exact match
        for option in typing.get_args(annotation):
            if type(value) is option:
                return value
        names = " or ".join(a.__name__ for a in typing.get_args(annotation))
        raise ConfigError(f"{key}: expected {names}, got {value!r}")
    if dataclasses.is_dataclass(annotation):
        return build(annotation, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(annotation)
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} items, got {value!r}")
        item_type = args[0]
        return tuple(_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if type(value) is not annotation:
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {annotation}")  # a bug in this module, not in the file


def build(cls, mapping: dict, key: str):
    """Build dataclass `cls` from `mapping`, naming `key.field` in every error."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"{key}: expected a mapping, got {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(f'{key}.{u}' for u in unknown)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name not in mapping:
            if field.default is dataclasses.MISSING:
                raise ConfigError(f"{key}.{name}: missing")
            continue
        values[name] = _coerce(mapping[name], hints[name], f"{key}.{name}")
    return cls(**values)


def read_params(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such params file")
    with open(path) as f:
        params = yaml.safe_load(f)
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return params


def input_sizes(path="params.yaml", published_path=None) -> tuple:
    """The configs (input sizes) params.yaml trains, which must be the published table's models: a size in one
    file only would be trained and then left out of every report, or reported and never trained."""
    trained = tuple(read_params(path)["configs"])
    table = published(published_path or PUBLISHED_PATH)["models"]
    if set(trained) != set(table):
        raise ConfigError(f"{path} configs {sorted(trained)} differ from {published_path or PUBLISHED_PATH} models "
                          f"{sorted(table)}: add or remove the size in both")
    return trained


def current_profile(path="params.yaml") -> str:
    """$REPRO_PROFILE, else the params file's `profile`, else smoke (no params file)."""
    if env_profile():
        return env_profile()
    return read_params(path).get("profile", "smoke") if Path(path).is_file() else "smoke"


def load(path="params.yaml", name: str = "256x192", profile: str | None = None) -> RunConfig:
    """Resolve one config (`name`, e.g. "256x192") under one profile (default: params.yaml's `profile`)."""
    params = read_params(path)
    try:
        return resolve(params, name, profile)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


PROFILE_SECTIONS = ("data", "model", "augment", "train", "eval")


def _profile_overrides(overrides: dict, profile: str, name: str, names: set) -> dict:
    """A profile's overrides for config `name`: its sections, with `configs.<name>` (the same sections, for one
    input size only, e.g. a shorter smoke fine-tune at 384x288) merged over them."""
    unknown = sorted(set(overrides) - {*PROFILE_SECTIONS, "configs"})
    if unknown:
        raise ConfigError(f"profiles.{profile}: unknown key(s) {unknown}")
    per_config = overrides.get("configs") or {}
    if not isinstance(per_config, dict) or set(per_config) - names:
        raise ConfigError(f"profiles.{profile}.configs: keys must be configs of params.yaml {sorted(names)}, "
                          f"got {per_config!r}")
    own = per_config.get(name) or {}
    allowed = [s for s in PROFILE_SECTIONS if s != "data"]   # data is shared by every config (one data stage)
    unknown = sorted(set(own) - set(allowed)) if isinstance(own, dict) else [own]
    if unknown:
        raise ConfigError(f"profiles.{profile}.configs.{name}: unknown key(s) {unknown} (allowed: "
                          f"{', '.join(allowed)})")
    return _merge({k: v for k, v in overrides.items() if k != "configs"}, own)


def resolve(params: dict, name: str, profile: str | None = None) -> RunConfig:
    """Like `load`, from an already-parsed params mapping."""
    for top in ("profile", "seed", "configs", "recipe", "profiles"):
        if top not in params:
            raise ConfigError(f"{top}: missing")
    profile = profile or env_profile() or params["profile"]
    if profile not in PROFILES or profile not in params["profiles"]:
        raise ConfigError(f"profile: {profile!r} is not one of {PROFILES}")
    if name not in params["configs"]:
        raise ConfigError(f"configs: no config {name!r} (have {sorted(params['configs'])})")
    size = dict(params["configs"][name])
    overrides = _profile_overrides(params["profiles"][profile] or {}, profile, name, set(params["configs"]))
    section = lambda s: _merge(params["recipe"].get(s, {}), overrides.get(s, {}))  # noqa: E731

    train = section("train")
    for item in ("batch_per_gpu", "gpus"):
        if train.get(item) is None:
            train[item] = size.get(item)
    codec = {k: size.get(k) for k in ("input_size", "heatmap_size", "sigma")}
    unknown = sorted(set(size) - {"input_size", "heatmap_size", "sigma", "batch_per_gpu", "gpus"})
    if unknown:
        raise ConfigError(f"configs.{name}: unknown key(s) {unknown}")

    # The generator's settings sit in the data section, the one place the data stages read (dvc.yaml params).
    data = dict(overrides.get("data") or {})
    synthetic = data.pop("synthetic", {})
    cfg = RunConfig(
        name=name, profile=profile, seed=_coerce(params["seed"], int, "seed"),
        data=build(DataConfig, {"root": f"data/{profile}", **data}, f"profiles.{profile}.data"),
        synthetic=build(SyntheticConfig, synthetic, f"profiles.{profile}.data.synthetic"),
        model=build(CPMConfig, section("model"), "model"),
        codec=build(CodecConfig, codec, f"configs.{name}"),
        augment=build(AugmentConfig, section("augment"), "augment"),
        train=build(TrainConfig, train, "train"),
        eval=build(EvalConfig, _merge(section("eval"), params.get("eval") or {}), "eval"),   # top-level eval: the subset
    )
    if cfg.train.init_from:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(
            cfg.train, init_from=cfg.train.init_from.replace("{config}", name)))
    _validate(cfg)
    return cfg


# Allowed ranges, (section, field) -> (low, high, low inclusive); None: unbounded. A comparison with NaN
# is False, so a NaN value is out of every range. train.milestones beyond train.epochs are allowed: a
# shortened schedule (--set train.epochs=2) keeps the recipe's milestones and never reaches them.
POSITIVE, AT_LEAST_1, NON_NEGATIVE, UNIT = (0, None, False), (1, None, True), (0, None, True), (0, 1, True)
RANGES = {
    **{("codec", k): POSITIVE for k in ("input_size", "heatmap_size", "sigma")},
    **{("model", k): AT_LEAST_1 for k in ("in_channels", "num_keypoints", "feat_channels", "middle_channels",
                                           "stem_channels", "num_stages")},
    **{("augment", k): UNIT for k in ("flip_prob", "half_body_prob", "half_body_upper_prob", "shift_prob",
                                       "scale_prob", "rotate_prob")},
    **{("augment", k): NON_NEGATIVE for k in ("half_body_min_total_keypoints", "half_body_min_upper_keypoints",
                                               "half_body_min_lower_keypoints", "shift_factor", "scale_factor",
                                               "rotate_factor")},
    ("augment", "bbox_padding"): POSITIVE, ("augment", "half_body_padding"): POSITIVE,
    **{("train", k): AT_LEAST_1 for k in ("epochs", "val_interval", "batch_per_gpu", "gpus", "log_interval",
                                           "milestones")},
    ("train", "lr"): POSITIVE, ("train", "weight_decay"): NON_NEGATIVE, ("train", "warmup_iters"): NON_NEGATIVE,
    ("train", "warmup_ratio"): UNIT, ("train", "gamma"): POSITIVE, ("train", "prefetch_factor"): AT_LEAST_1,
    **{("eval", k): UNIT for k in ("det_score_thr", "keypoint_score_thr", "nms_thr")},
    ("eval", "batch_size"): AT_LEAST_1, ("eval", "prefetch_factor"): AT_LEAST_1,
    ("synthetic", "train_images"): AT_LEAST_1, ("synthetic", "val_images"): AT_LEAST_1,
    ("synthetic", "seed"): NON_NEGATIVE, ("eval", "val_seed"): NON_NEGATIVE,
}
OPTIONAL = {("train", "val_interval")}   # may be null, else in its range


def _in_range(value, low, high, inclusive: bool) -> bool:
    above = value >= low if inclusive else value > low
    return above and (high is None or value <= high)


def _range_key(cfg: RunConfig, section: str, name: str) -> str:
    """The dotted key a user writes for a field (codec fields live under configs.<name>)."""
    return f"configs.{cfg.name}.{name}" if section == "codec" else f"{section}.{name}"


def _check_ranges(cfg: RunConfig):
    if not cfg.seed >= 0:
        raise ConfigError(f"seed: {cfg.seed!r} must be >= 0")
    for (section, name), (low, high, inclusive) in RANGES.items():
        value = getattr(getattr(cfg, section), name)
        if value is None and (section, name) in OPTIONAL:
            continue
        for v in value if isinstance(value, tuple) else (value,):
            if not _in_range(v, low, high, inclusive):
                bound = f"in [{low}, {high}]" if high is not None else f"{'>=' if inclusive else '>'} {low}"
                raise ConfigError(f"{_range_key(cfg, section, name)}: {value!r} must be {bound}")


def _validate(cfg: RunConfig):
    _check_ranges(cfg)
    (w, h), (hw, hh) = cfg.codec.input_size, cfg.codec.heatmap_size
    if w != 8 * hw or h != 8 * hh:
        raise ConfigError(f"configs.{cfg.name}: heatmap_size {cfg.codec.heatmap_size} must be input_size / 8")
    if cfg.data.source not in ("coco", "synthetic"):
        raise ConfigError(f"profiles.{cfg.profile}.data.source: {cfg.data.source!r} is not coco or synthetic")
    for key, mode in (("train.amp", cfg.train.amp), ("eval.amp", cfg.eval.amp)):
        if mode not in AMP_MODES:
            raise ConfigError(f"{key}: {mode!r} is not one of {AMP_MODES}")
    for key, workers in (("train.num_workers", cfg.train.num_workers), ("eval.num_workers", cfg.eval.num_workers)):
        if workers != "auto" and not (isinstance(workers, int) and workers >= 0):
            raise ConfigError(f"{key}: {workers!r} must be an int >= 0 or \"auto\"")
    if list(cfg.train.milestones) != sorted(cfg.train.milestones):
        raise ConfigError(f"train.milestones: {cfg.train.milestones} must be increasing")
    if cfg.eval.val_images is not None and not cfg.eval.val_images >= 1:
        raise ConfigError(f"eval.val_images: {cfg.eval.val_images!r} must be null (all) or >= 1")
    stop = cfg.train.stop_below_published
    if stop is not None and not (math.isfinite(stop.margin) and stop.margin >= 0 and stop.from_epoch >= 1):
        raise ConfigError(f"train.stop_below_published: {stop} needs margin >= 0 (AP) and from_epoch >= 1")
    if stop is not None and cfg.train.val_interval is None:
        raise ConfigError("train.stop_below_published needs validations: train.val_interval is null")


PUBLISHED_PATH = Path(__file__).with_name("published.yaml")


def published(path=PUBLISHED_PATH) -> dict:
    """The published table (repro/published.yaml): numbers, checkpoints, recipe, sources, tolerances."""
    with open(path) as f:
        return yaml.safe_load(f)


# Environment. Every REPRO_* variable is read here and nowhere else (but REPRO_DEBUG: repro.errors), so this
# is the one list of what the environment changes. Each is read when asked: tests and stages set them per process.
PROFILE_ENV = "REPRO_PROFILE"            # smoke | full, over params.yaml `profile`
MIRROR_ENV = "REPRO_MIRROR"              # a local mirror for every download (repro.data.download)
DET_FILE_ENV = "REPRO_DET_FILE"          # path or URL of the AP_H_56 person detection file (full profile)
NPROC_ENV = "REPRO_NPROC"                # local training workers (default: the visible CUDA devices, else 1)
TRACKING_ENV = "REPRO_TRACKING"          # "0": record nothing in MLflow
PIPELINE_ID_ENV = "REPRO_PIPELINE_ID"    # the MLflow tag repro.pipeline shared by one pipeline's stage runs
STRICT_GATES_ENV = "REPRO_STRICT_GATES"  # `repro gate --strict`: a tier that did not run fails
GATE_TIERS_ENV = "REPRO_GATE_TIERS"      # the tiers `repro gate` checks, space- or comma-separated


def env_profile() -> str | None:
    """$REPRO_PROFILE, or None when unset or empty."""
    return os.environ.get(PROFILE_ENV) or None


def mirror() -> str | None:
    """$REPRO_MIRROR (None when unset)."""
    return os.environ.get(MIRROR_ENV)


def det_file() -> str | None:
    """$REPRO_DET_FILE (None when unset)."""
    return os.environ.get(DET_FILE_ENV)


def nproc() -> int | None:
    """$REPRO_NPROC as a number, or None when unset or empty."""
    value = os.environ.get(NPROC_ENV)
    return int(value) if value else None


def tracking_enabled() -> bool:
    """$REPRO_TRACKING unset or anything but "0"."""
    return os.environ.get(TRACKING_ENV, "1") != "0"


def pipeline_id() -> str | None:
    """$REPRO_PIPELINE_ID, or None when unset or empty."""
    return os.environ.get(PIPELINE_ID_ENV) or None


def strict_gates() -> bool:
    """$REPRO_STRICT_GATES set to anything but "", "0", "false", "no"."""
    return os.environ.get(STRICT_GATES_ENV, "") not in ("", "0", "false", "no")


def gate_tiers() -> list:
    """$REPRO_GATE_TIERS as a list of tier names ([] when unset)."""
    return os.environ.get(GATE_TIERS_ENV, "").replace(",", " ").split()


# ------------------------------------------------------------------------------------------- overrides
# The one override mechanism: a dotted key set in a mapping, either params.yaml's (before resolution, as
# `dvc exp run -S key=value` does; repro.smoke, the tests) or a resolved config's (`repro train --set`).

def _set_dotted(mapping: dict, key: str, value, what: str) -> None:
    """mapping[a][b][c] = value for key "a.b.c"; the key must name an existing leaf (ConfigError otherwise)."""
    node, parts = mapping, key.strip().split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"{what} {key!r}: {part!r} is not a section")
        node = node[part]
    if parts[-1] not in node or isinstance(node[parts[-1]], dict):
        raise ConfigError(f"{what} {key!r}: no such key (a leaf is needed)")
    node[parts[-1]] = value


def override_params(params: dict, overrides: dict) -> dict:
    """A copy of a params mapping with each dotted key (e.g. "recipe.eval.nms_thr") set; unknown keys are errors."""
    import copy
    params = copy.deepcopy(params)
    for key, value in (overrides or {}).items():
        _set_dotted(params, key, value, "override")
    return params


def parse_value(text: str):
    """YAML, except that numbers YAML 1.1 reads as strings ("1e-3") are numbers."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def with_overrides(cfg: RunConfig, items: list) -> RunConfig:
    """`--set train.epochs=3 seed=1 ...` applied to a resolved config (values parsed as YAML, re-validated)."""
    d = cfg.to_dict()
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key.strip().split(".")[0] in ("name", "profile"):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY a leaf of the resolved "
                              f"config (e.g. train.epochs=3); see config.yaml of a run")
        try:
            _set_dotted(d, key, parse_value(text), "--set")
        except ConfigError as e:
            raise ConfigError(f"{e}; expected KEY=VALUE with KEY a leaf of the resolved config (e.g. "
                              f"train.epochs=3); see config.yaml of a run") from None
    hints = {f.name: f.type for f in dataclasses.fields(RunConfig)}
    if not isinstance(d["seed"], int) or isinstance(d["seed"], bool):
        raise ConfigError(f"seed: expected int, got {d['seed']!r}")
    sections = {k: build(hints[k], d[k], k) for k in d if dataclasses.is_dataclass(hints[k])}
    new = RunConfig(name=cfg.name, profile=cfg.profile, seed=d["seed"], **sections)
    _validate(new)
    return new
