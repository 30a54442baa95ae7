"""Stopping properties (``stopping.*``): a step stops once a tolerance is reached.

The behaviour properties look for steps that stop too early; these require the stops that must happen.
torch/optim/lbfgs.py (2.13) ends the iterations of a ``step()``, after moving and re-evaluating, when

- ``|f_k - f_{k-1}| < tolerance_change`` (the loss change),
- ``max|t·d| <= tolerance_change`` (the step),
- ``max|g_k| <= tolerance_grad`` (the gradient; also tested once at the start of the step),

and before moving when ``gᵀd > -tolerance_change`` (the descent test). The tolerances are chosen from a recorded
run of the target itself: one ``step()`` with ``max_iter=12``, both tolerances 0 and no line search evaluates the
closure at ``x_0, ..., x_11`` (black box, :mod:`lbfgs_verify.engine.observe`), which gives for every iteration ``k`` the
loss change, the step ``max|x_k - x_{k-1}|``, ``gᵀd = g_{k-1}ᵀ(x_k - x_{k-1})/t_k`` and ``max|g_k|`` (``t_1 =
min(1, 1/||g_0||₁)·lr``, later ``t_k = lr``). For each test we look for the latest iteration ``k`` at which a
tolerance ``τ`` makes that test, and no other, fire first (with a margin of 1e-3 relative on both sides so that
rounding cannot move the decision), set ``τ`` to the geometric mean of its bounds, and run the same step again: it
must make exactly ``k + 1`` closure calls (``k`` for the descent test, made before the move; the run is
deterministic up to the stop).

Problems are scaled (f·10⁻⁴ for the loss change and the descent test, f·10⁴ for the step) so that the tested
quantity is the smallest of the others for a while.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import example, given, note
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.compare.bitwise import same_values
from lbfgs_verify.compare.environment import quiet_known_warnings
from lbfgs_verify.engine.capabilities import active_lacks
from lbfgs_verify.engine.observe import Observation, first_step_length, observe
from lbfgs_verify.engine.strategies import generated_problem, make_problem
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.problems.extra import spd_quadratic
from lbfgs_verify.properties.base import CheckContext, register

ITERATIONS = 12
MARGIN = 1e-3


@dataclass(frozen=True)
class Iteration:
    """What iteration ``k`` (1-based) of the recorded step did, from the closure calls at x_{k-1} and x_k."""

    k: int
    loss_change: float
    step: float
    descent: float
    """``-gᵀd`` at the start of the iteration (the test ``gᵀd > -tolerance_change`` fires when it is < τ)."""
    gradient: float


def recorded_iterations(obs: Observation, lr: float) -> tuple[list[Iteration], float]:
    """The iterations of the single recorded step, and ``max|g_0|``."""
    evaluations = obs.steps[0].evaluations
    out = []
    for k in range(1, len(evaluations)):
        before, after = evaluations[k - 1], evaluations[k]
        move = after.x - before.x
        t = first_step_length(evaluations[0].g, lr) if k == 1 else lr
        out.append(Iteration(k, abs(after.loss - before.loss), float(move.abs().max()),
                             -float(before.g @ move) / t, float(after.g.abs().max())))
    return out, float(evaluations[0].g.abs().max())


@dataclass(frozen=True)
class StopPlan:
    """A tolerance value and the iteration after which it must stop the step."""

    k: int
    tolerance: float
    low: float
    high: float


def _plan(lows: list[float], highs: list[float]) -> StopPlan | None:
    """The latest ``k`` (at least one recorded iteration after it, so that a step that does not stop is seen)
    whose tested quantity ``lows[k-1]`` lies below every quantity that must not fire by then (``highs[k-1]``:
    the same quantity at earlier iterations, the other tests up to ``k``) with the margin; ``None`` if none.
    The latest such ``k`` makes the step run longest before it must stop (a test made only at the first
    iteration, or against the start of the step, is then seen)."""
    plan = None
    for k, (low, high) in enumerate(zip(lows, highs, strict=True), start=1):
        if k >= len(lows):
            break
        if math.isfinite(high) and low * (1 + MARGIN) ** 2 < high and high > 0:
            tolerance = math.sqrt(max(low, high * 1e-12) * high)
            plan = StopPlan(k, tolerance, low, high)
    return plan


def _running_min(values: list[float]) -> list[float]:
    out, current = [], math.inf
    for v in values:
        current = min(current, v)
        out.append(current)
    return out


def plan_loss_change(its: list[Iteration]) -> StopPlan | None:
    """τ (tolerance_change) with Δf_k < τ, and for i < k: Δf_i >= τ; for i <= k: step_i > τ, -gᵀd_i >= τ."""
    before = [math.inf, *_running_min([i.loss_change for i in its])[:-1]]
    others = _running_min([min(i.step, i.descent) for i in its])
    return _plan([i.loss_change for i in its], [min(a, b) for a, b in zip(before, others, strict=True)])


def plan_step(its: list[Iteration]) -> StopPlan | None:
    """τ (tolerance_change) with step_k <= τ, and for i < k: step_i > τ; for i <= k: Δf_i >= τ, -gᵀd_i >= τ."""
    before = [math.inf, *_running_min([i.step for i in its])[:-1]]
    others = _running_min([min(i.loss_change, i.descent) for i in its])
    return _plan([i.step for i in its], [min(a, b) for a, b in zip(before, others, strict=True)])


def plan_descent(its: list[Iteration]) -> StopPlan | None:
    """τ (tolerance_change) with -gᵀd_k < τ (the descent test fires at the start of iteration ``k``, before
    moving), and for i < k: -gᵀd_i >= τ, step_i > τ, Δf_i >= τ (no test fired before)."""
    descents = [i.descent for i in its]
    before = [math.inf, *_running_min([min(i.descent, i.step, i.loss_change) for i in its])[:-1]]
    return _plan(descents, before)


def plan_gradient(its: list[Iteration], g0: float) -> StopPlan | None:
    """τ (tolerance_grad, tolerance_change = 0) with max|g_k| <= τ < max|g_i| for i < k (and i = 0)."""
    before = _running_min([g0, *[i.gradient for i in its]])[:-1]
    return _plan([i.gradient for i in its], before)


def plan_gradient_reached(its: list[Iteration], g0: float) -> StopPlan | None:
    """τ (tolerance_grad) equal to max|g_k| exactly, at the latest ``k`` where it is a new strict minimum
    (``max|g_k| < max|g_i|`` for ``i < k`` and ``i = 0``): torch's ``<=`` test must stop there."""
    plan = None
    for k, it in enumerate(its[:-1], start=1):
        before = min([g0, *[i.gradient for i in its[: k - 1]]])
        if it.gradient < before:
            plan = StopPlan(k, it.gradient, it.gradient, before)
    return plan


