"""Tolerances for comparisons that cannot be bitwise: parameters moved between devices (``cuda.*``), resumed under
another thread count (``portability.*``), golden traces judged away from the kernels that recorded them
(:mod:`lbfgs_verify.compare.golden_traces`).

A low-level module (it imports only torch and the trace record) so that the comparison code and the properties
both take their tolerances from here (issue 20: lower layers know nothing of higher ones).

Sources: pytorch #111508 (CPU and CUDA kernels round differently); aten/src/ATen/Parallel.h (reductions split at
``GRAIN_SIZE``); Higham, *Accuracy and Stability of Numerical Algorithms* (2nd ed.), §3.1 (a reordered sum
differs by a few units of roundoff per term).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lbfgs_verify.compare.trace import StepRecord


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol + rtol * |expected|`` elementwise."""

    rtol: float
    atol: float

    def __str__(self) -> str:
        return f"rtol {self.rtol:g}, atol {self.atol:g}"


FLOAT64_TOLERANCE = Tolerance(rtol=1e-9, atol=1e-10)
"""Float64 parameters continued on another device (``cuda.*``, derivation in that module's docstring)."""
FLOAT32_TOLERANCE = Tolerance(rtol=1e-4, atol=1e-4)
"""Float32 parameters continued on another device (``cuda.*``)."""


def real64(t: Tensor) -> Tensor:
    """``t`` on the CPU as float64 (complex tensors as their real view)."""
    t = t.detach().cpu()
    if t.is_complex():
        t = torch.view_as_real(t)
    return t.to(torch.float64)


def first_violation(expected: Sequence[StepRecord], actual: Sequence[StepRecord], tolerance: Tolerance) -> str | None:
    """The first step/parameter where ``actual`` leaves ``tolerance`` around ``expected`` (read on the CPU)."""
    for e, a in zip(expected, actual, strict=True):
        for i, (x, y) in enumerate(zip(e.params, a.params, strict=True)):
            x64 = real64(x)
            y64 = real64(y)
            if x64.shape != y64.shape:
                return f"step {e.index}: params[{i}] shape {tuple(x.shape)} != {tuple(y.shape)}"
            excess = (y64 - x64).abs() - (tolerance.atol + tolerance.rtol * x64.abs())
            if not bool(torch.isfinite(y64).all()) or bool((excess > 0).any()):
                worst = int(torch.nan_to_num(excess, nan=float("inf")).reshape(-1).argmax())
                return (f"step {e.index}: params[{i}] element {worst}: {x64.reshape(-1)[worst].item()!r} (CPU) vs "
                        f"{y64.reshape(-1)[worst].item()!r}; max |diff| {float((y64 - x64).abs().max()):.3g} "
                        f"exceeds {tolerance}")
    return None


__all__ = ["FLOAT32_TOLERANCE", "FLOAT64_TOLERANCE", "Tolerance", "first_violation", "real64"]
