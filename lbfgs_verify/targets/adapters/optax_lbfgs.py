"""Built-in stepper adapter ``optax:lbfgs``: ``optax.lbfgs()`` driven one iteration per ``step``.

The step is optax's documented loop body (optax/_src/alias.py, ``lbfgs`` docstring, optax 0.2.8):
``value_and_grad_from_state`` (reuses the value and gradient the zoom line search cached in the state), then
``update(grad, state, params, value=, grad=, value_fn=)``, then ``apply_updates``. The state is optax's own
3-tuple (``ScaleByLBFGSState``, ``EmptyState``, ``ScaleByZoomLinesearchState``); the parameters stay outside it.

Declared conventions, read from optax 0.2.8:

- memory ``memory_size`` = 10 (alias.py:2630, ``lbfgs``);
- first step: direction −g scaled by min(1, 1/‖g₀‖₂) (transform.py:1774–1780, ``capped_inv_norm``), trial step 1
  (``initial_guess_strategy='one'``, alias.py:2637);
- H₀ = γI with γ = sᵀy/yᵀy of the newest pair, 1 when yᵀy = 0 (transform.py:1768–1773);
- pair skip: weight 1/sᵀy, 0 only when sᵀy == 0; a negative sᵀy pair is stored (transform.py:1747–1749);
- line search: zoom (N&W Alg. 3.5/3.6), slope_rtol c1 = 1e-4, curv_rtol c2 = 0.9, strong Wolfe, or Hager–Zhang
  approximate Wolfe with approx_dec_rtol = 1e-6 (linesearch.py:676–705, 1297–1307); at most 20 steps, then a
  step with sufficient decrease only ("safe step", linesearch.py:731–770);
- stopping: none; the caller's loop decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbfgs_verify.targets.protocols import STEPPER, Conventions

CONVENTIONS = Conventions(
    memory_size=10, memory_name="memory_size",
    first_step="direction -g scaled by min(1, 1/||g0||_2), trial step 1",
    h0_scaling="sty/yty", pair_skip="weight 0 only when s'y == 0; negative s'y pairs are stored",
    keeps_negative_pairs=True, line_search="strong_wolfe", c1=1e-4, c2=0.9, approximate_wolfe=1e-6,
    stopping="none (the caller's loop decides)",
    source="optax 0.2.8: optax/_src/alias.py:2630 (lbfgs), optax/_src/transform.py:1625-1800 (scale_by_lbfgs), "
           "optax/_src/linesearch.py:676-770 and 1297 (scale_by_zoom_linesearch)",
)


class OptaxStepper:
    """``optax.lbfgs(**hyperparameters)`` as a :class:`~lbfgs_verify.targets.protocols.Stepper`."""

    def __init__(self, **hyperparameters: Any) -> None:
        import optax

        self.hyperparameters = dict(hyperparameters)
        self.optimizer = optax.lbfgs(**hyperparameters)

    def init(self, params: Any) -> Any:
        return self.optimizer.init(params)

    def step(self, params: Any, state: Any, objective: Any) -> tuple[Any, Any, Mapping[str, Any]]:
        import optax

        value, grad = optax.value_and_grad_from_state(objective)(params, state=state)
        updates, state = self.optimizer.update(grad, state, params, value=value, grad=grad, value_fn=objective)
        params = optax.apply_updates(params, updates)
        info = state[2].info
        failed = (info.decrease_error > 0) | (info.curvature_error > 0)
        return params, state, {"line_search_failed": failed, "line_search_steps": info.num_linesearch_steps}


class OptaxAdapter:
    kind = STEPPER
    library = "optax"
    needs_jax = True
    conventions = CONVENTIONS
    mismatch: Mapping[str, Any] = {"memory_size": 5}
    mismatch_cause = ("the hyperparameters are not in the state and update checks none of its shapes: the ring "
                      "index is count % the new memory_size (optax 0.2.8, optax/_src/transform.py:1733) while the "
                      "two-loop reads every slot of the state's buffers (transform.py:1590)")

    def make(self, **hyperparameters: Any) -> OptaxStepper:
        return OptaxStepper(**hyperparameters)

    def library_object(self) -> Any:
        import optax

        return optax.lbfgs


ADAPTER = OptaxAdapter()
