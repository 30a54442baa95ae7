"""Shared test set-up: the hypothesis profile (``LBFGS_VERIFY_PROFILE``, default ``ci``) and thread count."""

import torch

from lbfgs_verify.hypothesis_profiles import load_profile

load_profile()
# Bits depend on the thread count: every comparison in this suite runs single-threaded.
torch.set_num_threads(1)
