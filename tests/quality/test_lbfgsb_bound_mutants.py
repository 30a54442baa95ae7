"""Bugs planted in the bounded L-BFGS-B (written after its tests, not tuned to them): each must make the bounded
runs differ from scipy 1.17 on the cases of the interface tests, so a silent bounds bug cannot pass.

Each mutant replaces one piece of :mod:`lbfgs_verify.reference.lbfgsb`'s bounded branch through ``monkeypatch``:
the incremental update of the reduced matrix when variables enter or leave the free set (``formk``), the box
limit of the line search (``lnsrlb``), the projected-gradient stop test (``projgr``), and the Morales–Nocedal
backtracking of the subspace step (``subsm``). The unmutated code is bitwise scipy's on the same cases (asserted
first). Not among them: removing the clamp of trial points into the box, which changes nothing on these cases
(the line search's largest step already keeps x + stp·d in the box; the clamp only absorbs rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.optimize import minimize, rosen, rosen_der

import lbfgs_verify.reference.cauchy as cauchy_module
import lbfgs_verify.reference.lbfgsb as lbfgsb_module
from lbfgs_verify.reference import minimize_lbfgsb
from lbfgs_verify.reference.subspace import FreeSet, free_set, subspace_step

CASES = [
    (np.array([-1.2, 1.0, 0.5, -0.3, 1.5, -1.0]), [(-1.0, 0.5), (None, 0.8), (0.0, 3.0), (-0.2, None), (0.6, 1.2),
                                                    (None, None)], 3),
    (np.array([2.0, -1.5, 0.3, 1.1]), [(0.2, 0.9), (-1.0, 0.4), (0.5, None), (None, 0.95)], 5),
    (np.array([0.0, 0.0, 0.0]), [(-0.5, 0.5), (0.3, 0.6), (None, 0.2)], 2),
]


def rosen_pair(x: np.ndarray) -> tuple[float, np.ndarray]:
    return rosen(x), rosen_der(x)


def _same_as_scipy(x0: np.ndarray, bounds: list[Any], maxcor: int) -> bool:
    seen_ours: list[bytes] = []
    seen_theirs: list[bytes] = []
    theirs = minimize(rosen_pair, x0, jac=True, bounds=bounds, method="L-BFGS-B", options={"maxcor": maxcor},
                      callback=lambda intermediate_result: seen_theirs.append(intermediate_result.x.tobytes()))
    try:
        ours = minimize_lbfgsb(rosen_pair, x0, jac=True, bounds=bounds, options={"maxcor": maxcor},
                               callback=lambda intermediate_result: seen_ours.append(intermediate_result.x.tobytes()))
    except Exception:  # a mutant may also crash: that is caught too
        return False
    return seen_ours == seen_theirs and ours.nfev == theirs.nfev and ours.x.tobytes() == theirs.x.tobytes()


def differs_from_scipy() -> list[int]:
    """Indices of the cases whose iterates, counts or result differ from scipy's."""
    return [index for index, (x0, bounds, maxcor) in enumerate(CASES) if not _same_as_scipy(x0, bounds, maxcor)]


def _no_enter_or_leave(*args: Any, **kwargs: Any) -> FreeSet:
    result = free_set(*args, **kwargs)
    empty = np.zeros(0, dtype=np.int64)
    return FreeSet(result.index, result.n_free, empty, empty, result.changed)


def _unlimited_step(x: np.ndarray, d: np.ndarray, box: Any) -> float:
    return 1.0e10


def _unprojected_gradient_norm(x: np.ndarray, g: np.ndarray, box: Any) -> float:
    return float(np.max(np.abs(g)))


def _no_backtracking(cauchy_point: np.ndarray, r: np.ndarray, box: Any, s: np.ndarray, y: np.ndarray,
                     theta: float, x: np.ndarray, g: np.ndarray, wn: np.ndarray, free: FreeSet) -> np.ndarray | None:
    """The subspace step projected onto the box even when it then points uphill (no Morales–Nocedal fallback)."""
    # Run the real step with a zero gradient, so that its uphill test never fires.
    return subspace_step(cauchy_point, r, box, s, y, theta, x, np.zeros_like(g), wn, free)


MUTANTS: dict[str, tuple[str, Callable[..., Any]]] = {
    "formk ignores variables entering/leaving the free set": ("free_set", _no_enter_or_leave),
    "line search not limited to the box": ("longest_feasible_step", _unlimited_step),
    "stop test on the plain gradient instead of the projected one": ("box_projected_gradient_norm",
                                                                     _unprojected_gradient_norm),
    "no backtracking of an uphill projected subspace step": ("subspace_step", _no_backtracking),
}


def test_unmutated_bounded_code_is_scipys_on_these_cases() -> None:
    assert differs_from_scipy() == []


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_each_planted_bounds_bug_is_caught(mutant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name, replacement = MUTANTS[mutant]
    monkeypatch.setattr(cauchy_module, "KERNELS_ENABLED", False)  # the bugs are planted in the numpy path
    monkeypatch.setattr(lbfgsb_module, name, replacement)
    assert differs_from_scipy(), f"planted bug not caught: {mutant}"
