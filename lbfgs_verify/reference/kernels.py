"""Whole phases of one L-BFGS-B iteration compiled by numba, for small problems (optional, the ``speed`` extra).

Below :data:`~lbfgs_verify.reference.cauchy.KERNEL_MIN_SIZE` entries an iteration of the twin costs Python's
per-call overhead, not arithmetic (``formk`` + ``subsm`` alone made about 25 numpy calls and 55 BLAS calls through
f2py). There, when numba is installed, each phase is one compiled call that does what ``scipy/optimize/__lbfgsb.c``
does in the same order (the kernels live in :mod:`lbfgs_verify.reference._compiled`, imported on first use):

- without bounds, ``formk`` + ``subsm`` (``quasi_newton_point``), ``matupd``'s new products + ``formt``
  (``middle_factor``), the Moré–Thuente ``dcsrch``/``dcstep`` state machine on a float array (``dcsrch_iterate``),
  ``projgr`` (``infinity_norm``) and the evaluation memo's test (``same_point``);
- with bounds, one pass ``cauchy`` → ``freev`` → ``formk`` (both halves) → ``cmprlb`` → ``subsm``
  (``bounded_point``, from the pieces ``cauchy_point``, ``free_variables``, ``update_inner``, ``reduced_factor``,
  ``bmv``, ``subspace_point``), ``lnsrlb``'s largest step and the projected-gradient norm;
- ``ddot``, ``dnrm2``, ``daxpy``, ``dpotrf``, ``dtrtrs``: scipy's own routines (``scipy.linalg.cython_blas`` /
  ``cython_lapack``, the library scipy's ``_lbfgsb`` links), called from the kernels.

The loops are compiled with ``fastmath`` off (no reassociation, no fused multiply-add: each product and sum is
rounded as in the C code) and IEEE division (``error_model="numpy"``); each kernel is checked bitwise against the
Python/numpy code it stands for in ``tests/fast/test_lbfgsb_kernels.py``, and the twin against scipy in the MGH and
bounded suites. A phase in which a NaN comes up is done again on the numpy path (a NaN's sign and payload depend on
the order the compiler gives the operands; the numpy path's are the loops'). ``LBFGS_VERIFY_KERNELS=numpy`` turns
the kernels off; numba is imported on the first iteration that would use them, never by importing this module.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from lbfgs_verify.reference import cauchy as _cauchy

SEARCH_STATE = ("bracketed", "stage", "f_init", "g_init", "g_test", "stx", "fx", "gx", "sty", "fy", "gy", "stmin",
                "stmax", "width", "width_before")
"""Layout of the float64 state array of the compiled ``dcsrch`` (the fields of ``more_thuente.SearchState``;
``bracketed`` 0/1, ``stage`` 1/2)."""

_SMALL_KERNELS: Any = None  # None: not built yet; False: numba missing; else the namespace


def _build() -> SimpleNamespace | None:
    try:
        from lbfgs_verify.reference._compiled import KERNELS
    except ImportError:  # numba (the ``speed`` extra) is not installed
        return None
    return SimpleNamespace(**KERNELS)


def small_kernels() -> SimpleNamespace | None:
    """The compiled phases, or ``None`` (numba missing or ``LBFGS_VERIFY_KERNELS=numpy``: the numpy path)."""
    global _SMALL_KERNELS
    if not _cauchy.KERNELS_ENABLED:
        return None
    if _SMALL_KERNELS is None:
        _SMALL_KERNELS = _build() or False
    return _SMALL_KERNELS or None
