"""A JAX L-BFGS of our own through the stepper protocol (lbfgs_verify.targets.protocols), with planted bugs.

Written from Nocedal & Wright (2006): Algorithm 7.4 (two-loop recursion), eq. 7.20 (H₀ = γI, γ = sᵀy/yᵀy), the
strong Wolfe conditions 3.7 found by bracketing and bisection (the invariant of Algorithm 3.6's zoom: the low end
meets sufficient decrease with φ' < 0). First step: direction −g, trial step 1/‖g₀‖₂; later trial step 1.

Variants (each adapter names itself with ``lbfgs_verify_kind = "stepper"``):

- :class:`CorrectJaxLBFGS`: the above; it passes every ``stepper.*`` and ``kinds.*`` property.
- :class:`ResumeBugJaxLBFGS`: its own ``serialize`` keeps the memory buffers but not the ring position (the
  count is restored as 0), so a restored run writes its next pair over the newest one: ``stepper.resume_fresh_process``.
- :class:`TwoLoopBugJaxLBFGS`: γ = yᵀy/sᵀy (the Hessian scaling, not the inverse's): ``kinds.two_loop_direction``.
- :class:`LineSearchBugJaxLBFGS`: accepts the first trial with sufficient decrease, never tests the curvature
  condition, while declaring strong Wolfe: ``kinds.wolfe``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lbfgs_verify.targets.protocols import STEPPER, Conventions

C1, C2, MAX_LS = 1e-4, 0.9, 40

CONVENTIONS = Conventions(
    memory_size=10, memory_name="memory_size", first_step="direction -g, trial step 1/||g0||_2",
    h0_scaling="sty/yty", pair_skip="pairs with s'y <= 0 are not stored", keeps_negative_pairs=False,
    line_search="strong_wolfe", c1=C1, c2=C2, approximate_wolfe=None, stopping="none (the caller's loop decides)",
    source="tests/quality/kinds/jax_lbfgs.py (N&W 2006 Alg. 7.4, eq. 7.20, conditions 3.7)",
)


class State(NamedTuple):
    count: jax.Array  # pairs stored so far (the ring position is count % m)
    s: jax.Array  # (m, n)
    y: jax.Array  # (m, n)
    value: jax.Array
    grad: jax.Array
    started: jax.Array  # value and grad hold f, g at params


def two_loop(g: jax.Array, s: jax.Array, y: jax.Array, count: jax.Array, inverse_gamma: bool = False) -> jax.Array:
    """−H g over the stored pairs, newest first then oldest first (N&W Alg. 7.4)."""
    m = s.shape[0]
    used = jnp.minimum(count, m)

    def first(i: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        q, alphas = carry
        j = (count - 1 - i) % m
        active = i < used
        rho = 1.0 / jnp.where(active, s[j] @ y[j], 1.0)
        alpha = jnp.where(active, rho * (s[j] @ q), 0.0)
        return q - alpha * y[j], alphas.at[j].set(alpha)

    q, alphas = jax.lax.fori_loop(0, m, first, (g, jnp.zeros(m, dtype=g.dtype)))
    newest = (count - 1) % m
    sy, yy = s[newest] @ y[newest], y[newest] @ y[newest]
    gamma = jnp.where(inverse_gamma, yy / jnp.where(sy != 0, sy, 1.0), sy / jnp.where(yy > 0, yy, 1.0))
    r = jnp.where(count > 0, gamma, 1.0) * q

    def second(i: int, r: jax.Array) -> jax.Array:
        j = (count - used + i) % m
        active = i < used
        rho = 1.0 / jnp.where(active, s[j] @ y[j], 1.0)
        beta = rho * (y[j] @ r)
        return r + jnp.where(active, alphas[j] - beta, 0.0) * s[j]

    return -jax.lax.fori_loop(0, m, second, r)


def strong_wolfe(value_and_grad: Any, x: jax.Array, f0: jax.Array, g0: jax.Array, d: jax.Array, t0: jax.Array,
                 check_curvature: bool = True) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(t, f, g, failed): a step meeting N&W 3.7 by bracketing [lo, hi] and bisection."""
    slope0 = g0 @ d

    def cond(c: tuple[Any, ...]) -> jax.Array:
        return (~c[5]) & (c[6] < MAX_LS)

    def body(c: tuple[Any, ...]) -> tuple[Any, ...]:
        t, lo, hi, _, _, _, i = c
        f, g = value_and_grad(x + t * d)
        slope = g @ d
        armijo = f <= f0 + C1 * t * slope0
        too_short = armijo & (slope < C2 * slope0)
        too_long = (~armijo) | (slope > -C2 * slope0)
        done = armijo & ~too_short & ~too_long if check_curvature else armijo
        hi = jnp.where(~done & ~too_short, t, hi)
        lo = jnp.where(~done & too_short, t, lo)
        nxt = jnp.where(jnp.isinf(hi), 2.0 * t, 0.5 * (lo + hi))
        return jnp.where(done, t, nxt), lo, hi, f, g, done, i + 1

    start = (t0, jnp.zeros_like(t0), jnp.full_like(t0, jnp.inf), f0, g0, jnp.asarray(False), jnp.asarray(0))
    t, _, _, f, g, done, _ = jax.lax.while_loop(cond, body, start)
    return t, f, g, ~done


