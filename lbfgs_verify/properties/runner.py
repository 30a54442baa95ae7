"""Running many properties against one target: selection, the report header, the table, JSON, docs.

Used by the ``lbfgs-verify check`` command (:mod:`lbfgs_verify.cli`) and, for the header and selection, by
the pytest plugin (:mod:`lbfgs_verify.plugin`). Every property runs in
:func:`lbfgs_verify.engine.comparison_environment` (fixed thread count, global RNG restored afterwards).
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from lbfgs_verify.properties.base import (
    BUDGETS,
    MODES,
    REGISTRY,
    Budget,
    CheckContext,
    Property,
    PropertyResult,
    Status,
    load_all,
    properties_for,
    run_property,
)
from lbfgs_verify.targets import Target

JSON_SCHEMA_VERSION = 1
"""Bumped when a field of the ``--json`` report changes meaning (fields may be added without a bump)."""


class SelectionError(ValueError):
    """``--only`` named no registered property; the message lists what exists."""


def library_versions() -> dict[str, str]:
    """Versions of python, torch, numpy, scipy, hypothesis and lbfgs_verify (``"missing"`` if not importable)."""
    versions = {"python": platform.python_version()}
    for name in ("torch", "numpy", "scipy", "hypothesis", "lbfgs_verify"):
        try:
            versions[name] = str(getattr(importlib.import_module(name), "__version__", "unknown"))
        except Exception:
            versions[name] = "missing"
    return versions


def target_version(target: Target) -> str:
    try:
        return target.version
    except Exception:
        return "unknown"


def interface_problem(target: Target) -> str | None:
    """Why ``target`` cannot be checked at all, or ``None``: it must accept torch.optim.LBFGS's constructor
    arguments (given explicitly, at torch's defaults) and return an object with ``step``, ``state_dict`` and
    ``load_state_dict``."""
    import torch

    arguments = {"lr": 1, "max_iter": 20, "max_eval": None, "tolerance_grad": 1e-7, "tolerance_change": 1e-9,
                 "history_size": 100, "line_search_fn": None}
    try:
        optimizer = target.make([torch.zeros(2, requires_grad=True)], **arguments)
    except Exception as exc:
        return (f"{target.spec}([tensor], lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, "
                f"tolerance_change=1e-9, history_size=100, line_search_fn=None) raised {type(exc).__name__}: {exc}")
    missing = [m for m in ("step", "state_dict", "load_state_dict") if not callable(getattr(optimizer, m, None))]
    if missing:
        return (f"{target.spec}(...) returned a {type(optimizer).__name__} without {', '.join(missing)}: not an "
                f"optimizer with torch.optim.LBFGS's interface")
    return None


def select_properties(mode: str, only: Iterable[str] | None = None) -> list[Property]:
    """Properties of ``mode`` (stable order); ``only`` keeps IDs equal to or starting with any given prefix.

    A prefix is matched on whole dotted components first (``state`` selects ``state.*``), then as plain text
    (``resume.pickle`` selects ``resume.pickle_optimizer`` and ``resume.pickle_state_dict``).
    """
    chosen = properties_for(mode)
    patterns = [p.strip() for item in (only or ()) for p in item.split(",") if p.strip()]
    if not patterns:
        return chosen
    unknown = [p for p in patterns if not any(prop.id.startswith(p) for prop in REGISTRY.values())]
    if unknown:
        raise SelectionError(f"--only {', '.join(unknown)}: no property ID starts with that; "
                             f"see `lbfgs-verify check --list` (known: {', '.join(sorted(REGISTRY))})")
    return [prop for prop in chosen if any(prop.id.startswith(p) for p in patterns)]


def profile_description(budget: Budget) -> str:
    """``hypothesis profile ci (derandomized), max_examples 15`` -- what makes the run reproducible."""
    settings = budget.settings()
    seed = "derandomized: the same examples every run" if settings.derandomize else (
        "random examples: a failure prints @reproduce_failure to replay it")
    return f"hypothesis profile {budget.profile} ({seed}), max_examples {budget.max_examples}"


@dataclass
class RunReport:
    """The outcome of ``lbfgs-verify check``: what ran where, and one result per property."""

    target: str
    target_version: str
    mode: str
    budget: Budget
    threads: int
    versions: dict[str, str]
    results: list[PropertyResult] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {status.value: 0 for status in Status}
        for result in self.results:
            out[result.status.value] += 1
        return out

    @property
    def exit_code(self) -> int:
        """0 when every property holds or is skipped, 1 when any fails or errors."""
        return 1 if any(r.status in (Status.FAIL, Status.ERROR) for r in self.results) else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "target": self.target,
            "target_version": self.target_version,
            "mode": self.mode,
            "budget": self.budget.name,
            "profile": self.budget.profile,
            "max_examples": self.budget.max_examples,
            "threads": self.threads,
            "versions": self.versions,
            "results": [{**r.to_json(), "title": REGISTRY[r.property].title if r.property in REGISTRY else ""}
                        for r in self.results],
            "summary": self.counts(),
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
        }


def header_lines(target: str, version: str, mode: str, budget: Budget, threads: int,
                 versions: dict[str, str]) -> list[str]:
    """The lines that say exactly what was checked and how (printed by the CLI and the pytest plugin)."""
    libs = ", ".join(f"{k} {v}" for k, v in versions.items())
    return [
        f"lbfgs-verify: target {target} (version {version})",
        f"lbfgs-verify: {libs}",
        f"lbfgs-verify: mode {mode}, budget {budget.name} (steps {budget.steps}, full continuations "
        f"{budget.full_continuations}), {profile_description(budget)}, threads {threads}",
    ]


STATUS_LABEL = {Status.PASS: "pass", Status.FAIL: "FAIL", Status.ERROR: "ERROR", Status.SKIP: "skip"}


def table_header(id_width: int) -> str:
    return f"{'PROPERTY':<{id_width}}  {'STATUS':<6}  {'TIME':>6}  REASON"


def table_row(result: PropertyResult, id_width: int, reason_width: int = 140) -> str:
    reason = result.reason
    if len(reason) > reason_width:
        reason = reason[: reason_width - 3] + "..."
    return (f"{result.property:<{id_width}}  {STATUS_LABEL[result.status]:<6}  {result.seconds:>5.1f}s  "
            f"{reason}").rstrip()


def run_check(
    target: Target,
    mode: str = "properties",
    budget: str | Budget = "ci",
    *,
    threads: int = 1,
    only: Sequence[str] | None = None,
    device: str = "cpu",
    on_result: Callable[[PropertyResult], None] | None = None,
    properties: Sequence[Property] | None = None,
) -> RunReport:
    """Run the selected properties of ``mode`` against ``target`` and collect a :class:`RunReport`."""
    from lbfgs_verify.engine import comparison_environment

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    chosen_budget = BUDGETS[budget] if isinstance(budget, str) else budget
    selected = list(properties) if properties is not None else select_properties(mode, only)
    report = RunReport(target.spec, target_version(target), mode, chosen_budget, threads, library_versions())
    ctx = CheckContext(target=target, mode=mode, budget=chosen_budget, device=device, threads=threads)
    start = time.perf_counter()
    for prop in selected:
        with comparison_environment(threads):
            result = run_property(prop, ctx)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    report.seconds = time.perf_counter() - start
    return report


def print_report_details(report: RunReport, out: TextIO | None = None, max_lines: int = 60) -> None:
    """The full detail (falsifying example, first differing step, key, ULPs) of every failure and error."""
    out = sys.stdout if out is None else out
    bad = [r for r in report.results if r.status in (Status.FAIL, Status.ERROR)]
    if not bad:
        return
    print("", file=out)
    print("Details of failures and errors:", file=out)
    for result in bad:
        print(f"\n[{STATUS_LABEL[result.status]}] {result.property}: {REGISTRY[result.property].title}", file=out)
        lines = result.detail.splitlines()
        for line in lines[:max_lines]:
            print(f"    {line}", file=out)
        if len(lines) > max_lines:
            print(f"    ... ({len(lines) - max_lines} more lines; see --json)", file=out)


def summary_line(report: RunReport) -> str:
    counts = report.counts()
    return (f"{counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, {counts['skip']} skipped "
            f"in {report.seconds:.1f}s -> exit {report.exit_code}")


# --------------------------------------------------------------------------------------------------------
# Documentation generated from the registry
# --------------------------------------------------------------------------------------------------------

_CATEGORY_INTRO = {
    "behaviour": "Behaviour the optimizer must show on ordinary and awkward inputs.",
    "conformance": "Only in `--mode conformance`: bitwise equality with `torch.optim.LBFGS` on the CPU with the same "
                   "thread count, and state interchange with it in both directions.",
    "convergence": "Convergence on published test problems.",
    "cuda": "Moving state between the CPU and CUDA mid-run; skipped when `torch.cuda.is_available()` is False. "
            "Tolerances are stated in each title.",
    "mathematics": "Mathematical properties of the L-BFGS iteration.",
    "portability": "Resume under another torch thread count (reductions split differently on long vectors), and "
                   "the shipped golden traces: judged with the `cuda.*` tolerance machinery, the tolerance derived "
                   "from measurements (README, section Portability).",
    "resume": "Save at a `step()` boundary, restore, continue: bitwise the uninterrupted run on the CPU. Every split "
              "point gets a one-step check, `full_continuations` random splits are continued to the end; the global "
              "RNGs are reseeded, the parameters are fresh tensors and the saved payload is rebuilt for each restore.",
    "seed": "Claims of the seed article that are requirements on a target (its other claims are facts about torch, "
            "checked in `tests/fast/test_seed_claims.py`).",
    "state": "The state-dict contracts that resume relies on, one per property so that a failure names the broken "
             "contract.",
}


def properties_markdown() -> str:
    """``docs/properties.md``: every registered property ID with its modes, title and the bug class it catches."""
    load_all()
    by_category: dict[str, list[Property]] = {}
    for prop in sorted(REGISTRY.values(), key=lambda p: (p.category, p.id)):
        by_category.setdefault(prop.category, []).append(prop)
    lines = [
        "# Property IDs",
        "",
        "<!-- Generated by lbfgs_verify.properties.runner.properties_markdown(); do not edit by hand.",
        "     Regenerate with `lbfgs-verify docs --write docs/properties.md`. -->",
        "",
        "Stable identifiers of the checks run by `lbfgs-verify check TARGET` and by the pytest suite",
        "(`pytest --pyargs lbfgs_verify.suite --lbfgs-target TARGET`). Select some with `--only ID-or-prefix`",
        "(CLI) or `--lbfgs-only` (pytest). `properties` mode runs every property marked `properties`;",
        "`conformance` mode runs those marked `conformance` (all of the above plus bitwise equality with",
        "`torch.optim.LBFGS`).",
        "",
        "Budgets (`--budget`): " + "; ".join(
            f"`{b.name}`: {b.max_examples} examples per property, {b.steps} steps per run, {b.full_continuations} "
            f"full continuation(s)" for b in BUDGETS.values()) + ".",
        "",
    ]
    for category, props in by_category.items():
        lines += [f"## {category}", ""]
        intro = _CATEGORY_INTRO.get(category)
        if intro:
            lines += [intro, ""]
        lines += ["| ID | modes | must hold | catches |", "| --- | --- | --- | --- |"]
        for prop in props:
            modes = ", ".join(m for m in MODES if m in prop.modes)
            lines.append(f"| `{prop.id}` | {modes} | {_cell(prop.title)} | {_cell(prop.catches)} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
