"""scripts/test.sh runs the suite on several pytest-xdist workers: tests that share one of our module- or
session-scoped fixtures must run on one worker, so that fixture (the smoke pipeline, a trained run) is built
once, not once per worker (tests/conftest.py groups them)."""
import pytest

from tests.conftest import REPO

pytest_plugins = ["pytester"]

INNER_CONFTEST = """
import os, time
import pytest
from tests.conftest import pytest_collection_modifyitems  # noqa: F401  (the hook under test)

@pytest.fixture(scope="session")
def expensive():
    with open(os.environ["BUILT_LOG"], "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")
    time.sleep(0.5)

@pytest.fixture(scope="module")
def per_module():
    pass
"""
INNER_TESTS = """
import time
import pytest

@pytest.mark.parametrize("i", range(6))
def test_uses_the_session_fixture(expensive, i):
    time.sleep(0.3)

@pytest.mark.parametrize("i", range(6))
def test_independent(i):
    time.sleep(0.3)
"""


@pytest.fixture
def inner(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("BUILT_LOG", str(tmp_path / "built.log"))
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester, tmp_path / "built.log"


def test_a_session_fixture_is_built_once_across_two_workers(inner):
    pytester, log = inner
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=12)
    assert len(log.read_text().split()) == 1, log.read_text()   # without the groups: once per worker


def test_only_tests_that_share_a_fixture_of_ours_are_grouped(inner):
    pytester, _ = inner
    pytester.makepyfile(test_module_scope="def test_a(per_module): pass\ndef test_b(per_module): pass\n"
                                          "def test_c(tmp_path_factory): pass\n")
    items, _ = pytester.inline_genitems("-p", "no:cacheprovider")
    groups = {item.name: [m.args[0] for m in item.iter_markers("xdist_group")] for item in items}
    assert {groups[f"test_uses_the_session_fixture[{i}]"][0] for i in range(6)} == {".:expensive"}
    assert groups["test_a"] == groups["test_b"] == ["test_module_scope:per_module"]
    # a builtin session fixture (tmp_path_factory) and no fixture at all: spread one by one
    assert groups["test_c"] == [] and all(groups[f"test_independent[{i}]"] == [] for i in range(6))
