"""Running many properties against one target: selection, the report header, the table, JSON, docs.

Used by the ``lbfgs-verify check`` command (:mod:`lbfgs_verify.cli`) and, for the header and selection, by
the pytest plugin (:mod:`lbfgs_verify.plugin`). Every property runs in
:func:`lbfgs_verify.compare.environment.comparison_environment` (fixed thread count, global RNG restored afterwards).
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lbfgs_verify.properties.base import (
    BUDGETS,
    LEVELS,
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
from lbfgs_verify.targets.load import Target

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
    """The version of the installed distribution that provides the target (``importlib.metadata``): its own
    module's, else (a class in a factory module of one's own) that of the first base class that comes from a
    distribution (``"pytorch-minimize 0.1.0, through examples.peers.torchmin_lbfgs"``), else the module's
    ``__version__``, else ``"module <name>, not from an installed distribution"``."""
    from importlib import metadata

    module = getattr(target.factory, "__module__", "") or ""
    top = module.split(".")[0]
    owners = metadata.packages_distributions()
    # The factory's own module, then (for a class defined in a factory module) the classes it derives from.
    bases = getattr(target.factory, "__mro__", ())[1:]
    candidates = [module] + [getattr(base, "__module__", "") or "" for base in bases]
    for candidate in candidates:
        for name in owners.get(candidate.split(".")[0], []):
            try:
                version = f"{name} {metadata.version(name)}"
            except metadata.PackageNotFoundError:
                continue
            return version if candidate == module else f"{version}, through {module}"
    try:
        version = target.version
    except Exception:
        version = "unknown"
    if version == "unknown" and top:
        return f"module {module}, not from an installed distribution"
    return version


def interface_problem(target: Target, lacks: Iterable[str] = ()) -> str | None:
    """Why ``target`` cannot be checked at all, or ``None``: it must accept torch.optim.LBFGS's constructor
    arguments (given explicitly, at torch's defaults; ``line_search_fn='strong_wolfe'`` if it declares it lacks
    ``no_line_search``) and return an object with ``step``, ``state_dict`` and ``load_state_dict``."""
    import torch

    from lbfgs_verify.targets.load import constructor_hint

    if getattr(target, "kind", "torch") != "torch":  # a stepper or functional target (lbfgs_verify.targets.kinds)
        return None
    line_search = "strong_wolfe" if "no_line_search" in frozenset(lacks) else None
    arguments = {"lr": 1, "max_iter": 20, "max_eval": None, "tolerance_grad": 1e-7, "tolerance_change": 1e-9,
                 "history_size": 100, "line_search_fn": line_search}
    arguments = {k: v for k, v in arguments.items() if k not in frozenset(lacks)}  # a declared lack is not passed
    try:
        optimizer = target.make([torch.zeros(2, requires_grad=True)], **arguments)
    except Exception as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        return f"{target.spec}([tensor], {given}) raised {type(exc).__name__}: {exc}{constructor_hint(exc)}"
    missing = [m for m in ("step", "state_dict", "load_state_dict") if not callable(getattr(optimizer, m, None))]
    if missing:
        return (f"{target.spec}(...) returned a {type(optimizer).__name__} without {', '.join(missing)}: not an "
                f"optimizer with torch.optim.LBFGS's interface")
    return None


def select_properties(mode: str, only: Iterable[str] | None = None) -> list[Property]:
    """Properties of level ``mode`` and below (stable order); ``only`` keeps IDs equal to or starting with any
    given prefix.

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
        "random examples: --repro DIR writes each failure as a standalone script")
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
    lacks: frozenset[str] = frozenset()
    lacks_sources: dict[str, list[str]] = field(default_factory=dict)
    skips: dict[str, str] = field(default_factory=dict)
    baseline: dict[str, bool] = field(default_factory=dict)
    """Property ID -> whether torch.optim.LBFGS (``baseline_version``) fails it too *for the same cause* (every
    cause of the target's failure has a cause of torch's with the same fingerprint and condition,
    :meth:`Cause.same_cause_as`); only failed IDs are asked."""
    baseline_same_cause: dict[str, list[bool]] = field(default_factory=dict)
    """Property ID -> for each of the target's causes, whether torch's failure of that property has it too."""
    baseline_version: str = ""

    @property
    def level(self) -> str:
        return self.mode

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
            "level": self.mode,
            "lacks": sorted(self.lacks),
            "lacks_declared_by": self.lacks_sources,
            "skips": self.skips,
            "budget": self.budget.name,
            "profile": self.budget.profile,
            "max_examples": self.budget.max_examples,
            "threads": self.threads,
            "versions": self.versions,
            "results": [{**r.to_json(), "title": REGISTRY[r.property].title if r.property in REGISTRY else "",
                         "baseline_fails": self.baseline.get(r.property),
                         "baseline_same_cause": self.baseline_same_cause.get(r.property)} for r in self.results],
            "baseline": {"target": BASELINE_SPEC, "version": self.baseline_version} if self.baseline_version else None,
            "summary": self.counts(),
            "shared_causes": [group.to_json() for group in shared_causes(self.results)],
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
        }


