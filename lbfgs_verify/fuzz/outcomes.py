"""Outcome classes of the fuzzer and how one case is classified.

Valid states, per route: ``exact`` (every continuation bitwise equal to the uninterrupted run on the CPU),
``diverged`` (first differing step, key, ULPs), ``crashed`` (exception and where).

Corrupted states, per class, by what the target did: ``rejected-at-load`` (an exception from
``load_state_dict`` or from ``torch.load(weights_only=True)``, optimizer unchanged), ``warned-at-load`` (a
warning, load done), ``error-at-step`` (loaded silently, a later ``step()`` raised), ``silent`` (loaded
silently and the run went elsewhere), ``absorbed`` (loaded silently and the continuation is exactly the
uninterrupted run: the damage did not matter), ``every-load-diverges`` (loaded silently, but the undamaged
state loaded the same way does not continue exactly either: the differential control says the resume fails
whatever the damage, so the damage is judged only by whether it was refused; not a finding of the class),
``rejected-but-changed`` (raised at load after changing the optimizer) and ``code-executed`` (a hostile pickle
ran). ``silent`` and ``error-at-step`` are given only when the undamaged load continues exactly. The policy comes
from issue 8 and the reference's contract: torch/optim/optimizer.py validates only group counts and parameter counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VALID_OUTCOMES: tuple[str, ...] = ("exact", "diverged", "crashed")
EVERY_LOAD_DIVERGES = "every-load-diverges"
"""A corruption loaded silently where the undamaged state, loaded the same way, does not continue exactly
either (the differential control): the divergence is the resume's, not the damage's, so it is not a finding of
the corruption class; the routes and ``resume.*`` report the resume failure."""

CORRUPT_OUTCOMES: tuple[str, ...] = ("rejected-at-load", "warned-at-load", "absorbed", "error-at-step", "silent",
                                     EVERY_LOAD_DIVERGES, "rejected-but-changed", "code-executed")
FINDINGS: frozenset[str] = frozenset({"diverged", "crashed", "error-at-step", "silent", "rejected-but-changed",
                                      "code-executed"})
"""Outcomes that are defects of the target (exit status 1)."""


@dataclass
class CaseOutcome:
    """The classified outcome of one generated case.

    Attributes:
        kind: ``"valid"`` or ``"corrupt"``.
        name: the route (valid) or the corruption class (corrupt).
        outcome: one of :data:`VALID_OUTCOMES` / :data:`CORRUPT_OUTCOMES`.
        message: what happened (divergence with step, key and ULPs; exception and where; warning text).
        example: JSON-able description of the case (state, hyperparameters, split, corruption).
        reproduction: a standalone script (findings only; see :mod:`lbfgs_verify.engine.repro`).
    """

    kind: str
    name: str
    outcome: str
    message: str
    example: dict[str, Any] = field(default_factory=dict)
    reproduction: str | None = None
    state: Any = field(default=None, repr=False, compare=False)
    applied: Any = field(default=None, repr=False, compare=False)

    @property
    def is_finding(self) -> bool:
        return self.outcome in FINDINGS

    def to_json(self) -> dict[str, Any]:
        valid = self.kind == "valid"
        out = {"kind": self.kind, "route": self.name if valid else self.example.get("route"),
               "class": None if valid else self.name, "outcome": self.outcome, "message": self.message,
               "example": self.example}
        if self.reproduction is not None:
            out["reproduction"] = self.reproduction
        return out
