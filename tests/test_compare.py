"""Comparators: each one's verdicts and messages, including the chi-square test's false-alarm rate."""
import math

import numpy as np
import pytest

from grader.checks import compare


def test_registry_names():
    assert {"shape", "allclose", "accuracy", "chi2"} <= set(compare.COMPARATORS)


def test_allclose_passes_within_tolerance_and_reports_without_gold_values():
    a = np.ones((2, 3))
    assert compare.allclose(a + 1e-6, a).ok
    bad = compare.allclose(a + np.eye(2, 3) * 0.5, a)
    assert not bad.ok
    assert "2 of 6 values differ" in bad.detail and "0.5" in bad.detail
    assert "1.0" not in bad.detail          # the expected values themselves are never printed


def test_allclose_shape_and_nan():
    assert "shape [2, 2], expected [2, 3]" in compare.allclose(np.ones((2, 2)), np.ones((2, 3))).detail
    assert "NaN" in compare.allclose(np.full((2,), np.nan), np.ones(2)).detail


def test_accuracy():
    pred = np.array([[1, 2], [3, 4]])
    assert compare.accuracy(pred, np.array([[1, 2], [0, 4]])).value == pytest.approx(75.0)
    assert not compare.accuracy(pred, np.zeros((3, 2))).ok


@pytest.mark.parametrize("x,df,expected", [(3.84146, 1, 0.05), (18.307, 10, 0.05), (0.0, 3, 1.0),
                                           (29.588, 10, 0.001), (76.154, 50, 0.01)])
def test_chi2_sf_matches_tables(x, df, expected):
    assert compare.chi2_sf(x, df) == pytest.approx(expected, rel=0.02)


def test_chi_square_false_alarm_rate_is_about_alpha():
    """Correct samplers: over 400 seeded trials at alpha 0.05, about 5% fail (binomial band)."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(12))
    fails = sum(not compare.chi_square(rng.choice(12, size=500, p=p), p, 0.05).ok for _ in range(400))
    assert 8 <= fails <= 35            # mean 20, sd ~4.4


def test_chi_square_catches_the_wrong_temperature():
    rng = np.random.default_rng(1)
    z = rng.normal(size=20) * 2
    right = np.exp(2 * z) / np.exp(2 * z).sum()
    wrong = np.exp(z / 2) / np.exp(z / 2).sum()
    draws = rng.choice(20, size=2000, p=wrong)
    result = compare.chi_square(draws, right, 0.001)
    assert not result.ok and "do not follow" in result.detail


def test_chi_square_impossible_draw_fails():
    p = np.array([0.5, 0.5, 0.0])
    assert not compare.chi_square(np.array([0, 1, 2] * 10), p).ok
    assert not compare.chi_square(np.array([0, 5]), p).ok
