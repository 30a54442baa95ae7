"""Built-in stepper adapter ``optimistix:LBFGS``: ``optimistix.LBFGS`` driven by its own ``init``/``step``.

An optimistix ``step`` evaluates the objective once at a trial point and lets the search accept or reject it
(optimistix/_solver/quasi_newton.py:204–300, ``AbstractQuasiNewton.step``); the very first ``step`` only
evaluates f and g at x₀ and accepts x₀ itself (``first_step``). One outer L-BFGS iteration of the protocol is
therefore a ``lax.while_loop`` of optimistix steps until one more point is accepted (two on the first iteration),
at most :data:`MAX_TRIALS` of them (optimistix itself has no per-iteration cap: ``optx.minimise`` stops at
``max_steps`` = 256 steps in all, optimistix/_minimise.py:47; an iteration that hits the cap reports
``line_search_failed`` and the next ``step`` continues the same search).

Measured: the accepted points are bitwise those ``optx.minimise`` returns after the same number of steps (Extended
Rosenbrock n = 10, 12 iterations).

The state optimistix keeps holds a ``Jaxpr`` (the closure of the inverse-Hessian ``FunctionLinearOperator``) and
the Python int ``history_length``, so neither ``jax.jit`` nor pickle takes it. The state handed to the harness is
its array part (``eqx.partition(state, eqx.is_array)``, what ``eqx.filter_jit`` traces); ``step`` recombines it
with the static part, which depends only on the parameters' structure and the state's memory (its buffers' length)
and is rebuilt from ``init`` of a solver with that memory: a state stepped by a solver of another ``history_length``
then meets optimistix's own refusal (a ``TypeError`` from its ``filter_cond``, as when the whole state is passed).
The adapter's own serializer route is equinox's ``tree_serialise_leaves`` of the whole state and
``tree_deserialise_leaves`` into a template (equinox/_serialisation.py, 0.13.8), which refuses an array leaf whose
shape changed (``RuntimeError``, reported here as a state mismatch); the route also compares every leaf's dtype and
the saved Python scalars (``history_length``) with the template's.

Declared conventions, read from optimistix 0.1.0 (optimistix/_solver/limited_memory_bfgs.py, backtracking.py,
quasi_newton.py, _misc.py):

- memory ``history_length`` = 10 (limited_memory_bfgs.py:581);
- first step: an evaluation at x₀ accepted without a move, then d = −g₀ (no pairs: γ = 1,
  limited_memory_bfgs.py:165–174), trial step ``step_init`` = 1, halved (``decrease_factor`` 0.5) until Armijo
  holds (backtracking.py, ``BacktrackingArmijo``); every later iteration starts again from step 1;
- H₀ = γI with γ = sᵀy/yᵀy of the newest stored pair, 1 while yᵀy = 0 (limited_memory_bfgs.py:165–174), the
  two-loop recursion of Byrd, Nocedal & Schnabel (1994) Algorithm 4.1 (``use_inverse=True``);
- pair skip: a pair is stored only when sᵀy > ε of the dtype, an absolute threshold (limited_memory_bfgs.py:378–379);
- line search: backtracking Armijo, f(x + t d) − f(x) ≤ ``slope``·t·gᵀd with slope (c1) = 0.1 and gᵀd ≤ 0; no
  curvature condition (backtracking.py, ``BacktrackingArmijo.step``);
- stopping: Cauchy test, max-norm of |Δy|/(atol + rtol·|y|) < 1 and |Δf|/(atol + rtol·|f|) < 1, never on the first
  step (_misc.py:291–310, quasi_newton.py:244–249); ``rtol`` and ``atol`` have no default (this adapter uses
  1e-8); ``optx.minimise`` stops at ``max_steps`` = 256 evaluations. ``step`` itself never stops.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from lbfgs_verify.targets.protocols import STEPPER, Conventions

MAX_TRIALS = 100
"""Optimistix steps (objective evaluations) one outer iteration may take before it reports a failed search."""

DEFAULTS: Mapping[str, Any] = {"rtol": 1e-8, "atol": 1e-8}
"""``optx.LBFGS`` requires ``rtol`` and ``atol``; they only set the Cauchy stopping test, which ``step`` ignores."""

CONVENTIONS = Conventions(
    memory_size=10, memory_name="history_length",
    first_step="evaluation at x0 accepted without a move; then d = -g0, trial step 1, halved until Armijo",
    h0_scaling="sty/yty", pair_skip="pair stored only when s'y > eps of the dtype (absolute)",
    keeps_negative_pairs=False, line_search="armijo", c1=0.1, c2=0.9, approximate_wolfe=None,
    stopping="max-norm |dy|/(atol + rtol|y|) < 1 and |df|/(atol + rtol|f|) < 1, not on the first step (rtol, atol "
             "required); optx.minimise max_steps 256; step() never stops",
    source="optimistix 0.1.0: optimistix/_solver/limited_memory_bfgs.py:117-198, 352-528, 575-591, "
           "optimistix/_solver/backtracking.py (BacktrackingArmijo), optimistix/_solver/quasi_newton.py:176-300, "
           "optimistix/_misc.py:291-310",
)


class OptimistixStepper:
    """``optimistix.LBFGS(**hyperparameters)`` as a :class:`~lbfgs_verify.targets.protocols.Stepper`."""

    def __init__(self, **hyperparameters: Any) -> None:
        import optimistix as optx

        self.hyperparameters = dict(hyperparameters)
        self.solver = optx.LBFGS(**{**DEFAULTS, **hyperparameters})

    def _full_init(self, params: Any, objective: Any, solver: Any = None) -> Any:
        import jax

        return (solver or self.solver).init(lambda y, args: (objective(y), None), params, None, {},
                                            jax.ShapeDtypeStruct((), params.dtype), None, frozenset())

    def _static(self, params: Any, state: Any = None) -> Any:
        """The static part (a Jaxpr and ``history_length``) of ``state``: that of a state made by the same solver with
        the state's own memory (its buffers' length), which is what optimistix keeps with the state, so a state
        stepped by a solver of another memory meets the library's own check. It records the dtype, so it is built
        with x64 on for 64-bit parameters whatever the caller's flag (serializing outside the run's mode)."""
        import equinox as eqx
        import jax
        import jax.numpy as jnp
        import numpy as np
        import optimistix as optx

        solver = self.solver
        if state is not None:
            memory = jax.tree_util.tree_leaves(state.hessian_update_state.y_diff_history)[0].shape[0]
            if memory != solver.history_length:
                solver = optx.LBFGS(**{**DEFAULTS, **self.hyperparameters, "history_length": memory})
        x64 = bool(jax.config.jax_enable_x64) or np.dtype(params.dtype).itemsize == 8
        with jax.enable_x64(x64):
            return eqx.partition(self._full_init(params, lambda y: jnp.sum(y * 0), solver), eqx.is_array)[1]

    def init(self, params: Any) -> Any:
        import equinox as eqx
        import jax.numpy as jnp

        return eqx.partition(self._full_init(params, lambda y: jnp.sum(y * 0)), eqx.is_array)[0]

    def step(self, params: Any, state: Any, objective: Any) -> tuple[Any, Any, Mapping[str, Any]]:
        import equinox as eqx
        import jax
        import jax.numpy as jnp

        static = self._static(params, state)
        fn = lambda y, args: (objective(y), None)  # noqa: E731
        target = state.num_accepted_steps + 1 + jnp.where(state.first_step, 1, 0)

        def more(carry: Any) -> Any:
            _, dynamic, trials = carry
            return (dynamic.num_accepted_steps < target) & (trials < MAX_TRIALS)

        def one(carry: Any) -> Any:
            y, dynamic, trials = carry
            y, full, _ = self.solver.step(fn, y, None, {}, eqx.combine(dynamic, static), frozenset())
            return y, eqx.partition(full, eqx.is_array)[0], trials + 1

        params, state, trials = jax.lax.while_loop(more, one, (params, state, jnp.asarray(0)))
        return params, state, {"line_search_failed": state.num_accepted_steps < target, "evaluations": trials}

    def serialize(self, tree: Any) -> bytes:
        """``(params, state)`` by ``eqx.tree_serialise_leaves`` of the whole optimistix state."""
        import equinox as eqx

        params, state = tree
        buffer = io.BytesIO()
        eqx.tree_serialise_leaves(buffer, (params, eqx.combine(state, self._static(params, state))))
        return buffer.getvalue()

    def deserialize(self, blob: bytes, template: Any) -> Any:
        """``eqx.tree_deserialise_leaves`` into ``template`` = ``(params, init(params))`` of the same
        hyperparameters (equinox refuses a changed shape); every leaf's dtype and scalar is then compared too."""
        import equinox as eqx
        import jax
        import numpy as np

        from lbfgs_verify.targets.serialize import StateMismatch

        params, state = template
        full = (params, eqx.combine(state, self._static(params, state)))
        try:
            loaded = eqx.tree_deserialise_leaves(io.BytesIO(blob), full)
        except RuntimeError as exc:  # equinox: "Deserialised leaf at path ... has changed shape from ... to ..."
            raise StateMismatch(f"equinox refuses the state: {exc}") from exc
        for index, (want, got) in enumerate(zip(jax.tree_util.tree_leaves(full), jax.tree_util.tree_leaves(loaded),
                                                strict=True)):
            if not eqx.is_array(want) and not eqx.is_array_like(want):
                continue
            a, b = np.asarray(want), np.asarray(got)
            if a.shape != b.shape or a.dtype != b.dtype:
                raise StateMismatch(f"leaf {index}: saved {b.dtype.str}{b.shape}, template {a.dtype.str}{a.shape}")
            if np.ndim(want) == 0 and not eqx.is_array(want) and a.tobytes() != b.tobytes():
                raise StateMismatch(f"leaf {index}: saved {b.item()!r}, template {a.item()!r}")
        loaded_params, loaded_state = loaded
        return loaded_params, eqx.partition(loaded_state, eqx.is_array)[0]


class OptimistixAdapter:
    kind = STEPPER
    library = "optimistix"
    needs_jax = True
    conventions = CONVENTIONS
    mismatch: Mapping[str, Any] = {"history_length": 5}

    def make(self, **hyperparameters: Any) -> OptimistixStepper:
        return OptimistixStepper(**hyperparameters)

    def library_object(self) -> Any:
        import optimistix

        return optimistix.LBFGS


ADAPTER = OptimistixAdapter()
