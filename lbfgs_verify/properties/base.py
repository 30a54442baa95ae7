"""The property registry: every property has a stable ID, a category, the bug class it catches, and a check.

A check is a function ``check(ctx: CheckContext) -> None`` that raises :class:`PropertyFailed` with evidence
when the target violates the property, :class:`PropertySkipped` when it does not apply (no CUDA, say), and
returns normally when it holds. Checks that explore inputs use hypothesis with ``ctx.settings()``; when one
fails, hypothesis' shrunk "Falsifying example" notes are kept in the result's detail.

Every property belongs to one level of claim (:data:`LEVELS`: ``properties`` ⊂ ``semantics`` ⊂
``conformance``) and may name the features it ``needs`` (:mod:`lbfgs_verify.engine.capabilities`); a target's
declared lacks are never drawn and a property needing one is skipped. A failing property keeps one
:class:`Cause` per distinct failure (hypothesis' ``report_multiple_bugs``), each with its own shrunk example.

The same registry feeds the ``lbfgs-verify check`` command and the pytest suite (``lbfgs_verify.suite``).
"""

from __future__ import annotations

import enum
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lbfgs_verify.engine.evidence import PropertyFailed
from lbfgs_verify.targets.load import Target

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # pragma: no cover  (hypothesis depends on the backport there)
    from exceptiongroup import BaseExceptionGroup

__all__ = ["PropertyFailed"]  # re-exported: defined in lbfgs_verify.engine.evidence, shared with the run engine

LEVELS = ("properties", "semantics", "conformance")
"""The three levels of claim, each a superset of the one before:

- ``properties``: what every correct L-BFGS with torch.optim.LBFGS's constructor must satisfy, whatever its
  evaluation schedule, first-step rule, returned loss, state format and rounding (it may evaluate the final
  point, take a first step t = lr, restart its memory at every ``step()``);
- ``semantics``: also torch.optim.LBFGS's documented behaviour (evaluation schedule, first-step rule, returned
  loss, history kept across ``step()``, defaults, stop order, hyperparameter names);
- ``conformance``: also bitwise equal to torch.optim.LBFGS on the CPU.
"""

MODES = LEVELS
"""The former name of :data:`LEVELS` (``--mode`` and ``--level`` name the same thing)."""

LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}


def levels_up_to(level: str) -> tuple[str, ...]:
    """The levels whose properties run at ``level`` (``semantics`` -> properties and semantics)."""
    if level not in LEVEL_RANK:
        raise ValueError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    return LEVELS[:LEVEL_RANK[level] + 1]


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"


class PropertySkipped(Exception):
    """The property does not apply here (e.g. no CUDA device); the message says why."""


@dataclass(frozen=True)
class Budget:
    """How hard to look. ``profile`` names the hypothesis profile (see :mod:`lbfgs_verify.engine.hypothesis_profiles`).

    Attributes:
        name: ``quick``, ``ci`` or ``thorough``.
        profile: the hypothesis profile used by the checks.
        max_examples: examples per hypothesis-driven check (overrides the profile's).
        steps: length of the trajectories that resume and trace checks record.
        full_continuations: how many random split points a resume chain loads at and continues from to the end
            (all get the one-step check).
        problems: how many suite problems the convergence checks visit (``None``: all).
        resume_steps: length of the runs that the resume checks split (``None``: ``steps``); at least 10 at every
            budget, so that a split falls after any step counter a target might keep acting on (a counter kept
            outside ``state_dict()`` that changes the iteration after the 6th step is missed by 6-step runs).
    """

    name: str
    profile: str
    max_examples: int
    steps: int
    full_continuations: int
    problems: int | None
    resume_steps: int | None = None

    @property
    def resume_length(self) -> int:
        """The number of steps of a run that the resume checks split: ``resume_steps``, at least ``steps``."""
        return max(self.steps, self.resume_steps or 0)

    def settings(self, **overrides: Any) -> Any:
        """hypothesis ``settings`` for this budget (profile + ``max_examples``), with overrides."""
        from hypothesis import Phase, settings

        from lbfgs_verify.engine import hypothesis_profiles  # noqa: F401  (registers the profiles)

        base = settings.get_profile(self.profile)
        # Nothing masked: every distinct failure (exception type and origin, or violated condition) is reported
        # with its own shrunk example. The "explain" phase is left out: its lines point into the harness.
        overrides["report_multiple_bugs"] = True
        overrides.setdefault("phases", tuple(p for p in base.phases if p is not Phase.explain))
        return settings(base, max_examples=overrides.pop("max_examples", self.max_examples), **overrides)