def plan_loss_change_reached(its: list[Iteration]) -> StopPlan | None:
    """τ (tolerance_change) equal to |f_k - f_{k-1}| exactly, at the latest ``k`` where it is a new strict
    minimum and every other test stays clear of τ (with the margin) up to ``k + 1``: torch's strict ``<`` must
    *not* stop there (the step goes on past iteration ``k``)."""
    plan = None
    for k, it in enumerate(its[:-1], start=1):
        tau = it.loss_change
        earlier = [i.loss_change for i in its[: k - 1]]
        others = [min(i.step, i.descent) for i in its[: k + 1]]
        if tau > 0 and all(tau < x for x in earlier) and all(tau * (1 + MARGIN) < x for x in others):
            plan = StopPlan(k, tau, tau, min(others))
    return plan


def plan_gradient_at_start(its: list[Iteration], g0: float) -> StopPlan | None:
    """τ (tolerance_grad) equal to max|g_0| exactly: the step must return after its first evaluation."""
    return StopPlan(0, g0, g0, math.inf) if g0 > 0 and its else None


def _scaled(problem: Problem, factor: float) -> Problem:
    objective = problem.objective

    def scaled(params: Any) -> Tensor:
        return factor * objective(params)

    return replace(problem, objective=scaled, name=f"{problem.name}·{factor:g}")


