"""Shared hypothesis strategies for the property suite and the fuzzer.

Stable public API (other modules import these; change only additively). :class:`Scenario` and the process
hygiene of bitwise comparisons live in :mod:`lbfgs_verify.engine.runs`.

- :func:`problem_names`, :func:`make_problem`: a small catalogue of cheap, dtype-generic problems (several
  tensors, a complex parameter, a parameter that never gets a gradient, low-precision dtypes).
- :func:`generated_problems`: random smooth problems built from a seed (shapes, complex and unused
  parameters, zero-element parameters and memory layouts drawn by hypothesis).
- Layouts (:data:`LAYOUTS`): what users' leaf parameters look like — a transposed weight made a leaf
  (``w.t().detach().requires_grad_()``), a channels_last conv weight, a strided slice ``base[:, ::2]`` made a
  leaf — so that an update written into a ``p.reshape(-1)`` copy (lost silently) or a ``p.view(-1)`` that
  raises is drawn (issue 19 "Draw what users have"). The catalogue's ``coupled_tensors`` and
  ``tiny_mlp_with_unused`` hold a strided leaf too.
- :func:`learning_rates`, :func:`hyperparameters`: ``torch.optim.LBFGS`` keyword arguments, with small
  ``max_iter`` and ``history_size`` so that histories roll within a few steps, ``lr`` as ``int``, ``float``
  or 0-dim tensor (each changes the type of the state's ``t``).
- :func:`scenarios`, :func:`split_points`: scenarios and split points (``0 <= k < steps``: save before
  step ``k``).

Problems are deliberately tiny (at most a few dozen unknowns) so that the ``quick`` budget stays cheap.

Declared capabilities (:mod:`lbfgs_verify.engine.capabilities`): every strategy here consults
:func:`~lbfgs_verify.engine.capabilities.active_lacks` when it draws, so a feature the target declared it lacks
(a dtype, complex or unused parameters, several tensors, a line search, lr, max_eval, tolerance_change) is
never drawn. :func:`line_search_fns` is the lacks-aware way to draw ``line_search_fn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.engine.capabilities import active_lacks, allowed, features_of_problem
from lbfgs_verify.engine.runs import Scenario
from lbfgs_verify.problems.base import Expectation, Problem

__all__ = [
    "DRAWN_LAYOUTS",
    "DTYPES",
    "LAYOUTS",
    "LOW_PRECISION_DTYPES",
    "LOW_PRECISION_PROBLEMS",
    "dtypes",
    "generated_problem",
    "generated_problems",
    "hyperparameters",
    "learning_rates",
    "line_search_fns",
    "lr_choices",
    "make_problem",
    "problem_names",
    "problems",
    "scenarios",
    "split_points",
    "with_layout",
]

DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
"""The dtypes of bitwise checks (torch's own resume is exact in both; see the facts file)."""

LOW_PRECISION_DTYPES: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16)
"""Dtypes whose resume with a higher-precision tensor ``lr`` breaks torch 2.13 (defect #6 in the facts)."""

LAYOUTS: tuple[str, ...] = ("contiguous", "strided", "transposed", "channels_last")
"""Memory layouts :func:`generated_problem` gives a parameter (:func:`lbfgs_verify.problems.base.layout_of`):
``strided`` is ``base[:, ::2]`` of a wider matrix (gaps; ``p.reshape(-1)`` is a copy: :func:`_strided`),
``transposed`` is ``m.t()`` (dense, column-major), ``channels_last`` a 4-D ``(k, 2, 2, 1)`` weight in
``torch.channels_last``."""

DRAWN_LAYOUTS: tuple[str, ...] = ("contiguous", "strided")
"""The layouts :func:`generated_problems` draws. ``transposed`` and ``channels_last`` are built on request only:
torch 2.13's LBFGS (and the reference, which follows it) raise on them in ``_gather_flat_grad``
(``p.grad.view(-1)`` of a gradient with the parameter's dense non-row-major strides: "view size is not
compatible", pytorch #126625, #130346), so drawing them needs a declarable lack first."""

LAYOUT_SIZES: dict[str, tuple[int, ...]] = {"strided": (4, 6), "transposed": (4, 6), "channels_last": (4, 8)}
"""Sizes a non-contiguous layout is drawn with: it needs a matrix (or 4-D weight) with two dimensions > 1."""


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def _matrix_shape(n: int) -> tuple[int, int]:
    """``(r, c)`` with ``r * c == n`` and both at least 2 (the smallest such ``r``)."""
    for r in range(2, n):
        if n % r == 0 and n // r >= 2:
            return r, n // r
    raise ValueError(f"a transposed or strided parameter needs a size with two factors >= 2 (4, 6, 8, 9, ...), "
                     f"got {n}")


