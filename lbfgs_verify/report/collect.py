"""Run every section of the report once and gather the numbers into one JSON-able dict (``report.json``).

The plots, ``index.md`` and ``index.html`` are drawn from this dict only, so every number they show is in
``report.json``. Fields that change between two runs with the same versions and seed (timings, the date) are
listed in ``report["timing_fields"]`` (:data:`TIMING_FIELDS`); :func:`without_timings` removes them.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from lbfgs_verify.problems.base import Problem
from lbfgs_verify.report import agreement, kinds, profiles, verdicts
from lbfgs_verify.report.benchmarks import STEP_SPEED, benchmark_section
from lbfgs_verify.report.budget import REPORT_BUDGETS, ReportBudget
from lbfgs_verify.report.document import report_counts
from lbfgs_verify.report.environment import environment
from lbfgs_verify.report.options import SECTIONS
from lbfgs_verify.report.resume_grid import resume_splits
from lbfgs_verify.report.runs import ConvergenceRun, json_float, run_solver, scrub_paths
from lbfgs_verify.report.solvers import checkable_targets, report_solvers

SCHEMA_VERSION = 1
TITLE = "L-BFGS comparison report"
NOT_RUN = "not run in this report (--sections)"

TIMING_FIELDS: tuple[str, ...] = (
    "seconds",
    "section_seconds",
    "environment.date",
    "convergence.runs[*].seconds",
    "convergence.runs[*].compile_seconds",
    "convergence.runs[*].seconds_per_iteration",
    "convergence.jit",
    "convergence.runs[*].seconds_to_solve",
    "convergence.runs[*].curve.seconds",
    "convergence.summary[*].median_seconds_to_solve",
    "profiles.time",
    "check.reports.*.seconds",
    "check.reports.*.results[*].seconds",
    "fuzz.reports.*.seconds",
    "benchmarks",
)
"""Paths (``a.b``, ``*`` any key, ``[*]`` every list item) of the fields that vary between identical runs."""


@dataclass
class ReportOptions:
    """What ``lbfgs-verify report`` does.

    Attributes:
        out: the output directory.
        budget: how much work (:data:`lbfgs_verify.report.budget.REPORT_BUDGETS`).
        targets: ``module:attr`` of third-party optimizers to add to every section.
        problems: the problem set (default: :func:`lbfgs_verify.problems.suite_problems`).
        problem_set: the name it was chosen by (for the header and the reproduce command).
        seed: global RNG seed of every run and the fuzzer's seed.
        threads: torch thread count of every run (bits depend on it).
        lacks: features the targets declare they lack (merged with their own declarations).
        default_solvers: ids of the default solvers and built-in adapters to run (``--solvers``; ``None``: all
            five defaults and every installed built-in).
        benchmark_json: a pytest-benchmark JSON to read instead of running ``benchmark_dir``.
        benchmark_dir: the pytest-benchmark file or folder to run (``None``: no benchmarks).
        progress: show a progress bar (tqdm, on stderr).
        check_only: property ID prefixes for the verdict grid (``None``: the budget's choice, all by default).
        history_sizes: the history sizes of the bitwise configurations.
        sections: the optional sections to run (:data:`lbfgs_verify.report.options.SECTIONS`); the others are
            written as "not run", with empty numbers in ``report.json``.
        jobs: with 2 or more, the verdict sections (properties, fuzz, resume: no timings the report compares)
            run in a spawned worker process beside the timed ones (:func:`verdict_sections`); their numbers are
            those of one process.
    """

    out: Path
    budget: ReportBudget = field(default_factory=lambda: REPORT_BUDGETS["quick"])
    targets: tuple[str, ...] = ()
    problems: Sequence[Problem] | None = None
    problem_set: str = "suite"
    seed: int = 0
    threads: int = 1
    lacks: frozenset[str] = frozenset()
    default_solvers: tuple[str, ...] | None = None
    benchmark_json: Path | None = None
    benchmark_dir: Path | None = STEP_SPEED
    progress: bool = True
    check_only: tuple[str, ...] | None = None
    history_sizes: tuple[int, ...] = (100, 3)
    sections: frozenset[str] = frozenset(SECTIONS)
    jobs: int = 1


class Progress:
    """A tqdm bar over the report's units of work (disabled: a no-op). tqdm is the one progress dependency:
    small, pure Python, writes to stderr and degrades to plain lines when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            interactive = sys.stderr.isatty()
            self._bar = tqdm(total=total, desc="lbfgs-verify report", unit="run", dynamic_ncols=True,
                             mininterval=0.2 if interactive else 15.0)

    def stage(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)

    def tick(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _problem_json(problem: Problem, f_ref: float) -> dict[str, Any]:
    return {"name": problem.name, "dimension": problem.dimension, "dtype": str(problem.dtype).removeprefix("torch."),
            "f_star": json_float(problem.f_star), "f_ref": json_float(f_ref),
            "expectation": problem.expectation.name, "tags": sorted(problem.tags)}


@contextmanager
def _timed(section_seconds: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        section_seconds[name] = round(time.perf_counter() - start, 3)


def collect(options: ReportOptions, draw_convergence: Callable[[dict[str, Any]], Any] | None = None
            ) -> dict[str, Any]:
    """Run every section; return the report dict (see :data:`TIMING_FIELDS` for what varies).

    ``draw_convergence`` is called with the report's convergence fields (``sections``, ``solvers``, ``problems``,
    ``convergence.runs``, ``profiles``) as soon as they are final, before the verdict sections are joined: the
    plots of the convergence section are drawn while the worker process runs; what it returns is kept in
    ``report["_drawn"]`` for :func:`lbfgs_verify.report.write.render`."""
    from lbfgs_verify.problems import suite_problems
    from lbfgs_verify.properties.runner import select_properties

    start = time.perf_counter()
    budget = options.budget
    run = options.sections
    problems = list(options.problems) if options.problems is not None else suite_problems()
    solvers, targets, left_out = _solvers_of(options)
    stepper_names = kinds.stepper_problems(problems, budget.stepper_problems)
    agreement_problems = [p for p in problems if p.name in stepper_names] if "agreement" in run else []
    bitwise_solvers = [s for s in targets if s.spec != "torch.optim:LBFGS"]
    configs = agreement.bitwise_configurations(options.history_sizes) if "agreement" in run else []
    check_only = options.check_only if options.check_only is not None else budget.check_only
    n_properties = len(select_properties("properties", check_only)) if "properties" in run else 0
    verdict_ticks = n_properties * len(targets) + len(targets) * ("fuzz" in run) + len(solvers) * ("resume" in run)
    total = (len(solvers) * len(problems) * ("convergence" in run) + len(problems) * ("agreement" in run)
             + len(configs) * len(bitwise_solvers) + verdict_ticks + 1)
    progress = Progress(total, options.progress)
    section_seconds: dict[str, float] = {}
    blas_threads = threadpool_limits(limits=options.threads)  # BLAS threads fight over shared cores: time is noise
    background = (_start_verdicts(options, check_only) if options.jobs > 1 and {"properties", "fuzz", "resume"} & run
                  else None)
    try:
        compiled = kinds.precompile(solvers, [p for p in problems if p.name in stepper_names]
                                    if "convergence" in run else [])
        for solver in solvers if "convergence" in run else ():  # warm-up: the first run in a process pays for
            if solver.kind not in kinds.KINDS:  # imports and allocation (a stepper's compile is timed apart)
                run_solver(solver, problems[0], seed=options.seed, threads=options.threads)
        runs: list[ConvergenceRun] = []
        with _timed(section_seconds, "convergence"):
            progress.stage("convergence")
            if draw_convergence is not None:
                import lbfgs_verify.report.plots  # noqa: F401  (matplotlib: 2 s, while the compiles finish)
            compiled()  # the steppers' compiles, begun before the warm-up, end before any timed run
            for problem in problems if "convergence" in run else ():
                for solver in solvers:
                    if solver.kind == kinds.STEPPER and problem.name not in stepper_names:
                        runs.append(ConvergenceRun(solver.id, problem.name, "skipped", kinds.budget_skip(budget)))
                    else:
                        runs.append(run_solver(solver, problem, seed=options.seed, threads=options.threads))
                    progress.tick()
        run_dicts = [r.to_json() for r in runs]
        problem_dicts = [_problem_json(p, math.nan) for p in problems]
        f_refs = profiles.reference_values(problem_dicts, run_dicts)
        for entry in problem_dicts:
            entry["f_ref"] = json_float(f_refs[entry["name"]])
        _mark_solved(run_dicts, f_refs)

        with _timed(section_seconds, "agreement"):
            progress.stage("torch vs scipy (solution level)")
            solution = agreement.solution_comparisons(problems if "agreement" in run else [],
                                                      threads=options.threads, tick=progress.tick)
            progress.stage("agreement across kinds")
            records = {(r.solver, r.problem): r.record for r in runs if r.record is not None}
            kind_matrix = kinds.agreement_matrix(
                solvers, kinds.agreement_records(solvers, agreement_problems, records, budget.max_iter,
                                                 threads=options.threads), agreement_problems)
            progress.stage("bitwise vs torch")
            bitwise = agreement.bitwise_agreement(
                bitwise_solvers if "agreement" in run else [], problems[: budget.bitwise_problems], configs,
                steps=budget.bitwise_steps, seed=options.seed, threads=options.threads, tick=progress.tick)
        solver_ids = [s.id for s in solvers]
        profile_data = _profiles(kinds.profile_solvers(solver_ids, run_dicts) if "convergence" in run else [],
                                 [p.name for p in problems], run_dicts)
        drawn = draw_convergence({"sections": [name for name in SECTIONS if name in run],
                                  "solvers": [s.to_json() for s in solvers], "problems": problem_dicts,
                                  "convergence": {"runs": run_dicts}, "profiles": profile_data}) \
            if draw_convergence is not None else None
        bench: dict[str, Any] = {"source": None, "note": NOT_RUN, "rows": []}
        with _timed(section_seconds, "benchmarks"):  # with a worker: beside it, on the other core
            progress.stage("benchmarks")
            if "benchmarks" in run:
                options.out.mkdir(parents=True, exist_ok=True)
                bench = benchmark_section(json_path=options.benchmark_json, directory=options.benchmark_dir,
                                          out_dir=options.out, targets=[s.spec for s in solvers
                                                   if s.is_target and s.kind not in kinds.KINDS],
                                          max_time=budget.benchmark_max_time)
                bench["twin_vs_scipy"] = kinds.twin_benchmark()
            progress.tick()
        if background is not None:
            progress.stage("property verdicts, fuzz, resume (worker process)")
            verdict = _join(background, options, solvers, targets, check_only, progress, verdict_ticks)
        else:
            verdict = verdict_sections(options, solvers, targets, check_only, progress)
        checks, fuzz, resume = verdict["check"], verdict["fuzz"], verdict["resume"]
        section_seconds.update(verdict["seconds"])
        env = environment(seed=options.seed, threads=options.threads)
    finally:
        progress.close()
        blas_threads.restore_original_limits()
        if background is not None:
            background[0].shutdown(wait=False, cancel_futures=True)

    report = {
        "schema_version": SCHEMA_VERSION,
        "title": TITLE,
        "command": reproduce_command(options),
        "options": {"budget": budget.name, "problems": options.problem_set, "seed": options.seed,
                    "threads": options.threads, "targets": list(options.targets), "lacks": sorted(options.lacks),
                    "max_iter": budget.max_iter, "max_eval": budget.max_iter * 5 // 4},
        "timing_fields": list(TIMING_FIELDS),
        "sections": [name for name in SECTIONS if name in run],
        "environment": env,
        "solvers": [s.to_json() for s in solvers],
        "solvers_left_out": left_out,
        "problems": problem_dicts,
        "convergence": {
            "criterion": ("solved: final f and the lowest f so far within 1e-6 * max(1, |f_ref|) of f_ref = min(f*, "
                          "every solver's final f); curves: lowest f among the first k evaluations"),
            "tolerance": profiles.solve_threshold(0.0),
            "summary": _summary(solver_ids, run_dicts) if "convergence" in run else [],
            "runs": run_dicts,
            "stepper_problems": stepper_names if any(s.kind == kinds.STEPPER for s in solvers) else [],
            "jit": kinds.jit_timing({(r.solver, r.problem): r.record for r in runs if r.record is not None}, solvers),
        },
        "profiles": profile_data,
        "agreement": {
            "bitwise": bitwise,
            "lbfgsb_vs_scipy": {"iterate_tolerance": agreement.ITERATE_TOLERANCE,
                                "rows": agreement.lbfgsb_vs_scipy(runs) if "agreement" in run else []},
            "solution": solution,
            "kinds": kind_matrix,
            "final_f_vs_scipy": agreement.final_f_vs_scipy(run_dicts) if "agreement" in run else [],
        },
        "check": {"mode": "properties", "budget": budget.name, "only": list(check_only or ()),
                  "reports": scrub_paths(checks)},
        "fuzz": scrub_paths(fuzz),
        "resume": resume,
        "benchmarks": bench,
        "section_seconds": section_seconds,
        "seconds": round(time.perf_counter() - start, 3),
    }
    report["counts"] = report_counts(report)
    if drawn is not None:
        report["_drawn"] = drawn
    return report


def verdict_sections(options: ReportOptions, solvers: Sequence[Any], targets: Sequence[Any],
                     check_only: Sequence[str] | None, progress: Progress | None = None) -> dict[str, Any]:
    """The sections that give verdicts, not timings: the property check of every target, the state_dict fuzzer,
    resume at every split and the steppers' resume property. Returns ``{"check", "fuzz", "resume", "seconds"}``."""
    budget, run = options.budget, options.sections
    progress = progress or Progress(0, False)
    seconds: dict[str, float] = {}
    with _timed(seconds, "check"):
        progress.stage("property verdicts")
        checks = verdicts.check_reports(targets if "properties" in run else [], budget.name,
                                        threads=options.threads, only=check_only,
                                        on_result=lambda _result: progress.tick())
    fuzz: dict[str, Any] = {"available": True, "message": NOT_RUN, "examples": budget.fuzz_examples,
                            "reports": {}}
    resume: dict[str, Any] = {"problem": None, "steps": 0, "max_iter_per_step": 0, "transports": [], "rows": [],
                              "kinds": []}
    with _timed(seconds, "fuzz"):
        progress.stage("fuzz")

        def fuzz_progress(*done: Any) -> None:  # issue 8's on_progress(kind, name, counts)
            progress.stage(" ".join(["fuzz", *map(str, done[:2])]))

        if "fuzz" in run:
            fuzz = verdicts.fuzz_reports(targets, examples=budget.fuzz_examples, seed=options.seed,
                                         threads=options.threads, on_progress=fuzz_progress)
            progress.tick(len(targets))
    with _timed(seconds, "resume"):
        progress.stage("resume at every split")
        if "resume" in run:
            resume = resume_splits(solvers, steps=budget.resume_steps, seed=options.seed,
                                   threads=options.threads, tick=progress.tick)
            resume["kinds"] = kinds.resume_verdicts(solvers, budget.name, threads=options.threads)
    return {"check": checks, "fuzz": fuzz, "resume": resume, "seconds": seconds}


def _solvers_of(options: ReportOptions) -> tuple[list[Any], list[Any], list[Any]]:
    """The report's solvers, its checkable targets and the built-ins left out (not installed)."""
    builtins, left_out = kinds.builtin_solvers(options.budget, present=options.targets)
    solvers = report_solvers(options.budget, options.targets, options.lacks, defaults=options.default_solvers,
                             builtins=builtins)
    return solvers, checkable_targets(solvers), left_out


def _verdicts_in_worker(options: ReportOptions, check_only: Sequence[str] | None) -> dict[str, Any]:
    """Worker process: rebuild the solvers from the options (targets load by their specs) and run
    :func:`verdict_sections` under the report's BLAS thread limit."""
    solvers, targets, _left_out = _solvers_of(options)
    with threadpool_limits(limits=options.threads):
        return verdict_sections(options, solvers, targets, check_only)


def _start_verdicts(options: ReportOptions, check_only: Sequence[str] | None) -> tuple[Any, Any]:
    """Start :func:`verdict_sections` in one spawned process (spawned, not forked: a forked child of a process
    whose OpenMP or XLA threads have run can hang) while this process runs the timed sections; :func:`collect`
    shuts the pool down."""
    import dataclasses
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    portable = dataclasses.replace(options, problems=None, progress=False)  # problems hold closures
    return pool, pool.submit(_verdicts_in_worker, portable, check_only)


def _join(background: tuple[Any, Any], options: ReportOptions, solvers: Sequence[Any], targets: Sequence[Any],
          check_only: Sequence[str] | None, progress: Progress, n_ticks: int) -> dict[str, Any]:
    """The worker's sections; where the worker could not run them (a target its process cannot import, a
    crash), they run here instead, so the report is the same either way."""
    try:
        verdict = background[1].result()
    except Exception:
        return verdict_sections(options, solvers, targets, check_only, progress)
    progress.tick(n_ticks)
    return verdict


def _mark_solved(runs: list[dict[str, Any]], f_refs: dict[str, float]) -> None:
    for run in runs:
        cost = profiles.solved_cost(run, f_refs[run["problem"]])
        run["solved"] = cost is not None
        run["evaluations_to_solve"] = cost[0] if cost else None
        run["seconds_to_solve"] = round(cost[1], 6) if cost else None
        f_ref = f_refs[run["problem"]]
        final = run["final_f"]
        run["f_minus_f_ref"] = (json_float(float(final) - f_ref)
                                if run["status"] == "ok" and math.isfinite(f_ref) else None)


def _summary(solver_ids: Sequence[str], runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for sid in solver_ids:
        mine = [r for r in runs if r["solver"] == sid]
        solved = [r for r in mine if r["solved"]]
        rows.append({
            "solver": sid, "problems": len(mine), "solved": len(solved),
            "unsolved": sum(1 for r in mine if r["status"] == "ok" and not r["solved"]),
            "failed": sum(1 for r in mine if r["status"] == "failed"),
            "skipped": sum(1 for r in mine if r["status"] == "skipped"),
            "median_evaluations_to_solve": statistics.median([r["evaluations_to_solve"] for r in solved])
            if solved else None,
            "median_seconds_to_solve": round(statistics.median([r["seconds_to_solve"] for r in solved]), 6)
            if solved else None,
        })
    return rows


def _profiles(solver_ids: Sequence[str], problem_names: Sequence[str],
              runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by_key = {(r["solver"], r["problem"]): r for r in runs}
    taus = profiles.tau_grid()
    out: dict[str, Any] = {"tau": [round(t, 6) for t in taus]}
    for measure, key in (("evaluations", "evaluations_to_solve"), ("time", "seconds_to_solve")):
        costs = {s: [float(by_key[(s, p)][key]) if by_key[(s, p)]["solved"] else math.inf for p in problem_names]
                 for s in solver_ids}
        out[measure] = {s: [round(v, 6) for v in rho]
                        for s, rho in profiles.performance_profile(costs, taus).items()}
    return out


def reproduce_command(options: ReportOptions) -> str:
    """The ``lbfgs-verify report`` command line that makes this report again, every argument quoted for a POSIX
    shell or zsh (``shlex.quote``: problem names have brackets, which zsh globs)."""
    import shlex

    parts = ["lbfgs-verify report", f"--out {shlex.quote(options.out.name or 'report')}",
             f"--budget {options.budget.name}", f"--problems {shlex.quote(options.problem_set)}",
             f"--seed {options.seed}"]
    if options.sections != frozenset(SECTIONS):
        parts.append(f"--sections {','.join(s for s in SECTIONS if s in options.sections) or 'none'}")
    if options.threads != 1:
        parts.append(f"--threads {options.threads}")
    if options.default_solvers is not None:
        parts.append(f"--solvers {shlex.quote(','.join(options.default_solvers) or 'none')}")
    parts += [f"--target {shlex.quote(t)}" for t in options.targets]
    if options.lacks:
        parts.append(f"--lacks {','.join(sorted(options.lacks))}")
    return " ".join(parts)


def without_timings(report: Any, paths: Sequence[str] | None = None) -> Any:
    """A copy of ``report`` without the fields of ``paths`` (default: the report's own ``timing_fields``)."""
    import copy

    data = copy.deepcopy(report)
    for path in paths if paths is not None else data.get("timing_fields", TIMING_FIELDS):
        _drop(data, _split_path(path))
    return data


def _split_path(path: str) -> list[str]:
    return [part for part in path.replace("[*]", ".[*]").split(".") if part]


def _drop(node: Any, parts: list[str]) -> None:
    if not parts:
        return
    head, rest = parts[0], parts[1:]
    if head == "[*]":
        if isinstance(node, list):
            for item in node:
                _drop(item, rest)
        return
    if not isinstance(node, dict):
        return
    keys = list(node) if head == "*" else [head]
    for key in keys:
        if key not in node:
            continue
        if rest:
            _drop(node[key], rest)
        else:
            del node[key]


