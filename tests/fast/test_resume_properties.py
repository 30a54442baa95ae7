"""Each resume/state/seed/conformance property catches the bug class it names, and passes without it.

Small broken variants of torch.optim.LBFGS and of the reference each break one thing (counters lost on save,
history restarted on load, global-RNG dependence, aliasing, live state_dict, retyping on load, validation
after a partial load, constructor hyperparameters winning over saved ones, a renamed state format...). The
property named for that bug class must fail with diagnosable evidence (problem, hyperparameters, split,
first differing step, key, ULPs); the unbroken twin must pass. CUDA checks are exercised with ``device="cpu"``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from lbfgs_verify.compare.bitwise import clone_structure
from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.properties import cuda
from lbfgs_verify.properties.base import REGISTRY, Budget, CheckContext, PropertyResult, Status, load_all, run_property
from lbfgs_verify.reference import LBFGS as Reference  # noqa: N811
from lbfgs_verify.targets.load import Target

BUDGET = Budget("test", "quick", max_examples=3, steps=5, full_continuations=1, problems=2)


# --------------------------------------------------------------------------------------------------------
# Broken (and fixed) variants; module level so that pickle can find them
# --------------------------------------------------------------------------------------------------------


class RestartsHistoryOnLoad(Reference):
    """load_state_dict() keeps the hyperparameters and silently drops the history (mace #1653)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({"state": {}, "param_groups": state_dict["param_groups"]})


class DependsOnGlobalRNG(Reference):
    """Each step jitters the parameters with the global torch RNG (a resumed process has another RNG state)."""

    @torch.no_grad()
    def step(self, closure: Any) -> Any:
        loss = super().step(closure)
        for p in self.param_groups[0]["params"]:
            p.mul_(1 + 1e-3 * torch.rand(()).item())
        return loss


class KeepsConstructorHyperparameters(Reference):
    """load_state_dict() restores the state but keeps the constructor's hyperparameters."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        mine = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        super().load_state_dict(state_dict)
        self.param_groups[0].update(mine)


class RenamedState(Reference):
    """Consistent with itself but stores torch's ``d`` as ``direction``: its own resume works, torch cannot use it."""

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        for inner in saved["state"].values():
            if "d" in inner:
                inner["direction"] = inner.pop("d")
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = copy.deepcopy(state_dict)
        for inner in state_dict["state"].values():
            if "n_iter" in inner and inner["n_iter"] > 0:
                inner["d"] = inner.pop("direction")  # KeyError on torch's layout
        super().load_state_dict(state_dict)


class NudgedLearningRate(Reference):
    """The learning rate scaled by 1 + 2**-20: every trajectory drifts from torch's by a few ULPs."""

    def __init__(self, params: Any, lr: Any = 1, **kwargs: Any) -> None:
        super().__init__(params, lr=lr * (1 + 2**-20), **kwargs)


class CopyingTorchLBFGS(torch.optim.LBFGS):
    """torch.optim.LBFGS with torch's defects #1-#3 fixed: snapshot state_dict, copying load, restorable copies."""

    def state_dict(self) -> dict[str, Any]:
        return clone_structure(super().state_dict())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(clone_structure(state_dict))

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._params = self.param_groups[0]["params"]
        self._numel_cache = None


class LosesCountersOnSave(CopyingTorchLBFGS):
    """state_dict() forgets n_iter and func_evals (the restored optimizer restarts its first-iteration rule)."""

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        for inner in saved["state"].values():
            inner["n_iter"] = 0
            inner["func_evals"] = 0
        return saved


class RetypesOnLoad(CopyingTorchLBFGS):
    """load_state_dict() turns the evaluation counter into a float (5 -> 5.0): values equal, types not."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = copy.deepcopy(state_dict)
        for inner in state_dict["state"].values():
            inner["func_evals"] = float(inner["func_evals"])
        super().load_state_dict(state_dict)


class ValidatesBeforeLoading(CopyingTorchLBFGS):
    """Checks the flat buffers' length against the parameters before touching anything."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for inner in state_dict["state"].values():
            d = inner.get("d")
            if d is not None and d.numel() != self._numel():
                raise ValueError(f"saved direction has {d.numel()} elements, parameters have {self._numel()}")
        super().load_state_dict(state_dict)


class ValidatesAfterLoading(CopyingTorchLBFGS):
    """Loads first, validates afterwards: raises, but the optimizer has already been overwritten."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        d = self.state[self._params[0]].get("d")
        if d is not None and d.numel() != self._numel():
            raise ValueError("size mismatch")


class StatelessTorchLBFGS(torch.optim.LBFGS):
    """Forgets everything at each step: resumes "exactly" because nothing is carried; the three-way check sees it."""

    def step(self, closure: Any) -> Any:
        self.state.clear()
        return super().step(closure)


class LazyDefaultMaxEval(Reference):
    """max_eval defaults to 2*max_iter instead of torch's max_iter*5//4."""

    def __init__(self, params: Any, max_iter: int = 20, max_eval: int | None = None, **kwargs: Any) -> None:
        super().__init__(params, max_iter=max_iter, max_eval=2 * max_iter if max_eval is None else max_eval, **kwargs)


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def _target(factory: Any) -> Target:
    return Target(spec=f"{factory.__module__}:{factory.__qualname__}", factory=factory)


def _run(property_id: str, factory: Any, mode: str = "properties") -> PropertyResult:
    load_all()
    ctx = CheckContext(target=_target(factory), mode=mode, budget=BUDGET, threads=1)
    with comparison_environment(1):
        return run_property(REGISTRY[property_id], ctx)


def _fails(property_id: str, factory: Any, mode: str = "properties") -> PropertyResult:
    result = _run(property_id, factory, mode)
    assert result.status is Status.FAIL, f"{property_id} did not catch {factory.__name__}: {result}"
    return result


def _passes(property_id: str, factory: Any, mode: str = "properties") -> None:
    result = _run(property_id, factory, mode)
    assert result.status is Status.PASS, f"{property_id} wrongly failed {factory.__name__}:\n{result.detail}"


# --------------------------------------------------------------------------------------------------------
# resume.*
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("property_id", ["resume.torch_save", "resume.deepcopy_state_dict", "resume.pickle_state_dict"])
def test_state_dict_transports_catch_counters_lost_on_save(property_id: str) -> None:
    result = _fails(property_id, LosesCountersOnSave)
    evidence = result.evidence
    assert evidence["problem"] and evidence["hyperparameters"] and evidence["split"] >= 1
    assert evidence["first_differing_step"] >= evidence["split"]
    assert evidence["path"] and evidence["kind"] in {"value", "type", "length", "keys", "dtype", "shape"}
    assert "split after" in result.detail and "first difference at step" in result.detail
    assert "state_right_after_load" in evidence


def test_torch_save_resume_catches_history_restarted_on_load() -> None:
    result = _fails("resume.torch_save", RestartsHistoryOnLoad)
    assert "already differs from the saved state" in result.evidence["state_right_after_load"]


def test_torch_save_resume_catches_global_rng_dependence() -> None:
    result = _fails("resume.torch_save", DependsOnGlobalRNG)
    assert result.evidence["path"].startswith("params")


def test_uses_saved_state_catches_a_resume_that_starts_fresh() -> None:
    result = _fails("resume.uses_saved_state", RestartsHistoryOnLoad)
    assert "resumed run differs" in result.detail


def test_uses_saved_state_catches_an_optimizer_whose_state_has_no_effect() -> None:
    _passes("resume.torch_save", StatelessTorchLBFGS)  # nothing is carried, so "resume" trivially agrees ...
    result = _fails("resume.uses_saved_state", StatelessTorchLBFGS)  # ... which the three-way check exposes
    assert "cold-started" in result.detail and "no effect" in result.detail


@pytest.mark.parametrize("property_id", ["resume.deepcopy_optimizer", "resume.pickle_optimizer"])
def test_optimizer_copies_catch_torch_losing_attributes(property_id: str) -> None:
    result = _fails(property_id, torch.optim.LBFGS)
    assert result.evidence["exception"] == "AttributeError" and "_params" in result.evidence["message"]
    _passes(property_id, CopyingTorchLBFGS)


def test_low_precision_tensor_lr_catches_torch_casting_t() -> None:
    result = _fails("resume.low_precision_tensor_lr", torch.optim.LBFGS)
    assert "16" in result.evidence["problem"]  # bfloat16 or float16
    assert "lr=torch.tensor(" in result.detail
    assert ".t: dtype" in result.evidence["state_right_after_load"]
    _passes("resume.low_precision_tensor_lr", Reference)


@pytest.mark.parametrize("factory", [Reference, torch.optim.LBFGS, CopyingTorchLBFGS])
def test_resume_properties_pass_for_correct_resumes(factory: Any) -> None:
    for property_id in ("resume.torch_save", "resume.uses_saved_state"):
        _passes(property_id, factory)


# --------------------------------------------------------------------------------------------------------
# state.*
# --------------------------------------------------------------------------------------------------------


def test_load_independence_catches_torch_aliasing() -> None:
    result = _fails("state.load_independence", torch.optim.LBFGS)
    assert "source optimizer no longer follows" in result.detail
    assert result.evidence["ulps"] is not None and result.evidence["split"] >= 1
    _passes("state.load_independence", CopyingTorchLBFGS)


def test_snapshot_catches_torch_live_state_dict() -> None:
    result = _fails("state.snapshot", torch.optim.LBFGS)
    assert result.evidence["path"].startswith("state_dict.state[0]")
    _passes("state.snapshot", CopyingTorchLBFGS)
    _passes("state.snapshot", Reference)


def test_round_trip_catches_retyping_and_torch_casting_t() -> None:
    result = _fails("state.round_trip_exact", RetypesOnLoad)
    assert result.evidence["kind"] == "type" and "func_evals" in result.evidence["path"]
    torch_result = _fails("state.round_trip_exact", torch.optim.LBFGS)
    assert torch_result.evidence["path"].endswith(".t") and torch_result.evidence["kind"] == "dtype"
    _passes("state.round_trip_exact", Reference)


def test_load_validates_size_catches_late_errors_and_partial_loads() -> None:
    late = _fails("state.load_validates_size", torch.optim.LBFGS)
    assert late.evidence["raised_at_load"] is False and "only at step()" in late.detail
    partial = _fails("state.load_validates_size", ValidatesAfterLoading)
    assert "changed the optimizer first" in partial.detail
    _passes("state.load_validates_size", ValidatesBeforeLoading)
    _passes("state.load_validates_size", Reference)


# --------------------------------------------------------------------------------------------------------
# seed.* and conformance.*
# --------------------------------------------------------------------------------------------------------


def test_load_restores_hyperparameters_catches_constructor_values_winning() -> None:
    _fails("seed.load_restores_hyperparameters", KeepsConstructorHyperparameters)
    _passes("seed.load_restores_hyperparameters", torch.optim.LBFGS)


def test_conformance_trajectory_catches_one_ulp_and_reports_it() -> None:
    result = _fails("conformance.trajectory", NudgedLearningRate, mode="conformance")
    assert result.evidence["path"].startswith("params") and result.evidence["ulps"] >= 1
    _passes("conformance.trajectory", Reference, mode="conformance")
    _passes("conformance.trajectory", CopyingTorchLBFGS, mode="conformance")


def test_state_interchange_catches_a_private_state_format() -> None:
    _passes("resume.torch_save", RenamedState)  # consistent with itself ...
    into = _fails("conformance.state_into_torch", RenamedState, mode="conformance")  # ... not with torch
    assert into.evidence.get("exception") or into.evidence.get("path")
    _fails("conformance.state_from_torch", RenamedState, mode="conformance")
    _passes("conformance.state_into_torch", Reference, mode="conformance")
    _passes("conformance.state_from_torch", Reference, mode="conformance")


def test_api_errors_catch_other_defaults() -> None:
    result = _fails("conformance.api_errors", LazyDefaultMaxEval, mode="conformance")
    assert "max_eval" in result.detail
    _passes("conformance.api_errors", Reference, mode="conformance")


def test_conformance_properties_only_run_in_conformance_mode() -> None:
    load_all()
    assert all(REGISTRY[i].modes == {"conformance"} for i in REGISTRY if i.startswith("conformance."))


# --------------------------------------------------------------------------------------------------------
# cuda.* (logic exercised on the CPU; the registered properties skip cleanly without CUDA)
# --------------------------------------------------------------------------------------------------------


def _context(factory: Any) -> CheckContext:
    return CheckContext(target=_target(factory), budget=BUDGET, threads=1)


def test_device_checks_pass_on_the_cpu_stand_in() -> None:
    ctx = _context(Reference)
    with comparison_environment(1):
        cuda.check_cpu_state_to_device_on(ctx, "cpu")
        cuda.check_device_resume_on(ctx, "cpu")
        cuda.check_article_model_move_on(ctx, "cpu")


def test_device_move_check_catches_a_history_restart() -> None:
    from lbfgs_verify.properties.base import PropertyFailed

    with comparison_environment(1), pytest.raises(PropertyFailed, match="leaves the tolerance"):
        cuda.check_cpu_state_to_device_on(_context(RestartsHistoryOnLoad), "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip path on machines without CUDA")
@pytest.mark.parametrize("property_id", ["cuda.cpu_state_to_cuda", "cuda.resume_on_cuda", "cuda.article_model_move"])
def test_cuda_properties_skip_without_cuda(property_id: str) -> None:
    result = _run(property_id, Reference)
    assert result.status is Status.SKIP and "torch.cuda.is_available() is False" in result.detail
