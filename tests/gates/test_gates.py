"""Gate tests on the output of a fresh pipeline run: `scripts/repro.sh` in a fresh copy (the session fixture
`smoke_pipeline`, shared with tests/e2e/test_smoke_pipeline.py), then every tier against its reference, the
way CI gates a pull request. The smoke profile's own tiers (S: the fine-tune against the baseline entry of its
training precision; E: the committed reference checkpoints against their golden stats and predictions) must
run and pass; the full-profile tiers (A, C) must say why they did not run, never pass.

    scripts/test.sh -m slow tests/gates/test_gates.py
"""
import pytest

from repro import config
from repro.report import checks, tables, tiers
from tests.conftest import CONFIGS

pytestmark = pytest.mark.slow
NAMES = CONFIGS


@pytest.fixture(scope="module")
def inputs(smoke_pipeline):
    project, _ = smoke_pipeline
    return checks.load_inputs(project / "reports/metrics", config.PUBLISHED_PATH,
                             project / "reports/baselines/smoke.json")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("tier", tiers.profile_tiers("smoke"))
def test_smoke_tiers_run_and_pass(tier, name, inputs, smoke_pipeline, monkeypatch):
    monkeypatch.chdir(smoke_pipeline[0])   # the records name their files relative to the project, as dvc ran them
    result = tiers.check_tier(tier, name, inputs)
    assert result.ran, f"tier {tier}, {name}: not run: {result.not_run}"
    table = tables.render_results([result])
    print(table)   # shown with -rA / -s, and on failure
    assert not result.failed(), f"tier {tier}, {name}: out of tolerance\n\n{table}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("tier", tiers.profile_tiers("full"))
def test_full_profile_tiers_say_why_they_did_not_run(tier, name, inputs):
    result = tiers.check_tier(tier, name, inputs)
    assert not result.ran and "profile" in result.not_run, (tier, name, result.not_run)
