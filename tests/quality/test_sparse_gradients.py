"""``behaviour.sparse_gradients`` against planted bugs of a sparse gradient (closing the mutants of the reference's
sparse branch, docs/mutation.md): read as zeros, or as its stored values only; correct variants pass."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lbfgs_verify.properties import Status
from lbfgs_verify.reference import LBFGS
from tests.quality.simple_lbfgs import SimpleLBFGS
from tests.quality.verdict import verdict


class SparseGradientAsZero(SimpleLBFGS):
    """Bug: a sparse gradient counts as no gradient (zeros)."""

    def _gather_grad(self) -> Tensor:
        parts = [torch.zeros_like(p).reshape(-1) if p.grad is None or p.grad.is_sparse else
                 self._real(p.grad).reshape(-1) for p in self.params]
        return torch.cat(parts)


class SparseGradientValuesOnly(SimpleLBFGS):
    """Bug: a sparse gradient contributes its stored values only, zero-padded (the rows land in the wrong place)."""

    def _gather_grad(self) -> Tensor:
        parts = []
        for p in self.params:
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            if g.is_sparse:
                values = g.coalesce().values().reshape(-1)
                g = torch.cat([values, values.new_zeros(p.numel() - values.numel())])
            parts.append(self._real(g).reshape(-1))
        return torch.cat(parts)


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
