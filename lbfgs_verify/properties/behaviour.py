"""Behaviour properties (``behaviour.*``): torch.optim.LBFGS's documented conduct, checked from outside.

The target is a black box (:mod:`lbfgs_verify.engine.observe`): its constructor, ``step(closure)``, ``param_groups[0]``
(changing hyperparameters between steps, as users do), what the closure sees and the parameters after each
step. Only ``behaviour.func_evals`` reads the state, and only torch's documented counters
``func_evals``/``n_iter``; a target with another state format SKIPs it.

Semantics referred to (torch/optim/lbfgs.py of torch 2.13, line numbers of that file;
docs/torch-2.13-lbfgs.md):

- a ``step()`` evaluates the closure once at its start (l. 357) and returns that loss (l. 530); if
  ``max|g| <= tolerance_grad`` it returns at once (l. 363-367);
- then up to ``max_iter`` iterations; without line search one closure call after every move except the last
  (l. 486-487, "re-evaluate function only if not in last iteration");
- an iteration ends the step early when ``gᵀd > -tolerance_change`` (before moving, l. 456), or after moving
  when ``current_evals >= max_eval`` (l. 507), ``max|g| <= tolerance_grad`` (l. 511), ``max|t·d| <=
  tolerance_change`` (l. 515) or ``|f - f_prev| < tolerance_change`` (l. 518);
- a step makes at most ``max_eval`` closure calls, ``max_eval + 1`` where the line search gets ``max_ls =
  max_eval - current_evals`` trials after its first (l. 479) and for ``max_eval = 1`` (``behaviour.max_eval`` derives
  this allowance from a torch.optim.LBFGS control run, it does not assume it);
- a parameter without gradient contributes zeros to the flat gradient (l. 289);
- hyperparameters are read from ``param_groups[0]`` at every ``step()``.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from hypothesis import example, given, note
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.compare.bitwise import bytes_equal, first_difference, same_values
from lbfgs_verify.compare.environment import quiet_known_warnings
from lbfgs_verify.engine.capabilities import active_lacks
from lbfgs_verify.engine.observe import (
    CURVATURE_THRESHOLD,
    TORCH_DEFAULTS,
    ObservedStep,
    call_target,
    describe_hyperparameters,
    group_hyperparameters,
    move_difference,
    observe,
    rebuild_directions,
    relative_difference,
    scalar,
    set_hyperparameter,
    state_counters,
    two_loop,
)
from lbfgs_verify.engine.strategies import generated_problem, lr_choices, make_problem, problems
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.problems.extra import at_minimum, sparse_embedding_problem
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, PropertySkipped, register
from lbfgs_verify.properties.mathematics import check_directions


def _float64_problems() -> st.SearchStrategy[Problem]:
    return problems(torch.float64)


def _settings(ctx: CheckContext) -> Any:
    """The budget's hypothesis settings: every distinct failure is reported with its own shrunk example."""
    return ctx.settings()


# --------------------------------------------------------------------------------------------------------
# behaviour.stop_reasons
# --------------------------------------------------------------------------------------------------------


def _distinct_evaluations(step: ObservedStep) -> ObservedStep:
    """``step`` with consecutive closure calls at the same point merged (a final re-evaluation of the point a
    step ends at, as scipy, torchmin and QQN make, is not an iteration)."""
    kept = []
    for e in step.evaluations:
        if kept and same_values(kept[-1].x, e.x):
            continue
        kept.append(e)
    return replace(step, evaluations=kept)


def moves_of(step: ObservedStep) -> int:
    """The number of iterations a step without line search made, counted from outside: the distinct
    consecutive positions it visited (evaluated points, then the parameters it left) minus one. Independent of
    whether the target evaluates the final point."""
    positions = [e.x for e in step.evaluations] + [step.x_after]
    return sum(1 for a, b in itertools.pairwise(positions) if not same_values(a, b))


def _iterates(steps: Sequence[ObservedStep]) -> tuple[list[Tensor], list[Tensor]]:
    """The distinct evaluated iterates of a run without line search, in order (x and g)."""
    xs: list[Tensor] = []
    gs: list[Tensor] = []
    for step in steps:
        for e in step.evaluations:
            if xs and same_values(xs[-1], e.x):
                continue
            xs.append(e.x)
            gs.append(e.g)
    return xs, gs


def _stop_reasons(steps: Sequence[ObservedStep], k: int, hp: dict[str, Any], history_size: int,
                  eps: float) -> list[str]:
    """The documented reasons that hold where step ``k`` (without line search) ended at an evaluated point."""
    step = steps[k]
    last = step.evaluations[-1]
    reasons = []
    tol_grad = scalar(hp["tolerance_grad"])
    tol_change = scalar(hp["tolerance_change"])
    if float(last.g.abs().max()) <= tol_grad:
        reasons.append(f"max|g| = {float(last.g.abs().max()):.3g} <= tolerance_grad")
    if step.calls >= 2:
        prev = step.evaluations[-2]
        if step.calls >= int(hp["max_eval"]):
            reasons.append(f"{step.calls} calls >= max_eval")
        move = float((last.x - prev.x).abs().max())
        allowance = 4 * eps * float((last.x.abs() + prev.x.abs()).max())
        if move <= tol_change * (1 + 1e-6) + allowance:
            reasons.append(f"max|t·d| = {move:.3g} <= tolerance_change")
        change = abs(last.loss - prev.loss)
        if change < tol_change * (1 + 1e-6) + 4 * eps * abs(last.loss):
            reasons.append(f"|Δf| = {change:.3g} < tolerance_change")
    # gᵀd > -tolerance_change with d the L-BFGS direction at the last point, rebuilt from the observed pairs: the
    # memory kept across step() (torch) or restarted at this step() (allowed at level properties)
    for memory, observed in (("kept across step()", steps[:k + 1]), ("restarted at this step()", steps[k:k + 1])):
        xs, gs = _iterates(observed)
        rebuilt = rebuild_directions(xs, gs, [history_size] * len(xs), eps)[-1]
        d = rebuilt.d if len(xs) > 1 or step.calls > 1 or k > 0 else -gs[-1]
        gtd = float(gs[-1] @ d)
        slack = 1e-6 * float(gs[-1].abs().sum()) * float(d.abs().max())
        if rebuilt.ambiguous or gtd > -tol_change * (1 + 1e-6) - slack:
            reasons.append(f"gᵀd = {gtd:.3g} > -tolerance_change (d rebuilt from the observed pairs, memory "
                           f"{memory})")
            break
    return reasons