def header_lines(target: str, version: str, mode: str, budget: Budget, threads: int,
                 versions: dict[str, str], lacks_sources: dict[str, list[str]] | None = None,
                 skips: dict[str, str] | None = None, execution: str | None = None) -> list[str]:
    """The lines that say exactly what was checked and how (printed by the CLI and the pytest plugin),
    including what the target declared it lacks (and where that was declared), the skips file, and for a
    stepper or functional target how it is executed (:func:`execution_description`)."""
    libs = ", ".join(f"{k} {v}" for k, v in versions.items())
    lines = [
        f"lbfgs-verify: target {target} (version {version})",
        f"lbfgs-verify: {libs}",
        f"lbfgs-verify: level {mode}, budget {budget.name} (steps {budget.steps}, full continuations "
        f"{budget.full_continuations}), {profile_description(budget)}, threads {threads}",
    ]
    declared = sorted({f for fs in (lacks_sources or {}).values() for f in fs})
    if declared:
        where = "; ".join(f"{', '.join(fs)} by {src}" for src, fs in (lacks_sources or {}).items() if fs)
        lines.append(f"lbfgs-verify: declared lacks: {', '.join(declared)} ({where}); never drawn, properties "
                     "that need them skip")
    else:
        lines.append("lbfgs-verify: declared lacks: none (an undeclared crash is a failure)")
    if execution:
        lines.append(f"lbfgs-verify: execution: {execution}")
    if skips:
        lines.append(f"lbfgs-verify: skips file: {len(skips)} entr{'y' if len(skips) == 1 else 'ies'} ("
                     + ", ".join(skips) + ")")
    return lines


def execution_description(target: Any) -> str | None:
    """How a stepper or functional target is executed, for the header (issue 20: the execution mode is fixed on
    both sides of a split and recorded): JAX's jit/eager, x64 flag, dtype, version and ``XLA_FLAGS`` for a stepper
    (:class:`lbfgs_verify.targets.stepper.Mode`), the evaluation route for a functional minimizer; ``None`` for a
    torch optimizer (its threads are on the line above)."""
    from lbfgs_verify.targets.kinds import FUNCTIONAL, STEPPER, kind_of

    kind = kind_of(target)
    if kind == STEPPER:
        from lbfgs_verify.targets.stepper import Mode

        described = Mode().describe()
        return (f"stepper, {described['execution']} (the same on both sides of every split), jax_enable_x64 "
                f"{described['jax_enable_x64']}, dtype {described['dtype']}, jax {described['jax']}, "
                f"XLA_FLAGS={described['XLA_FLAGS']!r}")
    if kind == FUNCTIONAL:
        return ("functional, float64 numpy vectors; every evaluation recorded by wrapping the objective, accepted "
                "iterates by wrapping the callback")
    return None


def declared_lacks_of(target: Target, *sources: tuple[str, Iterable[str] | str | None]) -> dict[str, list[str]]:
    """``{source: [features]}`` merged from the target's ``lbfgs_verify_lacks`` attribute and the given
    ``(source name, declaration)`` pairs (e.g. ``("--lacks", "complex,strong_wolfe")``); unknown features
    raise :class:`lbfgs_verify.engine.capabilities.CapabilityError`."""
    from lbfgs_verify.engine.capabilities import LACKS_ATTRIBUTE, declared_lacks, parse_lacks

    out: dict[str, list[str]] = {}
    attribute = declared_lacks(target.factory)
    if attribute:
        out[f"attribute {LACKS_ATTRIBUTE}"] = sorted(attribute)
    for name, declaration in sources:
        parsed = parse_lacks(declaration)
        if parsed:
            out[name] = sorted(parsed)
    return out


STATUS_LABEL = {Status.PASS: "pass", Status.FAIL: "FAIL", Status.ERROR: "ERROR", Status.SKIP: "skip"}


