"""torch.optim.LBFGS defect 6: bfloat16 parameters with a float64 tensor lr do not resume bitwise.

With a 0-dim tensor ``lr`` the step size ``t`` in the state is a tensor of the lr's dtype; ``load_state_dict``
casts every floating state tensor to the parameter's dtype, so ``t`` = 0.3 becomes 0.30078125 in bfloat16 and
the resumed run leaves the uninterrupted one (at some split points only).

Needs only torch. Exit status 1 and "REPRODUCED" while the defect is there, 0 and "NOT REPRODUCED" once fixed.
"""

import io
import sys

import torch

torch.set_num_threads(1)
TARGET = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.bfloat16)


def make(x0):
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=torch.tensor(0.3, dtype=torch.float64), max_iter=1)

    def closure():
        opt.zero_grad()
        loss = ((x - TARGET) ** 2 + 0.1 * x ** 4).sum()
        loss.backward()
        return loss

    return x, opt, closure


x0 = torch.zeros(4, dtype=torch.bfloat16)
x, opt, closure = make(x0)
for _ in range(2):
    opt.step(closure)
buffer = io.BytesIO()
torch.save(opt.state_dict(), buffer)
t_saved = opt.state[x]["t"]
at_split = x.detach().clone()
for _ in range(4):
    opt.step(closure)

xr, optr, closurer = make(at_split)
optr.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
t_loaded = optr.state[xr]["t"]
for _ in range(4):
    optr.step(closurer)
if t_loaded.dtype != t_saved.dtype or not torch.equal(x.detach(), xr.detach()):
    print(f"REPRODUCED: t saved as {t_saved.item()!r} ({t_saved.dtype}) was loaded as {t_loaded.item()!r} "
          f"({t_loaded.dtype}); resumed parameters equal the uninterrupted run: {torch.equal(x.detach(), xr.detach())}")
    sys.exit(1)
print("NOT REPRODUCED: t keeps its dtype and the resumed run is bitwise the uninterrupted one")