@register(
    "behaviour.stop_reasons",
    category="behaviour",
    needs=("no_line_search",),
    title="a step() that ends before max_iter iterations has a documented reason (tolerance_grad, "
          "tolerance_change on the loss, the step or gᵀd, max_eval)",
    catches="premature stops: undocumented stopping rules (loss went up, relative tests), a tolerance compared "
            "with the wrong norm (mean |g| for max |g|), a break in the wrong place",
)
def check_stop_reasons(ctx: CheckContext) -> None:
    """Without line search a step makes one move per iteration; one that made fewer than ``max_iter`` moves
    (:func:`moves_of`, so a final re-evaluation of the last point does not count) ended early at an evaluated
    point, where one of torch's reasons must hold: max|g| <= tolerance_grad;
    after a move, calls >= max_eval, max|x - x_prev| <= tolerance_change or |f - f_prev| < tolerance_change;
    or gᵀd > -tolerance_change for the direction d that L-BFGS takes there (rebuilt from the observed pairs
    with the two-loop recursion; relative slack 1e-6). Float64 problems, tolerances drawn from
    {0, torch's, coarse} so that every rule fires somewhere. Rounding allowance on each test: relative 1e-6
    plus 4·eps of the magnitudes."""
    n_steps = max(6, ctx.budget.steps)

    @_settings(ctx)
    @given(problem=_float64_problems(), lr=lr_choices((1, 0.5)), max_iter=st.integers(2, 8),
           history_size=st.integers(1, 5), tolerance_grad=st.sampled_from((1e-7, 1e-5, 1e-3, 1e-2)),
           tolerance_change=st.sampled_from((0.0, 1e-12, 1e-9, 1e-6)), eval_slack=st.sampled_from((0, 1, 10)))
    @example(problem=make_problem("tiny_mlp_with_unused"), lr=1, max_iter=6, history_size=3, tolerance_grad=1e-2,
             tolerance_change=0.0, eval_slack=10)
    @example(problem=make_problem("rosenbrock"), lr=1, max_iter=4, history_size=2, tolerance_grad=1e-7,
             tolerance_change=1e-9, eval_slack=10)
    def run(problem: Problem, lr: float, max_iter: int, history_size: int, tolerance_grad: float,
            tolerance_change: float, eval_slack: int) -> None:
        hp = {"lr": lr, "max_iter": max_iter, "max_eval": max_iter + eval_slack, "history_size": history_size,
              "line_search_fn": None, "tolerance_grad": tolerance_grad, "tolerance_change": tolerance_change}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps)
        steps = [_distinct_evaluations(step) for step in obs.steps]
        for k, step in enumerate(steps):
            if not bool(torch.isfinite(step.x_after).all()):
                return
            last = step.evaluations[-1]
            moves = moves_of(step)
            if moves >= max_iter or not same_values(step.x_after, last.x):
                continue
            reasons = _stop_reasons(steps, k, hp, history_size, obs.eps)
            note(f"step {k}: ended after {moves} move(s); reasons: {reasons}")
            if not reasons:
                raise obs.fail(
                    f"step {k} ended after {moves} of max_iter={max_iter} iterations ({step.calls} closure calls) "
                    f"at an evaluated point where no documented stopping reason holds: max|g| = "
                    f"{float(last.g.abs().max()):.3g} > tolerance_grad, "
                    + (f"|Δf| = {abs(last.loss - step.evaluations[-2].loss):.3g}, max|Δx| = "
                       f"{float((last.x - step.evaluations[-2].x).abs().max()):.3g} (tolerance_change = "
                       f"{tolerance_change:g}), " if step.calls >= 2 else "")
                    + f"{step.calls} calls < max_eval = {hp['max_eval']}, and the L-BFGS direction there is a "
                    "descent direction with gᵀd < -tolerance_change",
                    step=k, moves=moves, calls=step.calls, max_grad=float(last.g.abs().max()))

    run()


# --------------------------------------------------------------------------------------------------------
# behaviour.iterations
# --------------------------------------------------------------------------------------------------------


def _far_from_convergence(first: ObservedStep, step: ObservedStep) -> bool:
    """Every evaluation of ``step`` is finite with max|g| above 1e-6·max|g₀|: a move cannot vanish in rounding,
    so "no stopping test can fire" holds (float64 problems)."""
    g0 = float(first.start.g.abs().max())
    return all(bool(torch.isfinite(e.g).all()) and float(e.g.abs().max()) > 1e-6 * g0 for e in step.evaluations)


@register(
    "behaviour.max_iter",
    category="behaviour",
    needs=("no_line_search",),
    title="without line search a step makes at most max_iter iterations (moves), and exactly max_iter when no "
          "stopping test can fire",
    catches="off-by-one in max_iter (an iteration too many or too few), max_iter ignored",
    why="any correct L-BFGS honours max_iter; the moves are counted from outside, whether or not the final point "
        "is evaluated",
)
def check_max_iter(ctx: CheckContext) -> None:
    """The set-up of ``behaviour.iterations`` (no line search, ``tolerance_grad = tolerance_change = 0``,
    ``max_eval > max_iter``, float64 problems, steps checked while max|g| > 1e-6·max|g₀|), but the iterations
    are counted as moves (:func:`moves_of`): each step must make exactly ``max_iter``, whatever its evaluation
    schedule."""
    n_steps = max(3, ctx.budget.steps // 2)

    @_settings(ctx)
    @given(problem=_float64_problems(), lr=lr_choices((1, 0.5)), max_iter=st.integers(1, 6),
           history_size=st.integers(1, 5), eval_slack=st.sampled_from((1, 3)))
    @example(problem=make_problem("coupled_tensors"), lr=0.5, max_iter=3, history_size=2, eval_slack=3)
    def run(problem: Problem, lr: float, max_iter: int, history_size: int, eval_slack: int) -> None:
        hp = {"lr": lr, "max_iter": max_iter, "max_eval": max_iter + eval_slack, "history_size": history_size,
              "line_search_fn": None, "tolerance_grad": 0.0, "tolerance_change": 0.0}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps)
        for step in obs.steps:
            if not _far_from_convergence(obs.steps[0], step):
                return
            moves = moves_of(step)
            if moves != max_iter:
                raise obs.fail(f"step {step.index}: {moves} iterations (distinct moves) instead of max_iter = "
                               f"{max_iter} — without line search and with both tolerances 0 no stopping test can "
                               f"fire before max_iter ({step.calls} closure calls)", step=step.index, moves=moves,
                               max_iter=max_iter, calls=step.calls)

    run()


@register(
    "behaviour.iterations",
    category="behaviour",
    needs=("no_line_search",),
    level="semantics",
    why="torch's evaluation schedule: no closure call after the last iteration (another correct L-BFGS may "
        "evaluate the final point)",
    title="without line search and with no stopping test able to fire, a step runs exactly max_iter iterations: "
          "max_iter closure calls, the last move not evaluated (max_eval < max_iter: exactly max_eval calls)",
    catches="off-by-one in max_iter, an extra closure call after the last iteration (torch: 're-evaluate "
            "function only if not in last iteration'), a closure called twice per iteration",
)
def check_iterations(ctx: CheckContext) -> None:
    """``tolerance_grad = tolerance_change = 0`` and ``max_eval > max_iter`` (the ``current_evals >= max_eval``
    test counts the first call, so ``max_eval = max_iter`` — the default for max_iter < 4 — ends a step one
    iteration early): none of torch's early stops can fire on a non-stationary smooth problem (they need
    g = 0 or gᵀd >= 0). So each step must make exactly ``max_iter`` closure calls at distinct points (one at
    the start, one after each move but the last) and end with one more, unevaluated, move. Some examples set
    ``max_eval = max_iter - 1`` instead: the step must then stop after exactly ``max_eval`` calls, at the last
    evaluated point (torch tests ``current_evals >= max_eval`` after each iteration). Float64 problems;
    steps are checked while max|g| > 1e-6·max|g₀| (before convergence a move cannot vanish in rounding)."""
    n_steps = max(3, ctx.budget.steps // 2)

    @_settings(ctx)
    @given(problem=_float64_problems(), lr=lr_choices((1, 0.5)), max_iter=st.integers(1, 6),
           history_size=st.integers(1, 5), eval_slack=st.sampled_from((1, 3, -1)))
    @example(problem=make_problem("rosenbrock"), lr=1, max_iter=5, history_size=3, eval_slack=-1)
    def run(problem: Problem, lr: float, max_iter: int, history_size: int, eval_slack: int) -> None:
        if eval_slack < 0 and (max_iter < 3 or "max_eval" in active_lacks()):
            eval_slack = 1
        max_eval = max_iter + eval_slack
        binding = max_eval < max_iter  # current_evals >= max_eval fires after max_eval - 1 iterations
        calls_wanted = max_eval if binding else max_iter
        hp = {"lr": lr, "max_iter": max_iter, "max_eval": max_eval, "history_size": history_size,
              "line_search_fn": None, "tolerance_grad": 0.0, "tolerance_change": 0.0}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps)
        for step in obs.steps:
            if not _far_from_convergence(obs.steps[0], step):
                return
            distinct = all(not same_values(a.x, b.x) for a, b in zip(step.evaluations, step.evaluations[1:],
                                                                     strict=False))
            moved_last = not same_values(step.x_after, step.evaluations[-1].x)
            if step.calls != calls_wanted or not distinct or moved_last == binding:
                what = []
                if step.calls != calls_wanted:
                    what.append(f"{step.calls} closure calls instead of "
                                + (f"max_eval = {max_eval}" if binding else f"max_iter = {max_iter}"))
                if not distinct:
                    what.append("two consecutive calls at the same point (a second evaluation of one iterate)")
                if moved_last == binding:
                    what.append("the step ended at an evaluated point (the last iteration's move is evaluated or "
                                "missing)" if not binding else "the step ended on an unevaluated move")
                rule = (f"with max_eval = {max_eval} < max_iter = {max_iter} a step stops once it has made max_eval "
                        "closure calls (current_evals >= max_eval, the first call counted), at an evaluated point"
                        if binding else "a step runs exactly max_iter iterations, evaluating after every move but "
                        "the last")
                raise obs.fail(f"step {step.index}: {'; '.join(what)} — without line search and with both "
                               f"tolerances 0 {rule}", step=step.index, calls=step.calls, max_iter=max_iter,
                               max_eval=max_eval)

    run()


