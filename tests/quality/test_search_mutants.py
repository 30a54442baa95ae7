"""The properties added for the survivors of the mutation run (docs/mutation.md) catch the slips they were built
for: each planted search of ``search_mutants.py`` fails its property, while torch.optim.LBFGS, the reference and
the reference with an unchanged copy of its search pass. Quick budget here; the same at ci is ``slow``."""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify import reference
from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, PropertyResult, Status, load_all, run_property
from lbfgs_verify.targets.load import Target
from tests.quality.search_mutants import SEARCH_MUTANTS, _PlantedSearch

load_all()

NEW = ("line_search.extrapolation_schedule", "line_search.accepts_boundary_points")


class UnchangedCopy(_PlantedSearch):
    """Correct: the reference running a recompiled, unchanged copy of its search (the planting itself is sound)."""


CORRECT = {"torch.optim:LBFGS": torch.optim.LBFGS, "lbfgs_verify.reference:LBFGS": reference.LBFGS,
           "UnchangedCopy": UnchangedCopy}


def run(property_id: str, factory: type, budget: str) -> PropertyResult:
    target = Target(spec=f"{factory.__module__}:{factory.__name__}", factory=factory)
    return run_property(REGISTRY[property_id], CheckContext(target, mode="semantics", budget=BUDGETS[budget]))


def test_every_new_property_has_a_planted_search() -> None:
    assert set(SEARCH_MUTANTS.values()) == set(NEW)


@pytest.mark.parametrize("cls", list(SEARCH_MUTANTS), ids=lambda c: c.__name__)
def test_planted_search_fails_its_property(cls: type) -> None:
    result = run(SEARCH_MUTANTS[cls], cls, "quick")
    assert result.status is Status.FAIL, f"{cls.__name__}: {result.status.value}\n{result.detail[:2000]}"
    assert "problem" in result.detail, "a failure names the problem"
    assert " raised " not in result.detail, "the planted search runs: it fails the property, it does not crash"


@pytest.mark.parametrize("name", list(CORRECT))
@pytest.mark.parametrize("property_id", NEW)
def test_correct_optimizers_pass(name: str, property_id: str) -> None:
    result = run(property_id, CORRECT[name], "quick")
    assert result.status is Status.PASS, f"{name}: {result.status.value}\n{result.detail[:2000]}"


@pytest.mark.slow
@pytest.mark.parametrize("cls", list(SEARCH_MUTANTS), ids=lambda c: c.__name__)
def test_planted_search_fails_its_property_at_ci(cls: type) -> None:
    assert run(SEARCH_MUTANTS[cls], cls, "ci").status is Status.FAIL


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CORRECT))
@pytest.mark.parametrize("property_id", NEW)
def test_correct_optimizers_pass_at_ci(name: str, property_id: str) -> None:
    assert run(property_id, CORRECT[name], "ci").status is Status.PASS