def _problems(scale: float) -> st.SearchStrategy[Problem]:
    generated = st.builds(lambda seed, sizes: generated_problem(seed, sizes),
                          st.integers(0, 2**16), st.lists(st.integers(1, 4), min_size=1, max_size=3))
    quadratic = st.builds(lambda seed, n, c: spd_quadratic(n, c, seed=seed), st.integers(0, 2**16),
                          st.integers(3, 12), st.sampled_from((10.0, 100.0, 1000.0)))
    named = st.sampled_from(("rosenbrock", "coupled_tensors", "separable_quadratic")).map(make_problem)
    return st.one_of(generated, quadratic, named).map(lambda p: _scaled(p, scale))


def _check_stop(ctx: CheckContext, *, scale: float, which: str,
                planner: Callable[[list[Iteration], float], StopPlan | None], tolerance_key: str,
                test: str, must_stop: bool = True, before_moving: bool = False) -> None:
    """One recorded step with both tolerances 0, a plan from it, the same step with the planned tolerance: it
    must stop after the planned iteration (``must_stop``) or go on past it (a tolerance exactly at a strict
    test's quantity). ``before_moving``: the test is made at the start of iteration ``k``, so the step ends
    with ``k`` closure calls (``x_0 .. x_{k-1}``), not ``k + 1``."""
    @ctx.settings(report_multiple_bugs=False)
    @given(problem=_problems(scale), lr=st.sampled_from((1, 0.5)), history_size=st.integers(1, 5))
    @example(problem=_scaled(generated_problem(11, [5, 4, 3]), scale), lr=1, history_size=3)
    @example(problem=_scaled(make_problem("rosenbrock"), scale), lr=1, history_size=5)
    def run(problem: Problem, lr: float, history_size: int) -> None:
        hp = {"lr": lr, "max_iter": ITERATIONS, "max_eval": 2 * ITERATIONS, "tolerance_grad": 0.0,
              "tolerance_change": 0.0, "history_size": history_size, "line_search_fn": None}
        with quiet_known_warnings():
            recorded = observe(ctx.target, problem, hp, 1)
        its, g0 = recorded_iterations(recorded, float(lr))
        plan = planner(its, g0)
        if plan is None:
            note(f"{which}: no iteration of this run separates the {test} test from the others")
            return
        stopping_hp = {**hp, tolerance_key: plan.tolerance}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, stopping_hp, 1)
        calls, expected = obs.steps[0].calls, plan.k if before_moving else plan.k + 1
        if not must_stop:
            if calls <= expected:
                raise obs.fail(
                    f"with {tolerance_key}={plan.tolerance!r}, exactly the {test} of iteration {plan.k}, the step "
                    f"must go on (the test is strict: < {tolerance_key}; the other tests stay above "
                    f"{plan.high:.6g}); it stopped after {calls} closure calls", iteration=plan.k,
                    tolerance=plan.tolerance, calls=calls)
            return
        if calls != expected:
            what = "did not stop there" if calls > expected else "stopped earlier"
            if plan.k == 0:
                raise obs.fail(
                    f"with {tolerance_key}={plan.tolerance!r}, exactly max|g_0| at the start of the step, the step "
                    f"must return after its first closure call (the test is max|g| <= {tolerance_key}); it made "
                    f"{calls}", iteration=0, tolerance=plan.tolerance, calls=calls, expected_calls=1)
            where = f"at the start of iteration {plan.k}, before moving" if before_moving else (
                f"after iteration {plan.k}")
            raise obs.fail(
                f"with {tolerance_key}={plan.tolerance:.6g} the step must stop {where}: the "
                f"{test} reached {plan.low:.6g} <= {tolerance_key} there (the other stopping tests stay above "
                f"{plan.high:.6g} until then), so {expected} closure calls; the step made {calls}: it {what} "
                f"(recorded with both tolerances 0: {recorded.steps[0].calls} calls)",
                iteration=plan.k, tolerance=plan.tolerance, quantity=plan.low, others=plan.high,
                calls=calls, expected_calls=expected)

    run()


