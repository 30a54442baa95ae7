"""torch.optim.LBFGS: with a tensor lr of another dtype than the parameters, load_state_dict casts the saved
step size ``t`` to the parameters' dtype, so state_dict() -> load_state_dict() -> state_dict() is not a round
trip (torch/optim/optimizer.py casts floating-point state tensors to the parameter's dtype on load).
Property: state.round_trip_exact.
"""

import torch

x = torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True)


def closure() -> torch.Tensor:
    x.grad = None
    loss = (x**2).sum() + 0.1 * (x**4).sum()
    loss.backward()
    return loss


lr = torch.tensor(0.5, dtype=torch.float32)
optimizer = torch.optim.LBFGS([x], lr=lr, max_iter=2, line_search_fn="strong_wolfe")
optimizer.step(closure)
optimizer.step(closure)  # from the second iteration on, t = lr (a float32 tensor)
saved = optimizer.state_dict()
fresh = torch.optim.LBFGS([x], lr=lr.clone(), max_iter=2, line_search_fn="strong_wolfe")
fresh.load_state_dict(saved)
before, after = saved["state"][0]["t"], fresh.state_dict()["state"][0]["t"]
changed = isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor) and before.dtype != after.dtype
print(f"saved t: {before!r}; after a round trip: {after!r}")
print(("REPRODUCED: " if changed else "NOT REPRODUCED: ") + "the step size t changes dtype in a round trip")
raise SystemExit(0 if changed else 1)
