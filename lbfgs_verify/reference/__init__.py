"""Reference optimizers.

- :class:`LBFGS`: bitwise equal to ``torch.optim.LBFGS`` (same device and thread count), safe state.
- :class:`LBFGSState`: its explicit state.
- :class:`LBFGSB`: L-BFGS-B with optional bounds, iterating like scipy 1.17 (bitwise on the same BLAS), resumable;
  :class:`LBFGSBState` its state; :func:`minimize_lbfgsb` / :func:`fmin_l_bfgs_b` the same iteration behind
  scipy's ``minimize(method="L-BFGS-B")`` / ``fmin_l_bfgs_b`` calls.
"""

from lbfgs_verify.reference.lbfgs import LBFGS, two_loop_direction
from lbfgs_verify.reference.lbfgsb import LBFGSB, LBFGSBState
from lbfgs_verify.reference.scipy_compat import fmin_l_bfgs_b, minimize_lbfgsb
from lbfgs_verify.reference.state import LBFGSState

__all__ = ["LBFGS", "LBFGSB", "LBFGSBState", "LBFGSState", "fmin_l_bfgs_b", "minimize_lbfgsb", "two_loop_direction"]
