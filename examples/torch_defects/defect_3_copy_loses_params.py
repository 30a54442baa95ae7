"""torch.optim.LBFGS defect 3: a deepcopy or pickle of the optimizer cannot step.

``copy.deepcopy(optimizer)`` and a pickle round trip go through ``Optimizer.__getstate__``, which keeps only
``defaults``, ``state`` and ``param_groups``: LBFGS's ``_params`` (and ``_numel_cache``) are lost, and
``step()`` on the copy raises AttributeError.

Needs only torch. Exit status 1 and "REPRODUCED" while the defect is there, 0 and "NOT REPRODUCED" once fixed.
"""

import copy
import pickle
import sys

import torch

x = torch.tensor([1.5, -0.5], dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([x], max_iter=2)


def make_closure(params, optimizer):
    def closure():
        optimizer.zero_grad()
        loss = ((params[0] - 1) ** 2).sum()
        loss.backward()
        return loss
    return closure


opt.step(make_closure([x], opt))
failures = []
for name, copier in (("copy.deepcopy", copy.deepcopy), ("pickle", lambda v: pickle.loads(pickle.dumps(v)))):
    opt_copy, x_copy = copier((opt, x))
    try:
        opt_copy.step(make_closure([x_copy], opt_copy))
    except AttributeError as exc:
        failures.append(f"{name}: {exc}")
if failures:
    print("REPRODUCED: step() on a copied optimizer raises AttributeError: " + "; ".join(failures))
    sys.exit(1)
print("NOT REPRODUCED: copied optimizers step")
