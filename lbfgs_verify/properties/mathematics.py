"""Mathematics properties (``mathematics.*``): what L-BFGS is, checked from outside.

Every check treats the target as a black box (constructor, ``step(closure)``, ``param_groups[0]``, what the
closure sees, the parameters after each step; never its state) through :mod:`lbfgs_verify.engine.observe`.

- ``mathematics.first_step``: the first iteration moves along -g with t = min(1, 1/||g||₁)·lr.
- ``mathematics.two_loop_direction``: every later direction is the two-loop recursion (Nocedal & Wright,
  *Numerical Optimization*, 2nd ed., Alg. 7.4) rebuilt from the observed pairs.
- ``mathematics.descent_direction``: every move is downhill to first order (gᵀd < 0; N&W §3.1).
- ``mathematics.strong_wolfe``: accepted steps of ``line_search_fn="strong_wolfe"`` satisfy the strong Wolfe
  conditions (N&W eq. 3.7, c1 = 1e-4, c2 = 0.9) unless the search took a documented exit.
- ``mathematics.invariance``: the iterates are invariant under an orthogonal change of variables and a
  translation (Dennis & Schnabel, *Numerical Methods for Unconstrained Optimization*, §9.3 and §7.1).
- ``mathematics.quadratic_termination``: with exact line searches and ``history_size >= n`` L-BFGS minimises
  an n-dimensional strictly convex quadratic in n iterations (N&W Thm. 5.2 via the equivalence of BFGS with
  exact line searches and conjugate gradients on quadratics, N&W §6.1 and §7.2).

The one-iteration observation model (``max_iter=1``, ``line_search_fn=None``): each ``step()`` evaluates the
closure once at x_k and moves to x_{k+1} = x_k + t_k d_k without evaluating again (torch/optim/lbfgs.py of
torch 2.13, l. 486-487: "re-evaluate function only if not in last iteration"), with t_0 = min(1, 1/||g_0||₁)·lr
(l. 448) and t_k = lr after. So d_k = (x_{k+1} - x_k)/t_k, s_k = x_{k+1} - x_k and y_k = g_{k+1} - g_k are all
observable. torch keeps a pair only if yᵀs > 1e-10 (l. 400) and scales H₀ by γ = yᵀs/yᵀy (l. 414); its
strong-Wolfe search uses c1 = 1e-4, c2 = 0.9 (l. 41).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from hypothesis import example, given, note
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.compare.bitwise import same_values
from lbfgs_verify.compare.environment import quiet_known_warnings
from lbfgs_verify.engine.capabilities import features_of_problem, reject_lacked
from lbfgs_verify.engine.observe import (
    Evaluation,
    Observation,
    ObservedStep,
    explain_direction,
    explain_gamma,
    first_step_length,
    flat,
    move_difference,
    observe,
    rebuild_directions,
    relative_difference,
    scalar,
    set_hyperparameter,
    step_lengths,
    wolfe_check,
)
from lbfgs_verify.engine.strategies import generated_problems, line_search_fns, lr_choices, make_problem, problems
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.problems.extra import double_well_problem, spd_quadratic, spd_quadratics, wavy_problem
from lbfgs_verify.properties.base import CheckContext, register

DIRECTION_TOLERANCE = 1e-6
"""Relative tolerance (max-norm) between an observed float64 direction and the rebuilt one. Measured on torch
2.13 over 12 one-iteration steps of the catalogue and generated problems: at most 3e-12."""

INVARIANCE_TOLERANCE = 1e-7
"""Relative tolerance for mapped iterates, ``||z_k - (Q x_k + c)||₂ <= tol · (1 + ||Q x_k + c||₂)``."""

QUADRATIC_TERMINATION_TOLERANCE = 1e-8
"""``||g_k||₂ <= tol · ||g_0||₂`` counts as "the gradient vanished" (float64, condition number <= 1e4)."""


def _harness_problems(dtype: torch.dtype | None = None) -> st.SearchStrategy[Problem]:
    dtypes = (dtype,) if dtype is not None else (torch.float32, torch.float64)
    return st.builds(lambda build, seed, n, dt: build(seed, n, dt), st.sampled_from((double_well_problem,
                                                                                      wavy_problem)),
                     st.integers(0, 2**16), st.integers(2, 6), st.sampled_from(dtypes))


def _float64_problems() -> st.SearchStrategy[Problem]:
    return st.one_of(problems(torch.float64), _harness_problems(torch.float64))


def _any_problems() -> st.SearchStrategy[Problem]:
    return st.one_of(problems(), _harness_problems())


def _settings(ctx: CheckContext) -> Any:
    """The budget's hypothesis settings: every distinct failure is reported with its own shrunk example."""
    return ctx.settings()


def _scaled(problem: Problem, factor: float) -> Problem:
    """The same problem with its objective multiplied by ``factor`` (to put ||g₀||₁ on either side of 1)."""
    if factor == 1.0:
        return problem
    objective = problem.objective
    return replace(problem, name=f"{problem.name}*{factor:g}", objective=lambda params: factor * objective(params),
                   f_star=None if problem.f_star is None else factor * problem.f_star)


def _moved_prefix(obs: Observation) -> int:
    """Number of leading steps that moved the parameters (a step that does not move ends the comparison)."""
    for step in obs.steps:
        if not step.moved or not bool(torch.isfinite(step.x_after).all()):
            return step.index
    return len(obs.steps)


# --------------------------------------------------------------------------------------------------------
# mathematics.first_step
# --------------------------------------------------------------------------------------------------------


