"""sqnm's LBFGS: a state_dict() -> load_state_dict() round trip changes the history buffers' dtype.

The buffers ``s_hist``/``y_hist`` are float32 whatever the parameters (sqnm/optim/sqn_base.py allocates them
with torch.zeros' default dtype); torch.optim.Optimizer.load_state_dict casts floating-point state to the
parameters' dtype, so after a round trip on float64 parameters they are float64: the saved and the reloaded
state differ. Property: state.round_trip_exact.
"""

import torch
from sqnm.optim import LBFGS

x = torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True)
optimizer = LBFGS([x], lr=0.1, history_size=2)
saved = optimizer.state_dict()
fresh = LBFGS([x], lr=0.1, history_size=2)
fresh.load_state_dict(saved)
before = saved["state"][0]["s_hist"].dtype
after = fresh.state_dict()["state"][0]["s_hist"].dtype
print(f"s_hist saved as {before}, {after} after load_state_dict")
print(("REPRODUCED: " if before != after else "NOT REPRODUCED: ") + "the round trip changes the state's dtype")
raise SystemExit(0 if before != after else 1)
