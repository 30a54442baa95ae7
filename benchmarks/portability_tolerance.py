"""Derive ``portability.*``'s tolerance: how far a run resumed under another thread count drifts from the
uninterrupted run, against steps and conditioning, next to the deviations of the planted bugs.

Run from the repository root: ``PYTHONPATH=. python benchmarks/portability_tolerance.py`` (a few minutes).
Prints, per case, the largest ``|Δx|`` and the largest ratio ``|Δx| / (atol + rtol·|x|)`` of THREAD_TOLERANCE
after each resumed step (ratio < 1: within the tolerance).
"""

from __future__ import annotations

import torch

from lbfgs_verify.engine import Scenario
from lbfgs_verify.properties.portability import CONDITION_NUMBERS, THREAD_TOLERANCE, long_quadratic, run_across_threads
from tests.quality.test_portability import StateLoadedAsFloat32, StateLostOnLoad

STEPS = 13
SPLIT = 1


def ratios(expected: list, resumed: list) -> list[tuple[float, float]]:
    out = []
    for e, r in zip(expected, resumed, strict=True):
        x, y = e.params[0].double(), r.params[0].double()
        diff = (y - x).abs()
        out.append((float(diff.max()), float((diff / (THREAD_TOLERANCE.atol + THREAD_TOLERANCE.rtol * x.abs())).max())))
    return out


def main() -> None:
    print(f"n = {long_quadratic().dimension}, saved under 1 thread before step {SPLIT}, resumed under 2; "
          f"tolerance {THREAD_TOLERANCE}")
    for kappa in CONDITION_NUMBERS:
        for line_search in (None, "strong_wolfe"):
            hp = {"line_search_fn": line_search, "history_size": 10, "max_iter": 1, "lr": 1 if line_search else 0.5}
            scenario = Scenario(long_quadratic(condition_number=kappa), hp, STEPS)
            for name, factory in (("torch.optim.LBFGS", torch.optim.LBFGS), ("StateLostOnLoad", StateLostOnLoad),
                                  ("StateLoadedAsFloat32", StateLoadedAsFloat32)):
                expected, resumed = run_across_threads(factory, scenario, SPLIT, 1, 2)
                r = ratios(expected, resumed)
                worst = max(q for _, q in r)
                steps = " ".join(f"{q:.1e}" for _, q in r)
                print(f"kappa={kappa:g} {line_search or 'fixed'} {name}: max |dx| {max(a for a, _ in r):.2e}, "
                      f"max ratio {worst:.2e}; ratio by resumed step: {steps}", flush=True)


if __name__ == "__main__":
    main()