def table_header(id_width: int) -> str:
    return f"{'PROPERTY':<{id_width}}  {'STATUS':<6}  {'TIME':>6}  REASON"


def table_row(result: PropertyResult, id_width: int, reason_width: int = 140) -> str:
    """One line of the terminal table. A long reason is cut after its last whole clause that fits (never inside
    a value) and points to the details, which hold it in full."""
    reason = result.reason
    if len(reason) > reason_width:
        head = reason[:reason_width]
        cut = max(head.rfind("; "), head.rfind(": "), head.rfind(" ("))
        reason = (head[:cut] if cut > reason_width // 3 else head[:head.rfind(" ")]) + " ... (details below)"
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
    lacks: Iterable[str] | str | None = None,
    skips: dict[str, str] | None = None,
    jobs: int = 1,
) -> RunReport:
    """Run the selected properties of level ``mode`` against ``target`` and collect a :class:`RunReport`.

    ``lacks`` (features, or a comma string) is merged with the target's ``lbfgs_verify_lacks`` attribute;
    ``skips`` maps property IDs or prefixes to reasons (a skips file). With ``jobs`` > 1 the properties run
    in that many worker processes (:func:`run_in_processes`); the verdicts are those of a serial run."""
    from lbfgs_verify.compare.environment import comparison_environment
    from lbfgs_verify.engine.recordings import shared_recordings

    if mode not in LEVELS:
        raise ValueError(f"unknown level {mode!r}; choose from {', '.join(LEVELS)}")
    chosen_budget = BUDGETS[budget] if isinstance(budget, str) else budget
    selected = list(properties) if properties is not None else select_properties(mode, only)
    sources = declared_lacks_of(target, ("--lacks", lacks))
    all_lacks = frozenset(f for fs in sources.values() for f in fs)
    report = RunReport(target.spec, target_version(target), mode, chosen_budget, threads, library_versions(),
                       lacks=all_lacks, lacks_sources=sources, skips=dict(skips or {}))
    ctx = CheckContext(target=target, mode=mode, budget=chosen_budget, device=device, threads=threads,
                       lacks=all_lacks, skips=dict(skips or {}))
    start = time.perf_counter()
    if jobs > 1 and len(selected) > 1:
        report.results = run_in_processes(target, mode, chosen_budget, threads, selected, device, sorted(all_lacks),
                                          dict(skips or {}), jobs, on_result)
        report.seconds = time.perf_counter() - start
        return report
    with shared_recordings():
        for prop in selected:
            with comparison_environment(threads):
                result = run_property(prop, ctx)
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    report.seconds = time.perf_counter() - start
    return report


def property_chunks(selected: Sequence[Property]) -> list[list[Property]]:
    """``selected`` by category (the first part of the ID), largest first: the units of work handed to the
    processes of :func:`run_in_processes`. A category stays in one process: its properties draw the same scenarios
    and share their recordings (:mod:`lbfgs_verify.engine.recordings`)."""
    by_category: dict[str, list[Property]] = {}
    for prop in selected:
        by_category.setdefault(prop.id.split(".")[0], []).append(prop)
    return sorted(by_category.values(), key=len, reverse=True)


def _run_group(spec: str, mode: str, budget: Budget, threads: int, ids: list[str], device: str, lacks: list[str],
               skips: dict[str, str]) -> list[PropertyResult]:
    """Worker process: load the target by its spec and run the properties ``ids`` (shared recordings inside)."""
    from lbfgs_verify.targets.load import load_target

    load_all()
    report = run_check(load_target(spec), mode, budget, threads=threads, properties=[REGISTRY[i] for i in ids],
                       device=device, lacks=lacks, skips=skips)
    return report.results


