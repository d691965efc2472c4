"""The environment holds exactly what constraints.txt pins (whichever installer scripts/env.sh used)."""
import importlib.metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"


def pins(path: Path) -> dict:
    """{name: version} for every `name==version` line (comments and blanks skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{path}: {line!r} is not pinned with =="
            out[name.strip()] = version.strip()
    return out


def mismatches(pinned: dict) -> list:
    """'name: pinned X, installed Y' for each pin the environment does not satisfy. A local version label
    (torch 2.13.0+cpu) satisfies ==2.13.0, as PEP 440 says and as both installers treat it."""
    wrong = []
    for name, version in pinned.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or installed not in SpecifierSet(f"=={version}"):
            wrong.append(f"{name}: pinned {version}, installed {installed}")
    return wrong


def test_installed_versions_equal_constraints():
    pinned = pins(CONSTRAINTS)
    assert len(pinned) > 100       # the whole lock, not a parse that found nothing
    assert mismatches(pinned) == []


def test_a_pin_that_differs_is_reported():
    version = importlib.metadata.version("numpy")
    assert mismatches({"numpy": version + ".1"}) == [f"numpy: pinned {version}.1, installed {version}"]
    assert mismatches({"no-such-dist-xyz": "1.0"}) == ["no-such-dist-xyz: pinned 1.0, installed None"]


@pytest.mark.parametrize("line", ["torch>=2", "torch"])
def test_an_unpinned_line_is_refused(tmp_path, line):
    path = tmp_path / "constraints.txt"
    path.write_text(line + "\n")
    with pytest.raises(AssertionError, match="not pinned"):
        pins(path)
