"""Line-search properties (``line_search.*``): the strong-Wolfe search off the beaten path, through ``step()``.

The target is a black box. Each problem has one unknown, ``f(x) = φ(x)/|φ'(0)|`` from ``x₀ = 0``, so the first
iteration of a step searches along ``d = 1`` from the trial ``α₀ = lr`` and the parameter after a one-iteration
step (``max_iter=1``, ``line_search_fn="strong_wolfe"``) is the accepted ``α``
(:mod:`lbfgs_verify.problems.line_functions`). ``lr`` is drawn up to 1e3. The accepted point is evaluated by the
harness and must satisfy, up to rounding (:func:`lbfgs_verify.engine.observe.wolfe_check`), Nocedal & Wright eq. 3.7:

- sufficient decrease ``φ(α) <= φ(0) + c₁·α·φ'(0)``;
- strong curvature ``|φ'(α)| <= c₂·|φ'(0)|`` (c₁ = 1e-4, c₂ = 0.9: torch's ``_strong_wolfe``).

On these functions a strong-Wolfe point is found within 40 evaluations by torch 2.13 (α₀ from 1e-3 to 1e3),
so the budget (``max_eval=100``) is no excuse: a search that uses it up fails. A bracket narrower than
``tolerance_change`` (two points of the search that close) excuses sufficient decrease only: on these smooth
functions a correct zoom (N&W Alg. 3.6: the low end always satisfies sufficient decrease, and the slope there
points into the bracket) closes on a point where φ' vanishes, so the curvature condition holds there.
torch 2.13 ends on Moré–Thuente function 1 from α₀ = 1e3 with such a bracket around a point that fails
sufficient decrease (it keeps the lower-valued end as its low end: docs/torch-2.13-lbfgs.md, defect 9).

Level: these claims are torch's search (``semantics``), except ``line_search.sufficient_decrease``
(``properties``): every point a correct search accepts satisfies N&W eq. 3.4 with its own c₁, so the harness
demands it with c₁ = :data:`C1_FLOOR` = 1e-10 (below any practical choice) unless the target declares its own in
an attribute ``lbfgs_verify_c1``. A test written without the step length (f <= f₀ + c₁·gᵀd) is looser than the
right one only for t > 1, and looser than the floor only for t > c₁/1e-10 = 1e6 (c₁ = 1e-4): so that property
also draws Moré–Thuente function 1's shallow tail with a gradient of 1e-3 (t from 2e8 to 1e9,
:data:`TAIL_GRADIENT`).

Sources: Moré & Thuente, ACM TOMS 20(3) 1994, section 5 (test functions and starts); Nocedal & Wright,
*Numerical Optimization* 2nd ed., eqs. 3.4, 3.7, Algorithms 3.5 and 3.6; torch/optim/lbfgs.py ``_strong_wolfe``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from hypothesis import example, given
from hypothesis import strategies as st

from lbfgs_verify.compare.environment import quiet_known_warnings
from lbfgs_verify.engine.observe import Evaluation, observe, scalar, state_counters, wolfe_check
from lbfgs_verify.problems.line_functions import (
    CURVATURE_C2,
    MORE_THUENTE_FUNCTIONS,
    MORE_THUENTE_STARTS,
    SUFFICIENT_DECREASE_C1,
    LineCase,
    armijo_without_step_length,
    curvature_at_far_end,
    curvature_boundary,
    line_problem,
    linear_descent,
    on_sufficient_decrease_line,
    quadratic_with_minimizer,
    step_up,
)
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, register

MAX_EVAL = 100
"""The evaluation budget of the searches (torch 2.13 needs at most 40 on these functions, α₀ from 1e-3 to 1e3)."""


def _bracket_collapsed(evaluations: list[Evaluation], tolerance_change: float) -> bool:
    """Two points of the search (start included) closer than ``tolerance_change``: torch's "bracket is so small"
    exit (``abs(bracket[1] - bracket[0]) * d_norm < tolerance_change``; here ``d = 1``)."""
    xs = sorted(float(e.x[0]) for e in evaluations)
    return any(b - a < tolerance_change * (1 + 1e-6) + 4e-16 * (abs(a) + abs(b)) for a, b in itertools.pairwise(xs))


def _evaluate(case_problem: Any, x: torch.Tensor) -> Evaluation:
    """f and g at the accepted point, computed by the harness (float64)."""
    params = [x.detach().clone().reshape(1).requires_grad_(True)]
    loss = case_problem.make_closure(params)()
    return Evaluation(float(loss), params[0].detach().reshape(-1).clone(), params[0].grad.detach().reshape(-1).clone())


def check_accepted_point(ctx: CheckContext, case: LineCase, alpha0: float, scale: float = 1.0) -> None:
    """One ``step()`` (``max_iter=1``, ``strong_wolfe``, ``lr = α₀``, ``max_eval=100``) on ``case``: the search must
    end within the budget at a point satisfying the strong Wolfe conditions (sufficient decrease is excused when
    the bracket collapsed below ``tolerance_change``)."""
    problem = line_problem(case, scale)
    hp = {"lr": alpha0, "max_iter": 1, "max_eval": MAX_EVAL, "line_search_fn": "strong_wolfe"}
    with quiet_known_warnings():
        obs = observe(ctx.target, problem, hp, 1)
    step = obs.steps[0]
    start = step.start
    if float(start.x[0]) != 0.0:
        raise obs.fail("the first closure call was not at the start x₀ = 0", x=float(start.x[0]))
    trials = [float(e.x[0]) for e in step.evaluations[1:]]
    if not trials:
        raise obs.fail(f"the strong-Wolfe search made no trial (1 closure call) from α₀ = {alpha0:g}")
    if abs(trials[0] - alpha0) > 1e-12 * alpha0:  # t₀·d = (lr/s)·s rounds
        raise obs.fail(f"the first trial point is α = {trials[0]!r}, not α₀ = lr·min(1, 1/||g₀||₁) = {alpha0!r} "
                       "(torch/optim/lbfgs.py: t = min(1, 1/|g|_1)·lr on the first iteration)",
                       first_trial=trials[0], alpha0=alpha0)
    end = _evaluate(problem, step.x_after)
    check = wolfe_check(start, end, obs.eps)
    tolerance_change = scalar(step.hyperparameters.get("tolerance_change", 1e-9))
    collapsed = _bracket_collapsed(step.evaluations, tolerance_change)
    wrong = []
    if step.calls >= MAX_EVAL:
        wrong.append(f"the search used up max_eval={MAX_EVAL} evaluations (a correct search needs at most about 40)")
    if not check.sufficient_decrease and not collapsed:
        wrong.append(f"sufficient decrease fails: φ(α) - φ(0) - c₁·α·φ'(0) = {check.decrease:.6g} > "
                     f"{check.slack_f:.3g}")
    if not check.curvature_condition:
        wrong.append(f"strong curvature fails: |φ'(α)|·α - c₂·|φ'(0)|·α = {check.curvature:.6g} > "
                     f"{check.slack_g:.3g}")
    if wrong:
        shown = ", ".join(f"{t:.6g}" for t in trials[:12]) + (" ..." if len(trials) > 12 else "")
        raise obs.fail(
            f"the line search accepted α = {float(step.x_after[0]):.10g} on {case.name} ({case.source}) from "
            f"α₀ = {alpha0:g}: {'; '.join(wrong)}; trial points {shown}; {step.calls} closure calls "
            f"(max_eval={MAX_EVAL}){'; bracket below tolerance_change' if collapsed else ''}",
            function=case.name, alpha0=alpha0, accepted=float(step.x_after[0]), calls=step.calls,
            decrease=check.decrease, curvature=check.curvature, trials=trials[:40])


def _settings(ctx: CheckContext) -> Any:
    return ctx.settings(report_multiple_bugs=False)


C1_FLOOR = 1e-10
"""The sufficient-decrease constant that ``line_search.sufficient_decrease`` demands of a target that does not
declare its own: far below any practical choice (N&W p. 33 recommend c₁ = 1e-4; torch, scipy's ``line_search``,
Moré–Thuente's tests and MINPACK-2 ``dcsrch`` use 1e-4 or 1e-3), so that every correct strong-Wolfe or Armijo
search meets it."""

C1_ATTRIBUTE = "lbfgs_verify_c1"
"""The optional attribute on a target class or factory declaring the c₁ of its sufficient-decrease test (a number
in (0, 1)); ``line_search.sufficient_decrease`` then holds the target to it instead of :data:`C1_FLOOR`."""

TAIL_GRADIENT = 1e-3
"""|φ'(0)| of the shallow-tail draws: Moré–Thuente function 1 (tail φ(α) ≈ -2/α after normalising φ'(0) = -1)
scaled so that f'(0) = -1e-3, started at α₀ from 2e5 to 1e6, i.e. with the step length t = α₀/1e-3 from 2e8 to 1e9.
A test without the step length, f <= f₀ + c₁·gᵀd with c₁ = 1e-4, accepts α₀ there (f(α₀) ≈ -2e-3/α₀ <= -1e-10 =
c₁·gᵀd, and |f'(α₀)| is tiny), but f(α₀) > f₀ + 1e-10·t·gᵀd = -1e-13·α₀ for α₀ > 1.42e5: the step is too long for
any c₁ >= 1e-10. With the floor below c₁ = 1e-4 by 1e6, only steps t > 1e6 can tell."""


def declared_c1(target: Any) -> float:
    """The c₁ that ``target`` declares through :data:`C1_ATTRIBUTE` on its class or factory, else :data:`C1_FLOOR`.
    A declared value that is not a number in (0, 1) raises ``ValueError`` naming the attribute."""
    factory = getattr(target, "factory", target)
    declared = getattr(factory, C1_ATTRIBUTE, None)
    if declared is None:
        return C1_FLOOR
    try:
        c1 = float(declared)
    except (TypeError, ValueError):
        c1 = math.nan
    if isinstance(declared, bool) or not 0.0 < c1 < 1.0:
        raise ValueError(f"{getattr(factory, '__qualname__', factory)}.{C1_ATTRIBUTE} = {declared!r}: the declared "
                         "sufficient-decrease constant must be a number in (0, 1)")
    return c1


def tail_problem(scale: float = TAIL_GRADIENT) -> Any:
    """Moré–Thuente function 1 as the one-unknown problem ``f(x) = scale·φ(x)/|φ'(0)|`` from x₀ = 0, with
    ``scale < 1`` (a small gradient, so that the first trial x = lr·scale needs a step length t = lr > 1)."""
    from lbfgs_verify.problems.base import Expectation, Problem

    case = MORE_THUENTE_FUNCTIONS[0]
    zero = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(case.phi(zero), zero)
    kappa = 1.0 / abs(float(slope))

    def objective(params: list[torch.Tensor]) -> torch.Tensor:
        return scale * kappa * case.phi(params[0]).sum()

    return Problem(name=f"line_{case.name}_tail[n=1,gradient={scale:g},float64]", dimension=1, dtype=torch.float64,
                   start=(torch.zeros(1, dtype=torch.float64),), objective=objective,
                   expectation=Expectation.STATIONARY_POINT, source=case.source, tags=frozenset({"line_search"}))


def check_sufficient_decrease_at(ctx: CheckContext, problem: Any, lr: float, c1: float, what: str) -> None:
    """One ``step()`` (``max_iter=1``, ``strong_wolfe``, ``max_eval=100``, ``lr``) on a one-unknown ``problem``:
    the accepted point must satisfy f(x) <= f(x₀) + c₁·gᵀ(x - x₀) (N&W eq. 3.4 with p = t·d), up to rounding;
    a bracket collapsed below torch's tolerance 1e-9 excuses it (torch 2.13 defect 9, see the module doc)."""
    hp = {"lr": lr, "max_iter": 1, "max_eval": MAX_EVAL, "line_search_fn": "strong_wolfe"}
    with quiet_known_warnings():
        obs = observe(ctx.target, problem, hp, 1)
    step = obs.steps[0]
    end = _evaluate(problem, step.x_after)
    check = wolfe_check(step.start, end, obs.eps, c1=c1)
    if check.sufficient_decrease or _bracket_collapsed(step.evaluations, SEARCH_TOLERANCE_CHANGE):
        return
    trials = [float(e.x[0]) for e in step.evaluations[1:]]
    shown = ", ".join(f"{t:.6g}" for t in trials[:8]) + (" ..." if len(trials) > 8 else "")
    x0, x1 = float(step.start.x[0]), float(step.x_after[0])
    raise obs.fail(
        f"on {what} ({problem.name}, lr = {lr:.6g}) {_how_it_ended(step, trials, x1)}: the step accepted "
        f"x = {x1:.10g} where f(x) = {end.loss:.6g} > "
        f"f(x₀) + c₁·gᵀ(x - x₀) = {step.start.loss + c1 * check.gtp:.6g} (c₁ = {c1:g}, "
        f"{'declared by the target' if c1 != C1_FLOOR else 'the floor below any practical choice'}; gᵀ(x - x₀) = "
        f"{check.gtp:.6g}, the step length t = {abs(x1 - x0) / max(float(step.start.g.abs().max()), 1e-300):.6g}): "
        f"sufficient decrease fails by {check.decrease:.3g} (N&W eq. 3.4); trial points {shown}; {step.calls} "
        f"closure calls", c1=c1, accepted=x1, lr=lr, decrease=check.decrease, trials=trials[:40], calls=step.calls)


def _how_it_ended(step: Any, trials: list[float], accepted: float) -> str:
    """How the search that accepted a point without sufficient decrease ended, from what it evaluated (the control
    that tells a budget of the target's own from the harness's budget and from a collapsed bracket).

    A search that ends without a sufficient-decrease point has one in hand all the same: N&W Alg. 3.6 keeps as its
    low end a point that satisfies eq. 3.4 (x₀ at worst), and practical searches that run out either return it or
    report failure (scipy.optimize.line_search returns None; L-BFGS-B restores x_k, lbfgsb.f ``lnsrlb``). So ending
    on a budget, the harness's or the target's own, excuses nothing; the text says which budget it was."""
    xs = sorted({float(e.x[0]) for e in step.evaluations})
    gap = min((b - a for a, b in itertools.pairwise(xs)), default=math.inf)
    which = next((i for i, t in enumerate(trials, 1) if t == accepted), None)
    picked = (f"the accepted point is its trial {which} of {len(trials)}" if which is not None
              else "the accepted point is none of its trials")
    if step.calls >= MAX_EVAL:
        return (f"its line search used up max_eval = {MAX_EVAL} and accepted a point without sufficient decrease "
                f"({picked})")
    return (f"its line search exhausted its own budget and accepted a point without sufficient decrease (control: "
            f"it stopped after {step.calls} closure calls although max_eval = {MAX_EVAL} allowed more, with its "
            f"bracket still open: the closest two points it evaluated are {gap:.3g} apart, above tolerance_change = "
            f"{SEARCH_TOLERANCE_CHANGE:g}, so neither the harness's budget nor a collapsed bracket ended it; "
            f"{picked}; a correct search keeps a sufficient-decrease point, x₀ at worst, to return when it runs out)")


@register(
    "line_search.sufficient_decrease",
    category="line_search",
    needs=("strong_wolfe",),
    title="the point a strong-Wolfe step accepts satisfies sufficient decrease f(x) <= f(x₀) + c₁·gᵀ(x - x₀) with "
          "c₁ = 1e-10 (or the target's declared lbfgs_verify_c1), on Moré–Thuente's six functions (α₀ from 1e-3 to "
          "1e3) and on function 1's shallow tail with a small gradient (step length t from 2e8 to 1e9)",
    catches="the Armijo test written without the step length (f <= f₀ + c₁·gᵀd instead of f₀ + c₁·t·gᵀd: it accepts "
            "too long steps when t > 1), plain decrease (f < f₀), a search that returns its last trial when the "
            "budget ends or the test fails",
    why="N&W eq. 3.4 holds at every point any correct strong-Wolfe or Armijo search accepts, with its own c₁ >= "
        "the floor; no first trial, interpolation or budget convention is assumed",
)
def check_sufficient_decrease(ctx: CheckContext) -> None:
    """The shallow-tail draws (:data:`TAIL_GRADIENT`) start at α₀ = 2e5 and 1e6, then hypothesis draws α₀ in
    [2e5, 1e6] or one of Moré–Thuente's functions at α₀ log-uniform in [1e-3, 1e3] (gradient scale 1, 10, 1000).
    The c₁ is :func:`declared_c1` (:data:`C1_FLOOR` = 1e-10 unless the target declares its own)."""
    c1 = declared_c1(ctx.target)
    tail = tail_problem()
    for alpha0 in (2e5, 1e6):
        check_sufficient_decrease_at(ctx, tail, alpha0 / TAIL_GRADIENT, c1, "Moré–Thuente function 1's shallow tail")

    @_settings(ctx)
    @given(index=st.integers(-1, len(MORE_THUENTE_FUNCTIONS) - 1), position=st.floats(0, 1),
           scale=st.sampled_from((1.0, 10.0, 1000.0)))
    def run(index: int, position: float, scale: float) -> None:
        if index < 0:
            alpha0 = 2e5 * 5.0 ** position
            check_sufficient_decrease_at(ctx, tail, alpha0 / TAIL_GRADIENT, c1,
                                         "Moré–Thuente function 1's shallow tail")
        else:
            case = MORE_THUENTE_FUNCTIONS[index]
            check_sufficient_decrease_at(ctx, line_problem(case, scale), float(10.0 ** (6 * position - 3)), c1,
                                         f"{case.name} ({case.source})")

    run()


_WHY_SEMANTICS = (
    "torch.optim.LBFGS's strong-Wolfe search: its first trial α₀ = lr·min(1, 1/||g||₁), its interpolation "
    "and its max_eval budget; other correct searches try other points"
)
"""Why these properties are claims of the ``semantics`` level, not of ``properties``."""


@register(
    "line_search.more_thuente_functions",
    category="line_search",
    level="semantics",
    why=_WHY_SEMANTICS,
    needs=('strong_wolfe',),
    title="on the six Moré–Thuente (1994) line-search test functions, started at α₀ = lr from 1e-3 to 1e3, the "
          "point accepted by the strong-Wolfe search satisfies sufficient decrease and strong curvature",
    catches="acceptance tests and bracketing mistakes that only show far from α = 1 (steps above 1, very small "
            "first trials, functions with tiny slopes or a rough surface): the strong curvature test written "
            "one-sided (φ'(α) <= c₂·|φ'(0)|), a zoom that keeps a wrong end, an extrapolation that stalls and "
            "uses up the budget",
)
def check_more_thuente_functions(ctx: CheckContext) -> None:
    """Every function at Moré and Thuente's starts (1e-3, 1e-1, 1e1, 1e3), then hypothesis draws a function and
    α₀ log-uniformly in [1e-3, 1e3]."""
    for case in MORE_THUENTE_FUNCTIONS:
        for alpha0 in MORE_THUENTE_STARTS:
            check_accepted_point(ctx, case, alpha0)

    @_settings(ctx)
    @given(index=st.integers(0, len(MORE_THUENTE_FUNCTIONS) - 1), log10_alpha0=st.floats(-3, 3),
           scale=st.sampled_from((1.0, 10.0, 1000.0)))
    @example(index=0, log10_alpha0=-1.0, scale=1000.0)
    @example(index=2, log10_alpha0=1.0, scale=10.0)
    def run(index: int, log10_alpha0: float, scale: float) -> None:
        check_accepted_point(ctx, MORE_THUENTE_FUNCTIONS[index], float(10.0 ** log10_alpha0), scale)

    run()


@register(
    "line_search.sufficient_decrease_scales_with_step",
    category="line_search",
    level="semantics",
    why=_WHY_SEMANTICS,
    needs=('strong_wolfe',),
    title="a trial point that decreases f, but by less than c₁·α·|φ'(0)|, is not accepted: sufficient decrease "
          "is tested with the step length (first trial α₀ = lr between 5 and 50)",
    catches="the Armijo test written without the step length (f <= f0 + c1·gᵀd instead of f0 + c1·t·gᵀd), or "
            "as plain decrease (f < f0): identical for t = 1, accepting too long steps when lr > 1",
)
def check_sufficient_decrease_scales_with_step(ctx: CheckContext) -> None:
    """``φ(α) = -α·exp(-α/τ)``, τ chosen so that φ(α₀) lies halfway (on a log scale) between φ(0) + c₁·α₀·φ'(0) and
    φ(0) + c₁·φ'(0), where the curvature condition holds: a search whose decrease test drops α accepts α₀."""

    @_settings(ctx)
    @given(alpha0=st.floats(5.0, 50.0), scale=st.sampled_from((1.0, 10.0, 1000.0)))
    @example(alpha0=10.0, scale=1.0)
    @example(alpha0=10.0, scale=10.0)
    def run(alpha0: float, scale: float) -> None:
        check_accepted_point(ctx, armijo_without_step_length(alpha0), alpha0, scale)

    run()


@register(
    "line_search.curvature_at_far_end",
    category="line_search",
    level="semantics",
    why=_WHY_SEMANTICS,
    needs=('strong_wolfe',),
    title="when the first trial fails sufficient decrease and the strong curvature condition holds only in a "
          "short interval at the far end of the bracket [0, α₀], the search still returns a strong-Wolfe point",
    catches="zoom mistakes (N&W Alg. 3.6): the bracket end replaced on the wrong side (hi ← α where lo ← α is "
            "due), the sign test gᵀd·(hi - lo) >= 0 inverted, a search that stops at the first point with "
            "sufficient decrease without checking curvature",
)
def check_curvature_at_far_end(ctx: CheckContext) -> None:
    """``φ(α) = -α + k·(α - a)₊²``: slope -1 (curvature fails) up to ``a``, a narrow strong-Wolfe interval just
    after ``a`` (where φ' is within ±0.9), and φ(α₀) far above φ(0) (sufficient decrease fails at α₀)."""

    @_settings(ctx)
    @given(alpha0=st.floats(2.0, 1000.0), far=st.floats(0.6, 0.95), scale=st.sampled_from((1.0, 10.0, 1000.0)))
    @example(alpha0=10.0, far=0.9, scale=1.0)
    @example(alpha0=10.0, far=0.9, scale=10.0)
    def run(alpha0: float, far: float, scale: float) -> None:
        check_accepted_point(ctx, curvature_at_far_end(alpha0, far), alpha0, scale)

    run()


@register(
    "line_search.interpolation_exact_on_quadratics",
    category="line_search",
    level="semantics",
    why=_WHY_SEMANTICS,
    needs=('strong_wolfe',),
    title="on a one-dimensional quadratic whose minimiser α* lies in the middle of [0, α₀] (α₀ = lr from 2.2·α* to "
          "9.5·α*, so α₀ fails sufficient decrease), the search's next trial is α* and it accepts α* (3 closure "
          "calls)",
    catches="a wrong cubic-interpolation formula (the other root, a sign or factor slip in d1/d2, the wrong end "
            "as reference), interpolation replaced by bisection or by a clamp to the wrong bound: each still "
            "finds some Wolfe point, but not the one every interpolating search finds here",
)
def check_interpolation_exact_on_quadratics(ctx: CheckContext) -> None:
    """N&W eq. 3.59: the cubic through (0, φ(0), φ'(0)) and (α₀, φ(α₀), φ'(α₀)) of a quadratic φ is φ, so its
    minimiser is α*; the zoom safeguards (a trial kept 10% inside the bracket) do not move it since
    0.1·α₀ < α* < 0.9·α₀. Torch's cubic, N&W's quadratic interpolation (eq. 3.58) and Moré–Thuente's step all give
    α* here. The accepted α must equal α* to 1e-9 relative, after exactly 3 closure calls (x₀, α₀, α*)."""

    @_settings(ctx)
    @given(alpha_star=st.floats(1e-3, 1e3), ratio=st.floats(2.2, 9.5))
    @example(alpha_star=1.0, ratio=4.0)
    @example(alpha_star=0.25, ratio=9.0)
    def run(alpha_star: float, ratio: float) -> None:
        alpha0 = alpha_star * ratio
        case = quadratic_with_minimizer(alpha_star)
        problem = line_problem(case)
        hp = {"lr": alpha0, "max_iter": 1, "max_eval": MAX_EVAL, "line_search_fn": "strong_wolfe"}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, 1)
        step = obs.steps[0]
        trials = [float(e.x[0]) for e in step.evaluations[1:]]
        accepted = float(step.x_after[0])
        if step.calls != 3 or abs(accepted - alpha_star) > 1e-9 * alpha_star:
            raise obs.fail(
                f"on the quadratic φ(α) = (α - α*)² - α*² with α* = {alpha_star:.10g} from α₀ = {alpha0:.10g} the "
                f"search must try α₀, then the interpolated minimiser α*, and accept it (3 closure calls); it tried "
                f"{', '.join(f'{t:.10g}' for t in trials[:10])} ({step.calls} calls) and accepted {accepted:.10g}",
                alpha_star=alpha_star, alpha0=alpha0, accepted=accepted, calls=step.calls, trials=trials[:10])

    run()