def run_in_processes(
    target: Target, mode: str, budget: Budget, threads: int, selected: Sequence[Property], device: str,
    lacks: list[str], skips: dict[str, str], jobs: int, on_result: Callable[[PropertyResult], None] | None = None,
) -> list[PropertyResult]:
    """Run ``selected`` in ``jobs`` processes: this one and ``jobs - 1`` spawned ones (:mod:`concurrent.futures`;
    spawned, not forked: a forked child of a process whose OpenMP pool has run can hang) each take the next
    category of :func:`property_chunks` as soon as they are free (a work queue: the categories' costs differ
    tenfold, so fixed groups left one process idle). Each worker loads the target from its spec, so the target
    must be importable by it. Results come back, and ``on_result`` sees them, in selection order (a result waits
    for those before it). Every property draws the same examples as in one process (derandomized profiles seed
    each property by its own test function), so the verdicts are those of a serial run."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if not loadable_by_spec(target):
        raise ValueError(f"jobs={jobs}: the target {target.spec!r} cannot be loaded by its spec in a worker process; "
                         f"run with jobs=1 or give an importable module:attr")
    import queue
    import threading
    from collections import deque

    pending = deque(property_chunks(selected))
    lock = threading.Lock()
    finished: queue.Queue[tuple[list[PropertyResult] | None, BaseException | None]] = queue.Queue()
    by_id: dict[str, PropertyResult] = {}
    order = [p.id for p in selected]
    shown = 0
    running = jobs - 1  # dispatchers not yet done

    def next_chunk() -> list[Property] | None:
        with lock:
            return pending.popleft() if pending else None

    def take(result: PropertyResult) -> None:  # on_result in selection order, as soon as the order allows
        nonlocal shown
        by_id[result.property] = result
        while shown < len(order) and order[shown] in by_id:
            if on_result is not None:
                on_result(by_id[order[shown]])
            shown += 1

    def receive(block: bool) -> bool:
        """Take one message of a dispatcher (results, an error, or its end); False when none was waiting."""
        nonlocal running
        try:
            results, error = finished.get(block=block)
        except queue.Empty:
            return False
        if error is not None:
            raise error
        if results is None:
            running -= 1
        for result in results or ():
            take(result)
        return True

    with ProcessPoolExecutor(max_workers=jobs - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        def dispatch() -> None:  # one per worker process: hand it the next category as soon as it is free
            try:
                while (chunk := next_chunk()) is not None:
                    finished.put((pool.submit(_run_group, target.spec, mode, budget, threads,
                                              [p.id for p in chunk], device, lacks, skips).result(), None))
            except BaseException as exc:  # raised again in the calling thread by receive()
                finished.put((None, exc))
            finished.put((None, None))

        for _ in range(jobs - 1):
            threading.Thread(target=dispatch, daemon=True).start()
        while (chunk := next_chunk()) is not None:  # this process takes categories too, while the workers start
            run_check(target, mode, budget, threads=threads, properties=chunk, device=device, lacks=lacks,
                      skips=skips, on_result=take)
            while receive(block=False):
                pass
        while running:
            receive(block=True)
    return [by_id[p.id] for p in selected]


JOBS_VARIABLE = "LBFGS_VERIFY_JOBS"
"""Environment variable that sets ``--jobs auto``'s count (this repository's tests set it to 1)."""
MAX_AUTO_JOBS = 4
"""``--jobs auto`` uses at most this many processes: each worker imports torch (about 2.5 s of CPU), and the
properties fall into about ten categories that keep their recordings in one process."""


def auto_jobs() -> int:
    """The process count of ``--jobs auto``: :data:`JOBS_VARIABLE` when set, else the CPUs this process may run
    on, at most :data:`MAX_AUTO_JOBS` (``os.sched_getaffinity``, where the system has it)."""
    import os

    text = os.environ.get(JOBS_VARIABLE, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{JOBS_VARIABLE}={text!r} is not a positive integer") from None
        if value < 1:
            raise ValueError(f"{JOBS_VARIABLE}={text!r} is not a positive integer")
        return value
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_AUTO_JOBS, cpus))


def loadable_by_spec(target: Target) -> bool:
    """Whether a worker process that loads ``target.spec`` gets this very target."""
    from lbfgs_verify.targets.load import TargetLoadError, load_target

    try:
        return load_target(target.spec).factory is target.factory
    except TargetLoadError:
        return False


BASELINE_SPEC = "torch.optim:LBFGS"
"""The baseline whose known failures ``check`` marks: the installed torch's own L-BFGS."""


def baseline_marker(report: RunReport, property_id: str) -> str:
    """``" (torch 2.13.0 fails this too, same cause)"`` for a failure the baseline shares, else ``""``."""
    if not report.baseline.get(property_id):
        return ""
    return f" ({report.baseline_version} fails this too, same cause)"


