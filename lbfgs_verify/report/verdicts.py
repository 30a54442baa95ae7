"""The verdicts of the property suite and of the state_dict fuzzer, per target.

The check section is :func:`lbfgs_verify.properties.runner.run_check` (``RunReport.to_json()`` kept whole);
the fuzz section is ``lbfgs_verify.fuzz.run_fuzz`` (``FuzzReport.to_json()`` kept whole) when this version has
the fuzzer, and says so when not. Declared lacks are passed to both where they accept them.
"""

from __future__ import annotations

import importlib
import inspect
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lbfgs_verify.report.solvers import Solver

DEFAULT_FINDINGS = frozenset({"diverged", "crashed", "error-at-step", "silent"})
"""Fuzz outcomes that are defects of the target, when ``lbfgs_verify.fuzz`` does not export ``FINDINGS``."""
NEUTRAL_FUZZ_OUTCOMES = frozenset({"skipped", "skip"})
FUZZ_UNAVAILABLE = "fuzzer not available in this version"


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def check_reports(
    targets: Sequence[Solver], budget: str, *, threads: int, only: Sequence[str] | None = None,
    on_result: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """``run_check`` (mode ``properties``) for each target; a target that cannot be checked gets its reason."""
    from lbfgs_verify.properties.runner import interface_problem, run_check

    reports: dict[str, Any] = {}
    for solver in targets:
        problem = interface_problem(solver.target, solver.lacks)  # type: ignore[arg-type]
        if problem is not None:
            reports[solver.spec] = {"error": f"cannot be checked: {problem}"}  # type: ignore[index]
            continue
        extra = {"lacks": solver.lacks} if _accepts(run_check, "lacks") and solver.lacks else {}
        try:
            report = run_check(solver.target, "properties", budget, threads=threads, only=only,  # type: ignore[arg-type]
                               on_result=on_result, **extra)
        except Exception as exc:  # the runner itself failed: show it, go on
            reports[solver.spec] = {"error": f"run_check raised {type(exc).__name__}: {exc}"}  # type: ignore[index]
            continue
        reports[solver.spec] = report.to_json()  # type: ignore[index]
    return reports


def verdict_grid(reports: Mapping[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """(properties, targets, status per (property, target)) from the ``RunReport.to_json()`` dicts."""
    targets = list(reports)
    properties: list[str] = []
    status: dict[tuple[str, str], str] = {}
    for target, report in reports.items():
        for result in report.get("results", []):
            if result["property"] not in properties:
                properties.append(result["property"])
            status[(result["property"], target)] = result["status"]
    return sorted(properties), targets, status


def load_fuzzer() -> tuple[Callable[..., Any] | None, frozenset[str]]:
    """``(lbfgs_verify.fuzz.run_fuzz, its FINDINGS)``, or ``(None, ...)`` when this version has no fuzzer."""
    try:
        module = importlib.import_module("lbfgs_verify.fuzz")
    except ImportError:
        return None, DEFAULT_FINDINGS
    return getattr(module, "run_fuzz", None), frozenset(getattr(module, "FINDINGS", DEFAULT_FINDINGS))


def fuzz_reports(
    targets: Sequence[Solver], *, examples: int, seed: int, threads: int = 1,
    on_progress: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """``run_fuzz`` for each target, or ``{"available": False, "message": ...}``."""
    run_fuzz, findings = load_fuzzer()
    if run_fuzz is None:
        return {"available": False, "message": FUZZ_UNAVAILABLE, "examples": examples, "reports": {}}
    reports: dict[str, Any] = {}
    for solver in targets:
        kwargs: dict[str, Any] = {"examples": examples, "seed": seed, "lacks": frozenset(solver.lacks)}
        if _accepts(run_fuzz, "threads"):
            kwargs["threads"] = threads
        if on_progress is not None:
            kwargs["on_progress"] = on_progress
        try:
            reports[solver.spec] = run_fuzz(solver.target, **kwargs).to_json()  # type: ignore[index]
        except Exception as exc:
            reports[solver.spec] = {"error": f"run_fuzz raised {type(exc).__name__}: {exc}"}  # type: ignore[index]
    return {"available": True, "message": "", "examples": examples, "finding_outcomes": sorted(findings),
            "reports": reports}


def fuzz_matrix(report: Mapping[str, Any]) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
    """(rows ``valid: ROUTE`` / ``corrupt: CLASS``, outcomes, generated cases per (row, outcome)) of one FuzzReport
    JSON: its ``matrix`` (``{"routes": {route: {outcome: n}}, "classes": {...}}``, the counts of every generated
    case); a report without one counts its ``results`` entries."""
    counts: Counter[tuple[str, str]] = Counter()
    matrix = report.get("matrix")
    if matrix:
        for kind, key in (("valid", "routes"), ("corrupt", "classes")):
            for name, outcomes in (matrix.get(key) or {}).items():
                for outcome, n in outcomes.items():
                    counts[(f"{kind}: {name}", str(outcome))] += int(n)
    else:
        for result in report.get("results", []):
            kind = result.get("kind", "?")
            label = f"{kind}: {result.get('route') if kind == 'valid' else result.get('class')}"
            counts[(label, str(result.get("outcome", "?")))] += 1
    rows = list(dict.fromkeys(label for label, _ in counts))
    outcomes = list(dict.fromkeys(outcome for _, outcome in counts))
    order = {o: i for i, o in enumerate(("exact", "rejected-at-load", "warned-at-load", "absorbed", "diverged",
                                          "crashed", "error-at-step", "silent", "rejected-but-changed",
                                          "code-executed", "skipped"))}
    outcomes.sort(key=lambda o: (order.get(o, len(order)), o))
    rows.sort(key=lambda r: (not r.startswith("valid"), r))
    return rows, outcomes, dict(counts)


def fuzz_cases(report: Mapping[str, Any]) -> int:
    """Generated cases of one FuzzReport JSON (the sum of its matrix)."""
    return sum(fuzz_matrix(report)[2].values())


def fuzz_findings(report: Mapping[str, Any], findings: Iterable[str] = DEFAULT_FINDINGS) -> int:
    """Generated cases whose outcome is a finding (a defect of the target)."""
    findings = frozenset(findings)
    return sum(n for (_, outcome), n in fuzz_matrix(report)[2].items() if outcome in findings)