@register(
    "line_search.budget_without_wolfe_point",
    category="line_search",
    level="semantics",
    why=_WHY_SEMANTICS,
    needs=('strong_wolfe',),
    title="when the budget ends the search (φ(α) = -α has no strong-Wolfe point; a long zoom on Moré–Thuente "
          "function 1), a strong_wolfe step makes at most max_eval + 1 closure calls, moves downhill on -α, and its "
          "state's func_evals (when kept in torch's layout) counts every call",
    catches="an extrapolation loop that overruns its budget (<= for <, a counter not advanced or reset), evaluations "
            "of the search counted twice or not at all (func_evals, max_eval bookkeeping), a search that gives up "
            "at once and does not move",
)
def check_budget_without_wolfe_point(ctx: CheckContext) -> None:
    """torch/optim/lbfgs.py: the search may use ``max_eval - evaluations so far`` trials after its first, so a
    ``step()`` makes at most ``max_eval + 1`` closure calls (PyTorch's own test counts 6 for ``max_eval=5``); on
    φ(α) = -α the bracketing phase (N&W Alg. 3.5) only extrapolates, so the budget is what ends it. The first
    step must move downhill. Two steps are run (the second starts far out, where moves may round away)."""

    @_settings(ctx)
    @given(max_eval=st.integers(2, 30), max_iter=st.integers(1, 3), log10_lr=st.floats(-3, 1),
           zoom=st.booleans())
    @example(max_eval=5, max_iter=1, log10_lr=0.0, zoom=False)
    @example(max_eval=25, max_iter=2, log10_lr=-2.0, zoom=False)
    @example(max_eval=12, max_iter=1, log10_lr=3.0, zoom=True)
    def run(max_eval: int, max_iter: int, log10_lr: float, zoom: bool) -> None:
        # zoom: Moré–Thuente function 1 from α₀ >= 10 brackets at once and zooms (torch needs up to 40 calls)
        case = MORE_THUENTE_FUNCTIONS[0] if zoom else linear_descent()
        if zoom:
            log10_lr = 1.0 + abs(log10_lr) / 2
        problem = line_problem(case)
        hp = {"lr": float(10.0 ** log10_lr), "max_iter": max_iter, "max_eval": max_eval,
              "line_search_fn": "strong_wolfe"}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, 2)
        total = 0
        for step in obs.steps:
            total += step.calls
            if step.calls > max_eval + 1:
                raise obs.fail(f"step {step.index} made {step.calls} closure calls on {case.name} with max_eval="
                               f"{max_eval}: more than max_eval + 1 = {max_eval + 1}", step=step.index,
                               calls=step.calls, max_eval=max_eval)
            if step.index == 0 and not zoom and not float(step.x_after[0]) > float(step.start.x[0]):
                raise obs.fail(f"step {step.index} did not move downhill on φ(α) = -α (x {float(step.start.x[0]):.6g}"
                               f" -> {float(step.x_after[0]):.6g}) although every trial decreases φ",
                               step=step.index)
        counters = state_counters(obs.optimizer)
        if counters is not None and counters.get("func_evals") != total:
            raise obs.fail(f"after 2 steps with {total} closure calls the state's func_evals is "
                           f"{counters.get('func_evals')}", calls=total, func_evals=counters.get("func_evals"))

    run()


