"""Built-in stepper adapter ``tfp:lbfgs_minimize``: TensorFlow Probability's ``lbfgs_minimize`` (JAX substrate).

tfp has no step function: ``lbfgs_minimize`` is one ``while_loop``. It returns its whole state
(``LBfgsOptimizerResults``: converged, failed, num_iterations, num_objective_evaluations, position, objective_value,
objective_gradient, position_deltas, gradient_deltas) and takes it back as ``previous_optimizer_results`` with
``initial_position=None`` (tensorflow_probability/substrates/jax/optimizer/lbfgs.py:75–289; the resume path of
tensorflow/probability#928). ``max_iterations`` counts the total, so ``step`` is one call with
``max_iterations = num_iterations + 1``: each step goes through the library's own resume path. ``init(params)``
has no objective: it is tfp's own initial state for a zero objective, and the first ``step`` replaces it by
``lbfgs_minimize(objective, initial_position=params, max_iterations=0)``, the state tfp itself starts from (its
correction buffers kept from ``init``: they are zeros in both).

The library's own resume path is also checked on its own (``own_resume``): one call of n iterations against a call
of k iterations followed by a call with ``previous_optimizer_results`` to n.

Declared conventions, read from tfp-nightly 0.26.0.dev20261027 (tensorflow_probability/substrates/jax/optimizer/
lbfgs.py, bfgs_utils.py, linesearch/hager_zhang.py, linesearch/internal/hager_zhang_lib.py):

- memory ``num_correction_pairs`` = 10 (lbfgs.py:78);
- first step: d = −g₀ while no pair is stored (lbfgs.py:392–394), trial step 1 at every iteration
  (bfgs_utils.py:211, ``initial_step_size=1``);
- H₀ = γI with γ = sᵀy/yᵀy of the newest pair (lbfgs.py:375–377; no guard for yᵀy = 0);
- pair skip: none while the run is neither converged nor failed (``should_update``, lbfgs.py:264); a pair with
  sᵀy < 0 is pushed and used, ρ = 0 only when sᵀy = 0 (``divide_no_nan``, lbfgs.py:361, 381);
- line search: Hager–Zhang, weak Wolfe with c1 (``sufficient_decrease_param``) = 0.1, c2 (``curvature_param``) =
  0.9, or approximate Wolfe when f(t) ≤ f(0) + 1e-6·|f(0)| (hager_zhang.py:65–76, 607;
  hager_zhang_lib.py:811–819), at most ``max_line_search_iterations`` = 50 (lbfgs.py:86);
- stopping: ‖g‖∞ ≤ ``tolerance`` = 1e-8, or ‖Δx‖∞ ≤ ``x_tolerance`` = 0, or |Δf| ≤ ``f_relative_tolerance``·f = 0 or
  ≤ ``f_absolute_tolerance`` = 0 (bfgs_utils.py:373–391), ``max_iterations`` = 50, or a failed line search.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lbfgs_verify.targets.protocols import STEPPER, Conventions, OwnResume

CONVENTIONS = Conventions(
    memory_size=10, memory_name="num_correction_pairs",
    first_step="d = -g0, trial step 1 (every iteration's trial step is 1)",
    h0_scaling="sty/yty", pair_skip="none: every pair is pushed (rho = 0 only when s'y == 0)",
    keeps_negative_pairs=True, line_search="weak_wolfe", c1=0.1, c2=0.9, approximate_wolfe=1e-6,
    stopping="||g||_inf <= tolerance (1e-8), ||dx||_inf <= x_tolerance (0), |df| <= f_relative_tolerance * f (0) "
             "or f_absolute_tolerance (0), max_iterations (50), or a failed line search",
    source="tfp-nightly 0.26.0.dev20261027: tensorflow_probability/substrates/jax/optimizer/lbfgs.py:75-394, "
           "bfgs_utils.py:149-240, 373-391, linesearch/hager_zhang.py:65-76, 607, "
           "linesearch/internal/hager_zhang_lib.py:811-819",
)


START_FIELDS = ("converged", "failed", "num_iterations", "num_objective_evaluations", "position", "objective_value",
                "objective_gradient")
"""The fields of tfp's initial state that depend on the objective (``_get_initial_state``, lbfgs.py:291-302)."""