BUDGETS: dict[str, Budget] = {
    "quick": Budget("quick", "quick", max_examples=3, steps=6, full_continuations=1, problems=6, resume_steps=10),
    "ci": Budget("ci", "ci", max_examples=15, steps=10, full_continuations=3, problems=None),
    "thorough": Budget("thorough", "thorough", max_examples=200, steps=25, full_continuations=10, problems=None),
}


@dataclass
class CheckContext:
    """Everything a check needs: the target, the mode, the budget, the device, the thread count."""

    target: Target
    mode: str = "properties"
    budget: Budget = field(default_factory=lambda: BUDGETS["ci"])
    device: str = "cpu"
    threads: int = 1
    lacks: frozenset[str] = frozenset()
    """Features the target declared it lacks (:mod:`lbfgs_verify.engine.capabilities`); never drawn."""
    skips: dict[str, str] = field(default_factory=dict)
    """Property IDs or prefixes to skip, with reasons (``--skips-file``)."""

    @property
    def level(self) -> str:
        """The level of claim being checked (the same as ``mode``)."""
        return self.mode

    def lacks_any(self, *features: str) -> bool:
        return any(f in self.lacks for f in features)

    def settings(self, **overrides: Any) -> Any:
        return self.budget.settings(**overrides)


@dataclass(frozen=True)
class Property:
    """A registered property.

    Attributes:
        id: stable, documented identifier, e.g. ``resume.torch_save``.
        category: ``resume``, ``mathematics``, ``behaviour``, ``convergence``, ``cuda``, ``seed`` or ``conformance``.
        title: one line saying what must hold.
        catches: the bug class a violation reveals.
        level: the lowest level whose claim it is (``properties``, ``semantics`` or ``conformance``); it runs
            at that level and every higher one.
        check: the function that checks it.
        needs: features without which the property does not apply (skipped when any is declared lacking).
        why: why the property belongs to its level (shown in docs/properties.md).
    """

    id: str
    category: str
    title: str
    catches: str
    level: str
    check: Callable[[CheckContext], None]
    needs: frozenset[str] = frozenset()
    why: str = ""

    @property
    def modes(self) -> frozenset[str]:
        """The levels at which the property runs (its own and the ones above)."""
        return frozenset(LEVELS[LEVEL_RANK[self.level]:])


@dataclass
class Cause:
    """One distinct reason why a property fails, with its own shrunk example.

    Attributes:
        key: what makes causes the same across properties: ``"NotImplementedError at torchmin/bfgs.py:200"``
            for an exception the target raised, ``"<property>: <where the condition is checked>"`` otherwise.
        summary: one line saying what went wrong.
        detail: the full message with the shrunk example.
        evidence: JSON-able detail.
    """

    key: str
    summary: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """What makes two failures one cause (the same as :attr:`key`): the exception site, a control run's
        diagnosis, or the first differing step with its problem, state key and values."""
        return self.key

    def same_cause_as(self, other: Cause) -> bool:
        """Whether ``other`` (a failure of another optimizer, e.g. the torch baseline, on the same property) has
        this cause: the same fingerprint and the same violated condition. An exception counts as the same
        where its type and message agree (the site differs between a copy of torch's code and torch)."""
        if self.evidence.get("exception") or other.evidence.get("exception"):
            return ((self.evidence.get("exception"), self.evidence.get("message"))
                    == (other.evidence.get("exception"), other.evidence.get("message")))
        return self.key == other.key and self.evidence.get("condition") == other.evidence.get("condition")

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "fingerprint": self.fingerprint, "summary": self.summary, "detail": self.detail,
                "evidence": self.evidence}


