"""Run time of the scipy twin (``lbfgs_verify.reference.minimize_lbfgsb``) against scipy's L-BFGS-B, interleaved.

``python -m pytest benchmarks/test_lbfgsb_vs_scipy.py --benchmark-only --benchmark-json=lbfgsb_vs_scipy.json``

For n in (1e2, 1e4, 1e6), without bounds and with bounds [-2, 0.5]: chained Rosenbrock (numpy objective and
gradient, ``jac=True``) from the standard start (-1.2, 1, -1.2, 1, …), ``maxiter=50``, ``maxcor=10``. Each round
runs ``scipy.optimize.minimize(method="L-BFGS-B")`` and the twin once each, single-threaded (torch and BLAS), the
one that goes first alternating from round to round (ABBA). After every round status, nit, nfev, njev, f and x
must be bitwise equal (the comparison is meaningless otherwise). Recorded in ``extra_info``: the median, minimum
and maximum of the per-round ratios twin/scipy in wall time and in CPU time of the process (the machine may be
shared: the CPU-time ratio is the less noisy one), both medians, and the physical limit: the compact-form step
(``formk``/``subsm``) streams the m stored pairs (s, y) twice per iteration, 4·m·n·8 bytes (the same traffic as the
two-loop recursion, Nocedal & Wright Alg. 7.4), times the iterations run, against the read bandwidth measured
here (``numpy.dot`` over 256 MiB). The objective's own time is in both runs and not in the limit. Also recorded:
which path the twin's compiled parts took (``kernels``: ``"numba"`` when numba is installed and not turned off by
``LBFGS_VERIFY_KERNELS=numpy`` — whole phases of the iteration below 4096 entries, the in-order sums above —
else ``"numpy"``; same bits; numba's import and cache load, once per process, run before the timed rounds) and the
load average over the case (the machine may be shared). Timing goes to the report, never into an assertion.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import numpy as np
import pytest
import scipy.optimize
import torch
from threadpoolctl import threadpool_limits

from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.reference import minimize_lbfgsb
from lbfgs_verify.reference.cauchy import KERNEL_MIN_SIZE, compiled_kernels
from lbfgs_verify.reference.kernels import small_kernels

SIZES = (100, 10_000, 1_000_000)
MAXITER = 50
MAXCOR = 10
LOWER, UPPER = -2.0, 0.5


def chained_rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    """f = Σ 100 (x_{i+1} - x_i²)² + (1 - x_i)² and its gradient (Moré, Garbow & Hillstrom 1981, extended form)."""
    head, tail = x[:-1], x[1:]
    inner = tail - head * head
    f = float(np.sum(100.0 * inner * inner + (1.0 - head) ** 2))
    g = np.zeros_like(x)
    g[:-1] = -400.0 * head * inner - 2.0 * (1.0 - head)
    g[1:] += 200.0 * inner
    return f, g


def read_bandwidth(nbytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Bytes per second that one thread reads in ``numpy.dot(a, b)`` over two float64 vectors of ``nbytes`` in all."""
    n = nbytes // 16
    rng = np.random.default_rng(0)
    a, b = rng.random(n), rng.random(n)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.dot(a, b)
        times.append(time.perf_counter() - start)
    return nbytes / min(times)


def _kernels_path(n: int) -> str:
    """Where the twin's compiled parts run at this size: "numba" (whole phases below KERNEL_MIN_SIZE entries, the
    in-order sums above) when numba is installed and not turned off, else "numpy"."""
    compiled = small_kernels() if n < KERNEL_MIN_SIZE else compiled_kernels(n)
    return "numpy" if compiled is None else "numba"


def _rounds(n: int, bounded: bool) -> int:
    if n <= 100:
        return 40
    if n <= 10_000:
        return 12
    return 2


def _same_result(scipy_result: Any, twin_result: Any) -> str | None:
    """Why the two results differ (``None`` when status, counts, f and x are bitwise equal)."""
    for key in ("status", "nit", "nfev", "njev"):
        if scipy_result[key] != twin_result[key]:
            return f"{key}: scipy {scipy_result[key]}, twin {twin_result[key]}"
    if np.float64(scipy_result.fun).tobytes() != np.float64(twin_result.fun).tobytes():
        return f"fun: scipy {scipy_result.fun!r}, twin {twin_result.fun!r}"
    if np.asarray(scipy_result.x).tobytes() != np.asarray(twin_result.x).tobytes():
        return "x differs"
    return None


