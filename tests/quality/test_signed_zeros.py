"""Signed zeros (issue 19): at ``properties`` and ``semantics`` optimizer state compares with +0.0 == -0.0 and a
difference only in the sign of a zero there is a note; parameters and losses stay bitwise at every level, and
``conformance`` is bitwise everywhere (docs/properties.md, "Signed zeros"; IEEE 754-2019 §6.3 leaves the sign
of a zero result to the operation: ``-g`` of a zero gradient is -0.0).

The planted optimizers are the reference with one change each:

- ``ZeroSignOnLoad`` flips the sign of every zero of the direction ``d`` when it loads a state (a correct
  optimizer may hold -0.0 where the uninterrupted run holds 0.0: the false failure of issue 19 point 1): it
  passes ``resume.*`` and ``state.*`` at ``properties`` with a note, and fails ``resume.torch_save`` at
  ``conformance``;
- ``NegativeZeroParameters`` writes -0.0 into the zero entries of its parameters after every step once it has
  loaded a state: a parameter's sign is never excused, so the resume fails at ``properties``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify import reference
from lbfgs_verify.compare.bitwise import first_difference
from lbfgs_verify.compare.environment import state_zero_sign, state_zero_sign_for
from lbfgs_verify.compare.trace import StepRecord
from lbfgs_verify.engine.evidence import PropertyFailed
from lbfgs_verify.engine.runs import TORCH_SAVE, Scenario, step_divergence
from lbfgs_verify.problems.base import Problem
from lbfgs_verify.properties.base import BUDGETS, CheckContext, Status
from lbfgs_verify.properties.resume import check_transport
from lbfgs_verify.targets.load import Target
from tests.quality.verdict import verdict


class ZeroSignOnLoad(reference.LBFGS):
    """The reference, except that ``load_state_dict`` negates every zero of ``d`` (0.0 <-> -0.0)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for state in self.state.values():
            d = state.get("d")
            if isinstance(d, Tensor):
                state["d"] = torch.where(d == 0, -d, d)


