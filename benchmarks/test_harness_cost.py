"""What ``check`` asks of the target, recorded with pytest-benchmark (run on demand:
``python -m pytest benchmarks/test_harness_cost.py --benchmark-only --benchmark-json=cost.json``).

The time is the benchmark's; ``extra_info`` holds the deterministic counts (``step()`` and closure calls of
``check --budget ci`` on torch.optim.LBFGS, and the all-splits resume ratio). No assertions on time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from harness_cost import all_splits_cost, check_cost


@pytest.mark.parametrize("level", ["properties", "conformance"])
def test_check_ci_calls(benchmark, level: str) -> None:
    cost = benchmark.pedantic(lambda: check_cost("torch.optim:LBFGS", level=level, budget="ci"), rounds=1,
                              iterations=1)
    benchmark.extra_info.update(steps=cost.steps, closures=cost.closures, summary=cost.summary)


def test_all_splits_resume_ratio(benchmark) -> None:
    split = benchmark.pedantic(lambda: all_splits_cost("torch.optim:LBFGS", "ci"), rounds=1, iterations=1)
    benchmark.extra_info.update(recording=split.recording, one_step_checks=split.one_step_checks,
                                continuations=split.continuations, all_splits_ratio=split.all_splits_ratio,
                                with_continuations_ratio=split.with_continuations_ratio)
