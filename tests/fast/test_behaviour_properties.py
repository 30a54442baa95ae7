"""The behaviour properties hold for torch.optim.LBFGS (except its known history_size defect) and the reference,
and their black-box helpers read only what they may (planted-bug evidence: tests/quality)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lbfgs_verify.compare.environment import quiet_known_warnings
from lbfgs_verify.engine.observe import (
    TORCH_DEFAULTS,
    observe,
    set_hyperparameter,
    state_counters,
)
from lbfgs_verify.engine.strategies import make_problem
from lbfgs_verify.properties.base import (
    BUDGETS,
    REGISTRY,
    CheckContext,
    PropertyFailed,
    Status,
    load_all,
    run_property,
)
from lbfgs_verify.properties.behaviour import _stop_reasons
from lbfgs_verify.targets.load import Target

load_all()
TORCH = Target("torch.optim:LBFGS", torch.optim.LBFGS)
BEHAVIOUR = sorted(pid for pid in REGISTRY if pid.startswith("behaviour."))
TORCH_KNOWN_FAILURES = {"behaviour.change_history_size", "behaviour.lowered_history_uses_newest"}
"""torch 2.13 raises IndexError after a history_size change (facts defect #4)."""


def _reference() -> Target:
    from lbfgs_verify.reference import LBFGS

    return Target("lbfgs_verify.reference:LBFGS", LBFGS)


@pytest.mark.parametrize("prop", BEHAVIOUR)
def test_torch(prop: str) -> None:
    result = run_property(REGISTRY[prop], CheckContext(TORCH, budget=BUDGETS["ci"]))
    if prop in TORCH_KNOWN_FAILURES:
        assert result.status is Status.FAIL and "IndexError" in result.detail, result.detail
    else:
        assert result.status is Status.PASS, result.detail


@pytest.mark.parametrize("prop", BEHAVIOUR)
def test_reference_satisfies(prop: str) -> None:
    result = run_property(REGISTRY[prop], CheckContext(_reference(), budget=BUDGETS["ci"]))
    assert result.status is Status.PASS, result.detail


def test_torch_defaults_table() -> None:
    params = [torch.zeros(2, requires_grad=True)]
    group = torch.optim.LBFGS(params).param_groups[0]
    assert {k: group[k] for k in TORCH_DEFAULTS} == TORCH_DEFAULTS


class OpaqueStateLBFGS(torch.optim.LBFGS):
    """torch's LBFGS whose state_dict hides torch's keys: the counter property must skip, not fail."""

    def state_dict(self) -> dict[str, Any]:
        return {"blob": repr(super().state_dict()["state"])}


def test_func_evals_skips_for_another_state_format() -> None:
    target = Target("tests:OpaqueStateLBFGS", OpaqueStateLBFGS)
    result = run_property(REGISTRY["behaviour.func_evals"], CheckContext(target, budget=BUDGETS["quick"]))
    assert result.status is Status.SKIP, result.detail


def test_state_counters_reads_only_torchs_counters() -> None:
    problem = make_problem("rosenbrock")
    params = problem.make_params()
    optimizer = torch.optim.LBFGS(params, max_iter=3, max_eval=10)
    assert state_counters(optimizer) is None  # empty before the first step
    with quiet_known_warnings():
        optimizer.step(problem.make_closure(params))
    assert state_counters(optimizer) == {"func_evals": 3, "n_iter": 3}
    assert state_counters(OpaqueStateLBFGS(params)) is None


def test_set_hyperparameter_needs_param_groups() -> None:
    with pytest.raises(PropertyFailed, match="no param_groups"):
        set_hyperparameter(object(), "lr", 0.1)


def test_stop_reasons_name_the_rule_that_fired() -> None:
    """A step stopped by tolerance_change on the loss is explained by that rule; the reasons are computed from
    the observation alone."""
    problem = make_problem("coupled_tensors")
    hp = {"max_iter": 50, "max_eval": 100, "history_size": 5, "tolerance_grad": 0.0, "tolerance_change": 1e-6}
    with quiet_known_warnings():
        obs = observe(TORCH, problem, hp, 1)
    step = obs.steps[0]
    assert torch.equal(step.x_after, step.evaluations[-1].x) and step.calls < 50
    reasons = _stop_reasons(obs.steps, 0, hp, 5, obs.eps)
    assert any("tolerance_change" in r for r in reasons), reasons


def test_change_history_size_reports_torchs_index_error_with_the_change() -> None:
    result = run_property(REGISTRY["behaviour.change_history_size"], CheckContext(TORCH, budget=BUDGETS["quick"]))
    assert result.status is Status.FAIL
    assert "IndexError" in result.detail and "lbfgs.py" in result.detail


def test_accepts_what_torch_accepts_lists_are_torchs_behaviour() -> None:
    """The hyperparameters behaviour.accepts_what_torch_accepts requires a target to accept are accepted by the
    installed torch.optim.LBFGS (built, two steps, finite), and those it requires refused are refused."""
    from lbfgs_verify.engine.strategies import make_problem
    from lbfgs_verify.properties.behaviour import REJECTED_BY_TORCH, _accepted_by_torch

    problem = make_problem("separable_quadratic", torch.float64)
    for name, hp in _accepted_by_torch():
        params = problem.make_params()
        closure = problem.make_closure(params)
        optimizer = torch.optim.LBFGS(params, **hp)
        for _ in range(2):
            optimizer.step(closure)
        assert all(bool(torch.isfinite(p).all()) for p in params), name
    for _name, hp in REJECTED_BY_TORCH:
        with pytest.raises(ValueError, match="Invalid learning rate"):
            torch.optim.LBFGS(problem.make_params(), **hp)
