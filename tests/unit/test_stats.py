from __future__ import annotations

import math

import pytest

from harness.analysis import stats


def test_descriptive_statistics_by_hand() -> None:
    values = [1.0, 2.0, 3.0, 4.0, float("nan")]
    assert stats.mean(values) == 2.5
    assert stats.median(values) == 2.5
    assert stats.sample_std(values) == pytest.approx(math.sqrt(5 / 3))  # n − 1
    assert stats.cv_pct(values) == pytest.approx(math.sqrt(5 / 3) / 2.5 * 100)
    assert stats.percentile(values, 5) == pytest.approx(1.15)
    assert math.isnan(stats.sample_std([1.0]))
    s = stats.summarize(values)
    assert (s.n, s.min, s.max) == (4, 1.0, 4.0)


def test_t_interval_by_hand() -> None:
    ci = stats.t_interval([10.0, 12.0, 14.0])
    # mean 12, s = 2, se = 2/√3, t(0.975, 2) = 4.302653
    half = 4.302653 * 2 / math.sqrt(3)
    assert ci.low == pytest.approx(12 - half, rel=1e-6)
    assert ci.high == pytest.approx(12 + half, rel=1e-6)
    assert ci.contains(12) and not ci.contains(30)
    assert math.isnan(stats.t_interval([1.0]).low)


def test_bootstrap_is_seeded_and_covers_the_median() -> None:
    values = [float(v) for v in range(1, 31)]
    a = stats.bootstrap_interval([values], lambda g: stats.median(g[0]), seed=7)
    b = stats.bootstrap_interval([values], lambda g: stats.median(g[0]), seed=7)
    assert a == b and a.method == "bootstrap"
    assert a.low < 15.5 < a.high


def test_tests_find_a_real_difference_and_not_noise() -> None:
    a = [100.0 + 0.1 * (i % 5) for i in range(20)]
    b = [105.0 + 0.1 * (i % 5) for i in range(20)]
    c = stats.compare(a, b)
    assert c.welch.p_value < 1e-6 and c.mann_whitney.p_value < 1e-6
    assert c.difference == pytest.approx(5.0) and c.significant
    # a consistent offset smaller than the noise threshold (1 % of 100) is not claimed
    tiny = stats.compare(a, [v + 0.3 for v in a])
    assert tiny.welch.p_value < 0.05 and not tiny.significant


def test_noise_threshold_has_a_relative_floor() -> None:
    assert stats.noise_threshold([100.0, 100.0, 100.0]) == pytest.approx(1.0)
    wide = [80.0, 100.0, 120.0]
    assert stats.noise_threshold(wide) == pytest.approx(stats.t_interval(wide).half_width)


def test_stability_warnings() -> None:
    assert stats.stability_warnings([10.0, 10.1, 9.9, 10.0], label="ok") == []
    warn = stats.stability_warnings(
        [50.0, 100.0], label="cfg", durations_in_run_order=[30.0, 10.0, 10.5], failed_runs=1
    )
    text = " ".join(warn)
    assert "failed run" in text and "only 2 run" in text and "CV" in text and "first run" in text
