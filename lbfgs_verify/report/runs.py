"""Convergence runs: every solver on every problem, recorded once, kept as the data of every later section.

Optimizers with torch's interface run through :func:`lbfgs_verify.engine.runs.record_run` (one ``step()`` with the
budget's ``max_iter``; every closure evaluation recorded by :mod:`lbfgs_verify.compare.trace`); scipy through
:func:`lbfgs_verify.compare.scipy_trace.record_scipy_lbfgsb`; ``minimize_lbfgsb`` returns its own trace. The curve of a
run is the lowest f among the first k evaluations against k (Moré & Wild, SIAM J. Optim. 20(1), 2009, the
convention of data and performance profiles), kept at the evaluations where it decreases. Evaluations are
counted as each solver counts them (torch: closure calls; scipy: its memoized ``nfev``).

A run whose solver raises, exceeds twice its evaluation limit or ends at a non-finite f is ``failed``, with the
message; the report goes on.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.compare.scipy_trace import TraceEntry, record_scipy_lbfgsb
from lbfgs_verify.engine.evidence import PropertyFailed
from lbfgs_verify.engine.runs import Scenario, exception_origin, record_run
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.report.solvers import MINIMIZE_LBFGSB, OPTIMIZER, SCIPY, Solver, lacks_skip_reason
from lbfgs_verify.targets.protocols import FUNCTIONAL, STEPPER

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"


class EvaluationLimitExceeded(RuntimeError):
    """The solver kept evaluating far past its evaluation limit (a runaway target)."""


class _TimedObjective:
    """The problem's objective, timestamping each call and stopping a runaway solver."""

    def __init__(self, objective: Callable[[Sequence[Tensor]], Tensor], limit: int) -> None:
        self._objective = objective
        self._limit = limit
        self.start = time.perf_counter()
        self.times: list[float] = []

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        if len(self.times) >= self._limit:
            raise EvaluationLimitExceeded(f"more than {self._limit} evaluations (twice the evaluation limit)")
        value = self._objective(params)
        self.times.append(time.perf_counter() - self.start)
        return value


@dataclass
class ConvergenceRun:
    """One solver on one problem.

    Attributes:
        status: ``ok``, ``failed`` or ``skipped`` (``solved`` is decided later, against all solvers' f).
        message: why it failed or was skipped.
        final_f: f at the point the solver ended on (``None`` when failed before any).
        evaluations: evaluations as the solver counts them.
        iterations: iterations (scipy ``nit``; optimizers ``state["n_iter"]`` when they expose it, else ``None``).
        seconds: wall time of the run (a timing field).
        curve: ``(evaluation k, lowest f among the first k, seconds at k)`` where the lowest f decreases, and
            the last evaluation.
        scipy_trace: the per-iteration trace of the scipy kinds (kept in memory for the agreement section).
    """

    solver: str
    problem: str
    status: str
    message: str = ""
    final_f: float | None = None
    evaluations: int = 0
    iterations: int | None = None
    seconds: float = 0.0
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    scipy_trace: list[TraceEntry] | None = None
    compile_seconds: float | None = None
    seconds_per_iteration: float | None = None
    record: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"solver": self.solver, "problem": self.problem, "status": self.status, "message": self.message,
                "final_f": json_float(self.final_f), "evaluations": self.evaluations, "iterations": self.iterations,
                "seconds": round(self.seconds, 6),
                "compile_seconds": None if self.compile_seconds is None else round(self.compile_seconds, 4),
                "seconds_per_iteration": (None if self.seconds_per_iteration is None
                                          else round(self.seconds_per_iteration, 7)),
                "curve": {"evaluations": [k for k, _, _ in self.curve],
                          "f_best": [json_float(f) for _, f, _ in self.curve],
                          "seconds": [round(t, 6) for _, _, t in self.curve]}}


def json_float(value: float | None) -> float | str | None:
    """A float for JSON: ``inf``/``nan`` as strings (strict JSON has no such numbers)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


def best_so_far_curve(values: Sequence[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """The points ``(k, f, t)`` where the lowest finite f so far decreases, plus the last point."""
    curve: list[tuple[int, float, float]] = []
    best = math.inf
    for k, f, t in values:
        if math.isfinite(f) and f < best:
            best = f
            curve.append((k, f, t))
    if values and (not curve or curve[-1][0] != values[-1][0]):
        curve.append((values[-1][0], best, values[-1][2]))
    return curve


def run_solver(solver: Solver, problem: Problem, *, seed: int, threads: int) -> ConvergenceRun:
    """Run ``solver`` on ``problem`` once; never raises for the solver's faults."""
    reason = lacks_skip_reason(solver, problem)
    if reason is not None:
        return ConvergenceRun(solver.id, problem.name, SKIPPED, reason)
    if solver.kind in (STEPPER, FUNCTIONAL):
        from lbfgs_verify.report.kinds import convergence_run

        with comparison_environment(threads):
            run, record = convergence_run(solver, problem, int(solver.settings["maxiter"]))
        run.record = record
        if run.status == OK and (run.final_f is None or not math.isfinite(run.final_f)):
            run.status, run.message = FAILED, f"ended at a non-finite f ({run.final_f})"
        return run
    limit = 2 * int(solver.settings.get("max_eval") or solver.settings.get("maxfun") or 15000) + 10
    timed = _TimedObjective(problem.objective, limit)
    timed_problem = dataclasses.replace(problem, objective=timed)
    with comparison_environment(threads):
        if solver.kind == OPTIMIZER:
            run = _run_optimizer(solver, problem, timed_problem, timed, seed)
        elif solver.kind in (SCIPY, MINIMIZE_LBFGSB):
            run = _run_scipy_kind(solver, problem, timed_problem, timed)
        else:
            raise ValueError(f"unknown solver kind {solver.kind!r}")
    if run.status == OK and (run.final_f is None or not math.isfinite(run.final_f)):
        run.status, run.message = FAILED, f"ended at a non-finite f ({run.final_f})"
    return run