# --------------------------------------------------------------------------------------------------------
# behaviour.max_eval
# --------------------------------------------------------------------------------------------------------


_TORCH_CALLS: dict[tuple[str, str, int], list[int]] = {}
"""Closure calls per step of torch.optim.LBFGS on a scenario (the controls of ``behaviour.max_eval``), cached."""


def torch_calls_per_step(problem: Problem, hp: dict[str, Any], n_steps: int) -> list[int]:
    """The closure calls that torch.optim.LBFGS makes in each ``step()`` of a scenario (problem, hyperparameters,
    number of steps), cached; ``[]`` where torch raises."""
    from lbfgs_verify.targets.load import Target

    key = (problem.name, repr(sorted(hp.items(), key=lambda kv: kv[0])), n_steps)
    if key not in _TORCH_CALLS:
        try:
            with quiet_known_warnings():
                obs = observe(Target("torch.optim:LBFGS", torch.optim.LBFGS), problem, hp, n_steps)
            _TORCH_CALLS[key] = [step.calls for step in obs.steps]
        except PropertyFailed:  # torch cannot run the scenario: nothing measured, no allowance
            _TORCH_CALLS[key] = []
    return _TORCH_CALLS[key]


def torch_max_eval_controls(problem: Problem, hp: dict[str, Any], n_steps: int) -> dict[str, list[int]]:
    """The control runs of ``behaviour.max_eval``: torch.optim.LBFGS's calls per step on the same scenario, and
    with the same hyperparameters on φ(α) = -α (:func:`~lbfgs_verify.problems.line_functions.linear_descent`: a
    strong-Wolfe search never finds a point there, so its budget ends every search, and without line search
    max_iter or max_eval ends the step). The second shows what torch's budget rule allows with these settings on
    any trajectory: an L-BFGS with another first step meets a long search where torch's own run did not."""
    from lbfgs_verify.problems.line_functions import line_problem, linear_descent

    return {"the same scenario": torch_calls_per_step(problem, hp, n_steps),
            "φ(α) = -α (the budget ends every search)": torch_calls_per_step(
                line_problem(linear_descent()), hp, n_steps)}


def _final_evaluation(step: ObservedStep, max_iter: int) -> bool:
    """The step's last closure call is a final evaluation of the result (as scipy, torchmin and QQN make), not a
    further trial: it evaluates the point where the step ends, and that point was evaluated before in this step
    (torch's search ends at one of its trials) or the step had made all its ``max_iter`` moves (torch does not
    evaluate after the last move, l. 486-487). A call past the budget after a move that max_iter did not end
    (``evals > max_eval`` for ``>=``) is neither."""
    e = step.evaluations
    if len(e) < 2 or not torch.equal(e[-1].x, step.x_after):
        return False
    return any(torch.equal(earlier.x, step.x_after) for earlier in e[:-1]) or moves_of(step) >= max_iter


@register(
    "behaviour.max_eval",
    category="behaviour",
    needs=("max_eval",),
    title="a step makes at most max_eval closure calls (one more only where torch.optim.LBFGS itself makes "
          "max_eval + 1 with the same hyperparameters, measured by control runs on the same scenario and on "
          "φ(α) = -α; a final evaluation of the result, after max_iter moves or at a point already evaluated, is "
          "not counted)",
    catches="max_eval ignored or applied per iteration instead of per step, the budget test written with > for >= "
            "(one call past max_eval), a line search with its own fixed budget, a closure called too often",
)
def check_max_eval(ctx: CheckContext) -> None:
    """torch counts ``current_evals`` per step and stops once ``current_evals >= max_eval`` (torch/optim/lbfgs.py
    l. 507); its strong-Wolfe search gets ``max_ls = max_eval - current_evals`` trials after its first, so with a
    line search a step can make ``max_eval + 1`` calls (PyTorch's ``test_step_iteration`` counts 6 for
    ``max_eval=5``), and without one only for ``max_eval = 1``. That allowance is not assumed: when a step makes
    more than ``max_eval`` calls, torch.optim.LBFGS runs as a control with the same hyperparameters on the same
    scenario and on φ(α) = -α (where the budget ends every search: :func:`torch_max_eval_controls`), and one call
    more than ``max_eval`` is allowed only if torch makes ``max_eval + 1`` in some step of them. Large ``lr`` (10,
    100) makes the strong-Wolfe search overshoot and zoom, so that a search with its own budget shows."""
    n_steps = max(3, ctx.budget.steps // 2)
    rosenbrock = make_problem("rosenbrock")

    @_settings(ctx)
    @given(problem=problems(), lr=lr_choices((1, 10.0, 100.0)), max_iter=st.integers(1, 6),
           max_eval=st.integers(1, 8), history_size=st.integers(1, 5),
           line_search=st.sampled_from((None, "strong_wolfe")))
    @example(problem=rosenbrock, lr=100.0, max_iter=3, max_eval=2, history_size=3, line_search="strong_wolfe")
    @example(problem=rosenbrock, lr=1, max_iter=6, max_eval=3, history_size=3, line_search=None)
    def run(problem: Problem, lr: float, max_iter: int, max_eval: int, history_size: int,
            line_search: str | None) -> None:
        hp = {"lr": lr if line_search else min(lr, 1), "max_iter": max_iter, "max_eval": max_eval,
              "history_size": history_size, "line_search_fn": line_search}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps)
        controls: dict[str, list[int]] | None = None
        for step in obs.steps:
            final = 1 if _final_evaluation(step, max_iter) else 0
            if step.calls - final <= max_eval:
                continue
            if controls is None:
                controls = torch_max_eval_controls(problem, hp, n_steps)
            allowed = max([max_eval, *(c for calls in controls.values() for c in calls)])
            if step.calls - final > allowed:
                torch_line = "; ".join(f"on {name} torch.optim.LBFGS makes {calls or 'nothing (it raised)'}"
                                       for name, calls in controls.items())
                why = ("max_eval + 1, since torch.optim.LBFGS makes that many in a step of a control run"
                       if allowed > max_eval else "max_eval")
                raise obs.fail(f"step {step.index} made {step.calls} closure calls with max_eval = {max_eval}: at "
                               f"most {allowed} ({why}) are allowed"
                               + (", plus a final evaluation of the result" if final else "")
                               + f" (closure calls per step: {torch_line})", step=step.index, calls=step.calls,
                               max_eval=max_eval, allowed=allowed, torch_calls=controls)

    run()


