"""Convergence properties (``convergence.*``): the target solves the suite problems that have a known answer.

Problems: :func:`lbfgs_verify.problems.suite_problems` (the 35 Moré–Garbow–Hillstrom problems at their
standard sizes from x₀, an SPD quadratic, linear and logistic regressions, a complex least-squares problem,
the seed article's regression, chained Rosenbrock), float64, those whose ``expectation`` is
``REACHES_F_STAR``. ``budget.problems`` limits how many are visited (the cheapest, most varied first).

Settings (:data:`SETTINGS`): ``line_search_fn="strong_wolfe"``, ``history_size=100``, ``max_iter=200``,
``max_eval=250``, ``tolerance_grad=1e-12``, ``tolerance_change=1e-14``, at most :data:`MAX_STEPS` ``step()``
calls, ending early once a step no longer moves the parameters.

Tolerance (:func:`f_star_tolerance`): f - f* <= 1e-8·max(1, |f*|) + 5e-6·|f*|. The second term covers
optima published with 6 significant digits (MGH 1981 prints e.g. 85822.2 for Brown and Dennis); measured on
torch 2.13 the worst case is 1.9e-8 relative on that problem.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from lbfgs_verify.engine import quiet_known_warnings
from lbfgs_verify.observe import Observation, observe
from lbfgs_verify.problems import Expectation, Problem, get_problem, suite_problems
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, register
from lbfgs_verify.targets import Target

SETTINGS: dict[str, Any] = {
    "line_search_fn": "strong_wolfe",
    "history_size": 100,
    "max_iter": 200,
    "max_eval": 250,
    "tolerance_grad": 1e-12,
    "tolerance_change": 1e-14,
}
MAX_STEPS = 10

EXCLUDED: dict[str, str] = {
    "mgh24_penalty2[n=4,x0*1,float64]": "torch.optim.LBFGS 2.13 stalls at f = 9.4647e-6 (f* = 9.37629e-6; scipy's "
    "L-BFGS-B reaches it) with these settings, using its whole evaluation budget without progress",
}
"""Problems marked ``REACHES_F_STAR`` that torch.optim.LBFGS itself does not solve with :data:`SETTINGS`
(measured on torch 2.13): they would fail every torch-semantics target, so they are left out, with the
reason."""

PRIORITY = (
    "mgh01_rosenbrock",
    "spd_quadratic",
    "complex_least_squares",
    "mgh07_helical_valley",
    "logistic_regression",
    "mgh21_extended_rosenbrock",
)
"""Visited first (so the ``quick`` budget sees varied problems): name prefixes in order."""


def f_star_tolerance(f_star: float) -> float:
    """Allowed f - f*: 1e-8·max(1, |f*|) + 5e-6·|f*| (the last term: f* published to 6 significant digits)."""
    return 1e-8 * max(1.0, abs(f_star)) + 5e-6 * abs(f_star)


def convergence_problems(limit: int | None) -> list[Problem]:
    """The float64 suite problems expected to reach f*, minus :data:`EXCLUDED`, priority first, at most ``limit``."""
    chosen = [p for p in suite_problems(torch.float64)
              if p.expectation is Expectation.REACHES_F_STAR and p.f_star is not None and p.name not in EXCLUDED]

    def rank(p: Problem) -> int:
        return next((i for i, prefix in enumerate(PRIORITY) if p.name.startswith(prefix)), len(PRIORITY))

    chosen.sort(key=rank)  # stable: suite order within a rank
    return chosen if limit is None else chosen[:limit]


def settings_for(lacks: frozenset[str] = frozenset()) -> dict[str, Any]:
    """:data:`SETTINGS` without the hyperparameters whose feature the target declared lacking (``max_eval``,
    ``tolerance_change``: the target's defaults are used instead)."""
    return {k: v for k, v in SETTINGS.items() if k not in lacks}


def solve(target: Any, problem: Problem, settings: dict[str, Any] | None = None) -> tuple[float, Observation]:
    """Run ``target`` on ``problem`` with :data:`SETTINGS`; the final objective value and the observation
    (one run per check for both properties that judge it: :func:`lbfgs_verify.recordings.shared_result`)."""
    from lbfgs_verify.recordings import shared_result

    chosen = SETTINGS if settings is None else settings

    def run() -> tuple[float, Observation]:
        with quiet_known_warnings():
            obs = observe(target, problem, chosen, MAX_STEPS, stop_when=lambda step: not step.moved)
            return problem.value(obs.params), obs

    return shared_result("convergence.solve", target, (problem.name, repr(sorted(chosen.items()))), run)


def _solve_visited(ctx: CheckContext, settings: dict[str, Any]) -> tuple[list[tuple[Problem, float, Observation]],
                                                                        list[str]]:
    """:func:`solve` on each of :func:`visited_problems`: ``(problem, final value, observation)`` for those that
    ran, and one line per problem whose run raised."""
    solved: list[tuple[Problem, float, Observation]] = []
    crashes: list[str] = []
    for problem in visited_problems(ctx):
        try:
            f, obs = solve(ctx.target, problem, settings)
        except PropertyFailed as exc:
            crashes.append(_crash_line(problem, exc))
            continue
        solved.append((problem, f, obs))
    return solved, crashes


def visited_problems(ctx: CheckContext) -> list[Problem]:
    """:func:`convergence_problems` of the budget, without those that use a feature the target lacks."""
    from lbfgs_verify.capabilities import features_of_problem

    return [p for p in convergence_problems(ctx.budget.problems) if not features_of_problem(p) & ctx.lacks]


def _crash_line(problem: Problem, exc: PropertyFailed) -> str:
    return f"{problem.name}: {str(exc).splitlines()[0]}"


@functools.lru_cache(maxsize=64)
def torch_result(problem_name: str) -> float:
    """torch.optim.LBFGS's final value on a suite problem with :data:`SETTINGS` (cached per process)."""
    f, _ = solve(Target("torch.optim:LBFGS", torch.optim.LBFGS), get_problem(problem_name))
    return f


def _summary(obs: Observation) -> str:
    calls = sum(s.calls for s in obs.steps)
    return f"{len(obs.steps)} step(s), {calls} closure calls"


@register(
    "convergence.reaches_f_star",
    category="convergence",
    needs=("strong_wolfe",),
    why="any correct L-BFGS with a strong-Wolfe search reaches the published minimum",
    title="on the suite problems expected to reach f*, the final value satisfies f - f* <= 1e-8·max(1,|f*|) + "
          "5e-6·|f*| (float64, strong_wolfe)",
    catches="anything that keeps the iteration from converging: wrong directions, a broken line search, "
            "premature stops, lost curvature information",
)
def check_reaches_f_star(ctx: CheckContext) -> None:
    """Each problem of :func:`convergence_problems` (``budget.problems`` of them) is solved from its start with
    :data:`SETTINGS`; the published f* (MGH 1981 / the problem's own closed form) must be reached within
    :func:`f_star_tolerance`. All failures (values missed and exceptions raised) are collected and reported
    together."""
    failures = []
    settings = settings_for(ctx.lacks)
    solved, crashes = _solve_visited(ctx, settings)
    for problem, f, obs in solved:
        assert problem.f_star is not None
        gap = f - problem.f_star
        tol = f_star_tolerance(problem.f_star)
        if not gap <= tol:
            failures.append((problem.name, f, problem.f_star, gap, tol, _summary(obs)))
    if failures or crashes:
        lines = [f"{name}: f = {f:.12g}, f* = {fs:.12g}, f - f* = {gap:.3g} > {tol:.3g} ({summary})"
                 for name, f, fs, gap, tol, summary in failures] + crashes
        raise PropertyFailed(
            f"{len(failures) + len(crashes)} problem(s) did not reach f* with {settings}, at most {MAX_STEPS} "
            f"steps ({len(crashes)} of them raised):\n  " + "\n  ".join(lines),
            {"settings": {k: repr(v) for k, v in settings.items()},
             "failures": [{"problem": n, "f": f, "f_star": fs, "gap": g, "tolerance": t}
                          for n, f, fs, g, t, _ in failures], "raised": crashes})


@register(
    "convergence.agrees_with_torch",
    category="convergence",
    level="semantics",
    needs=("strong_wolfe",),
    why="agreement with torch.optim.LBFGS's final value is a claim about torch's behaviour, not mathematics",
    title="on the suite problems expected to reach f*, the final value agrees with torch.optim.LBFGS's within "
          "1e-8·max(1,|f*|) (same settings)",
    catches="a target that converges to another point or value than torch's L-BFGS where the answer is unique, "
            "regressions against the implementation users compare with",
)
def check_agrees_with_torch(ctx: CheckContext) -> None:
    """Same problems and settings as ``convergence.reaches_f_star``; torch.optim.LBFGS's final value (cached)
    and the target's must satisfy |f_target - f_torch| <= 1e-8·max(1, |f*|). Closer than the f* test where
    f* is published with few digits. All failures (values and exceptions) are collected."""
    failures = []
    settings = settings_for(ctx.lacks)
    solved, crashes = _solve_visited(ctx, settings)
    for problem, f, obs in solved:
        f_torch = torch_result(problem.name)
        assert problem.f_star is not None
        tol = 1e-8 * max(1.0, abs(problem.f_star))
        if not abs(f - f_torch) <= tol:
            failures.append((problem.name, f, f_torch, tol, _summary(obs)))
    if failures or crashes:
        lines = [f"{name}: target f = {f:.12g}, torch f = {ft:.12g}, |Δ| = {abs(f - ft):.3g} > {tol:.3g} ({s})"
                 for name, f, ft, tol, s in failures] + crashes
        raise PropertyFailed(
            f"{len(failures) + len(crashes)} problem(s) end at another value than torch.optim.LBFGS with "
            f"{settings} ({len(crashes)} of them raised):\n  " + "\n  ".join(lines),
            {"failures": [{"problem": n, "f": f, "f_torch": ft, "tolerance": t} for n, f, ft, t, _ in failures],
             "raised": crashes})
