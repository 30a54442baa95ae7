"""Planted bugs in the strong-Wolfe search, for ``line_search.extrapolation_schedule`` and
``line_search.accepts_boundary_points``: the reference LBFGS running a copy of
:mod:`lbfgs_verify.line_search.strong_wolfe` with one comparison changed (each is a slip that keeps the search
working on smooth functions: it still ends at a strong-Wolfe point there).

``SEARCH_MUTANTS`` maps each planted optimizer to the property that must FAIL for it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import lbfgs_verify.line_search.strong_wolfe as search_module
import lbfgs_verify.reference.lbfgs as reference_module
from lbfgs_verify.reference import LBFGS


def _search_with(replacements: tuple[tuple[str, str], ...]) -> Callable[..., Any]:
    """``strong_wolfe`` compiled from its source with each ``old -> new`` applied (every ``old`` must occur)."""
    source = inspect.getsource(search_module)
    for old, new in replacements:
        if old not in source:
            raise AssertionError(f"planted bug: {old!r} no longer occurs in strong_wolfe.py")
        source = source.replace(old, new)
    namespace: dict[str, Any] = {"__name__": search_module.__name__}  # dataclasses look the module up by name
    exec(compile(source, search_module.__file__, "exec"), namespace)
    return namespace["strong_wolfe"]


class _PlantedSearch(LBFGS):
    """The reference with ``strong_wolfe`` swapped for a planted copy during ``step()``."""

    REPLACEMENTS: tuple[tuple[str, str], ...] = ()

    def step(self, closure: Any) -> Any:
        original = reference_module.strong_wolfe
        reference_module.strong_wolfe = _search_with(self.REPLACEMENTS)
        try:
            return super().step(closure)
        finally:
            reference_module.strong_wolfe = original


class StrictNotLowerTest(_PlantedSearch):
    """Bracketing: 'not lower than the previous trial' written f_new > f_prev (a trial exactly as high goes on)."""

    REPLACEMENTS = (("ls_iter > 1 and f_new >= f_prev", "ls_iter > 1 and f_new > f_prev"),)


class MidpointWhereNoMinimiser(_PlantedSearch):
    """Cubic interpolation: d₂² = 0 (a straight line) treated as 'no minimiser', so extrapolation takes the
    midpoint of [t + 0.01(t - t_prev), 10t] instead of the bound 10t."""

    REPLACEMENTS = (("if d2_square >= 0:", "if d2_square > 0:"),)


class BracketWidthNonStrict(_PlantedSearch):
    """Zoom: a bracket exactly tolerance_change wide counts as collapsed (<= for <): the search gives up at once."""

    REPLACEMENTS = (("* d_norm < tolerance_change", "* d_norm <= tolerance_change"),)


class StrictSufficientDecrease(_PlantedSearch):
    """Sufficient decrease tested strictly (f < f0 + c₁·t·φ'(0)), in the extrapolation and in the zoom."""

    REPLACEMENTS = (("f_new > (loss + c1 * t * gtd)", "f_new >= (loss + c1 * t * gtd)"),)


class StrictCurvature(_PlantedSearch):
    """Strong curvature tested strictly (|φ'(t)| < c₂·|φ'(0)|), in the extrapolation and in the zoom."""

    REPLACEMENTS = (("abs(gtd_new) <= -c2 * gtd", "abs(gtd_new) < -c2 * gtd"),)


SEARCH_MUTANTS: dict[type[LBFGS], str] = {
    StrictNotLowerTest: "line_search.extrapolation_schedule",
    MidpointWhereNoMinimiser: "line_search.extrapolation_schedule",
    BracketWidthNonStrict: "line_search.extrapolation_schedule",
    StrictSufficientDecrease: "line_search.accepts_boundary_points",
    StrictCurvature: "line_search.accepts_boundary_points",
}
