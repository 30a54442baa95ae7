"""Third-party-like targets for the report tests (named with ``--target tests.fast.report_targets:NAME``)."""

from __future__ import annotations

import math

import torch


class FlakyLBFGS(torch.optim.LBFGS):
    """torch.optim.LBFGS that raises on problems with 3 unknowns and ends at NaN on problems with 4."""

    def step(self, closure):  # type: ignore[override]
        size = sum(p.numel() for group in self.param_groups for p in group["params"])
        if size == 3:
            raise RuntimeError("planted failure: FlakyLBFGS refuses 3 unknowns")
        loss = super().step(closure)
        if size == 4:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(math.nan)
            return torch.tensor(math.nan)
        return loss