def mark_baseline_failures(report: RunReport, target: Target, *, device: str = "cpu", jobs: int = 1) -> None:
    """Which failures of ``report`` torch.optim.LBFGS of the installed torch shares *for the same cause*: it
    is run on the failed property IDs only, at the same level, budget, thread count and declared lacks (so
    the derandomized ci and quick budgets draw the same examples), and a failure is torch's too only where
    torch's failure of that property has the same fingerprint and condition (:meth:`Cause.same_cause_as`):
    a user's own bug on a property torch also fails is the user's. Checking torch.optim.LBFGS itself marks
    nothing (there is no baseline to compare it with)."""
    import torch

    from lbfgs_verify.targets.load import load_target

    failed = [r for r in report.results if r.status == Status.FAIL]
    if target.factory is torch.optim.LBFGS:
        report.baseline_version = ""
        return
    report.baseline_version = f"torch {torch.__version__.split('+')[0]}"
    if not failed:
        return
    baseline = run_check(load_target(BASELINE_SPEC), report.mode, report.budget, threads=report.threads,
                         properties=[REGISTRY[r.property] for r in failed], device=device,
                         lacks=sorted(report.lacks), jobs=jobs)
    torch_causes = {r.property: r.causes for r in baseline.results if r.status == Status.FAIL}
    for result in failed:
        theirs = torch_causes.get(result.property, [])
        same = [any(cause.same_cause_as(other) for other in theirs) for cause in result.causes]
        report.baseline_same_cause[result.property] = same
        report.baseline[result.property] = bool(same) and all(same)


def baseline_count_line(report: RunReport) -> str:
    """``"9 failures: 7 are yours, 2 are also torch 2.13.0's (same cause)"`` (empty without a baseline)."""
    failed = [r.property for r in report.results if r.status == Status.FAIL]
    if not report.baseline_version or not failed:
        return ""
    theirs = [pid for pid in failed if report.baseline.get(pid)]
    return (f"{len(failed)} failure{'s' if len(failed) != 1 else ''}: {len(failed) - len(theirs)} "
            f"{'are' if len(failed) - len(theirs) != 1 else 'is'} yours, {len(theirs)} "
            f"{'are' if len(theirs) != 1 else 'is'} also {report.baseline_version}'s (same cause)")


def print_baseline(report: RunReport, out: TextIO | None = None) -> None:
    """How many failures are the target's own and which the installed torch.optim.LBFGS shares (same cause)."""
    out = sys.stdout if out is None else out
    line = baseline_count_line(report)
    if not line:
        return
    shared = [pid for pid, fails in report.baseline.items() if fails]
    print("", file=out)
    print(f"Baseline ({BASELINE_SPEC}, {report.baseline_version}): {line}", file=out)
    for pid in shared:
        print(f"  - {pid}: {report.baseline_version} fails this too (same cause)", file=out)
    partly = [pid for pid, same in report.baseline_same_cause.items() if any(same) and not all(same)]
    for pid in partly:
        print(f"  - {pid}: {report.baseline_version} shares {sum(report.baseline_same_cause[pid])} of its "
              f"{len(report.baseline_same_cause[pid])} causes; the others are yours", file=out)


def print_report_details(report: RunReport, out: TextIO | None = None, max_lines: int = 60) -> None:
    """The full detail (falsifying example, first differing step, key, ULPs) of every failure and error."""
    out = sys.stdout if out is None else out
    bad = [r for r in report.results if r.status in (Status.FAIL, Status.ERROR)]
    if not bad:
        return
    print("", file=out)
    print("Details of failures and errors:", file=out)
    first_seen: dict[str, str] = {}  # fingerprint -> the property whose detail shows it
    for result in bad:
        print(f"\n[{STATUS_LABEL[result.status]}] {result.property}: {REGISTRY[result.property].title}"
              f"{baseline_marker(report, result.property)}", file=out)
        print(f"    catches: {REGISTRY[result.property].catches}", file=out)
        texts = []
        for i, cause in enumerate(result.causes or [None], 1):
            prefix = f"cause {i} of {len(result.causes)} ({cause.key}): " if len(result.causes) > 1 else ""
            if cause is not None and cause.key in first_seen:
                texts.append(f"{prefix}the same cause as {first_seen[cause.key]} (shown there): {cause.summary}")
                continue
            if cause is not None and not cause.key.startswith(f"{result.property}:"):
                first_seen[cause.key] = result.property
            texts.append(prefix + (cause.detail if cause is not None and len(result.causes) > 1 else result.detail))
        for text in texts:
            lines = text.splitlines()
            for line in lines[:max_lines]:
                print(f"    {line}", file=out)
            if len(lines) > max_lines:
                print(f"    ... ({len(lines) - max_lines} more lines; see --json)", file=out)


