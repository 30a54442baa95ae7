"""The few problems the kinds' checks run, evaluable from numpy (through torch) and in jax.numpy.

A small, replaceable bridge until the problems are defined once for every framework (issue 20): numpy targets
evaluate the torch :class:`~lbfgs_verify.problems.base.Problem` on ``torch.from_numpy`` with autograd; JAX
steppers get the same four problems written in ``jax.numpy`` here (MGH 1, 5 and 21 from Moré, Garbow &
Hillstrom, ACM TOMS 7(1), 1981, problems (1), (5), (21); the SPD quadratic's matrix is read off the torch
problem's Hessian, exact for a quadratic). ``tests/fast/test_kinds.py`` checks both against torch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

KIND_PROBLEMS = (
    "mgh01_rosenbrock[n=2,x0*1,float64]",
    "mgh05_beale[n=2,x0*1,float64]",
    "mgh21_extended_rosenbrock[n=10,x0*1,float64]",
    "spd_quadratic[n=8,kappa=1000,seed=0,float64]",
)
"""Problems of the kinds' checks: three MGH problems (f* = 0 from the standard start) and an SPD quadratic."""

RESUME_PROBLEM = "mgh21_extended_rosenbrock[n=10,x0*1,float64]"
"""The problem the resume checks split (n = 10, the memory fills and wraps within the budget's steps)."""


@dataclass(frozen=True)
class KindProblem:
    """One problem as the kinds see it: a name, a float64 start, f* and the two evaluations."""

    name: str
    x0: np.ndarray
    f_star: float | None

    def fun_and_grad(self) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """``x -> (f, g)`` on float64 numpy arrays (torch autograd on ``torch.from_numpy(x)``)."""
        return numpy_objective(self.name)

    def jax_objective(self) -> Callable[[Any], Any]:
        """The objective in jax.numpy (traceable; ``jax.grad`` differentiates it)."""
        return jax_objective(self.name)


@functools.cache
def kind_problem(name: str) -> KindProblem:
    """The :class:`KindProblem` of a torch problem name (single-tensor problems only)."""
    from lbfgs_verify.problems import get_problem

    problem = get_problem(name)
    if len(problem.start) != 1:
        raise ValueError(f"problem {name!r} has {len(problem.start)} parameter tensors; the kinds' bridge takes one")
    x0 = problem.start[0].detach().double().reshape(-1).numpy().copy()
    return KindProblem(name, x0, problem.f_star)


def numpy_objective(name: str) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``x -> (f, g)`` of the torch problem ``name`` from float64 numpy arrays (a copy of ``g``)."""
    import torch

    from lbfgs_verify.problems import get_problem

    problem = get_problem(name)
    shape = problem.start[0].shape

    def fun_and_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.from_numpy(np.array(x, dtype=np.float64).reshape(shape)).requires_grad_(True)
        loss = problem.objective([t])
        (grad,) = torch.autograd.grad(loss, [t])
        return float(loss.detach()), grad.detach().reshape(-1).numpy().copy()

    return fun_and_grad


@functools.cache
def _quadratic_terms(name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """A, b, c with f(x) = ½xᵀAx − bᵀx + c for a quadratic torch problem (Hessian and gradient at 0)."""
    import torch

    from lbfgs_verify.problems import get_problem

    problem = get_problem(name)
    n = problem.start[0].numel()
    shape = problem.start[0].shape

    def flat_objective(x: torch.Tensor) -> torch.Tensor:
        return problem.objective([x.reshape(shape)])

    zero = torch.zeros(n, dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(flat_objective, zero)
    f0, g0 = numpy_objective(name)(zero.numpy())
    return hessian.numpy().copy(), -g0, f0


def jax_objective(name: str) -> Callable[[Any], Any]:
    """The problem ``name`` (one of :data:`KIND_PROBLEMS`) in jax.numpy."""
    import jax.numpy as jnp

    if name.startswith("mgh01_rosenbrock"):
        def rosenbrock(x: Any) -> Any:  # MGH (1): f = 100 (x2 - x1²)² + (1 - x1)²
            return 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2
        return rosenbrock
    if name.startswith("mgh05_beale"):
        y = (1.5, 2.25, 2.625)

        def beale(x: Any) -> Any:  # MGH (5): f = Σ_{i=1..3} (y_i - x1 (1 - x2^i))²
            return sum((y[i - 1] - x[0] * (1.0 - x[1] ** i)) ** 2 for i in (1, 2, 3))
        return beale
    if name.startswith("mgh21_extended_rosenbrock"):
        def extended_rosenbrock(x: Any) -> Any:  # MGH (21): Σ 100 (x_{2i} - x_{2i-1}²)² + (1 - x_{2i-1})²
            odd, even = x[0::2], x[1::2]
            return jnp.sum(100.0 * (even - odd ** 2) ** 2 + (1.0 - odd) ** 2)
        return extended_rosenbrock
    if name.startswith("spd_quadratic"):
        a, b, c = _quadratic_terms(name)

        def quadratic(x: Any) -> Any:
            ja, jb = jnp.asarray(a, dtype=x.dtype), jnp.asarray(b, dtype=x.dtype)
            return 0.5 * x @ (ja @ x) - jb @ x + c
        return quadratic
    raise KeyError(f"no jax.numpy definition of problem {name!r}; defined: {', '.join(KIND_PROBLEMS)}")
