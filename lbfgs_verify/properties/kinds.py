"""Properties that carry over to the other target kinds (issue 20): steppers with explicit state and functional
minimizers (:mod:`lbfgs_verify.targets.kinds`).

- ``stepper.*``: save → serialize → restore in a fresh process → continue is bitwise the uninterrupted run on the
  CPU under one execution mode (jit per step, x64 on, float64: recorded in the evidence), each serializer a route,
  a cold restart the control that must differ; a loaded state is checked against a template made with the same
  hyperparameters (and the library's own acceptance of a mismatched state is reported as a finding).
- ``functional.*``: a maxiter-k run is the prefix of a longer run, a callback stop equals a maxiter stop, two runs
  are identical.
- ``kinds.*`` (both kinds): descent, the Wolfe conditions with the declared constants, the two-loop direction
  rebuilt from the accepted points against the declared H₀ rule and memory, convergence on MGH problems, and the
  library's own resume path where the adapter has ``own_resume`` (jaxopt's ``OptStep`` warm start, tfp's
  ``previous_optimizer_results``, the lbfgsb package's ``checkpoint``).

The torch properties skip on these kinds ("not applicable (<kind> target: no step(closure)/state_dict API)")
and these skip on torch targets; a functional target skips ``stepper.*`` with "not applicable (no state API)"
(:func:`lbfgs_verify.targets.kinds.kind_skip_reason`, called by :func:`lbfgs_verify.properties.base.run_property`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lbfgs_verify.engine.runs import add_note as note
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, PropertySkipped, register

EPS = float(np.finfo(np.float64).eps)
MATH_PROBLEMS = ("mgh01_rosenbrock[n=2,x0*1,float64]", "mgh21_extended_rosenbrock[n=10,x0*1,float64]",
                 "mgh05_beale[n=2,x0*1,float64]")
"""Problems of the descent, Wolfe and two-loop checks (float64, standard starts; MGH 1981 (1), (21), (5))."""

DIRECTION_TOLERANCE = 1e-6
"""Largest ‖d̂/‖d̂‖ − s/‖s‖‖ allowed between the rebuilt two-loop direction d̂ and the step taken: rounding of the
compact form (scipy) against the two-loop recursion is ~1e-13 on these problems (scipy-lbfgsb notes); a wrong
H₀, order or sign moves it by O(1e-2) and more."""

ACTIVE_GRADIENT = 1e-8
"""The mathematics checks stop at the first iterate with ‖g‖₂ ≤ ACTIVE_GRADIENT·max(1, ‖g₀‖₂): past it f and its
slope along the step are within rounding and no line-search condition can be told apart (N&W ch. 3.5)."""


@dataclass
class Trajectory:
    """Accepted points x₀..x_K with f and g there (float64), and per step whether the library reported a failed
    line search (steppers' ``info``; unknown, hence ``False``, for functional targets)."""

    problem: str
    x: list[np.ndarray] = field(default_factory=list)
    f: list[float] = field(default_factory=list)
    g: list[np.ndarray] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)


_TRAJECTORIES: dict[tuple[str, str, int], Trajectory] = {}


def _stepper_mode() -> Any:
    from lbfgs_verify.targets.stepper import Mode

    return Mode(jit=True, x64=True, dtype="float64")