# --------------------------------------------------------------------------------------------------------
# behaviour.func_evals
# --------------------------------------------------------------------------------------------------------


@register(
    "behaviour.func_evals",
    category="behaviour",
    level="semantics",
    why="torch's state keys and their meaning; the state format is free at level properties",
    title="the state's func_evals equals the number of closure calls so far, and n_iter the iterations "
          "(only for targets whose state_dict has torch's keys; skipped otherwise)",
    catches="evaluation or iteration counters that miss line-search calls, count per step, or drift",
)
def check_func_evals(ctx: CheckContext) -> None:
    """After every step, ``state_dict()["state"][*]["func_evals"]`` must equal the closure calls made since the
    optimizer was built. ``n_iter`` is checked where the iteration count is known from outside: without line
    search, with both tolerances 0 and ``max_eval > max_iter`` (``behaviour.iterations``) it is
    steps × max_iter, on float64 problems before convergence. Only torch's
    documented keys are read; a target whose ``state_dict()`` has no ``func_evals`` skips."""
    n_steps = max(3, ctx.budget.steps // 2)
    seen_counters: list[bool] = []

    @_settings(ctx)
    @given(problem=problems(), max_iter=st.integers(1, 5), history_size=st.integers(1, 5),
           line_search=st.sampled_from((None, "strong_wolfe")), zero_tolerances=st.booleans())
    def run(problem: Problem, max_iter: int, history_size: int, line_search: str | None,
            zero_tolerances: bool) -> None:
        hp: dict[str, Any] = {"max_iter": max_iter, "history_size": history_size, "line_search_fn": line_search}
        if zero_tolerances:
            hp.update(tolerance_grad=0.0, tolerance_change=0.0, max_eval=2 * max_iter + 1)
        counts: list[tuple[dict[str, int] | None, int]] = []
        total = [0]

        def after(k: int, optimizer: Any) -> None:
            if k > 0:
                counts.append((state_counters(optimizer), k))

        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps, before_step=after)
            counts.append((state_counters(obs.optimizer), len(obs.steps)))
        calls = [s.calls for s in obs.steps]
        for counters, k in counts:
            if counters is None:
                continue
            seen_counters.append(True)
            total[0] = sum(calls[:k])
            if counters.get("func_evals") != total[0]:
                raise obs.fail(f"after {k} step(s) the state's func_evals is {counters.get('func_evals')} but the "
                               f"closure was called {total[0]} times (calls per step: {calls[:k]})",
                               steps=k, func_evals=counters.get("func_evals"), calls=total[0])
            known = zero_tolerances and line_search is None and "n_iter" in counters
            if known and all(_far_from_convergence(obs.steps[0], s) for s in obs.steps[:k]) \
                    and counters["n_iter"] != k * max_iter:
                raise obs.fail(f"after {k} step(s) of max_iter={max_iter} iterations each the state's n_iter is "
                                   f"{counters['n_iter']}, not {k * max_iter}", steps=k, n_iter=counters["n_iter"])

    run()
    if not seen_counters:
        raise PropertySkipped("the target's state_dict() has no torch-style 'func_evals' counter")


# --------------------------------------------------------------------------------------------------------
# behaviour.defaults
# --------------------------------------------------------------------------------------------------------


def _defaults_problem() -> Problem:
    """A problem on which 2 default steps (20 iterations each, 25 evaluations) neither converge nor stall and
    fill more than 10 history slots: a generated 12-unknown problem, float64."""
    return generated_problem(11, [5, 4, 3], torch.float64)


@register(
    "behaviour.defaults",
    category="behaviour",
    level="semantics",
    why="the defaults are torch's documented ones, not a property of L-BFGS",
    title="the defaults are torch's: param_groups[0] holds lr=1, max_iter=20, max_eval=25, tolerance_grad=1e-7, "
          "tolerance_change=1e-9, history_size=100, line_search_fn=None, and a default-built optimizer runs "
          "like one built with those values",
    catches="defaults that differ from torch.optim.LBFGS (history_size 10 as in scipy, max_eval = max_iter, "
            "another tolerance), a default that is stored but not used",
)
def check_defaults(ctx: CheckContext) -> None:
    """Two checks. (1) If the target has ``param_groups``, every key of torch's defaults must be there with
    torch's value (``max_eval`` = 25 = 20·5//4). (2) Black box: an optimizer built with no hyperparameters and
    one built with torch's default values written out run 3 steps on a 12-unknown float64 problem (60
    iterations without line search, then with ``line_search_fn='strong_wolfe'`` written out on both) and must
    agree: same closure calls per step and parameters within relative 1e-10 (same code, same arguments)."""
    params = _defaults_problem().make_params()
    optimizer = call_target("constructing the optimizer with no hyperparameters", lambda: ctx.target.make(params))
    group = group_hyperparameters(optimizer)
    if group is not None:
        wrong = {k: group.get(k, "<missing>") for k, v in TORCH_DEFAULTS.items()
                 if k not in group or not _same_value(group[k], v)}
        if wrong:
            raise PropertyFailed(
                "param_groups[0] of a default-built optimizer differs from torch.optim.LBFGS's defaults: "
                + ", ".join(f"{k}={v!r} (torch: {TORCH_DEFAULTS[k]!r})" for k, v in wrong.items()),
                {"differs": {k: repr(v) for k, v in wrong.items()}})
    problem = _defaults_problem()
    explicit = dict(TORCH_DEFAULTS)
    for extra in ({}, {"line_search_fn": "strong_wolfe"}):
        with quiet_known_warnings():
            implicit_run = observe(ctx.target, problem, dict(extra), 3)
            explicit_run = observe(ctx.target, problem, {**explicit, **extra}, 3)
        for a, b in zip(implicit_run.steps, explicit_run.steps, strict=False):
            r = relative_difference(a.x_after, b.x_after)
            if a.calls != b.calls or not r <= 1e-10:
                raise explicit_run.fail(
                    f"step {a.index}: an optimizer built with {describe_hyperparameters(extra)} differs from one "
                    f"built with torch's defaults written out: {a.calls} vs {b.calls} closure calls, parameters "
                    f"differ by relative {r:.3g}", step=a.index, calls_default=a.calls, calls_explicit=b.calls,
                    relative_difference=r)


def _same_value(a: Any, b: Any) -> bool:
    if b is None or isinstance(b, str):
        return a == b
    try:
        return scalar(a) == float(b)
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------------------
# behaviour.change_lr / change_max_iter / change_history_size
# --------------------------------------------------------------------------------------------------------