@dataclass
class SharedCause:
    """Properties that fail for one and the same cause (one fingerprint: :func:`condition_fingerprint`)."""

    key: str
    properties: list[str]
    summary: str
    suggested_lacks: list[str]

    def describe(self) -> str:
        hint = (f" — if that is a known limitation, declare `--lacks {','.join(self.suggested_lacks)}` to see "
                "verdicts on the rest" if self.suggested_lacks else "")
        return (f"{len(self.properties)} propert{'y' if len(self.properties) == 1 else 'ies'} fail for one cause: "
                f"{self.key}: {self.summary}{hint} ({', '.join(self.properties)})")

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "properties": self.properties, "summary": self.summary,
                "suggested_lacks": self.suggested_lacks}


_FEATURE_MARKERS: dict[str, str] = {
    "complex": r"complex",
    "strong_wolfe": r"strong_wolfe",
    "float16": r"\bfloat16",
    "bfloat16": r"bfloat16",
    "no_grad_params": r"\+unused|_with_unused",
    "sparse_gradients": r"sparse_embedding",
}
"""How a feature shows in a failing example's problem name or hyperparameters (for the suggestion only)."""


def _suggested_lacks(details: Sequence[str]) -> list[str]:
    """Features that every example of a shared cause uses: a candidate ``--lacks`` declaration."""
    import re

    out = []
    for feature, marker in _FEATURE_MARKERS.items():
        if details and all(re.search(marker, d) for d in details):
            out.append(feature)
    return out


def shared_causes(results: Sequence[PropertyResult]) -> list[SharedCause]:
    """Causes (fingerprints: an exception site, a control run's diagnosis, or one first difference) that fail
    more than one property, most shared first: one root cause is named once, with the properties it fails."""
    groups: dict[str, list[tuple[str, Any]]] = {}
    for result in results:
        if result.status not in (Status.FAIL, Status.ERROR):
            continue
        seen = set()
        for cause in result.causes:
            if cause.key.startswith(f"{result.property}:") or cause.key in seen:
                continue
            seen.add(cause.key)
            groups.setdefault(cause.key, []).append((result.property, cause))
    out = [SharedCause(key, [pid for pid, _ in members],
                       members[0][1].evidence.get("diagnosis_detail") or members[0][1].summary,
                       _suggested_lacks([c.detail for _, c in members]))
           for key, members in groups.items() if len(members) > 1]
    return sorted(out, key=lambda g: (-len(g.properties), g.key))


def print_notes(report: RunReport, out: TextIO | None = None, per_property: int = 3) -> None:
    """Observations that are not failures, once per property (e.g. a state entry that differed only in the sign of
    zero at a level that compares state with +0.0 equal to -0.0: docs/properties.md, "Signed zeros")."""
    out = sys.stdout if out is None else out
    noted = [(r.property, list(dict.fromkeys(r.notes))) for r in report.results if r.notes]
    if not noted:
        return
    print("", file=out)
    print("Notes (not failures):", file=out)
    for pid, notes in noted:
        for note in notes[:per_property]:
            print(f"  - {pid}: {note}", file=out)
        if len(notes) > per_property:
            print(f"  - {pid}: ... {len(notes) - per_property} more (see --json)", file=out)


def print_shared_causes(report: RunReport, out: TextIO | None = None) -> None:
    """The grouped summary: properties that fail for one shared cause."""
    out = sys.stdout if out is None else out
    groups = shared_causes(report.results)
    if not groups:
        return
    print("", file=out)
    print("Failures grouped by shared cause:", file=out)
    for group in groups:
        print(f"  - {group.describe()}", file=out)


def write_reproductions(report: RunReport, directory: Path, out: TextIO | None = None) -> None:
    """One standalone script per cause of each failure (``PROPERTY.py``, ``PROPERTY-2.py``...) in ``directory``,
    or why none is written (``check --repro DIR`` and the plugin's ``--lbfgs-repro DIR``)."""
    from lbfgs_verify.engine.repro import NoReproduction, reproduction_for_failure

    out = sys.stdout if out is None else out
    failures = [r for r in report.results if r.status == Status.FAIL]
    if not failures:
        return
    directory.mkdir(parents=True, exist_ok=True)
    print(f"\nReproductions (run each with plain python; it fails while the defect is there) in {directory}:",
          file=out)
    for result in failures:
        for index, cause in enumerate(result.causes, 1):
            name = result.property + ("" if index == 1 else f"-{index}") + ".py"
            try:
                script = reproduction_for_failure(report.target, result.property, cause.evidence, cause.summary)
            except NoReproduction as exc:
                print(f"  - {result.property}: no script ({exc})", file=out)
                continue
            (directory / name).write_text(script, encoding="utf-8")
            print(f"  - {directory / name}", file=out)


