"""Reference optimizers.

- :class:`LBFGS`: bitwise equal to ``torch.optim.LBFGS`` (same device and thread count), safe state.
- :class:`LBFGSState`: its explicit state.
"""

from lbfgs_verify.reference.lbfgs import LBFGS, two_loop_direction
from lbfgs_verify.reference.state import LBFGSState

__all__ = ["LBFGS", "LBFGSState", "two_loop_direction"]
