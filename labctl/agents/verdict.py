"""From measured responses to a verdict on the hypothesis: supported, refuted or inconclusive.

The contrast is treatment vs baseline of the tested factor, pooled over the other factors' cells
(the design is balanced, so they cancel). Relative effects are analysed on the log scale (the
ratio of means becomes a difference, and its confidence interval maps back to a ratio); absolute
effects on the raw scale.

Fixed-sample verdict (level alpha, CI at 1 - alpha, two-sided; m = the claimed minimum effect):
- directional prediction (increase / decrease), decided by Welch's t on the contrast (ANOVA is
  reported alongside when the factor has more than two levels):
  * refuted if the CI lies entirely short of m (the effect, if any, is smaller than claimed) or
    the effect is significant in the opposite direction;
  * supported if, otherwise, the effect is significant (p < alpha) in the predicted direction,
    i.e. the CI excludes zero on the predicted side;
  * inconclusive otherwise.
  Refuted takes precedence: a real but smaller-than-claimed effect refutes "at least m".
  False support under no effect happens at most alpha / 2 of the time.
- "differ": significant by ANOVA (or Welch for two levels) -> supported; CI of the contrast inside
  (-m, m) -> refuted (an equivalence conclusion); else inconclusive.

Sequential verdict (see labctl.agents.stats for the e-value): after each batch, supported as soon
as E_support >= 1/alpha (alternatives on the predicted side of zero); refuted as soon as
E_refute >= 1/alpha, where E_refute tests "delta = m / assumed sd" against smaller effects (for
"differ", both one-sided e-values against +m and -m must reach 1/alpha: an intersection-union
test). Either error is then at most alpha, whenever the campaign stops. The minimum effect is
standardised with the hypothesis's assumed CV, the only place an assumption enters an analysis.
If the budget runs out first, the verdict is inconclusive. An effect established in the predicted
direction (E_support >= 1/alpha) whose fixed-sample CI ends short of m is not support: the campaign
continues until E_refute decides, and a budget spent in that state ends as refuted.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .capabilities import MATERIALS
from .hypothesis import Hypothesis, Level
from .stats import AnovaResult, GroupStats, WelchResult, anova, describe, e_value, power_two_sample, welch

VerdictName = Literal["supported", "refuted", "inconclusive"]

DEFAULT_CV = {"modulus": 0.10, "strength": 0.05, "strain_at_break": 0.25, "toughness": 0.20, "curve_distance": 0.25}


class Observation(BaseModel):
    """One specimen's measured response and the design cell it belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    cell: dict[str, Level]
    value: float
    simulated: bool = True


