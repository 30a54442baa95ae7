"""The API properties of ``conformance`` mode catch what a drop-in replacement of torch.optim.LBFGS gets wrong:
each planted faulty variant of the reference fails the property named for its fault (and only API properties),
while torch.optim.LBFGS itself and the reference pass them all.

The faults are the ones the reference had before it kept its state where torch does (and the issue that
prompted these properties lists): state outside ``optimizer.state``, hooks bypassed, ``param_names`` dropped,
unknown keys refused, a diverged run's own state refused.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import pytest
import torch

from lbfgs_verify.properties import BUDGETS, REGISTRY, CheckContext, PropertyResult, Status, load_all, run_property
from lbfgs_verify.reference import LBFGS
from lbfgs_verify.targets.load import Target

load_all()

API_PROPERTIES = (
    "conformance.state_in_optimizer_state",
    "conformance.optimizer_hooks",
    "conformance.named_state_dict",
    "conformance.extra_keys_carried",
    "conformance.diverged_state_loads",
)


class StateInAnAttribute(LBFGS):
    """Fault: the state lives in an attribute between steps; ``optimizer.state`` stays empty.

    (Moved in and out by step hooks: overriding ``step`` and calling ``super().step`` would run torch's step
    hooks twice once the base class's ``step`` is patched too, a trap of subclassing any torch optimizer.)"""

    hidden: dict[str, Any] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_step_pre_hook(lambda opt, a, k: opt._restore())
        self.register_step_post_hook(lambda opt, a, k: opt._hide())

    def _restore(self) -> None:
        if self.hidden is not None:
            self.state[self.param_groups[0]["params"][0]] = self.hidden

    def _hide(self) -> None:
        self.hidden = self.state.pop(self.param_groups[0]["params"][0], None)

    def state_dict(self) -> dict[str, Any]:
        first = self.param_groups[0]["params"][0]
        if self.hidden is None:
            return super().state_dict()
        self.state[first] = self.hidden
        try:
            return super().state_dict()
        finally:
            self.state.pop(first, None)


class BypassesStateDictHooks(LBFGS):
    """Fault: ``state_dict()`` packs the state without running the state_dict pre/post hooks."""

    def state_dict(self) -> dict[str, Any]:
        hooks = (self._optimizer_state_dict_pre_hooks, self._optimizer_state_dict_post_hooks)
        self._optimizer_state_dict_pre_hooks, self._optimizer_state_dict_post_hooks = OrderedDict(), OrderedDict()
        try:
            return super().state_dict()
        finally:
            self._optimizer_state_dict_pre_hooks, self._optimizer_state_dict_post_hooks = hooks


class DropsParamNames(LBFGS):
    """Fault: loading a dict saved without ``param_names`` drops the optimizer's own names."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if "param_names" not in state_dict["param_groups"][0]:
            self.param_groups[0].pop("param_names", None)


class RefusesUnknownKeys(LBFGS):
    """Fault: a dict with keys a hook added is refused ("unknown keys")."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        unknown = sorted(str(k) for k in state_dict if k not in ("state", "param_groups"))
        if unknown:
            raise ValueError(f"state_dict has unknown keys {unknown}")
        super().load_state_dict(state_dict)


class RefusesNonFinite(LBFGS):
    """Fault: a state holding NaN or inf is refused, even the optimizer's own after a diverged run."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for inner in state_dict["state"].values():
            for key, value in inner.items() if isinstance(inner, dict) else ():
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if (isinstance(v, torch.Tensor) and not bool(torch.isfinite(v).all())) or (
                            isinstance(v, float) and not math.isfinite(v)):
                        raise ValueError(f"state[{key!r}] contains NaN or inf")
        super().load_state_dict(state_dict)


ALSO_CAUGHT_BY = {RefusesUnknownKeys: {"conformance.optimizer_hooks"}}
"""Overlaps by design: the hooks property loads a dict its state_dict post-hook extended with a top-level key."""

FAULTY = {
    StateInAnAttribute: "conformance.state_in_optimizer_state",
    BypassesStateDictHooks: "conformance.optimizer_hooks",
    DropsParamNames: "conformance.named_state_dict",
    RefusesUnknownKeys: "conformance.extra_keys_carried",
    RefusesNonFinite: "conformance.diverged_state_loads",
}


def run(property_id: str, factory: Any, spec: str) -> PropertyResult:
    ctx = CheckContext(Target(spec, factory), mode="conformance", budget=BUDGETS["quick"])
    return run_property(REGISTRY[property_id], ctx)


@pytest.mark.parametrize("variant", list(FAULTY), ids=lambda c: c.__name__)
def test_faulty_variant_fails_its_api_property(variant: type) -> None:
    result = run(FAULTY[variant], variant, f"{__name__}:{variant.__name__}")
    assert result.status is Status.FAIL, f"{variant.__name__}: {result.status.value}\n{result.detail[:2000]}"
    assert "differs from torch.optim.LBFGS" in result.detail


@pytest.mark.parametrize("variant", list(FAULTY), ids=lambda c: c.__name__)
def test_faulty_variant_is_otherwise_a_correct_drop_in(variant: type) -> None:
    """The other API properties pass (but the listed overlaps): each property names one fault."""
    for property_id in API_PROPERTIES:
        if property_id != FAULTY[variant] and property_id not in ALSO_CAUGHT_BY.get(variant, set()):
            result = run(property_id, variant, f"{__name__}:{variant.__name__}")
            assert result.status is Status.PASS, f"{variant.__name__} / {property_id}:\n{result.detail[:2000]}"


@pytest.mark.parametrize(("factory", "spec"), [(torch.optim.LBFGS, "torch.optim:LBFGS"),
                                               (LBFGS, "lbfgs_verify.reference:LBFGS")], ids=["torch", "reference"])
@pytest.mark.parametrize("property_id", API_PROPERTIES)
def test_torch_and_the_reference_pass_the_api_properties(factory: Any, spec: str, property_id: str) -> None:
    result = run(property_id, factory, spec)
    assert result.status is Status.PASS, f"{spec} / {property_id}:\n{result.detail[:2000]}"


def test_the_diverged_run_really_diverges() -> None:
    """The diverged-state property is not vacuous: torch's run on its model ends with non-finite state."""
    from lbfgs_verify.properties.conformance import _diverging_model

    params, closure = _diverging_model("cpu")
    opt = torch.optim.LBFGS(params, line_search_fn="strong_wolfe")
    for _ in range(3):
        opt.step(closure)
    state = opt.state[params[0]]
    assert not all(bool(torch.isfinite(state[k]).all()) for k in ("d", "prev_flat_grad"))