def trajectory(ctx: CheckContext, problem: str, max_steps: int, gtol: float = 0.0) -> Trajectory:
    """The target's accepted points on ``problem`` (library defaults), at most ``max_steps`` iterations, a stepper
    stopped at ``‖g‖∞ ≤ gtol``; cached per target, problem and length."""
    from lbfgs_verify.targets.kinds import STEPPER, kind_of

    key = (ctx.target.spec, problem, max_steps)
    if key in _TRAJECTORIES:
        return _TRAJECTORIES[key]
    adapter = ctx.target.adapter  # type: ignore[attr-defined]
    out = Trajectory(problem)
    if kind_of(ctx.target) == STEPPER:
        import jax

        from lbfgs_verify.problems.frameworks import jax_objective
        from lbfgs_verify.targets.stepper import _step_function, mode_context, start_params

        mode = _stepper_mode()
        with mode_context(mode):
            stepper, step = _step_function(adapter, {}, problem, mode)
            value_and_grad = jax.jit(jax.value_and_grad(jax_objective(problem)))
            params = start_params(problem, mode)
            state = stepper.init(params)
            for k in range(max_steps + 1):
                f, g = value_and_grad(params)
                out.x.append(np.array(params, dtype=np.float64))
                out.f.append(float(f))
                out.g.append(np.array(g, dtype=np.float64))
                if k == max_steps or (gtol > 0 and float(np.max(np.abs(out.g[-1]))) <= gtol):
                    break
                params, state, info = step(params, state)
                out.failed.append(bool(np.asarray(dict(info).get("line_search_failed", False))))
    else:
        from lbfgs_verify.targets.functional import run_functional, value_and_gradient_at

        run = run_functional(adapter, problem, max_steps, tolerance=None)
        for x in run.iterates:
            f, g = value_and_gradient_at(run, x, problem)
            out.x.append(x)
            out.f.append(float(f))
            out.g.append(np.asarray(g, dtype=np.float64))
        out.failed = [False] * (len(out.x) - 1)
    _TRAJECTORIES[key] = out
    return out


def _active_steps(t: Trajectory) -> list[int]:
    """Steps k (x_k → x_{k+1}) before the gradient falls to :data:`ACTIVE_GRADIENT` and without a reported failed
    line search."""
    limit = ACTIVE_GRADIENT * max(1.0, float(np.linalg.norm(t.g[0])))
    out = []
    for k in range(len(t.x) - 1):
        if float(np.linalg.norm(t.g[k])) <= limit:
            break
        if not t.failed[k]:
            out.append(k)
    return out


def _math_steps(ctx: CheckContext) -> int:
    return 10 + 3 * ctx.budget.steps


def _conventions(ctx: CheckContext) -> Any:
    return ctx.target.adapter.conventions  # type: ignore[attr-defined]


def _failed_share(t: Trajectory) -> None:
    """A trajectory whose line searches mostly report failure cannot be judged by these checks: that is a finding."""
    reported = sum(t.failed)
    if reported and reported * 2 > len(t.failed):
        raise PropertyFailed(f"{t.problem}: the library reported a failed line search at {reported} of "
                             f"{len(t.failed)} steps", evidence={"problem": t.problem, "failed_steps": reported,
                                                                "max_steps": len(t.failed)})


# --------------------------------------------------------------------------------------------------------------
# For both kinds
# --------------------------------------------------------------------------------------------------------------


@register("kinds.descent", category="kinds",
          title="Every accepted step goes downhill: gₖᵀsₖ < 0 and f(xₖ₊₁) < f(xₖ), or f(xₖ₊₁) ≤ f(xₖ) + ε|f(xₖ)| where "
                "the adapter declares approximate Wolfe points with tolerance ε (N&W ch. 3.1, 6.1; Hager & Zhang "
                "2005 eq. 23)",
          catches="a direction that is not a descent direction (two-loop sign or order error), an accepted step "
                  "that increases f")
def descent(ctx: CheckContext) -> None:
    allowance = _conventions(ctx).approximate_wolfe or 0.0
    for problem in MATH_PROBLEMS:
        t = trajectory(ctx, problem, _math_steps(ctx))
        _failed_share(t)
        for k in _active_steps(t):
            s = t.x[k + 1] - t.x[k]
            slope = float(t.g[k] @ s)
            downhill = t.f[k + 1] < t.f[k] or (allowance > 0 and t.f[k + 1] <= t.f[k] + allowance * abs(t.f[k]))
            if not slope < 0 or not downhill:
                raise PropertyFailed(
                    f"{problem}: step {k + 1}: g_k's = {slope:.6g}, f went {t.f[k]:.17g} -> {t.f[k + 1]:.17g}",
                    evidence={"problem": problem, "step": k + 1, "slope": slope, "f_before": t.f[k],
                              "f_after": t.f[k + 1], "max_steps": _math_steps(ctx)})


