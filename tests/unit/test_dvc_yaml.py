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
def test_data_stage_out_is_where_the_config_reads_data(profile):
    cfg = config.load(REPO / "params.yaml", profile=profile)
    out = next(iter(DVC["stages"]["data"]["outs"][0]))
    assert out.replace("${profile}", profile) == cfg.data.root


def test_train_and_evaluate_run_for_every_config():
    params = config.read_params(REPO / "params.yaml")
    assert set(params["configs"]) == {"256x192", "384x288"}
    for name in ("train", "evaluate", "evaluate_published"):
        assert DVC["stages"][name]["foreach"] == "${configs}"