@pytest.mark.parametrize("bounded", [False, True], ids=["unbounded", "bounded"])
@pytest.mark.parametrize("n", SIZES)
def test_run_time_twin_vs_scipy(benchmark: Any, n: int, bounded: bool) -> None:
    x0 = np.full(n, -1.2)
    x0[1::2] = 1.0
    bounds = scipy.optimize.Bounds(np.full(n, LOWER), np.full(n, UPPER)) if bounded else None
    options = {"maxiter": MAXITER, "maxcor": MAXCOR}
    wall: dict[str, list[float]] = {"scipy": [], "twin": []}
    cpu: dict[str, list[float]] = {"scipy": [], "twin": []}
    iterations: list[int] = []

    def run_scipy() -> Any:
        return scipy.optimize.minimize(chained_rosenbrock, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                       options=options)

    def run_twin() -> Any:
        return minimize_lbfgsb(chained_rosenbrock, x0, jac=True, bounds=bounds, options=options)

    def one_round() -> None:
        order = [("scipy", run_scipy), ("twin", run_twin)]
        if len(wall["scipy"]) % 2:  # ABBA: who goes first alternates
            order.reverse()
        results = {}
        for name, run in order:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            results[name] = run()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start_wall)
        difference = _same_result(results["scipy"], results["twin"])
        assert difference is None, f"round {len(wall['scipy'])}: {difference}"
        iterations.append(int(results["scipy"].nit))

    with comparison_environment(1), threadpool_limits(1):
        assert torch.get_num_threads() == 1
        if _kernels_path(n) == "numba":  # numba's import and cache load (once per process) stay out of the rounds
            small = np.full(KERNEL_MIN_SIZE if n >= KERNEL_MIN_SIZE else 10, -1.2)
            minimize_lbfgsb(chained_rosenbrock, small, jac=True, bounds=[(LOWER, UPPER)] * small.size,
                            options={"maxiter": 3, "maxcor": MAXCOR})
            minimize_lbfgsb(chained_rosenbrock, small, jac=True, options={"maxiter": 3, "maxcor": MAXCOR})
        benchmark.pedantic(one_round, rounds=_rounds(n, bounded), iterations=1, warmup_rounds=0)
        bandwidth = read_bandwidth()
    wall_ratios = [t / s for t, s in zip(wall["twin"], wall["scipy"], strict=True)]
    cpu_ratios = [t / s for t, s in zip(cpu["twin"], cpu["scipy"], strict=True)]
    traffic = 4 * MAXCOR * n * 8 * iterations[-1]
    benchmark.extra_info.update({
        "n": n, "bounded": bounded, "bounds": [LOWER, UPPER] if bounded else None, "maxiter": MAXITER,
        "maxcor": MAXCOR, "threads": 1, "rounds": len(wall_ratios), "nit": iterations[-1],
        "median_ratio_twin_over_scipy": statistics.median(wall_ratios),
        "min_ratio_twin_over_scipy": min(wall_ratios), "max_ratio_twin_over_scipy": max(wall_ratios),
        "median_cpu_ratio_twin_over_scipy": statistics.median(cpu_ratios),
        "min_cpu_ratio_twin_over_scipy": min(cpu_ratios), "max_cpu_ratio_twin_over_scipy": max(cpu_ratios),
        "median_scipy_s": statistics.median(wall["scipy"]), "median_twin_s": statistics.median(wall["twin"]),
        "median_scipy_cpu_s": statistics.median(cpu["scipy"]), "median_twin_cpu_s": statistics.median(cpu["twin"]),
        "compact_form_bytes_per_run": traffic,
        "read_bandwidth_bytes_per_s": bandwidth,
        "physical_limit_s": traffic / bandwidth,
        "kernels": _kernels_path(n),
        "load_average_1min": os.getloadavg()[0],
    })
