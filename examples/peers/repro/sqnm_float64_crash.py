"""sqnm's LBFGS crashes at its second step on float64 (and bfloat16/float16) parameters.

SQNBase allocates the history buffers ``s_hist``/``y_hist`` with torch.zeros' default dtype (float32)
(sqnm/optim/sqn_base.py), so the two-loop recursion's ``dot`` mixes dtypes: "expected both vectors to have
same dtype, but found Float and Double". Properties: every property whose examples use float64 parameters.
"""

import torch
from sqnm.optim import LBFGS

x = torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True)


def closure() -> torch.Tensor:
    x.grad = None
    loss = (x**2).sum() + 0.1 * (x**4).sum()
    loss.backward()
    return loss


optimizer = LBFGS([x], lr=0.1, history_size=3)
optimizer.step(closure)
try:
    optimizer.step(closure)
except RuntimeError as exc:
    print("REPRODUCED: step 2 on float64 raised RuntimeError:", exc)
    raise SystemExit(0) from None
print("NOT REPRODUCED: two float64 steps ran")
raise SystemExit(1)
