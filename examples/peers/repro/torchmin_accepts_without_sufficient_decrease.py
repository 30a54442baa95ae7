"""pytorch-minimize's strong-Wolfe step accepts a point that fails sufficient decrease when its line search runs
out of its own budget.

torchmin/line_search.py imports torch's ``_strong_wolfe`` and calls it (``strong_wolfe``) without ``max_ls``, so the
search has torch's default of 25 iterations whatever the caller wants (torchmin/bfgs.py passes nothing; torchmin has
no evaluation budget). When the first trial is lower than f(x0) but fails the Armijo test, the zoom's first bracket
takes the lower-valued end as its low end although it fails sufficient decrease (torch 2.13 defect 9; Nocedal &
Wright's Alg. 3.6 keeps the end that satisfies it), and when the 25 iterations are used up ``_strong_wolfe``
returns that low end: the step moves to a point with f above the line f(x0) + c1·t·g'd for every c1 >= 1e-10.
Nothing reports it (torchmin/bfgs.py ignores the search's outcome). Property: line_search.sufficient_decrease
(Moré–Thuente 1994 function 1, phi(a) = -a/(a^2 + 2), on its shallow tail: f(x) = 1e-3·2·phi(x), lr = 1e9).
"""

import itertools

import torch
import torchmin

x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
seen: list[tuple[float, float]] = []


def f_of(v: torch.Tensor) -> torch.Tensor:
    return (1e-3 * 2.0 * (-v / (v * v + 2.0))).sum()


def closure() -> torch.Tensor:  # torchmin's convention: zero the gradients, no backward() in the closure
    x.grad = None
    loss = f_of(x)
    seen.append((float(x.detach()[0]), float(loss.detach())))
    return loss


optimizer = torchmin.Minimizer([x], method="l-bfgs", max_iter=1,
                               options={"lr": 1e9, "line_search": "strong-wolfe", "xtol": 1e-9, "gtd_tol": 1e-9,
                                        "gtol": 1e-7, "normp": float("inf")})
optimizer.step(closure)
f0, slope = 0.0, -1e-3  # f(0) and f'(0)
accepted = float(x.detach()[0])
f_accepted = float(f_of(x.detach()))
c1 = 1e-10
line = f0 + c1 * slope * accepted
trials = sorted({v for v, _ in seen})
gap = min(b - a for a, b in itertools.pairwise(trials))
print(f"{len(seen)} closure calls; accepted x = {accepted:.10g}, f(x) = {f_accepted:.6g}, "
      f"f(x0) + c1*g'(x - x0) = {line:.6g} (c1 = {c1:g}); closest two points evaluated {gap:.3g} apart")
ok = f_accepted > line and gap > 1e-9 and len(seen) < 100
print(("REPRODUCED: " if ok else "NOT REPRODUCED: ") + "the step accepted a point without sufficient decrease after "
      "its line search used up its own 25 iterations, the bracket still open")
raise SystemExit(0 if ok else 1)
