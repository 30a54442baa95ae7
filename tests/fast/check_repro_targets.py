"""Targets for tests/fast/test_check_repro.py."""

from __future__ import annotations

import torch


class TorchLBFGSUnderAnotherName(torch.optim.LBFGS):
    """torch.optim.LBFGS itself, reached through another class: its failures are the baseline's failures."""
