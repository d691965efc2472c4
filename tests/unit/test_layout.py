"""The package layout: the flat core, then repro.tracking, repro.data, repro.evaluation, repro.engine,
repro.report, and the entry points (cli, smoke, reference_build) on top; a module imports only its own layer
and those below. mlflow is imported only when a run is recorded."""
import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

ORDER = ("core", "tracking", "data", "evaluation", "engine", "report", "entry")
ENTRY_POINTS = {"cli", "smoke", "reference_build"}


def layer(module: str) -> str:
    """The layer of a dotted module name under repro."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ORDER:
        return parts[1]
    return "entry" if len(parts) > 1 and parts[1] in ENTRY_POINTS else "core"


def imported(path) -> set:
    """repro modules (and layer packages) a file imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= ({f"repro.{a.name}" for a in node.names} if node.module == "repro" else {node.module})
    return {n for n in names if n.startswith("repro.")}


MODULES = sorted(p for p in (REPO / "repro").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_imports_a_layer_above_its_own(path):
    me = layer(".".join(path.relative_to(REPO).with_suffix("").parts))
    upward = sorted(n for n in imported(path) if ORDER.index(layer(n)) > ORDER.index(me))
    assert not upward, f"{path.relative_to(REPO)} ({me}) imports {upward}"


@pytest.mark.parametrize("module", ["repro.engine.train", "repro.evaluation.run", "repro.report.compare", "repro.cli"])
def test_importing_a_step_does_not_import_mlflow(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", f"{module} imports {out.stdout.strip()}"
