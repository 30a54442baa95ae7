"""The kill set of the mutation run on ``lbfgs_verify/reference/lbfgs.py`` (``scripts/mutation.sh reference``).

Every property of the ``properties`` and ``semantics`` levels (what ``lbfgs-verify check --mode semantics`` runs;
the ``conformance`` level, bitwise comparisons with torch, is the second stage), run against
``lbfgs_verify.reference.LBFGS``; the ``cuda.*`` properties skip without a CUDA device. A mutant is killed
when one of them fails or errors for it. Unmutated, every one passes: these are ordinary tests of the reference
too. Budget:
``LBFGS_VERIFY_MUTATION_BUDGET`` (``quick`` by default, ``ci`` for the full figure).
"""

from __future__ import annotations

import os

import pytest

from lbfgs_verify.properties.base import REGISTRY, Status, load_all
from tests.quality.verdict import verdict

load_all()

KILL_SET = tuple(pid for pid in REGISTRY if REGISTRY[pid].level in ("properties", "semantics"))
"""Every registered property of the ``properties`` and ``semantics`` levels, in registration order."""

BUDGET = os.environ.get("LBFGS_VERIFY_MUTATION_BUDGET", "quick")


def test_kill_set_is_the_single_target_suite() -> None:
    levels = {REGISTRY[pid].level for pid in KILL_SET}
    assert levels == {"properties", "semantics"}, levels
    assert len(KILL_SET) >= 40, KILL_SET


@pytest.mark.parametrize("property_id", KILL_SET)
def test_reference_passes(property_id: str) -> None:
    from lbfgs_verify.reference import LBFGS

    result = verdict(LBFGS, property_id, BUDGET, mode="semantics")
    assert result.status in (Status.PASS, Status.SKIP), f"{property_id}: {result.status.value}\n{result.detail}"
