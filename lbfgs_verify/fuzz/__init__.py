"""The state_dict fuzzer (``lbfgs-verify fuzz``): reachable states x routes x corruption classes -> outcomes.

Public API: :func:`run_fuzz` -> :class:`FuzzReport` (``to_json()``, ``matrix()``, ``findings``); the
strategies of reachable states are in :mod:`lbfgs_verify.fuzz.states`, the corruption classes in
:mod:`lbfgs_verify.fuzz.corruptions`, the routes in :data:`lbfgs_verify.engine.runs.ROUTES`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CORRUPT_OUTCOMES": "outcomes", "FINDINGS": "outcomes", "VALID_OUTCOMES": "outcomes", "CaseOutcome": "outcomes",
    "FuzzReport": "runner", "evaluate_corruption": "runner", "evaluate_route": "runner", "run_fuzz": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import on first use (PEP 562): ``lbfgs-verify --help`` builds the fuzz parser without importing torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
