"""``torch.optim.LBFGS`` against scipy's L-BFGS-B at the level of solutions: f reached, gradient, evaluations.

The two implement the same method (L-BFGS, H₀ = γI with γ = sᵀy/yᵀy; Nocedal & Wright, *Numerical
Optimization*, 2nd ed., Alg. 7.4–7.5) with different rules, so they are compared by what they reach, not
step by step:

- first step: scipy 1/‖d‖₂ along d = -g; torch min(1, 1/‖g‖₁) · lr along d = -g.
- line search: scipy Moré–Thuente (c₁ = 1e-3, c₂ = 0.9, at most 20 evaluations); torch strong Wolfe
  (N&W Alg. 3.5/3.6, c₁ = 1e-4, c₂ = 0.9, at most 25 evaluations).
- a pair enters the memory when: scipy sᵀy > eps · (-gᵀd) · stp (relative); torch yᵀs > 1e-10 (absolute).
- gradient test: both max|gᵢ| ≤ tolerance (gtol / tolerance_grad).
- f-change test: scipy f_old - f ≤ ftol · max(|f_old|, |f|, 1) (relative); torch |f - f_old| < tolerance_change
  (absolute), and also max|t·d| ≤ tolerance_change and gᵀd > -tolerance_change.
- evaluations counted: scipy memoizes the last point (asking again is free); torch counts every closure call.

Settings used (:data:`TORCH_LBFGS_SETTINGS`): the numbers of scipy's defaults where torch has a counterpart
(tolerance_grad = gtol = 1e-5, tolerance_change = ftol's value 2.2e-9 but absolute, history_size = maxcor =
10, max_iter = maxiter = 15000), strong-Wolfe line search, one ``step()`` call.

Tolerances (:func:`compare_solutions`): two runs reach "the same f" when
|f_torch - f_scipy| ≤ :data:`F_RELATIVE_TOLERANCE` · max(1, |f_torch|, |f_scipy|), i.e. 1e-6 of the scale on
which scipy's own f-change test works. A run is "stationary" when max|gᵢ| ≤ :data:`GRADIENT_TOLERANCE`
(1e-5, both solvers' gradient test). When f differs, the comparison says which rule explains it
(:class:`Explanation`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lbfgs_verify.compare.scipy_trace import record_scipy_lbfgsb
from lbfgs_verify.problems.base import Problem

F_RELATIVE_TOLERANCE = 1e-6
"""Same f: |Δf| ≤ 1e-6 · max(1, |f_torch|, |f_scipy|)."""
GRADIENT_TOLERANCE = 1e-5
"""Stationary: max|gᵢ| ≤ 1e-5 (scipy's gtol default and the tolerance_grad used for torch)."""

TORCH_LBFGS_SETTINGS: dict[str, Any] = {
    "lr": 1.0,
    "max_iter": 15000,
    "max_eval": None,  # torch's default: max_iter * 5 // 4
    "tolerance_grad": 1e-5,
    "tolerance_change": 2.220446049250313e-09,
    "history_size": 10,
    "line_search_fn": "strong_wolfe",
}


class StopRule(enum.Enum):
    """Which of its rules stopped a run."""

    GRADIENT = "gradient test (max|g| <= tolerance)"
    F_CHANGE = "f-change test"
    STEP_SIZE = "step-size test (max|t d| <= tolerance_change)"
    NON_DESCENT = "non-descent test (g'd > -tolerance_change)"
    ITERATION_LIMIT = "iteration limit"
    EVALUATION_LIMIT = "evaluation limit"
    LINE_SEARCH_FAILURE = "line search failure (ABNORMAL)"


@dataclass(frozen=True)
class RunSummary:
    """The end of one run.

    Attributes:
        solver: ``"scipy"`` or ``"torch"``.
        f: f at the final point.
        gradient_norm: max |gᵢ| at the final point (autograd, same code for both).
        evaluations: evaluations as the solver counts them (scipy: memoized ``nfev``; torch: closure calls).
        iterations: iterations (scipy ``nit``; torch ``state["n_iter"]``).
        stop_rule: the rule that stopped it.
        detail: the solver's message or how the stop rule was read from torch's state.
        last_decrease: f before the last iteration minus f after it (``None`` without iterations).
        nonfinite_evaluations: evaluations that returned a non-finite f (overflow in a line search).
    """

    solver: str
    f: float
    gradient_norm: float
    evaluations: int
    iterations: int
    stop_rule: StopRule
    detail: str
    last_decrease: float | None = None
    nonfinite_evaluations: int = 0


class Verdict(enum.Enum):
    SAME_F = "same f"
    TORCH_LOWER = "torch reaches a lower f"
    SCIPY_LOWER = "scipy reaches a lower f"


class Explanation(enum.Enum):
    """Why two runs that reach different f differ."""

    NONE_NEEDED = "same f within tolerance"
    STOPPED_EARLY_BY_F_TEST = ("the higher run stopped on an f-change/step rule away from a stationary point, "
                               "where the other's rule let it continue")
    STALLED_AFTER_NONFINITE = ("the higher run's line search met a non-finite f (overflow), its last iteration "
                               "made no progress, and its f-change test stopped it")
    DIFFERENT_STATIONARY_POINTS = "both runs stopped at stationary points: they found different ones"
    HIGHER_RUN_STATIONARY = ("the higher run stopped at a stationary point; the other passed it on another path "
                             "(different first step and line search)")
    LIMIT = "the higher run hit an iteration or evaluation limit"
    LINE_SEARCH_FAILURE = "the higher run's line search failed (ABNORMAL)"


@dataclass(frozen=True)
class SolutionComparison:
    """torch.optim.LBFGS vs scipy L-BFGS-B on one problem.

    Attributes:
        problem: the problem's name.
        f_star: its published optimum (``None`` when unknown).
        scipy, torch: the two :class:`RunSummary`.
        f_difference: f_torch - f_scipy.
        f_tolerance: the tolerance for "same f" (see :data:`F_RELATIVE_TOLERANCE`).
        verdict: :class:`Verdict`.
        explanation: :class:`Explanation` (``NONE_NEEDED`` for ``SAME_F``).
        reason: one sentence with the numbers behind the explanation.
    """

    problem: str
    f_star: float | None
    scipy: RunSummary
    torch: RunSummary
    f_difference: float
    f_tolerance: float
    verdict: Verdict
    explanation: Explanation
    reason: str

    @property
    def evaluation_ratio(self) -> float:
        """torch evaluations / scipy evaluations."""
        return self.torch.evaluations / max(self.scipy.evaluations, 1)

    def row(self) -> str:
        """One line for a report."""
        return (f"{self.problem}: f {self.scipy.f:.6g} (scipy) / {self.torch.f:.6g} (torch), max|g| "
                f"{self.scipy.gradient_norm:.1e} / {self.torch.gradient_norm:.1e}, evaluations "
                f"{self.scipy.evaluations} / {self.torch.evaluations}, stop {self.scipy.stop_rule.name} / "
                f"{self.torch.stop_rule.name}: {self.verdict.value}; {self.reason}")


def _gradient_norm(problem: Problem, params: list[torch.Tensor]) -> float:
    closure = problem.make_closure(params)
    closure()
    norms = [float(p.grad.abs().max()) if p.grad is not None and p.grad.numel() else 0.0 for p in params]
    return max(norms) if norms else 0.0


def run_scipy(problem: Problem, options: dict[str, Any] | None = None) -> RunSummary:
    """scipy L-BFGS-B (defaults unless ``options``) from the problem's start, autograd gradients."""
    fun = problem.numpy_fun()
    nonfinite = 0

    def logged(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal nonfinite
        value, grad = fun(x)
        nonfinite += not math.isfinite(value)
        return value, grad

    x0 = problem.flat_start()
    result, trace = record_scipy_lbfgsb(logged, x0, options)
    values = [fun(x0)[0], *(entry["f"] for entry in trace)]
    last_decrease = values[-2] - values[-1] if len(values) >= 2 else None
    message = str(result.message)
    if result.status == 0:
        rule = StopRule.GRADIENT if "PROJECTED GRADIENT" in message else StopRule.F_CHANGE
    elif "ITERATIONS" in message:
        rule = StopRule.ITERATION_LIMIT
    elif "EVALUATIONS" in message:
        rule = StopRule.EVALUATION_LIMIT
    else:
        rule = StopRule.LINE_SEARCH_FAILURE
    return RunSummary("scipy", float(result.fun), float(np.abs(result.jac).max(initial=0.0)), int(result.nfev),
                      int(result.nit), rule, message, last_decrease, nonfinite)


def run_torch_lbfgs(problem: Problem, settings: dict[str, Any] | None = None) -> RunSummary:
    """``torch.optim.LBFGS`` (:data:`TORCH_LBFGS_SETTINGS` unless ``settings``), one ``step()`` from the start.

    torch does not report why it stopped; the rule is read from the final state in torch's order of tests:
    gradient, iteration limit, evaluation limit, step size, then f-change (|f - prev_loss| < tolerance_change;
    a last iteration that found no descent direction takes no step, leaves f == prev_loss exactly and is read
    as NON_DESCENT).
    """
    cfg = {**TORCH_LBFGS_SETTINGS, **(settings or {})}
    params = problem.make_params()
    optimizer = torch.optim.LBFGS(params, **cfg)
    inner = problem.make_closure(params)
    calls = 0
    nonfinite = 0

    def closure() -> torch.Tensor:
        nonlocal calls, nonfinite
        calls += 1
        loss = inner()
        nonfinite += not math.isfinite(float(loss.detach()))
        return loss

    optimizer.step(closure)
    f = problem.value(params)
    gradient_norm = _gradient_norm(problem, params)
    state = optimizer.state[params[0]]
    n_iter = int(state.get("n_iter", 0))
    max_eval = cfg["max_eval"] if cfg["max_eval"] is not None else cfg["max_iter"] * 5 // 4
    tolerance_change = cfg["tolerance_change"]
    prev_loss = float(state["prev_loss"]) if "prev_loss" in state else None
    last_decrease = None if prev_loss is None else prev_loss - f
    if gradient_norm <= cfg["tolerance_grad"]:
        rule, detail = StopRule.GRADIENT, f"max|g| = {gradient_norm:.3g} <= {cfg['tolerance_grad']}"
    elif n_iter >= cfg["max_iter"]:
        rule, detail = StopRule.ITERATION_LIMIT, f"n_iter = {n_iter}"
    elif calls >= max_eval:
        rule, detail = StopRule.EVALUATION_LIMIT, f"{calls} evaluations"
    elif prev_loss is None:  # stopped before iterating although the gradient test failed: cannot happen
        rule, detail = StopRule.NON_DESCENT, "no iteration"
    else:
        step = float(state["d"].mul(state["t"]).abs().max())
        if step <= tolerance_change:
            rule, detail = StopRule.STEP_SIZE, f"max|t d| = {step:.3g} <= {tolerance_change:.3g}"
        elif f == prev_loss:
            rule, detail = StopRule.NON_DESCENT, "no step in the last iteration (g'd > -tolerance_change)"
        else:
            rule, detail = StopRule.F_CHANGE, f"|f - f_old| = {abs(f - prev_loss):.3g} < {tolerance_change:.3g}"
    return RunSummary("torch", f, gradient_norm, calls, n_iter, rule, detail, last_decrease, nonfinite)


def f_change_threshold(run: RunSummary, f_old: float) -> float:
    """The decrease below which ``run``'s solver stops on its f-change test, at f_old -> run.f.

    scipy: ftol · max(|f_old|, |f|, 1) (relative, ftol = 2.2e-9); torch: tolerance_change = 2.2e-9 (absolute).
    """
    tolerance = TORCH_LBFGS_SETTINGS["tolerance_change"]
    if run.solver == "scipy":
        return tolerance * max(abs(f_old), abs(run.f), 1.0)
    return tolerance


def _explain(higher: RunSummary, lower: RunSummary) -> tuple[Explanation, str]:
    """Why ``higher`` (the run with the higher f) stopped there while ``lower`` went further."""
    numbers = (f"{higher.solver} stopped at f = {higher.f:.6g} (max|g| = {higher.gradient_norm:.2g}, "
               f"{higher.stop_rule.value}: {higher.detail}); {lower.solver} reached f = {lower.f:.6g} "
               f"(max|g| = {lower.gradient_norm:.2g})")
    if higher.stop_rule is StopRule.LINE_SEARCH_FAILURE:
        return Explanation.LINE_SEARCH_FAILURE, numbers
    if higher.stop_rule in (StopRule.ITERATION_LIMIT, StopRule.EVALUATION_LIMIT):
        return Explanation.LIMIT, numbers
    if higher.gradient_norm <= GRADIENT_TOLERANCE:
        if lower.gradient_norm <= GRADIENT_TOLERANCE:
            return Explanation.DIFFERENT_STATIONARY_POINTS, numbers
        return Explanation.HIGHER_RUN_STATIONARY, numbers
    if higher.last_decrease == 0.0 and higher.nonfinite_evaluations > 0:
        return Explanation.STALLED_AFTER_NONFINITE, (
            f"{numbers}; {higher.nonfinite_evaluations} of its evaluations returned a non-finite f and its last "
            "iteration ended where it started (decrease 0)")
    decrease = higher.last_decrease if higher.last_decrease is not None else math.nan
    f_old = higher.f + decrease
    own = f_change_threshold(higher, f_old)
    other = f_change_threshold(RunSummary(lower.solver, higher.f, 0.0, 0, 0, higher.stop_rule, ""), f_old)
    rule = ("scipy's f-change test is relative, f_old - f <= ftol * max(|f_old|, |f|, 1)" if higher.solver == "scipy"
            else "torch's f-change and step tests are absolute (tolerance_change)")
    return Explanation.STOPPED_EARLY_BY_F_TEST, (
        f"{numbers}; last decrease {decrease:.3g} <= its threshold {own:.3g} but above {lower.solver}'s {other:.3g}: "
        f"{rule}")


def compare_solutions(
    problem: Problem,
    *,
    scipy_options: dict[str, Any] | None = None,
    torch_settings: dict[str, Any] | None = None,
) -> SolutionComparison:
    """Run both solvers on ``problem`` and compare what they reach (tolerances in the module docstring)."""
    scipy_run = run_scipy(problem, scipy_options)
    torch_run = run_torch_lbfgs(problem, torch_settings)
    difference = torch_run.f - scipy_run.f
    tolerance = F_RELATIVE_TOLERANCE * max(1.0, abs(torch_run.f), abs(scipy_run.f))
    if abs(difference) <= tolerance or torch_run.f == scipy_run.f:
        verdict, explanation, reason = Verdict.SAME_F, Explanation.NONE_NEEDED, (
            f"|Δf| = {abs(difference):.2g} <= {tolerance:.2g}")
    elif torch_run.f < scipy_run.f or math.isnan(scipy_run.f):
        verdict = Verdict.TORCH_LOWER
        explanation, reason = _explain(scipy_run, torch_run)
    else:
        verdict = Verdict.SCIPY_LOWER
        explanation, reason = _explain(torch_run, scipy_run)
    return SolutionComparison(problem.name, problem.f_star, scipy_run, torch_run, difference, tolerance, verdict,
                              explanation, reason)
