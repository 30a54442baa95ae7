"""qqn-torch's QQN(line_search="strong_wolfe") evaluates trial points, one of them lower, and returns to x₀.

On Rosenbrock from (-1.2, 1) the search tries 9 points (f = 2.1e11 ... 4.13) and leaves the parameters where
they were (f = 24.2), at every step: the optimizer never moves, although a point with sufficient decrease and a
strong-Wolfe point exist along a descent direction (Nocedal & Wright, Lemma 3.1).
Properties: mathematics.strong_wolfe, convergence.reaches_f_star.
"""

import torch
from qqn_torch import QQN

x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
losses: list[float] = []


def closure() -> torch.Tensor:
    x.grad = None
    loss = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    loss.backward()
    losses.append(float(loss))
    return loss


optimizer = QQN([x], oracle="lbfgs", line_search="strong_wolfe", max_iter=200, tol_grad=1e-12, tol_change=1e-14)
for _ in range(3):
    optimizer.step(closure)
never_moved = x.detach().tolist() == [-1.2, 1.0]
print(f"{len(losses)} closure calls, lowest loss seen {min(losses):.6g}, parameters after 3 steps "
      f"{x.detach().tolist()}")
print(("REPRODUCED: " if never_moved and min(losses) < 24.2 else "NOT REPRODUCED: ")
      + "QQN's strong-Wolfe search returns to the start although it evaluated lower points")
raise SystemExit(0 if never_moved and min(losses) < 24.2 else 1)
