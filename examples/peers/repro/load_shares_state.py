"""After b.load_state_dict(a.state_dict()) in memory, stepping b changes a's later steps (shared tensors).

Property: state.load_independence. Usage: python load_shares_state.py PKG
"""

import sys

import torch
from _make import closure_for, make, quadratic, verdict

package = sys.argv[1]


def run(interleave: bool) -> torch.Tensor:
    pa = [torch.tensor([3.0, -2.0, 0.5], dtype=torch.float32, requires_grad=True)]
    a = make(package, pa, max_iter=1)
    ca = closure_for(package, pa, quadratic(pa))
    a.step(ca)
    if interleave:
        pb = [pa[0].detach().clone().requires_grad_(True)]
        b = make(package, pb, max_iter=1)
        b.load_state_dict(a.state_dict())
        b.step(closure_for(package, pb, quadratic(pb)))
    for _ in range(3):
        a.step(ca)
    return pa[0].detach().clone()


alone, with_b = run(False), run(True)
verdict(not torch.equal(alone, with_b), f"{package}: a's parameters after 4 steps: {alone.tolist()} alone, "
        f"{with_b.tolist()} when b loaded a's state and stepped once")