@register(
    "mathematics.first_direction",
    category="mathematics",
    title="the first iteration moves along -g: x₁ - x₀ = -t₀·g₀ for some t₀ > 0 (steepest descent, N&W Alg. 7.5 "
          "with an empty memory)",
    catches="a first direction other than steepest descent (a stale or foreign memory, a sign error, a "
            "coordinate-wise scaling), a first step that goes uphill",
    why="with an empty memory every L-BFGS direction is -g; the length t₀ is a convention (torch: "
        "min(1, 1/||g||₁)·lr, checked by mathematics.first_step at level semantics)",
)
def check_first_direction(ctx: CheckContext) -> None:
    """Without a line search the first move, with ``strong_wolfe`` the first trial point, is compared with the
    ray -t·g₀: t₀ = -(x₁ - x₀)ᵀg₀/||g₀||² must be positive and x₁ - x₀ + t₀g₀ small (relative max-norm 1e-6 for
    float64, 1e-4 for float32, beyond the rounding of stored parameters)."""

    @_settings(ctx)
    @given(problem=_any_problems(), factor=st.sampled_from((1.0, 1e-3)), lr=lr_choices((1, 0.5, 0.1, 2.0)),
           line_search=line_search_fns())
    @example(problem=make_problem("rosenbrock"), factor=1.0, lr=0.5, line_search=None)
    def run(problem: Problem, factor: float, lr: float, line_search: str | None) -> None:
        problem = _scaled(problem, factor)
        hp: dict[str, Any] = {"lr": lr, "max_iter": 1, "max_eval": 10, "line_search_fn": line_search}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, 1)
        step = obs.steps[0]
        g0 = step.start.g
        if float(g0.abs().max()) <= 1e-7:
            return
        if line_search is None:
            actual, what = step.x_after, "x₁"
        elif step.calls >= 2:
            actual, what = step.evaluations[1].x, "the first trial point"
        else:
            return  # no trial point: mathematics.strong_wolfe judges a search that does not move
        move = actual - step.start.x
        if not bool(torch.isfinite(move).all()) or not bool(move.abs().max() > 0):
            return
        t0 = -float(move @ g0) / float(g0 @ g0)
        tol = 1e-6 if problem.dtype == torch.float64 else 1e-4
        r = move_difference(move, -t0 * g0, step.start.x, actual, obs.eps)
        note(f"t0 = {t0:.6g}, relative difference from the ray -t·g0: {r:.3g}")
        if not (t0 > 0 and r <= tol):
            cosine = float(move @ -g0) / (float(move.norm()) * float(g0.norm()) or math.nan)
            raise obs.fail(
                f"step 0: {what} - x₀ is not a positive multiple of -g₀: best t₀ = {t0:.6g}, relative max-norm "
                f"difference {r:.3g} (tolerance {tol:g}), cosine with -g₀ {cosine:.6g}", step=0, t0=t0,
                relative_difference=r, cosine=cosine)

    run()


@register(
    "mathematics.first_step",
    category="mathematics",
    level="semantics",
    why="torch's first-step rule; other correct L-BFGS take t₀ = lr or leave it to the line search",
    title="the first iteration moves along -g with t = min(1, 1/||g||₁)·lr (torch's first-step rule)",
    catches="a wrong first step: no L1-norm scaling, another norm, lr applied twice or not at all, a first "
            "direction other than steepest descent",
)
def check_first_step(ctx: CheckContext) -> None:
    """x₁ - x₀ = -min(1, 1/||g₀||₁)·lr·g₀ (torch/optim/lbfgs.py: ``t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr``
    and ``d = flat_grad.neg()`` at ``n_iter == 1``). Without a line search this is the first move; with
    ``strong_wolfe`` it is the first trial point. Problems are scaled by 1 or 1e-3 so that both branches of
    the ``min`` occur. Tolerance: relative max-norm 1e-6 (float64) or 1e-4 (float32) beyond 4·eps·(|x₀| + |x₁|)
    per coordinate (the move is a difference of stored parameters)."""

    @_settings(ctx)
    @given(problem=_any_problems(), factor=st.sampled_from((1.0, 1e-3)), lr=lr_choices((1, 0.5, 0.1, 2.0)),
           line_search=line_search_fns())
    @example(problem=make_problem("rosenbrock"), factor=1.0, lr=0.5, line_search=None)
    @example(problem=make_problem("coupled_tensors"), factor=1e-3, lr=2.0, line_search="strong_wolfe")
    def run(problem: Problem, factor: float, lr: float, line_search: str | None) -> None:
        reject_lacked(features_of_problem(problem))
        problem = _scaled(problem, factor)
        hp: dict[str, Any] = {"lr": lr, "max_iter": 1, "max_eval": 10, "line_search_fn": line_search}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, 1)
        step = obs.steps[0]
        g0 = step.start.g
        t0 = first_step_length(g0, float(lr))
        expected = step.start.x - t0 * g0
        if line_search is None:
            actual, what = step.x_after, "x₁"
        elif step.calls >= 2:
            actual, what = step.evaluations[1].x, "the first trial point"
        else:
            raise obs.fail("with line_search_fn='strong_wolfe' the first step evaluated the closure only once "
                           "(no trial point)", calls=step.calls)
        tol = 1e-6 if problem.dtype == torch.float64 else 1e-4
        move = actual - step.start.x
        r = move_difference(move, expected - step.start.x, step.start.x, actual, obs.eps)
        note(f"||g0||_1={float(g0.abs().sum()):.6g}, t0={t0:.6g}, relative difference {r:.3g}")
        if not r <= tol:
            ratio = float(move @ -g0) / float(g0 @ g0) if float(g0 @ g0) else math.nan
            cosine = float(move @ -g0) / (float(move.norm()) * float(g0.norm()) or math.nan)
            raise obs.fail(
                f"step 0: {what} - x₀ differs from -t₀·g₀ with t₀ = min(1, 1/||g₀||₁)·lr = {t0:.6g} by relative "
                f"max-norm {r:.3g} (tolerance {tol:g}); observed step length along -g₀: {ratio:.6g}, cosine with "
                f"-g₀: {cosine:.6g}", step=0, expected_t0=t0, observed_t=ratio, cosine=cosine,
                g0_l1=float(g0.abs().sum()), relative_difference=r)

    run()


# --------------------------------------------------------------------------------------------------------
# mathematics.two_loop_direction
# --------------------------------------------------------------------------------------------------------


