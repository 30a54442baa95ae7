"""torch.optim.LBFGS defect 1: after an in-memory load, two optimizers share state tensors.

After ``b.load_state_dict(a.state_dict())`` (no torch.save in between), ``d``, ``H_diag``, ``prev_flat_grad``
and the history tensors of ``b`` are the very tensors of ``a``; stepping ``b`` rewrites ``a``'s state in place
and ``a``'s own run changes. pytorch issues #196083 and #147288 (a deepcopy removed by PR #106082).

Needs only torch. Exit status 1 and "REPRODUCED" while the defect is there, 0 and "NOT REPRODUCED" once fixed.
"""

import sys

import torch

torch.set_num_threads(1)
TARGET = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)


def make(x0):
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=0.5, max_iter=3, history_size=3)

    def closure():
        opt.zero_grad()
        loss = ((x - TARGET) ** 4).sum() + (x ** 2).sum()
        loss.backward()
        return loss

    return x, opt, closure


x0 = torch.zeros(4, dtype=torch.float64)
# The uninterrupted run: 4 steps.
xu, ou, cu = make(x0)
for _ in range(4):
    ou.step(cu)
expected = xu.detach().clone()

# The same run, with a second optimizer loaded in memory from it after 2 steps and stepped once.
xa, oa, ca = make(x0)
for _ in range(2):
    oa.step(ca)
xb, ob, cb = make(xa.detach())
ob.load_state_dict(oa.state_dict())
shared = [k for k, v in oa.state[xa].items() if torch.is_tensor(v) and any(
    torch.is_tensor(w) and w.data_ptr() == v.data_ptr() for w in ob.state[xb].values())]
ob.step(cb)
for _ in range(2):
    oa.step(ca)

if not torch.equal(xa.detach(), expected):
    print(f"REPRODUCED: stepping the loaded optimizer changed the source's run: max deviation "
          f"{(xa.detach() - expected).abs().max().item():.3g}; state tensors shared right after the load: {shared}")
    sys.exit(1)
print("NOT REPRODUCED: the source optimizer's run is unaffected by the loaded one")
