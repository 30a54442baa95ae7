"""``behaviour.accepts_what_torch_accepts`` against interface bugs planted in the simple L-BFGS (the class of the
reference's surviving mutants of its lr squeeze and hyperparameter checks, docs/mutation.md); the simple L-BFGS,
the reference and torch pass."""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify.properties import Status
from lbfgs_verify.reference import LBFGS
from tests.quality.blind_spot_bugs import AcceptsNegativeLr, LrTensorNotSqueezed, RefusesNumpyScalars, RefusesZeroLr
from tests.quality.simple_lbfgs import SimpleLBFGS
from tests.quality.verdict import verdict

PROPERTY = "behaviour.accepts_what_torch_accepts"


@pytest.mark.parametrize("mutant", [LrTensorNotSqueezed, RefusesNumpyScalars, RefusesZeroLr, AcceptsNegativeLr])
def test_interface_bugs_fail(mutant: type) -> None:
    result = verdict(mutant, PROPERTY, mode="semantics")
    assert result.status is Status.FAIL, (result.status, result.detail)


@pytest.mark.parametrize("correct", [SimpleLBFGS, LBFGS, torch.optim.LBFGS])
def test_correct_optimizers_pass(correct: type) -> None:
    result = verdict(correct, PROPERTY, mode="semantics")
    assert result.status is Status.PASS, result.detail