def check_directions(obs: Observation, history_sizes: Sequence[int], *, first: int = 1) -> None:
    """Compare observed directions (x_{k+1} - x_k)/t_k of a one-iteration run with the two-loop rebuild."""
    n = _moved_prefix(obs)
    if n < 2:
        if 0 < n < len(obs.steps):
            _check_unexplained_stop(obs, n, history_sizes)
        return
    xs = [s.start.x for s in obs.steps[:n]]
    gs = [s.start.g for s in obs.steps[:n]]
    ts = step_lengths(obs)[:n]
    rebuilt = rebuild_directions(xs, gs, history_sizes[:n], obs.eps)
    # L-BFGS-B's scale-invariant skip is a correct rule too: a direction matching it passes (it can differ from
    # torch's only where 0 < yᵀs <= 1e-10).
    relative = rebuild_directions(xs, gs, history_sizes[:n], obs.eps, curvature="relative")
    for k in range(first, n):
        if rebuilt[k].ambiguous:
            note(f"step {k}: a curvature decision was within rounding of the 1e-10 threshold; stop comparing")
            return
        step = obs.steps[k]
        observed = (step.x_after - step.start.x) / ts[k]
        r = relative_difference(observed, rebuilt[k].d)
        if not r <= DIRECTION_TOLERANCE and relative_difference(observed, relative[k].d) <= DIRECTION_TOLERANCE:
            continue
        if not r <= DIRECTION_TOLERANCE:
            hs = list(history_sizes[:k + 1])
            explained = explain_direction([*xs, step.x_after], gs, hs, obs.eps, k, observed, 1e-4)
            if not explained:
                gamma = explain_gamma([*xs, step.x_after], gs, hs, k, observed, 1e-4)
                explained = [gamma] if gamma else []
            hint = (f"; it matches: {'; '.join(explained)}" if explained else
                    "; it matches none of the usual mistakes (γ, history length, curvature test, ρ, sign)")
            raise obs.fail(
                f"step {k}: the direction (x_{{k+1}} - x_k)/t_k (t_k = lr = {ts[k]:.6g}) differs from the L-BFGS "
                f"two-loop direction rebuilt from the {rebuilt[k].pairs} observed pair(s) (history_size="
                f"{history_sizes[k]}, γ = sᵀy/yᵀy = {rebuilt[k].gamma:.6g}, pairs skipped by yᵀs <= 1e-10: "
                f"{rebuilt[k].skipped}) by relative max-norm {r:.3g} (tolerance {DIRECTION_TOLERANCE:g})" + hint,
                step=k, relative_difference=r, pairs=rebuilt[k].pairs, gamma=rebuilt[k].gamma,
                skipped=rebuilt[k].skipped, explained_by=explained)
    if n < len(obs.steps):
        _check_unexplained_stop(obs, n, history_sizes)


def _check_unexplained_stop(obs: Observation, k: int, history_sizes: Sequence[int]) -> None:
    """Step ``k`` did not move: allowed only if max|g_k| <= tolerance_grad or the L-BFGS direction rebuilt at
    x_k has gᵀd > -tolerance_change (torch's two reasons to stay put in a one-iteration step)."""
    step = obs.steps[k]
    if step.moved or not bool(torch.isfinite(step.start.g).all()):
        return
    hp = step.hyperparameters
    tol_grad = scalar(hp.get("tolerance_grad", 1e-7))
    tol_change = scalar(hp.get("tolerance_change", 1e-9))
    if float(step.start.g.abs().max()) <= tol_grad:
        return
    xs = [s.start.x for s in obs.steps[:k + 1]]
    gs = [s.start.g for s in obs.steps[:k + 1]]
    rebuilt = rebuild_directions(xs, gs, history_sizes[:k + 1], obs.eps)[k]
    gtd = float(gs[k] @ rebuilt.d)
    slack = 1e-6 * float(gs[k].abs().sum()) * float(rebuilt.d.abs().max())
    if rebuilt.ambiguous or gtd > -tol_change - slack:
        return
    raise obs.fail(
        f"step {k}: the parameters did not move although max|g| = {float(step.start.g.abs().max()):.3g} > "
        f"tolerance_grad and the L-BFGS direction rebuilt from the {rebuilt.pairs} observed pair(s) is a descent "
        f"direction (gᵀd = {gtd:.6g} < -tolerance_change, pairs skipped by yᵀs <= 1e-10: {rebuilt.skipped}): the "
        "target's direction is not that one (it was rejected as non-descent, or it is zero)",
        step=k, gtd=gtd, pairs=rebuilt.pairs, skipped=rebuilt.skipped)


def iterations_as_steps(obs: Observation) -> Observation:
    """The iterations of the first ``step()`` of ``obs`` (no line search) as one-iteration pseudo-steps, so that
    :func:`check_directions` can judge a single multi-iteration ``step()``: each distinct evaluated point x_i is
    the start of an iteration that ends at the next one (the last at the parameters the step left). After
    ``max_iter`` moves, an evaluation of the point the step ends at (scipy-style) is not an iteration and is
    dropped; a step that ended early at an evaluated point keeps it (a pseudo-step that does not move, judged
    by the unexplained-stop test)."""
    step = obs.steps[0]
    evaluations = []
    for e in step.evaluations:
        if evaluations and same_values(evaluations[-1].x, e.x):
            continue
        evaluations.append(e)
    max_iter = int(step.hyperparameters.get("max_iter", 20))
    if len(evaluations) > max_iter and same_values(evaluations[-1].x, step.x_after):
        evaluations = evaluations[:-1]
    pseudo = []
    for i, e in enumerate(evaluations):
        x_next = evaluations[i + 1].x if i + 1 < len(evaluations) else step.x_after
        pseudo.append(ObservedStep(i, [e], x_next, None, step.hyperparameters))
    return replace(obs, steps=pseudo)