@register("kinds.wolfe", category="kinds",
          title="Accepted points meet the declared line-search conditions with the declared c1, c2 (strong or weak "
                "Wolfe, N&W 3.6/3.7; or Hager–Zhang approximate Wolfe where declared), to rounding",
          catches="a line search that accepts without sufficient decrease or without the curvature condition, or "
                  "constants other than the declared ones")
def wolfe(ctx: CheckContext) -> None:
    conv = _conventions(ctx)
    if conv.line_search in ("none",):
        raise PropertySkipped("not applicable (the adapter declares no line search)")
    checked = 0
    for problem in MATH_PROBLEMS:
        t = trajectory(ctx, problem, _math_steps(ctx))
        _failed_share(t)
        for k in _active_steps(t):
            s = t.x[k + 1] - t.x[k]
            slope0, slope1 = float(t.g[k] @ s), float(t.g[k + 1] @ s)
            f0, f1 = t.f[k], t.f[k + 1]
            f_slack = 8 * EPS * max(abs(f0), abs(f1))
            g_slack = 8 * EPS * float(np.linalg.norm(t.g[k + 1]) * np.linalg.norm(s) + np.linalg.norm(t.g[k])
                                      * np.linalg.norm(s))
            armijo = f1 <= f0 + conv.c1 * slope0 + f_slack
            if conv.approximate_wolfe is not None and not armijo:
                armijo = (f1 <= f0 + conv.approximate_wolfe * abs(f0) + f_slack
                          and slope1 <= (2 * conv.c1 - 1) * slope0 + g_slack)
            if conv.line_search == "strong_wolfe":
                curvature = abs(slope1) <= conv.c2 * abs(slope0) + g_slack
            elif conv.line_search == "weak_wolfe":
                curvature = slope1 >= conv.c2 * slope0 - g_slack
            else:
                curvature = True
            checked += 1
            if not (armijo and curvature):
                which = "sufficient decrease" if not armijo else "curvature"
                raise PropertyFailed(
                    f"{problem}: step {k + 1}: the {which} condition fails ({conv.line_search}, c1={conv.c1}, "
                    f"c2={conv.c2}): f {f0:.17g} -> {f1:.17g}, slope {slope0:.6g} -> {slope1:.6g}",
                    evidence={"problem": problem, "step": k + 1, "condition": which, "f_before": f0, "f_after": f1,
                              "slope_before": slope0, "slope_after": slope1, "c1": conv.c1, "c2": conv.c2,
                              "max_steps": _math_steps(ctx)})
    if checked == 0:
        raise PropertyFailed("no step could be checked: every step reported a failed line search or none was taken")


def two_loop(g: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]], h0: str) -> np.ndarray:
    """−H g by the two-loop recursion (N&W Algorithm 7.4) over ``pairs`` (oldest first), H₀ = γI (eq. 7.20)."""
    q = g.copy()
    alphas = []
    for s, y in reversed(pairs):
        sy = float(s @ y)
        rho = 0.0 if sy == 0 else 1.0 / sy
        alpha = rho * float(s @ q)
        alphas.append((alpha, rho))
        q = q - alpha * y
    gamma = 1.0
    if pairs and h0 == "sty/yty":
        s, y = pairs[-1]
        yy = float(y @ y)
        gamma = float(s @ y) / yy if yy > 0 else 1.0
    r = gamma * q
    for (s, y), (alpha, rho) in zip(pairs, reversed(alphas), strict=True):
        beta = rho * float(y @ r)
        r = r + (alpha - beta) * s
    return -r


@register("kinds.two_loop_direction", category="kinds",
          title="Each step is along the two-loop direction −Hₖgₖ rebuilt from the accepted points' pairs with the "
                "declared memory, pair-skip rule and H₀ scaling (N&W Algorithm 7.4, eq. 7.20), within 1e-6",
          catches="a two-loop recursion with a wrong order, sign, ρ or γ, pairs used beyond the memory, a wrong H₀")
