"""pytorch-minimize's L-BFGS discards the step it has just accepted when its progress test fires, and then
stays there for good.

torchmin/bfgs.py evaluates x_new = x + t·d and tests ``|f_new - f| <= xtol`` *before* ``x.copy_(x_new)``: when
the test fires, the result is the previous x although f(x_new) < f(x). With one iteration per ``step()`` every
later step repeats the same trial and discards it again: the optimizer is stuck although max|g| is far above
gtol. Property: mathematics.strong_wolfe (a search that evaluated a lower point along a descent direction and
returned to x_k; found at the ci budget).
"""

import torch
import torchmin

x = torch.tensor([0.3760424014452425, 0.16625589151983036], dtype=torch.float64, requires_grad=True)
seen: list[float] = []


def closure() -> torch.Tensor:  # torchmin's convention: zero the gradients, no backward() in the closure
    x.grad = None
    loss = ((x * x - 1) ** 2).sum() + 0.1 * x[0] * x[1]
    seen.append(float(loss))
    return loss


optimizer = torchmin.Minimizer([x], method="l-bfgs", max_iter=1,
                               options={"lr": 0.1, "history_size": 1, "line_search": "strong-wolfe", "xtol": 1e-9,
                                        "gtd_tol": 1e-9, "gtol": 1e-7, "normp": float("inf")})
stuck = []
for step in range(20):
    seen.clear()
    before = x.detach().clone()
    optimizer.step(closure)
    if torch.equal(before, x.detach()) and min(seen) < seen[0]:
        stuck.append(step)
print(f"steps that evaluated a lower point and did not move: {stuck}")
ok = len(stuck) >= 2
print(("REPRODUCED: " if ok else "NOT REPRODUCED: ") + "the accepted, lower point is discarded, again at every step")
raise SystemExit(0 if ok else 1)
