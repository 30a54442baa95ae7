"""The state_dict fuzzer (``lbfgs-verify fuzz``): reachable states x routes x corruption classes -> outcomes.

Public API: :func:`run_fuzz` -> :class:`FuzzReport` (``to_json()``, ``matrix()``, ``findings``); the
strategies of reachable states are in :mod:`lbfgs_verify.fuzz.states`, the corruption classes in
:mod:`lbfgs_verify.fuzz.corruptions`, the routes in :data:`lbfgs_verify.engine.ROUTES`.
"""

from lbfgs_verify.fuzz.outcomes import CORRUPT_OUTCOMES, FINDINGS, VALID_OUTCOMES, CaseOutcome
from lbfgs_verify.fuzz.runner import FuzzReport, evaluate_corruption, evaluate_route, run_fuzz

__all__ = ["CORRUPT_OUTCOMES", "FINDINGS", "VALID_OUTCOMES", "CaseOutcome", "FuzzReport", "evaluate_corruption",
           "evaluate_route", "run_fuzz"]
