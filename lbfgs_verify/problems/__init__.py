"""Test problems for L-BFGS optimizers: one definition each, evaluated in torch (gradients by autograd), numpy and
JAX (:mod:`~lbfgs_verify.problems.xp`: ``objective_for(problem, framework) -> (fun, fun_and_grad)``).

- :mod:`~lbfgs_verify.problems.base`   the :class:`Problem` value and the :class:`Expectation` enum
- :mod:`~lbfgs_verify.problems.mgh`    the 35 Moré–Garbow–Hillstrom problems (published data in ``mgh_optima.toml``)
- :mod:`~lbfgs_verify.problems.extra`  SPD quadratics, regressions, an MLP with an unused parameter, a complex
  least-squares problem, the seed article's regression, chained Rosenbrock; hypothesis strategies
- :mod:`~lbfgs_verify.problems.xp`     the array-API route: ``objective_for``, ``evaluate``, ``flat_start``

:func:`suite_problems` is the small default collection; :func:`get_problem` rebuilds any problem of
``suite_problems`` or ``mgh_suite(sizes="several", scales=(1, 10, 100))`` (either dtype) from its name.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable

import torch

from lbfgs_verify.problems.base import Expectation, Objective, Problem
from lbfgs_verify.problems.extra import (
    complex_least_squares,
    extra_problems,
    linear_regression,
    logistic_regression,
    rosenbrock_chained,
    rosenbrock_problems,
    seed_article_regression,
    small_mlp,
    spd_quadratic,
    spd_quadratics,
)
from lbfgs_verify.problems.mgh import (
    MGH_NUMBERS,
    SEVERAL_SIZES,
    STANDARD_SIZES,
    TOMS566_NUMBERS,
    mgh_f_star,
    mgh_minimizers,
    mgh_name,
    mgh_problem,
    mgh_size,
    mgh_start,
    mgh_suite,
    parse_mgh_name,
)

__all__ = [
    "MGH_NUMBERS",
    "SEVERAL_SIZES",
    "STANDARD_SIZES",
    "TOMS566_NUMBERS",
    "Expectation",
    "Objective",
    "Problem",
    "complex_least_squares",
    "extra_problems",
    "get_problem",
    "linear_regression",
    "logistic_regression",
    "mgh_f_star",
    "mgh_minimizers",
    "mgh_problem",
    "mgh_problem_name",
    "mgh_size",
    "mgh_start",
    "mgh_suite",
    "problem_names",
    "rosenbrock_chained",
    "rosenbrock_problems",
    "seed_article_regression",
    "small_mlp",
    "spd_quadratic",
    "spd_quadratics",
    "suite_problems",
]

_NAMED_DTYPES = (torch.float32, torch.float64)
_NAMED_SCALES = (1.0, 10.0, 100.0)


def suite_problems(dtype: torch.dtype = torch.float64) -> list[Problem]:
    """The default collection: the 35 MGH problems at their standard sizes from x0, then one of each extra problem
    (:func:`~lbfgs_verify.problems.extra.extra_problems`)."""
    return mgh_suite(dtype=dtype) + extra_problems(dtype)


@functools.lru_cache(maxsize=1)
def _extra_builders() -> dict[str, Callable[[], Problem]]:
    """name -> zero-argument builder for the extra problems of :func:`suite_problems`, both dtypes."""
    builders: dict[str, Callable[[], Problem]] = {}
    for dtype in _NAMED_DTYPES:
        for index, problem in enumerate(extra_problems(dtype)):
            builders[problem.name] = functools.partial(_nth_extra, index, dtype)
    return builders


def _nth_extra(index: int, dtype: torch.dtype) -> Problem:
    return extra_problems(dtype)[index]


@functools.lru_cache(maxsize=1)
def problem_names() -> tuple[str, ...]:
    """Every name :func:`get_problem` is guaranteed to resolve: ``suite_problems`` and
    ``mgh_suite(sizes="several", scales=(1, 10, 100))`` in float32 and float64."""
    names: list[str] = []
    for dtype in _NAMED_DTYPES:
        for scale in _NAMED_SCALES:
            for number in MGH_NUMBERS:
                for n, m in SEVERAL_SIZES.get(number, ((None, None),)):
                    names.append(mgh_problem_name(number, n, m, scale, dtype))
                if number in STANDARD_SIZES:
                    names.append(mgh_problem_name(number, None, None, scale, dtype))
    names.extend(_extra_builders())
    return tuple(dict.fromkeys(names))


def mgh_problem_name(number: int, n: int | None, m: int | None, scale: float, dtype: torch.dtype) -> str:
    """The name :func:`mgh_problem` gives, without building the problem."""
    n_resolved, m_resolved = mgh_size(number, n=n, m=m)
    return mgh_name(number, n_resolved, m_resolved, float(scale), dtype)


def get_problem(name: str) -> Problem:
    """A fresh problem from its name (any MGH name of the ``mghNN_slug[n=..,x0*..,dtype]`` form, and the extra
    problems of :func:`suite_problems`). A miss raises KeyError listing close matches."""
    builder = _extra_builders().get(name)
    if builder is not None:
        return builder()
    problem, reason = None, ""
    try:
        parts = parse_mgh_name(name)
        problem = mgh_problem(parts["number"], n=parts["n"], m=parts["m"], scale=parts["scale"], dtype=parts["dtype"])
    except KeyError:
        pass
    except (ValueError, TypeError) as error:
        reason = f" ({error})"
    if problem is not None and problem.name == name:
        return problem
    close = difflib.get_close_matches(name, problem_names(), n=5, cutoff=0.6)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise KeyError(f"no problem named {name!r}{reason}{hint}")
