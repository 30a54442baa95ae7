"""copy.deepcopy or pickle of (optimizer, params) gives an optimizer whose step() raises AttributeError.

torch.optim.Optimizer.__getstate__ keeps only ``defaults``, ``state`` and ``param_groups``; attributes set in
``__init__`` (``_params``, ``_param_bounds``, ...) are lost, so every subclass that reads them in step() breaks.
Properties: resume.deepcopy_optimizer, resume.pickle_optimizer. Usage: python deepcopy_loses_attributes.py PKG
"""

import copy
import pickle
import sys

import torch
from _make import closure_for, make, quadratic, verdict

package = sys.argv[1]
errors = []
for name, clone in (("deepcopy", copy.deepcopy), ("pickle", lambda v: pickle.loads(pickle.dumps(v)))):
    params = [torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True)]
    optimizer = make(package, params)
    optimizer.step(closure_for(package, params, quadratic(params)))
    copied, copied_params = clone((optimizer, params))
    try:
        copied.step(closure_for(package, copied_params, quadratic(copied_params)))
    except AttributeError as exc:
        errors.append(f"{name}: {exc}")
verdict(len(errors) == 2, f"{package}: step() after a copy raises AttributeError ({'; '.join(errors)})")
