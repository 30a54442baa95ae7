"""``behaviour.sparse_gradients`` against planted bugs of a sparse gradient (closing the mutants of the reference's
sparse branch, docs/mutation.md): read as zeros, or as its stored values only; correct variants pass."""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify.properties import Status
from lbfgs_verify.reference import LBFGS
from tests.quality.blind_spot_bugs import SparseGradientAsZero, SparseGradientValuesOnly
from tests.quality.simple_lbfgs import SimpleLBFGS
from tests.quality.verdict import verdict

PROPERTY = "behaviour.sparse_gradients"


@pytest.mark.parametrize("budget", ["quick", "ci"])
@pytest.mark.parametrize("mutant", [SparseGradientAsZero, SparseGradientValuesOnly])
def test_sparse_gradient_bugs_fail(mutant: type, budget: str) -> None:
    result = verdict(mutant, PROPERTY, budget)
    assert result.status is Status.FAIL, (result.status, result.detail)
    assert "sparse" in result.detail, result.detail


@pytest.mark.parametrize("correct", [LBFGS, SimpleLBFGS, torch.optim.LBFGS])
def test_correct_optimizers_pass(correct: type) -> None:
    result = verdict(correct, PROPERTY)
    assert result.status is Status.PASS, result.detail