@register(
    "behaviour.change_lr",
    category="behaviour",
    needs=("lr",),
    title="param_groups[0]['lr'] changed between steps takes effect at the next step",
    catches="lr read once at construction or cached in the state, an lr change that crashes step()",
)
def check_change_lr(ctx: CheckContext) -> None:
    """Two optimizers run the same ``k`` one-iteration steps; then one gets ``lr ← lr·ρ`` through
    ``param_groups[0]``. At the next step both are at the same point with the same memory, so the changed one
    must move (no line search) or make its first trial (``strong_wolfe``) ρ times as far along the same
    direction: relative tolerance 1e-6 (float64) / 1e-3 (float32) beyond 4·eps·(|x| + |x_new|) per coordinate
    (:func:`lbfgs_verify.engine.observe.move_difference`)."""

    @_settings(ctx)
    @given(problem=problems(), k=st.integers(0, 4), lr=lr_choices((1, 0.5)), ratio=st.sampled_from((0.5, 0.1)),
           line_search=st.sampled_from((None, "strong_wolfe")), history_size=st.integers(1, 4))
    def run(problem: Problem, k: int, lr: float, ratio: float, line_search: str | None, history_size: int) -> None:
        hp = {"lr": lr, "max_iter": 1, "max_eval": 10, "history_size": history_size, "line_search_fn": line_search}

        def change(step: int, optimizer: Any) -> None:
            if step == k:
                set_hyperparameter(optimizer, "lr", lr * ratio)

        with quiet_known_warnings():
            same = observe(ctx.target, problem, hp, k + 1)
            changed = observe(ctx.target, problem, hp, k + 1, before_step=change)
        if len(same.steps) <= k or len(changed.steps) <= k:
            return
        a, b = same.steps[k], changed.steps[k]
        if not same_values(a.start.x, b.start.x) or not a.moved:
            return
        if line_search is None:
            move_a, move_b = a.x_after - a.start.x, b.x_after - b.start.x
        elif a.calls >= 2 and b.calls >= 2:
            move_a, move_b = a.evaluations[1].x - a.start.x, b.evaluations[1].x - b.start.x
        else:
            return
        tol = 1e-6 if problem.dtype == torch.float64 else 1e-3
        r = move_difference(move_b, ratio * move_a, b.start.x, b.start.x + move_b, changed.eps)
        if not r <= tol:
            observed = float(move_b @ move_a) / float(move_a @ move_a) if float(move_a @ move_a) else math.nan
            raise changed.fail(
                f"step {k}: after param_groups[0]['lr'] = {lr * ratio:g} (was {lr:g}) the "
                f"{'move' if line_search is None else 'first trial step'} should be {ratio:g}× the unchanged "
                f"optimizer's; observed ratio {observed:.6g} (relative difference {r:.3g})",
                step=k, expected_ratio=ratio, observed_ratio=observed)

    run()


@register(
    "behaviour.change_max_iter",
    category="behaviour",
    needs=("no_line_search",),
    title="param_groups[0]['max_iter'] changed between steps takes effect at the next step",
    catches="max_iter read once at construction, a max_iter change that crashes step()",
)
def check_change_max_iter(ctx: CheckContext) -> None:
    """Without line search and with both tolerances 0 a step makes exactly ``max_iter`` iterations
    (``behaviour.max_iter``, counted as moves); ``max_iter`` is changed through ``param_groups[0]`` between
    steps (1 → m → 2) and each step's number of moves must follow. Step 0 runs with the constructed value."""

    @_settings(ctx)
    @given(problem=_float64_problems(), m=st.integers(2, 6), history_size=st.integers(1, 5))
    def run(problem: Problem, m: int, history_size: int) -> None:
        schedule = [1, m, 2]
        hp = {"lr": 1 if "lr" in ctx.lacks else 0.5, "max_iter": 1, "max_eval": 20, "history_size": history_size,
              "line_search_fn": None, "tolerance_grad": 0.0, "tolerance_change": 0.0}

        def change(step: int, optimizer: Any) -> None:
            if step > 0:
                set_hyperparameter(optimizer, "max_iter", schedule[step])

        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, len(schedule), before_step=change)
        for step, expected in zip(obs.steps, schedule, strict=False):
            if not _far_from_convergence(obs.steps[0], step):
                return
            moves = moves_of(step)
            if moves != expected:
                how = ("as constructed, before any change" if step.index == 0 else
                       f"after param_groups[0]['max_iter'] was set to {expected}")
                raise obs.fail(f"step {step.index}: max_iter = {expected} ({how}) but the step made {moves} "
                               f"iterations (distinct moves; {step.calls} closure calls; no line search, "
                               "tolerances 0)", step=step.index, max_iter=expected, moves=moves, calls=step.calls,
                               schedule=schedule)

    run()


@register(
    "behaviour.change_history_size",
    category="behaviour",
    needs=("history_size_change",),
    level="semantics",
    why="a history_size change between steps can only take effect on a memory kept across step() (torch's "
        "behaviour); an L-BFGS that restarts its memory at every step() has nothing to trim",
    title="param_groups[0]['history_size'] changed between steps takes effect: later directions use the "
          "history_size newest pairs (and step() keeps working)",
    catches="history_size read once at construction, a memory that is not trimmed (or not grown) on change, "
            "IndexError in step() after the change (torch 2.13 fails here: facts defect #4)",
)
def check_change_history_size(ctx: CheckContext) -> None:
    """One-iteration steps without line search (the ``mathematics.two_loop_direction`` model); after ``k``
    steps with ``h1`` pairs, ``history_size`` is set to ``h2`` and the remaining directions must equal the
    two-loop rebuild with the ``h2`` newest pairs (relative 1e-6). Every example runs it three ways: lowered
    below the pairs held at the change, lowered and saved at once (``load_state_dict(state_dict())`` on the
    same optimizer: the saved memory must fit the new size), and raised. torch.optim.LBFGS 2.13 raises
    IndexError after a lowering (its ``al`` buffer keeps the old length); lbfgs_verify.reference.LBFGS keeps the
    newest pairs."""
    n_steps = max(8, ctx.budget.steps)

    @_settings(ctx)
    @given(problem=_float64_problems(), small=st.integers(1, 3), extra=st.integers(1, 3),
           later=st.integers(1, 3), lr=lr_choices((1, 0.5)))
    def run(problem: Problem, small: int, extra: int, later: int, lr: float) -> None:
        large = small + extra
        k = small + 1 + later  # k - 1 > small pairs are held at the change when lowering
        for h1, h2, round_trip in ((large, small, False), (large, small, True), (small, large, False)):
            hp = {"lr": lr, "max_iter": 1, "history_size": h1, "line_search_fn": None}

            def change(step: int, optimizer: Any, h1: int = h1, h2: int = h2, round_trip: bool = round_trip) -> None:
                if step == k:
                    set_hyperparameter(optimizer, "history_size", h2)
                    if round_trip:
                        try:
                            optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
                        except Exception as exc:  # the target's own state must load back
                            raise PropertyFailed(
                                f"the optimizer's own state_dict(), saved right after history_size {h1} → {h2}, "
                                f"does not load back: {type(exc).__name__}: {exc}",
                                {"h1": h1, "h2": h2, "exception": type(exc).__name__}) from exc

            how = f"param_groups[0]['history_size'] {h1} → {h2} before step {k}" + (
                ", then load_state_dict(state_dict()) on the same optimizer" if round_trip else "")
            try:
                with quiet_known_warnings():
                    obs = observe(ctx.target, problem, hp, n_steps, before_step=change)
                sizes = [h1 if i < k else h2 for i in range(len(obs.steps))]
                check_directions(obs, sizes)
            except PropertyFailed as exc:
                raise PropertyFailed(f"after {how}: {exc}", {**exc.evidence, "h1": h1, "h2": h2,
                                                            "changed_before_step": k, "round_trip": round_trip}
                                     ) from None

    run()