@register(
    "mathematics.two_loop_direction",
    category="mathematics",
    title="within one step() each direction equals the two-loop recursion (N&W Alg. 7.4) rebuilt from the "
          "observed (s, y) pairs, with γ = sᵀy/yᵀy, the history_size newest pairs and the yᵀs > 1e-10 skip",
    needs=("no_line_search",),
    catches="wrong sign or order in the two-loop recursion, wrong initial scaling γ (yᵀy/sᵀy, 1, oldest pair), "
            "ρ not inverted, history one pair short/long or never trimmed, oldest pair kept instead of the newest, "
            "curvature test inverted or missing, stale gradient or step in the pair, an iteration made without "
            "evaluating the gradient",
    why="the iterations of one step() of a fresh optimizer are L-BFGS whatever the conventions (whether the "
        "memory survives step() is behaviour.history_across_steps, level semantics)",
)
def check_two_loop_direction(ctx: CheckContext) -> None:
    """One ``step()`` of a fresh optimizer with ``max_iter`` = n (8 or the budget's steps), no line search,
    ``max_eval`` = 2n + 2, both tolerances 0 (so that only max_iter ends the step), float64 problems (catalogue
    and generated, several tensors, complex and unused parameters), ``history_size`` 1-4 so the memory rolls.
    Every iteration but the last is evaluated, so x_i, g_i and the pairs are observable
    (:func:`iterations_as_steps`); d_i = (x_{i+1} - x_i)/lr is compared with the rebuilt direction for i >= 1
    (i = 0 is ``mathematics.first_direction``) until an iteration does not move, a curvature decision is within
    rounding of the threshold or max|g| falls to 1e-6·max|g₀| (beyond, the directions are rounding).
    Tolerance: relative max-norm 1e-6 (torch 2.13 measures ≤ 3e-12). On failure the message names the usual
    mistake that reproduces the observed direction, if one does."""
    n_iter = max(8, ctx.budget.steps)

    @_settings(ctx)
    @given(problem=_float64_problems(), lr=lr_choices((1, 0.5, 0.25)), history_size=st.integers(1, 4))
    @example(problem=make_problem("coupled_tensors"), lr=0.5, history_size=2)
    @example(problem=double_well_problem(0), lr=0.1, history_size=3)
    def run(problem: Problem, lr: float, history_size: int) -> None:
        hp: dict[str, Any] = {"lr": lr, "max_iter": n_iter, "max_eval": 2 * n_iter + 2, "history_size": history_size,
                              "line_search_fn": None, "tolerance_grad": 0.0, "tolerance_change": 0.0}
        for lacked in ctx.lacks & {"max_eval", "tolerance_change"}:
            del hp[lacked]
        with quiet_known_warnings():
            obs = iterations_as_steps(observe(ctx.target, problem, hp, 1))
        g0 = float(obs.steps[0].start.g.abs().max())
        far = next((i for i, step in enumerate(obs.steps) if not float(step.start.g.abs().max()) > 1e-6 * g0),
                   len(obs.steps))
        obs = replace(obs, steps=obs.steps[:far])  # near convergence directions are rounding: stop comparing
        check_directions(obs, [history_size] * len(obs.steps))

    run()


@register(
    "behaviour.history_across_steps",
    category="behaviour",
    level="semantics",
    needs=("no_line_search",),
    title="the memory is kept across step(): with one iteration per step() each direction equals the two-loop "
          "recursion rebuilt from all the pairs observed so far",
    catches="a step() that restarts the memory (allowed at level properties), pairs formed across steps from a "
            "stale gradient or step, a memory trimmed or lost between steps",
    why="torch keeps its history in the optimizer state across step(); other correct L-BFGS may restart it",
)
def check_history_across_steps(ctx: CheckContext) -> None:
    """One-iteration steps without line search on float64 problems; ``history_size`` 1-4 so the memory rolls.
    Observed d_k = (x_{k+1}-x_k)/t_k is compared with the rebuilt direction for k >= 1 until a step does not
    move or a curvature decision is within rounding of the threshold (relative max-norm 1e-6)."""
    n_steps = max(8, ctx.budget.steps)

    @_settings(ctx)
    @given(problem=_float64_problems(), lr=lr_choices((1, 0.5, 0.25)), history_size=st.integers(1, 4))
    @example(problem=make_problem("coupled_tensors"), lr=0.5, history_size=2)
    def run(problem: Problem, lr: float, history_size: int) -> None:
        hp = {"lr": lr, "max_iter": 1, "history_size": history_size, "line_search_fn": None}
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps)
        check_directions(obs, [history_size] * len(obs.steps))

    run()


# --------------------------------------------------------------------------------------------------------
# mathematics.descent_direction
# --------------------------------------------------------------------------------------------------------


def _descent_slack(start: Evaluation, end_x: Tensor, eps: float) -> float:
    p = end_x - start.x
    n = max(1, p.numel())
    return 16 * (n * eps * float((start.g.abs() * p.abs()).sum())
                 + eps * float((start.g.abs() * (start.x.abs() + end_x.abs())).sum()))


@register(
    "mathematics.descent_direction",
    category="mathematics",
    title="every move from an evaluated point is downhill to first order: gᵀ(x_new - x) < 0 (N&W §3.1)",
    catches="directions that are not descent directions: pairs with yᵀs <= 0 admitted without the gᵀd "
            "safeguard, a sign error in the direction or the step, an indefinite inverse-Hessian approximation",
)
def check_descent_direction(ctx: CheckContext) -> None:
    """Without line search every evaluated iterate x_i of a step is followed by a move to x_{i+1} (the next
    evaluation or the parameters after the step); with ``strong_wolfe`` (``max_iter=1``) the first trial point
    and the accepted point follow x_k. Each such move p must have gᵀp < 0, up to a rounding allowance of
    16·(n·eps·Σ|g_i p_i| + eps·Σ|g_i|(|x_i| + |x_new,i|)). Non-convex problems (Rosenbrock, a tanh MLP) with
    fixed steps make yᵀs <= 0 pairs occur, so a missing curvature safeguard shows."""
    n_steps = max(8, ctx.budget.steps)

    @_settings(ctx)
    @given(problem=_any_problems(), lr=lr_choices((1, 0.5, 0.1, 2.0)), history_size=st.integers(1, 4),
           max_iter=st.integers(1, 4), line_search=line_search_fns())
    @example(problem=double_well_problem(0), lr=0.1, history_size=2, max_iter=1, line_search=None)
    def run(problem: Problem, lr: float, history_size: int, max_iter: int, line_search: str | None) -> None:
        hp: dict[str, Any] = {"lr": lr, "history_size": history_size, "line_search_fn": line_search}
        hp.update({"max_iter": max_iter} if line_search is None else {"max_iter": 1, "max_eval": 10})
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps)
        for step in obs.steps:
            points = [e.x for e in step.evaluations] + [step.x_after]
            if line_search is None:
                moves = [(i, step.evaluations[i], points[i + 1]) for i in range(step.calls)]
            else:
                moves = [(0, step.start, x) for x in [*points[1:2], step.x_after]]
            for i, start, end_x in moves:
                if same_values(start.x, end_x) or not bool(torch.isfinite(end_x).all()):
                    continue
                gtp = float(start.g @ (end_x - start.x))
                slack = _descent_slack(start, end_x, obs.eps)
                if not gtp < slack:
                    what = ("the move from this evaluated point goes uphill to first order: the search direction is "
                            "not a descent direction" if line_search is None else
                            "the first trial point of the line search" if end_x is not step.x_after else
                            "the accepted point of the line search")
                    if line_search is not None:
                        what += " lies uphill of x_k to first order: the search direction is not a descent direction"
                    raise obs.fail(
                        f"step {step.index}, move {i}: gᵀ(x_new - x) = {gtp:.6g} >= 0 (allowance {slack:.3g}): "
                        f"{what} at a point with ||g||∞ = {float(start.g.abs().max()):.6g}", step=step.index,
                        move=i, gtp=gtp, slack=slack)

    run()


