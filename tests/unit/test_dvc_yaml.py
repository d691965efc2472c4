"""dvc.yaml declares what the code reads: each stage's deps are its script and every repro/ file it
imports (transitively), so an unchanged stage is skipped and a changed module reruns its stages."""
import ast
import re

import pytest
import yaml

from repro import config
from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())


def repro_imports(path, seen=None) -> set:
    """repro/ files that `path` imports, transitively: modules, and the __init__.py of each layer package
    (repro/data/, repro/engine/, ...) on the way, which Python runs first."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if not name.startswith("repro."):
                continue
            parts = name.split(".")
            packages = [REPO.joinpath(*parts[:i], "__init__.py") for i in range(2, len(parts) + 1)]
            for target in [p for p in packages if p.is_file()] + [REPO / (name.replace(".", "/") + ".py")]:
                if target.is_file() and target not in seen:
                    seen.add(target)
                    repro_imports(target, seen)
    return seen


def declared(stage: dict) -> set:
    return {REPO / d for d in stage["deps"] if d.endswith((".py", ".yaml"))}


def stages():
    for name, stage in DVC["stages"].items():
        yield name, stage.get("do", stage)


@pytest.mark.parametrize("name,stage", list(stages()))
def test_deps_are_the_stage_script_and_its_imports(name, stage):
    script = REPO / (re.search(r"python -m (stages\.\w+)", stage["cmd"]).group(1).replace(".", "/") + ".py")
    expected = {script} | repro_imports(script)
    if REPO / "repro/config.py" in expected:
        expected.add(REPO / "repro/published.yaml")   # config.published() reads it
    if REPO / "repro/report/plan.py" in expected:
        expected.add(REPO / "repro/throughput.yaml")  # plan.read_table() reads it
    missing = sorted(str(p.relative_to(REPO)) for p in expected - declared(stage))
    extra = sorted(str(p.relative_to(REPO)) for p in declared(stage) - expected)
    assert not missing and not extra, f"{name}: missing deps {missing}, deps not imported {extra}"


@pytest.mark.parametrize("profile", config.PROFILES)
def test_data_stages_write_the_parts_the_config_reads(profile):
    from repro.data import prepare
    cfg = config.load(REPO / "params.yaml", profile=profile)
    for part, stage in (("val", "data_val"), ("train", "data_train")):
        outs = [next(iter(o)).replace("${profile}", profile) for o in DVC["stages"][stage]["outs"]]
        assert outs == [f"{cfg.data.root}/{d}" for d in prepare.PARTS[part]]
        assert f"--part {part}" in DVC["stages"][stage]["cmd"]
        # DVC would delete them before a rerun: downloads and extracted trees must survive it.
        assert all(o[next(iter(o))] == {"cache": False, "persist": True} for o in DVC["stages"][stage]["outs"])


def test_evaluations_do_not_depend_on_the_training_images():
    """Tier A on real COCO must not wait for train2017's 19 GB: no evaluation stage reads it."""
    for name in ("evaluate", "evaluate_published", "evaluate_reference"):
        data = [d for d in DVC["stages"][name]["do"]["deps"] if d.startswith("data/")]
        assert data == [f"data/${{profile}}/{d}" for d in ("val2017", "annotations", "person_detection_results")]
    assert "data/${profile}/train2017" in DVC["stages"]["train"]["do"]["deps"]


def _param_present(params: dict, dotted: str) -> bool:
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("profile", config.PROFILES)
def test_every_stage_param_exists_in_both_profiles(profile):
    """DVC refuses to run any stage whose listed param is missing from params.yaml ("Parameters ... are missing"):
    each one, with ${profile} and the foreach ${key} filled in, must be there for every profile."""
    params = config.read_params(REPO / "params.yaml")
    for name, stage in DVC["stages"].items():
        keys = list(params["configs"]) if "foreach" in stage else [None]
        for key in keys:
            for entry in stage.get("do", stage).get("params", []):
                dotted = entry.replace("${profile}", profile).replace("${key}", str(key))
                assert _param_present(params, dotted), f"{name}: param {dotted} is not in params.yaml"


def test_train_and_evaluate_run_for_every_config():
    params = config.read_params(REPO / "params.yaml")
    assert set(params["configs"]) == {"256x192", "384x288"}
    for name in ("train", "evaluate", "evaluate_published"):
        assert DVC["stages"][name]["foreach"] == "${configs}"
