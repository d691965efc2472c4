"""The GitHub Actions workflow parses and has the agreed shape: CPU smoke + gates on every pull request,
tier A on self-hosted GPUs on dispatch or a labelled pull request, tier C on a schedule; every job goes
through the README's commands (scripts/test.sh, scripts/repro.sh)."""
import re

import pytest
import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github/workflows/ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def triggers(workflow) -> dict:
    return workflow.get("on", workflow.get(True))   # YAML 1.1 reads a bare `on` key as True


def commands(job) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_triggers_pull_request_dispatch_and_schedule(workflow):
    on = triggers(workflow)
    assert "labeled" in on["pull_request"]["types"] and "synchronize" in on["pull_request"]["types"]
    assert on["workflow_dispatch"]["inputs"]["tier"]["options"] == ["A", "C"]
    assert len(on["schedule"][0]["cron"].split()) == 5


def test_smoke_job_runs_tests_pipeline_strict_gates_and_summary_on_cpu(workflow):
    job = workflow["jobs"]["smoke"]
    assert job["runs-on"] == "ubuntu-latest" and "pull_request" in job["if"]
    setup = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")]
    assert setup and setup[0]["with"]["python-version"] == "3.11"
    run = commands(job)
    assert run.index("scripts/test.sh") < run.index("scripts/repro.sh") < run.index("scripts/test.sh tests/gates")
    gates = [s for s in job["steps"] if "scripts/test.sh tests/gates" in s.get("run", "")][0]
    assert gates["env"] == {"REPRO_STRICT_GATES": "1", "REPRO_GATE_TIERS": "S,E"}
    summary = [s for s in job["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", "")][0]
    assert summary["if"] == "always()" and "reports/comparison.md" in summary["run"]


@pytest.mark.parametrize("name,tiers,event", [("tier-a", "A", "workflow_dispatch"), ("tier-c", "A,C", "schedule")])
def test_gpu_jobs_run_the_full_profile_on_self_hosted_gpus(workflow, name, tiers, event):
    job = workflow["jobs"][name]
    assert job["runs-on"] == ["self-hosted", "gpu"]
    assert event in job["if"] and job["env"]["REPRO_PROFILE"] == "full"
    run = commands(job)
    assert "profile: full" in run and "scripts/repro.sh" in run and "scripts/test.sh tests/gates" in run
    gates = [s for s in job["steps"] if "scripts/test.sh tests/gates" in s.get("run", "")][0]
    assert gates["env"] == {"REPRO_STRICT_GATES": "1", "REPRO_GATE_TIERS": tiers}


def test_tier_a_runs_on_labelled_pull_requests_and_only_the_published_evaluation(workflow):
    job = workflow["jobs"]["tier-a"]
    assert "contains(github.event.pull_request.labels.*.name, 'gpu')" in job["if"]
    assert "scripts/repro.sh evaluate_published" in commands(job)


def test_the_scripts_the_workflow_calls_are_executable_and_ci_runs_the_readme_test_command():
    import os
    for script in ("scripts/test.sh", "scripts/repro.sh", ".ci/run"):
        assert os.access(REPO / script, os.X_OK), f"{script} is not executable"
    ci = [line for line in (REPO / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "exec scripts/test.sh", ci   # CI runs the README's test command and nothing else
    readme = (REPO / "README.md").read_text()
    assert re.search(r"(?m)^scripts/repro.sh +# the main job", readme) and re.search(r"(?m)^scripts/test.sh +# the test suite", readme)
