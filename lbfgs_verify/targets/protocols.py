"""The two target kinds beside torch.optim.LBFGS's shape, as typed protocols (issue 20).

*Stateful stepper with explicit state* (optax-style: the state is a value, never hidden in an object)::

    stepper = adapter.make(**hyperparameters)        # hyperparameters live here, never in the state
    state = stepper.init(params)                     # params: a pytree (JAX) or a numpy array
    params, state, info = stepper.step(params, state, objective)   # ONE outer L-BFGS iteration
    blob = stepper.serialize(state)                  # optional; default: lbfgs_verify.targets.serialize
    state = stepper.deserialize(blob, template)      # optional; template = make(**same).init(params)
    result = adapter.own_resume(objective, x0, split=k, steps=n, jit=True)   # optional: the library's own resume

``objective`` is a traceable function ``f(params) -> scalar`` (``jax.value_and_grad`` may be applied to it);
``info`` is a mapping, where ``"line_search_failed"`` (bool) says the library took its fallback step.

*Functional minimizer* (scipy-style: no state in or out)::

    x = adapter.minimize(fun_and_grad, x0, maxiter=k, callback=cb, memory=m, tolerance=None)

``fun_and_grad(x) -> (f, g)`` on float64 numpy arrays; the harness wraps it to record every evaluation and wraps
``callback(xk)`` to record the accepted iterates; a callback stops the run by raising ``StopIteration`` or by
returning ``True`` (declared in :attr:`FunctionalAdapter.stop_by`). ``tolerance=0.0`` asks the adapter to switch
its stopping rules off (only ``maxiter`` stops), ``None`` keeps the library's defaults.

*The library's own resume path* (optional, either kind): where the library has its own way to continue a run
(jaxopt's warm start ``run(OptStep(params, state))``, tfp's ``previous_optimizer_results``, the ``lbfgsb``
package's ``checkpoint=``), ``adapter.own_resume`` runs ``n`` iterations in one library call and ``k`` iterations
followed by the library's resume to ``n``, and returns both final iterates (:class:`OwnResume`); the property
``kinds.own_resume_path`` compares them bitwise. ``objective`` is the JAX objective for a stepper (called under the
harness's x64 flag; ``jit`` asks for the compiled mode as the library offers it: jaxopt's own ``jit=`` option,
``jax.jit`` around each tfp call) and ``fun_and_grad`` for a functional target.

Every adapter declares its :class:`Conventions`: what the checks of :mod:`lbfgs_verify.properties.kinds` hold
it to. Nocedal & Wright (2006), ch. 3.1 (Wolfe conditions 3.6/3.7) and ch. 7.2 (Algorithm 7.4, two-loop
recursion; H₀ = γI with γ = sᵀy/yᵀy, eq. 7.20).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

STEPPER = "stepper"
FUNCTIONAL = "functional"
TORCH = "torch"
KINDS = (TORCH, STEPPER, FUNCTIONAL)
"""The target kinds: torch.optim.LBFGS's shape, a stepper with explicit state, a functional minimizer."""

H0_RULES = ("sty/yty", "identity")
"""γ in H₀ = γI after the first iteration: N&W eq. 7.20 (sᵀy/yᵀy of the newest pair), or 1."""

LINE_SEARCHES = ("strong_wolfe", "weak_wolfe", "armijo", "none")