def two_loop_direction(ctx: CheckContext) -> None:
    conv = _conventions(ctx)
    for problem in MATH_PROBLEMS:
        t = trajectory(ctx, problem, _math_steps(ctx))
        active = set(_active_steps(t))
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for k in range(len(t.x) - 1):
            if k not in active:
                break
            step = t.x[k + 1] - t.x[k]
            kept = pairs if conv.keeps_negative_pairs else [(s, y) for s, y in pairs if float(s @ y) > 0]
            d = two_loop(t.g[k], kept[-conv.memory_size:], conv.h0_scaling)
            gap = float(np.linalg.norm(d / np.linalg.norm(d) - step / np.linalg.norm(step)))
            if not gap <= DIRECTION_TOLERANCE:
                raise PropertyFailed(
                    f"{problem}: step {k + 1}: the step is not along the rebuilt two-loop direction (memory "
                    f"{conv.memory_size}, H0 {conv.h0_scaling}): |unit(d) - unit(s)| = {gap:.3g} > "
                    f"{DIRECTION_TOLERANCE:g}",
                    evidence={"problem": problem, "step": k + 1, "gap": gap, "pairs": len(kept),
                              "max_steps": _math_steps(ctx)})
            pairs.append((step, t.g[k + 1] - t.g[k]))
            if not conv.keeps_negative_pairs and float(pairs[-1][0] @ pairs[-1][1]) <= 0:
                pairs.pop()


CONVERGENCE_GRADIENT = 1e-5
"""‖g‖∞ at which a run counts as converged (scipy L-BFGS-B's default ``gtol``, _lbfgsb_py.py 1.17.1)."""


@register("kinds.convergence", category="kinds",
          title="From the standard starts of MGH 1, 5, 21 and an SPD quadratic (κ = 1e3), the target reaches "
                "f* within 1e-8 or ‖g‖∞ ≤ 1e-5 in 500 iterations (library defaults)",
          catches="a solver that stalls or diverges on the classical test problems (Moré, Garbow & Hillstrom 1981)")
