"""The failure a check raises: a message plus JSON-able evidence (problem, split, step, key, ULPs).

Defined outside :mod:`lbfgs_verify.properties` so that the run engine (:mod:`lbfgs_verify.engine.runs`), the
properties, the fuzzer and the reports share it without importing torch here.
"""

from __future__ import annotations

from typing import Any


class PropertyFailed(AssertionError):
    """The target violates the property. ``evidence`` is JSON-able detail (split point, step, key, ULPs...)."""

    def __init__(self, message: str, evidence: dict[str, Any] | None = None):
        super().__init__(message)
        self.evidence = evidence or {}
