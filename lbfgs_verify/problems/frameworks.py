"""The few problems the kinds' checks run, evaluable from numpy (through torch) and in jax.numpy.

numpy targets evaluate the torch :class:`~lbfgs_verify.problems.base.Problem` on ``torch.from_numpy`` with
autograd (value and gradient bitwise torch's); JAX steppers evaluate the same problems from their one array-API
definition (:mod:`lbfgs_verify.problems.xp`) in ``jax.numpy``. MGH 1, 5 and 21 are Moré, Garbow & Hillstrom,
ACM TOMS 7(1), 1981, problems (1), (5), (21). ``tests/fast/test_kinds.py`` checks the JAX route against torch.
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


def jax_objective(name: str) -> Callable[[Any], Any]:
    """The problem ``name`` in jax.numpy from its one array-API definition (:func:`lbfgs_verify.problems.xp.
    objective_for`), not jitted: the stepper harness jits the whole step around it."""
    from lbfgs_verify.problems import get_problem
    from lbfgs_verify.problems.xp import objective_for

    fun, _ = objective_for(get_problem(name), "jax", jit=False)
    return fun
