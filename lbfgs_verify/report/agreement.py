"""Where solvers that should agree do, and where not, at three levels.

- Bitwise, per configuration: every optimizer with torch's interface (the reference, each target) against
  ``torch.optim.LBFGS`` -- the same scenarios recorded with :func:`lbfgs_verify.engine.runs.record_run`, compared
  with :func:`lbfgs_verify.engine.runs.step_divergence` (parameters, returned loss, closure calls and their losses;
  the state is not read, so any state format is judged alike), on the CPU with a fixed thread count.
- Iteration level: ``minimize_lbfgsb`` against scipy's L-BFGS-B on the traces of the convergence runs
  (:func:`lbfgs_verify.compare.scipy_trace.compare_traces` for the counts; the first iteration whose iterates differ
  by more than :data:`ITERATE_TOLERANCE` in :func:`~lbfgs_verify.compare.scipy_trace.relative_difference`).
- Solution level: torch.optim.LBFGS against scipy with :func:`lbfgs_verify.compare.solutions.compare_solutions`
  (which explains each difference by a rule), and every solver's final f against scipy's with its tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.compare.scipy_trace import compare_traces, relative_difference
from lbfgs_verify.compare.solutions import F_RELATIVE_TOLERANCE, compare_solutions
from lbfgs_verify.engine.runs import Scenario, record_run, step_divergence
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.report.runs import ConvergenceRun, failure_message, json_float, relative_paths
from lbfgs_verify.report.solvers import Solver
from lbfgs_verify.targets.load import load_target

ITERATE_TOLERANCE = 1e-8
"""minimize_lbfgsb vs scipy: iterates 'differ' when ‖x_ours - x_scipy‖∞ / ‖x_scipy‖∞ exceeds this."""

BITWISE = "bitwise"
DIFFERS = "differs"
FAILED = "failed"
SKIPPED = "skipped"


def bitwise_configurations(history_sizes: Sequence[int] = (100, 3)) -> list[dict[str, Any]]:
    """line search None / strong_wolfe × float32 / float64 × each history size (3 makes the history roll)."""
    return [{"line_search_fn": ls, "dtype": dtype, "history_size": h}
            for ls in (None, "strong_wolfe") for dtype in ("float32", "float64") for h in history_sizes]


def configuration_name(config: Mapping[str, Any]) -> str:
    return f"{config['line_search_fn'] or 'no line search'}, {config['dtype']}, history {config['history_size']}"


def _config_lack(config: Mapping[str, Any], solver: Solver) -> str | None:
    from lbfgs_verify.engine.capabilities import skip_reason

    needs = [config["dtype"], "strong_wolfe" if config["line_search_fn"] else "no_line_search"]
    for feature in needs:
        if feature in solver.lacks:
            return skip_reason(feature)
    return None


def bitwise_agreement(
    solvers: Sequence[Solver], problems: Sequence[Problem], configs: Sequence[Mapping[str, Any]], *, steps: int,
    seed: int, threads: int, tick: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Each solver against torch.optim.LBFGS, per configuration; one cell per (configuration, solver)."""
    torch_target = load_target("torch.optim:LBFGS")
    cells = []
    for config in configs:
        dtype = getattr(torch, config["dtype"])
        hyper = {"line_search_fn": config["line_search_fn"], "history_size": config["history_size"]}
        scenarios = [Scenario(p.with_dtype(dtype), hyper, steps=steps) for p in problems]
        with comparison_environment(threads):
            expected = [record_run(torch_target, s, seed=seed, label="torch.optim.LBFGS").trace for s in scenarios]
        for solver in solvers:
            cell = {"configuration": configuration_name(config), "solver": solver.id, "problems": len(scenarios),
                    "bitwise_problems": 0, "status": BITWISE, "first_difference": None}
            lack = _config_lack(config, solver)
            if lack is not None:
                cell.update(status=SKIPPED, first_difference=lack)
                cells.append(cell)
                tick()
                continue
            for scenario, reference in zip(scenarios, expected, strict=True):
                try:
                    with comparison_environment(threads):
                        actual = record_run(solver.target, scenario, seed=seed, label=solver.id).trace
                except Exception as exc:
                    cell["status"] = FAILED
                    cell["first_difference"] = cell["first_difference"] or (
                        f"{scenario.problem.name}: {failure_message(exc)}")
                    continue
                divergence = step_divergence(reference.steps, actual.steps, compare_state=False)
                if divergence is None:
                    cell["bitwise_problems"] += 1
                    continue
                if cell["status"] == BITWISE:
                    cell["status"] = DIFFERS
                if cell["first_difference"] is None:
                    cell["first_difference"] = relative_paths(f"{scenario.problem.name}: {divergence}")
            cells.append(cell)
            tick()
    return {"compared_with": "torch.optim.LBFGS", "steps": steps,
            "configurations": [configuration_name(c) for c in configs],
            "problems": [p.name for p in problems], "cells": cells}