class JaxStepper:
    """One configured stepper; ``bug`` selects a planted defect (``""``: none)."""

    def __init__(self, memory_size: int = 10, bug: str = "") -> None:
        self.memory_size, self.bug = memory_size, bug

    def init(self, params: jax.Array) -> State:
        m, n = self.memory_size, params.shape[0]
        zeros = jnp.zeros((m, n), dtype=params.dtype)
        return State(jnp.asarray(0), zeros, zeros, jnp.zeros((), params.dtype), jnp.zeros_like(params),
                     jnp.asarray(False))

    def step(self, params: jax.Array, state: State, objective: Any) -> tuple[jax.Array, State, Mapping[str, Any]]:
        value_and_grad = jax.value_and_grad(objective)
        f0, g0 = jax.lax.cond(state.started, lambda: (state.value, state.grad), lambda: value_and_grad(params))
        d = two_loop(g0, state.s, state.y, state.count, inverse_gamma=self.bug == "two_loop")
        t0 = jnp.where(state.count > 0, 1.0, 1.0 / jnp.linalg.norm(g0)).astype(params.dtype)
        t, f, g, failed = strong_wolfe(value_and_grad, params, f0, g0, d, t0,
                                       check_curvature=self.bug != "line_search")
        new = params + t * d
        s, y = new - params, g - g0
        keep = (s @ y) > 0
        slot = state.count % self.memory_size
        state = State(state.count + keep.astype(state.count.dtype),
                      jnp.where(keep, state.s.at[slot].set(s), state.s),
                      jnp.where(keep, state.y.at[slot].set(y), state.y), f, g, jnp.asarray(True))
        return new, state, {"line_search_failed": failed}

    def serialize(self, tree: Any) -> bytes:
        """Own serializer route: the default manifest format (with the planted defect when ``bug == "resume"``:
        the ring position is dropped)."""
        from lbfgs_verify.targets.serialize import serialize

        if self.bug == "resume":
            params, state = tree
            tree = (params, state._replace(count=jnp.zeros_like(state.count)))
        return serialize(tree, {"memory_size": self.memory_size})

    def deserialize(self, blob: bytes, template: Any) -> Any:
        from lbfgs_verify.targets.serialize import deserialize

        return deserialize(blob, template, {"memory_size": self.memory_size})


class CorrectJaxLBFGS:
    lbfgs_verify_kind = STEPPER
    conventions = CONVENTIONS
    library = ""
    needs_jax = True
    mismatch: Mapping[str, Any] = {"memory_size": 5}
    bug = ""

    def make(self, **hyperparameters: Any) -> JaxStepper:
        return JaxStepper(bug=self.bug, **hyperparameters)


class ResumeBugJaxLBFGS(CorrectJaxLBFGS):
    bug = "resume"


class TwoLoopBugJaxLBFGS(CorrectJaxLBFGS):
    bug = "two_loop"


class LineSearchBugJaxLBFGS(CorrectJaxLBFGS):
    bug = "line_search"
