"""Step time of the reference LBFGS against torch.optim.LBFGS, interleaved in one process, with the physical limit.

``python -m pytest benchmarks/test_reference_vs_torch.py --benchmark-only --benchmark-json=speed.json``

For each n in (1e2, 1e4, 1e6), history m in (10, 100) and dtype (float32, float64): both optimizers load the same
state with a *full* history (m synthetic curvature pairs of a diagonal quadratic, so no warm-up of m steps), then
alternate one ``step()`` each (``max_iter=1``, fixed step) for R rounds, single-threaded, the one that goes first
alternating from round to round (ABBA). After every round their
parameters must be bitwise equal (the comparison is meaningless otherwise). Recorded in ``extra_info``: the median
of the per-round ratios reference/torch, both medians, and the physical limit: the two-loop recursion streams the
m pairs (s, y) twice, 4·m·n·itemsize bytes per iteration (Nocedal & Wright, Alg. 7.4), against the read bandwidth
measured here (``torch.dot`` over 256 MiB). Timing goes to the report, never into an assertion.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
import torch

from lbfgs_verify.compare.bitwise import first_difference
from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.reference import LBFGS

SIZES = (100, 10_000, 1_000_000)
HISTORIES = (10, 100)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _rounds(n: int, m: int) -> int:
    work = n * m
    return 400 if work <= 1e5 else 200 if work <= 1e6 else 100 if work <= 1e7 else 120


def read_bandwidth(dtype: torch.dtype = torch.float64, nbytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Bytes per second that one thread reads in ``torch.dot(a, b)`` over two vectors of ``nbytes`` in all."""
    n = nbytes // (2 * torch.finfo(dtype).bits // 8)
    a, b = torch.rand(n, dtype=dtype), torch.rand(n, dtype=dtype)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.dot(a, b)
        times.append(time.perf_counter() - start)
    return nbytes / min(times)


def _full_history_state(n: int, m: int, dtype: torch.dtype, lam: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
    """torch.optim.LBFGS's state_dict layout with m stored pairs y_i = diag(λ) s_i (y·s > 0)."""
    g = torch.Generator().manual_seed(1)
    steps = [1e-3 * torch.randn(n, generator=g, dtype=torch.float64).to(dtype) for _ in range(m)]
    dirs = [lam * s for s in steps]
    ro = [1.0 / y.dot(s) for y, s in zip(dirs, steps, strict=True)]
    grad = (lam * x - 1).to(dtype)
    state = {"func_evals": m + 1, "n_iter": m + 1, "d": -grad, "t": 1.0, "old_dirs": dirs, "old_stps": steps,
             "ro": ro, "H_diag": dirs[-1].dot(steps[-1]) / dirs[-1].dot(dirs[-1]), "prev_flat_grad": grad,
             "prev_loss": 1.0, "al": [None] * m}
    group = {"lr": 1, "max_iter": 1, "max_eval": 2, "tolerance_grad": 0.0, "tolerance_change": 0.0,
             "history_size": m, "line_search_fn": None, "params": [0]}
    return {"state": {0: state}, "param_groups": [group]}


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("m", HISTORIES)
@pytest.mark.parametrize("n", SIZES)
def test_step_time_reference_vs_torch(benchmark: Any, n: int, m: int, dtype_name: str) -> None:
    dtype = DTYPES[dtype_name]
    with comparison_environment(1):
        g = torch.Generator().manual_seed(0)
        lam = torch.linspace(1.0, 10.0, n, dtype=torch.float64).to(dtype)
        x0 = torch.randn(n, generator=g, dtype=torch.float64).to(dtype)
        state = _full_history_state(n, m, dtype, lam, x0)
        runs = []
        for cls in (torch.optim.LBFGS, LBFGS):
            x = x0.clone().requires_grad_(True)
            optimizer = cls([x], lr=1, max_iter=1, max_eval=2, tolerance_grad=0.0, tolerance_change=0.0,
                            history_size=m)
            optimizer.load_state_dict(state)

            def closure(x: torch.Tensor = x, optimizer: Any = optimizer) -> torch.Tensor:
                optimizer.zero_grad()
                loss = 0.5 * (lam * x * x).sum() - x.sum()
                loss.backward()
                return loss

            runs.append((optimizer, x, closure))
        del state
        torch_times: list[float] = []
        reference_times: list[float] = []

        def one_round() -> None:
            timed = list(zip(runs, (torch_times, reference_times), strict=True))
            if len(torch_times) % 2:  # ABBA: who goes first alternates, so neither profits from the other's caches
                timed.reverse()
            for (optimizer, _, closure), times in timed:
                start = time.perf_counter()
                optimizer.step(closure)
                times.append(time.perf_counter() - start)
            difference = first_difference([runs[0][1]], [runs[1][1]], "params")
            assert difference is None, f"trajectories differ after {len(torch_times)} round(s): {difference}"

        benchmark.pedantic(one_round, rounds=_rounds(n, m), iterations=1, warmup_rounds=1)
        bandwidth = read_bandwidth(dtype)
    ratios = [r / t for r, t in zip(reference_times[1:], torch_times[1:], strict=True)]  # first round: warm-up
    traffic = 4 * m * n * torch.finfo(dtype).bits // 8
    benchmark.extra_info.update({
        "n": n, "history": m, "dtype": dtype_name, "threads": 1, "rounds": len(ratios),
        "median_ratio_reference_over_torch": statistics.median(ratios),
        "median_torch_step_s": statistics.median(torch_times[1:]),
        "median_reference_step_s": statistics.median(reference_times[1:]),
        "two_loop_bytes_per_iteration": traffic,
        "read_bandwidth_bytes_per_s": bandwidth,
        "physical_limit_s": traffic / bandwidth,
    })