class NegativeZeroParameters(reference.LBFGS):
    """The reference, except that after a load every step leaves -0.0 in its parameters' zero entries."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._planted_loaded = True

    def step(self, closure: Any) -> Any:  # type: ignore[override]
        loss = super().step(closure)
        if getattr(self, "_planted_loaded", False):
            with torch.no_grad():
                for p in self.param_groups[0]["params"]:
                    p.copy_(torch.where(p == 0, torch.full_like(p, -0.0), p))
        return loss


def _zero_unused_problem() -> Problem:
    """A quadratic in ``x`` plus a parameter the loss never touches that starts at +0.0 (and stays there: the
    uninterrupted run adds ±0 to +0.0, which is +0.0)."""
    centre = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)

    def objective(params: Sequence[Tensor]) -> Tensor:
        return ((params[0] - centre) ** 2 * torch.arange(1, 4, dtype=torch.float64)).sum()

    return Problem(name="quadratic_with_zero_unused[float64]", dimension=5, dtype=torch.float64,
                   start=(torch.zeros(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)),
                   objective=objective, tags=frozenset({"unused-param"}), source="tests/quality/test_signed_zeros.py")


def _context(cls: type, level: str) -> CheckContext:
    return CheckContext(Target(f"{cls.__module__}:{cls.__qualname__}", cls), mode=level, budget=BUDGETS["quick"])


def test_the_level_chooses_the_state_comparison() -> None:
    assert [state_zero_sign_for(level) for level in ("properties", "semantics", "conformance")] == [
        "ignore", "ignore", "bitwise"]


def test_state_zero_sign_is_a_note_but_parameter_zero_sign_a_divergence() -> None:
    x = torch.tensor([0.0, 1.0])
    negated = torch.tensor([-0.0, 1.0])

    def record(params: Tensor, d: Tensor) -> StepRecord:
        return StepRecord(index=3, returned=1.0, params=[params], state={"state": {0: {"d": d}}}, evaluations=[])

    from lbfgs_verify.engine.runs import collecting_notes

    with state_zero_sign("ignore"), collecting_notes() as notes:
        assert step_divergence([record(x, x)], [record(x, negated)]) is None
        divergence = step_divergence([record(x, x)], [record(negated, x)])
    assert notes and "sign of zero" in notes[0] and "state_dict.state[0].d" in notes[0]
    assert divergence is not None and divergence.step == 3 and divergence.difference.path == "params[0]"
    with state_zero_sign("bitwise"):
        bitwise = step_divergence([record(x, x)], [record(x, negated)])
    assert bitwise is not None and bitwise.difference.path == "state_dict.state[0].d"
    assert "only the sign of zero differs" in str(bitwise.difference)
    assert first_difference({"t": 0.0}, {"t": -0.0}, zero_sign="ignore") is None


@pytest.mark.parametrize("property_id", ["resume.torch_save", "resume.deepcopy_state_dict", "state.round_trip_exact",
                                         "state.load_independence", "state.same_dict_loaded_twice"])
def test_zero_sign_only_in_the_state_is_a_note_at_properties_and_a_failure_at_conformance(property_id: str) -> None:
    """The same draws (ci budget) at both levels: bitwise they meet the flipped zeros, so the pass at
    ``properties`` is not a pass by missing them."""
    strict = verdict(ZeroSignOnLoad, property_id, budget="ci", mode="conformance")
    assert strict.status is Status.FAIL, strict.detail[:2000]
    assert "only the sign of zero differs" in strict.detail and "state_dict.state" in strict.detail
    result = verdict(ZeroSignOnLoad, property_id, budget="ci", mode="properties")
    assert result.status is Status.PASS, result.detail[:2000]
    assert any("differs only in the sign of zero" in note for note in result.notes), result.notes
    assert result.to_json()["notes"] == result.notes


def test_zero_sign_in_a_parameter_fails_at_properties() -> None:
    scenario = Scenario(_zero_unused_problem(), {"lr": 1, "max_iter": 1, "history_size": 2, "line_search_fn": None},
                        3)
    check_transport(_context(reference.LBFGS, "properties"), TORCH_SAVE, st.just(scenario))  # the control
    with pytest.raises(PropertyFailed, match=r"params\[1\]: values differ first at element 0: 0.0 vs -0.0"):
        check_transport(_context(NegativeZeroParameters, "properties"), TORCH_SAVE, st.just(scenario))


@pytest.mark.parametrize("route_name", ["save-load", "in-memory"])
def test_the_fuzzer_compares_state_as_the_level_demands(route_name: str) -> None:
    """``lbfgs-verify fuzz --level``: the same state, the same route; a flipped zero of ``d`` is exact at
    ``properties`` and a divergence at ``conformance``, and the reference (the control) is exact at both."""
    from lbfgs_verify.engine.runs import ROUTES
    from lbfgs_verify.fuzz import evaluate_route
    from lbfgs_verify.fuzz.states import FUZZ_PROBLEMS, FuzzState

    scenario = Scenario(_zero_unused_problem(), {"lr": 1, "max_iter": 1, "history_size": 2, "line_search_fn": None},
                        5)
    state = FuzzState("history", FUZZ_PROBLEMS["rosenbrock"], scenario, 3, 2)
    route = ROUTES[route_name]
    flipped = Target("tests.quality.test_signed_zeros:ZeroSignOnLoad", ZeroSignOnLoad)
    control = Target("lbfgs_verify.reference:LBFGS", reference.LBFGS)
    for level in ("properties", "conformance"):
        assert evaluate_route(control, route, state, level=level).outcome == "exact", level
    assert evaluate_route(flipped, route, state, level="properties").outcome == "exact"
    strict = evaluate_route(flipped, route, state, level="conformance")
    assert strict.outcome == "diverged" and "only the sign of zero differs" in strict.message, strict.message
