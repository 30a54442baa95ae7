"""Built-in stepper adapter ``jaxopt:LBFGS``: ``jaxopt.LBFGS`` driven by ``init_state``/``update``.

jaxopt builds the solver around the objective; the protocol gives the objective at each ``step``, so ``step``
builds ``jaxopt.LBFGS(fun=objective, **hyperparameters)`` (trace time, free under jit) and calls ``update``.
``init(params)`` has no objective: it builds jaxopt's ``init_state`` with a zero objective and the first ``step``
fills in the value and gradient at the start (``lax.cond`` on ``iter_num == 0``), as ``init_state`` would.
jaxopt's own warm start (``run(OptStep(params, state))``) recomputes value and gradient and resets the error and
the evaluation counters (lbfgs.py:262–292); it is not this path, and is checked on its own (``own_resume``,
property ``kinds.own_resume_path``).

Declared conventions, read from jaxopt 0.8.5 (no longer maintained; its L-BFGS moved to optax):

- memory ``history_size`` = 10 (jaxopt/_src/lbfgs.py:231);
- first step: γ = 1 (lbfgs.py:280), direction −g, trial step ``max_stepsize`` = 1, later trials the previous
  step × ``increase_factor`` 1.5 (``linesearch_init='increase'``, linesearch_util.py:81–103);
- H₀ = γI, γ = sᵀy/yᵀy of the newest pair, 1 when yᵀy ≤ 0 (``compute_gamma``, lbfgs.py:101–114);
- pair skip: ρ = 0 only when sᵀy == 0 (lbfgs.py:378); negative pairs are stored;
- line search: zoom, c1 = 1e-4, c2 = 0.9 (zoom_linesearch.py:235–236), strong Wolfe or approximate Wolfe
  (c3 = 1e-6, zoom_linesearch.py:186–212, 267–284), ``maxls`` = 30 (lbfgs.py:224);
- stopping: ‖g‖₂ ≤ ``tol`` = 1e-3 or ``maxiter`` = 500 in ``run`` (lbfgs.py:214–217); ``update`` never stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lbfgs_verify.targets.protocols import STEPPER, Conventions, OwnResume

CONVENTIONS = Conventions(
    memory_size=10, memory_name="history_size",
    first_step="gamma = 1, direction -g, trial step max_stepsize = 1 (then previous step * 1.5)",
    h0_scaling="sty/yty", pair_skip="rho = 0 only when s'y == 0; negative s'y pairs are stored",
    keeps_negative_pairs=True, line_search="strong_wolfe", c1=1e-4, c2=0.9, approximate_wolfe=1e-6,
    stopping="||g||_2 <= tol (1e-3) or maxiter (500) in run(); update() never stops",
    source="jaxopt 0.8.5: jaxopt/_src/lbfgs.py:101-420, jaxopt/_src/zoom_linesearch.py:180-284, "
           "jaxopt/_src/linesearch_util.py:81-103",
)


class JaxoptStepper:
    """``jaxopt.LBFGS(fun=objective, **hyperparameters)`` as a :class:`~lbfgs_verify.targets.protocols.Stepper`."""

    def __init__(self, **hyperparameters: Any) -> None:
        self.hyperparameters = dict(hyperparameters)

    def _solver(self, objective: Any) -> Any:
        import jaxopt

        return jaxopt.LBFGS(fun=objective, **self.hyperparameters)

    def init(self, params: Any) -> Any:
        import jax.numpy as jnp

        return self._solver(lambda x: jnp.sum(x * 0)).init_state(params)

    def step(self, params: Any, state: Any, objective: Any) -> tuple[Any, Any, Mapping[str, Any]]:
        import jax

        def at_start(_: Any) -> Any:
            value, grad = jax.value_and_grad(objective)(params)
            return value.astype(state.value.dtype), grad

        value, grad = jax.lax.cond(state.iter_num == 0, at_start, lambda _: (state.value, state.grad), None)
        state = state._replace(value=value, grad=grad)
        params, state = self._solver(objective).update(params, state)
        return params, state, {"line_search_failed": state.failed_linesearch}


class JaxoptAdapter:
    kind = STEPPER
    library = "jaxopt"
    needs_jax = True
    conventions = CONVENTIONS
    mismatch: Mapping[str, Any] = {"history_size": 5}
    mismatch_cause = ("the hyperparameters are not in the state and update checks none of its shapes: the ring "
                      "index is iter_num % the new history_size (jaxopt 0.8.5, jaxopt/_src/lbfgs.py:316) while the "
                      "two-loop reads every slot of the state's buffers (lbfgs.py:77)")

    def make(self, **hyperparameters: Any) -> JaxoptStepper:
        return JaxoptStepper(**hyperparameters)

    def library_object(self) -> Any:
        import jaxopt

        return jaxopt.LBFGS

    def own_resume(self, objective: Any, x0: Any, *, split: int, steps: int, jit: bool = True) -> OwnResume:
        """jaxopt's documented warm start: ``run(x0)`` with ``maxiter=steps`` against ``run(x0)`` with
        ``maxiter=split`` followed by ``run(OptStep(params, state))`` with ``maxiter=steps - split`` (``maxiter``
        counts one call's iterations), ``tol=0`` so that only ``maxiter`` stops. ``run`` is called as jaxopt
        documents it, its loop compiled by jaxopt's own ``jit=`` option (set from ``jit``); ``init_state`` runs
        outside that loop, so its value and gradient are computed by another compilation than the line search's.
        ``at_resume`` measures what ``init_state(OptStep)`` recomputes (lbfgs.py:262-292): the value and gradient
        at the resume point against the ones the saved state carries."""
        import jaxopt

        def solver(maxiter: int) -> Any:
            return jaxopt.LBFGS(fun=objective, maxiter=maxiter, tol=0.0, jit=jit)

        def run(maxiter: int, start: Any) -> Any:
            return solver(maxiter).run(start)

        whole = run(steps, x0)
        part = run(split, x0)
        resumed = run(steps - split, jaxopt.OptStep(part.params, part.state))
        restarted = solver(steps - split).init_state(jaxopt.OptStep(part.params, part.state))
        df = np.asarray(restarted.value) - np.asarray(part.state.value)
        dg = np.asarray(restarted.grad) - np.asarray(part.state.grad)
        at_resume = {"|f recomputed - f saved|": float(np.abs(df)),
                     "max|g recomputed - g saved|": float(np.max(np.abs(dg)))}
        counters = {"num_fun_eval": (int(whole.state.num_fun_eval), int(resumed.state.num_fun_eval)),
                    "iter_num": (int(whole.state.iter_num), int(resumed.state.iter_num))}
        return OwnResume(path="run(OptStep(params, state))", uninterrupted=np.array(whole.params),
                         resumed=np.array(resumed.params), counters=counters, at_resume=at_resume)


ADAPTER = JaxoptAdapter()
