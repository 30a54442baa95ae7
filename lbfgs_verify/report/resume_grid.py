"""Resume at every split point of one trajectory, per solver and transport: bitwise yes or no.

One uninterrupted run of :data:`RESUME_PROBLEM` is recorded with :func:`lbfgs_verify.engine.runs.record_run`,
saving before every step through each transport of :data:`TRANSPORTS`; for every split k the saved payload is
restored in a disturbed process (:func:`lbfgs_verify.engine.runs.resume_run`) and continued to the end, and the
continuation is compared bitwise with the uninterrupted steps k.. (:func:`lbfgs_verify.engine.runs.step_divergence`;
parameters, returned loss, closure calls; the state format is not read). scipy's L-BFGS-B has no state to save
(scipy issue #19522); ``minimize_lbfgsb`` is resumed through its optimizer form
``lbfgs_verify.reference.LBFGSB(max_iter_per_step=1)``, which runs the same iteration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.engine.runs import (
    DEEPCOPY_OPTIMIZER,
    DEEPCOPY_STATE_DICT,
    PICKLE_OPTIMIZER,
    PICKLE_STATE_DICT,
    TORCH_SAVE,
    Scenario,
    Transport,
    record_run,
    resume_run,
    step_divergence,
)
from lbfgs_verify.problems import mgh_problem
from lbfgs_verify.report.runs import failure_message, relative_paths
from lbfgs_verify.report.solvers import LBFGSB_SPEC, MINIMIZE_LBFGSB, OPTIMIZER, SCIPY, Solver
from lbfgs_verify.targets.load import load_target

TRANSPORTS: tuple[Transport, ...] = (TORCH_SAVE, DEEPCOPY_STATE_DICT, PICKLE_STATE_DICT, DEEPCOPY_OPTIMIZER,
                                     PICKLE_OPTIMIZER)
MAX_ITER_PER_STEP = 3
"""Iterations per ``step()`` of the resumed optimizers: short steps give many split points mid-descent."""


def resume_problem() -> Any:
    """Extended Rosenbrock, n = 10, from the standard start: curved, so the history matters at every split."""
    return mgh_problem(21, n=10)


def _resume_setup(solver: Solver) -> tuple[Any, dict[str, Any]] | None:
    if solver.kind == OPTIMIZER:
        hyper = {"line_search_fn": solver.settings.get("line_search_fn"), "max_iter": MAX_ITER_PER_STEP}
        return solver.target, hyper
    if solver.kind == MINIMIZE_LBFGSB:
        return load_target(LBFGSB_SPEC), {"max_iter_per_step": 1}
    return None


def resume_splits(solvers: Sequence[Solver], *, steps: int, seed: int, threads: int,
                  tick: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """One row per (solver, transport): ``bitwise`` / ``differs`` / ``failed`` at each split 0..steps-1."""
    problem = resume_problem()
    rows = []
    for solver in solvers:
        setup = _resume_setup(solver)
        if setup is None:
            reason = ("scipy's L-BFGS-B keeps no state between calls: it cannot be resumed (scipy #19522)"
                      if solver.kind == SCIPY else "a stepper or functional target: see the verdicts of the "
                      "other kinds below" if solver.kind in ("stepper", "functional") else "not resumable")
            rows.append({"solver": solver.id, "transport": None, "splits": [], "note": reason})
            tick()
            continue
        target, hyper = setup
        via = LBFGSB_SPEC if solver.kind == MINIMIZE_LBFGSB else solver.spec
        scenario = Scenario(problem, hyper, steps=steps)
        for transport in TRANSPORTS:
            row: dict[str, Any] = {"solver": solver.id, "transport": transport.name, "optimizer": via,
                                   "splits": [], "note": ""}
            try:
                with comparison_environment(threads):
                    uninterrupted = record_run(target, scenario, save=transport.save, seed=seed)
            except Exception as exc:
                row["note"] = f"the uninterrupted run failed: {failure_message(exc)}"
                rows.append(row)
                continue
            for split in range(steps):
                row["splits"].append(_one_split(target, scenario, uninterrupted, split, transport, steps, threads))
            rows.append(row)
        tick()
    return {"problem": problem.name, "steps": steps, "max_iter_per_step": MAX_ITER_PER_STEP,
            "transports": [t.name for t in TRANSPORTS], "rows": rows}


def _one_split(target: Any, scenario: Scenario, uninterrupted: Any, split: int, transport: Transport, steps: int,
               threads: int) -> dict[str, Any]:
    try:
        with comparison_environment(threads):
            resumed = resume_run(target, scenario, uninterrupted, split, transport, steps - split)
    except Exception as exc:
        return {"split": split, "status": "failed", "detail": failure_message(exc)}
    divergence = step_divergence(uninterrupted.trace.steps[split:], resumed, compare_state=False)
    if divergence is None:
        return {"split": split, "status": "bitwise", "detail": ""}
    return {"split": split, "status": "differs", "detail": relative_paths(str(divergence))}
