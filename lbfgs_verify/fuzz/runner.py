"""The fuzz campaign: for every route and corruption class, generate reachable states, classify each case,
count the outcomes, and shrink one example per finding.

Two hypothesis passes per route/class: a counting pass seeded with ``seed`` (``max_examples`` cases,
no shrinking) gives the outcome matrix; then, for each finding outcome, a shrinking pass replays the
example database first (findings of earlier runs come back before anything new is generated) and shrinks to
a minimal example, which is stored there again. Database keys name the target, route/class and outcome.
"""

from __future__ import annotations

import contextlib
import copy
import time
import unittest
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from lbfgs_verify.compare.bitwise import first_difference
from lbfgs_verify.compare.environment import KNOWN_HARMLESS_WARNINGS, comparison_environment
from lbfgs_verify.engine.capabilities import declared_lacks, parse_lacks
from lbfgs_verify.engine.evidence import PropertyFailed
from lbfgs_verify.engine.repro import Reproduction, reproduction_script
from lbfgs_verify.engine.runs import (
    ROUTES,
    Route,
    continue_run,
    difference_evidence,
    exception_origin,
    fresh_params,
    params_at,
    record_run,
    step_divergence,
    torch_load_bytes,
    torch_save_bytes,
)
from lbfgs_verify.fuzz.corruptions import CORRUPTIONS, HOSTILE_RUNS, Applied, Context, Corruption
from lbfgs_verify.fuzz.outcomes import CORRUPT_OUTCOMES, EVERY_LOAD_DIVERGES, FINDINGS, VALID_OUTCOMES, CaseOutcome
from lbfgs_verify.fuzz.states import FuzzState, fuzz_states
from lbfgs_verify.properties.base import LEVELS
from lbfgs_verify.targets.load import option_names

EVERY_LOAD_MESSAGE = "every load diverges (the undamaged state too): a resume failure, see resume.*"
"""Said once per campaign (:attr:`FuzzReport.notes`) when an undamaged load does not continue exactly."""

ProgressFn = Callable[[str, str, dict[str, int]], None]
"""``on_progress(kind, name, outcome_counts)``: called when a route (kind ``valid``) or class (``corrupt``) is done."""


# --------------------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------------------


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, PropertyFailed):
        return str(exc).split("\n")[0]
    origin = exception_origin(exc)
    return f"{type(exc).__name__}: {exc}" + (f" (at {origin})" if origin else "")


def evaluate_route(target: Any, route: Route, state: FuzzState, *, threads: int = 1,
                   level: str = "properties") -> CaseOutcome:
    """Carry ``state`` along ``route`` and compare every continuation with the uninterrupted run; optimizer state
    compares as ``level`` demands (signed zeros: :func:`lbfgs_verify.compare.environment.state_zero_sign_for`)."""
    example = {**state.evidence(), "route": route.name}
    # Warnings are recorded, not raised: a valid diverged state may load with a RuntimeWarning (the policy).
    with comparison_environment(threads, level), warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            uninterrupted = record_run(target, state.scenario)
            result = route.run(target, state.scenario, state.split, state.n_after)
        except Exception as exc:
            return CaseOutcome("valid", route.name, "crashed", _failure_text(exc),
                               {**example, "exception": type(exc.__cause__ or exc).__name__}, state=state)
        outcome = _classify_route(route, state, example, result, uninterrupted)
    outcome.state = state
    return outcome


def _classify_route(route: Route, state: FuzzState, example: dict[str, Any], result: Any,
                    uninterrupted: Any) -> CaseOutcome:
    expected = result.expected if result.expected is not None else uninterrupted.trace.steps[state.split:]
    for label, steps in result.followers:
        divergence = step_divergence(expected, steps)
        if divergence is not None:
            message = (f"{label} differs from the uninterrupted run at step {divergence.step}: "
                       f"{divergence.difference}")
            return CaseOutcome("valid", route.name, "diverged", message,
                               {**example, "follower": label, "first_differing_step": divergence.step,
                                **difference_evidence(divergence.difference)})
    if result.broken:
        return CaseOutcome("valid", route.name, "diverged", result.broken[0], {**example, "broken": result.broken})
    return CaseOutcome("valid", route.name, "exact", "every continuation bitwise equal to the uninterrupted run",
                       example)


