"""torch.optim.LBFGS defect 9: the strong-Wolfe search can return a point without sufficient decrease.

Moré & Thuente's line-search test function 1, φ(α) = -α/(α² + 2) (ACM TOMS 20(3), 1994, section 5), searched
from α₀ = 1000 (as in their tables): φ(1000) < φ(0) but fails sufficient decrease. torch's zoom keeps the end
with the lower value as its "low" end (``_strong_wolfe``: ``low_pos`` chosen by ``bracket_f``), not the end that
satisfies sufficient decrease (Nocedal & Wright, Alg. 3.6), so the bracket closes on α ≈ 333.3 where
φ(α) > φ(0) + c₁·α·φ'(0), and step() moves there.

The one-unknown problem f(x) = φ(x)/|φ'(0)| from x = 0 has g = -1, so the first trial is t = lr = 1000 along d = 1.

Needs only torch. Exit status 1 and "REPRODUCED" while the defect is there, 0 and "NOT REPRODUCED" once fixed.
"""

import sys

import torch

C1 = 1e-4  # torch's _strong_wolfe default


def phi(a):
    return -a / (a * a + 2.0)


x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([x], lr=1000.0, max_iter=1, max_eval=100, line_search_fn="strong_wolfe")


def closure():
    opt.zero_grad()
    loss = 2.0 * phi(x).sum()  # 1/|φ'(0)| = 2
    loss.backward()
    return loss


opt.step(closure)
alpha = x.detach().item()
f0, fa, slope0 = 0.0, 2.0 * phi(alpha), -1.0
if fa > f0 + C1 * alpha * slope0:
    print(f"REPRODUCED: the search accepted α = {alpha:.6g} with f(α) = {fa:.6g} > f(0) + c1·α·f'(0) = "
          f"{f0 + C1 * alpha * slope0:.6g} (no sufficient decrease)")
    sys.exit(1)
print(f"NOT REPRODUCED: the accepted α = {alpha:.6g} satisfies sufficient decrease")