def _unit(v: Tensor) -> Tensor:
    """``v`` scaled to max-norm 1 (directions compared regardless of the step length convention)."""
    top = float(v.abs().max())
    return v / top if top > 0 else v


def lowered_history_candidates(xs: Sequence[Tensor], gs: Sequence[Tensor], k: int, h1: int, h2: int,
                               eps: float) -> tuple[dict[str, Tensor], dict[str, Tensor], bool]:
    """At iterate ``k``, right after ``history_size`` was lowered from ``h1`` to ``h2``: the directions a correct
    L-BFGS may take (the two-loop with the ``h2`` newest pairs, or ``-g`` from an empty memory), the directions
    from older pairs (the ``h2`` oldest held, or the ``h2 - 1`` oldest and the newest: for naming the mistake),
    and whether a curvature decision was within rounding (then nothing is judged). Rebuilt as
    :func:`lbfgs_verify.engine.observe.rebuild_directions` does (N&W Alg. 7.4 and 7.5, γ from the newest pair used)."""
    newest = rebuild_directions(xs[:k + 1], gs[:k + 1], [h1] * k + [h2], eps)[k]
    held = rebuild_directions(xs[:k + 1], gs[:k + 1], [h1] * (k + 1), eps)[k]
    allowed = {f"the two-loop direction from the {newest.pairs} newest pair(s)": newest.d,
               "-g (an empty memory)": -gs[k]}
    pairs = [(xs[j + 1] - xs[j], gs[j + 1] - gs[j]) for j in range(k)]
    memory = [(sv, yv) for sv, yv in pairs if float(yv @ sv) > CURVATURE_THRESHOLD][-h1:]

    def direction(chosen: list[tuple[Tensor, Tensor]]) -> Tensor:
        s_new, y_new = chosen[-1]
        return two_loop(gs[k], chosen, float(y_new @ s_new) / float(y_new @ y_new))

    older: dict[str, Tensor] = {}
    if len(memory) > h2 >= 1:
        older[f"the {h2} oldest pair(s) held"] = direction(memory[:h2])
        if h2 >= 2:
            older[f"the {h2 - 1} oldest pair(s) held and the newest"] = direction(memory[:h2 - 1] + memory[-1:])
    return allowed, older, newest.ambiguous or held.ambiguous


@register(
    "behaviour.lowered_history_uses_newest",
    category="behaviour",
    needs=("history_size_change", "no_line_search"),
    title="after param_groups[0]['history_size'] is lowered between steps, the next direction is the two-loop "
          "direction from the newest pairs or -g (an empty memory), whichever the optimizer's convention gives, "
          "never one built from older pairs (compared up to a positive factor)",
    catches="a lowered history_size that keeps the oldest pairs, a memory trimmed from the wrong end, a lowering "
            "that is ignored (all pairs still used), step() raising after the change (torch 2.13: IndexError, "
            "facts defect #4)",
    why="convention-free form of behaviour.change_history_size: an L-BFGS that keeps its memory across step() "
        "uses the newest pairs (N&W Alg. 7.5 discards the oldest), one that restarts its memory uses -g; no "
        "correct L-BFGS uses pairs older than the newest history_size ones",
)
def check_lowered_history_uses_newest(ctx: CheckContext) -> None:
    """One-iteration steps without line search, both tolerances 0, ``history_size`` ``h1`` for ``k`` steps (more
    than ``h2`` pairs held), then ``h2 >= 2`` before step ``k``. The move of step ``k``, scaled to max-norm 1 (the
    step length is a convention), must equal the two-loop direction from the ``h2`` newest observed pairs or
    -g_k, likewise scaled, within relative max-norm 1e-6. When it does not, the message says whether it is the
    direction from the oldest pairs. Not judged: a step that does not move, a curvature decision within
    rounding of the 1e-10 threshold."""

    @_settings(ctx)
    @given(problem=_float64_problems(), small=st.integers(2, 3), extra=st.integers(1, 3), later=st.integers(1, 3),
           lr=lr_choices((1, 0.5)))
    @example(problem=make_problem("coupled_tensors"), small=2, extra=2, later=2, lr=0.5)
    @example(problem=make_problem("rosenbrock"), small=2, extra=1, later=2, lr=0.5)
    def run(problem: Problem, small: int, extra: int, later: int, lr: float) -> None:
        h1, h2 = small + extra, small
        k = h1 + later  # k pairs observed before step k, h1 > h2 of them held
        hp = {"lr": lr, "max_iter": 1, "history_size": h1, "line_search_fn": None, "tolerance_grad": 0.0,
              "tolerance_change": 0.0}

        def change(step: int, optimizer: Any) -> None:
            if step == k:
                set_hyperparameter(optimizer, "history_size", h2)

        with quiet_known_warnings():
            try:
                obs = observe(ctx.target, problem, hp, k + 1, before_step=change)
            except PropertyFailed as exc:
                raise PropertyFailed(f"after param_groups[0]['history_size'] {h1} → {h2} before step {k}: {exc}",
                                     {**exc.evidence, "h1": h1, "h2": h2, "changed_before_step": k}) from None
        if len(obs.steps) <= k or not all(step.moved for step in obs.steps):
            return  # a step that did not move (converged, or non-finite): nothing to judge
        xs = [step.start.x for step in obs.steps]
        gs = [step.start.g for step in obs.steps]
        allowed, older, ambiguous = lowered_history_candidates(xs, gs, k, h1, h2, obs.eps)
        if ambiguous:
            note("a curvature decision was within rounding of the 1e-10 threshold: not judged")
            return
        step = obs.steps[k]
        observed = _unit(step.x_after - step.start.x)
        distances = {name: relative_difference(observed, _unit(d)) for name, d in allowed.items()}
        if min(distances.values()) <= 1e-6:
            return
        matches = [name for name, d in older.items() if relative_difference(observed, _unit(d)) <= 1e-6]
        which = (f"it is the direction from {' / '.join(matches)}" if matches
                 else "it matches no direction built from older pairs either")
        raise obs.fail(
            f"step {k}, right after param_groups[0]['history_size'] {h1} → {h2}: the move (scaled to max-norm 1) "
            f"is not " + " nor ".join(f"{name} (relative max-norm {r:.3g})" for name, r in distances.items())
            + f"; {which}", step=k, h1=h1, h2=h2, distances=distances)

    run()


# --------------------------------------------------------------------------------------------------------
# behaviour.accepts_what_torch_accepts
# --------------------------------------------------------------------------------------------------------


def _accepted_by_torch() -> list[tuple[str, dict[str, Any]]]:
    """Hyperparameters torch.optim.LBFGS 2.13 builds with and steps with (measured: tests/fast), each with the
    way users write them: numpy scalars from a config, tensors, a zero lr, max_eval = 0 without line search."""
    import numpy as np

    return [
        ("lr=0", {"lr": 0}),
        ("lr=numpy.float64(0.5)", {"lr": np.float64(0.5)}),
        ("lr=numpy.float32(0.5)", {"lr": np.float32(0.5)}),
        ("lr=torch.tensor(0.5)", {"lr": torch.tensor(0.5)}),
        ("lr=torch.tensor([0.5]) (1-element, 1-dim)", {"lr": torch.tensor([0.5])}),
        ("tolerance_grad=torch.tensor(1e-7), tolerance_change=torch.tensor(1e-9)",
         {"tolerance_grad": torch.tensor(1e-7), "tolerance_change": torch.tensor(1e-9)}),
        ("history_size=numpy.int64(5), max_iter=numpy.int64(3)",
         {"history_size": np.int64(5), "max_iter": np.int64(3)}),
        ("max_eval=0 without line search", {"max_iter": 3, "max_eval": 0}),
        ("max_eval=1 with line_search_fn='strong_wolfe'", {"max_eval": 1, "line_search_fn": "strong_wolfe"}),
    ]