SEARCH_TOLERANCE_CHANGE = 1e-9
"""The bracket-width tolerance of torch's ``_strong_wolfe``: ``step()`` calls it without its own ``tolerance_change``,
so the default 1e-9 applies whatever the hyperparameter (torch/optim/lbfgs.py)."""


def _one_search(ctx: CheckContext, case: LineCase, alpha0: float, scale: float = 1.0, **extra: Any) -> Any:
    """One ``step()`` (``max_iter=1``, ``strong_wolfe``, ``lr = α₀``) on ``case``: the observed run and its trials."""
    hp = {"lr": alpha0, "max_iter": 1, "max_eval": MAX_EVAL, "line_search_fn": "strong_wolfe", **extra}
    with quiet_known_warnings():
        obs = observe(ctx.target, line_problem(case, scale), hp, 1)
    return obs, [float(e.x[0]) for e in obs.steps[0].evaluations[1:]]


def _shown(trials: list[float]) -> str:
    return ", ".join(f"{t:.10g}" for t in trials[:8]) + (" ..." if len(trials) > 8 else "")


@register(
    "line_search.extrapolation_schedule",
    category="line_search",
    level="semantics",
    why=_WHY_SEMANTICS + "; its extrapolation interval [t + 0.01·(t - t_prev), 10·t] and its strict bracket-width test",
    needs=('strong_wolfe',),
    title="the bracketing phase follows torch's rules on functions built for them: on a straight line every "
          "extrapolation goes to the upper bound 10·t; a trial exactly as high as the previous one ends the "
          "extrapolation and the next trial lies between them; a bracket exactly as wide as the search's tolerance "
          "1e-9 is still zoomed",
    catches="an extrapolation that does not go to the bound where the cubic has no minimiser (the d₂² >= 0 test "
            "written > 0, a midpoint, another growth factor), the bracketing test φ(α_i) >= φ(α_{i-1}) written "
            "strictly or started late, the bracket-width test written <= (a search that gives up on a bracket "
            "exactly as wide as its tolerance)",
)
def check_extrapolation_schedule(ctx: CheckContext) -> None:
    """torch/optim/lbfgs.py ``_strong_wolfe`` (N&W Alg. 3.5 as Lua's lswolfe does it): on ``φ(α) = -α`` the cubic
    through two points with slope -1 is the line itself (d₂² = d₁² - g₁g₂ = 0 exactly), unbounded below, so each
    extrapolation goes to the bound 10·t; on :func:`step_up` the third trial 100α₀ is exactly as high as the second
    10α₀, which brackets ("φ(α_i) >= φ(α_{i-1})", ties included), so the fourth trial is inside (10α₀, 100α₀); the
    zoom stops only on a bracket strictly narrower than its tolerance (``|Δt|·max|d| < 1e-9``: torch's ``step()``
    does not pass its ``tolerance_change`` to the search), so from α₀ = 1e-9 on a function that jumps up at α₀/2
    (slope -1, so the bracket [0, α₀] is exactly 1e-9 wide) it still zooms. α₀ = 2ᵏ and the scales 1 and 8 keep
    every point and value exact."""

    @_settings(ctx)
    @given(k=st.integers(-4, 4), scale=st.sampled_from((1.0, 8.0)))
    @example(k=0, scale=1.0)
    @example(k=-2, scale=8.0)
    def run(k: int, scale: float) -> None:
        alpha0 = 2.0 ** k
        obs, trials = _one_search(ctx, linear_descent(), alpha0, scale, max_eval=8)
        growth = [b / a for a, b in itertools.pairwise(trials)]
        if len(trials) < 2 or any(abs(r - 10.0) > 1e-12 for r in growth):
            raise obs.fail(f"on the straight line φ(α) = -α from α₀ = {alpha0:g} every extrapolation must go to the "
                           f"bound 10·t (the cubic through two points of a line has no minimiser); trials "
                           f"{_shown(trials)}", alpha0=alpha0, trials=trials[:8])

        obs, trials = _one_search(ctx, step_up(50 * alpha0, 90 * alpha0), alpha0, scale)
        expected = [alpha0, 10 * alpha0, 100 * alpha0]
        if len(trials) < 4 or any(abs(t - e) > 1e-12 * e for t, e in zip(trials, expected, strict=False)):
            raise obs.fail(f"on φ(α) = -α + 90α₀·[α >= 50α₀] from α₀ = {alpha0:g} the search must extrapolate "
                           f"α₀, 10α₀, 100α₀ and go on; trials {_shown(trials)}", alpha0=alpha0, trials=trials[:8])
        if not 10 * alpha0 < trials[3] < 100 * alpha0:
            raise obs.fail(f"on φ(α) = -α + 90α₀·[α >= 50α₀] from α₀ = {alpha0:g} the third trial 100α₀ is exactly as "
                           f"high as the second, 10α₀, which ends the extrapolation (N&W Alg. 3.5: φ(α_i) >= "
                           f"φ(α_(i-1))); the next trial must lie between them, it is {trials[3]:.10g}; trials "
                           f"{_shown(trials)}", alpha0=alpha0, trials=trials[:8])

        # torch's search is called without the step's tolerance_change: its bracket test uses the default 1e-9
        tiny = SEARCH_TOLERANCE_CHANGE
        obs, trials = _one_search(ctx, step_up(tiny / 2, 1.0), tiny, 1.0)
        if len(trials) < 2:
            raise obs.fail(f"on φ(α) = -α + [α >= α₀/2] from α₀ = {tiny:g} (failing sufficient decrease), the "
                           f"bracket [0, α₀] is exactly as wide as the search's tolerance 1e-9, not narrower: the "
                           f"search must zoom; it made only the trials {_shown(trials)}",
                           alpha0=tiny, trials=trials[:8])

    run()