_INSTALL_PREFIX = re.compile(r"(?:/[^\s'\"():,]+)*/(?:site|dist)-packages/")


def relative_paths(text: str) -> str:
    """``text`` with the working directory's prefix and everything up to ``site-packages/`` removed from file
    paths (``torch/optim/lbfgs.py:427``): reports are committed and shared, machine paths say nothing."""
    return _INSTALL_PREFIX.sub("", text.replace(os.getcwd() + os.sep, ""))


def scrub_paths(value: Any) -> Any:
    """:func:`relative_paths` applied to every string of a JSON-like structure."""
    if isinstance(value, str):
        return relative_paths(value)
    if isinstance(value, dict):
        return {k: scrub_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_paths(v) for v in value]
    return value


def failure_message(exc: BaseException) -> str:
    """One line: what raised, what and where (``path:LINE in function``; a :class:`PropertyFailed` from the
    engine already says where)."""
    if isinstance(exc, PropertyFailed):
        return relative_paths(str(exc).splitlines()[0])
    origin = exception_origin(exc)
    text = f"{type(exc).__name__}: {exc}"
    return relative_paths(f"{text} (at {origin})" if origin else text)


def _run_optimizer(solver: Solver, problem: Problem, timed_problem: Problem, timed: _TimedObjective,
                   seed: int) -> ConvergenceRun:
    scenario = Scenario(timed_problem, dict(solver.settings), steps=1)
    timed.start = time.perf_counter()
    try:
        recorded = record_run(solver.target, scenario, seed=seed, label=solver.id)
    except Exception as exc:
        return ConvergenceRun(solver.id, problem.name, FAILED, failure_message(exc),
                              evaluations=len(timed.times), seconds=time.perf_counter() - timed.start)
    seconds = time.perf_counter() - timed.start
    evaluations = recorded.trace.steps[0].evaluations
    points = [(k + 1, ev.loss, timed.times[k]) for k, ev in enumerate(evaluations)]
    final_f = problem.value(recorded.params)
    returned = recorded.trace.steps[0].returned
    run = ConvergenceRun(solver.id, problem.name, OK, final_f=final_f, evaluations=len(evaluations),
                         iterations=_n_iter(recorded.trace.steps[0].state), seconds=seconds,
                         curve=best_so_far_curve(points))
    if returned is not None and math.isnan(returned):
        run.status, run.message = FAILED, "step() returned NaN"
    return run


def _n_iter(state: Any) -> int | None:
    """``n_iter`` of torch's state layout (``state_dict()["state"][0]``) when the recorded state has it."""
    try:
        value = state["state"][0]["n_iter"]
    except (KeyError, IndexError, TypeError):
        return None
    return int(value) if isinstance(value, int) else None


def _run_scipy_kind(solver: Solver, problem: Problem, timed_problem: Problem, timed: _TimedObjective) -> ConvergenceRun:
    from lbfgs_verify.reference import minimize_lbfgsb

    fun = timed_problem.numpy_fun()
    x0 = problem.flat_start()
    f0 = None

    def first_counted(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal f0
        value, grad = fun(x)
        if f0 is None:
            f0 = value
        return value, grad

    timed.start = time.perf_counter()
    try:
        if solver.kind == SCIPY:
            result, trace = record_scipy_lbfgsb(first_counted, x0, solver.settings)
        else:
            result = minimize_lbfgsb(first_counted, x0, jac=True, options=dict(solver.settings))
            trace = list(result.trace)
    except Exception as exc:
        return ConvergenceRun(solver.id, problem.name, FAILED, failure_message(exc),
                              evaluations=len(timed.times), seconds=time.perf_counter() - timed.start)
    seconds = time.perf_counter() - timed.start
    points = [(1, float(f0 if f0 is not None else math.nan), timed.times[0] if timed.times else 0.0)]
    count = 1
    for entry in trace:
        count += int(entry["nfev"])
        points.append((count, float(entry["f"]), timed.times[min(count, len(timed.times)) - 1]))
    final_f = float(trace[-1]["f"]) if trace else points[0][1]
    return ConvergenceRun(solver.id, problem.name, OK, final_f=final_f, evaluations=int(result.nfev),
                          iterations=int(result.nit), seconds=seconds, curve=best_so_far_curve(points),
                          scipy_trace=trace)