def with_layout(values: Tensor, layout: str) -> Tensor:
    """The ``n`` numbers of the 1-D ``values`` as a tensor of ``layout`` (:data:`LAYOUTS`), in row-major
    logical order (``result.reshape(-1)`` equals ``values``): only the memory layout changes, not the problem.
    An empty ``values`` stays a contiguous ``(0,)`` tensor."""
    n = values.numel()
    if layout == "contiguous" or n == 0:
        return values.clone()
    if layout == "strided":
        r, c = _matrix_shape(n)
        return _strided(values.reshape(r, c))
    if layout == "transposed":
        r, c = _matrix_shape(n)
        return values.reshape(r, c).t().contiguous().t()
    if layout == "channels_last":
        if n % 4:
            raise ValueError(f"a channels_last parameter is a (k, 2, 2, 1) weight: its size must be a multiple of 4, "
                             f"got {n}")
        return values.reshape(n // 4, 2, 2, 1).contiguous(memory_format=torch.channels_last)
    raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")


def _strided(t: Tensor) -> Tensor:
    """``t`` (an r x c matrix, c >= 2) as ``base[:, ::2]`` of an r x (2c - 1) base, same values: row stride 2c - 1,
    column stride 2, so no flat view exists (``reshape(-1)`` copies; with a 2c-wide base it would be a view)."""
    base = torch.zeros(t.shape[0], 2 * t.shape[1] - 1, dtype=t.dtype)
    view = base[:, ::2]
    view.copy_(t)
    return view


# --------------------------------------------------------------------------------------------------------
# Problem catalogue
# --------------------------------------------------------------------------------------------------------


def _rosenbrock(dtype: torch.dtype) -> Problem:
    """MGH problem 1 (Moré, Garbow, Hillstrom 1981) from the standard start (-1.2, 1)."""

    def objective(params: Sequence[Tensor]) -> Tensor:
        x = params[0]
        return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2

    return Problem(
        name=f"rosenbrock[{_dtype_name(dtype)}]", dimension=2, dtype=dtype,
        start=(torch.tensor([-1.2, 1.0], dtype=dtype),), objective=objective, f_star=0.0,
        expectation=Expectation.REACHES_F_STAR, source="Moré, Garbow, Hillstrom (1981), problem 1",
        tags=frozenset({"mgh"}),
    )


def _coupled_tensors(dtype: torch.dtype) -> Problem:
    """Three tensors of different shapes (vector, matrix, 0-dim) coupled by cross terms; smooth, non-quadratic."""
    g = torch.Generator().manual_seed(20240611)
    starts = (torch.randn(3, generator=g, dtype=torch.float64), torch.randn(2, 2, generator=g, dtype=torch.float64),
              torch.tensor(0.7, dtype=torch.float64))
    weights = torch.linspace(1.0, 5.0, 8, dtype=torch.float64)

    def objective(params: Sequence[Tensor]) -> Tensor:
        x = torch.cat([p.reshape(-1) for p in params])
        w = weights.to(x.dtype)
        return (w * x**2).sum() + 0.1 * (x**4).sum() + (x[:-1] * x[1:]).sum() - 0.3 * x.sum()

    return Problem(
        name=f"coupled_tensors[{_dtype_name(dtype)}]", dimension=8, dtype=dtype,
        # the matrix is a strided leaf (base[:, ::2]): a layout users have (issue 19), same values and bits
        start=(starts[0].to(dtype), _strided(starts[1].to(dtype)), starts[2].to(dtype)), objective=objective,
        tags=frozenset({"multi-tensor", "non-contiguous"}),
        source="lbfgs_verify.engine.strategies (harness problem)",
    )


def _complex_least_squares(dtype: torch.dtype) -> Problem:
    """A complex parameter (counts twice in the flat state) next to a real one, coupled."""
    g = torch.Generator().manual_seed(7)
    cdtype = _complex_of(dtype)
    a = torch.randn(4, 3, generator=g, dtype=torch.complex128)
    b = torch.randn(4, generator=g, dtype=torch.complex128)

    def objective(params: Sequence[Tensor]) -> Tensor:
        z, r = params
        residual = a.to(z.dtype) @ z - b.to(z.dtype)
        return (residual.abs() ** 2).sum() + ((r - 1) ** 2).sum() + 0.1 * (z.real.sum() * r[0]) ** 2

    start = (torch.zeros(3, dtype=cdtype) + (0.5 - 0.25j), torch.tensor([2.0, -1.0], dtype=dtype))
    return Problem(
        name=f"complex_least_squares[{_dtype_name(dtype)}]", dimension=8, dtype=dtype, start=start,
        objective=objective, tags=frozenset({"complex"}), source="lbfgs_verify.engine.strategies (harness problem)",
    )


def _tiny_mlp_with_unused(dtype: torch.dtype) -> Problem:
    """A 2-3-1 tanh network on fixed data plus one parameter the loss never touches (its grad stays None)."""
    g = torch.Generator().manual_seed(3)
    x_data = torch.randn(12, 2, generator=g, dtype=torch.float64)
    y_data = torch.sin(x_data[:, :1] * 2) + 0.5 * x_data[:, 1:]
    starts = (0.5 * torch.randn(3, 2, generator=g, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
              0.5 * torch.randn(1, 3, generator=g, dtype=torch.float64), torch.zeros(1, dtype=torch.float64),
              torch.ones(2, dtype=torch.float64))

    def objective(params: Sequence[Tensor]) -> Tensor:
        w1, b1, w2, b2, _unused = params
        x, y = x_data.to(w1.dtype), y_data.to(w1.dtype)
        out = torch.tanh(x @ w1.T + b1) @ w2.T + b2
        return ((out - y) ** 2).mean()

    return Problem(
        name=f"tiny_mlp_with_unused[{_dtype_name(dtype)}]", dimension=17, dtype=dtype,
        # w1 is a strided leaf (base[:, ::2]), as a weight sliced from a larger one and made a leaf (issue 19)
        start=(_strided(starts[0].to(dtype)), *(t.to(dtype) for t in starts[1:])), objective=objective,
        tags=frozenset({"nn", "unused-param", "non-contiguous"}),
        source="lbfgs_verify.engine.strategies (harness problem)",
    )


def _separable_quadratic(dtype: torch.dtype) -> Problem:
    """An elementwise weighted quadratic: well defined in bfloat16/float16 (no matmul)."""
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    centre = torch.tensor([0.5, -1.0, 2.0, 1.5])

    def objective(params: Sequence[Tensor]) -> Tensor:
        x = params[0]
        return (weights.to(x.dtype) * (x - centre.to(x.dtype)) ** 2).sum()

    return Problem(
        name=f"separable_quadratic[{_dtype_name(dtype)}]", dimension=4, dtype=dtype,
        start=(torch.tensor([3.0, 3.0, -2.0, 0.0], dtype=dtype),), objective=objective, f_star=0.0,
        expectation=Expectation.REACHES_F_STAR, tags=frozenset({"quadratic", "low-precision"}),
        source="lbfgs_verify.engine.strategies (harness problem)",
    )


_CATALOGUE: dict[str, Callable[[torch.dtype], Problem]] = {
    "rosenbrock": _rosenbrock,
    "coupled_tensors": _coupled_tensors,
    "complex_least_squares": _complex_least_squares,
    "tiny_mlp_with_unused": _tiny_mlp_with_unused,
    "separable_quadratic": _separable_quadratic,
}


def _suite_problem(constructor: str, **kwargs: Any) -> Callable[[torch.dtype], Problem]:
    """A problem of :mod:`lbfgs_verify.problems` (imported when first used)."""

    def make(dtype: torch.dtype) -> Problem:
        import lbfgs_verify.problems as suite

        return getattr(suite, constructor)(dtype=dtype, **kwargs)

    return make


_CATALOGUE.update({
    # Small members of the shared problem collection (lbfgs_verify.problems.extra), realistic shapes.
    "suite.small_mlp": _suite_problem("small_mlp", n_samples=16, hidden=4),
    "suite.logistic_regression": _suite_problem("logistic_regression", n_samples=40, n_features=3),
    "suite.complex_least_squares": _suite_problem("complex_least_squares"),
    "suite.spd_quadratic": _suite_problem("spd_quadratic", n=6, condition_number=100.0),
})

LOW_PRECISION_PROBLEMS: tuple[str, ...] = ("separable_quadratic",)
"""Catalogue problems that are meaningful in bfloat16/float16 (elementwise, no matmul)."""


def problem_names() -> tuple[str, ...]:
    """Names accepted by :func:`make_problem`."""
    return tuple(_CATALOGUE)


def make_problem(name: str, dtype: torch.dtype = torch.float64) -> Problem:
    """A catalogue problem in ``dtype`` (complex parameters follow: complex64 for float32, complex128 else)."""
    try:
        factory = _CATALOGUE[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; choose from {', '.join(_CATALOGUE)}") from None
    return factory(dtype)


def generated_problem(
    seed: int, sizes: Sequence[int], dtype: torch.dtype = torch.float64, *, with_complex: bool = False,
    with_unused: bool = False, layouts: Sequence[str] | None = None,
) -> Problem:
    """A random smooth problem: ``0.5 xᵀAx - bᵀx + 0.05 Σx⁴`` with ``A`` SPD (condition ≲ 50) over the
    concatenation of tensors of ``sizes`` (plus a complex one when ``with_complex``; plus one the loss
    never touches when ``with_unused``). A size may be 0 (a zero-element parameter, not all of them);
    ``layouts`` gives each tensor of ``sizes`` a memory layout (:func:`with_layout`): the numbers, and so the
    problem, are those of the contiguous problem of the same seed and sizes."""
    chosen = tuple(layouts) if layouts is not None else ("contiguous",) * len(sizes)
    if len(chosen) != len(sizes):
        raise ValueError(f"layouts {chosen} must give one layout per size in {tuple(sizes)}")
    unknown = sorted(set(chosen) - set(LAYOUTS))
    if unknown:
        raise ValueError(f"unknown layout(s) {unknown}; choose from {', '.join(LAYOUTS)}")
    if any(s < 0 for s in sizes) or not (sum(sizes) or with_complex):
        raise ValueError(f"sizes {tuple(sizes)} must be >= 0 with at least one parameter element")
    g = torch.Generator().manual_seed(seed)
    n = sum(sizes) + (4 if with_complex else 0)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    eig = torch.logspace(0, math.log10(50), n, dtype=torch.float64)
    a = (q * eig) @ q.T
    b = torch.randn(n, generator=g, dtype=torch.float64)
    starts: list[Tensor] = [with_layout(torch.randn(s, generator=g, dtype=torch.float64).to(dtype), layout)
                            for s, layout in zip(sizes, chosen, strict=True)]
    if with_complex:
        starts.append(torch.randn(2, generator=g, dtype=torch.complex128).to(_complex_of(dtype)))
    if with_unused:
        starts.append(torch.full((2,), 0.5, dtype=dtype))
    n_used = len(sizes) + (1 if with_complex else 0)

    def objective(params: Sequence[Tensor]) -> Tensor:
        # real/imag rather than view_as_real: the backward of view_as_real at an odd offset of a cat raises
        # "Tensor must have a storage_offset divisible by 2" (torch 2.13).
        parts = [torch.stack((p.real, p.imag), -1).reshape(-1) if p.is_complex() else p.reshape(-1)
                 for p in params[:n_used]]
        x = torch.cat(parts)
        return 0.5 * x @ (a.to(x.dtype) @ x) - b.to(x.dtype) @ x + 0.05 * (x**4).sum()

    flags = ("+complex" if with_complex else "") + ("+unused" if with_unused else "")
    laid = f",layouts=({','.join(chosen)})" if any(layout != "contiguous" for layout in chosen) else ""
    name = f"generated[seed={seed},sizes={tuple(sizes)}{laid}{flags},{_dtype_name(dtype)}]"
    tags = {"generated"} | ({"non-contiguous"} if laid else set()) | ({"zero-element"} if 0 in sizes else set())
    return Problem(name=name, dimension=n, dtype=dtype, start=tuple(starts), objective=objective,
                   tags=frozenset(tags), source="lbfgs_verify.engine.strategies.generated_problem")


# --------------------------------------------------------------------------------------------------------
# Hyperparameters and scenarios
# --------------------------------------------------------------------------------------------------------


def _allowed_dtypes(candidates: Sequence[torch.dtype]) -> tuple[torch.dtype, ...]:
    lacks = active_lacks()
    return tuple(d for d in candidates if _dtype_name(d) not in lacks)


def dtypes(*, low_precision: bool = False) -> st.SearchStrategy[torch.dtype]:
    """float32/float64, or bfloat16/float16 with ``low_precision=True`` (without declared-lacking dtypes; if all
    are lacking the example is rejected)."""
    candidates = LOW_PRECISION_DTYPES if low_precision else DTYPES

    def pick(_: Any) -> st.SearchStrategy[torch.dtype]:
        chosen = _allowed_dtypes(candidates)
        return st.sampled_from(chosen) if chosen else st.nothing()

    return st.just(None).flatmap(pick)


def line_search_fns(choices: Sequence[str | None] = (None, "strong_wolfe")) -> st.SearchStrategy[str | None]:
    """``line_search_fn`` among ``choices``, without those declared lacking (``strong_wolfe``, or
    ``no_line_search`` for None)."""

    def pick(_: Any) -> st.SearchStrategy[str | None]:
        lacks = active_lacks()
        chosen = tuple(c for c in choices if ("strong_wolfe" if c == "strong_wolfe" else "no_line_search")
                       not in lacks)
        return st.sampled_from(chosen) if chosen else st.nothing()

    return st.just(None).flatmap(pick)


def learning_rates(
    kinds: Sequence[str] = ("int", "float", "tensor"),
    tensor_dtypes: Sequence[torch.dtype] = DTYPES,
    values: Sequence[float] = (1.0, 0.5, 0.25, 0.1),
) -> st.SearchStrategy[int | float | Tensor]:
    """``lr`` as the int ``1`` (torch's default), a float, or a 0-dim tensor of one of ``tensor_dtypes``; only the
    default ``1`` (or nothing, if ``int`` is not among ``kinds``) when the target declares it lacks ``lr``."""

    def pick(_: Any) -> st.SearchStrategy[int | float | Tensor]:
        if "lr" in active_lacks():
            return st.just(1) if "int" in kinds else st.nothing()
        return _learning_rates(kinds, tensor_dtypes, values)

    return st.just(None).flatmap(pick)


def lr_choices(values: Sequence[float | int]) -> st.SearchStrategy[float | int]:
    """One of ``values`` as ``lr``; only the default ``1`` when the target declares it lacks ``lr`` (for
    properties whose claim does not depend on the value of lr)."""

    def pick(_: Any) -> st.SearchStrategy[float | int]:
        return st.just(1) if "lr" in active_lacks() else st.sampled_from(tuple(values))

    return st.just(None).flatmap(pick)


def _learning_rates(kinds: Sequence[str], tensor_dtypes: Sequence[torch.dtype],
                    values: Sequence[float]) -> st.SearchStrategy[int | float | Tensor]:
    options: list[st.SearchStrategy[Any]] = []
    if "int" in kinds:
        options.append(st.just(1))
    if "float" in kinds:
        options.append(st.sampled_from(values))
    if "tensor" in kinds:
        options.append(st.builds(lambda v, dt: torch.tensor(v, dtype=dt), st.sampled_from(values),
                                 st.sampled_from(tuple(tensor_dtypes))))
    return st.one_of(*options)


_line_search_strategy = line_search_fns  # reachable inside hyperparameters(), whose argument shadows the name


@st.composite
def hyperparameters(
    draw: st.DrawFn,
    *,
    line_search_fns: Sequence[str | None] = (None, "strong_wolfe"),
    lr: st.SearchStrategy[Any] | None = None,
    max_iter: tuple[int, int] = (1, 4),
    history_size: tuple[int, int] = (1, 4),
    allow_defaults: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for a ``torch.optim.LBFGS``-like constructor.

    ``max_iter`` and ``history_size`` are drawn from small ranges so that a few ``step()`` calls fill and
    roll the history; ``max_eval`` is sometimes below ``max_iter`` (truncated line searches); tolerances are
    torch's defaults, zero, or coarser. With ``allow_defaults`` some arguments are left out so that the
    target's defaults are exercised too.
    """
    kwargs: dict[str, Any] = {}
    lacks = active_lacks()
    omit = draw(st.sets(st.sampled_from(("lr", "max_eval", "tolerance_grad", "tolerance_change")),
                        max_size=4)) if allow_defaults else set()
    omit |= {name for name in ("lr", "max_eval", "tolerance_change") if name in lacks}
    if "lr" not in omit:
        kwargs["lr"] = draw(lr if lr is not None else learning_rates())
    iters = draw(st.integers(*max_iter))
    kwargs["max_iter"] = iters
    if "max_eval" not in omit:
        kwargs["max_eval"] = draw(st.integers(max(1, iters - 1), 3 * iters))
    if "tolerance_grad" not in omit:
        kwargs["tolerance_grad"] = draw(st.sampled_from((1e-7, 0.0, 1e-5)))
    if "tolerance_change" not in omit:
        kwargs["tolerance_change"] = draw(st.sampled_from((1e-9, 0.0, 1e-6)))
    kwargs["history_size"] = draw(st.integers(*history_size))
    kwargs["line_search_fn"] = draw(_line_search_strategy(tuple(line_search_fns)))
    return kwargs


@st.composite
def generated_problems(draw: st.DrawFn, dtype: torch.dtype | None = None,
                       layouts: Sequence[str] = DRAWN_LAYOUTS) -> Problem:
    """:func:`generated_problem` with drawn seed, 1-3 tensor sizes, complex and unused parameters; then, where
    several tensors are allowed, memory layouts among ``layouts`` (about every other problem holds a
    non-contiguous leaf) and sometimes one more, zero-element tensor."""
    chosen = dtype if dtype is not None else draw(dtypes())
    several = allowed({"several_tensors"})
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3 if several else 1))
    with_complex = several and allowed({"complex"}) and draw(st.booleans())
    with_unused = several and allowed({"no_grad_params"}) and draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    laid = ["contiguous"] * len(sizes)
    others = [layout for layout in layouts if layout != "contiguous"]
    if others and draw(st.booleans(), label="non-contiguous leaf"):
        layout = draw(st.sampled_from(others))
        where = draw(st.integers(0, len(sizes) - 1))
        sizes[where], laid[where] = draw(st.sampled_from(LAYOUT_SIZES[layout])), layout
    if several and draw(st.integers(0, 3)) == 0:
        where = draw(st.integers(0, len(sizes)))
        sizes.insert(where, 0)
        laid.insert(where, "contiguous")
    return generated_problem(seed, sizes, chosen, with_complex=with_complex, with_unused=with_unused,
                             layouts=laid)


@st.composite
def problems(draw: st.DrawFn, dtype: torch.dtype | None = None, *, generated: bool = True) -> Problem:
    """A catalogue problem or (with ``generated``) a generated one, in a drawn float32/float64 dtype."""
    chosen = dtype if dtype is not None else draw(dtypes())
    names = [n for n in problem_names() if n not in LOW_PRECISION_PROBLEMS and allowed_problem(n, chosen)]
    if generated and (not names or draw(st.integers(0, 3)) == 0):
        return draw(generated_problems(chosen))
    if not names:
        return draw(st.nothing())
    return make_problem(draw(st.sampled_from(names)), chosen)


def allowed_problem(name: str, dtype: torch.dtype = torch.float64) -> bool:
    """True when the catalogue problem ``name`` in ``dtype`` uses no declared-lacking feature."""
    if not active_lacks():
        return True
    return allowed(features_of_problem(make_problem(name, dtype)))


@st.composite
def scenarios(
    draw: st.DrawFn,
    steps: int,
    *,
    problem: st.SearchStrategy[Problem] | None = None,
    hyperparameter_strategy: st.SearchStrategy[dict[str, Any]] | None = None,
) -> Scenario:
    """A :class:`Scenario` of ``steps`` steps from :func:`problems` and :func:`hyperparameters` (or the
    given strategies)."""
    chosen_problem = draw(problem if problem is not None else problems())
    hp = draw(hyperparameter_strategy if hyperparameter_strategy is not None else hyperparameters())
    return Scenario(chosen_problem, hp, steps)


def split_points(steps: int) -> st.SearchStrategy[int]:
    """A split point ``k`` in ``[0, steps)``: state saved after ``k`` steps, i.e. before step ``k``."""
    return st.integers(0, max(0, steps - 1))


def other_hyperparameters(hp: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments that differ from ``hp`` in every field the state_dict must restore, except those
    whose other value the target declared it lacks (``line_search_fn`` is switched only if the target has both
    searches; ``lr``, ``max_eval``, ``tolerance_change`` are kept if lacked)."""
    lacks = active_lacks()
    max_iter = int(hp.get("max_iter", 20))
    other: dict[str, Any] = {
        "lr": 0.0123,
        "max_iter": max_iter + 2,
        "max_eval": 3 * max_iter + 7,
        "tolerance_grad": 1e-3,
        "tolerance_change": 1e-4,
        "history_size": int(hp.get("history_size", 100)) + 3,
        "line_search_fn": None if hp.get("line_search_fn") else "strong_wolfe",
    }
    if lacks & {"strong_wolfe", "no_line_search"}:
        other["line_search_fn"] = hp.get("line_search_fn")
    for key in ("lr", "max_eval", "tolerance_change"):
        if key in lacks:
            if key in hp:
                other[key] = hp[key]
            else:
                other.pop(key)
    return other