def _minimize() -> Any:
    from tensorflow_probability.substrates.jax.optimizer import lbfgs_minimize

    return lbfgs_minimize


class TfpStepper:
    """``lbfgs_minimize(..., **hyperparameters)`` stepped one iteration at a time through
    ``previous_optimizer_results``."""

    def __init__(self, **hyperparameters: Any) -> None:
        self.hyperparameters = dict(hyperparameters)

    def _value_and_gradients(self, objective: Any) -> Any:
        import jax

        return jax.value_and_grad(objective)

    def _start(self, params: Any, objective: Any) -> Any:
        return _minimize()(self._value_and_gradients(objective), initial_position=params, max_iterations=0,
                           **self.hyperparameters)

    def init(self, params: Any) -> Any:
        import jax.numpy as jnp

        return self._start(params, lambda x: jnp.sum(x * 0))

    def step(self, params: Any, state: Any, objective: Any) -> tuple[Any, Any, Mapping[str, Any]]:
        import jax

        def start(_: Any) -> Any:  # tfp's initial state, keeping the given state's (empty) correction buffers
            first = self._start(params, objective)
            return state._replace(**{name: getattr(first, name) for name in START_FIELDS})

        state = jax.lax.cond(state.num_iterations == 0, start, lambda _: state, None)
        state = _minimize()(self._value_and_gradients(objective), initial_position=None,
                            previous_optimizer_results=state, max_iterations=state.num_iterations + 1,
                            **self.hyperparameters)
        return state.position, state, {"line_search_failed": state.failed, "converged": state.converged}


class TfpAdapter:
    kind = STEPPER
    library = "tfp-nightly"
    needs_jax = True
    conventions = CONVENTIONS
    mismatch: Mapping[str, Any] = {"num_correction_pairs": 5}
    mismatch_cause = ("num_correction_pairs is read only when a run starts (tfp-nightly 0.26.0.dev20261027, "
                      "tensorflow_probability/substrates/jax/optimizer/lbfgs.py:275-282, _get_initial_state): a run "
                      "resumed from previous_optimizer_results pushes into the state's own buffers")

    def make(self, **hyperparameters: Any) -> TfpStepper:
        return TfpStepper(**hyperparameters)

    def library_object(self) -> Any:
        return _minimize()

    def own_resume(self, objective: Any, x0: Any, *, split: int, steps: int, jit: bool = True) -> OwnResume:
        """One ``lbfgs_minimize`` call of ``steps`` iterations against ``split`` iterations, then a call with
        ``previous_optimizer_results`` to ``steps`` (each call jitted when ``jit``)."""
        import jax

        value_and_gradients = jax.value_and_grad(objective)
        minimize = _minimize()

        def fresh(x: Any, n: int) -> Any:
            return minimize(value_and_gradients, initial_position=x, max_iterations=n)

        def resume(state: Any, n: int) -> Any:
            return minimize(value_and_gradients, initial_position=None, previous_optimizer_results=state,
                            max_iterations=n)

        if jit:
            fresh, resume = jax.jit(fresh, static_argnums=1), jax.jit(resume, static_argnums=1)
        whole = fresh(x0, steps)
        resumed = resume(fresh(x0, split), steps)
        counters = {name: (int(getattr(whole, name)), int(getattr(resumed, name)))
                    for name in ("num_iterations", "num_objective_evaluations")}
        return OwnResume(path="lbfgs_minimize(previous_optimizer_results=state, initial_position=None)",
                         uninterrupted=np.array(whole.position), resumed=np.array(resumed.position),
                         counters=counters)


ADAPTER = TfpAdapter()
