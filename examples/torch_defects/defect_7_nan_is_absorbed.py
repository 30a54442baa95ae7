"""torch.optim.LBFGS defect 7: NaN is absorbed silently.

(a) One NaN gradient without a line search turns the parameters and the state permanently NaN, with no error
(pytorch issue #5953). (b) ``load_state_dict`` accepts a state whose direction ``d`` is NaN, and the curvature
test ``y·s > 1e-10`` is False for NaN, so nothing reports it.

Needs only torch. Exit status 1 and "REPRODUCED" while the defect is there, 0 and "NOT REPRODUCED" once fixed.
"""

import sys

import torch

x = torch.tensor([1.5, -0.5], dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([x], lr=0.5, max_iter=2)
calls = [0]


def closure():
    opt.zero_grad()
    loss = ((x - 1) ** 2).sum()
    loss.backward()
    calls[0] += 1
    if calls[0] == 3:  # one bad gradient (the first call of the second step), e.g. a single bad batch
        x.grad.fill_(float("nan"))
    return loss


raised = None  # torch raises nothing
try:
    for _ in range(4):
        opt.step(closure)
except (RuntimeError, ValueError) as exc:
    raised = exc
poisoned = raised is None and bool(torch.isnan(x.detach()).all())

y = torch.tensor([1.5, -0.5], dtype=torch.float64, requires_grad=True)
opt2 = torch.optim.LBFGS([y], max_iter=2)


def closure2():
    opt2.zero_grad()
    loss = ((y - 1) ** 2).sum()
    loss.backward()
    return loss


opt2.step(closure2)
state = opt2.state_dict()
state["state"][0]["d"] = torch.full_like(state["state"][0]["d"], float("nan"))
try:
    opt3 = torch.optim.LBFGS([y], max_iter=2)
    opt3.load_state_dict(state)
    accepted = True
except (ValueError, RuntimeError):
    accepted = False
if poisoned or accepted:
    print(f"REPRODUCED: one NaN gradient left the parameters NaN after 4 steps with no error: {poisoned}; "
          f"load_state_dict accepted a NaN direction d: {accepted}")
    sys.exit(1)
print("NOT REPRODUCED: NaN is reported")
