"""qqn-torch: load_state_dict does not restore the line search (nor the oracle's memory size).

QQN builds its line search and oracle once in __init__ from the constructor arguments; they are not part of
param_groups or the state, so an optimizer constructed with another line search continues differently after
loading the saved state. Property: seed.load_restores_hyperparameters.
"""

import io

import torch
from qqn_torch import QQN


def run(resume_with: str | None) -> list[float]:
    x = torch.tensor([-1.2, 1.0], dtype=torch.float32, requires_grad=True)

    def closure() -> torch.Tensor:
        x.grad = None
        loss = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
        loss.backward()
        return loss

    optimizer = QQN([x], oracle="lbfgs", line_search="fixed", max_iter=1, history_size=1)
    optimizer.step(closure)
    if resume_with is not None:
        buffer = io.BytesIO()
        torch.save(optimizer.state_dict(), buffer)
        optimizer = QQN([x], oracle="lbfgs", line_search=resume_with, max_iter=3, history_size=4)
        optimizer.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    optimizer.step(closure)
    return x.detach().tolist()


uninterrupted, resumed = run(None), run("strong_wolfe")
different = uninterrupted != resumed
print(f"uninterrupted: {uninterrupted}; resumed into QQN(line_search='strong_wolfe'): {resumed}")
print(("REPRODUCED: " if different else "NOT REPRODUCED: ")
      + "the loaded state does not bring back the saved optimizer's line search")
raise SystemExit(0 if different else 1)
