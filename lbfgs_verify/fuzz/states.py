"""Reachable optimizer states: public hypothesis strategies of (problem, hyperparameters, split).

A state is reached the only honest way, by running the target: :class:`FuzzState` names a problem, the
optimizer's keyword arguments and how many ``step()`` calls are made before the state is taken. The kinds
drawn cover what an L-BFGS can be in (facts measured on torch 2.13, torch/optim/lbfgs.py):

- ``before-first-step`` (empty state), ``early-return`` (``tolerance_grad`` hit on entry: only counters),
- ``history`` with ``history_size`` 1-4 and 1-6 steps of ``max_iter`` 1-4: empty, partial, full, rolling,
- ``t`` as int (lr=1), float, 0-dim tensor (tensor lr or strong Wolfe), ``H_diag`` int and tensor,
- float16/bfloat16/float32/float64 and complex parameters, several tensors of mixed shapes, an unused one,
- lr > 1, a line search cut short by ``max_eval``, a ``diverged`` run (NaN/inf produced by the optimizer).

Every problem is written as source text (:attr:`FuzzProblem.source`) that is both executed here and copied
verbatim into standalone reproductions (:mod:`lbfgs_verify.engine.repro`), so a reproduction needs only torch.
Declared lacks (:mod:`lbfgs_verify.engine.capabilities`) are honoured: a lacked feature is never drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.engine.runs import Scenario
from lbfgs_verify.problems.base import Problem

__all__ = ["FUZZ_PROBLEMS", "STATE_KINDS", "FuzzProblem", "FuzzState", "fuzz_states"]

_REAL_DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class FuzzProblem:
    """A tiny objective given as source text defining ``objective(params)``, and its start values.

    Attributes:
        name: short identifier.
        source: Python source defining ``objective(params) -> 0-dim tensor`` (only ``torch`` in scope).
        start: per parameter tensor, ``(values, shape, is_complex)``; values are Python numbers built in
            float64/complex128 and cast to the drawn dtype (exact for every value used here).
        several_tensors, has_complex, has_unused, low_precision_ok: what the problem exercises.
    """

    name: str
    source: str
    start: tuple[tuple[tuple[Any, ...], tuple[int, ...], bool], ...]
    several_tensors: bool = False
    has_complex: bool = False
    has_unused: bool = False
    low_precision_ok: bool = False

    def objective(self) -> Any:
        namespace: dict[str, Any] = {"torch": torch}
        exec(compile(self.source, f"<fuzz problem {self.name}>", "exec"), namespace)
        return namespace["objective"]

    def start_tensors(self, dtype: torch.dtype) -> tuple[Tensor, ...]:
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        out = []
        for values, shape, is_complex in self.start:
            wide = torch.tensor(values, dtype=torch.complex128 if is_complex else torch.float64).reshape(shape)
            out.append(wide.to(complex_dtype if is_complex else dtype))
        return tuple(out)

    def problem(self, dtype: torch.dtype) -> Problem:
        dimension = sum(len(v) * (2 if c else 1) for v, _, c in self.start)
        return Problem(name=f"{self.name}[{str(dtype).removeprefix('torch.')}]", dimension=dimension, dtype=dtype,
                       start=self.start_tensors(dtype), objective=self.objective(),
                       source="lbfgs_verify.fuzz.states (fuzz problem)")


FUZZ_PROBLEMS: dict[str, FuzzProblem] = {p.name: p for p in (
    FuzzProblem(
        "rosenbrock",
        "def objective(params):\n"
        "    x = params[0]\n"
        "    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2\n",
        (((-1.2, 1.0), (2,), False),),
    ),
    FuzzProblem(
        "separable_quadratic",
        "def objective(params):\n"
        "    x = params[0]\n"
        "    w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=x.dtype)\n"
        "    c = torch.tensor([0.5, -1.0, 2.0, 1.5], dtype=x.dtype)\n"
        "    return (w * (x - c) ** 2).sum()\n",
        (((3.0, 3.0, -2.0, 0.0), (4,), False),),
        low_precision_ok=True,
    ),
    FuzzProblem(
        "coupled_tensors",
        "def objective(params):\n"
        "    x = torch.cat([p.reshape(-1) for p in params])\n"
        "    w = torch.linspace(1.0, 5.0, x.numel(), dtype=x.dtype)\n"
        "    return (w * x**2).sum() + 0.1 * (x**4).sum() + (x[:-1] * x[1:]).sum() - 0.3 * x.sum()\n",
        (((0.5, -1.25, 2.0), (3,), False), ((1.5, -0.75, 0.25, 1.0), (2, 2), False), ((0.75,), (), False)),
        several_tensors=True,
    ),
    FuzzProblem(
        "complex_and_real",
        "def objective(params):\n"
        "    z, r = params\n"
        "    a = torch.tensor([[1.0 + 0.5j, -0.25j, 0.5], [0.25, 2.0 - 1.0j, 0.75j]], dtype=z.dtype)\n"
        "    b = torch.tensor([1.0 - 1.0j, 0.5 + 0.25j], dtype=z.dtype)\n"
        "    residual = a @ z - b\n"
        "    return (residual.abs() ** 2).sum() + ((r - 1) ** 2).sum() + 0.1 * (z.real.sum() * r[0]) ** 2\n",
        (((0.5 - 0.25j, -0.5 + 0.5j, 0.25 + 0.0j), (3,), True), ((2.0, -1.0), (2,), False)),
        several_tensors=True, has_complex=True,
    ),
    FuzzProblem(
        "tanh_regression_with_unused",
        "def objective(params):\n"
        "    w, b, unused = params\n"
        "    x = torch.linspace(-1.0, 1.0, 6, dtype=w.dtype).reshape(3, 2)\n"
        "    y = torch.tensor([0.5, -0.25, 1.0], dtype=w.dtype)\n"
        "    return ((torch.tanh(x @ w) + b - y) ** 2).mean()\n",
        (((0.25, -0.5), (2,), False), ((0.1,), (1,), False), ((0.5, 0.5), (2,), False)),
        several_tensors=True, has_unused=True,
    ),
)}
"""The problems states are reached on (tiny, so that a case costs milliseconds)."""

STATE_KINDS: tuple[str, ...] = (
    "before-first-step", "early-return", "history", "tensor-lr", "lr-above-one", "truncated-line-search",
    "diverged",
)
"""The kinds of reachable state drawn (see the module docstring)."""


@dataclass(frozen=True)
class FuzzState:
    """A reachable state: run ``scenario`` for ``split`` steps, take the state, continue ``n_after`` steps.

    ``scenario.steps == split + n_after``; ``problem`` is the :class:`FuzzProblem` (its source feeds
    reproductions).
    """

    kind: str
    problem: FuzzProblem
    scenario: Scenario
    split: int
    n_after: int

    def describe(self) -> str:
        return f"{self.kind}: {self.scenario.describe()}, state taken after {self.split} step(s)"

    def evidence(self) -> dict[str, Any]:
        return {"state_kind": self.kind, **self.scenario.evidence(), "split": self.split, "n_after": self.n_after}

    def __repr__(self) -> str:
        return f"FuzzState({self.describe()})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _allowed_dtypes(lacks: frozenset[str], dtypes: Sequence[torch.dtype] | None) -> list[torch.dtype]:
    chosen = [d for name, d in _REAL_DTYPES.items() if name not in lacks]
    if dtypes is not None:
        chosen = [d for d in chosen if d in dtypes]
    return chosen


def _allowed_problems(lacks: frozenset[str], dtype: torch.dtype) -> list[FuzzProblem]:
    low = dtype in (torch.float16, torch.bfloat16)
    out = []
    for p in FUZZ_PROBLEMS.values():
        if (low and not p.low_precision_ok) or (p.has_complex and "complex" in lacks):
            continue
        if (p.several_tensors and "several_tensors" in lacks) or (p.has_unused and "no_grad_params" in lacks):
            continue
        out.append(p)
    return out


@st.composite
def fuzz_states(
    draw: st.DrawFn,
    lacks: frozenset[str] = frozenset(),
    *,
    dtypes: Sequence[torch.dtype] | None = None,
    kinds: Sequence[str] = STATE_KINDS,
    max_after: int = 3,
) -> FuzzState:
    """A :class:`FuzzState` of a drawn kind; nothing in ``lacks`` (capability names) is ever drawn.

    ``dtypes`` restricts the parameter dtype (the ``dtype`` route draws only dtypes it can widen).
    """
    allowed = _allowed_dtypes(lacks, dtypes)
    if not allowed:
        raise ValueError("no parameter dtype left to draw: every allowed dtype is declared lacking")
    line_searches = [ls for ls, feature in ((None, "no_line_search"), ("strong_wolfe", "strong_wolfe"))
                     if feature not in lacks]
    if not line_searches:
        raise ValueError("no line search left to draw: both strong_wolfe and no_line_search are declared lacking")
    kind_choices = [k for k in kinds if not (k in ("tensor-lr", "lr-above-one", "diverged") and "lr" in lacks)
                    and not (k == "truncated-line-search" and ("max_eval" in lacks or "strong_wolfe" in lacks))
                    and not (k == "diverged" and "no_line_search" in lacks)]
    kind = draw(st.sampled_from(kind_choices))
    dtype = draw(st.sampled_from(allowed))
    problem = draw(st.sampled_from(_allowed_problems(lacks, dtype)))
    hp: dict[str, Any] = {"max_iter": draw(st.integers(1, 4)), "history_size": draw(st.integers(1, 4)),
                          "line_search_fn": draw(st.sampled_from(line_searches))}
    if "lr" not in lacks and kind not in ("tensor-lr", "lr-above-one", "diverged"):
        lr = draw(st.sampled_from((None, 1, 0.5, 0.25)))
        if lr is not None:
            hp["lr"] = lr
    split = draw(st.integers(1, 6))
    if kind == "before-first-step":
        split = 0
    elif kind == "early-return":
        hp["tolerance_grad"] = 1e3
        split = draw(st.integers(1, 3))
    elif kind == "tensor-lr":
        tensor_dtype = draw(st.sampled_from(_allowed_dtypes(frozenset(), None)))
        hp["lr"] = torch.tensor(draw(st.sampled_from((1.0, 0.5, 0.25))), dtype=tensor_dtype)
    elif kind == "lr-above-one":
        hp["lr"] = draw(st.sampled_from((1.5, 2.0)))
    elif kind == "truncated-line-search":
        hp["line_search_fn"] = "strong_wolfe"
        hp["max_eval"] = draw(st.integers(1, 3))
        hp["max_iter"] = draw(st.integers(2, 4))
    elif kind == "diverged":
        # Without a line search a huge fixed step overflows within a few steps on Rosenbrock (measured: lr=100,
        # float32, max_iter=3 gives inf/NaN in d, H_diag, prev_flat_grad after 4 steps).
        rosenbrock = FUZZ_PROBLEMS["rosenbrock"]
        problem = rosenbrock if dtype in (torch.float32, torch.float64) else problem
        hp.update(lr=draw(st.sampled_from((100.0, 1e4))), line_search_fn=None, max_iter=3, history_size=3)
        if "no_line_search" in lacks:
            hp.pop("line_search_fn")
        split = draw(st.integers(4, 6))
    if "tolerance_change" not in lacks and draw(st.booleans()):
        hp["tolerance_change"] = 0.0
    n_after = draw(st.integers(1, max_after))
    scenario = Scenario(problem.problem(dtype), hp, split + n_after)
    return FuzzState(kind, problem, scenario, split, n_after)