@dataclass(frozen=True)
class Conventions:
    """What an adapter's L-BFGS does, declared (read from the library's source, cited in ``source``).

    Attributes:
        memory_size: pairs kept (m) at the default hyperparameters.
        memory_name: the hyperparameter of ``make``/``minimize`` that sets m (``None``: fixed).
        first_step: the first iteration's direction and trial step, in words.
        h0_scaling: γ in H₀ = γI after the first iteration, one of :data:`H0_RULES`.
        pair_skip: when a pair (s, y) is not used, in words.
        keeps_negative_pairs: a pair with sᵀy < 0 is used (only sᵀy = 0 is given weight 0, optax and jaxopt);
            ``False``: pairs with sᵀy ≤ 0 are left out (scipy, torch). The two-loop check rebuilds with this.
        line_search: one of :data:`LINE_SEARCHES`.
        c1: sufficient-decrease constant (N&W 3.6a).
        c2: curvature constant (N&W 3.6b / 3.7b); not used for ``"armijo"`` (no curvature condition).
        approximate_wolfe: the library also accepts Hager–Zhang approximate Wolfe points (HZ 2005 eq. 23),
            ``f(t) ≤ f(0) + approximate_wolfe·|f(0)|`` and ``φ'(t) ≤ (2c1 - 1)φ'(0)``; ``None`` when it does not.
        stopping: the stopping rule, in words.
        source: files and version the conventions were read from.
    """

    memory_size: int
    memory_name: str | None
    first_step: str
    h0_scaling: str
    pair_skip: str
    keeps_negative_pairs: bool
    line_search: str
    c1: float
    c2: float
    approximate_wolfe: float | None
    stopping: str
    source: str

    def __post_init__(self) -> None:
        if self.h0_scaling not in H0_RULES:
            raise ValueError(f"h0_scaling {self.h0_scaling!r}: choose from {', '.join(H0_RULES)}")
        if self.line_search not in LINE_SEARCHES:
            raise ValueError(f"line_search {self.line_search!r}: choose from {', '.join(LINE_SEARCHES)}")
        if not 0 < self.c1 < self.c2 < 1 and self.line_search in ("strong_wolfe", "weak_wolfe"):
            raise ValueError(f"line-search constants need 0 < c1 < c2 < 1 (N&W 3.6), got c1={self.c1}, c2={self.c2}")

    def lines(self) -> list[str]:
        """The declaration, one item a line (evidence and headers)."""
        return [f"memory {self.memory_size} ({self.memory_name or 'fixed'})", f"first step: {self.first_step}",
                f"H0: {self.h0_scaling}", f"pair skip: {self.pair_skip}",
                f"line search: {self.line_search} c1={self.c1}"
                + ("" if self.line_search == "armijo" else f" c2={self.c2}")
                + (f" or approximate Wolfe (rtol {self.approximate_wolfe})" if self.approximate_wolfe else ""),
                f"stopping: {self.stopping}", f"source: {self.source}"]


@runtime_checkable
class Stepper(Protocol):
    """One configured stepper (the result of ``make``)."""

    def init(self, params: Any) -> Any: ...

    def step(self, params: Any, state: Any, objective: Callable[[Any], Any]) -> tuple[Any, Any, Mapping[str, Any]]:
        ...


class StepperAdapter(Protocol):
    """A stateful stepper target: ``make(**hyperparameters) -> Stepper`` with its declared conventions.

    Attributes:
        conventions: :class:`Conventions`.
        library: the distribution whose version the header prints (``"optax"``), or ``""`` for one's own.
        needs_jax: whether ``params`` are JAX arrays (the harness then runs under ``jax.enable_x64``).
        mismatch: hyperparameters that change the state's shapes (``{"memory_size": 5}``) for the template
            check, or empty.
    """

    conventions: Conventions
    library: str
    needs_jax: bool
    mismatch: Mapping[str, Any]

    def make(self, **hyperparameters: Any) -> Stepper: ...


class FunctionalAdapter(Protocol):
    """A functional-minimizer target (no state in or out).

    Attributes:
        conventions: :class:`Conventions`.
        library: the distribution whose version the header prints.
        stop_by: how a callback stops the run: ``"StopIteration"`` (raise it) or ``"return True"``.
    """

    conventions: Conventions
    library: str
    stop_by: str

    def minimize(self, fun_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, *,
                 maxiter: int, callback: Callable[[np.ndarray], Any] | None = None, memory: int | None = None,
                 tolerance: float | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class OwnResume:
    """What the library's own resume path did (``adapter.own_resume``), split at ``split`` of ``steps`` iterations.

    Attributes:
        path: the library's call that resumes, in words (``"run(OptStep(params, state))"``).
        uninterrupted: the final iterate of one library call of ``steps`` iterations.
        resumed: the final iterate of ``split`` iterations followed by the library's resume to ``steps``.
        counters: counter name -> (uninterrupted, resumed), where the library counts (evaluations, iterations).
        at_resume: what the library did at the resume point, measured (``"max|g recomputed - g saved|"`` -> value).
    """

    path: str
    uninterrupted: np.ndarray
    resumed: np.ndarray
    counters: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    at_resume: Mapping[str, float] = field(default_factory=dict)