REJECTED_BY_TORCH: list[tuple[str, dict[str, Any]]] = [
    ("lr=-1", {"lr": -1}),
    ("lr=-0.5", {"lr": -0.5}),
]
"""Hyperparameters torch.optim.LBFGS 2.13 refuses at construction ("Invalid learning rate")."""


@register(
    "behaviour.accepts_what_torch_accepts",
    category="behaviour",
    level="semantics",
    why="which spellings of a hyperparameter are accepted (numpy scalars, tensors, zero) is torch's interface, "
        "not a property of L-BFGS",
    title="hyperparameters torch.optim.LBFGS builds and steps with (numpy scalars, 0-dim and 1-element tensors, "
          "lr = 0, max_eval = 0 without line search) build and step; a negative lr is refused at construction",
    catches="numpy scalars or tensor hyperparameters refused (a drop-in replacement that breaks configs), a 1-element "
            "lr tensor handed to add_ as alpha, lr = 0 refused, a negative lr accepted",
)
def check_accepts_what_torch_accepts(ctx: CheckContext) -> None:
    """Each accepted set builds an optimizer on a 4-unknown float64 quadratic and makes 2 steps, which must end
    on finite parameters; each refused set must raise at construction. The lists are torch 2.13's behaviour
    (``tests/fast/test_behaviour_properties.py`` checks them against the installed torch)."""
    lacks = active_lacks()
    problem = make_problem("separable_quadratic", torch.float64)
    try:
        _check_accepted_and_refused(ctx, problem, lacks)
    except PropertyFailed as exc:
        raise PropertyFailed(f"{exc}\n  problem={problem.name}", {**exc.evidence, "problem": problem.name}) from None


def _check_accepted_and_refused(ctx: CheckContext, problem: Problem, lacks: frozenset[str]) -> None:
    for name, hp in _accepted_by_torch():
        if ("strong_wolfe" in lacks and hp.get("line_search_fn")) or ("lr" in lacks and "lr" in hp) or (
                "max_eval" in lacks and "max_eval" in hp):
            continue
        params = problem.make_params()
        closure = problem.make_closure(params)
        optimizer = call_target(f"constructing the optimizer with {name}",
                                lambda hp=hp, params=params: ctx.target.make(params, **hp))
        for k in range(2):
            call_target(f"step {k} of an optimizer built with {name}",
                        lambda optimizer=optimizer, closure=closure: optimizer.step(closure))
        if not all(bool(torch.isfinite(p).all()) for p in params):
            raise PropertyFailed(f"two steps with {name} (torch.optim.LBFGS runs them) left non-finite parameters",
                                 {"hyperparameters": name})
    if "lr" in lacks:
        return
    for name, hp in REJECTED_BY_TORCH:
        params = problem.make_params()
        try:
            ctx.target.make(params, **hp)
        except Exception:  # refused, as torch refuses it (ValueError "Invalid learning rate")
            continue
        raise PropertyFailed(f"the optimizer was built with {name}; torch.optim.LBFGS refuses it at construction "
                             "(ValueError: Invalid learning rate)", {"hyperparameters": name})


# --------------------------------------------------------------------------------------------------------
# behaviour.no_grad_params / converged_no_move / returns_first_loss
# --------------------------------------------------------------------------------------------------------


def _problems_with_unused() -> st.SearchStrategy[Problem]:
    generated = st.builds(lambda seed, sizes, dtype: generated_problem(seed, sizes, dtype, with_unused=True),
                          st.integers(0, 2**16), st.lists(st.integers(1, 4), min_size=1, max_size=3),
                          st.sampled_from((torch.float32, torch.float64)))
    catalogue = st.builds(lambda dtype: make_problem("tiny_mlp_with_unused", dtype),
                          st.sampled_from((torch.float32, torch.float64)))
    return st.one_of(catalogue, generated)


@register(
    "behaviour.no_grad_params",
    category="behaviour",
    needs=("no_grad_params",),
    title="parameters that get no gradient (p.grad is None) never move",
    catches="a missing gradient treated as something other than zero, offsets that shift when a parameter has "
            "no gradient, updates (decay, momentum) applied to every parameter",
)
def check_no_grad_params(ctx: CheckContext) -> None:
    """torch gathers a missing gradient as zeros (``_gather_flat_grad``), so the direction — and every update —
    is zero on those coordinates. Problems with a parameter the loss never touches; with and without line
    search; the untouched coordinates must keep their exact starting bytes."""
    n_steps = max(3, ctx.budget.steps // 2)

    @_settings(ctx)
    @given(problem=_problems_with_unused(), max_iter=st.integers(1, 4), history_size=st.integers(1, 4),
           line_search=st.sampled_from((None, "strong_wolfe")))
    def run(problem: Problem, max_iter: int, history_size: int, line_search: str | None) -> None:
        hp = {"max_iter": max_iter, "history_size": history_size, "line_search_fn": line_search}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps)
        mask = obs.grad_mask
        if mask is None or bool(mask.all()):
            return
        frozen = ~mask
        for step in obs.steps:
            moved = (step.x_after[frozen] != obs.x0[frozen])
            if bool(moved.any()):
                delta = float((step.x_after[frozen] - obs.x0[frozen]).abs().max())
                raise obs.fail(f"step {step.index}: {int(moved.sum())} coordinate(s) of parameters without gradient "
                               f"moved (max |Δ| = {delta:.3g})", step=step.index, moved=int(moved.sum()),
                               max_delta=delta)

    run()