def summary_line(report: RunReport) -> str:
    counts = report.counts()
    return (f"{counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, {counts['skip']} skipped "
            f"in {report.seconds:.1f}s -> exit {report.exit_code}")


# --------------------------------------------------------------------------------------------------------
# Documentation generated from the registry
# --------------------------------------------------------------------------------------------------------

_CATEGORY_INTRO = {
    "behaviour": "Behaviour the optimizer must show on ordinary and awkward inputs.",
    "conformance": "Only at `--level conformance`: bitwise equality with `torch.optim.LBFGS` on the CPU with the same "
                   "thread count, and state interchange with it in both directions.",
    "convergence": "Convergence on published test problems.",
    "functional": "Functional minimizers (`minimize(fun_and_grad, x0, maxiter, callback)`, docs/adapters.md): "
                  "prefix, callback stop and determinism; skipped on the other kinds.",
    "kinds": "Properties that carry over to stepper targets with explicit state and functional minimizers "
             "(`lbfgs_verify.targets.kinds`, docs/adapters.md); they skip on torch targets, and the torch properties "
             "skip on these kinds.",
    "stepper": "Steppers with explicit state (`make`/`init`/`step`, docs/adapters.md): resume in a fresh process "
               "and the template check on load; a functional target skips them (no state API).",
    "cuda": "Moving state between the CPU and CUDA mid-run; skipped when `torch.cuda.is_available()` is False. "
            "Tolerances are stated in each title.",
    "mathematics": "Mathematical properties of the L-BFGS iteration.",
    "portability": "Resume under another torch thread count (reductions split differently on long vectors; the "
                   "thread count is blamed only when the same-thread resume is exact), and the shipped golden "
                   "traces (bits where this CPU's kernel set is recorded, else the tolerance measured from the "
                   "recorded kernel sets; docs/portability.md).",
    "resume": "Save at a `step()` boundary, restore, continue: bitwise the uninterrupted run on the CPU. Every split "
              "point gets a one-step check, `full_continuations` random splits are continued to the end; the global "
              "RNGs are reseeded, the parameters are fresh tensors and the saved payload is rebuilt for each restore.",
    "seed": "Claims of the seed article that are requirements on a target (its other claims are facts about torch, "
            "checked in `tests/fast/test_seed_claims.py`).",
    "state": "The state-dict contracts that resume relies on, one per property so that a failure names the broken "
             "contract.",
}


_LEVEL_INTRO = {
    "properties": "What every correct L-BFGS with torch.optim.LBFGS's constructor must satisfy, whatever its "
                  "evaluation schedule (it may evaluate the final point), first-step rule (it may take t = lr), "
                  "returned loss, state format, rounding, and whether `step()` restarts the memory.",
    "semantics": "Also torch.optim.LBFGS's documented behaviour: evaluation schedule, first-step rule, returned "
                 "loss, history kept across `step()`, defaults, stop order, hyperparameter names.",
    "conformance": "Also bitwise equal to torch.optim.LBFGS on the CPU with the same thread count.",
}