# --------------------------------------------------------------------------------------------------------
# mathematics.strong_wolfe
# --------------------------------------------------------------------------------------------------------


def _bracket_collapsed(evaluations: Sequence[Evaluation], tolerance_change: float, eps: float) -> bool:
    """Two points of the search (the start included) within ``tolerance_change`` in max-norm: torch's
    "line-search bracket is so small" exit (``abs(bracket[1] - bracket[0]) * d_norm < tolerance_change``)."""
    xs: list[Tensor] = []
    for e in evaluations:  # a re-evaluation of a point already seen (e.g. the start) is no bracket
        if not any(same_values(e.x, x) for x in xs):
            xs.append(e.x)
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            allowance = 4 * eps * float((xs[i].abs() + xs[j].abs()).max())
            if float((xs[i] - xs[j]).abs().max()) < tolerance_change * (1 + 1e-6) + allowance:
                return True
    return False


@register(
    "mathematics.strong_wolfe",
    category="mathematics",
    title="with line_search_fn='strong_wolfe' every accepted step satisfies the strong Wolfe conditions "
          "(c1=1e-4, c2=0.9) unless the search took a documented exit; on a strictly convex quadratic the "
          "search never exhausts max_eval",
    catches="line searches that accept without sufficient decrease (Armijo sign or constant wrong) or without "
            "the strong curvature condition, swapped c1/c2, returning the last trial instead of the accepted "
            "one, a search that cannot terminate, a search that tries points but never moves",
    needs=("strong_wolfe",),
)
def check_strong_wolfe(ctx: CheckContext) -> None:
    """One-iteration steps (``max_iter=1``, ``max_eval`` 10 or 25) with ``strong_wolfe``; the accepted point
    x_{k+1} is evaluated at the start of the next step, so with p = x_{k+1} - x_k (N&W eq. 3.7):

    - sufficient decrease f_{k+1} <= f_k + c1·g_kᵀp,
    - curvature |g_{k+1}ᵀp| <= c2·|g_kᵀp|,

    each up to a rounding allowance (:func:`lbfgs_verify.engine.observe.wolfe_check`: 16·eps·(|f_k| + |f_{k+1}|) for
    the losses, 16·(n·eps·Σ|g_i p_i| + eps·Σ|g_i|(|x_k,i| + |x_{k+1},i|)) for each dot product).
    Documented exits of torch's search that may return a non-Wolfe point are allowed: the evaluation budget
    used up (the step made >= ``max_eval`` calls) and the bracket narrower than ``tolerance_change`` (two
    points of the search within ``tolerance_change`` in max-norm). A step that does not move is allowed only
    without a trial point (the direction was rejected before the search), at a point with max|g| <=
    tolerance_grad, or through one of those exits: a search that evaluated a trial point along a descent
    direction and returned to x_k fails, since a strong-Wolfe point exists along every descent direction of a
    smooth function bounded below (N&W Lemma 3.1). If the target declares it lacks ``max_eval``, it has no
    budget, so "budget used up" is no exit for it.

    Second part: on SPD quadratics (float64, n <= 12, condition <= 1e3) a strong-Wolfe point exists and is
    found within a few evaluations (torch 2.13 needs at most 7 of 25), so until the gradient has fallen by
    1e-6 no step may use up ``max_eval=25``."""
    n_steps = max(8, ctx.budget.steps)

    @_settings(ctx)
    @given(problem=_any_problems(), lr=lr_choices((1, 0.1, 10.0)), history_size=st.integers(1, 4),
           max_eval=st.sampled_from((10, 25)))
    @example(problem=wavy_problem(1), lr=10.0, history_size=3, max_eval=25)
    @example(problem=make_problem("rosenbrock"), lr=1, history_size=3, max_eval=25)
    def run(problem: Problem, lr: float, history_size: int, max_eval: int) -> None:
        hp = {"lr": lr, "max_iter": 1, "max_eval": max_eval, "history_size": history_size,
              "line_search_fn": "strong_wolfe"}
        if "max_eval" in ctx.lacks:  # no budget: "used up" is no documented exit
            del hp["max_eval"]
            max_eval = 10**9
        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps + 1)
        tolerance_change = scalar(obs.steps[0].hyperparameters.get("tolerance_change", 1e-9))
        tolerance_grad = scalar(obs.steps[0].hyperparameters.get("tolerance_grad", 1e-7))
        for step in obs.steps:
            if step.moved or step.calls < 2 or step.calls >= max_eval:
                continue
            start = step.start
            if float(start.g.abs().max()) <= tolerance_grad or not bool(torch.isfinite(start.g).all()):
                continue
            trial = step.evaluations[1].x
            gtp = float(start.g @ (trial - start.x))
            resolvable = -1e-4 * gtp > 16 * obs.eps * abs(start.loss)  # a sufficient decrease can show in f
            if not gtp < -_descent_slack(start, trial, obs.eps) or not resolvable or \
                    _bracket_collapsed(step.evaluations, tolerance_change, obs.eps):
                continue
            raise obs.fail(
                f"step {step.index}: the line search evaluated {step.calls - 1} trial point(s) along a descent "
                f"direction (gᵀp = {gtp:.6g} at the first trial) and returned to x_k without moving, with "
                f"{step.calls} of max_eval={max_eval} closure calls used and max|g| = "
                f"{float(start.g.abs().max()):.3g} > tolerance_grad: a strong-Wolfe point exists along every descent "
                "direction of a smooth function bounded below (N&W Lemma 3.1)", step=step.index, calls=step.calls,
                gtp=gtp)
        before = [obs.x0, *(s.x_after for s in obs.steps)]
        for step, following in zip(obs.steps, obs.steps[1:], strict=False):
            x_k = before[step.index]
            # The evaluations at x_k and at the accepted point: torch evaluates x_k first in each step; an optimizer
            # that keeps f and g of the point it accepted (scipy's does) evaluated it during the previous step.
            previous = obs.steps[step.index - 1].evaluations if step.index else []
            at_start = [e for e in [*step.evaluations[:1], *reversed(previous)] if same_values(e.x, x_k)]
            if not at_start or same_values(step.x_after, x_k):
                continue
            at_end = [e for e in [*following.evaluations[:1], *reversed(step.evaluations)]
                      if same_values(e.x, step.x_after)]
            if not at_end:
                raise obs.fail(f"step {step.index} accepted a point at which the closure was never evaluated (neither "
                               "during the step nor first in the next one): the Wolfe conditions cannot have been "
                               "tested there", step=step.index)
            end = at_end[0]
            check = wolfe_check(at_start[0], end, obs.eps)
            if check.sufficient_decrease and check.curvature_condition:
                continue
            if step.calls >= max_eval or _bracket_collapsed(step.evaluations, tolerance_change, obs.eps):
                continue
            which = []
            if not check.sufficient_decrease:
                which.append(f"sufficient decrease fails: f_{{k+1}} - f_k - c1·gᵀp = {check.decrease:.6g} > "
                             f"{check.slack_f:.3g}")
            if not check.curvature_condition:
                which.append(f"strong curvature fails: |g_{{k+1}}ᵀp| - c2·|g_kᵀp| = {check.curvature:.6g} > "
                             f"{check.slack_g:.3g}")
            raise obs.fail(
                f"step {step.index}: the accepted point violates the strong Wolfe conditions (c1=1e-4, c2=0.9): "
                f"{'; '.join(which)}; gᵀp = {check.gtp:.6g}, f_k = {at_start[0].loss:.10g}, f_{{k+1}} = "
                f"{end.loss:.10g}, {step.calls} closure calls (max_eval={max_eval}), no documented exit "
                "(budget not used up, bracket not below tolerance_change)",
                step=step.index, decrease=check.decrease, curvature=check.curvature, gtp=check.gtp,
                calls=step.calls)

    @_settings(ctx)
    @given(problem=spd_quadratics(max_n=12, max_log10_condition=3), lr=lr_choices((1, 0.5)),
           history_size=st.integers(1, 5))
    def run_quadratic(problem: Problem, lr: float, history_size: int) -> None:
        hp = {"lr": lr, "max_iter": 1, "max_eval": 25, "history_size": history_size,
              "line_search_fn": "strong_wolfe"}
        g0: list[float] = []

        def converged(step: Any) -> bool:
            g = float(step.start.g.abs().max())
            if not g0:
                g0.append(g)
            return g <= 1e-6 * g0[0]

        with quiet_known_warnings():
            obs = observe(ctx.target, problem, hp, n_steps + 4, stop_when=converged)
        for step in obs.steps:
            if float(step.start.g.abs().max()) <= 1e-6 * g0[0]:
                break
            if step.calls >= 25:
                raise obs.fail(
                    f"step {step.index}: the line search used up max_eval=25 ({step.calls} closure calls) on a "
                    f"strictly convex quadratic where a strong-Wolfe point exists in every descent direction "
                    f"(||g||∞ = {float(step.start.g.abs().max()):.3g}, still above 1e-6·||g₀||∞); the search "
                    "cannot satisfy its own acceptance test (c1 >= c2, or a wrong Armijo/curvature test)",
                    step=step.index, calls=step.calls)

    run()
    run_quadratic()