@register(
    "behaviour.sparse_gradients",
    category="behaviour",
    needs=("sparse_gradients", "several_tensors"),
    title="a parameter with a sparse gradient (nn.Embedding(sparse=True)) steps exactly as with the same "
          "gradient dense",
    catches="p.grad.view(-1) on a sparse gradient (RuntimeError), a sparse gradient read as zero or as its "
            "stored values only, offsets that shift after a sparse parameter",
)
def check_sparse_gradients(ctx: CheckContext) -> None:
    """torch densifies a sparse gradient (``_gather_flat_grad``: ``p.grad.to_dense().view(-1)``), so a run on
    an embedding table with ``sparse=True`` must be the run with the same gradient dense: the same losses and
    the same parameters after every step, bitwise (NaN payloads included: two runs reaching the same NaN agree;
    the rows are picked once each, so the two gradients hold the same numbers). With and without line search."""
    n_steps = max(3, ctx.budget.steps // 2)

    @_settings(ctx)
    @given(seed=st.integers(0, 2**16), rows=st.integers(2, 6), dim=st.integers(1, 3),
           dtype=st.sampled_from((torch.float32, torch.float64)), max_iter=st.integers(1, 4),
           history_size=st.integers(1, 4), line_search=st.sampled_from((None, "strong_wolfe")))
    def run(seed: int, rows: int, dim: int, dtype: torch.dtype, max_iter: int, history_size: int,
            line_search: str | None) -> None:
        hp = {"max_iter": max_iter, "history_size": history_size, "line_search_fn": line_search}
        dense = sparse_embedding_problem(seed, rows, dim, dtype, sparse=False)
        sparse = sparse_embedding_problem(seed, rows, dim, dtype, sparse=True)
        with quiet_known_warnings():
            expected = observe(ctx.target, dense, hp, n_steps)
            got = observe(ctx.target, sparse, hp, n_steps)
        for want, step in zip(expected.steps, got.steps, strict=False):
            if first_difference(step.returned, want.returned) is not None or not bytes_equal(step.x_after,
                                                                                             want.x_after):
                delta = float((step.x_after - want.x_after).abs().max())
                raise got.fail(f"step {step.index}: with the table's gradient sparse the step returned "
                               f"{step.returned!r} and moved to a point max|Δ| = {delta:.3g} away from the run with "
                               f"the same gradient dense (returned {want.returned!r})", step=step.index,
                               max_delta=delta)
        if len(got.steps) != len(expected.steps):
            raise got.fail(f"{len(got.steps)} step(s) with the sparse gradient, {len(expected.steps)} dense")

    run()


@register(
    "behaviour.converged_no_move",
    category="behaviour",
    title="a step at a point with max|g| <= tolerance_grad does not move the parameters",
    catches="the first-order optimality test skipped or made only after a first iteration, steps taken from a "
            "stationary point",
)
def check_converged_no_move(ctx: CheckContext) -> None:
    """torch returns right after the first evaluation when ``max|g| <= tolerance_grad`` ("optimal
    condition"). Two set-ups: an exact minimiser (g = 0, any tolerance_grad >= 0) and an arbitrary start with
    ``tolerance_grad`` above max|g₀|. Several steps, with and without line search: the parameters must keep
    their bytes."""

    @_settings(ctx)
    @given(problem=problems(), at_min=st.booleans(), line_search=st.sampled_from((None, "strong_wolfe")),
           tolerance_grad=st.sampled_from((0.0, 1e-7)))
    def run(problem: Problem, at_min: bool, line_search: str | None, tolerance_grad: float) -> None:
        if at_min:
            problem = at_minimum(make_problem("separable_quadratic", problem.dtype))
            tol = tolerance_grad
        else:
            params = problem.make_params()
            problem.make_closure(params)()
            g0 = max(float(p.grad.abs().max()) for p in params if p.grad is not None and p.numel())
            tol = 2 * g0 + 1e-3
        hp = {"line_search_fn": line_search, "tolerance_grad": tol, "max_iter": 5}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, 3)
        for step in obs.steps:
            if not same_values(step.x_after, obs.x0):
                delta = float((step.x_after - obs.x0).abs().max())
                raise obs.fail(f"step {step.index}: the parameters moved (max |Δ| = {delta:.3g}) although max|g| = "
                               f"{float(step.start.g.abs().max()):.3g} <= tolerance_grad = {tol:.3g} at the start",
                               step=step.index, max_delta=delta, tolerance_grad=tol)

    run()


@register(
    "behaviour.returns_first_loss",
    category="behaviour",
    level="semantics",
    why="which loss step() returns is torch's convention (scipy-style optimizers return the final one)",
    title="step() returns the loss of its first closure evaluation (at the parameters it started from)",
    catches="step() returning the loss after the move, the last line-search trial, a float where torch returns "
            "the closure's tensor, or None",
)
def check_returns_first_loss(ctx: CheckContext) -> None:
    """torch returns ``orig_loss``, the closure's first return value of the step, whatever ends the step: each
    example ends its steps on ``max_iter``, on ``max_eval``, on ``tolerance_change`` (1e-3: the move or the loss
    change) or on ``tolerance_grad`` (1e-2), as far as the target has those options. Compared as floats,
    exactly."""

    @_settings(ctx)
    @given(problem=problems(), max_iter=st.integers(1, 4), line_search=st.sampled_from((None, "strong_wolfe")),
           stop=st.sampled_from(("max_iter", "max_eval", "tolerance_change", "tolerance_grad")))
    def run(problem: Problem, max_iter: int, line_search: str | None, stop: str) -> None:
        hp: dict[str, Any] = {"max_iter": max_iter, "line_search_fn": line_search}
        if stop != "max_iter" and stop not in active_lacks():  # max_iter large: the step ends on the other test
            hp.update({"max_iter": 20, "max_eval": max_iter} if stop == "max_eval" else
                      {"max_iter": 20, stop: 1e-3 if stop == "tolerance_change" else 1e-2})
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, 3)
        for step in obs.steps:
            if step.returned is None or step.returned != step.start.loss:
                if step.returned is not None and math.isnan(step.returned) and math.isnan(step.start.loss):
                    continue
                raise obs.fail(f"step {step.index} returned {step.returned!r}; its first closure call returned "
                               f"{step.start.loss!r}", step=step.index, returned=step.returned,
                               first_loss=step.start.loss)

    run()


# --------------------------------------------------------------------------------------------------------
# behaviour.accepts_first_wolfe_point
# --------------------------------------------------------------------------------------------------------


@register(
    "behaviour.accepts_first_wolfe_point",
    category="behaviour",
    title="with line_search_fn='strong_wolfe', a first trial point that satisfies the strong Wolfe conditions "
          "(c1=1e-4, c2=0.9) is accepted at once: the step ends there after two closure calls",
    catches="a line search with other constants than torch's (a stricter c2, another c1), one that keeps "
            "searching after an acceptable point, an extra evaluation of the accepted point",
    level="semantics",
    needs=("strong_wolfe",),
    why="torch's search (c1 = 1e-4, c2 = 0.9, accept the first acceptable trial); another correct strong-Wolfe "
        "search may be stricter",
)
def check_accepts_first_wolfe_point(ctx: CheckContext) -> None:
    """One-iteration steps (``max_iter=1``, ``max_eval=25``) with ``strong_wolfe`` on float64 problems. torch's
    ``_strong_wolfe`` evaluates the trial t = lr (t₀ at the first step) and, when it satisfies sufficient
    decrease and |g_newᵀd| <= -c2·gᵀd, stops there (torch/optim/lbfgs.py, ``_strong_wolfe``: "if abs(gtd_new)
    <= -c2 * gtd: done"). Whenever the first trial point satisfies both conditions with a margin of 1e-6
    relative (so that rounding cannot decide), the step must end at it with exactly two closure calls."""
    from lbfgs_verify.engine.observe import wolfe_check

    n_steps = max(6, ctx.budget.steps)

    @_settings(ctx)
    @given(problem=_float64_problems(), lr=lr_choices((1, 0.5)), history_size=st.integers(1, 4))
    @example(problem=make_problem("coupled_tensors"), lr=1, history_size=3)
    def run(problem: Problem, lr: float, history_size: int) -> None:
        hp = {"lr": lr, "max_iter": 1, "max_eval": 25, "history_size": history_size,
              "line_search_fn": "strong_wolfe"}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps)
        for step in obs.steps:
            if step.calls < 2:
                continue
            first = step.evaluations[1]
            if not bool(torch.isfinite(first.g).all()):
                return
            check = wolfe_check(step.start, first, obs.eps)
            clearly = (check.decrease < -(check.slack_f + 1e-6 * (abs(check.gtp) + abs(step.start.loss)))
                       and check.curvature < -(check.slack_g + 1e-6 * abs(check.gtp)))
            if not clearly:
                continue
            if step.calls != 2 or not same_values(step.x_after, first.x):
                raise obs.fail(
                    f"step {step.index}: the first trial point satisfies the strong Wolfe conditions with c1=1e-4, "
                    f"c2=0.9 (f_new - f - c1·gᵀp = {check.decrease:.6g}, |g_newᵀp| - c2·|gᵀp| = "
                    f"{check.curvature:.6g}) but the step made {step.calls} closure calls and "
                    + ("ended elsewhere" if not same_values(step.x_after, first.x) else "ended there")
                    + " — torch accepts the first acceptable trial", step=step.index, calls=step.calls)

    run()