_WHY_SEMANTICS = (
    "torch.optim.LBFGS's stop tests and evaluation schedule (closure calls counted exactly); other "
    "correct L-BFGS stop on other tests (scipy: relative f change)"
)
"""Why these properties are claims of the ``semantics`` level, not of ``properties``."""


@register(
    "stopping.loss_change",
    category="stopping",
    level="semantics",
    why=_WHY_SEMANTICS,
    needs=('tolerance_change',),
    title="a step stops after the first iteration whose loss change |f_k - f_{k-1}| falls below tolerance_change "
          "(for a value of tolerance_change the run actually reaches)",
    catches="the loss-change test missing, written with <= τ·|f| or against the loss at the start of the step, "
            "compared with the wrong tolerance (tolerance_grad), applied only at the end of a step",
)
def check_loss_change(ctx: CheckContext) -> None:
    _check_stop(ctx, scale=1e-4, which="stopping.loss_change", planner=lambda its, g0: plan_loss_change(its),
                tolerance_key="tolerance_change", test="loss change |f_k - f_{k-1}|")


@register(
    "stopping.step_size",
    category="stopping",
    level="semantics",
    why=_WHY_SEMANTICS,
    needs=('tolerance_change',),
    title="a step stops after the first iteration whose move max|t·d| is at most tolerance_change (for a value "
          "the run actually reaches)",
    catches="the step-size test missing, measured on d instead of t·d, with the 2-norm or the 1-norm of a "
            "larger vector, compared with the wrong tolerance",
)
def check_step_size(ctx: CheckContext) -> None:
    _check_stop(ctx, scale=1e4, which="stopping.step_size", planner=lambda its, g0: plan_step(its),
                tolerance_key="tolerance_change", test="step max|t·d|")


@register(
    "stopping.descent_test",
    category="stopping",
    level="semantics",
    why=_WHY_SEMANTICS,
    needs=('tolerance_change',),
    title="a step stops at the start of the first iteration whose direction is not a descent direction by "
          "tolerance_change (gᵀd > -tolerance_change), before moving or evaluating (for a value the run reaches)",
    catches="the descent test missing, written as gᵀd > +tolerance_change or with the gradient's norm, made after "
            "the move, or followed by one more evaluation",
)
def check_descent_test(ctx: CheckContext) -> None:
    """torch/optim/lbfgs.py: ``if gtd > -tolerance_change: break`` right after the direction and the step length
    are chosen (Nocedal & Wright §3.1: a step is only taken along a descent direction)."""
    _check_stop(ctx, scale=1e-4, which="stopping.descent_test", planner=lambda its, g0: plan_descent(its),
                tolerance_key="tolerance_change", test="descent -gᵀd", before_moving=True)


@register(
    "stopping.gradient",
    category="stopping",
    level="semantics",
    why=_WHY_SEMANTICS,
    title="a step stops after the first iteration whose gradient max|g_k| is at most tolerance_grad (for a value "
          "the run actually reaches), not only at the start of the next step",
    catches="the gradient test made only at the start of a step(), with the 2-norm or 1-norm instead of the "
            "max-norm, against the previous gradient, compared with tolerance_change",
)
def check_gradient(ctx: CheckContext) -> None:
    _check_stop(ctx, scale=1.0, which="stopping.gradient", planner=plan_gradient, tolerance_key="tolerance_grad",
                test="gradient max|g_k|")


