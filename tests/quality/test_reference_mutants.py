"""Bugs planted in the reference LBFGS itself (written after the suite, without tuning the suite to them):
checkpoint bugs must be caught by the resume/state properties, and a correct variant with a stricter line
search must pass every properties-mode property."""

from __future__ import annotations

import functools
from typing import Any

import pytest

import lbfgs_verify.reference.lbfgs as reference_module
from lbfgs_verify.properties import BUDGETS, CheckContext, Status, properties_for, run_property
from lbfgs_verify.reference import LBFGS
from lbfgs_verify.targets.load import Target


class DropsNewestPairOnLoad(LBFGS):
    """Bug: a resumed optimizer loses the newest curvature pair."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        state = self.lbfgs_state
        if state.old_dirs and len(state.old_dirs) > 1:
            state.old_dirs.pop()
            state.old_stps.pop()
            state.ro.pop()


class SavesFloat32Vectors(LBFGS):
    """Bug: a checkpoint stores the flat vectors in float32 whatever the parameters' dtype."""

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        inner = saved["state"].get(0, {})
        for key in ("d", "prev_flat_grad"):
            if key in inner:
                inner[key] = inner[key].float()
        for key in ("old_dirs", "old_stps"):
            if key in inner:
                inner[key] = [v.float() for v in inner[key]]
        return saved


class StricterWolfe(LBFGS):
    """Correct variant: strong Wolfe with c2 = 0.5, whose points also satisfy c2 = 0.9."""

    def step(self, closure: Any) -> Any:
        original = reference_module.strong_wolfe
        reference_module.strong_wolfe = functools.partial(original, c2=0.5)
        try:
            return super().step(closure)
        finally:
            reference_module.strong_wolfe = original


def _failing(cls: type) -> set[str]:
    ctx = CheckContext(Target(f"{__name__}:{cls.__name__}", cls), budget=BUDGETS["quick"])
    results = [run_property(p, ctx) for p in properties_for("properties")]
    errors = [r for r in results if r.status is Status.ERROR]
    assert not errors, f"{cls.__name__}: harness errors {[(r.property, r.reason) for r in errors]}"
    return {r.property for r in results if r.status is Status.FAIL}


@pytest.mark.parametrize(("mutant", "expected"), [
    (DropsNewestPairOnLoad, {"resume.torch_save", "state.round_trip_exact"}),  # uses_saved_state: level semantics
    (SavesFloat32Vectors, {"resume.torch_save", "resume.pickle_state_dict", "resume.deepcopy_state_dict"}),
])
def test_checkpoint_bug_is_caught(mutant: type, expected: set[str]) -> None:
    failing = _failing(mutant)
    assert expected <= failing, f"{mutant.__name__}: expected {sorted(expected)} to fail, failing {sorted(failing)}"
    assert all(p.split(".")[0] in ("resume", "state", "seed", "portability") for p in failing), sorted(failing)


def test_correct_variant_with_stricter_line_search_passes() -> None:
    assert _failing(StricterWolfe) == set()