def properties_markdown() -> str:
    """``docs/properties.md``: every registered property ID with its level (and why), title and bug class."""
    from lbfgs_verify.engine.capabilities import FEATURES

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
        "(CLI) or `--lbfgs-only` (pytest).",
        "",
        "## Levels",
        "",
        "Every property belongs to exactly one level; `--level L` (also spelled `--mode L`; pytest",
        "`--lbfgs-level`/`--lbfgs-mode`) runs the properties of `L` and of the levels below it:",
        "",
    ]
    for level in LEVELS:
        count = sum(1 for p in REGISTRY.values() if p.level == level)
        lines.append(f"- `{level}` ({count} properties): {_LEVEL_INTRO[level]}")
    lines += [
        "",
        "## Differential controls",
        "",
        "A property names a cause only after a control run without that cause is clean. Where the control is not",
        "clean, the failure is reported as what the control shows, not as the property's own cause:",
        "",
        "- `state.load_independence` names sharing only if the diverging optimizer, after the same in-memory load,",
        "  follows the uninterrupted run while the other one never steps; otherwise \"the in-memory load itself",
        "  differs (a resume difference)\".",
        "- `state.same_dict_loaded_twice` names a reused dict only if the first load of it continues exactly.",
        "- `portability.resume_other_thread_count` names the thread count only if the same-thread resume is exact.",
        "- The fuzzer judges a corruption by the run only if the undamaged load of the same state continues",
        "  exactly; otherwise it reports once that every load diverges and judges the corruption by whether it was",
        "  refused.",
        "- `behaviour.max_eval` allows one closure call past `max_eval` only where torch.optim.LBFGS, run on the",
        "  same scenario, makes one.",
        "- Every resume failure runs a *cold start* (a new optimizer at the split's parameters, nothing loaded):",
        "  a resumed run equal to it is diagnosed as such (\"the saved state is not used on load, or something",
        "  is not saved\"), whichever property found it.",
        "",
        "## Conventions a correct L-BFGS may have",
        "",
        "At `properties` none of these fails a target (tried on two L-BFGS written independently of torch,",
        "`tests/quality/independent/`, and on the scipy-style `lbfgs_verify.reference:LBFGSB`): a first step",
        "t = lr; a memory restarted at every `step()`; torch's absolute yᵀs > 1e-10 skip or L-BFGS-B's",
        "sᵀy > ε·yᵀy; the final point evaluated, or f and g of the accepted point kept instead of re-evaluated;",
        "a `step()` that returns without a closure call once converged; another local minimum of a nonconvex",
        "problem; a non-finite trial point inside a line search; a lowered `history_size` that empties the",
        "memory; sufficient decrease with any c1 above 1e-10 (or the target's `lbfgs_verify_c1`).",
        "",
        "## One cause, one message",
        "",
        "Every failure carries a fingerprint: the exception type and site, a control run's diagnosis, or the",
        "first difference (problem, step, state key and values). Failures with one fingerprint are one cause,",
        "printed once under \"Failures grouped by shared cause\" with the properties it breaks; the details show",
        "it once and the other properties point to it. \"torch fails this too\" is printed only where torch's",
        "failure of that property has the same fingerprint and condition, and the summary counts the failures",
        "that are yours and those that are also torch's. Checking torch.optim.LBFGS itself prints no baseline.",
        "A failing `mathematics.two_loop_direction` rebuilds the direction with each usual mistake, and fits the",
        "initial scaling γ to name a wrong H₀ formula.",
        "",
        "## Signed zeros",
        "",
        "At `properties` and `semantics`, parameters, returned losses and closure values are compared bitwise (the",
        "sign of zero included), but optimizer state entries (`state_dict()` values) compare with +0.0 equal to",
        "-0.0: IEEE 754 leaves the sign of a zero to the operation (`-g` of a zero gradient is -0.0), and a zero",
        "entry of a direction or step moves no parameter. A difference only in the sign of zero in the state is",
        "reported as a note on the passing property (`notes` in `--json`), not as a failure. `conformance` stays",
        "bitwise everywhere: torch's bytes, zeros' signs included.",
        "",
        "## Declared capabilities",
        "",
        "A target may declare features it lacks (`--lacks F1,F2`; pytest `--lbfgs-lacks` or ini `lbfgs_lacks`;",
        "or an attribute `lbfgs_verify_lacks` on its class or factory). A lacked feature is never drawn, and a",
        "property that needs it is reported `skip` with \"lacks F (declared)\". Nothing is declared by default.",
        "`--skips-file PATH` skips property IDs or prefixes, one a line as `ID  # reason`.",
        "",
        "| feature | means |",
        "| --- | --- |",
        *[f"| `{name}` | {_cell(text)} |" for name, text in FEATURES.items()],
        "",
        "Budgets (`--budget`): " + "; ".join(
            f"`{b.name}`: {b.max_examples} examples per property, {b.steps} steps per run ({b.resume_length} in the "
            f"runs resume checks split), {b.full_continuations} full continuation(s)" for b in BUDGETS.values()) + ".",
        "",
    ]
    for category, props in by_category.items():
        lines += [f"## {category}", ""]
        intro = _CATEGORY_INTRO.get(category)
        if intro:
            lines += [intro, ""]
        lines += ["| ID | level | must hold | catches | needs |", "| --- | --- | --- | --- | --- |"]
        for prop in props:
            level = f"{prop.level}: {prop.why}" if prop.why else prop.level
            needs = ", ".join(f"`{n}`" for n in sorted(prop.needs))
            lines.append(f"| `{prop.id}` | {_cell(level)} | {_cell(prop.title)} | {_cell(prop.catches)} | {needs} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
