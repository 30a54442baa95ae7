"""The dict returned by state_dict() changes when the optimizer steps afterwards (it holds live objects).

Property: state.snapshot. Usage: python state_dict_is_live.py PKG
"""

import copy
import sys

import torch
from _make import closure_for, make, quadratic, verdict

package = sys.argv[1]
params = [torch.tensor([3.0, -2.0], dtype=torch.float32, requires_grad=True)]
optimizer = make(package, params, max_iter=1)
closure = closure_for(package, params, quadratic(params))
optimizer.step(closure)
saved = optimizer.state_dict()
frozen = copy.deepcopy(saved)
for _ in range(3):
    optimizer.step(closure)


def differs(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(differs(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) != len(b) or any(differs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape != b.shape or not torch.equal(a, b)
    return a != b


verdict(differs(saved["state"], frozen["state"]), f"{package}: the state_dict() taken after step 1 changed during "
        "later steps")
