"""torch.optim.LBFGS defect 5: a state for parameters of another total size loads silently.

``load_state_dict`` checks the number of parameters per group, not their sizes: a state saved for 3 unknowns
loads into an optimizer of 5, and the error comes only later, inside ``step()``, as a size mismatch.

Needs only torch. Exit status 1 and "REPRODUCED" while the defect is there, 0 and "NOT REPRODUCED" once fixed.
"""

import sys

import torch


def run(n, steps, state=None):
    x = torch.ones(n, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([x], max_iter=3)

    def closure():
        opt.zero_grad()
        loss = ((x - 0.5) ** 4).sum() + (x ** 2).sum()
        loss.backward()
        return loss

    if state is not None:
        opt.load_state_dict(state)  # a correct optimizer raises here
        print("load_state_dict accepted a state saved for 3 unknowns into an optimizer of 5")
    for _ in range(steps):
        opt.step(closure)
    return opt


saved = run(3, 2).state_dict()
try:
    run(5, 1, saved)
except (ValueError, TypeError, KeyError) as exc:
    if "load_state_dict" in "".join(__import__("traceback").format_tb(exc.__traceback__)):
        print(f"NOT REPRODUCED: load_state_dict refused the state: {exc}")
        sys.exit(0)
    print(f"REPRODUCED: the error came only inside step(): {type(exc).__name__}: {exc}")
    sys.exit(1)
except RuntimeError as exc:
    print(f"REPRODUCED: the error came only inside step(): RuntimeError: {exc}")
    sys.exit(1)
print("REPRODUCED: the wrong-size state was loaded and stepped without any error")
sys.exit(1)
