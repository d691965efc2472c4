"""Tier E, strict, on any platform: the committed smoke reference checkpoints, evaluated by the code under
test on freshly generated smoke val data, reproduce their committed stats and golden predictions."""
from repro.report import tables
from tests.conftest import CONFIGS


def test_committed_reference_passes_tier_e_strict(run_tier_e):
    results, problems = run_tier_e(list(CONFIGS))
    print(tables.render_results(results))
    assert all(r.ran for r in results) and problems == []
    assert {row.metric for r in results for row in r.rows} >= {"AP", "AR_L", "golden", "data"}