def convergence(ctx: CheckContext) -> None:
    from lbfgs_verify.problems.frameworks import KIND_PROBLEMS, kind_problem

    problems = KIND_PROBLEMS if ctx.budget.problems is None else KIND_PROBLEMS[:max(2, ctx.budget.problems // 2)]
    for problem in problems:
        t = trajectory(ctx, problem, 500, gtol=1e-7)
        f_star = kind_problem(problem).f_star
        best = min(range(len(t.f)), key=lambda i: t.f[i])
        gmax = float(np.max(np.abs(t.g[best])))
        near = f_star is not None and t.f[best] - f_star <= 1e-8 * max(1.0, abs(f_star))
        if not (near or gmax <= CONVERGENCE_GRADIENT):
            conv = _conventions(ctx)
            raise PropertyFailed(f"{problem}: after {len(t.x) - 1} iterations the best f = {t.f[best]:.6g} "
                                 f"(f* = {f_star}), max|g| = {gmax:.3g}: the library's iterates under its defaults "
                                 f"(declared line search {conv.line_search}, c1={conv.c1}, memory {conv.memory_size}; "
                                 f"declared stopping: {conv.stopping})",
                                 evidence={"problem": problem, "iterations": len(t.x) - 1, "f": t.f[best],
                                           "f_star": f_star, "max_abs_g": gmax, "max_steps": 500, "gtol": 1e-7})


# --------------------------------------------------------------------------------------------------------------
# Steppers
# --------------------------------------------------------------------------------------------------------------


def _splits(ctx: CheckContext, steps: int) -> list[int]:
    candidates = [steps // 2, 1, steps - 1, steps // 3]
    return list(dict.fromkeys(k for k in candidates if 0 < k < steps))[:max(1, ctx.budget.full_continuations)]


def _first_difference(expected: list[np.ndarray], actual: list[np.ndarray]) -> tuple[int | None, float]:
    first, worst = None, 0.0
    for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
        if a.tobytes() != b.tobytes():
            first = i if first is None else first
            worst = max(worst, float(np.max(np.abs(a - b))))
    return first, worst


@register("stepper.resume_fresh_process", category="stepper",
          title="Save (params, state) after k iterations, serialize, restore in a fresh Python process against a "
                "template from the same hyperparameters, continue: bitwise the uninterrupted run on the CPU under "
                "one execution mode on both sides (jit per step, x64, float64; beyond budget quick also eager "
                "float64 and jit float32 with x64 off at the first split), for every serializer route; a cold "
                "restart must differ",
          catches="state that does not survive serialization, state kept outside the state pytree (in the "
                  "optimizer object or a global), a serializer that loses a leaf, dtype or weak type")
def resume_fresh_process(ctx: CheckContext) -> None:
    from lbfgs_verify.targets.stepper import shared_compilation_cache

    with shared_compilation_cache():  # the fresh process loads the step this one compiled
        for index, mode in enumerate(resume_modes(ctx)):
            _resume_fresh_process_in(ctx, mode, every_split=index == 0)


def resume_modes(ctx: CheckContext) -> list[Any]:
    """The execution modes a resume is checked under, each fixed on both sides of the split (jit and eager optax
    runs part at iteration 7 by 8.8e-12, and the x64 flag changes the float32 trajectory: issue 20's
    measurements): jit per step with x64 and float64 at every budget; beyond ``quick`` also eager float64 and jit
    float32 with x64 off, at the first split only (an eager tfp run takes minutes on a loaded 2-core machine)."""
    from lbfgs_verify.targets.stepper import Mode

    modes = [_stepper_mode()]
    if ctx.budget.name != "quick":
        modes += [Mode(jit=False, x64=True, dtype="float64"), Mode(jit=True, x64=False, dtype="float32")]
    return modes


def _resume_fresh_process_in(ctx: CheckContext, mode: Any, every_split: bool = True) -> None:
    from lbfgs_verify.problems.frameworks import RESUME_PROBLEM
    from lbfgs_verify.targets.stepper import continue_in_fresh_process, routes, run_stepper

    problem = RESUME_PROBLEM.replace("float64", mode.dtype)  # its JAX definition checks the dtype of x
    adapter = ctx.target.adapter  # type: ignore[attr-defined]
    steps = max(8, ctx.budget.steps)
    full = run_stepper(adapter, {}, problem, steps, mode)
    header = {"problem": problem, "steps": steps, "hyperparameters": {}, **mode.describe()}
    for k in _splits(ctx, steps)[:None if every_split else 1]:
        part = run_stepper(adapter, {}, problem, k, mode)
        cold = run_stepper(adapter, {}, problem, steps - k, mode, params=part.params)
        cold_first, _ = _first_difference(full.iterates[k + 1:], cold.iterates[1:])
        blobs = {route: save((part.params, part.state)) for route, (save, _load) in routes(adapter, {}).items()}
        continued = continue_in_fresh_process(ctx.target.spec, {}, problem, mode, blobs, steps - k)
        for route, resumed in continued.items():
            first, worst = _first_difference(full.iterates[k + 1:], resumed)
            evidence = {**header, "split": k, "route": route, "bytes": len(blobs[route])}
            if first is not None:
                same_as_cold = _first_difference(cold.iterates[1:], resumed)[0] is None
                raise PropertyFailed(
                    f"{problem} ({'jit per step' if mode.jit else 'eager'}, x64 {'on' if mode.x64 else 'off'}, "
                    f"{mode.dtype}): split at {k}, route {route}: the continuation in a fresh process first differs "
                    f"at iteration {k + 1 + first} (max|dx| = {worst:.3g})"
                    + (" and equals a cold restart: the saved state is not used on load, or something is not saved"
                       if same_as_cold else ""),
                    evidence={**evidence, "first_differing_iterate": k + 1 + first, "max_abs_dx": worst,
                              "diagnosis": "cold start" if same_as_cold else None})
        note(f"split at {k} of {steps}: routes {', '.join(continued)} continued bitwise in a fresh process; "
             f"cold restart differs from iteration {k + 1 + cold_first if cold_first is not None else '-'}; "
             + ", ".join(f"{key} {value}" for key, value in mode.describe().items()))
        if cold_first is None:
            raise PropertyFailed(f"{problem}: split at {k}: the cold-restart control equals the uninterrupted "
                                 "run, so this check cannot tell a resumed state from none",
                                 evidence={**header, "split": k})


@register("stepper.load_checked_against_template", category="stepper",
          title="A state made under other hyperparameters (a smaller memory) is refused on load by every serializer "
                "route's template check; whether the library itself accepts it is reported as a finding",
          catches="a checkpoint restored into an optimizer with other hyperparameters, silently (nothing in the "
                  "state records them)")
def load_checked_against_template(ctx: CheckContext) -> None:
    from lbfgs_verify.problems.frameworks import RESUME_PROBLEM
    from lbfgs_verify.targets.stepper import mode_context, routes, run_stepper, start_params

    adapter = ctx.target.adapter  # type: ignore[attr-defined]
    mismatch = dict(getattr(adapter, "mismatch", {}) or {})
    if not mismatch:
        raise PropertySkipped("not applicable (the adapter names no hyperparameter that changes the state's shapes)")
    mode = _stepper_mode()
    k = max(3, ctx.budget.steps // 2, _conventions(ctx).memory_size + 1)  # memory full: a smaller one must differ
    part = run_stepper(adapter, {}, RESUME_PROBLEM, k, mode)
    for route, (save, _load) in routes(adapter, {}).items():
        blob = save((part.params, part.state))
        _, load_mismatched = routes(adapter, mismatch)[route]
        with mode_context(mode):
            params0 = start_params(RESUME_PROBLEM, mode)
            template = (params0, adapter.make(**mismatch).init(params0))
            try:
                load_mismatched(blob, template)
            except Exception:  # refused: what the property asks
                continue
        raise PropertyFailed(f"route {route}: a state saved under the default hyperparameters loads into a template "
                             f"made with {mismatch} without error",
                             evidence={"route": route, "mismatch": mismatch, "split": k, "problem": RESUME_PROBLEM,
                                       "hyperparameters": {}, **mode.describe()})
    later = 5
    try:
        drifted = run_stepper(adapter, mismatch, RESUME_PROBLEM, later, mode, params=part.params, state=part.state)
    except Exception as exc:
        note(f"the library refuses the mismatched state itself ({type(exc).__name__})")
        return
    matching = run_stepper(adapter, {}, RESUME_PROBLEM, later, mode, params=part.params, state=part.state)
    drift = max(float(np.max(np.abs(a - b))) for a, b in zip(matching.iterates, drifted.iterates, strict=True))
    library = getattr(adapter, "library", "") or ctx.target.spec
    setting = ", ".join(f"{k}={v}" for k, v in mismatch.items())
    ignored = (" (no drift with the default memory full: the library runs the loaded state's own memory and ignores "
               "the setting)" if drift == 0 else "")
    cause = getattr(adapter, "mismatch_cause", "")
    note(f"finding: {library} accepts a default-memory state under {setting}: no error, drift {drift:.2g} in {later} "
         f"iterations{ignored}" + (f"; {cause}" if cause else "") + "; the template check refuses it")
    note(f"the state was made with the defaults (memory {_conventions(ctx).memory_size}) and continued {later} "
         f"iterations under {setting} from iteration {k}; max|dx| against the matching continuation {drift:.3g}")


@register("kinds.own_resume_path", category="kinds",
          title="The library's own resume path (jaxopt run(OptStep(params, state)), tfp previous_optimizer_results, "
                "the lbfgsb package's checkpoint=): k iterations, then the library's resume to n, is bitwise one "
                "library call of n iterations on the CPU (x64, float64); a stepper's state route is the control",
          catches="a documented warm start that recomputes or resets part of the state (value, gradient, counters, "
                  "memory) and so does not continue the run it claims to continue")
def own_resume_path(ctx: CheckContext) -> None:
    adapter = ctx.target.adapter  # type: ignore[attr-defined]
    if not callable(getattr(adapter, "own_resume", None)):
        raise PropertySkipped("not applicable (the library has no own resume path)")
    steps = max(10, ctx.budget.resume_length)
    splits = list(dict.fromkeys([steps * 2 // 3 + 1, *_splits(ctx, steps)]))[:max(1, ctx.budget.full_continuations)]
    library = getattr(adapter, "library", "") or ctx.target.spec
    for split in splits:
        _own_resume_at(ctx, adapter, library, split, steps)


def _own_resume_at(ctx: CheckContext, adapter: Any, library: str, split: int, steps: int) -> None:
    from lbfgs_verify.problems.frameworks import RESUME_PROBLEM, jax_objective, kind_problem
    from lbfgs_verify.targets.kinds import STEPPER, kind_of

    control = ""
    header: dict[str, Any] = {"problem": RESUME_PROBLEM, "split": split, "steps": steps}
    if kind_of(ctx.target) == STEPPER:
        from lbfgs_verify.targets.stepper import mode_context, run_stepper, start_params

        mode = _stepper_mode()
        header.update(mode.describe())
        with mode_context(mode):
            result = adapter.own_resume(jax_objective(RESUME_PROBLEM), start_params(RESUME_PROBLEM, mode),
                                        split=split, steps=steps, jit=mode.jit)
        full = run_stepper(adapter, {}, RESUME_PROBLEM, steps, mode)
        part = run_stepper(adapter, {}, RESUME_PROBLEM, split, mode)
        rest = run_stepper(adapter, {}, RESUME_PROBLEM, steps - split, mode, params=part.params, state=part.state)
        same = rest.iterates[-1].tobytes() == full.iterates[-1].tobytes()
        control = ("control: the same state carried through the adapter's step route continues bitwise"
                   if same else "control: the adapter's step route does not continue bitwise either "
                   f"(max|dx| = {float(np.max(np.abs(rest.iterates[-1] - full.iterates[-1]))):.3g})")
    else:
        kp = kind_problem(RESUME_PROBLEM)
        result = adapter.own_resume(kp.fun_and_grad(), kp.x0.copy(), split=split, steps=steps, jit=False)
    counters = "; ".join(f"{name} {a} uninterrupted vs {b} resumed" for name, (a, b) in result.counters.items())
    measured = "; ".join(f"{name} = {value:.3g}" for name, value in result.at_resume.items())
    evidence = {**header, "path": result.path, "counters": {k: list(v) for k, v in result.counters.items()},
                "at_resume": dict(result.at_resume), "control": control}
    if result.resumed.tobytes() == result.uninterrupted.tobytes():
        note(f"{library}'s {result.path}: split at {split} of {steps}, the final iterate is bitwise the "
             "uninterrupted one" + (f" ({counters})" if counters else "")
             + (f"; at the resume point {measured}" if measured else ""))
        return
    worst = float(np.max(np.abs(result.resumed - result.uninterrupted)))
    raise PropertyFailed(
        f"finding ({library}'s own resume path {result.path}): {RESUME_PROBLEM}, split at {split} of {steps}: the "
        f"final iterate differs from one uninterrupted call by max|dx| = {worst:.3g}"
        + (f"; at the resume point the library recomputes: {measured}" if measured else "")
        + (f"; counters: {counters}" if counters else "") + (f"; {control}" if control else ""),
        evidence={**evidence, "max_abs_dx": worst})


# --------------------------------------------------------------------------------------------------------------
# Functional minimizers
# --------------------------------------------------------------------------------------------------------------

FUNCTIONAL_PROBLEMS = ("mgh21_extended_rosenbrock[n=10,x0*1,float64]", "mgh01_rosenbrock[n=2,x0*1,float64]")


def _longer(ctx: CheckContext) -> int:
    return max(10, 2 * ctx.budget.steps)


def _compare_runs(problem: str, what: str, expected: list[np.ndarray], actual: list[np.ndarray],
                  evidence: dict[str, Any]) -> None:
    if len(actual) != len(expected):
        raise PropertyFailed(f"{problem}: {what}: {len(actual) - 1} iterations instead of {len(expected) - 1}",
                             evidence={**evidence, "iterations": len(actual) - 1})
    first, worst = _first_difference(expected, actual)
    if first is not None:
        raise PropertyFailed(f"{problem}: {what}: iterate {first} differs (max|dx| = {worst:.3g})",
                             evidence={**evidence, "first_differing_iterate": first, "max_abs_dx": worst})


@register("functional.maxiter_prefix", category="functional",
          title="A run stopped by maxiter=k is bitwise the first k iterations of a longer run (iterates from the "
                "callback, and the returned x is the k-th iterate), stopping rules off",
          catches="state leaking between calls, an iteration count off by one, a returned x other than the last "
                  "accepted iterate")
def maxiter_prefix(ctx: CheckContext) -> None:
    from lbfgs_verify.targets.functional import run_functional

    adapter = ctx.target.adapter  # type: ignore[attr-defined]
    n = _longer(ctx)
    for problem in FUNCTIONAL_PROBLEMS:
        full = run_functional(adapter, problem, n)
        for k in _splits(ctx, n):
            short = run_functional(adapter, problem, k)
            evidence = {"problem": problem, "maxiter": k, "longer": n}
            _compare_runs(problem, f"maxiter={k} against maxiter={n}", full.iterates[:k + 1], short.iterates,
                          evidence)
            if short.x is None or short.x.tobytes() != full.iterates[k].tobytes():
                raise PropertyFailed(f"{problem}: maxiter={k}: the returned x is not iterate {k}", evidence=evidence)


@register("functional.callback_stop", category="functional",
          title="A run stopped from the callback after k iterations (its declared way: StopIteration or True) is "
                "bitwise the maxiter=k run, returned x included",
          catches="a callback stop that takes another step, returns another point, or is ignored")
def callback_stop(ctx: CheckContext) -> None:
    from lbfgs_verify.targets.functional import run_functional

    adapter = ctx.target.adapter  # type: ignore[attr-defined]
    n = _longer(ctx)
    for problem in FUNCTIONAL_PROBLEMS:
        for k in _splits(ctx, n):
            by_maxiter = run_functional(adapter, problem, k)
            by_callback = run_functional(adapter, problem, n, stop_after=k)
            evidence = {"problem": problem, "k": k, "stop_by": adapter.stop_by, "maxiter": k, "longer": n}
            _compare_runs(problem, f"callback stop after {k} against maxiter={k}", by_maxiter.iterates,
                          by_callback.iterates, evidence)
            if by_callback.x is None or by_maxiter.x is None or by_callback.x.tobytes() != by_maxiter.x.tobytes():
                which = [j for j, x in enumerate(by_callback.iterates)
                         if by_callback.x is not None and x.tobytes() == by_callback.x.tobytes()]
                said = (f": it is iterate {which[-1]}, the callback was handed iterate {k} (the library returns "
                        "the point before the step its callback stopped)" if which and which[-1] < k else "")
                raise PropertyFailed(f"{problem}: callback stop after {k}: the returned x differs from maxiter={k}'s"
                                     + said, evidence={**evidence, "returned_iterate": which[-1] if which else None})


@register("functional.deterministic", category="functional",
          title="Two runs from the same start evaluate the same points and accept the same iterates, bitwise",
          catches="hidden state carried between calls (module globals, caches), nondeterministic reductions")
def deterministic(ctx: CheckContext) -> None:
    from lbfgs_verify.targets.functional import run_functional

    adapter = ctx.target.adapter  # type: ignore[attr-defined]
    n = _longer(ctx)
    for problem in FUNCTIONAL_PROBLEMS:
        first, second = run_functional(adapter, problem, n), run_functional(adapter, problem, n)
        _compare_runs(problem, "second run", first.iterates, second.iterates, {"problem": problem, "maxiter": n})
        _compare_runs(problem, "second run's evaluations", [e[0] for e in first.evaluations],
                      [e[0] for e in second.evaluations], {"problem": problem, "maxiter": n})
