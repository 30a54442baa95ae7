"""The property registry: every property has a stable ID, a category, the bug class it catches, and a check.

A check is a function ``check(ctx: CheckContext) -> None`` that raises :class:`PropertyFailed` with evidence
when the target violates the property, :class:`PropertySkipped` when it does not apply (no CUDA, say), and
returns normally when it holds. Checks that explore inputs use hypothesis with ``ctx.settings()``; when one
fails, hypothesis' shrunk "Falsifying example" notes are kept in the result's detail.

The same registry feeds the ``lbfgs-verify check`` command and the pytest suite (``lbfgs_verify.suite``).
"""

from __future__ import annotations

import enum
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lbfgs_verify.evidence import PropertyFailed
from lbfgs_verify.targets import Target

__all__ = ["PropertyFailed"]  # re-exported: defined in lbfgs_verify.evidence, shared with the run engine

MODES = ("properties", "conformance")
"""``properties``: judged by mathematics and behaviour; ``conformance``: also bitwise equal to torch.optim.LBFGS."""


class Status(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"


class PropertySkipped(Exception):
    """The property does not apply here (e.g. no CUDA device); the message says why."""


@dataclass(frozen=True)
class Budget:
    """How hard to look. ``profile`` names the hypothesis profile (see :mod:`lbfgs_verify.hypothesis_profiles`).

    Attributes:
        name: ``quick``, ``ci`` or ``thorough``.
        profile: the hypothesis profile used by the checks.
        max_examples: examples per hypothesis-driven check (overrides the profile's).
        steps: length of the trajectories that resume and trace checks record.
        full_continuations: how many random split points get a full continuation (all get the one-step check).
        problems: how many suite problems the convergence checks visit (``None``: all).
    """

    name: str
    profile: str
    max_examples: int
    steps: int
    full_continuations: int
    problems: int | None

    def settings(self, **overrides: Any) -> Any:
        """hypothesis ``settings`` for this budget (profile + ``max_examples``), with overrides."""
        from hypothesis import settings

        from lbfgs_verify import hypothesis_profiles  # noqa: F401  (registers the profiles)

        base = settings.get_profile(self.profile)
        overrides.setdefault("report_multiple_bugs", False)  # one shrunk example per failing property
        return settings(base, max_examples=overrides.pop("max_examples", self.max_examples), **overrides)


BUDGETS: dict[str, Budget] = {
    "quick": Budget("quick", "quick", max_examples=3, steps=6, full_continuations=1, problems=6),
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
        modes: the modes in which the property runs.
        check: the function that checks it.
    """

    id: str
    category: str
    title: str
    catches: str
    modes: frozenset[str]
    check: Callable[[CheckContext], None]


@dataclass
class PropertyResult:
    """The outcome of one property on one target; ``to_json()`` gives the ``--json`` record."""

    property: str
    status: Status
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def reason(self) -> str:
        """The first line of the detail, for the terminal table."""
        return self.detail.splitlines()[0] if self.detail else ""

    def to_json(self) -> dict[str, Any]:
        return {"property": self.property, "status": self.status.value, "detail": self.detail,
                "evidence": self.evidence, "seconds": round(self.seconds, 3)}


REGISTRY: dict[str, Property] = {}


def register(
    id: str, *, category: str, title: str, catches: str, modes: Iterable[str] = MODES
) -> Callable[[Callable[[CheckContext], None]], Callable[[CheckContext], None]]:
    """Decorator adding a check to :data:`REGISTRY` under ``id`` (IDs are unique and stable)."""
    modes = frozenset(modes)
    unknown = modes - set(MODES)
    if unknown:
        raise ValueError(f"property {id!r}: unknown modes {sorted(unknown)}; choose from {MODES}")

    def decorate(check: Callable[[CheckContext], None]) -> Callable[[CheckContext], None]:
        if id in REGISTRY:
            raise ValueError(f"property id {id!r} registered twice")
        REGISTRY[id] = Property(id, category, title, catches, modes, check)
        return check

    return decorate


def properties_for(mode: str) -> list[Property]:
    """The registered properties that run in ``mode``, in a stable order (category, then id)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    load_all()
    return sorted((p for p in REGISTRY.values() if mode in p.modes), key=lambda p: (p.category, p.id))


def load_all() -> None:
    """Import every property module so that they register (idempotent)."""
    import importlib
    import pkgutil

    import lbfgs_verify.properties as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in ("base", "runner"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def run_property(prop: Property, ctx: CheckContext) -> PropertyResult:
    """Run one check and turn its outcome into a :class:`PropertyResult` (never raises for the target's faults)."""
    import time

    start = time.perf_counter()
    try:
        prop.check(ctx)
    except PropertySkipped as exc:
        return PropertyResult(prop.id, Status.SKIP, str(exc), seconds=time.perf_counter() - start)
    except PropertyFailed as exc:
        return PropertyResult(prop.id, Status.FAIL, _with_notes(exc), exc.evidence, time.perf_counter() - start)
    except AssertionError as exc:
        return PropertyResult(prop.id, Status.FAIL, _with_notes(exc), seconds=time.perf_counter() - start)
    except Exception as exc:
        tb = "".join(traceback.format_exception(exc, limit=-3))
        detail = f"{type(exc).__name__}: {exc}\n{_notes(exc)}{tb}"
        return PropertyResult(prop.id, Status.ERROR, detail, seconds=time.perf_counter() - start)
    return PropertyResult(prop.id, Status.PASS, "", seconds=time.perf_counter() - start)


def _notes(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", None) or []
    return "".join(f"{n}\n" for n in notes)


def _with_notes(exc: BaseException) -> str:
    """The message plus hypothesis' notes (the shrunk falsifying example)."""
    notes = _notes(exc)
    return f"{exc}\n{notes}".rstrip() if notes else str(exc)
