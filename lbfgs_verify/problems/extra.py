"""Problems beyond Moré–Garbow–Hillstrom, as :class:`~lbfgs_verify.problems.base.Problem` values.

Each one exercises something the MGH set does not: a quadratic of chosen condition number (with its exact
optimum), several parameter tensors, a parameter that never gets a gradient, a complex parameter, the data-fitting
losses people actually run L-BFGS on. All data come from a seeded ``torch.Generator`` in float64 on the CPU and are
rounded once to the problem's dtype (cached per dtype and device), so a float32 problem built directly equals the
float64 one passed through :meth:`Problem.with_dtype`, and every objective also accepts the float64 tensors that
:meth:`Problem.numpy_fun` hands it.

Hypothesis strategies: :func:`spd_quadratics` and :func:`rosenbrock_problems`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.problems.base import Expectation, Problem
from lbfgs_verify.problems.xp import TORCH_XP, data_table, softplus

__all__ = [
    "ComplexLeastSquaresObjective",
    "LinearRegressionObjective",
    "LogisticRegressionObjective",
    "QuadraticObjective",
    "SmallMLPObjective",
    "at_minimum",
    "complex_least_squares",
    "double_well_problem",
    "extra_problems",
    "linear_regression",
    "logistic_regression",
    "rosenbrock_chained",
    "rosenbrock_problems",
    "seed_article_regression",
    "small_mlp",
    "spd_quadratic",
    "spd_quadratics",
    "wavy_problem",
]

_REAL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype not in _REAL_DTYPES:
        raise TypeError(f"dtype must be a real floating dtype, got {dtype}")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(seed))


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


@dataclass(frozen=True, eq=False)
class _DataObjective:
    """Base of objectives holding float64/complex128 data tensors, cast on use to the parameters' dtype."""

    _cache: dict[tuple[str, torch.dtype, torch.device], Tensor] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _cast(self, name: str, like: Tensor) -> Tensor:
        """Data field ``name`` in the dtype (complex data: the matching complex dtype) and device of ``like``."""
        data: Tensor = getattr(self, name)
        dtype = like.dtype
        if data.is_complex() and not dtype.is_complex:
            dtype = _complex_of(dtype)
        elif not data.is_complex() and dtype.is_complex:
            dtype = torch.float64 if dtype == torch.complex128 else torch.float32
        key = (name, dtype, like.device)
        cached = self._cache.get(key)
        if cached is None:
            with torch.inference_mode(False), torch.no_grad():
                cached = data.to(dtype=dtype, device=like.device)
            self._cache[key] = cached
        return cached

    def _cast_xp(self, xp: Any, name: str, like: Any) -> Any:
        """Data field ``name`` in array namespace ``xp`` (torch: :meth:`_cast`), in the dtype of ``like``: the
        float64 master copy rounded once (:func:`~lbfgs_verify.problems.xp.data_table`)."""
        if xp is TORCH_XP:
            return self._cast(name, like)
        return data_table(xp, like, name, getattr(self, name), cache=self._cache)


# --- SPD quadratic ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class QuadraticObjective(_DataObjective):
    """``f(x) = 1/2 x^T A x - b^T x`` (A symmetric positive definite, float64 master copies)."""

    matrix: Tensor
    vector: Tensor
    minimizer: Tensor
    """``A^{-1} b`` computed in float64 from the eigendecomposition."""

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        return self.xp_value(TORCH_XP, params)

    def xp_value(self, xp: Any, params: Sequence[Any]) -> Any:
        """The one definition, in array namespace ``xp`` (torch, numpy, JAX: :mod:`lbfgs_verify.problems.xp`)."""
        (x,) = params
        A = self._cast_xp(xp, "matrix", x)
        b = self._cast_xp(xp, "vector", x)
        return 0.5 * (x @ (A @ x)) - b @ x