@dataclass
class PropertyResult:
    """The outcome of one property on one target; ``to_json()`` gives the ``--json`` record. A failing
    property has one :class:`Cause` per distinct cause (nothing masked)."""

    property: str
    status: Status
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    causes: list[Cause] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Observations that are not failures (e.g. a state entry that differs only in the sign of zero)."""

    @property
    def reason(self) -> str:
        """The first line of the detail, for the terminal table."""
        if len(self.causes) > 1:
            return f"{len(self.causes)} distinct causes: " + " | ".join(c.summary for c in self.causes)
        return self.detail.splitlines()[0] if self.detail else ""

    def to_json(self) -> dict[str, Any]:
        return {"property": self.property, "status": self.status.value, "detail": self.detail,
                "evidence": self.evidence, "seconds": round(self.seconds, 3),
                "causes": [c.to_json() for c in self.causes], "notes": list(self.notes)}


REGISTRY: dict[str, Property] = {}


def _level_of_modes(id: str, modes: Iterable[str]) -> str:
    """The level that the former ``modes=`` keyword meant: the lowest mode named (``{"conformance"}`` only ->
    ``conformance``; anything that includes ``properties`` -> ``properties``)."""
    chosen = frozenset(modes)
    unknown = chosen - set(LEVELS)
    if unknown or not chosen:
        raise ValueError(f"property {id!r}: unknown or no modes {sorted(unknown)}; choose from {LEVELS}")
    return min(chosen, key=LEVEL_RANK.__getitem__)


def register(
    id: str, *, category: str, title: str, catches: str, level: str | None = None,
    modes: Iterable[str] | None = None, needs: Iterable[str] = (), why: str = "",
) -> Callable[[Callable[[CheckContext], None]], Callable[[CheckContext], None]]:
    """Decorator adding a check to :data:`REGISTRY` under ``id`` (IDs are unique and stable).

    ``level`` (default ``properties``) is the lowest level whose claim the property is. The former ``modes=``
    keyword is still accepted and mapped (``modes={"conformance"}`` -> level ``conformance``). ``needs``
    names :data:`lbfgs_verify.engine.capabilities.FEATURES` without which the property does not apply; ``why`` says
    why it belongs to its level.
    """
    from lbfgs_verify.engine.capabilities import FEATURES

    if level is not None and modes is not None:
        raise ValueError(f"property {id!r}: give level= or the former modes=, not both")
    chosen = level if level is not None else (_level_of_modes(id, modes) if modes is not None else "properties")
    if chosen not in LEVEL_RANK:
        raise ValueError(f"property {id!r}: unknown level {chosen!r}; choose from {', '.join(LEVELS)}")
    needed = frozenset(needs)
    unknown = needed - set(FEATURES)
    if unknown:
        raise ValueError(f"property {id!r}: unknown needed feature(s) {sorted(unknown)}")

    def decorate(check: Callable[[CheckContext], None]) -> Callable[[CheckContext], None]:
        previous = REGISTRY.get(id)
        if previous is not None and _origin(previous.check) != _origin(check):
            raise ValueError(f"property id {id!r} registered twice ({_origin(previous.check)} and {_origin(check)})")
        # The same function registered again is its module imported again (pytester's inline runs drop the
        # modules a run imported from sys.modules): the newer object replaces the older one.
        REGISTRY[id] = Property(id, category, title, catches, chosen, check, needed, why)
        return check

    return decorate


def _origin(check: Callable[..., Any]) -> str:
    return f"{check.__module__}.{check.__qualname__}"


def properties_for(level: str) -> list[Property]:
    """The registered properties that run at ``level`` (its own and the lower levels' properties), in a
    stable order (category, then id)."""
    wanted = levels_up_to(level)
    load_all()
    return sorted((p for p in REGISTRY.values() if p.level in wanted), key=lambda p: (p.category, p.id))


def load_all() -> None:
    """Import every property module so that they register (idempotent)."""
    import importlib
    import pkgutil

    import lbfgs_verify.properties as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in ("base", "runner"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def run_property(prop: Property, ctx: CheckContext) -> PropertyResult:
    """Run one check and turn its outcome into a :class:`PropertyResult` (never raises for the target's faults).

    A property that needs a declared-lacking feature, or that the skips file names, is skipped without
    running. Otherwise it runs with the declared lacks in force (:func:`lbfgs_verify.engine.capabilities.lacking`,
    the target wrapped by :func:`lbfgs_verify.engine.capabilities.guarded`) and every distinct failure is kept as a
    :class:`Cause`.
    """
    import time
    from dataclasses import replace

    from hypothesis.errors import Unsatisfiable, UnsatisfiedAssumption

    from lbfgs_verify.engine.capabilities import (
        LackedFeatureUsed,
        guarded,
        lacking,
        needs_reason,
        recording_hits,
        skip_from_file,
        skip_reason,
    )
    from lbfgs_verify.engine.recordings import shared_recordings
    from lbfgs_verify.engine.runs import collecting_notes
    from lbfgs_verify.targets.kinds import kind_skip_reason

    start = time.perf_counter()
    reason = (kind_skip_reason(prop.id, ctx.target) or needs_reason(prop.needs, ctx.lacks)
              or skip_from_file(prop.id, ctx.skips))
    if reason:
        return PropertyResult(prop.id, Status.SKIP, reason)
    run_ctx = replace(ctx, target=guarded(ctx.target, ctx.lacks)) if ctx.lacks else ctx
    hits: set[str] = set()
    try:
        with lacking(ctx.lacks), recording_hits() as hits, shared_recordings(), collecting_notes() as notes:
            prop.check(run_ctx)
    except PropertySkipped as exc:
        return PropertyResult(prop.id, Status.SKIP, str(exc), seconds=time.perf_counter() - start)
    except (Unsatisfiable, UnsatisfiedAssumption, LackedFeatureUsed):
        lacked = ", ".join(skip_reason(f) for f in sorted(hits or ctx.lacks))
        return PropertyResult(prop.id, Status.SKIP, f"every example it draws uses a lacked feature: {lacked}",
                              seconds=time.perf_counter() - start)
    except BaseExceptionGroup as group:
        causes = [cause_of(prop, exc) for exc in _leaves(group)]
        status = Status.FAIL if all(isinstance(e, AssertionError) for e in _leaves(group)) else Status.ERROR
        detail = "\n\n".join(f"cause {i} of {len(causes)}: {c.detail}" for i, c in enumerate(causes, 1))
        return PropertyResult(prop.id, status, detail, causes[0].evidence, time.perf_counter() - start, causes)
    except AssertionError as exc:  # PropertyFailed included
        cause = cause_of(prop, exc)
        return PropertyResult(prop.id, Status.FAIL, cause.detail, cause.evidence, time.perf_counter() - start,
                              [cause])
    except Exception as exc:
        cause = cause_of(prop, exc)
        return PropertyResult(prop.id, Status.ERROR, cause.detail, cause.evidence, time.perf_counter() - start,
                              [cause])
    finding = next((n for n in notes if n.startswith("finding: ")), "")  # shown in the table (issue 20)
    return PropertyResult(prop.id, Status.PASS, finding, seconds=time.perf_counter() - start, notes=notes)


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def cause_of(prop: Property, exc: BaseException) -> Cause:
    """The :class:`Cause` of one failure: an exception the target raised is keyed by its type and origin (so
    that the same crash groups across properties); a violated condition by the property and the place that
    checks it."""
    from lbfgs_verify.engine.runs import exception_origin

    evidence = dict(getattr(exc, "evidence", {}) or {})
    root = exc.__cause__ if isinstance(exc, PropertyFailed) and exc.__cause__ is not None else None
    while isinstance(root, PropertyFailed) and root.__cause__ is not None:  # re-raised with more context
        evidence = {**dict(getattr(root, "evidence", {}) or {}), **evidence}
        root = root.__cause__
    if isinstance(root, PropertyFailed):
        root = None
    if root is None and not isinstance(exc, AssertionError):
        root = exc
    message = str(exc)
    if root is not None:
        origin = evidence.get("origin") or exception_origin(root)
        key = f"{type(root).__name__} at {origin}" if origin else type(root).__name__
        if root is exc:
            tb = "".join(traceback.format_exception(exc, limit=-3))
            message = f"{type(exc).__name__}: {exc}\n{tb}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].name}:{frames[-1].lineno}" if frames else type(exc).__name__
        key = condition_fingerprint(prop.id, where, evidence)
    summary = message.splitlines()[0] if message else type(exc).__name__
    notes = _notes(exc)
    detail = f"{message}\n{notes}".rstrip() if notes else message
    return Cause(key, summary, detail, evidence)


def condition_fingerprint(property_id: str, where: str, evidence: dict[str, Any]) -> str:
    """The fingerprint of a violated condition (docs/properties.md, "One cause, one message"):

    - a control run's diagnosis (``evidence["diagnosis"]``, e.g. a resumed run equal to a cold start) is the
      cause, whichever property ran into it: ``"diagnosis: cold start"``;
    - a run that left the run it must follow is fingerprinted by where it first differs: the problem, the first
      differing step, the key and the values (``"rosenbrock[...]: step 3: state_dict.state[0].d: ..."``), so
      that properties drawing the same scenario and hitting the same difference are one cause;
    - anything else by the property and the place that checks it (never shared)."""
    if evidence.get("diagnosis"):
        return f"diagnosis: {evidence['diagnosis']}"
    if evidence.get("first_differing_step") is not None and evidence.get("path"):
        return (f"{evidence.get('problem', '?')}: step {evidence['first_differing_step']}: {evidence['path']}: "
                f"{evidence.get('difference', '')}")
    return f"{property_id}: {where}"


def _notes(exc: BaseException) -> str:
    """hypothesis' notes (the shrunk falsifying example), without the lines that point into the harness."""
    notes = getattr(exc, "__notes__", None) or []
    # hypothesis' "@reproduce_failure(...) as a decorator on your test function" means nothing to a user who has
    # no test function: the CLI and the plugin offer a standalone script instead (--repro / --lbfgs-repro).
    kept = [n for n in notes if not n.startswith(("Explanation:", "The test ", "    # "))
            and "reproduce_failure" not in n]
    return "".join(f"{n}\n" for n in kept)