class Effect(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: Literal["relative", "absolute"]
    estimate: float  # relative: mean ratio - 1; absolute: difference of means
    ci_low: float
    ci_high: float
    ci_level: float
    ci95_low: float
    ci95_high: float
    standardised: float  # Hedges' g on the analysis scale
    minimum_effect: float


class Analysis(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verdict: VerdictName
    reason: str
    response: str
    tested_factor: str
    baseline: str
    treatment: str
    groups: list[GroupStats]
    effect: Effect | None
    test: Literal["welch_t", "anova"]
    p_value: float | None
    welch: WelchResult | None = None
    anova: AnovaResult | None = None
    power_at_minimum_effect: float | None = None
    alpha: float
    n_observations: int
    simulated: bool
    sequential: dict[str, Any] | None = Field(None, description="e-values and thresholds, in sequential mode")


def assumed_cv(h: Hypothesis) -> float:
    return h.assumptions.cv or DEFAULT_CV[h.response]


def assumed_baseline_mean(h: Hypothesis) -> float | None:
    if h.assumptions.baseline_mean:
        return h.assumptions.baseline_mean
    material = MATERIALS[h.fixed.material]
    return {"modulus": material.modulus_mpa, "strength": material.strength_mpa,
            "strain_at_break": material.strain_at_break}.get(h.response)


def minimum_effect_on_scale(h: Hypothesis, relative: bool | None = None) -> float:
    """The claimed minimum effect as a signed difference on the analysis scale (log for relative)."""
    relative = h.prediction.scale == "relative" if relative is None else relative
    m = h.prediction.minimum_effect
    sign = -1.0 if h.prediction.direction == "decrease" else 1.0
    return math.log1p(sign * m) if relative else sign * m


def minimum_effect_sd_units(h: Hypothesis) -> float:
    """The minimum effect in units of the assumed standard deviation (for power and the refute e-value)."""
    cv = assumed_cv(h)
    if h.prediction.scale == "relative":
        return abs(minimum_effect_on_scale(h)) / math.log1p(cv)
    baseline = assumed_baseline_mean(h)
    if baseline is None:
        # No guess of the level: read the absolute effect as a fraction of an unknown mean of 1.
        baseline = 1.0
    return h.prediction.minimum_effect / (cv * baseline)


def _split(h: Hypothesis, observations: list[Observation]) -> dict[str, list[float]]:
    tested = h.tested_factor()
    groups: dict[str, list[float]] = {str(level): [] for level in tested.levels}
    for obs in observations:
        key = str(obs.cell.get(tested.name))
        if key in groups and math.isfinite(obs.value):
            groups[key].append(obs.value)
    return groups


def _relative_possible(h: Hypothesis, groups: dict[str, list[float]]) -> bool:
    return h.prediction.scale == "relative" and all(v > 0 for values in groups.values() for v in values)


def analyse(h: Hypothesis, observations: list[Observation]) -> Analysis:
    """Fixed-sample analysis and verdict (see the module docstring for the exact rules)."""
    groups = _split(h, observations)
    relative = _relative_possible(h, groups)
    transform = np.log if relative else np.asarray
    base_key, treat_key = str(h.baseline_level()), str(h.treatment_level())
    base = np.asarray(transform(np.asarray(groups[base_key], float)))
    treat = np.asarray(transform(np.asarray(groups[treat_key], float)))
    common = dict(response=h.response, tested_factor=h.tested_factor().name, baseline=base_key, treatment=treat_key,
                  groups=[describe(k, v) for k, v in groups.items()], alpha=h.alpha,
                  n_observations=sum(len(v) for v in groups.values()),
                  simulated=any(o.simulated for o in observations) if observations else True)
    if len(base) < 2 or len(treat) < 2:
        return Analysis(verdict="inconclusive", reason="fewer than 2 measurements in the baseline or treatment group",
                        effect=None, test="welch_t", p_value=None, **common)
    decision = welch(base, treat, ci_level=1 - h.alpha)
    ci95 = welch(base, treat, ci_level=0.95)
    m = minimum_effect_on_scale(h, relative)
    pooled_sd = math.sqrt(((len(base) - 1) * base.var(ddof=1) + (len(treat) - 1) * treat.var(ddof=1))
                          / (len(base) + len(treat) - 2))
    out = (lambda d: math.expm1(d)) if relative else (lambda d: d)
    effect = Effect(scale="relative" if relative else "absolute", estimate=out(decision.difference),
                    ci_low=out(decision.ci_low), ci_high=out(decision.ci_high), ci_level=1 - h.alpha,
                    ci95_low=out(ci95.ci_low), ci95_high=out(ci95.ci_high),
                    standardised=_standardised(decision.difference, pooled_sd),
                    minimum_effect=out(m))
    power = power_two_sample(min(len(base), len(treat)), abs(m) / pooled_sd, h.alpha) if pooled_sd > 0 else 1.0
    anova_result = None
    full_groups = [np.asarray(transform(np.asarray(v, float))) for v in groups.values()]
    if len(groups) > 2 and all(len(g) >= 2 for g in full_groups):
        anova_result = anova(full_groups)
    use_anova = h.prediction.direction == "differ" and anova_result is not None
    p = anova_result.p_value if use_anova else decision.p_value
    verdict, reason = _decide(h.prediction.direction, decision, m, p, h.alpha)
    return Analysis(verdict=verdict, reason=reason, effect=effect, test="anova" if use_anova else "welch_t",
                    p_value=p, welch=decision, anova=anova_result, power_at_minimum_effect=power, **common)


def _standardised(difference: float, sd: float) -> float:
    if sd > 0:
        return difference / sd
    return math.copysign(math.inf, difference) if difference else 0.0


def _decide(direction: str, w: WelchResult, m: float, p: float, alpha: float) -> tuple[VerdictName, str]:
    significant = p < alpha
    if direction == "differ":
        if significant:
            return "supported", f"the groups differ (p = {p:.3g} < {alpha:g})"
        if -abs(m) < w.ci_low and w.ci_high < abs(m):
            return "refuted", f"the {w.ci_level:.0%} CI lies inside +-{abs(m):.3g}: any difference is below the claim"
        return "inconclusive", f"not significant (p = {p:.3g}) and the CI still reaches the minimum effect"
    sign = 1.0 if direction == "increase" else -1.0
    low, high = sorted((sign * w.ci_low, sign * w.ci_high))  # on the predicted-positive axis
    if significant and sign * w.difference < 0:
        return "refuted", f"significant in the opposite direction (p = {p:.3g})"
    if high < abs(m):
        return "refuted", f"the {w.ci_level:.0%} CI ends before the claimed minimum effect"
    if significant and low > 0:
        return "supported", f"significant in the predicted direction (p = {p:.3g} < {alpha:g}); the CI excludes zero"
    return "inconclusive", f"not significant (p = {p:.3g}) and the CI still reaches the minimum effect"


class SequentialDecision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stop: bool
    verdict: VerdictName | None  # None while the campaign continues
    e_support: float
    e_refute: float
    threshold: float
    reason: str


def sequential_decision(h: Hypothesis, observations: list[Observation], budget_left: bool) -> SequentialDecision:
    """After a batch: stop with supported / refuted once an e-value reaches 1/alpha, or inconclusive when out of budget."""
    groups = _split(h, observations)
    relative = _relative_possible(h, groups)
    transform = np.log if relative else np.asarray
    base = np.asarray(transform(np.asarray(groups[str(h.baseline_level())], float)))
    treat = np.asarray(transform(np.asarray(groups[str(h.treatment_level())], float)))
    threshold = 1.0 / h.alpha
    delta_m = minimum_effect_sd_units(h)
    direction = h.prediction.direction
    if direction == "differ":
        e_support = e_value(base, treat, "two-sided")
        e_refute = min(e_value(base, treat, "less", null_delta=delta_m), e_value(base, treat, "greater", null_delta=-delta_m))
    elif direction == "increase":
        e_support = e_value(base, treat, "greater")
        e_refute = e_value(base, treat, "less", null_delta=delta_m)
    else:
        e_support = e_value(base, treat, "less")
        e_refute = e_value(base, treat, "greater", null_delta=-delta_m)
    if e_support >= threshold:
        # An effect in the predicted direction is established; it supports "at least m" only while the
        # data still reach m. A real but smaller effect is not support (refuted takes precedence, as
        # in the fixed-sample rule): keep measuring until E_refute decides or the budget runs out.
        fixed = analyse(h, observations)
        if fixed.verdict != "refuted":
            return SequentialDecision(stop=True, verdict="supported", e_support=e_support, e_refute=e_refute,
                                      threshold=threshold, reason=f"E_support = {e_support:.3g} >= {threshold:g}")
        if e_refute < threshold:
            if budget_left:
                return SequentialDecision(
                    stop=False, verdict=None, e_support=e_support, e_refute=e_refute, threshold=threshold,
                    reason=f"continue: an effect exists but smaller than claimed so far ({fixed.reason})")
            return SequentialDecision(stop=True, verdict="refuted", e_support=e_support, e_refute=e_refute,
                                      threshold=threshold, reason=f"budget spent: {fixed.reason}")
    if e_refute >= threshold:
        return SequentialDecision(stop=True, verdict="refuted", e_support=e_support, e_refute=e_refute,
                                  threshold=threshold, reason=f"E_refute = {e_refute:.3g} >= {threshold:g}")
    if not budget_left:
        return SequentialDecision(stop=True, verdict="inconclusive", e_support=e_support, e_refute=e_refute,
                                  threshold=threshold, reason="budget exhausted before either e-value reached 1/alpha")
    return SequentialDecision(stop=False, verdict=None, e_support=e_support, e_refute=e_refute, threshold=threshold,
                              reason="continue: neither e-value is decisive yet")


def analyse_sequential(h: Hypothesis, observations: list[Observation], budget_left: bool) -> Analysis:
    """The fixed-sample summary with the sequential decision as the verdict."""
    fixed = analyse(h, observations)
    decision = sequential_decision(h, observations, budget_left)
    verdict = decision.verdict or "inconclusive"
    return fixed.model_copy(update={"verdict": verdict, "reason": decision.reason,
                                    "sequential": decision.model_dump()})
