"""The kill set of the mutation run on ``lbfgs_verify/line_search/strong_wolfe.py`` (``scripts/mutation.sh``).

A FAST subset of the property suite, in properties mode, run against ``lbfgs_verify.reference.LBFGS`` — the
optimizer that calls the (possibly mutated) strong-Wolfe search. A mutant is killed when one of these
properties fails (or errors) for it. Unmutated, every one passes: these are ordinary tests of the reference
too. Budget: ``LBFGS_VERIFY_MUTATION_BUDGET`` (``quick`` by default, ``ci`` for the full figure).
"""

from __future__ import annotations

import os

import pytest

from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, Status, load_all, run_property
from lbfgs_verify.targets.load import Target

load_all()

KILL_SET = (
    "mathematics.strong_wolfe",
    "line_search.more_thuente_functions",
    "line_search.sufficient_decrease_scales_with_step",
    "line_search.curvature_at_far_end",
    "line_search.interpolation_exact_on_quadratics",
    "line_search.budget_without_wolfe_point",
    "line_search.extrapolation_schedule",
    "line_search.accepts_boundary_points",
    "behaviour.max_eval",
    "behaviour.stop_reasons",
    "behaviour.func_evals",
    "mathematics.descent_direction",
)
"""Properties that drive ``line_search_fn='strong_wolfe'`` through ``step()`` and judge its outcome."""

BUDGET = os.environ.get("LBFGS_VERIFY_MUTATION_BUDGET", "quick")


@pytest.mark.parametrize("property_id", KILL_SET)
def test_reference_passes(property_id: str) -> None:
    target = Target("lbfgs_verify.reference:LBFGS", _reference_factory())
    result = run_property(REGISTRY[property_id], CheckContext(target, budget=BUDGETS[BUDGET]))
    assert result.status in (Status.PASS, Status.SKIP), f"{property_id}: {result.status.value}\n{result.detail}"


def _reference_factory() -> type:
    from lbfgs_verify.reference import LBFGS

    return LBFGS
