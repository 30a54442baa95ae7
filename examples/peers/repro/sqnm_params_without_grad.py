"""sqnm's LBFGS mishandles a parameter that gets no gradient (p.grad is None).

sqnm/utils/param.py ``grad_vec`` concatenates only the gradients that exist, so the flat gradient is shorter
than the flat parameters: the update is broadcast onto the wrong entries (a 1-element gradient moves every
parameter) or raises a size mismatch in ``_add_param_vector``. torch.optim.LBFGS counts a missing gradient as
zeros. Properties: behaviour.no_grad_params, mathematics.first_direction and others on such problems.
"""

import torch
from sqnm.optim import LBFGS

used = torch.tensor([2.0], requires_grad=True)
unused = torch.tensor([0.5, 0.5], requires_grad=True)


def closure() -> torch.Tensor:
    used.grad = None
    unused.grad = None
    loss = (used**2).sum()
    loss.backward()
    return loss


optimizer = LBFGS([used, unused], lr=0.1, history_size=3)
try:
    optimizer.step(closure)
except RuntimeError as exc:
    print("REPRODUCED: step() raised", exc)
    raise SystemExit(0) from None
moved = unused.detach().tolist() != [0.5, 0.5]
print(f"unused parameter after one step: {unused.detach().tolist()} (was [0.5, 0.5])")
print(("REPRODUCED: " if moved else "NOT REPRODUCED: ") + "a parameter without gradient moved")
raise SystemExit(0 if moved else 1)
