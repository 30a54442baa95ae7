"""Derive ``portability.*``'s tolerance: how far a run resumed under another thread count drifts from the
uninterrupted run, against steps and conditioning, next to the deviations of the planted bugs.

Run from the repository root: ``PYTHONPATH=. python benchmarks/portability_tolerance.py`` (a few minutes).
Prints, per case, the largest ``|Δx|`` and the largest ratio ``|Δx| / (atol + rtol·|x|)`` of THREAD_TOLERANCE
after each resumed step (ratio < 1: within the tolerance).

``--golden`` instead measures the golden traces' tolerance (:mod:`lbfgs_verify.compare.golden_traces`): each recorded
kernel set of the shipped files is left out in turn and judged against the others with the tolerance measured
from them (no re-run: seconds). Prints, per file and left-out set, how many runs equal another set, stay within
the tolerance (up to a changed branch decision or not), or go beyond, and the measured bounds.
"""

from __future__ import annotations

import sys
from collections import Counter

import torch

from lbfgs_verify.engine.runs import Scenario
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


def golden_leave_one_out() -> None:
    from lbfgs_verify.compare import golden_traces as gt

    for name in (gt.TORCH_FILE, gt.SCIPY_FILE):
        record = gt.read_record_file(gt.golden_traces_dir() / name)
        for left_out in record.sections:
            rest = gt.RecordFile(record.optimizer, record.protocol, [s for s in record.sections if s is not left_out],
                                 record.only)
            tolerance = gt.MeasuredTolerance.measure(rest)
            verdicts = Counter()
            for j, trace in enumerate(left_out.traces):
                r = gt.judge_run([(s.name, s.traces[j]) for s in rest.sections], trace, tolerance, demanded=None,
                                 versions_changed=False)
                verdicts["equal to another set" if r.matched else "beyond" if not r.within_tolerance else
                         "within, up to a changed decision" if r.decision else "within"] += 1
            print(f"{name}: {left_out.name} left out, judged against {len(rest.sections)} sets: {dict(verdicts)}")
        tolerance = gt.MeasuredTolerance.measure(record)
        if tolerance is not None:
            for key in sorted(tolerance.bounds):
                print(f"  {name} {key}: relative bound by record {[f'{b:.1e}' for b in tolerance.bounds[key]]}, "
                      f"ULP floor {tolerance.ulp_bounds[key]}")


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
    golden_leave_one_out() if "--golden" in sys.argv[1:] else main()
