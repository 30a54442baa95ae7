"""``behaviour.change_history_size`` against two bugs of a lowered ``history_size`` planted in the reference (the
survivors of an earlier mutation run, docs/mutation.md): pairs beyond the new size kept by ``step()``, and a
``state_dict()`` that saves them; the reference itself passes."""

from __future__ import annotations

from typing import Any

import pytest

import lbfgs_verify.reference.lbfgs as reference_module
from lbfgs_verify.properties import Status
from lbfgs_verify.reference import LBFGS
from lbfgs_verify.reference.checkpoint import snapshot_state_dict
from tests.quality.verdict import verdict


class KeepsPairsBeyondLoweredSize(LBFGS):
    """Bug: ``step()`` does not drop the oldest pairs when ``history_size`` was lowered (it only stops adding)."""

    def step(self, closure: Any) -> Any:
        original = reference_module._fit_history
        reference_module._fit_history = lambda state, history_size: None
        try:
            return super().step(closure)
        finally:
            reference_module._fit_history = original


class SavesPairsBeyondLoweredSize(LBFGS):
    """Bug: ``state_dict()`` saves every pair held, more than the ``history_size`` it saves with."""

    def state_dict(self) -> dict[str, Any]:
        return snapshot_state_dict(self)


PROPERTY = "behaviour.change_history_size"


@pytest.mark.parametrize("budget", ["quick", "ci"])
@pytest.mark.parametrize("mutant", [KeepsPairsBeyondLoweredSize, SavesPairsBeyondLoweredSize])
def test_lowered_history_size_bugs_fail(mutant: type, budget: str) -> None:
    result = verdict(mutant, PROPERTY, budget, mode="semantics")
    assert result.status is Status.FAIL, (result.status, result.detail)
    assert "history_size" in result.detail and "→" in result.detail, result.detail


def test_reference_passes_history_size_changes() -> None:
    result = verdict(LBFGS, PROPERTY, mode="semantics")
    assert result.status is Status.PASS, result.detail
