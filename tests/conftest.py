"""Shared test set-up: the hypothesis profile (``LBFGS_VERIFY_PROFILE``, default ``ci``) and thread count."""

import torch

import lbfgs_verify.reference  # noqa: F401  (see below)
from lbfgs_verify.hypothesis_profiles import load_profile

load_profile()
# Bits depend on the thread count: every comparison in this suite runs single-threaded.
torch.set_num_threads(1)
# The reference (and scipy and numpy.fft behind it) is imported here, once per process: pytester's in-process
# runs drop the modules first imported inside them, and numpy's C extensions cannot be imported a second time
# ("cannot load module more than once per process"), so a test file run alone, or on an xdist worker whose
# earlier tests did not import them, would otherwise fail its second in-process run.
