"""Verdict rules on constructed data, and simulation studies of their error rates."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.agents.hypothesis import parse_hypothesis
from labctl.agents.stats import anova, e_value, welch
from labctl.agents.verdict import Observation, analyse, sequential_decision


def observations(baseline, treatment, levels=(0.4, 0.8)):
    out = [Observation(run_id=f"b{i}", cell={"infill_density": levels[0]}, value=v) for i, v in enumerate(baseline)]
    out += [Observation(run_id=f"t{i}", cell={"infill_density": levels[1]}, value=v) for i, v in enumerate(treatment)]
    return out


def synthetic(rng, n, ratio, cv=0.10, mean=2600.0):
    return mean * np.exp(rng.normal(0, cv, n)), mean * ratio * np.exp(rng.normal(0, cv, n))


def test_welch_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 1, 7), rng.normal(11, 3, 9)
    w = welch(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert w.p_value == pytest.approx(ref.pvalue) and w.t == pytest.approx(ref.statistic)
    ci = ref.confidence_interval(0.95)
    assert (w.ci_low, w.ci_high) == pytest.approx((ci.low, ci.high))


def test_anova_matches_scipy():
    from scipy import stats

    groups = [[1, 2, 3, 2], [2, 3, 4, 3], [5, 6, 5, 7]]
    assert anova(groups).p_value == pytest.approx(stats.f_oneway(*groups).pvalue)
    assert 0 < anova(groups).eta_squared < 1


def test_verdicts_on_clear_data(hypothesis_data):
    h = parse_hypothesis(hypothesis_data)  # increase by >= 15 %
    base = [2500, 2550, 2600, 2650, 2580, 2620]
    up = [v * 1.4 for v in base[::-1]]
    result = analyse(h, observations(base, up))
    assert result.verdict == "supported"
    assert result.effect.estimate == pytest.approx(0.4, abs=0.01)
    assert result.effect.ci_low > 0 and result.effect.minimum_effect == pytest.approx(0.15)
    down = [v * 0.7 for v in base[::-1]]
    assert analyse(h, observations(base, down)).verdict == "refuted"  # significant the other way
    tiny = [v * 1.03 for v in base[::-1]]
    small = analyse(h, observations(base, tiny))
    assert small.verdict == "refuted" and "before the claimed minimum" in small.reason  # real but < 15 %
    noisy = analyse(h, observations([2000, 3000, 2500], [2100, 3500, 2400]))
    assert noisy.verdict == "inconclusive"
    assert analyse(h, observations([2500], [2600, 2700])).verdict == "inconclusive"


def test_differ_uses_anova(hypothesis_data):
    hypothesis_data["factors"][0]["levels"] = [0.2, 0.5, 0.8]
    hypothesis_data["prediction"] = {"direction": "differ", "minimum_effect": 0.1}
    h = parse_hypothesis(hypothesis_data)
    rng = np.random.default_rng(3)
    obs = [Observation(run_id=f"{lvl}-{i}", cell={"infill_density": lvl}, value=float(v))
           for lvl, mean in ((0.2, 2000), (0.5, 2600), (0.8, 2300)) for i, v in enumerate(rng.normal(mean, 50, 5))]
    result = analyse(h, obs)
    assert result.test == "anova" and result.anova is not None and result.verdict == "supported"
    assert [g.n for g in result.groups] == [5, 5, 5]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fixed_sample_error_rates(hypothesis_data, seed):
    """Under no effect, support stays <= alpha; under a real 30 % effect it is found nearly always."""
    h = parse_hypothesis(hypothesis_data)
    rng = np.random.default_rng(seed)
    trials = 400
    false_support = sum(analyse(h, observations(*synthetic(rng, 9, 1.0))).verdict == "supported" for _ in range(trials))
    true_support = sum(analyse(h, observations(*synthetic(rng, 9, 1.3))).verdict == "supported" for _ in range(100))
    # alpha / 2 = 2.5 % expected; 5 % is > 3.5 binomial SDs above it.
    assert false_support / trials <= h.alpha
    assert true_support >= 90


@pytest.mark.parametrize("seed", [0, 1])
def test_sequential_error_rates(hypothesis_data, seed):
    """Anytime validity: looking after every batch, support under no effect stays <= alpha."""
    hypothesis_data["sequential"] = {"batch_size": 2}
    h = parse_hypothesis(hypothesis_data)
    rng = np.random.default_rng(100 + seed)

    def campaign(ratio, max_per_group=20):
        base, treat = synthetic(rng, max_per_group, ratio)
        for n in range(2, max_per_group + 1, 2):
            d = sequential_decision(h, observations(base[:n], treat[:n]), budget_left=n < max_per_group)
            if d.stop:
                return d.verdict, n
        raise AssertionError("the budget's end must stop the campaign")

    null = [campaign(1.0) for _ in range(200)]
    assert sum(v == "supported" for v, _ in null) / len(null) <= h.alpha
    real = [campaign(1.3) for _ in range(60)]
    supported = [n for v, n in real if v == "supported"]
    assert len(supported) >= 54
    assert np.median(supported) < 20  # stops early: reality is asked less often than the budget allows
    # An effect well below the claim gets refuted, not supported.
    none = [campaign(1.0, 40) for _ in range(40)]
    assert sum(v == "refuted" for v, _ in none) >= 20


def test_e_value_direction():
    a = [1.0, 1.1, 0.9, 1.05, 0.95]
    b = [2.0, 2.1, 1.9, 2.05, 1.95]
    assert e_value(a, b, "greater") > 100
    assert e_value(a, b, "less") < 1
    assert e_value(a, [1.0], "greater") == 1.0


def test_curve_distance():
    from labctl.agents.fabrication import curve_distance

    x = np.linspace(0, 5, 100)
    y = 40 * np.tanh(x)
    assert curve_distance(x, y, list(x[::5]), list(y[::5])) == pytest.approx(0, abs=1e-9)
    assert curve_distance(x, y + 2.0, list(x[::5]), list(y[::5])) == pytest.approx(2.0, abs=1e-9)
    # Past the measured break the measured stress counts as zero.
    assert curve_distance(x[:50], y[:50], [6.0, 7.0], [10.0, 10.0]) == pytest.approx(10.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sequential_never_supports_a_real_effect_smaller_than_claimed(hypothesis_data, seed):
    """A true +8 % effect (CV 3 %) against a claim of "at least +20 %": detected, but never supported."""
    hypothesis_data["sequential"] = {"batch_size": 2}
    hypothesis_data["prediction"] = {"direction": "increase", "minimum_effect": 0.2}
    h = parse_hypothesis(hypothesis_data)
    rng = np.random.default_rng(300 + seed)
    base, treat = synthetic(rng, 16, 1.08, cv=0.03)
    for n in range(2, 17, 2):
        d = sequential_decision(h, observations(base[:n], treat[:n]), budget_left=n < 16)
        if d.stop:
            break
    assert d.stop and d.verdict == "refuted", d.reason
