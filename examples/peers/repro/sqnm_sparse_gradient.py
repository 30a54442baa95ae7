"""sqnm's LBFGS cannot step on a parameter whose gradient is sparse (``nn.Embedding(sparse=True)``).

SQNBase._get_grad_vector flattens every gradient with ``param.grad.view(-1)`` (``grad_vec``,
sqnm/utils/param.py), which a sparse tensor does not implement (NotImplementedError for 'aten::view' on
SparseCPU); torch.optim.LBFGS densifies it first (``p.grad.to_dense().view(-1)``).
Property: ``behaviour.sparse_gradients``.
"""

import torch
from sqnm.optim import LBFGS

table = torch.nn.Embedding(4, 2, sparse=True)
idx = torch.tensor([0, 2])
optimizer = LBFGS(table.parameters(), lr=0.1, history_size=3)


def closure() -> torch.Tensor:
    optimizer.zero_grad()
    loss = (table(idx) ** 2).sum()
    loss.backward()
    return loss


try:
    optimizer.step(closure)
except (NotImplementedError, RuntimeError) as exc:
    print("REPRODUCED: step on a sparse gradient raised", type(exc).__name__ + ":", str(exc)[:80])
    raise SystemExit(0) from None
print("NOT REPRODUCED: sqnm stepped on a sparse gradient")
raise SystemExit(1)