def lbfgsb_vs_scipy(runs: Sequence[ConvergenceRun]) -> list[dict[str, Any]]:
    """Per problem: minimize_lbfgsb's trace against scipy's (both from the convergence runs)."""
    by_key = {(r.solver, r.problem): r for r in runs}
    problems = list(dict.fromkeys(r.problem for r in runs))
    rows = []
    for name in problems:
        ours, theirs = by_key.get(("minimize_lbfgsb", name)), by_key.get(("scipy", name))
        if ours is None or theirs is None or ours.scipy_trace is None or theirs.scipy_trace is None:
            continue
        comparison = compare_traces(ours.scipy_trace, theirs.scipy_trace, first_k=10**9)
        first_beyond = None
        worst = 0.0
        for i in range(min(len(ours.scipy_trace), len(theirs.scipy_trace))):
            diff = relative_difference(ours.scipy_trace[i]["x"], theirs.scipy_trace[i]["x"])
            worst = max(worst, diff)
            if first_beyond is None and diff > ITERATE_TOLERANCE:
                first_beyond = i
        rows.append({"problem": name, "iterations_minimize_lbfgsb": comparison.iterations[0],
                     "iterations_scipy": comparison.iterations[1], "nfev_minimize_lbfgsb": ours.evaluations,
                     "nfev_scipy": theirs.evaluations, "counts_identical": comparison.counts_identical,
                     "first_count_difference": comparison.first_count_difference,
                     "first_iteration_beyond_tolerance": first_beyond,
                     "max_relative_iterate_difference": json_float(worst)})
    return rows


def solution_comparisons(problems: Sequence[Problem], *, threads: int,
                         tick: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
    """torch.optim.LBFGS (strong Wolfe, scipy's numbers) vs scipy, explained, per problem."""
    rows = []
    for problem in problems:
        with comparison_environment(threads):
            c = compare_solutions(problem)
        rows.append({"problem": c.problem, "f_scipy": json_float(c.scipy.f), "f_torch": json_float(c.torch.f),
                     "evaluations_scipy": c.scipy.evaluations, "evaluations_torch": c.torch.evaluations,
                     "stop_scipy": c.scipy.stop_rule.name, "stop_torch": c.torch.stop_rule.name,
                     "verdict": c.verdict.name, "explanation": c.explanation.name, "reason": c.reason})
        tick()
    return rows


def final_f_vs_scipy(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every run's final f against scipy's on the same problem: ``same``, ``lower``, ``higher`` or ``failed``."""
    scipy_f = {r["problem"]: r["final_f"] for r in runs if r["solver"] == "scipy" and r["status"] == "ok"}
    rows = []
    for run in runs:
        if run["solver"] == "scipy" or run["problem"] not in scipy_f:
            continue
        if run["status"] != "ok":
            outcome = run["status"]
        else:
            f, g = float(run["final_f"]), float(scipy_f[run["problem"]])
            tolerance = F_RELATIVE_TOLERANCE * max(1.0, abs(f), abs(g))
            outcome = "same" if abs(f - g) <= tolerance or f == g else ("lower" if f < g else "higher")
            if math.isnan(f):
                outcome = "failed"
        rows.append({"solver": run["solver"], "problem": run["problem"], "outcome": outcome})
    return rows
