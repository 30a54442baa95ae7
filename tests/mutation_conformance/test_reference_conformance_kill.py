"""Second stage of the mutation run on ``lbfgs_verify/reference/lbfgs.py`` (``scripts/mutation.sh``): the
reference is bitwise ``torch.optim.LBFGS``'s twin.

The reference's contract is to be torch's twin to the bit (same trajectory, same state, states exchangeable both
ways, torch's errors and hooks, the golden traces). A mutant of the reference that survives the first stage
(``tests/mutation/test_kill_reference.py``, levels ``properties`` and ``semantics``) but changes bits breaks
that contract; the properties of the ``conformance`` level below find it. Unmutated, the reference passes them all.
"""

from __future__ import annotations

import os

import pytest

from lbfgs_verify.properties.base import REGISTRY, Status, load_all
from tests.quality.verdict import verdict

load_all()

CONFORMANCE_KILL_SET = tuple(pid for pid in REGISTRY if REGISTRY[pid].level == "conformance")
"""Every property comparing the target with torch.optim.LBFGS bit for bit (trajectory, state both ways, errors,
hooks, golden traces)."""

BUDGET = os.environ.get("LBFGS_VERIFY_MUTATION_BUDGET", "quick")


@pytest.mark.parametrize("property_id", CONFORMANCE_KILL_SET)
def test_reference_is_bitwise_torch(property_id: str) -> None:
    from lbfgs_verify.reference import LBFGS

    result = verdict(LBFGS, property_id, BUDGET, mode="conformance")
    assert result.status in (Status.PASS, Status.SKIP), f"{property_id}: {result.status.value}\n{result.detail}"
