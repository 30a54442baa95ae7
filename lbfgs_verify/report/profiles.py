"""Which runs solved their problem, and Dolan–Moré performance profiles over the problem set.

Solved (Moré & Wild, SIAM J. Optim. 20(1), 2009, with an absolute floor): a run solves problem p when its f
is within τ_f · max(1, |f_ref|) of f_ref, where f_ref is the lowest of the published optimum and every
solver's final f, and τ_f = :data:`lbfgs_verify.compare.solutions.F_RELATIVE_TOLERANCE` (1e-6, the tolerance
of "same f" in the solution comparison). The cost of a solved run is the evaluations (or seconds) at which the
lowest f so far first met the test; an unsolved or failed run costs ∞.

Performance profile (Dolan & Moré, Math. Programming 91, 2002): r_ps = cost_ps / min_s cost_ps and
ρ_s(τ) = |{p : r_ps ≤ τ}| / |P|; ρ_s(1) is the share of problems where s was (one of) the cheapest, the
right end of the curve the share it solved at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lbfgs_verify.compare.solutions import F_RELATIVE_TOLERANCE

SOLVED = "solved"
UNSOLVED = "unsolved"


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def reference_values(problems: Sequence[Mapping[str, Any]], runs: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """f_ref per problem: the lowest of the published f* and every ok run's final f."""
    out: dict[str, float] = {}
    for problem in problems:
        candidates = [_float(r["final_f"]) for r in runs if r["problem"] == problem["name"] and r["status"] == "ok"]
        if problem.get("f_star") is not None:
            candidates.append(float(problem["f_star"]))
        finite = [c for c in candidates if math.isfinite(c)]
        out[problem["name"]] = min(finite) if finite else math.nan
    return out


def solve_threshold(f_ref: float) -> float:
    """f - f_ref at or below which a run counts as solved."""
    return F_RELATIVE_TOLERANCE * max(1.0, abs(f_ref))


def solved_cost(run: Mapping[str, Any], f_ref: float) -> tuple[int, float] | None:
    """(evaluations, seconds) at which ``run`` first met the solved test, or ``None`` when it never did."""
    if run["status"] != "ok" or not math.isfinite(f_ref):
        return None
    threshold = solve_threshold(f_ref)
    final = _float(run["final_f"])
    if not final - f_ref <= threshold:
        return None
    curve = run["curve"]
    for k, f, t in zip(curve["evaluations"], curve["f_best"], curve["seconds"], strict=True):
        if _float(f) - f_ref <= threshold:
            return int(k), float(t)
    return None


def performance_profile(costs: Mapping[str, Sequence[float]], taus: Sequence[float]) -> dict[str, list[float]]:
    """ρ_s(τ) for each solver; ``costs[s][p]`` is ∞ where s did not solve p (same problem order for all s)."""
    solvers = list(costs)
    n_problems = len(next(iter(costs.values()), []))
    ratios: dict[str, list[float]] = {s: [] for s in solvers}
    for p in range(n_problems):
        best = min((costs[s][p] for s in solvers), default=math.inf)
        for s in solvers:
            c = costs[s][p]
            if not math.isfinite(c) or not math.isfinite(best):
                ratios[s].append(math.inf)
            else:
                ratios[s].append(c / best if best > 0 else (1.0 if c == 0 else math.inf))
    return {s: [sum(r <= tau for r in ratios[s]) / n_problems if n_problems else 0.0 for tau in taus]
            for s in solvers}


def tau_grid(max_tau: float = 2.0**10, points: int = 121) -> list[float]:
    """τ from 1 to ``max_tau``, evenly spaced in log2."""
    top = math.log2(max_tau)
    return [2.0 ** (top * i / (points - 1)) for i in range(points)]
