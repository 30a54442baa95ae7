"""A one-file L-BFGS with one planted bug, for the README's "Read a failing run".

``MyLBFGS`` is the harness's reference L-BFGS (torch.optim.LBFGS's algorithm and state format) except that
``state_dict()`` keeps only the newest curvature pair of the history, so a run resumed from a checkpoint takes
other steps than the uninterrupted run (Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithm 7.4: the
two-loop recursion uses all m stored pairs). Copy it into a new folder and run
``lbfgs-verify check myopt:MyLBFGS --budget quick --only resume`` there.
"""

from __future__ import annotations

from typing import Any

from lbfgs_verify.reference import LBFGS


class MyLBFGS(LBFGS):
    """The reference L-BFGS whose ``state_dict()`` forgets all but the newest (s, y) pair."""

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        for entry in saved["state"].values():
            for key in ("old_dirs", "old_stps", "ro"):
                if key in entry:
                    entry[key] = entry[key][-1:]  # the bug: the whole history should be kept
        return saved
