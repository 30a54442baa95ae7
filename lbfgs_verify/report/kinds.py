"""Targets of every kind in the report (issue 20): JAX steppers and functional minimizers beside torch.

A stepper or functional target (:class:`lbfgs_verify.targets.kinds.KindTarget`) becomes a :class:`Solver` of
kind ``stepper`` or ``functional``. Every built-in adapter of :data:`lbfgs_verify.targets.kinds.BUILTINS` that can
be loaded joins the default solvers (read at run time; those the report already has as ``scipy`` and
``minimize_lbfgsb`` are not repeated); one that cannot (the ``jax`` extra missing) is listed as left out with
the reason.

Recording, one iteration at a time (:class:`IterationRecord`): accepted iterates x₀..x_K and, per iteration, the
trial points its line search evaluated (evaluations at x_{k-1} itself are not trials).

- steppers: the adapter's ``step`` compiled once per (solver, problem, settings) ahead of time
  (``jax.jit(...).lower(...).compile()``, its seconds kept apart as ``compile_seconds``), the objective wrapped
  in an ordered ``jax.debug.callback`` that records each evaluation's x and f; steppers have no stopping rule of
  their own (optax), so the harness stops them with scipy's tests (max|g| ≤ gtol = 1e-5, f-change ≤ ftol·max(|f|,
  |f_prev|, 1) with ftol = 2.2e-9, ``scipy/optimize/_lbfgsb_py.py`` defaults) evaluated on the problem's numpy route;
- functional targets and scipy: the objective and the callback wrapped (:mod:`lbfgs_verify.targets.functional`);
- torch-shaped optimizers: ``max_iter=1`` per ``step()`` (torch re-evaluates the closure at x_k at each
  ``step()``: the same iterates as one ``step()`` of many iterations, one evaluation more per iteration).

Agreement of two solvers on a problem (:func:`pair_agreement`): how many iterations they stay bitwise equal and
within :data:`TRACK_TOLERANCE`, and why they part, classified at the first iteration beyond it from the declared
:class:`~lbfgs_verify.targets.protocols.Conventions` and the recorded trial points (N&W 2006 ch. 7.2, Alg. 7.5:
first step, H₀ = γI, memory m; ch. 3.5 for interpolating line searches).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from lbfgs_verify.problems.base import Problem
from lbfgs_verify.report.budget import ReportBudget
from lbfgs_verify.report.solvers import MINIMIZE_LBFGSB, OPTIMIZER, SCIPY, Solver
from lbfgs_verify.targets.protocols import FUNCTIONAL, STEPPER, Conventions

KINDS = (STEPPER, FUNCTIONAL)
TRACK_TOLERANCE = 1e-8
"""Two runs 'track' each other while ‖x_a − x_b‖∞ / ‖x_b‖∞ ≤ this at every iteration so far."""
GTOL = 1e-5
FTOL = 2.220446049250313e-09
"""The harness's stopping tests for steppers: scipy's L-BFGS-B defaults (``scipy/optimize/_lbfgsb_py.py``)."""
COVERED = {"scipy:L-BFGS-B": "scipy", "lbfgs_verify.reference:minimize_lbfgsb": "minimize_lbfgsb"}
"""Built-in adapters the report already runs as a default solver (that solver's id)."""
REPRESENTATIVE = ("mgh01_rosenbrock[n=2,x0*1,float64]", "mgh21_extended_rosenbrock[n=10,x0*1,float64]",
                  "spd_quadratic[n=8,kappa=1000,seed=0,float64]", "mgh05_beale[n=2,x0*1,float64]")
"""The problems stepper targets run first when the budget allows only a few (jit compiles once per problem)."""

TORCH_CONVENTIONS = Conventions(
    memory_size=100, memory_name="history_size",
    first_step="d = -g, trial step min(1, 1/||g0||_1) * lr",
    h0_scaling="sty/yty", pair_skip="y's <= 1e-10 skipped",
    keeps_negative_pairs=False, line_search="strong_wolfe", c1=1e-4, c2=0.9, approximate_wolfe=None,
    stopping="max|g| <= tolerance_grad; |d*t| <= tolerance_change; |f - f_prev| < tolerance_change; max_iter, "
             "max_eval",
    source="torch 2.13: torch/optim/lbfgs.py (LBFGS.step: t = min(1., 1./abs_grad_sum) * lr at n_iter 1; "
           "_strong_wolfe c1=1e-4, c2=0.9; ys > 1e-10)",
)
"""torch.optim.LBFGS and the reference (which follows it); the report's runs set history_size 10."""


def solver_conventions(solver: Solver) -> Conventions | None:
    """The declared conventions of ``solver`` with the report's memory and line search (``None``: undeclared)."""
    if solver.kind in KINDS and solver.target is not None:
        conventions = getattr(getattr(solver.target, "adapter", None), "conventions", None)
        return conventions if isinstance(conventions, Conventions) else None
    if solver.kind in (SCIPY, MINIMIZE_LBFGSB):
        from lbfgs_verify.targets.adapters.scipy_lbfgsb import CONVENTIONS

        return replace(CONVENTIONS, memory_size=int(solver.settings.get("maxcor", 10)))
    if solver.kind == OPTIMIZER and solver.spec in ("torch.optim:LBFGS", "lbfgs_verify.reference:LBFGS"):
        line_search = solver.settings.get("line_search_fn") or "none"
        return replace(TORCH_CONVENTIONS, memory_size=int(solver.settings.get("history_size", 100)),
                       line_search=line_search)
    return None


# ------------------------------------------------------------------------------------------------- solvers


def kind_settings(budget: ReportBudget) -> dict[str, Any]:
    """A kind target's run: the library's defaults, the budget's iteration and evaluation limits; steppers
    stopped by the harness with scipy's tests."""
    return {"maxiter": budget.max_iter, "maxfun": budget.max_iter * 5 // 4, "gtol": GTOL, "ftol": FTOL}


def kind_solver(spec: str, target: Any, budget: ReportBudget, *, is_target: bool) -> Solver:
    """A :class:`Solver` for a loaded stepper or functional target."""
    sid = f"target:{spec}" if is_target else spec
    return Solver(sid, f"{spec} ({target.kind})", target.kind, spec, kind_settings(budget), is_target=is_target,
                  target=target)


def builtin_solvers(budget: ReportBudget, present: Sequence[str] = ()) -> tuple[list[Solver], list[dict[str, str]]]:
    """A solver per built-in adapter (:data:`~lbfgs_verify.targets.kinds.BUILTINS`, read now) not already a
    default solver, and the adapters left out with the reason (the extra to install)."""
    from lbfgs_verify.targets.kinds import BUILTINS, builtin_target

    solvers, left_out = [], []
    for spec in BUILTINS:
        if spec in COVERED or spec in present:
            continue
        try:
            target = builtin_target(spec)
        except Exception as exc:  # TargetLoadError naming the extra, or a broken install
            left_out.append({"spec": spec, "reason": str(exc).splitlines()[0]})
            continue
        if target is not None:
            solvers.append(kind_solver(spec, target, budget, is_target=False))
    return solvers, left_out


def stepper_problems(problems: Sequence[Problem], count: int) -> list[str]:
    """The names of the problems stepper targets run: :data:`REPRESENTATIVE` first, then in order."""
    names = [p.name for p in problems]
    chosen = [n for n in REPRESENTATIVE if n in names] + [n for n in names if n not in REPRESENTATIVE]
    return chosen[:count]


# ------------------------------------------------------------------------------------------------- records


@dataclass
class IterationRecord:
    """One solver on one problem, iteration by iteration.

    Attributes:
        iterates: x₀..x_K (float64 copies).
        trials: per iteration k = 1..K, the (x, f) its line search evaluated away from x_{k-1}.
        evaluations: every evaluation's (f, seconds since the start), in order.
        stop: why the run ended.
        step_seconds: wall time of each iteration (steppers: the compiled step with its recording callbacks).
        compile_seconds: the ahead-of-time compile of a stepper's step (``None`` for the others).
    """

    iterates: list[np.ndarray] = field(default_factory=list)
    trials: list[list[tuple[np.ndarray, float]]] = field(default_factory=list)
    evaluations: list[tuple[float, float]] = field(default_factory=list)
    stop: str = ""
    step_seconds: list[float] = field(default_factory=list)
    compile_seconds: float | None = None
    compiled_now: bool = False
    error: str = ""


def _split_trials(log: Sequence[tuple[np.ndarray, float]], x_prev: np.ndarray) -> list[tuple[np.ndarray, float]]:
    return [(x, f) for x, f in log if x.tobytes() != x_prev.tobytes()]


def _harness_stop(fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x: np.ndarray,
                  f_prev: float | None, settings: Mapping[str, Any]) -> tuple[str, float]:
    f, g = fun_and_grad(x)
    if not math.isfinite(f):
        return "non-finite f", f
    if float(np.max(np.abs(g))) <= settings["gtol"]:
        return "gtol", f
    if f_prev is not None and (f_prev - f) <= settings["ftol"] * max(abs(f_prev), abs(f), 1.0):
        return "ftol", f
    return "", f


_COMPILED: dict[tuple[Any, ...], tuple[Any, Any, dict[str, Any], float]] = {}
"""(solver id, problem, settings, dtype) -> (initial state, compiled step, callback holder, setup seconds): the
state is an immutable pytree, so every run from the start reuses it."""


def _compiled_step(solver: Solver, problem: Problem, params: Any) -> tuple[Any, Any, dict[str, Any], float, bool]:
    """The solver's step for ``problem``, compiled once per process (the last item: compiled just now)."""
    import jax
    import jax.numpy as jnp

    from lbfgs_verify.problems.xp import objective_for

    hyper = dict(solver.settings.get("hyperparameters", {}))
    key = (solver.id, problem.name, tuple(sorted((k, repr(v)) for k, v in hyper.items())), str(params.dtype))
    if key in _COMPILED:
        return (*_COMPILED[key], False)
    fun, _ = objective_for(problem, "jax", jit=False)
    holder: dict[str, Any] = {"log": []}

    wide = np.dtype(params.dtype).itemsize == 8

    def record(x: Any, f: Any) -> None:  # bits back to floats (see objective)
        kind = np.float64 if wide else np.float32
        x = np.ascontiguousarray(np.asarray(x)).view(kind).reshape(-1).astype(np.float64)
        holder["log"].append((x, float(np.ascontiguousarray(np.asarray(f)).view(kind).reshape(-1)[0])))

    def objective(x: Any) -> Any:
        # The callback runs on XLA's thread, outside the thread-local jax.enable_x64, where a float64 argument
        # is handed over as float32 (measured, jax 0.10.2): its bits travel as uint32 words instead.
        f = fun(x)
        jax.debug.callback(record, jax.lax.bitcast_convert_type(x, jnp.uint32),
                           jax.lax.bitcast_convert_type(f, jnp.uint32), ordered=True)
        return f

    start = time.perf_counter()
    stepper = solver.target.adapter.make(**hyper)  # type: ignore[union-attr]
    state = stepper.init(params)
    compiled = jax.jit(lambda x, s: stepper.step(x, s, objective)).lower(params, state).compile()
    seconds = time.perf_counter() - start  # make, init, trace, lower, compile: the one-time cost
    _COMPILED[key] = (state, compiled, holder, seconds)
    return state, compiled, holder, seconds, True


COMPILE_SECONDS = {"tfp:lbfgs_minimize": 5.5, "jaxopt:LBFGS": 2.8, "optax:lbfgs": 1.8, "optimistix:LBFGS": 0.6}
"""A step's compile time per built-in stepper on Rosenbrock-2 (jax 0.10.2, CPU, 2 cores, measured in the quick
report). The compiles start longest first (a stepper not listed counts as the longest): on 2 threads tfp's
compile then runs beside the three others instead of after them (a one-problem report waited 2.5 s less)."""


def precompile(solvers: Sequence[Solver], problems: Sequence[Problem]) -> Callable[[], None]:
    """Start compiling every (stepper, problem) step in threads (XLA compiles outside the GIL: on 2 cores the
    one-time cost takes about half the wall time) and return a function that waits for them; a failure is left
    for the run to report. The report starts it before its untimed warm-up runs, so the two overlap."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from lbfgs_verify.problems.xp import flat_start, supports

    pairs = [(s, p) for s in solvers if s.kind == STEPPER for p in problems if supports(p) is None]
    pairs.sort(key=lambda pair: -COMPILE_SECONDS.get(pair[0].id, max(COMPILE_SECONDS.values())))  # longest first

    def one(pair: tuple[Solver, Problem]) -> None:
        import jax
        import jax.numpy as jnp

        solver, problem = pair
        try:
            with jax.enable_x64(True):  # thread-local: set in each worker
                _compiled_step(solver, problem, jnp.asarray(flat_start(problem, "numpy")))
        except Exception:  # record_stepper compiles again and reports the error
            pass

    if not pairs:
        return lambda: None
    pool = ThreadPoolExecutor(max_workers=min(len(pairs), os.cpu_count() or 1))
    futures = [pool.submit(one, pair) for pair in pairs]

    def wait() -> None:
        for future in futures:
            future.result()
        pool.shutdown()

    return wait


def record_stepper(solver: Solver, problem: Problem, max_iter: int) -> IterationRecord:
    """A stepper target on ``problem`` (jit, x64 on, the problem's dtype), stopped by the harness."""
    import jax
    import jax.numpy as jnp

    from lbfgs_verify.problems.xp import flat_start

    fun_and_grad = problem.numpy_fun()
    settings = {**solver.settings, "maxiter": max_iter}
    out = IterationRecord()
    with jax.enable_x64(True):
        params = jnp.asarray(flat_start(problem, "numpy"))
        state, step, holder, compile_seconds, fresh = _compiled_step(solver, problem, params)
        out.compile_seconds, out.compiled_now = compile_seconds, fresh
        x_prev = np.array(params, dtype=np.float64)
        out.iterates.append(x_prev)
        start = time.perf_counter()
        f_prev = None
        for _ in range(max_iter):
            holder["log"] = log = []
            t0 = time.perf_counter()
            try:
                params, state, _info = step(params, state)
                jax.block_until_ready(params)
            except Exception as exc:
                out.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                break
            out.step_seconds.append(time.perf_counter() - t0)
            now = time.perf_counter() - start
            out.evaluations += [(f, now) for _x, f in log]
            x = np.array(params, dtype=np.float64)
            out.trials.append(_split_trials(log, x_prev))
            out.iterates.append(x)
            x_prev = x
            reason, f_prev = _harness_stop(fun_and_grad, x, f_prev, settings)
            if reason:
                out.stop = reason
                break
            if len(out.evaluations) >= settings["maxfun"]:
                out.stop = "maxfun"
                break
        else:
            out.stop = "maxiter"
    return out


def record_functional(minimize: Callable[..., Any], problem: Problem, max_iter: int, *, stop_by: str = "",
                      **options: Any) -> IterationRecord:
    """A ``minimize(fun_and_grad, x0, maxiter=, callback=, **options)`` on ``problem``, every evaluation and
    accepted iterate recorded (the callback's argument copied: scipy hands out its live array)."""
    fun_and_grad = problem.numpy_fun()
    out = IterationRecord(iterates=[problem.flat_start().astype(np.float64)])
    log: list[tuple[np.ndarray, float]] = []
    start = time.perf_counter()
    last = [start]

    def recorded(x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fun_and_grad(np.asarray(x, dtype=np.float64))
        log.append((np.array(x, dtype=np.float64, copy=True), float(f)))
        out.evaluations.append((float(f), time.perf_counter() - start))
        return f, g

    def callback(xk: Any) -> None:
        x = np.array(getattr(xk, "x", xk), dtype=np.float64, copy=True)
        out.trials.append(_split_trials(log, out.iterates[-1]))
        out.iterates.append(x)
        log.clear()
        now = time.perf_counter()
        out.step_seconds.append(now - last[0])
        last[0] = now

    import warnings

    try:
        with warnings.catch_warnings():  # libraries warn per run (liblbfgs: rounding errors); the record tells
            warnings.simplefilter("ignore")
            minimize(recorded, out.iterates[0].copy(), maxiter=max_iter, callback=callback, **options)
        out.stop = "returned"
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return out


def record_optimizer(solver: Solver, problem: Problem, max_iter: int) -> IterationRecord:
    """A torch-shaped optimizer, one iteration per ``step()`` (``max_iter=1``; its own stopping tests)."""
    params = problem.make_params("cpu")
    settings = {**solver.settings, "max_iter": 1}  # max_eval (the budget's) stays: torch counts it per step()
    optimizer = solver.target.make(params, **settings)  # type: ignore[union-attr]
    log: list[tuple[np.ndarray, float]] = []
    out = IterationRecord(iterates=[_flat(params)])
    start = time.perf_counter()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = problem.objective(params)
        loss.backward()
        log.append((_flat(params), float(loss.detach())))
        out.evaluations.append((float(loss.detach()), time.perf_counter() - start))
        return loss

    try:
        for _ in range(max_iter):
            log.clear()
            t0 = time.perf_counter()
            optimizer.step(closure)
            out.step_seconds.append(time.perf_counter() - t0)
            x = _flat(params)
            if x.tobytes() == out.iterates[-1].tobytes():
                out.stop = "stopped moving (its own stopping tests)"
                break
            trials = _split_trials(log, out.iterates[-1])
            out.trials.append(trials or [(x, math.nan)])  # a fixed step: the point taken is the one trial
            out.iterates.append(x)
        else:
            out.stop = "maxiter"
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return out


def _flat(params: Sequence[torch.Tensor]) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in params]).double().numpy().copy()


def record_solver(solver: Solver, problem: Problem, max_iter: int) -> IterationRecord:
    """:class:`IterationRecord` of any solver kind."""
    if solver.kind == STEPPER:
        return record_stepper(solver, problem, max_iter)
    if solver.kind == FUNCTIONAL:
        adapter = solver.target.adapter  # type: ignore[union-attr]
        return record_functional(adapter.minimize, problem, max_iter, tolerance=None)
    if solver.kind in (SCIPY, MINIMIZE_LBFGSB):
        from lbfgs_verify.targets.adapters.scipy_lbfgsb import REFERENCE
        from lbfgs_verify.targets.adapters.scipy_lbfgsb import SCIPY as SCIPY_ADAPTER

        adapter = SCIPY_ADAPTER if solver.kind == SCIPY else REFERENCE
        return record_functional(adapter.minimize, problem, max_iter, memory=solver.settings.get("maxcor"))
    return record_optimizer(solver, problem, max_iter)


def convergence_run(solver: Solver, problem: Problem, max_iter: int) -> tuple[Any, IterationRecord]:
    """A :class:`~lbfgs_verify.report.runs.ConvergenceRun` of a stepper or functional solver, and its record."""
    from lbfgs_verify.problems.xp import supports
    from lbfgs_verify.report.runs import FAILED, OK, SKIPPED, ConvergenceRun, best_so_far_curve, relative_paths

    reason = supports(problem) if solver.kind == STEPPER else None
    if reason is not None:
        return ConvergenceRun(solver.id, problem.name, SKIPPED, f"no JAX definition: {reason}"), IterationRecord()
    start = time.perf_counter()
    record = record_solver(solver, problem, max_iter)
    seconds = time.perf_counter() - start - ((record.compile_seconds or 0.0) if record.compiled_now else 0.0)
    points = [(k + 1, f, t) for k, (f, t) in enumerate(record.evaluations)]
    if record.error:
        run = ConvergenceRun(solver.id, problem.name, FAILED, relative_paths(record.error),
                             evaluations=len(points), seconds=seconds)
    else:
        final_f = float(problem.numpy_fun()(record.iterates[-1])[0])
        run = ConvergenceRun(solver.id, problem.name, OK, final_f=final_f, evaluations=len(points),
                             iterations=len(record.iterates) - 1, seconds=seconds, curve=best_so_far_curve(points))
    run.compile_seconds = record.compile_seconds
    run.seconds_per_iteration = statistics.median(record.step_seconds) if record.step_seconds else None
    return run, record


BUDGET_SKIP = "not run at budget"


def budget_skip(budget: ReportBudget) -> str:
    """Why a stepper did not run a problem: the budget's compile allowance."""
    return (f"{BUDGET_SKIP} {budget.name}: a stepper's step compiles once per problem (1.5 to 10 s); this budget runs "
            f"{budget.stepper_problems} problem(s), --budget ci or thorough run more")


def profile_solvers(solver_ids: Sequence[str], runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The solvers of the performance profiles: those the budget let run every problem (a profile compares
    solvers on one problem set, Dolan & Moré 2002; a declared lack counts as a failure there, a budget skip
    leaves the solver out of the profile and the page says so)."""
    skipped = {r["solver"] for r in runs if r["status"] == "skipped" and str(r["message"]).startswith(BUDGET_SKIP)}
    return [s for s in solver_ids if s not in skipped]


def agreement_records(solvers: Sequence[Solver], problems: Sequence[Problem],
                      known: Mapping[tuple[str, str], IterationRecord], max_iter: int, *,
                      threads: int) -> dict[tuple[str, str], IterationRecord]:
    """An :class:`IterationRecord` per (solver, problem): the convergence run's where it has one (steppers and
    functional targets), else recorded now (torch-shaped optimizers one iteration per ``step()``, scipy)."""
    from lbfgs_verify.compare.environment import comparison_environment

    out: dict[tuple[str, str], IterationRecord] = {}
    for problem in problems:
        for solver in solvers:
            key = (solver.id, problem.name)
            if key in known and known[key].iterates:
                out[key] = known[key]
            elif solver.target is not None or solver.kind in (SCIPY, MINIMIZE_LBFGSB):
                with comparison_environment(threads):
                    out[key] = record_solver(solver, problem, max_iter)
    return out


# ------------------------------------------------------------------------------------------------- agreement


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    from lbfgs_verify.compare.scipy_trace import relative_difference

    return relative_difference(a, b)


def _first_step_name(step: float, g0: np.ndarray) -> str:
    """Which rule a first trial step length matches: 1/‖g₀‖₁, 1/‖g₀‖₂, 1 (each capped at 1 when smaller)."""
    n1, n2 = float(np.sum(np.abs(g0))), float(np.linalg.norm(g0))
    for name, value in (("min(1, 1/||g0||_1)", min(1.0, 1.0 / n1)), ("min(1, 1/||g0||_2)", min(1.0, 1.0 / n2)),
                        ("1/||g0||_1", 1.0 / n1), ("1/||g0||_2", 1.0 / n2), ("1", 1.0)):
        if math.isfinite(value) and abs(step - value) <= 1e-9 * max(1.0, value):
            return name
    return f"{step:.6g} (no declared rule)"


def _first_trial_step(record: IterationRecord, g0: np.ndarray) -> float | None:
    if not record.trials or not record.trials[0]:
        return None
    x_trial = record.trials[0][0][0]
    norm = float(np.linalg.norm(g0))
    return float(np.linalg.norm(x_trial - record.iterates[0])) / norm if norm > 0 else None


def _json_number(value: float) -> float | str:
    """``value``, or ``"inf"``/``"nan"`` where one run left the finite numbers (report.json is strict JSON)."""
    return float(value) if math.isfinite(value) else str(float(value))


def pair_agreement(a: str, b: str, ra: IterationRecord, rb: IterationRecord, ca: Conventions | None,
                   cb: Conventions | None, g0: np.ndarray) -> dict[str, Any]:
    """How long ``a`` and ``b`` agree on one problem and why they part (a classification, see the module)."""
    n = min(len(ra.iterates), len(rb.iterates))
    bitwise = tracked = 0
    parts_at, diff = None, 0.0
    for k in range(1, n):
        d = _relative(ra.iterates[k], rb.iterates[k])
        if d == 0.0 and bitwise == k - 1:
            bitwise = k
        if d > TRACK_TOLERANCE:
            parts_at, diff = k, d
            break
        tracked = k
    row: dict[str, Any] = {"a": a, "b": b, "iterations_a": len(ra.iterates) - 1,
                           "iterations_b": len(rb.iterates) - 1, "bitwise_iterations": bitwise,
                           "tracked_iterations": tracked, "parts_at": parts_at,
                           "difference_at_parting": None if parts_at is None else _json_number(diff)}
    if ra.error or rb.error:
        row.update(cause="failed", detail="; ".join(f"{s}: {r.error}" for s, r in ((a, ra), (b, rb)) if r.error))
        return row
    if parts_at is None:
        if len(ra.iterates) == len(rb.iterates):
            cause, detail = "never", f"within {TRACK_TOLERANCE:g} to the end of both runs"
        else:
            short, rec = (a, ra) if len(ra.iterates) < len(rb.iterates) else (b, rb)
            cause = "stopping rule"
            detail = f"{short} stops first, after iteration {len(rec.iterates) - 1} ({rec.stop or 'returned'})"
        row.update(cause=cause, detail=detail)
        return row
    row.update(_classify(parts_at, a, b, ra, rb, ca, cb, g0, bitwise))
    return row


def _trial_count(record: IterationRecord, k: int) -> int:
    return len(record.trials[k - 1]) if k - 1 < len(record.trials) else 0


def _classify(k: int, a: str, b: str, ra: IterationRecord, rb: IterationRecord, ca: Conventions | None,
              cb: Conventions | None, g0: np.ndarray, bitwise: int) -> dict[str, str]:
    """The cause of parting at iteration ``k`` (iterates within tolerance up to k − 1)."""
    if k == 1:
        sa, sb = _first_trial_step(ra, g0), _first_trial_step(rb, g0)
        if sa is not None and sb is not None and abs(sa - sb) > 1e-9 * max(sa, sb):
            declared = (f" (declared: {a} '{ca.first_step if ca else 'undeclared'}', {b} "
                        f"'{cb.first_step if cb else 'undeclared'}')")
            return {"cause": "first-step rule",
                    "detail": f"first trial step {a} {_first_step_name(sa, g0)}, {b} {_first_step_name(sb, g0)}"
                              + declared}
    ta, tb = _trial_count(ra, k), _trial_count(rb, k)
    first_a = ra.trials[k - 1][0][0] if ta else None
    first_b = rb.trials[k - 1][0][0] if tb else None
    same_first_trial = first_a is not None and first_b is not None and _relative(first_a, first_b) <= TRACK_TOLERANCE
    if same_first_trial and (ta > 1 or tb > 1):
        earlier = [i for i in range(1, k) if _trial_count(ra, i) > 1 or _trial_count(rb, i) > 1]
        which = "the first line search that interpolates" if not earlier else "a line search that interpolates"
        constants = ""
        if ca and cb and (ca.c1, ca.c2, ca.line_search) != (cb.c1, cb.c2, cb.line_search):
            constants = (f"; declared {a} {ca.line_search} c1={ca.c1:g} c2={ca.c2:g}, "
                         f"{b} {cb.line_search} c1={cb.c1:g} c2={cb.c2:g}")
        pa, pb = ra.trials[k - 1], rb.trials[k - 1]
        j = next((i for i in range(min(ta, tb)) if _relative(pa[i][0], pb[i][0]) > TRACK_TOLERANCE), min(ta, tb))
        where = (f"trial {j + 1} differs (each interpolates its own way)" if j < min(ta, tb)
                 else f"the first {j} trial(s) agree, then one accepts and the other tries more")
        return {"cause": "line search",
                "detail": f"{which} (iteration {k}): same first trial, {a} evaluated {ta} point(s), {b} {tb}; "
                          f"{where}" + constants}
    if not same_first_trial:
        if ca and cb and ca.memory_size != cb.memory_size and k - 1 > min(ca.memory_size, cb.memory_size):
            m = min(ca.memory_size, cb.memory_size)
            return {"cause": "memory size",
                    "detail": f"memory {a} {ca.memory_size}, {b} {cb.memory_size}: iteration {k} is past the "
                              f"{m} pairs the smaller memory keeps"}
        if k == 2 and ca and cb and ca.h0_scaling != cb.h0_scaling:
            return {"cause": "H0 rule", "detail": f"H0 {a} {ca.h0_scaling}, {b} {cb.h0_scaling}: the first "
                                                  "iteration that uses gamma"}
        if ca and cb and k == 2 and ca.first_step != cb.first_step and ta and tb:
            return {"cause": "trial-step rule",
                    "detail": f"iteration 2 tries a different first point: declared {a} '{ca.first_step}', "
                              f"{b} '{cb.first_step}'"}
    diff = _relative(ra.iterates[k], rb.iterates[k])
    return {"cause": "rounding",
            "detail": f"no declared rule differs at iteration {k}: bitwise for {bitwise} iteration(s), then "
                      f"rounding differences (kernels, summation order) grew to {diff:.2g}"
                      + (f"; trial points {ta} vs {tb}" if ta != tb else "")}


def agreement_matrix(solvers: Sequence[Solver], records: Mapping[tuple[str, str], IterationRecord],
                     problems: Sequence[Problem]) -> dict[str, Any]:
    """Every pair of solvers on every agreement problem (:func:`pair_agreement`)."""
    rows = []
    for problem in problems:
        g0 = problem.numpy_fun()(problem.flat_start().astype(np.float64))[1]
        present = [s for s in solvers if (s.id, problem.name) in records]
        for i, sa in enumerate(present):
            for sb in present[i + 1:]:
                row = pair_agreement(sa.id, sb.id, records[(sa.id, problem.name)], records[(sb.id, problem.name)],
                                     solver_conventions(sa), solver_conventions(sb), np.asarray(g0))
                rows.append({"problem": problem.name, **row})
    return {"tolerance": TRACK_TOLERANCE, "problems": [p.name for p in problems],
            "solvers": [s.id for s in solvers],
            "conventions": {s.id: (c.lines() if (c := solver_conventions(s)) else None) for s in solvers},
            "rows": rows}


# ------------------------------------------------------------------------------------------------- timing, resume


def jit_timing(records: Mapping[tuple[str, str], IterationRecord], solvers: Sequence[Solver]) -> list[dict[str, Any]]:
    """Per stepper and problem: compile seconds and the median seconds per iteration of the compiled step."""
    rows = []
    kind = {s.id: s.kind for s in solvers}
    for (sid, problem), record in records.items():
        if kind.get(sid) != STEPPER or not record.step_seconds:
            continue
        rows.append({"solver": sid, "problem": problem, "iterations": len(record.step_seconds),
                     "compile_seconds": round(record.compile_seconds or 0.0, 4),
                     "median_seconds_per_iteration": round(statistics.median(record.step_seconds), 7)})
    return rows


RESUME_PROPERTIES = ("stepper.resume_fresh_process",)


def resume_verdicts(solvers: Sequence[Solver], budget: str, *, threads: int) -> list[dict[str, Any]]:
    """The stepper resume property per stepper target; functional kinds (scipy's included) "not applicable".

    The steppers' checks run side by side in threads: each waits on its fresh process and on XLA's compiler,
    both outside the GIL (notes are per thread: :func:`lbfgs_verify.engine.runs.collecting_notes` keeps them in a
    context variable)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from lbfgs_verify.properties.runner import run_check
    from lbfgs_verify.report.runs import relative_paths
    from lbfgs_verify.targets.kinds import kind_skip_reason

    def check(solver: Solver) -> list[dict[str, Any]]:
        try:
            report = run_check(solver.target, "properties", budget, threads=threads,  # type: ignore[arg-type]
                               only=RESUME_PROPERTIES).to_json()
            results = report.get("results", [])
        except Exception as exc:
            results = [{"property": RESUME_PROPERTIES[0], "status": "error", "detail": f"{type(exc).__name__}: {exc}"}]
        rows = []
        for result in results:
            notes = result.get("notes") or []
            text = result.get("detail") or result.get("message") or (notes[0] if notes else "")
            rows.append({"solver": solver.id, "property": result.get("property", result.get("id")),
                         "status": result.get("status"),
                         "message": relative_paths(str(text).splitlines()[0]) if text else ""})
        return rows

    steppers = [s for s in solvers if s.kind == STEPPER]
    with ThreadPoolExecutor(max_workers=max(1, min(len(steppers), os.cpu_count() or 1))) as pool:
        checked = dict(zip([s.id for s in steppers], pool.map(check, steppers), strict=True))

    class _Functional:
        kind = FUNCTIONAL

    rows: list[dict[str, Any]] = []
    for solver in solvers:
        if solver.kind == STEPPER:
            rows += checked[solver.id]
        elif solver.kind in (FUNCTIONAL, SCIPY, MINIMIZE_LBFGSB):
            rows.append({"solver": solver.id, "property": RESUME_PROPERTIES[0], "status": "not applicable",
                         "message": kind_skip_reason(RESUME_PROPERTIES[0], _Functional())})
    return rows


# ------------------------------------------------------------------------------------------------- twin benchmark

TWIN_BENCHMARK = "reports/speed/lbfgsb_vs_scipy.json"
"""Written by ``benchmarks/test_lbfgsb_vs_scipy.py`` (pytest-benchmark JSON, one run per size)."""


def twin_benchmark(root: Any = None) -> dict[str, Any]:
    """The scipy twin (``minimize_lbfgsb``) against scipy's L-BFGS-B from :data:`TWIN_BENCHMARK` under ``root``
    (default: the working directory, then the checkout this package sits in), read as it is: n, bounds, paired
    ratios and the physical limit (compact-form bytes per run over measured read bandwidth)."""
    import json
    from pathlib import Path

    candidates = [Path(root) / TWIN_BENCHMARK] if root is not None else [
        Path.cwd() / TWIN_BENCHMARK, Path(__file__).resolve().parents[2] / TWIN_BENCHMARK]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return {"source": None, "rows": [],
                "note": f"no {TWIN_BENCHMARK} (run `python -m pytest benchmarks/test_lbfgsb_vs_scipy.py "
                        f"--benchmark-only --benchmark-json {TWIN_BENCHMARK}`)"}
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if "n" not in info:
            continue
        rows.append({"n": info["n"], "bounds": info.get("bounds"), "nit": info.get("nit"),
                     "maxiter": info.get("maxiter"), "rounds": info.get("rounds"),
                     "median_twin_s": info.get("median_twin_s"), "median_scipy_s": info.get("median_scipy_s"),
                     "median_ratio": info.get("median_ratio_twin_over_scipy"),
                     "min_ratio": info.get("min_ratio_twin_over_scipy"),
                     "max_ratio": info.get("max_ratio_twin_over_scipy"),
                     "physical_limit_s": info.get("physical_limit_s")})
    commit = (data.get("commit_info") or {}).get("id", "")[:10]
    note = (f"The scipy twin `lbfgs_verify.reference.minimize_lbfgsb` against scipy's L-BFGS-B on chained "
            f"Rosenbrock, from `{TWIN_BENCHMARK}` (written by `benchmarks/test_lbfgsb_vs_scipy.py` on "
            f"{data.get('datetime', '?')}, commit {commit or '?'}; one run per size, rounds interleaved, the ratio "
            "is the median over rounds of twin time / scipy time). Physical limit: the bytes the compact form moves "
            "per run over the measured read bandwidth.")
    return {"source": TWIN_BENCHMARK, "note": note, "rows": rows}