@register(
    "stopping.equal_to_tolerance",
    category="stopping",
    level="semantics",
    why=_WHY_SEMANTICS,
    title="max|g| equal to tolerance_grad exactly stops the step (the test is <=): at its start, before any "
          "move, and after the iteration that reaches it, with and without line search; a loss change equal to "
          "tolerance_change does not (the test is <)",
    catches="the gradient test written with < instead of <= (at the start of the step or after an iteration), "
            "the loss-change test written with <= instead of <",
)
def check_equal_to_tolerance(ctx: CheckContext) -> None:
    """The gradients are the closure's own, so ``max|g_k|`` is known exactly (the max of absolute values rounds
    nothing, in any dtype) and ``tolerance_grad`` can be set to it: torch compares with ``<=`` at the start of
    a step and after every iteration, with or without line search (torch/optim/lbfgs.py ``opt_cond``)."""
    for planner in (plan_gradient_at_start, plan_gradient_reached):
        _check_stop(ctx, scale=1.0, which="stopping.equal_to_tolerance", planner=planner,
                    tolerance_key="tolerance_grad", test="gradient max|g_k|")
    if "strong_wolfe" not in active_lacks():
        _check_gradient_after_search(ctx)
    if "tolerance_change" not in active_lacks():  # |f_k - f_(k-1)| is exact (the closure's own floats)
        _check_stop(ctx, scale=1e-4, which="stopping.equal_to_tolerance",
                    planner=lambda its, g0: plan_loss_change_reached(its), tolerance_key="tolerance_change",
                    test="loss change |f_k - f_(k-1)|", must_stop=False)


SEARCH_BUDGET = 200
"""``max_eval`` of the strong-Wolfe runs: large enough that no search of a few iterations ends on its budget."""


def _check_gradient_after_search(ctx: CheckContext) -> None:
    """With ``strong_wolfe``: steps of ``max_iter = 1 .. k`` from the same start give the accepted point of
    every iteration ``i`` (where the step with ``max_iter = i`` ends) and its gradient; when ``max|g_k|`` is a
    new strict minimum, a step with ``max_iter = k + 3`` and ``tolerance_grad = max|g_k|`` must end exactly
    where the ``max_iter = k`` step ended, after as many closure calls."""

    @ctx.settings(report_multiple_bugs=False)
    @given(problem=_problems(1.0), lr=st.sampled_from((1, 0.5)), history_size=st.integers(1, 5),
           k=st.integers(1, 4))
    def run(problem: Problem, lr: float, history_size: int, k: int) -> None:
        hp = {"lr": lr, "max_eval": SEARCH_BUDGET, "tolerance_grad": 0.0, "tolerance_change": 0.0,
              "history_size": history_size, "line_search_fn": "strong_wolfe"}
        ends = []
        with quiet_known_warnings():
            for max_iter in range(1, k + 1):
                step = observe(ctx.target, problem, {**hp, "max_iter": max_iter}, 1).steps[0]
                reached = [e for e in step.evaluations if same_values(e.x, step.x_after)]
                if not reached:
                    note(f"max_iter={max_iter}: the step ended on a point it never evaluated")
                    return
                ends.append((step, float(reached[-1].g.abs().max())))
        g0 = float(ends[0][0].start.g.abs().max())
        step_k, g_k = ends[-1]
        if not g_k < min([g0, *[g for _, g in ends[:-1]]]):
            note(f"max|g| at the accepted point of iteration {k} ({g_k!r}) is not below every earlier one")
            return
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, {**hp, "max_iter": k + 3, "tolerance_grad": g_k}, 1)
        got = obs.steps[0]
        if got.calls != step_k.calls or not same_values(got.x_after, step_k.x_after):
            raise obs.fail(
                f"with line_search_fn='strong_wolfe' and tolerance_grad={g_k!r}, exactly max|g| at the point the "
                f"line search accepted in iteration {k}, the step must end there after {step_k.calls} closure calls "
                f"(as the step with max_iter={k} did); it made {got.calls} and ended "
                f"{'elsewhere' if not same_values(got.x_after, step_k.x_after) else 'at the same point'}",
                iteration=k, tolerance=g_k, calls=got.calls, expected_calls=step_k.calls)

    run()
