"""Speed of the reference optimizers against the originals they mirror (run on demand:
``python -m pytest benchmarks --benchmark-only``). No assertions on time: the numbers go in reports."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from lbfgs_verify.reference import LBFGS
from lbfgs_verify.report.benchmarks import TARGETS_ENV_VAR
from lbfgs_verify.targets.load import load_target

torch.set_num_threads(1)

# `lbfgs-verify report` times its --target optimizers here too (comma-separated module:attr).
EXTRA_TARGETS = [s.strip() for s in os.environ.get(TARGETS_ENV_VAR, "").split(",") if s.strip()]


def _optimizer_class(name: str) -> Callable[..., Any]:
    if name == "torch.optim.LBFGS":
        return torch.optim.LBFGS
    if name == "lbfgs_verify.reference.LBFGS":
        return LBFGS
    return load_target(name).make


def _quadratic(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return a @ a.T / n + torch.eye(n, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)


PAIRS = 30
"""Runs of torch and the optimizer in turn (who goes first alternating) after the timed rounds of an optimizer
other than torch: their per-pair ratios give ``extra_info["median_ratio_to_torch_paired"]``, which the report
prefers to a ratio of two benchmarks timed one after the other (on a shared machine the two drift apart by
more than the difference being measured; single runs here spread over 2x)."""


def _twenty_iterations(cls: Callable[..., Any], a: torch.Tensor, b: torch.Tensor,
                       line_search_fn: str | None) -> float:
    x = torch.zeros(200, dtype=torch.float64, requires_grad=True)
    opt = cls([x], history_size=10, max_iter=20, line_search_fn=line_search_fn, tolerance_grad=0.0,
              tolerance_change=0.0)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.5 * x @ a @ x - b @ x
        loss.backward()
        return loss

    return float(opt.step(closure))


def _paired_ratio(cls: Callable[..., Any], a: torch.Tensor, b: torch.Tensor, line_search_fn: str | None) -> float:
    """Median over :data:`PAIRS` of (time of ``cls``'s run) / (time of torch's run next to it)."""
    ratios = []
    for k in range(PAIRS):
        times = {}
        for which in ((cls, torch.optim.LBFGS) if k % 2 else (torch.optim.LBFGS, cls)):
            start = time.perf_counter()
            _twenty_iterations(which, a, b, line_search_fn)
            times[which] = time.perf_counter() - start
        ratios.append(times[cls] / times[torch.optim.LBFGS])
    return statistics.median(ratios)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
@pytest.mark.parametrize("optimizer", ["torch.optim.LBFGS", "lbfgs_verify.reference.LBFGS", *EXTRA_TARGETS])
def test_twenty_iterations_n200(benchmark, optimizer: str, line_search_fn: str | None) -> None:
    cls = _optimizer_class(optimizer)
    a, b = _quadratic(200)
    benchmark(_twenty_iterations, cls, a, b, line_search_fn)
    if cls is not torch.optim.LBFGS and benchmark.enabled:
        benchmark.extra_info["median_ratio_to_torch_paired"] = _paired_ratio(cls, a, b, line_search_fn)
        benchmark.extra_info["pairs"] = PAIRS
