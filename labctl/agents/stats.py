"""Statistics for one contrast: group summaries, Welch's t, one-way ANOVA, power, and an e-value.

Pure numeric functions (numpy/scipy); `labctl.agents.verdict` applies them to a hypothesis.

Sequential testing uses the safe two-sample t-test (Pérez-Ortiz, Lardy, de Heide & Grünwald,
"E-statistics, group invariance and anytime valid testing", 2022; Grünwald, de Heide & Koolen,
"Safe testing", JRSS-B 2024). The pooled t statistic is the maximal invariant of the normal
location-scale model, so the ratio of its noncentral-t to central-t density, mixed over a prior
on the standardised effect delta, is a test martingale under delta = 0 in the filtration of the
maximal invariants. Ville's inequality then bounds the probability that the e-value ever reaches
1/alpha, at any look and any stopping rule, by alpha.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats as sps


class GroupStats(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: str
    n: int
    mean: float
    sd: float
    sem: float
    cv: float | None
    minimum: float
    maximum: float


def describe(level: str, values: Sequence[float]) -> GroupStats:
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    return GroupStats(level=level, n=n, mean=mean, sd=sd, sem=sd / math.sqrt(n) if n > 1 else math.nan,
                      cv=sd / mean if n > 1 and mean else None,
                      minimum=float(x.min()) if n else math.nan, maximum=float(x.max()) if n else math.nan)


class WelchResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    difference: float  # mean(treatment) - mean(baseline)
    se: float
    df: float
    t: float
    p_value: float  # two-sided
    ci_low: float
    ci_high: float
    ci_level: float


def welch(baseline: Sequence[float], treatment: Sequence[float], ci_level: float = 0.95) -> WelchResult:
    """Welch's unequal-variance t-test of treatment - baseline, with its confidence interval."""
    a, b = np.asarray(baseline, float), np.asarray(treatment, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's t-test needs at least 2 values per group")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    diff = float(b.mean() - a.mean())
    if se == 0:
        # Identical values in each group: the difference is exact.
        p = 1.0 if diff == 0 else 0.0
        return WelchResult(difference=diff, se=0.0, df=float(len(a) + len(b) - 2), t=math.copysign(math.inf, diff) if diff else 0.0,
                           p_value=p, ci_low=diff, ci_high=diff, ci_level=ci_level)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = diff / se
    p = float(2 * sps.t.sf(abs(t), df))
    q = float(sps.t.ppf(0.5 + ci_level / 2, df))
    return WelchResult(difference=diff, se=se, df=df, t=t, p_value=p, ci_low=diff - q * se, ci_high=diff + q * se,
                       ci_level=ci_level)


class AnovaResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    f: float
    df_between: int
    df_within: int
    p_value: float
    eta_squared: float


def anova(groups: Sequence[Sequence[float]]) -> AnovaResult:
    """One-way ANOVA across groups (scipy.stats.f_oneway) with eta squared as the effect size."""
    arrays = [np.asarray(g, float) for g in groups]
    if len(arrays) < 2 or any(len(g) < 2 for g in arrays):
        raise ValueError("ANOVA needs at least 2 groups of at least 2 values")
    result = sps.f_oneway(*arrays)
    everything = np.concatenate(arrays)
    total = float(((everything - everything.mean()) ** 2).sum())
    between = float(sum(len(g) * (g.mean() - everything.mean()) ** 2 for g in arrays))
    f, p = float(result.statistic), float(result.pvalue)
    if not math.isfinite(f):  # zero within-group variance
        f, p = (math.inf, 0.0) if between > 0 else (0.0, 1.0)
    return AnovaResult(f=f, df_between=len(arrays) - 1, df_within=len(everything) - len(arrays), p_value=p,
                       eta_squared=between / total if total > 0 else 0.0)


def power_two_sample(n_per_group: int, effect_sd_units: float, alpha: float) -> float:
    """Power of a two-sided two-sample t-test (equal n, equal variance) to detect a standardised effect."""
    if n_per_group < 2:
        return 0.0
    df = 2 * n_per_group - 2
    nc = abs(effect_sd_units) * math.sqrt(n_per_group / 2)
    q = sps.t.ppf(1 - alpha / 2, df)
    return float(sps.nct.sf(q, df, nc) + sps.nct.cdf(-q, df, nc))


def replicates_for_power(effect_sd_units: float, alpha: float, power: float, n_max: int = 500) -> int:
    """Smallest n per group (>= 2) reaching the power, or n_max if it is never reached."""
    for n in range(2, n_max + 1):
        if power_two_sample(n, effect_sd_units, alpha) >= power:
            return n
    return n_max


# --- sequential: the safe two-sample t-test ----------------------------------------------------

Side = Literal["greater", "less", "two-sided"]


def _pooled_t(baseline: np.ndarray, treatment: np.ndarray) -> tuple[float, int, float]:
    n1, n2 = len(baseline), len(treatment)
    df = n1 + n2 - 2
    pooled = ((n1 - 1) * baseline.var(ddof=1) + (n2 - 1) * treatment.var(ddof=1)) / df
    n_eff = n1 * n2 / (n1 + n2)
    diff = treatment.mean() - baseline.mean()
    if pooled <= 0:
        return (math.copysign(1e6, diff) if diff else 0.0), df, n_eff
    return float(diff / math.sqrt(pooled / n_eff)), df, n_eff


def _delta_grid(side: Side, centre: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Alternatives for the mixture: standardised effects 0.25..3 away from `centre`, equal weights."""
    steps = np.arange(0.25, 3.01, 0.25)
    if side == "greater":
        deltas = centre + steps
    elif side == "less":
        deltas = centre - steps
    else:
        deltas = np.concatenate([centre - steps, centre + steps])
    return deltas, np.full(len(deltas), 1.0 / len(deltas))


def e_value(baseline: Sequence[float], treatment: Sequence[float], side: Side = "greater",
            null_delta: float = 0.0) -> float:
    """Mixture likelihood ratio of the pooled t statistic: alternatives on `side` of null_delta vs null_delta.

    With null_delta = 0 this is the safe t-test's e-value; large values are evidence against the null.
    """
    a, b = np.asarray(baseline, float), np.asarray(treatment, float)
    if len(a) < 2 or len(b) < 2:
        return 1.0
    t, df, n_eff = _pooled_t(a, b)
    deltas, weights = _delta_grid(side, null_delta)
    root = math.sqrt(n_eff)
    log_null = sps.nct.logpdf(t, df, null_delta * root) if null_delta else sps.t.logpdf(t, df)
    log_alt = sps.nct.logpdf(t, df, deltas * root)
    if not np.isfinite(log_null):
        return math.inf if np.any(np.isfinite(log_alt)) else 1.0
    value = float(np.sum(weights * np.exp(np.clip(log_alt - log_null, -700, 700))))
    return value if math.isfinite(value) else math.inf