# --------------------------------------------------------------------------------------------------------
# mathematics.invariance
# --------------------------------------------------------------------------------------------------------


def _unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Differentiable inverse of :func:`lbfgs_verify.engine.observe.flat` for tensors shaped and typed as ``like``."""
    out, offset = [], 0
    for t in like:
        if t.is_complex():
            n = 2 * t.numel()
            real = torch.float64 if t.dtype == torch.complex128 else torch.float32
            out.append(torch.view_as_complex(vector[offset:offset + n].reshape(*t.shape, 2).to(real).clone()))
        else:
            n = t.numel()
            out.append(vector[offset:offset + n].reshape(t.shape).to(t.dtype))
        offset += n
    return out


def transformed_problems(problem: Problem, seed: int) -> tuple[Problem, Problem, Tensor, Tensor]:
    """``(scaled, transformed, Q, c)``: σ·f(x) and σ·f(Qᵀ(z - c)) over one flat float64 tensor, z₀ = Q x₀ + c.

    σ makes ||g₀||₂ = 0.5/√n, so that ||g₀||₁ <= 0.5 in both coordinate systems and torch's first-step rule
    t = min(1, 1/||g||₁)·lr — which uses the L1 norm and is *not* rotation invariant — gives t = lr in both.
    """
    x0 = [t.detach().clone() for t in problem.start]
    params = [t.clone().requires_grad_(True) for t in x0]
    loss = problem.objective(params)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    g0 = flat([g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params, strict=True)])
    n = g0.numel()
    norm = float(g0.norm())
    sigma = 0.5 / (math.sqrt(n) * norm) if norm > 0 else 1.0
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    c = torch.randn(n, generator=gen, dtype=torch.float64) * 3
    objective = problem.objective
    scaled = replace(problem, name=f"{problem.name}*σ", objective=lambda ps: sigma * objective(ps))
    like = tuple(x0)

    def transformed_objective(ps: Sequence[Tensor]) -> Tensor:
        (z,) = ps
        return sigma * objective(_unflatten(q.T @ (z - c), like))

    z0 = q @ flat(x0) + c
    transformed = replace(problem, name=f"{problem.name}∘(Qᵀ(z-c)),seed={seed}", dimension=n, start=(z0,),
                          objective=transformed_objective, dtype=torch.float64)
    return scaled, transformed, q, c


def _real_float64_problems() -> st.SearchStrategy[Problem]:
    return st.one_of(problems(torch.float64, generated=False), generated_problems(torch.float64))


@register(
    "mathematics.invariance",
    category="mathematics",
    title="iterates are invariant under an orthogonal change of variables and a translation: running on "
          "f(Qᵀ(z - c)) from z₀ = Q x₀ + c gives z_k = Q x_k + c",
    catches="coordinate-wise operations that L-BFGS does not have (element-wise scaling or clipping, a "
            "diagonal H₀), steps stored as iterates instead of differences (translation), a parameter layout "
            "bug that mixes up coordinates",
)
def check_invariance(ctx: CheckContext) -> None:
    """L-BFGS with H₀ = γI is invariant under x ↦ Qx + c with Q orthogonal (Dennis & Schnabel §9.3 for the
    BFGS update, §7.1 for translations): the two-loop recursion uses only inner products and γ is a ratio of
    inner products. The target runs on σ·f(x) (its own parameter layout) and on σ·f(Qᵀ(z - c)) (one flat
    float64 tensor z) with Q a random orthogonal matrix and c a random translation.

    Not invariant in torch, and therefore neutralised: the first-step rule (L1 norm: σ is chosen so that
    ||g₀||₁ <= 0.5 in both systems, making t = lr), the max-norm tests ``tolerance_grad`` and
    ``tolerance_change`` (set to 0; a step whose gradient norm falls below 1e-6·||g₀||₂ in either run ends the
    comparison, since exact-zero tests then differ by rounding) and the max-norm bracket test of the line search
    (idem). Compared: closure calls per step (equal) and
    ||z_k - (Q x_k + c)||₂ <= 1e-7·(1 + ||Q x_k + c||₂) after every step (float64)."""
    n_steps = min(5, max(3, ctx.budget.steps))

    @_settings(ctx)
    @given(problem=_real_float64_problems(), seed=st.integers(0, 2**16), lr=lr_choices((1, 0.5)),
           history_size=st.integers(1, 4), max_iter=st.integers(1, 3),
           line_search=line_search_fns())
    def run(problem: Problem, seed: int, lr: float, history_size: int, max_iter: int,
            line_search: str | None) -> None:
        scaled, transformed, q, c = transformed_problems(problem, seed)
        hp: dict[str, Any] = {"lr": lr, "max_iter": max_iter, "history_size": history_size,
                              "line_search_fn": line_search, "tolerance_grad": 0.0, "tolerance_change": 0.0}
        if line_search is not None:
            hp["max_eval"] = 10 * max_iter
        with quiet_known_warnings():
            original = observe(ctx.target, scaled, hp, n_steps)
            mapped = observe(ctx.target, transformed, hp, n_steps)
        g0 = float(original.steps[0].start.g.norm())
        for a, b in zip(original.steps, mapped.steps, strict=False):
            if any(float(e.g.norm()) <= 1e-6 * g0 for e in a.evaluations + b.evaluations):
                note(f"step {a.index}: ||g|| fell below 1e-6·||g0||; the max-norm tests may now differ, stop")
                return
            expected = q @ a.x_after + c
            err = float((b.x_after - expected).norm())
            bound = INVARIANCE_TOLERANCE * (1 + float(expected.norm()))
            note(f"step {a.index}: ||z - (Qx + c)|| = {err:.3g}")
            if a.calls != b.calls:
                raise original.fail(
                    f"step {a.index}: {a.calls} closure calls on f(x) but {b.calls} on f(Qᵀ(z - c)) (seed {seed})",
                    step=a.index, calls_original=a.calls, calls_transformed=b.calls, seed=seed)
            if not err <= bound:
                raise original.fail(
                    f"step {a.index}: the iterate on f(Qᵀ(z - c)) is not Q x_k + c: ||z_k - (Q x_k + c)||₂ = "
                    f"{err:.3g} > {bound:.3g} (Q orthogonal and c from seed {seed}; ||x_k - x₀||₂ = "
                    f"{float((a.x_after - original.x0).norm()):.3g})",
                    step=a.index, error=err, bound=bound, seed=seed)

    run()


# --------------------------------------------------------------------------------------------------------
# mathematics.quadratic_termination
# --------------------------------------------------------------------------------------------------------


def _directional_curvature(problem: Problem, x: Tensor, d: Tensor) -> tuple[Tensor, float]:
    """(∇f(x), dᵀ∇²f(x)d) by autograd, for the single-tensor problem ``problem`` (float64)."""
    z = x.clone().to(problem.dtype).requires_grad_(True)
    with torch.enable_grad():
        loss = problem.objective([z])
        (g,) = torch.autograd.grad(loss, [z], create_graph=True)
        (hd,) = torch.autograd.grad(g @ d.to(problem.dtype), [z])
    return g.detach().to(torch.float64), float(hd.to(torch.float64) @ d)


@register(
    "mathematics.quadratic_termination",
    category="mathematics",
    needs=("no_line_search",),
    level="semantics",
    why="exact line searches are emulated by setting lr between one-iteration steps, which needs the memory kept "
        "across step() (torch's behaviour)",
    title="with exact line searches and history_size >= n, the gradient of an n-dimensional SPD quadratic "
          "vanishes within n + 1 iterations (N&W Thm. 5.2, §6.1, §7.2)",
    catches="directions that are not the L-BFGS/conjugate-gradient ones or not scaled by γ = sᵀy/yᵀy (wrong "
            "two-loop recursion, stale pairs, a non-scalar H₀, wrong curvature test), steps not taken as t·d, lr "
            "changes between steps ignored",
)
def check_quadratic_termination(ctx: CheckContext) -> None:
    """On a strictly convex quadratic, BFGS with exact line searches generates the conjugate-gradient iterates
    and finds the minimiser in at most n iterations (Nocedal & Wright Thm. 5.2 and §6.1); L-BFGS with
    ``history_size >= n`` is BFGS with H₀ = γ_k I here, and the directions stay parallel to CG's for any
    scalar γ_k (N&W §7.2; Kolda, O'Leary & Nazareth, SIAM J. Optim. 8 (1998)).

    torch's strong-Wolfe search (c2 = 0.9) is *not* exact and L-BFGS then does not terminate finitely (torch
    2.13 and scipy 1.15 both need 50-90 iterations for n = 8, condition 1e3), so exact line searches are
    emulated through the interface users have: one-iteration steps without line search and, before every
    step, ``param_groups[0]["lr"]`` set to the exact minimiser α* = -gᵀd/(dᵀ∇²f d) along the direction d that
    L-BFGS must take (rebuilt from the observed pairs, :func:`lbfgs_verify.engine.observe.rebuild_directions`;
    for step 0, d = -g₀ and lr = α*/(t₀/lr), with the target's own first-step ratio t₀/lr measured by a
    throw-away step). A target whose direction differs, even only in length,
    takes an inexact step and does not terminate. (A memory shorter than n keeps the directions parallel in
    exact arithmetic and is caught by ``mathematics.two_loop_direction`` instead.)

    Tolerance: ||g_k||₂ <= 1e-8·||g₀||₂ for some k <= n + 1 (float64, condition number <= 1e4; torch 2.13
    reaches 1e-10 at exactly k = n for n <= 12)."""

    @_settings(ctx)
    @given(problem=spd_quadratics(min_n=2, max_n=10, max_log10_condition=4), extra=st.integers(0, 3))
    @example(problem=spd_quadratic(5, 100.0, seed=1), extra=0)
    def run(problem: Problem, extra: int) -> None:
        n = problem.dimension
        history_size = n + extra
        xs: list[Tensor] = []
        gs: list[Tensor] = []
        norms: list[float] = []
        state: dict[str, Any] = {}

        def before(k: int, optimizer: Any) -> None:
            params = state["params"]
            x = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in params])
            g, _ = _directional_curvature(problem, x, torch.zeros_like(x))
            xs.append(x)
            gs.append(g)
            norms.append(float(g.norm()))
            d = rebuild_directions(xs, gs, [history_size] * len(xs), 2.2e-16)[-1].d
            _, curvature = _directional_curvature(problem, x, d)
            alpha = -float(g @ d) / curvature if curvature > 0 else 1.0
            lr = alpha / first_step_ratio() if k == 0 else alpha
            set_hyperparameter(optimizer, "lr", max(lr, 0.0))

        def first_step_ratio() -> float:
            """t₀/lr of the target's own first-step rule at x₀ (torch: min(1, 1/||g₀||₁); others: 1), measured
            by one throw-away step with lr = 1 from the same start."""
            with quiet_known_warnings():
                probe = observe(target, problem, {**hp, "lr": 1.0}, 1)
            g0 = probe.steps[0].start.g
            ratio = -float((probe.steps[0].x_after - probe.x0) @ g0) / float(g0 @ g0)
            return ratio if ratio > 0 else 1.0

        def stop(step: Any) -> bool:
            return bool(norms) and norms[-1] <= QUADRATIC_TERMINATION_TOLERANCE * norms[0]

        hp = {"lr": 1.0, "max_iter": 1, "history_size": history_size, "line_search_fn": None,
              "tolerance_grad": 0.0, "tolerance_change": 0.0}
        state["params"] = None
        target = ctx.target

        class _Capture:
            """Wraps the target's factory to see the parameter tensors it optimizes."""

            @staticmethod
            def make(params: Sequence[Tensor], **kwargs: Any) -> Any:
                state["params"] = list(params)
                return target.make(params, **kwargs)

        with quiet_known_warnings():
            obs = observe(_Capture, problem, hp, n + 2, before_step=before, stop_when=stop)
        reached = next((k for k, v in enumerate(norms) if v <= QUADRATIC_TERMINATION_TOLERANCE * norms[0]), None)
        if reached is None or reached > n + 1:
            ratios = ", ".join(f"{v / norms[0]:.1e}" for v in norms)
            k_bad, r_bad = _first_direction_mismatch(obs, xs, gs, history_size)
            where = (f"; the target's direction first differs from the L-BFGS direction at step {k_bad} "
                     f"(relative {r_bad:.3g})" if k_bad is not None else "")
            raise obs.fail(
                f"the gradient did not vanish within n + 1 = {n + 1} exact-line-search iterations on an SPD "
                f"quadratic (n = {n}, history_size = {history_size}): ||g_k||/||g₀|| = [{ratios}] (tolerance "
                f"{QUADRATIC_TERMINATION_TOLERANCE:g}){where}",
                n=n, history_size=history_size, gradient_ratios=[v / norms[0] for v in norms],
                first_direction_mismatch=k_bad)

    run()


def _first_direction_mismatch(obs: Observation, xs: Sequence[Tensor], gs: Sequence[Tensor],
                              history_size: int) -> tuple[int | None, float]:
    """The first step whose observed move is not parallel to the rebuilt direction (diagnosis only)."""
    rebuilt = rebuild_directions(list(xs), list(gs), [history_size] * len(xs), 2.2e-16)
    for k, step in enumerate(obs.steps[:len(rebuilt)]):
        move = step.x_after - step.start.x
        d = rebuilt[k].d
        denom = float(d @ d)
        if denom == 0:
            continue
        alpha = float(move @ d) / denom
        r = relative_difference(move, alpha * d)
        if r > 1e-6:
            return k, r
    return None, 0.0

