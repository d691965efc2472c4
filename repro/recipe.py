"""Open or closed: how a resolved run configuration differs from the published recipe.

    diff = recipe_diff(cfg, world_size)      # [] -> "closed"; else [{"name", "published", "used"}, ...]
    recipe_status(diff)                      # "closed" | "open"

The published side is repro/published.yaml `recipe` (model, train items, per-config batch/GPUs/sigma)
plus two facts of the published runs the table does not spell out as recipe items: they trained on COCO
(`data.source`) and ran one process per GPU on `gpus` GPUs (`world_size`). A run is "closed" only when
every item matches; any difference makes it "open" and is listed, so a smoke run can never be mistaken
for a reproduction of the published numbers.
"""
import math

from repro import config

PUBLISHED_DATA_SOURCE = "coco"   # the published checkpoints were trained on COCO train2017 (spec §0)


def _same(published, used) -> bool:
    if isinstance(published, (list, tuple)) and isinstance(used, (list, tuple)):
        return len(published) == len(used) and all(_same(p, u) for p, u in zip(published, used))
    numbers = (int, float)
    if (isinstance(published, numbers) and isinstance(used, numbers)
            and not isinstance(published, bool) and not isinstance(used, bool)):
        return math.isclose(published, used, rel_tol=1e-12, abs_tol=0.0)
    return published == used


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def recipe_diff(cfg: config.RunConfig, world_size: int, published: dict | None = None) -> list:
    """Every item where `cfg` (run on `world_size` processes) departs from the published recipe.

    Args:
        cfg: the resolved run configuration.
        world_size: the number of training processes this run actually uses.
        published: the published table (default: repro/published.yaml).

    Returns:
        A list of {"name": dotted item, "published": value, "used": value}, in a fixed order
        (model, train, per-config, data source, world size); empty when the run is closed.
    """
    recipe = (published or config.published())["recipe"]
    per_config = recipe["per_config"][cfg.name]
    pairs = [(f"model.{k}", v, getattr(cfg.model, k)) for k, v in recipe["model"].items()]
    pairs += [(f"train.{k}", v, getattr(cfg.train, k)) for k, v in recipe["train"].items()]
    pairs += [
        ("train.batch_per_gpu", per_config["batch_per_gpu"], cfg.train.batch_per_gpu),
        ("train.gpus", per_config["gpus"], cfg.train.gpus),
        ("codec.sigma", per_config["sigma"], cfg.codec.sigma),
        ("data.source", PUBLISHED_DATA_SOURCE, cfg.data.source),
        ("world_size", per_config["gpus"], world_size),
    ]
    return [{"name": name, "published": _plain(p), "used": _plain(u)}
            for name, p, u in pairs if not _same(p, u)]


def recipe_status(diff: list) -> str:
    """"closed" when the run is exactly the published recipe, else "open"."""
    return "open" if diff else "closed"