def _acceptable(f: float, g: float, x: float, f0: float, g0: float) -> bool:
    """N&W eq. 3.7 with its non-strict inequalities, on exact values: ``f <= f0 + c₁·x·g0``, ``|g| <= c₂·|g0|``."""
    return f <= f0 + SUFFICIENT_DECREASE_C1 * x * g0 and abs(g) <= CURVATURE_C2 * abs(g0)


@register(
    "line_search.accepts_boundary_points",
    category="line_search",
    level="semantics",
    why="torch.optim.LBFGS's constants c₁ = 1e-4, c₂ = 0.9 and its first trial α₀ = lr·min(1, 1/||g||₁): a correct "
        "search with a stricter c₂ rightly goes on past these boundary points",
    needs=('strong_wolfe',),
    title="a strong-Wolfe search stops at the first trial that satisfies both conditions with equality allowed "
          "(exactly on the sufficient-decrease line, or with |φ'| exactly c₂·|φ'(0)|) and is lower than every earlier "
          "point, as the first trial and as a trial of the zoom",
    catches="the strong Wolfe conditions written with strict inequalities (f < f0 + c₁·α·φ'(0), |φ'| < c₂·|φ'(0)|), "
            "in the extrapolation or in the zoom: the search rejects a point that satisfies them and goes on",
)
def check_accepts_boundary_points(ctx: CheckContext) -> None:
    """Nocedal & Wright eq. 3.7 are ``<=``: a trial on the boundary is acceptable, and Algorithms 3.5 and 3.6 stop at
    an acceptable trial that is lower than the earlier ones (torch/optim/lbfgs.py ``_strong_wolfe``: ``f_new >
    loss + c1·t·gtd`` rejects, ``abs(gtd_new) <= -c2·gtd`` accepts). The functions
    (:func:`~lbfgs_verify.problems.line_functions.on_sufficient_decrease_line`,
    :func:`~lbfgs_verify.problems.line_functions.curvature_boundary`) put the first trial α₀ = 2ᵏ, or the zoom's
    trials, exactly on a boundary; with power-of-two scales the test and the harness compute the same numbers."""

    @_settings(ctx)
    @given(k=st.integers(-4, 4), scale=st.sampled_from((1.0, 8.0)), which=st.integers(0, 3))
    @example(k=0, scale=1.0, which=0)
    @example(k=0, scale=1.0, which=1)
    @example(k=0, scale=1.0, which=2)
    @example(k=0, scale=1.0, which=3)
    def run(k: int, scale: float, which: int) -> None:
        alpha0 = 2.0 ** k
        case = (on_sufficient_decrease_line(alpha0 / 2, 4 * alpha0), curvature_boundary(3 * alpha0 / 4),
                on_sufficient_decrease_line(alpha0 / 16, 15 * alpha0 / 16), curvature_boundary(alpha0 / 8))[which]
        obs, _ = _one_search(ctx, case, alpha0, scale)
        step = obs.steps[0]
        start = step.start
        f0, g0 = float(start.loss), float(start.g[0])
        lowest = f0
        for i, e in enumerate(step.evaluations[1:], 1):
            x, f, g = float(e.x[0]), float(e.loss), float(e.g[0])
            if f < lowest and _acceptable(f, g, x, f0, g0):
                if i != len(step.evaluations) - 1 or float(step.x_after[0]) != x:
                    raise obs.fail(
                        f"on {case.name} from α₀ = {alpha0:g} trial {i} at α = {x:.10g} satisfies the strong Wolfe "
                        f"conditions (φ = {f!r} <= φ(0) + c₁·α·φ'(0) = {f0 + SUFFICIENT_DECREASE_C1 * x * g0!r}, "
                        f"|φ'| = {abs(g)!r} <= c₂·|φ'(0)| = {CURVATURE_C2 * abs(g0)!r}, equality allowed by N&W eq. "
                        f"3.7) and is the lowest point so far, but the search went on ({step.calls} closure calls) "
                        f"and accepted α = {float(step.x_after[0]):.10g}",
                        function=case.name, alpha0=alpha0, trial=i, at=x, calls=step.calls)
                return
            lowest = min(lowest, f)

    run()


__all__ = ["PropertyFailed", "check_accepted_point"]
