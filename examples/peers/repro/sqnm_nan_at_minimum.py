"""sqnm's LBFGS turns the parameters into NaN when started at an exact minimum with grad_tol = 0.

The test ``gradk.norm() < grad_tol`` is strict, so with grad_tol = 0 a zero gradient is not "converged"; the
step s = 0 gives sᵀy = 0 and the next two-loop recursion divides by it. torch.optim.LBFGS tests
``max|g| <= tolerance_grad`` and does not move. Property: behaviour.converged_no_move.
"""

import torch
from sqnm.optim import LBFGS

x = torch.tensor([0.5, -1.0, 2.0, 1.5], requires_grad=True)
centre = x.detach().clone()


def closure() -> torch.Tensor:
    x.grad = None
    loss = ((x - centre) ** 2).sum()
    loss.backward()
    return loss


optimizer = LBFGS([x], lr=1.0, history_size=3, grad_tol=0.0)
for _ in range(3):
    optimizer.step(closure)
nan = bool(torch.isnan(x).any())
print(f"parameters after 3 steps from the minimiser: {x.detach().tolist()}")
print(("REPRODUCED: " if nan else "NOT REPRODUCED: ") + "steps from an exact minimum produce NaN")
raise SystemExit(0 if nan else 1)