def _load(optimizer: Any, applied: Applied) -> None:
    loaded = applied.corrupted if applied.delivery == "dict" else torch_load_bytes(applied.corrupted)
    optimizer.load_state_dict(loaded)


def _load_warnings(target: Any, state: FuzzState, params: list[torch.Tensor], saved: dict[str, Any]) -> set[str]:
    """The warnings that loading the undamaged ``saved`` gives (a diverged run's non-finite values, say): the
    same warnings after a corruption are not the target noticing the damage."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            state.scenario.make_optimizer(target, params).load_state_dict(saved)
        except Exception:
            return set()
    return {str(w.message) for w in caught}


def undamaged_load_difference(target: Any, state: FuzzState, source: Any, saved: dict[str, Any], delivery: str,
                              uninterrupted: Any) -> str | None:
    """The differential control of a corruption: the undamaged ``saved`` loaded the same way (in memory, or
    through ``torch.save``/``torch.load(weights_only=True)``) into a fresh optimizer and continued. ``None`` when
    it continues the uninterrupted run exactly; otherwise what went wrong (then no corruption of this state can
    be blamed for a divergence: the resume itself fails, which the routes and ``resume.*`` report)."""
    params = fresh_params(params_at(source.trace, state.split), source.params)
    optimizer = state.scenario.make_optimizer(target, params)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            payload = copy.deepcopy(saved) if delivery == "dict" else torch_load_bytes(torch_save_bytes(saved))
            optimizer.load_state_dict(payload)
            steps = continue_run(optimizer, params, state.scenario, state.split, state.n_after, "loaded")
        except Exception as exc:
            return f"raises: {_failure_text(exc)}"
    divergence = step_divergence(uninterrupted.trace.steps[state.split:], steps, compare_state=False)
    return None if divergence is None else f"differs at step {divergence.step}: {divergence.difference}"


def _names(message: str, key: str) -> str:
    return "names the key" if key in message else f"does not name {key!r}"


def evaluate_corruption(target: Any, corruption: Corruption, state: FuzzState, draw: Callable[..., Any], *,
                        threads: int = 1, level: str = "properties") -> CaseOutcome | None:
    """Damage the state taken at the split, load it into a fresh optimizer, step, classify (see
    :func:`_corruption_outcome`); ``None`` when the class does not apply to the state."""
    applied: list[Applied] = []
    result = _corruption_outcome(target, corruption, state, draw, threads, applied, level)
    if result is not None:
        result.state, result.applied = state, applied[0]
    return result


def _corruption_outcome(target: Any, corruption: Corruption, state: FuzzState, draw: Callable[..., Any],
                        threads: int, holder: list[Applied], level: str = "properties") -> CaseOutcome | None:
    """The classification of :func:`evaluate_corruption`: ``None`` when the class has nowhere to apply in
    this state, or the target cannot reach the state at all (that is the routes' finding)."""
    with comparison_environment(threads, level):
        try:
            uninterrupted = record_run(target, state.scenario)
            source = record_run(target, state.scenario, steps=state.split)
            saved = copy.deepcopy(source.optimizer.state_dict())
        except Exception:
            return None
        params = fresh_params(params_at(source.trace, state.split), source.params)
        baseline = _load_warnings(target, state, params, copy.deepcopy(saved))
        context = Context(option_names(getattr(target, "factory", target)),
                          tuple(step.state for step in source.trace.steps if step.state is not None))
        saved_clean = copy.deepcopy(saved)
        applied = corruption.apply(saved, draw, context)
        if applied is None:
            return None
        holder.append(applied)
        example = {**state.evidence(), "corruption": applied.description,
                   "route": "in-memory" if applied.delivery == "dict" else "save-load"}
        params = fresh_params(params_at(source.trace, state.split), source.params)
        optimizer = state.scenario.make_optimizer(target, params)
        before = copy.deepcopy(optimizer.state_dict())
        rejected: BaseException | None = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for message in KNOWN_HARMLESS_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            try:
                _load(optimizer, applied)
            except Exception as exc:
                rejected = exc
        caught = [w for w in caught if str(w.message) not in baseline]
        if applied.hostile_token is not None and applied.hostile_token in HOSTILE_RUNS:
            return CaseOutcome("corrupt", corruption.name, "code-executed",
                               f"{applied.description}: the payload ran while the state was loaded", example)
        if rejected is not None:
            text = _failure_text(rejected)
            try:
                after = optimizer.state_dict()
                changed = first_difference(before, after, "state_dict")
            except Exception as exc:
                changed = f"state_dict() raised {type(exc).__name__} after the rejection"  # type: ignore[assignment]
            if changed is not None:
                return CaseOutcome("corrupt", corruption.name, "rejected-but-changed",
                                   f"{applied.description}: rejected ({text}) but the optimizer changed: {changed}",
                                   example)
            return CaseOutcome("corrupt", corruption.name, "rejected-at-load",
                               f"{text} [{_names(text, applied.key)}]",
                               {**example, "exception": type(rejected).__name__})
        step_error: PropertyFailed | None = None
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            try:
                steps = continue_run(optimizer, params, state.scenario, state.split, state.n_after, "loaded")
            except PropertyFailed as exc:
                step_error = exc
        if caught:
            text = "; ".join(f"{w.category.__name__}: {w.message}" for w in caught)
            after_step = f"; then {_failure_text(step_error)}" if step_error is not None else ""
            return CaseOutcome("corrupt", corruption.name, "warned-at-load",
                               f"{text} [{_names(text, applied.key)}]{after_step}", example)
        divergence = None
        if step_error is None:
            # The run decides (params, losses, closure calls): a correct target may carry an entry it does not use.
            divergence = step_divergence(uninterrupted.trace.steps[state.split:], steps, compare_state=False)
            if divergence is None:
                return CaseOutcome("corrupt", corruption.name, "absorbed",
                                   f"{applied.description}: loaded silently; the continuation is exact anyway",
                                   example)
        # Differential control: blame the damage only if the undamaged state, loaded the same way, continues exactly.
        control = undamaged_load_difference(target, state, source, saved_clean, applied.delivery, uninterrupted)
        if control is not None:
            return CaseOutcome("corrupt", corruption.name, EVERY_LOAD_DIVERGES,
                               f"{applied.description}: loaded silently, but the undamaged state loaded the same way "
                               f"{control} too: {EVERY_LOAD_MESSAGE}; the damage is judged only by whether it was "
                               "refused (it was not)", {**example, "undamaged_load": control})
        if step_error is not None:
            return CaseOutcome("corrupt", corruption.name, "error-at-step",
                               f"{applied.description}: loaded silently, then {_failure_text(step_error)}", example)
        assert divergence is not None
        return CaseOutcome("corrupt", corruption.name, "silent",
                           f"{applied.description}: loaded without error or warning; the run differs from the "
                           f"uninterrupted one at step {divergence.step}: {divergence.difference}",
                           {**example, "first_differing_step": divergence.step,
                            **difference_evidence(divergence.difference)})


# --------------------------------------------------------------------------------------------------------
# The campaign
# --------------------------------------------------------------------------------------------------------


@dataclass
class FuzzReport:
    """Everything one ``lbfgs-verify fuzz`` campaign found.

    ``counts[(kind, name)]`` counts outcomes over the generated cases; ``results`` holds one entry per
    (kind, route/class, outcome) seen, with a shrunk example and a reproduction for findings.
    """

    target: str
    versions: dict[str, str]
    examples: int
    seed: int
    lacks: list[str]
    counts: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    results: list[CaseOutcome] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    """Said once per campaign, not per case (e.g. :data:`EVERY_LOAD_MESSAGE`)."""

    def matrix(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{"routes": {route: {outcome: n}}, "classes": {class: {outcome: n}}}`` (zero counts left out)."""
        return {"routes": {name: dict(c) for (kind, name), c in self.counts.items() if kind == "valid"},
                "classes": {name: dict(c) for (kind, name), c in self.counts.items() if kind == "corrupt"}}

    @property
    def findings(self) -> list[CaseOutcome]:
        return [r for r in self.results if r.is_finding]

    @property
    def exit_code(self) -> int:
        return 1 if self.findings else 0

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "versions": self.versions, "examples": self.examples, "seed": self.seed,
                "lacks": self.lacks, "seconds": round(self.seconds, 1),
                "results": [r.to_json() for r in self.results], "matrix": self.matrix(), "skipped": self.skipped,
                "notes": self.notes}


def library_versions(target: Any) -> dict[str, str]:
    import hypothesis
    import numpy

    import lbfgs_verify

    versions = {"torch": torch.__version__, "hypothesis": hypothesis.__version__, "numpy": numpy.__version__,
                "lbfgs_verify": getattr(lbfgs_verify, "__version__", "unknown")}
    try:
        versions["target"] = target.version
    except Exception:
        versions["target"] = "unknown"
    return versions


class _Found(Exception):
    """Raised inside the shrinking pass when a case has the outcome being shrunk."""


def _settings(examples: int, phases: Iterable[Phase], database: Any) -> settings:
    return settings(max_examples=examples, phases=list(phases), database=database, deadline=None,
                    derandomize=False, verbosity=Verbosity.quiet, report_multiple_bugs=False,
                    suppress_health_check=list(HealthCheck))


def _finder(evaluate: Callable[[FuzzState, Any], CaseOutcome | None], wanted: str,
            minimal: list[CaseOutcome]) -> Callable[[FuzzState, st.DataObject], None]:
    """The test body of a shrinking pass: raises :class:`_Found` on cases with outcome ``wanted``."""

    def find(state: FuzzState, data: st.DataObject) -> None:
        outcome = evaluate(state, data.draw)
        if outcome is None:
            reject()
        if outcome.outcome == wanted:
            minimal.append(outcome)
            raise _Found(wanted)

    return find


def _campaign(evaluate: Callable[[FuzzState, Any], CaseOutcome | None], states: st.SearchStrategy[FuzzState],
              outcomes: Iterable[str], *, examples: int, seed: int, database: Any, key: str,
              shrink: bool) -> tuple[Counter[str], dict[str, CaseOutcome], str | None]:
    """Counting pass, then one shrinking pass per finding outcome; returns counts, one example per outcome,
    and why nothing was generated (or ``None``)."""
    counts: Counter[str] = Counter()
    first: dict[str, CaseOutcome] = {}

    def count(state: FuzzState, data: st.DataObject) -> None:
        outcome = evaluate(state, data.draw)
        if outcome is None:
            reject()
        counts[outcome.outcome] += 1
        first.setdefault(outcome.outcome, outcome)

    counting = hypothesis_seed(seed)(_settings(examples, [Phase.explicit, Phase.generate], None)(
        given(state=states, data=st.data())(count)))
    try:
        counting()
    except Unsatisfiable:
        return counts, first, "no drawn state has anywhere to apply it"
    for wanted in outcomes:
        if wanted not in FINDINGS or (wanted not in counts and database is None) or not shrink:
            continue
        minimal: list[CaseOutcome] = []
        find = _finder(evaluate, wanted, minimal)
        phases = [Phase.reuse, Phase.generate, Phase.shrink] if wanted in counts else [Phase.reuse, Phase.shrink]
        # No @seed here: hypothesis turns the example database off for seeded tests.
        test = _settings(examples, phases, database)(given(state=states, data=st.data())(find))
        test._hypothesis_internal_database_key = f"{key}|{wanted}".encode()  # type: ignore[attr-defined]
        # ``minimal[-1]`` is the shrunk case (hypothesis replays it last); SkipTest: nothing stored to replay.
        with contextlib.suppress(_Found, unittest.SkipTest):
            test()
        if minimal:
            if wanted not in counts:
                counts[wanted] += 1  # replayed from the example database
            first[wanted] = minimal[-1]
    return counts, first, None


def run_fuzz(
    target: Any,
    *,
    examples: int = 60,
    seed: int = 0,
    routes: Iterable[str] | None = None,
    classes: Iterable[str] | None = None,
    lacks: Iterable[str] | str = frozenset(),
    on_progress: ProgressFn | None = None,
    database: Any = None,
    threads: int = 1,
    shrink: bool = True,
    level: str = "properties",
) -> FuzzReport:
    """Fuzz ``target`` (a :class:`lbfgs_verify.targets.load.Target`) over ``routes`` x reachable states and
    ``classes`` x reachable states (default: all of :data:`ROUTES` and :data:`CORRUPTIONS`).

    ``lacks`` adds to the target's declared lacks; ``database`` is a hypothesis example database (``None``:
    nothing kept between runs). Unknown route/class names raise ``ValueError`` naming them. ``level`` says how
    optimizer state compares (``properties``/``semantics``: +0.0 == -0.0, noted; ``conformance``: bytes), as in
    ``lbfgs-verify check``.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    started = time.perf_counter()
    chosen_routes = list(ROUTES) if routes is None else list(routes)
    chosen_classes = list(CORRUPTIONS) if classes is None else list(classes)
    for names, known, what in ((chosen_routes, ROUTES, "route"), (chosen_classes, CORRUPTIONS, "corruption class")):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    lacked = parse_lacks(lacks if isinstance(lacks, str) else list(lacks)) | declared_lacks(
        getattr(target, "factory", target))
    spec = getattr(target, "spec", getattr(target, "__qualname__", repr(target)))
    report = FuzzReport(spec, library_versions(target), examples, seed, sorted(lacked))

    def finish(kind: str, name: str, counts: Counter[str], found: dict[str, CaseOutcome], order: Iterable[str]) -> None:
        report.counts[(kind, name)] = counts
        if counts.get(EVERY_LOAD_DIVERGES):
            classes = sorted(n for (k, n), c in report.counts.items() if k == "corrupt" and c.get(EVERY_LOAD_DIVERGES))
            note = (f"{EVERY_LOAD_MESSAGE}. Cases of the corruption classes {', '.join(classes)} that loaded silently "
                    f"are counted as {EVERY_LOAD_DIVERGES}, not as silent or error-at-step: only a refusal at load "
                    "is judged there.")
            report.notes[:] = [n for n in report.notes if not n.startswith(EVERY_LOAD_MESSAGE)] + [note]
        for outcome in order:
            if outcome in found:
                case = found[outcome]
                if case.is_finding:
                    case.reproduction = reproduction_for(spec, case)
                report.results.append(case)
        if on_progress is not None:
            on_progress(kind, name, dict(counts))

    for name in chosen_routes:
        route = ROUTES[name]
        if route.needs_cuda and not torch.cuda.is_available():
            report.skipped[name] = "no CUDA device"
            continue
        dtypes = [d for d in (torch.float16, torch.bfloat16, torch.float32)] if route.widens_dtype else None
        try:
            states = fuzz_states(lacked, dtypes=dtypes)
        except ValueError as exc:
            report.skipped[name] = str(exc)
            continue
        counts, found, why = _campaign(
            lambda s, d, r=route: evaluate_route(target, r, s, threads=threads, level=level), states, VALID_OUTCOMES,
            examples=examples, seed=seed, database=database, key=f"lbfgs-verify fuzz|{spec}|valid|{name}",
            shrink=shrink)
        if why:
            report.skipped[name] = why
        finish("valid", name, counts, found, VALID_OUTCOMES)

    states_all = fuzz_states(lacked)
    for name in chosen_classes:
        corruption = CORRUPTIONS[name]
        counts, found, why = _campaign(
            lambda s, d, c=corruption: evaluate_corruption(target, c, s, d, threads=threads, level=level), states_all,
            CORRUPT_OUTCOMES, examples=examples, seed=seed, database=database,
            key=f"lbfgs-verify fuzz|{spec}|corrupt|{name}", shrink=shrink)
        if why:
            report.skipped[name] = why
        finish("corrupt", name, counts, found, CORRUPT_OUTCOMES)
    report.seconds = time.perf_counter() - started
    return report


def reproduction_for(spec: str, case: CaseOutcome) -> str | None:
    """The standalone script of a finding, from its example (:func:`lbfgs_verify.engine.repro.reproduction_script`)."""
    state: FuzzState | None = case.state
    if state is None:
        return None
    applied: Applied | None = case.applied
    return reproduction_script(Reproduction(
        target=spec, problem_source=state.problem.source, start=state.problem.start,
        dtype=state.scenario.problem.dtype, hyperparameters=state.scenario.hyperparameters, split=state.split,
        n_after=state.n_after, kind=case.kind, route=case.name if case.kind == "valid" else None,
        corruption_code=applied.code if applied is not None else (), delivery=applied.delivery if applied else "dict",
        assertion=case.message))
