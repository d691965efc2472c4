"""Student t quantiles against table values and TOST on hand-computed cases."""
import math

import pytest

from repro.report import tost


@pytest.mark.parametrize("p,df,table", [(0.95, 2, 2.919986), (0.95, 4, 2.131847), (0.975, 1, 12.706205),
                                        (0.95, 9, 1.833113), (0.99, 29, 2.462021), (0.5, 3, 0.0)])
def test_t_quantile_matches_the_table(p, df, table):
    assert tost.t_quantile(p, df) == pytest.approx(table, abs=1e-6)
    assert tost.t_quantile(1 - p, df) == pytest.approx(-table, abs=1e-6)


def test_t_cdf_of_one_degree_of_freedom_is_the_cauchy_cdf():
    for t in (-3.0, -0.5, 0.0, 1.0, 7.0):
        assert tost.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)


def test_three_seeds_close_to_the_reference_are_equivalent():
    # mean 0.6223333, s = 0.0015275, se = 0.00088192; t(0.95, 2) = 2.919986 -> half-width 0.0025752
    r = tost.tost([0.621, 0.624, 0.622], reference=0.623, margin=0.005)
    assert r.n == 3 and r.mean == pytest.approx(0.6223333, abs=1e-7) and r.std == pytest.approx(0.0015275, abs=1e-7)
    assert (r.ci_low, r.ci_high) == (pytest.approx(0.6197581, abs=1e-7), pytest.approx(0.6249085, abs=1e-7))
    # the binding test is the lower one: t = (0.6223333 - 0.618) / 0.00088192 = 4.9124, p = P(T_2 > 4.9124)
    assert r.p_value == pytest.approx(0.019506, abs=1e-6)
    assert r.verdict == "equivalent"


def test_a_mean_inside_the_margin_with_a_wide_spread_is_not_equivalent():
    # mean 0.620 is within 0.005 of 0.623, but the 90% interval 0.620 ± 2.919986 * 0.01 / sqrt(3) is not
    r = tost.tost([0.610, 0.620, 0.630], reference=0.623, margin=0.005)
    assert r.ci_low == pytest.approx(0.620 - 2.919986 * 0.01 / math.sqrt(3), abs=1e-6)
    assert r.verdict == "not_equivalent" and r.p_value > 0.05


def test_a_mean_below_the_margin_is_not_equivalent():
    assert tost.tost([0.610, 0.611, 0.612], reference=0.623, margin=0.005).verdict == "not_equivalent"


@pytest.mark.parametrize("values", [[], [0.623], [0.62, float("nan")]])
def test_fewer_than_two_seeds_is_never_a_pass(values):
    r = tost.tost(values, reference=0.623, margin=0.005)
    assert r.verdict == "not_enough_seeds" and r.p_value is None
