"""The test problems in torch, numpy and JAX from one definition, through the Python array API standard.

Every objective that supports it has one definition, ``xp_value(xp, params)``, written against an array namespace
``xp`` (https://data-apis.org/array-api/2023.12/). torch runs it through ``array_api_compat.torch``, numpy through
``array_api_compat.numpy`` and JAX through ``jax.numpy`` (array API compliant since jax 0.4.32), so the same lines
give the torch objective the optimizers see (gradients by autograd, bitwise what the torch-only definitions gave),
a numpy objective, and a JAX objective that traces under ``jax.jit`` and differentiates with ``jax.grad``.

Why array-api-compat (judged against the alternatives, December 2026, array-api-compat 1.16, jax 0.10.2):

- *array-api-compat* (chosen): the Data APIs consortium's own adapter; small, pure Python, no dependencies. On torch
  most names are torch's own functions (``exp``, ``stack``, ``atan2``, ``remainder``, ``minimum``) and the rest are
  thin wrappers that call one torch function (``sum`` -> ``torch.sum``, ``concat`` -> ``torch.cat``,
  ``cumulative_sum`` -> ``torch.cumsum``), so the torch arithmetic, and with it the golden traces and bitwise twin
  tests, is unchanged (checked: every suite problem's value and gradient keep their bytes). The standard covers
  every operation the MGH residuals need except ``pad`` (written as ``concat`` with zeros: same values, same
  gradient).
- *Writing against numpy's API and dispatching by hand* (``np.exp`` -> ``torch.exp`` per framework): a private
  copy of what array-api-compat already maintains, with torch's differing names and keyword arguments (``dim`` vs
  ``axis``, ``cat`` vs ``concatenate``) to keep up by hand.
- *autoray* (``do("exp", x)``): dispatches by name, not to a standard; the definitions would read in numpy's
  dialect and depend on autoray's translation tables.
- *One torch definition exported* (``torch.func``, ``torch2jax`` callbacks, numpy through ``torch.from_numpy``):
  JAX would see an opaque host callback, neither traceable under ``jit`` nor differentiable by ``jax.grad``.

Where a needed operation is outside the standard, this module provides it once with torch's semantics
(:func:`softplus`: ``torch.nn.functional.softplus``, threshold 20) so that torch keeps calling its own kernel.

Gradients: JAX by ``jax.value_and_grad``; torch by autograd. numpy has no automatic differentiation, and writing
analytic gradients for 35 MGH problems and the constructed ones would be a second definition per problem to keep
right, so the numpy *value* is numpy's own arithmetic while the numpy *gradient* is torch autograd through the same
definition on a float64 (or float32) copy of ``x`` (torch is a required dependency; JAX is optional, so it cannot
be the numpy route's gradient). The numpy gradient is therefore bitwise the torch gradient.

Agreement across frameworks (``tests/fast/test_problems_frameworks.py``): numpy and JAX reach the same values as
torch bitwise where the arithmetic is the same (``+ - * /``, ``sqrt``, a few-term sum), and within a stated bound
in ULPs where it is not: the frameworks use different ``exp``/``sin``/``cos``/``atan2``/``pow`` implementations
(SLEEF and glibc in torch, numpy's SIMD loops, XLA's polynomials), different summation orders (torch's vectorised
cascade, numpy's pairwise sum, XLA's reduction trees) and different ``matmul`` kernels.

The API for code that runs optimizers in other frameworks:

- :func:`objective_for` ``(problem, framework) -> (fun, fun_and_grad)`` over one flat real vector (the layout of
  :meth:`~lbfgs_verify.problems.base.Problem.flat_start`, in the problem's dtype);
- :func:`evaluate` ``(problem, x, framework) -> (value, gradient)``, also :meth:`Problem.evaluate`;
- :func:`flat_start` ``(problem, framework)``, :func:`value_xp` ``(problem, params, xp)``, :func:`supports`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import array_api_compat
import array_api_compat.numpy as np_xp
import array_api_compat.torch as torch_xp
import numpy as np
import torch

if TYPE_CHECKING:
    from lbfgs_verify.problems.base import Problem

__all__ = [
    "FRAMEWORKS",
    "TORCH_XP",
    "ArrayObjective",
    "data_table",
    "evaluate",
    "flat_start",
    "framework_namespace",
    "make_complex",
    "namespace",
    "objective_for",
    "softplus",
    "supports",
    "value_xp",
]

FRAMEWORKS = ("torch", "numpy", "jax")
"""The frameworks :func:`objective_for` serves."""

TORCH_XP: ModuleType = torch_xp
"""The array API namespace the torch objectives run in (``array_api_compat.torch``)."""

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


@runtime_checkable
class ArrayObjective(Protocol):
    """An objective with one definition for every array namespace.

    ``xp_value(xp, params)`` returns the 0-dim loss for the parameter arrays ``params`` (shapes and dtypes of the
    problem's start) using only ``xp``'s functions and array operators, so it runs on torch tensors (with
    autograd), numpy arrays and JAX arrays (under ``jit`` and ``grad``).
    """

    def xp_value(self, xp: ModuleType, params: Sequence[Any]) -> Any: ...


def namespace(x: Any) -> ModuleType:
    """The array API namespace of ``x``: ``array_api_compat.torch`` for a tensor (fast path), else
    ``array_api_compat.array_namespace(x)``."""
    if isinstance(x, torch.Tensor):
        return torch_xp
    return array_api_compat.array_namespace(x)


def _is_torch(xp: ModuleType) -> bool:
    return xp is torch_xp


def _is_numpy(xp: ModuleType) -> bool:
    return xp is np_xp or xp is np


def softplus(xp: ModuleType, x: Any) -> Any:
    """``log(1 + exp(x))`` with torch's threshold (``x > 20`` gives ``x``; torch/nn/functional.py ``softplus``,
    beta = 1, threshold = 20): torch's own kernel on tensors, the same formula elsewhere (the ``exp`` branch is
    evaluated at ``min(x, 20)`` so that ``jax.grad`` of the unselected branch stays finite)."""
    if _is_torch(xp):
        return torch.nn.functional.softplus(x)
    return xp.where(x > 20, x, xp.log1p(xp.exp(xp.minimum(x, 20.0))))


_TABLES: dict[tuple[str, str, str, str], Any] = {}


def data_table(xp: ModuleType, like: Any, key: str, values: Any, cache: dict[Any, Any] | None = None) -> Any:
    """The constant data ``values`` (nested Python floats, a float64 numpy array or a float64/complex128 tensor, or a
    zero-argument builder of one) in namespace ``xp``, in the dtype and device of ``like``: built in float64 once,
    rounded once to the dtype, cached per (key, namespace, dtype, device) in ``cache`` (default: this module's; an
    object holding its own data passes its own dict, so the cache dies with it). A JAX table is kept as numpy and
    handed out through ``jnp.asarray`` (a constant under ``jit``)."""
    tables = _TABLES if cache is None else cache
    dtype = like.dtype
    cache_key = (key, xp.__name__, str(dtype), str(array_api_compat.device(like)))
    table = tables.get(cache_key)
    if table is None:
        raw = values() if callable(values) else values
        if _is_torch(xp):
            with torch.inference_mode(False), torch.no_grad():
                base_tensor = raw if isinstance(raw, torch.Tensor) else torch.tensor(raw, dtype=torch.float64)
                if not base_tensor.is_complex():
                    base_tensor = base_tensor.to(torch.float64)
                table = base_tensor.to(dtype=dtype if not base_tensor.is_complex() else base_tensor.dtype,
                                       device=like.device)
            tables[cache_key] = table
            return table
        if isinstance(raw, torch.Tensor):
            raw = raw.detach().cpu().numpy()
        base = np.asarray(raw)
        if not np.iscomplexobj(base):
            base = base.astype(np.float64)
        table = base.astype(_table_dtype(np.iscomplexobj(base), np.dtype(dtype)))
        tables[cache_key] = table
    return table if _is_numpy(xp) else xp.asarray(table)


def _table_dtype(complex_data: bool, like: np.dtype) -> np.dtype:
    """The dtype data take beside an array of dtype ``like``: its precision, complex for complex data (the rule of
    extra.py's ``_DataObjective._cast``)."""
    single = like in (np.dtype(np.float32), np.dtype(np.complex64))
    if complex_data:
        return np.dtype(np.complex64 if single else np.complex128)
    return np.dtype(np.float32 if single else np.float64)


def make_complex(xp: ModuleType, real: Any, imag: Any) -> Any:
    """``real + i·imag`` from two real arrays (the array API has no such constructor): ``torch.complex``,
    ``jax.lax.complex``, and for numpy an array whose two parts are set exactly."""
    if _is_torch(xp):
        return torch.complex(real, imag)
    if _is_numpy(xp):
        out = np.empty(real.shape, dtype=np.result_type(real.dtype, np.complex64))
        out.real, out.imag = real, imag
        return out
    import jax

    return jax.lax.complex(real, imag)


# --- problem level -------------------------------------------------------------------------------------------------
def supports(problem: Problem) -> str | None:
    """None when ``problem`` evaluates in every framework, else the reason it does not."""
    if not isinstance(problem.objective, ArrayObjective):
        return (f"{problem.name}: its objective ({type(problem.objective).__name__}) is written in torch only "
                "(no xp_value(xp, params) definition)")  # fmt: skip
    if problem.dtype not in _NUMPY_DTYPES:
        return f"{problem.name}: dtype {problem.dtype} has no numpy equivalent (float32 and float64 only)"
    return None


def _check_supported(problem: Problem) -> None:
    reason = supports(problem)
    if reason is not None:
        raise NotImplementedError(reason)


def _check_framework(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")


def framework_namespace(framework: str) -> ModuleType:
    """The array namespace of ``framework`` ("torch", "numpy", "jax"; JAX needs the ``[jax]`` extra)."""
    _check_framework(framework)
    if framework == "torch":
        return torch_xp
    if framework == "numpy":
        return np_xp
    try:
        import jax.numpy as jnp
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('evaluating problems in JAX needs jax: pip install "lbfgs-verify[jax]"') from error
    return jnp


def value_xp(problem: Problem, params: Sequence[Any], xp: ModuleType | None = None) -> Any:
    """The objective of ``problem`` at the parameter arrays ``params`` in namespace ``xp`` (default: that of
    ``params[0]``)."""
    _check_supported(problem)
    objective: ArrayObjective = problem.objective  # type: ignore[assignment]
    return objective.xp_value(xp if xp is not None else namespace(params[0]), params)


def _shapes(problem: Problem) -> list[tuple[tuple[int, ...], bool]]:
    return [(tuple(t.shape), t.is_complex()) for t in problem.start]


def _unflatten(xp: ModuleType, x: Any, shapes: list[tuple[tuple[int, ...], bool]]) -> list[Any]:
    """The parameters from the flat real vector; a complex one from interleaved real/imaginary pairs (the layout
    of ``lbfgs_verify.compare.trace.flat``)."""
    params, offset = [], 0
    for shape, is_complex in shapes:
        count = math.prod(shape) * (2 if is_complex else 1)
        part = x[offset : offset + count]
        if is_complex:
            pairs = xp.reshape(part, (*shape, 2))
            params.append(make_complex(xp, pairs[..., 0], pairs[..., 1]))
        else:
            params.append(xp.reshape(part, shape))
        offset += count
    return params


def _check_vector(problem: Problem, x: Any, framework: str) -> None:
    expected = str(problem.dtype).removeprefix("torch.")
    got = str(x.dtype).removeprefix("torch.")
    if x.ndim != 1 or x.shape[0] != problem.dimension:
        raise ValueError(f"{problem.name}: x must be a flat vector of {problem.dimension} entries, got shape "
                         f"{tuple(x.shape)}")  # fmt: skip
    if got != expected:
        hint = ""
        if framework == "jax" and expected == "float64":
            hint = (" (float64 in JAX needs x64: jax.config.update('jax_enable_x64', True) or"
                    " `with jax.enable_x64(True):`)")
        raise ValueError(f"{problem.name}: x must have dtype {expected}, got {got}{hint}")


def flat_start(problem: Problem, framework: str = "numpy") -> Any:
    """The start as one flat vector in the problem's dtype, as a tensor, numpy array or JAX array."""
    _check_supported(problem)
    _check_framework(framework)
    x = torch.cat([(torch.view_as_real(t.detach()) if t.is_complex() else t.detach()).reshape(-1)
                   for t in problem.start]).clone()
    if framework == "torch":
        return x
    values = x.numpy()
    if framework == "numpy":
        return values
    xp = framework_namespace("jax")
    out = xp.asarray(values)
    _check_vector(problem, out, "jax")
    return out


Fun = Callable[[Any], Any]
FunAndGrad = Callable[[Any], tuple[Any, Any]]


def objective_for(problem: Problem, framework: str, *, jit: bool = True) -> tuple[Fun, FunAndGrad]:
    """``(fun, fun_and_grad)`` of ``problem`` over one flat real vector in ``framework``.

    ``x`` is the problem's parameters flattened in order (the layout of :meth:`Problem.flat_start`: a complex
    parameter as interleaved real/imaginary parts, whose gradient entries are then dL/dRe and dL/dIm), in the
    problem's real dtype (float32 or float64). ``fun(x)`` is the 0-dim loss; ``fun_and_grad(x)`` the loss and its
    gradient of x's shape and dtype:

    - ``"torch"``: tensors (other arrays through ``torch.as_tensor``); autograd (``x`` is not modified, a detached
      copy carries the gradient);
    - ``"numpy"``: arrays; the value by numpy, the gradient by torch autograd on a copy of ``x`` (module docstring);
    - ``"jax"``: ``jax.Array``; ``jax.value_and_grad``, both under ``jax.jit`` unless ``jit=False`` (jit and eager
      runs may differ in the last bits: fix the mode on both sides of a comparison). float64 needs x64 enabled.

    A problem whose objective has no array-API definition raises NotImplementedError saying so.
    """
    _check_supported(problem)
    xp = framework_namespace(framework)
    objective: ArrayObjective = problem.objective  # type: ignore[assignment]
    shapes = _shapes(problem)

    def value_in(space: ModuleType, x: Any) -> Any:
        return objective.xp_value(space, _unflatten(space, x, shapes))

    def torch_fun_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(x)
        _check_vector(problem, x, "torch")
        leaf = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = value_in(torch_xp, leaf)
            (grad,) = torch.autograd.grad(loss, leaf, allow_unused=True)
        return loss.detach(), torch.zeros_like(leaf) if grad is None else grad

    if framework == "torch":

        def torch_fun(x: torch.Tensor) -> torch.Tensor:
            x = torch.as_tensor(x)
            _check_vector(problem, x, "torch")
            return value_in(torch_xp, x)

        return torch_fun, torch_fun_and_grad

    if framework == "numpy":

        def numpy_fun(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x)
            _check_vector(problem, x, "numpy")
            return np.asarray(value_in(np_xp, x))

        def numpy_fun_and_grad(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            x = np.asarray(x)
            value = numpy_fun(x)
            _, grad = torch_fun_and_grad(torch.from_numpy(x.copy()))
            return value, grad.numpy()

        return numpy_fun, numpy_fun_and_grad

    import jax

    def jax_fun(x: Any) -> Any:
        _check_vector(problem, x, "jax")
        return value_in(xp, x)

    jax_fun_and_grad = jax.value_and_grad(jax_fun)
    if jit:
        return jax.jit(jax_fun), jax.jit(jax_fun_and_grad)
    return jax_fun, jax_fun_and_grad


_EVALUATORS: dict[tuple[int, str, bool], FunAndGrad] = {}


def evaluate(problem: Problem, x: Any, framework: str = "torch", *, jit: bool = True) -> tuple[Any, Any]:
    """``(value, gradient)`` of ``problem`` at the flat vector ``x`` in ``framework`` (see :func:`objective_for`).

    The ``fun_and_grad`` is kept while ``problem`` lives, so a jitted JAX function compiles once per problem."""
    key = (id(problem), framework, jit)
    fun_and_grad = _EVALUATORS.get(key)
    if fun_and_grad is None:
        _, fun_and_grad = objective_for(problem, framework, jit=jit)
        _EVALUATORS[key] = fun_and_grad
        weakref.finalize(problem, _EVALUATORS.pop, key, None)
    return fun_and_grad(x)
