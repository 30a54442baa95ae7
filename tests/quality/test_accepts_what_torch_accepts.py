"""``behaviour.accepts_what_torch_accepts`` against interface bugs planted in the simple L-BFGS (the class of the
reference's surviving mutants of its lr squeeze and hyperparameter checks, docs/mutation.md); the simple L-BFGS,
the reference and torch pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from lbfgs_verify.properties import Status
from lbfgs_verify.reference import LBFGS
from tests.quality.simple_lbfgs import SimpleLBFGS
from tests.quality.verdict import verdict

PROPERTY = "behaviour.accepts_what_torch_accepts"


class LrTensorNotSqueezed(SimpleLBFGS):
    """Bug: a 1-element lr tensor of shape (1,) is used as it is (add_ refuses it as alpha)."""

    def _hyperparameters(self) -> dict[str, Any]:
        return dict(self.param_groups[0])


class RefusesNumpyScalars(SimpleLBFGS):
    """Bug: numpy scalars (a config's values) are refused."""

    def __init__(self, params: Any, **hyperparameters: Any) -> None:
        bad = [k for k, v in hyperparameters.items() if isinstance(v, np.generic)]
        if bad:
            raise TypeError(f"{bad} must be Python numbers")
        super().__init__(params, **hyperparameters)


class RefusesZeroLr(SimpleLBFGS):
    """Bug: lr = 0 is refused (torch builds and steps with it)."""

    def __init__(self, params: Any, lr: float | Tensor = 1, **hyperparameters: Any) -> None:
        if float(lr) <= 0.0:
            raise ValueError("lr must be positive")
        super().__init__(params, lr=lr, **hyperparameters)


class AcceptsNegativeLr(SimpleLBFGS):
    """Bug: a negative lr is accepted (and walks uphill)."""

    def __init__(self, params: Any, lr: float | Tensor = 1, **hyperparameters: Any) -> None:
        super().__init__(params, lr=abs(lr), **hyperparameters)
        self.param_groups[0]["lr"] = lr


@pytest.mark.parametrize("mutant", [LrTensorNotSqueezed, RefusesNumpyScalars, RefusesZeroLr, AcceptsNegativeLr])
def test_interface_bugs_fail(mutant: type) -> None:
    result = verdict(mutant, PROPERTY, mode="semantics")
    assert result.status is Status.FAIL, (result.status, result.detail)


@pytest.mark.parametrize("correct", [SimpleLBFGS, LBFGS, torch.optim.LBFGS])
def test_correct_optimizers_pass(correct: type) -> None:
    result = verdict(correct, PROPERTY, mode="semantics")
    assert result.status is Status.PASS, result.detail