def spd_quadratic(
    n: int,
    condition_number: float,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Problem:
    """``f(x) = 1/2 x^T A x - b^T x`` with ``A = Q diag(lambda) Q^T``, lambda log-spaced from 1 to ``condition_number``.

    Q is the orthogonal factor of a seeded Gaussian matrix, b and the start are seeded Gaussians. The optimum
    ``f* = -1/2 b^T A^{-1} b`` is computed in float64 (Nocedal & Wright, Numerical Optimization, 2nd ed., §5.1).
    """
    _check_dtype(dtype)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (condition_number >= 1.0 and math.isfinite(condition_number)):
        raise ValueError(f"condition_number must be finite and >= 1, got {condition_number}")
    g = _generator(seed)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # a unique Q (Haar-distributed)
    eigenvalues = torch.logspace(0.0, math.log10(condition_number), n, dtype=torch.float64)
    if n == 1:
        eigenvalues = torch.ones(1, dtype=torch.float64)
    matrix = (q * eigenvalues) @ q.T
    matrix = 0.5 * (matrix + matrix.T)
    vector = torch.randn(n, generator=g, dtype=torch.float64)
    start = torch.randn(n, generator=g, dtype=torch.float64)
    minimizer = q @ ((q.T @ vector) / eigenvalues)
    f_star = float(-0.5 * torch.dot(vector, minimizer))
    return Problem(
        name=f"spd_quadratic[n={n},kappa={float(condition_number):.12g},seed={seed},{_short(dtype)}]",
        dimension=n,
        dtype=dtype,
        start=(start.to(dtype),),
        objective=QuadraticObjective(matrix=matrix, vector=vector, minimizer=minimizer),
        f_star=f_star,
        expectation=Expectation.REACHES_F_STAR,
        source="SPD quadratic, eigenvalues log-spaced in [1, kappa]; f* = -1/2 b^T A^-1 b (Nocedal & Wright §5.1)",
        notes="",
        tags=frozenset({"quadratic", "convex", "extra"}),
    )


@st.composite
def spd_quadratics(
    draw: st.DrawFn,
    min_n: int = 2,
    max_n: int = 12,
    max_log10_condition: float = 4,
    dtypes: Sequence[torch.dtype] = (torch.float64,),
) -> Problem:
    """Hypothesis strategy: :func:`spd_quadratic` with n in [min_n, max_n], log10(kappa) in
    [0, max_log10_condition], any seed and one of ``dtypes``."""
    n = draw(st.integers(min_n, max_n), label="n")
    log10_condition = draw(st.floats(0.0, float(max_log10_condition), allow_nan=False), label="log10_condition")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    dtype = draw(st.sampled_from(tuple(dtypes)), label="dtype")
    return spd_quadratic(n, 10.0**log10_condition, seed=seed, dtype=dtype)


# --- linear and logistic regression ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LinearRegressionObjective(_DataObjective):
    """Mean squared error ``mean((X w + b - y)^2)`` over parameters ``[w (d,), b (1,)]``."""

    features: Tensor
    targets: Tensor

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        return self.xp_value(TORCH_XP, params)

    def xp_value(self, xp: Any, params: Sequence[Any]) -> Any:
        """The one definition, in array namespace ``xp`` (torch, numpy, JAX: :mod:`lbfgs_verify.problems.xp`)."""
        weight, bias = params
        X = self._cast_xp(xp, "features", weight)
        y = self._cast_xp(xp, "targets", weight)
        return xp.mean((X @ weight + bias - y) ** 2)


def linear_regression(
    n_samples: int = 64,
    n_features: int = 6,
    *,
    noise: float = 0.1,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Problem:
    """Least-squares linear regression on seeded Gaussian data (weight and bias as two tensors, start zero).

    f* is the mean squared residual of ``torch.linalg.lstsq`` on ``[X, 1]`` in float64.
    """
    _check_dtype(dtype)
    g = _generator(seed)
    X = torch.randn(n_samples, n_features, generator=g, dtype=torch.float64)
    true_weight = torch.randn(n_features, generator=g, dtype=torch.float64)
    y = X @ true_weight + 0.5 + noise * torch.randn(n_samples, generator=g, dtype=torch.float64)
    design = torch.cat([X, torch.ones(n_samples, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, y.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    f_star = float(torch.mean((design @ solution - y) ** 2))
    start = (torch.zeros(n_features, dtype=dtype), torch.zeros(1, dtype=dtype))
    return Problem(
        name=f"linear_regression[n={n_features + 1},samples={n_samples},seed={seed},{_short(dtype)}]",
        dimension=n_features + 1,
        dtype=dtype,
        start=start,
        objective=LinearRegressionObjective(features=X, targets=y),
        f_star=f_star,
        expectation=Expectation.REACHES_F_STAR,
        source="Linear least squares on seeded Gaussian data; f* from torch.linalg.lstsq (float64)",
        tags=frozenset({"regression", "convex", "multi_tensor", "extra"}),
    )


@dataclass(frozen=True, eq=False)
class LogisticRegressionObjective(_DataObjective):
    """``mean(log(1 + exp(-y (X w + b)))) + l2/2 ||w||^2`` with labels y in {-1, +1}; parameters ``[w, b]``."""

    features: Tensor
    labels: Tensor
    l2: float = 0.0

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        return self.xp_value(TORCH_XP, params)

    def xp_value(self, xp: Any, params: Sequence[Any]) -> Any:
        """The one definition, in array namespace ``xp`` (torch, numpy, JAX: :mod:`lbfgs_verify.problems.xp`)."""
        weight, bias = params
        X = self._cast_xp(xp, "features", weight)
        y = self._cast_xp(xp, "labels", weight)
        margins = y * (X @ weight + bias)
        return xp.mean(softplus(xp, -margins)) + 0.5 * self.l2 * xp.sum(weight**2)


def _logistic_optimum(X: Tensor, y: Tensor, l2: float) -> float | None:
    """The minimum of the regularized logistic loss by damped Newton in float64 (None if it does not converge)."""
    n_samples, d = X.shape
    design = torch.cat([X, torch.ones(n_samples, 1, dtype=torch.float64)], dim=1)
    regularizer = torch.full((d + 1,), l2, dtype=torch.float64)
    regularizer[-1] = 0.0  # the bias is not regularized

    def loss(theta: Tensor) -> Tensor:
        margins = y * (design @ theta)
        return torch.mean(torch.nn.functional.softplus(-margins)) + 0.5 * torch.sum(regularizer * theta**2)

    theta = torch.zeros(d + 1, dtype=torch.float64)
    for _ in range(100):
        margins = y * (design @ theta)
        weights = torch.sigmoid(margins) * torch.sigmoid(-margins)
        grad = design.T @ (-y * torch.sigmoid(-margins)) / n_samples + regularizer * theta
        hessian = (design.T * weights) @ design / n_samples + torch.diag(regularizer)
        step = torch.linalg.solve(hessian, grad)
        decrement = float(torch.dot(grad, step))  # Newton decrement^2: f - f* ~ decrement / 2
        if decrement <= 1e-24:
            break
        t = 1.0
        if decrement > 1e-10:  # damped phase; below this the full step is safe and f differences are rounding
            current = float(loss(theta))
            while float(loss(theta - t * step)) > current - 0.25 * t * decrement and t > 1e-10:
                t *= 0.5
        theta = theta - t * step
    else:
        return None
    return float(loss(theta))


def logistic_regression(
    n_samples: int = 100,
    n_features: int = 5,
    *,
    l2: float = 1e-2,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Problem:
    """L2-regularized logistic regression on seeded, not linearly separable data (weight, bias; start zero).

    The loss is strictly convex, so f* is computed (cheaply) by Newton's method in float64: REACHES_F_STAR.
    """
    _check_dtype(dtype)
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0 (it makes the optimum unique and finite), got {l2}")
    g = _generator(seed)
    X = torch.randn(n_samples, n_features, generator=g, dtype=torch.float64)
    true_weight = torch.randn(n_features, generator=g, dtype=torch.float64)
    logits = X @ true_weight + 0.3
    labels = torch.where(torch.rand(n_samples, generator=g, dtype=torch.float64) < torch.sigmoid(logits), 1.0, -1.0)
    f_star = _logistic_optimum(X, labels, l2)
    start = (torch.zeros(n_features, dtype=dtype), torch.zeros(1, dtype=dtype))
    return Problem(
        name=f"logistic_regression[n={n_features + 1},samples={n_samples},l2={l2:g},seed={seed},{_short(dtype)}]",
        dimension=n_features + 1,
        dtype=dtype,
        start=start,
        objective=LogisticRegressionObjective(features=X, labels=labels, l2=float(l2)),
        f_star=f_star,
        expectation=Expectation.REACHES_F_STAR if f_star is not None else Expectation.STATIONARY_POINT,
        source="L2-regularized logistic regression on seeded data; f* by Newton's method in float64",
        tags=frozenset({"classification", "convex", "multi_tensor", "extra"}),
    )


# --- small MLP with an unused parameter -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SmallMLPObjective(_DataObjective):
    """``mean((W2 tanh(W1 x + b1) + b2 - y)^2)`` over ``[W1, b1, W2, b2, unused]``; ``unused`` is never read."""

    inputs: Tensor
    targets: Tensor

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        return self.xp_value(TORCH_XP, params)

    def xp_value(self, xp: Any, params: Sequence[Any]) -> Any:
        """The one definition, in array namespace ``xp`` (torch, numpy, JAX: :mod:`lbfgs_verify.problems.xp`)."""
        w1, b1, w2, b2, _unused = params
        X = self._cast_xp(xp, "inputs", w1)
        y = self._cast_xp(xp, "targets", w1)
        hidden = xp.tanh(X @ w1.T + b1)
        return xp.mean((hidden @ w2.T + b2 - y) ** 2)


def _linear_init(out_features: int, in_features: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Weights and bias uniform in ±1/sqrt(in_features), the bounds of ``torch.nn.Linear``'s default init."""
    bound = 1.0 / math.sqrt(in_features)
    weight = (torch.rand(out_features, in_features, generator=g, dtype=torch.float64) * 2 - 1) * bound
    bias = (torch.rand(out_features, generator=g, dtype=torch.float64) * 2 - 1) * bound
    return weight, bias


def small_mlp(
    n_samples: int = 32,
    in_features: int = 3,
    hidden: int = 8,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Problem:
    """A one-hidden-layer tanh MLP fitted to a smooth target, with five parameter tensors: W1, b1, W2, b2 and an
    ``unused`` tensor of shape (2,) that the loss never reads (its ``.grad`` stays None). Non-convex: f* None."""
    _check_dtype(dtype)
    g = _generator(seed)
    X = torch.randn(n_samples, in_features, generator=g, dtype=torch.float64)
    direction = torch.randn(in_features, generator=g, dtype=torch.float64)
    y = torch.sin(X @ direction).unsqueeze(1)
    w1, b1 = _linear_init(hidden, in_features, g)
    w2, b2 = _linear_init(1, hidden, g)
    unused = torch.randn(2, generator=g, dtype=torch.float64)
    start = tuple(t.to(dtype) for t in (w1, b1, w2, b2, unused))
    return Problem(
        name=f"small_mlp[n={sum(t.numel() for t in start)},hidden={hidden},seed={seed},{_short(dtype)}]",
        dimension=sum(t.numel() for t in start),
        dtype=dtype,
        start=start,
        objective=SmallMLPObjective(inputs=X, targets=y),
        f_star=None,
        expectation=Expectation.STATIONARY_POINT,
        source="tanh MLP on seeded data (nn.Linear default init bounds)",
        notes="The fifth parameter is not used by the loss: its .grad stays None.",
        tags=frozenset({"mlp", "nonconvex", "multi_tensor", "unused_parameter", "extra"}),
    )


# --- complex least squares -------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ComplexLeastSquaresObjective(_DataObjective):
    """``||A z + C s - b||^2`` (real) over ``[z complex (n,), s real (k,)]``."""

    matrix: Tensor
    real_matrix: Tensor
    rhs: Tensor

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        return self.xp_value(TORCH_XP, params)

    def xp_value(self, xp: Any, params: Sequence[Any]) -> Any:
        """The one definition, in array namespace ``xp`` (torch, numpy, JAX: :mod:`lbfgs_verify.problems.xp`)."""
        z, s = params
        A = self._cast_xp(xp, "matrix", z)
        C = self._cast_xp(xp, "real_matrix", z)
        b = self._cast_xp(xp, "rhs", z)
        residual = A @ z + C @ xp.astype(s, z.dtype) - b
        return xp.sum(xp.real(residual) ** 2) + xp.sum(xp.imag(residual) ** 2)


def complex_least_squares(
    m: int = 8,
    n: int = 3,
    k: int = 2,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> Problem:
    """Linear least squares with a complex unknown z (n,) and a real unknown s (k,) beside it: ``|A z + C s - b|^2``.

    z is complex128 for float64 and complex64 otherwise; dimension counts real unknowns (2n + k). f* is the
    residual of ``torch.linalg.lstsq`` on the equivalent real system of size 2m x (2n + k), in float64.
    """
    _check_dtype(dtype)
    if 2 * m < 2 * n + k:
        raise ValueError(f"need 2m >= 2n + k for a unique optimum, got m={m}, n={n}, k={k}")
    g = _generator(seed)

    def complex_normal(*shape: int) -> Tensor:
        return torch.complex(torch.randn(*shape, generator=g, dtype=torch.float64),
                             torch.randn(*shape, generator=g, dtype=torch.float64))  # fmt: skip

    A, C, b = complex_normal(m, n), complex_normal(m, k), complex_normal(m)
    z0, s0 = complex_normal(n), torch.randn(k, generator=g, dtype=torch.float64)
    real_system = torch.cat([
        torch.cat([A.real, -A.imag, C.real], dim=1),
        torch.cat([A.imag, A.real, C.imag], dim=1),
    ])  # fmt: skip
    real_rhs = torch.cat([b.real, b.imag])
    solution = torch.linalg.lstsq(real_system, real_rhs.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    f_star = float(torch.sum((real_system @ solution - real_rhs) ** 2))
    return Problem(
        name=f"complex_least_squares[n={2 * n + k},m={m},seed={seed},{_short(dtype)}]",
        dimension=2 * n + k,
        dtype=dtype,
        start=(z0.to(_complex_of(dtype)), s0.to(dtype)),
        objective=ComplexLeastSquaresObjective(matrix=A, real_matrix=C, rhs=b),
        f_star=f_star,
        expectation=Expectation.REACHES_F_STAR,
        source="Complex linear least squares |Az + Cs - b|^2 on seeded data; f* from the real 2m x (2n+k) lstsq",
        notes="Parameter 0 is complex (real loss; torch's gradient is dL/dRe + i dL/dIm), parameter 1 is real.",
        tags=frozenset({"complex", "convex", "multi_tensor", "extra"}),
    )


# --- the seed article's regression, done right ----------------------------------------------------------------------
def seed_article_regression(*, seed: int = 0, dtype: torch.dtype = torch.float64) -> Problem:
    """The seed article's scenario, corrected: ``nn.Linear(10, 1)``-shaped weight (1, 10) and bias (1,), X (100, 10)
    from a seeded generator, ``y = X @ [2, 3, ..., 11] + 10`` (ten weights for ten features; the article used nine),
    MSE loss. The data are exact, so f* = 0. Start: nn.Linear's default init bounds, seeded."""
    _check_dtype(dtype)
    g = _generator(seed)
    X = torch.randn(100, 10, generator=g, dtype=torch.float64)
    true_weight = torch.arange(2.0, 12.0, dtype=torch.float64)
    y = (X @ true_weight + 10.0).unsqueeze(1)
    weight, bias = _linear_init(1, 10, g)
    return Problem(
        name=f"seed_article_regression[n=11,seed={seed},{_short(dtype)}]",
        dimension=11,
        dtype=dtype,
        start=(weight.to(dtype), bias.to(dtype)),
        objective=_SeedArticleObjective(features=X, targets=y),
        f_star=0.0,
        expectation=Expectation.REACHES_F_STAR,
        source="Seed article's L-BFGS linear regression (y = X w + 10, w = 2..11), corrected to 10 weights",
        notes="Parameters in nn.Linear order: weight (1, 10), bias (1,).",
        tags=frozenset({"regression", "convex", "multi_tensor", "extra"}),
    )


@dataclass(frozen=True, eq=False)
class _SeedArticleObjective(_DataObjective):
    """``mean((X W^T + b - y)^2)`` over ``[weight (1, 10), bias (1,)]`` (``nn.MSELoss`` of ``nn.Linear``)."""

    features: Tensor
    targets: Tensor

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        return self.xp_value(TORCH_XP, params)

    def xp_value(self, xp: Any, params: Sequence[Any]) -> Any:
        """The one definition, in array namespace ``xp`` (torch, numpy, JAX: :mod:`lbfgs_verify.problems.xp`)."""
        weight, bias = params
        X = self._cast_xp(xp, "features", weight)
        y = self._cast_xp(xp, "targets", weight)
        return xp.mean((X @ weight.T + bias - y) ** 2)


# --- chained Rosenbrock -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainedRosenbrockObjective:
    """``sum_{i<n} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2`` (scipy.optimize.rosen's form)."""

    def __call__(self, params: Sequence[Tensor]) -> Tensor:
        return self.xp_value(TORCH_XP, params)

    def xp_value(self, xp: Any, params: Sequence[Any]) -> Any:
        """The one definition, in array namespace ``xp`` (torch, numpy, JAX: :mod:`lbfgs_verify.problems.xp`)."""
        (x,) = params
        return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _standard_rosenbrock_start(n: int) -> list[float]:
    return [-1.2 if j % 2 == 0 else 1.0 for j in range(n)]


def rosenbrock_chained(
    n: int = 10,
    *,
    start: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float64,
) -> Problem:
    """The chained (generalized) Rosenbrock function of ``scipy.optimize.rosen``; f* = 0 at (1, ..., 1).

    Default start (-1.2, 1, -1.2, 1, ...). For 4 <= n <= 30 a second local minimum exists near x1 = -1 (Kok &
    Sandrock, Evol. Comput. 17(3), 2009), so other starts are REACHES_F_STAR only for n <= 3; from the default
    start scipy L-BFGS-B and torch L-BFGS (strong Wolfe) reach f* (checked for n = 2..12, 15, 20, ..., 50, 100).
    """
    _check_dtype(dtype)
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if start is None:
        values, start_tag = _standard_rosenbrock_start(n), "std"
    else:
        values = [float(v) for v in start]
        if len(values) != n:
            raise ValueError(f"start has {len(values)} entries, expected n = {n}")
        digest = hashlib.sha256(torch.tensor(values, dtype=torch.float64).numpy().tobytes()).hexdigest()[:10]
        start_tag = "std" if values == _standard_rosenbrock_start(n) else digest
    return Problem(
        name=f"rosenbrock_chained[n={n},x0={start_tag},{_short(dtype)}]",
        dimension=n,
        dtype=dtype,
        start=(torch.tensor(values, dtype=torch.float64).to(dtype),),
        objective=ChainedRosenbrockObjective(),
        f_star=0.0,
        expectation=Expectation.REACHES_F_STAR if n <= 3 or start_tag == "std" else Expectation.STATIONARY_POINT,
        source="Chained Rosenbrock (scipy.optimize.rosen); local minima: Kok & Sandrock 2009",
        notes="" if n <= 3 else "A local minimum near x1 = -1 exists for 4 <= n <= 30.",
        tags=frozenset({"rosenbrock", "nonconvex", "extra"}),
    )


@st.composite
def rosenbrock_problems(
    draw: st.DrawFn,
    min_n: int = 2,
    max_n: int = 10,
    max_offset: float = 0.5,
    dtypes: Sequence[torch.dtype] = (torch.float64,),
) -> Problem:
    """Hypothesis strategy: :func:`rosenbrock_chained` with n in [min_n, max_n] started at the standard start
    (-1.2, 1, ...) plus a uniform offset in [-max_offset, max_offset] per coordinate."""
    n = draw(st.integers(min_n, max_n), label="n")
    offsets = draw(
        st.lists(st.floats(-max_offset, max_offset, allow_nan=False, allow_subnormal=False), min_size=n, max_size=n),
        label="offsets",
    )
    dtype = draw(st.sampled_from(tuple(dtypes)), label="dtype")
    start = [s + o for s, o in zip(_standard_rosenbrock_start(n), offsets, strict=True)]
    return rosenbrock_chained(n, start=start, dtype=dtype)


def extra_problems(dtype: torch.dtype = torch.float64) -> list[Problem]:
    """One problem of each kind in this module, at default arguments."""
    return [
        spd_quadratic(8, 1e3, seed=0, dtype=dtype),
        linear_regression(dtype=dtype),
        logistic_regression(dtype=dtype),
        small_mlp(dtype=dtype),
        complex_least_squares(dtype=dtype),
        seed_article_regression(dtype=dtype),
        rosenbrock_chained(2, dtype=dtype),
        rosenbrock_chained(10, dtype=dtype),
    ]


def sparse_embedding_problem(seed: int, rows: int, dim: int, dtype: torch.dtype, *, sparse: bool) -> Problem:
    """Rows of a table ``E`` (rows × dim) picked by ``torch.nn.functional.embedding`` and fitted through a vector
    ``w``: ``½‖E[idx] w - b‖² + 0.05 (‖E[idx]‖² + ‖w‖²)``, every row but one picked once. With ``sparse=True``
    ``E.grad`` is a sparse tensor (the gradient of ``nn.Embedding(sparse=True)``), otherwise the same values dense
    (the picked rows are distinct, so both hold exactly the same numbers)."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(rows, dim, generator=g, dtype=torch.float64).to(dtype)
    w = torch.randn(dim, generator=g, dtype=torch.float64).to(dtype)
    idx = torch.randperm(rows, generator=g)[: rows - 1]
    b = torch.randn(rows - 1, generator=g, dtype=torch.float64).to(dtype)

    def objective(params: Sequence[Tensor]) -> Tensor:
        chosen = torch.nn.functional.embedding(idx, params[0], sparse=sparse)
        r = chosen @ params[1] - b
        return 0.5 * (r * r).sum() + 0.05 * ((chosen * chosen).sum() + (params[1] * params[1]).sum())

    kind = "sparse" if sparse else "dense"
    return Problem(name=f"sparse_embedding[seed={seed},rows={rows},dim={dim},{str(dtype).removeprefix('torch.')},"
                        f"{kind} grad]", dimension=rows * dim + dim, dtype=dtype, start=(table, w),
                   objective=objective, source="lbfgs_verify (behaviour.sparse_gradients)",
                   tags=frozenset({"sparse-grad"} if sparse else ()))


def double_well_problem(seed: int, n: int = 4, dtype: torch.dtype = torch.float64) -> Problem:
    """``Σ (x_i² - 1)² + 0.1 Σ x_i x_{i+1}`` from a start in the concave region |x_i| < 0.4: with small fixed
    steps the first pairs have yᵀs < 0, so the curvature skip (and the gᵀd safeguard) matter at once."""
    g = torch.Generator().manual_seed(seed)
    start = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 0.8

    def objective(params: Sequence[Tensor]) -> Tensor:
        x = params[0]
        return ((x * x - 1) ** 2).sum() + 0.1 * (x[:-1] * x[1:]).sum()

    return Problem(name=f"double_well[n={n},seed={seed},{str(dtype).removeprefix('torch.')}]", dimension=n,
                   dtype=dtype, start=(start.to(dtype),), objective=objective, tags=frozenset({"nonconvex"}),
                   source="lbfgs_verify.problems.extra (constructed for mathematics.*)")


def wavy_problem(seed: int, n: int = 4, dtype: torch.dtype = torch.float64) -> Problem:
    """``0.05 ||x||² + Σ (1 - cos 3x_i)``: many valleys, so long trial steps land uphill on gentle slopes, where
    a line search without the sufficient-decrease test (or without the curvature test) accepts them."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(n, generator=g, dtype=torch.float64) * 2

    def objective(params: Sequence[Tensor]) -> Tensor:
        x = params[0]
        return 0.05 * (x * x).sum() + (1 - torch.cos(3 * x)).sum()

    return Problem(name=f"wavy[n={n},seed={seed},{str(dtype).removeprefix('torch.')}]", dimension=n, dtype=dtype,
                   start=(start.to(dtype),), objective=objective, tags=frozenset({"nonconvex"}),
                   source="lbfgs_verify.problems.extra (constructed for mathematics.*)")


def at_minimum(problem: Problem) -> Problem:
    """``problem`` started at (0.5, -1, 2, 1.5), the exact minimiser of ``separable_quadratic`` (its name ends in
    ``@x*``): behaviour.converged_no_move's start where g = 0."""
    return dataclasses.replace(problem, name=f"{problem.name}@x*", start=(torch.tensor([0.5, -1.0, 2.0, 1.5],
                                                                           dtype=problem.dtype),))
