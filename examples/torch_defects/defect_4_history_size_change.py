"""torch.optim.LBFGS defect 4: changing ``history_size`` between steps ends in IndexError.

``param_groups[0]["history_size"]`` is read at every step, but the lazily created list ``al`` keeps the length
of the first value, so a larger (or, with a full memory, a different) value later indexes past its end.

Needs only torch. Exit status 1 and "REPRODUCED" while the defect is there, 0 and "NOT REPRODUCED" once fixed.
"""

import sys

import torch

x = torch.tensor([1.5, -0.5, 2.0, 0.3], dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([x], lr=0.5, max_iter=4, history_size=1)


def closure():
    opt.zero_grad()
    loss = ((x - 1) ** 4).sum() + (x ** 2).sum()
    loss.backward()
    return loss


opt.step(closure)
opt.param_groups[0]["history_size"] = 3
try:
    opt.step(closure)
    opt.step(closure)
except IndexError as exc:
    print(f"REPRODUCED: after history_size 1 -> 3, step() raised IndexError: {exc}")
    sys.exit(1)
print("NOT REPRODUCED: step() works after history_size changed")
