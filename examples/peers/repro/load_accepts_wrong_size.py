"""load_state_dict accepts a state saved for parameters of another size; the error comes only inside step().

Property: state.load_validates_size. Usage: python load_accepts_wrong_size.py PKG
"""

import sys

import torch
from _make import closure_for, make, quadratic, verdict

package = sys.argv[1]
small = [torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True),
         torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)]
source = make(package, small, max_iter=3)
source.step(closure_for(package, small, quadratic(small)))
large = [torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True),
         torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64, requires_grad=True)]
victim = make(package, large, max_iter=3)
victim.step(closure_for(package, large, quadratic(large)))
try:
    victim.load_state_dict(source.state_dict())
except Exception as exc:  # a validating load refuses here
    verdict(False, f"{package}: load_state_dict refused the state: {exc}")
try:
    victim.step(closure_for(package, large, quadratic(large)))
except Exception as exc:
    verdict(True, f"{package}: load accepted a state for 5 unknowns into an optimizer of 7; step() then raised "
            f"{type(exc).__name__}: {exc}")
verdict(False, f"{package}: load accepted the state and step() ran")
