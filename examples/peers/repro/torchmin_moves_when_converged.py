"""pytorch-minimize's Minimizer(method="l-bfgs") moves from a point where the gradient test already holds.

torchmin/bfgs.py tests ``g.norm(p=normp) <= gtol`` only after an iteration, never at the start, so a step
taken at a converged point still moves (torch.optim.LBFGS returns at once: "optimal condition").
Property: behaviour.converged_no_move.
"""

import torch
import torchmin

x = torch.tensor([-1.2, 1.0], requires_grad=True)


def closure() -> torch.Tensor:  # torchmin's convention: zero the gradients, no backward() in the closure
    x.grad = None
    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


start = x.detach().clone()
x0 = x.detach().clone().requires_grad_(True)
g0 = torch.autograd.grad(100 * (x0[1] - x0[0] ** 2) ** 2 + (1 - x0[0]) ** 2, x0)[0]
optimizer = torchmin.Minimizer([x], method="l-bfgs", max_iter=5,
                               options={"gtol": float(g0.abs().max()) * 2, "normp": float("inf"),
                                        "line_search": "none"})
optimizer.step(closure)
moved = not torch.equal(x.detach(), start)
print(f"max|g0| = {float(g0.abs().max()):.4g}, gtol = {2 * float(g0.abs().max()):.4g}, x: {start.tolist()} -> "
      f"{x.detach().tolist()}")
print(("REPRODUCED: " if moved else "NOT REPRODUCED: ") + "torchmin moved although max|g| <= gtol at the start")
raise SystemExit(0 if moved else 1)
