"""torch.optim.LBFGS defect 2: ``state_dict()`` is not a snapshot.

``optimizer.state_dict()["state"][0]`` is the optimizer's live per-parameter dict, and its tensors are rewritten
in place by later steps: a checkpoint "taken now" and kept in memory silently holds later state.

Needs only torch. Exit status 1 and "REPRODUCED" while the defect is there, 0 and "NOT REPRODUCED" once fixed.
"""

import sys

import torch

x = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([x], lr=0.5, max_iter=3)


def closure():
    opt.zero_grad()
    loss = ((x - 1) ** 4).sum() + (x ** 2).sum()
    loss.backward()
    return loss


opt.step(closure)
checkpoint = opt.state_dict()
n_iter_then = checkpoint["state"][0]["n_iter"]
d_then = checkpoint["state"][0]["d"].clone()
opt.step(closure)
n_iter_later = checkpoint["state"][0]["n_iter"]
d_changed = not torch.equal(checkpoint["state"][0]["d"], d_then)
if n_iter_later != n_iter_then or d_changed:
    print(f"REPRODUCED: the dict returned by state_dict() changed during a later step "
          f"(n_iter {n_iter_then} -> {n_iter_later}; d changed: {d_changed})")
    sys.exit(1)
print("NOT REPRODUCED: the dict returned by state_dict() did not change")
