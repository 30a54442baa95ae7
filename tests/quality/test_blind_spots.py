"""The blind spots of issue 11 are closed: each planted mutant of ``blind_spot_bugs.py`` fails the property named
for its class — stops that should happen (``stopping.*``), the dict handed to ``load_state_dict``
(``state.loaded_dict_untouched``, ``state.same_dict_loaded_twice``), the line search off the beaten path
(``line_search.*``) — and the blame cases are judged rightly: a correct optimizer with a stride-2 one-element
state tensor passes (no ``error``), a NaN-producing optimizer with torch's defaults passes ``behaviour.defaults``
and fails the properties about its real bug.

The references pass the new properties: ``torch.optim.LBFGS`` and ``lbfgs_verify.reference.LBFGS`` pass
``stopping.*`` and ``line_search.*``; torch 2.13 fails the two load-reuse properties through its aliasing defect
(docs/torch-2.13-lbfgs.md, defect 1) while the reference passes them.

Quick budget by default; the same at the ci budget is ``slow``.
"""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify import reference
from lbfgs_verify.properties.base import BUDGETS, REGISTRY, CheckContext, PropertyResult, Status, load_all, run_property
from lbfgs_verify.targets.load import Target
from tests.quality.blind_spot_bugs import BLIND_SPOT_CORRECT, BLIND_SPOT_MUTANTS
from tests.quality.search_mutants import SEARCH_MUTANTS

load_all()

NEW_PROPERTIES = sorted(p for p in REGISTRY if p.startswith(("stopping.", "line_search.")))
LOAD_REUSE = ("state.loaded_dict_untouched", "state.same_dict_loaded_twice")
REFERENCES = {"torch.optim:LBFGS": torch.optim.LBFGS, "lbfgs_verify.reference:LBFGS": reference.LBFGS}


def run(property_id: str, factory: type, budget: str) -> PropertyResult:
    target = Target(spec=f"{factory.__module__}:{factory.__name__}", factory=factory)
    return run_property(REGISTRY[property_id], CheckContext(target, budget=BUDGETS[budget]))


def describe(result: PropertyResult) -> str:
    return f"{result.property}: {result.status.value}\n{result.detail[:3000]}"


def _mutant_cases() -> list[tuple[type, str]]:
    return [(cls, pid) for cls, ids in BLIND_SPOT_MUTANTS.items() for pid in ids]


def _correct_cases() -> list[tuple[type, str]]:
    return [(cls, pid) for cls, ids in BLIND_SPOT_CORRECT.items() for pid in ids]


def _ids(case: tuple[type, str]) -> str:
    return f"{case[0].__name__}-{case[1]}"


def test_every_new_property_is_registered_and_has_a_mutant() -> None:
    assert len(NEW_PROPERTIES) == 13, NEW_PROPERTIES
    caught = {pid for ids in BLIND_SPOT_MUTANTS.values() for pid in ids} | set(SEARCH_MUTANTS.values())
    assert set(NEW_PROPERTIES) | set(LOAD_REUSE) <= caught


@pytest.mark.parametrize("case", _mutant_cases(), ids=_ids)
def test_mutant_fails_its_property_at_quick(case: tuple[type, str]) -> None:
    cls, property_id = case
    result = run(property_id, cls, "quick")
    assert result.status is Status.FAIL, f"{cls.__name__} ({cls.__doc__.splitlines()[0]}):\n" + describe(result)
    assert "problem" in result.detail, "a failure names the problem"


@pytest.mark.parametrize("case", _correct_cases(), ids=_ids)
def test_correct_or_differently_broken_optimizer_passes(case: tuple[type, str]) -> None:
    cls, property_id = case
    result = run(property_id, cls, "quick")
    assert result.status is Status.PASS, describe(result)


@pytest.mark.parametrize("property_id", [*NEW_PROPERTIES, *LOAD_REUSE])
def test_reference_passes_the_new_properties(property_id: str) -> None:
    result = run(property_id, reference.LBFGS, "quick")
    assert result.status is Status.PASS, describe(result)


@pytest.mark.parametrize("property_id", NEW_PROPERTIES)
def test_torch_passes_stopping_and_line_search(property_id: str) -> None:
    result = run(property_id, torch.optim.LBFGS, "quick")
    assert result.status is Status.PASS, describe(result)


def test_torch_fails_the_load_reuse_properties_through_its_aliasing() -> None:
    """torch 2.13 keeps the loaded dict's tensors (defect 1): prev_flat_grad is rewritten in place."""
    untouched = run("state.loaded_dict_untouched", torch.optim.LBFGS, "quick")
    assert untouched.status is Status.FAIL and "prev_flat_grad" in untouched.detail, describe(untouched)
    twice = run("state.same_dict_loaded_twice", torch.optim.LBFGS, "quick")
    assert twice.status is Status.FAIL and "second optimizer" in twice.detail, describe(twice)


@pytest.mark.slow
@pytest.mark.parametrize("case", _mutant_cases(), ids=_ids)
def test_mutant_fails_its_property_at_ci(case: tuple[type, str]) -> None:
    cls, property_id = case
    result = run(property_id, cls, "ci")
    assert result.status is Status.FAIL, describe(result)


@pytest.mark.slow
@pytest.mark.parametrize("case", _correct_cases(), ids=_ids)
def test_correct_cases_pass_at_ci(case: tuple[type, str]) -> None:
    result = run(case[1], case[0], "ci")
    assert result.status is Status.PASS, describe(result)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REFERENCES))
@pytest.mark.parametrize("property_id", NEW_PROPERTIES)
def test_references_pass_the_new_properties_at_ci(name: str, property_id: str) -> None:
    result = run(property_id, REFERENCES[name], "ci")
    assert result.status is Status.PASS, describe(result)
