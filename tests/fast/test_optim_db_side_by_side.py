"""The reference and torch.optim.LBFGS side by side: every LBFGS config of torch's installed ``optim_db`` and the
edge configurations a drop-in must survive, compared bitwise (returned value, parameters, ``state_dict`` values,
types and key order) after every action.

The configurations follow what PyTorch's generic optimizer tests (``test/test_optim.py``) do with the
``optim_inputs_func`` of ``torch.testing._internal.common_optimizers.optim_db``: the weight/bias problem
(contiguous or not), a Conv2d+BatchNorm model that strong_wolfe drives to NaN, named parameters, state_dict
round trips. The edge configurations cover parameter layouts, hyperparameter types and edits between steps,
closures that return odd types or raise, and state interchange mid-run in both directions. Where the reference
deliberately differs (its module docstring, points 7 and 8), the configuration states the difference and the
test pins it.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("expecttest", reason="torch.testing._internal needs expecttest: pip install -e '.[dev]'")
from torch.testing._internal.common_optimizers import optim_db

from lbfgs_verify.compare.bitwise import clone_structure, first_difference
from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.reference import LBFGS

TORCH = torch.optim.LBFGS
LBFGS_INFO = next(info for info in optim_db if info.optim_cls is torch.optim.LBFGS)


# --------------------------------------------------------------------------------------------------------
# Problems (parameter layouts) and closures
# --------------------------------------------------------------------------------------------------------


@dataclass
class Problem:
    """Fresh parameters (``spec`` is what the constructor gets: tensors, (name, tensor) pairs or a group dict),
    and the loss over them (with the side effects of a model, BatchNorm statistics included)."""

    tensors: list[torch.Tensor]
    spec: Any
    loss: Callable[[], torch.Tensor]


def weight_bias(dtype: torch.dtype = torch.float32, *, contiguous: bool = True, named: bool = False,
                as_group: bool = False) -> Problem:
    """test_optim.py's generic problem: (W x + b)² summed, W 10x5, b 10 (non-contiguous views if asked)."""
    g = torch.Generator().manual_seed(0)
    if contiguous:
        weight = torch.randn(10, 5, generator=g, dtype=dtype).requires_grad_()
        bias = torch.randn(10, generator=g, dtype=dtype).requires_grad_()
    else:
        weight = torch.randn(10, 5, 2, generator=g, dtype=dtype)[..., 0].requires_grad_()
        bias = torch.randn(10, 2, generator=g, dtype=dtype)[..., 0].requires_grad_()
    x = torch.randn(5, generator=g, dtype=dtype)
    tensors = [weight, bias]
    spec: Any = [("weight", weight), ("bias", bias)] if named else tensors
    if as_group:
        spec = [{"params": spec}]
    return Problem(tensors, spec, lambda: (weight.mv(x) + bias).pow(2).sum())


def smooth(dtype: torch.dtype = torch.float64) -> Problem:
    """A smooth, non-quadratic coupled problem over two tensors: many iterations, the history fills and rolls."""
    g = torch.Generator().manual_seed(4)
    a = torch.randn(4, generator=g, dtype=dtype).requires_grad_()
    b = torch.randn(3, generator=g, dtype=dtype).requires_grad_()
    weights = torch.linspace(1.0, 4.0, 7, dtype=dtype)

    def loss() -> torch.Tensor:
        x = torch.cat([a, b])
        return (weights * x**2).sum() + 0.1 * (x**4).sum() + (x[:-1] * x[1:]).sum() - 0.3 * x.sum()

    return Problem([a, b], [a, b], loss)


def conv_batchnorm(named: bool = False) -> Problem:
    """test_optim.py's Conv2d + BatchNorm2d model (loss = output sum: unbounded below, strong_wolfe -> NaN)."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 2, 1, stride=2), torch.nn.BatchNorm2d(2, eps=1e-05, momentum=0.1))
    x = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    spec = list(model.named_parameters()) if named else list(model.parameters())
    return Problem(list(model.parameters()), spec, lambda: model(x).sum())


def layout(kind: str) -> Problem:
    """Parameter layouts beyond test_optim.py's: 0-dim, complex, mixed dtypes, unused, empty, float64."""
    g = torch.Generator().manual_seed(3)
    if kind == "scalar":
        p = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
        return Problem([p], [p], lambda: (p - 1) ** 4 + p**2)
    if kind == "complex":
        z = torch.randn(3, generator=g, dtype=torch.complex128).requires_grad_()
        r = torch.randn(2, generator=g, dtype=torch.float64).requires_grad_()
        return Problem([z, r], [z, r], lambda: ((z - (1 + 2j)).abs() ** 2).sum() + (r**2).sum() + (r[0] * z.abs()[0]))
    if kind == "mixed_dtypes":
        a = torch.randn(4, generator=g, dtype=torch.float32).requires_grad_()
        b = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_()
        return Problem([a, b], [a, b],
                       lambda: (a.double() ** 2).sum() * 2 + ((b - 1) ** 2).sum() + a.double()[0] * b[0])
    if kind == "unused_and_empty":
        a = torch.randn(5, generator=g, dtype=torch.float64).requires_grad_()
        unused = torch.ones(2, dtype=torch.float64, requires_grad=True)
        empty = torch.zeros(0, dtype=torch.float64, requires_grad=True)
        return Problem([a, unused, empty], [a, unused, empty], lambda: ((a - 0.5) ** 4).sum() + (a**2).sum())
    if kind == "no_grad_params":
        params = [torch.randn(2, 3, generator=g) for _ in range(2)]
        return Problem(params, params, lambda: torch.tensor([1.0]))
    raise ValueError(kind)


def closure_for(opt: Any, problem: Problem, kind: str, calls: list[int]) -> Callable[[], Any]:
    """A closure returning the loss as ``kind`` says; ``raise_at_N`` raises at its N-th call (1-based)."""
    def closure() -> Any:
        calls[0] += 1
        if kind.startswith("raise_at_") and calls[0] == int(kind.rsplit("_", 1)[1]):
            raise RuntimeError("closure failed on purpose")
        opt.zero_grad()
        loss = problem.loss()
        if loss.requires_grad:
            loss.backward()
        if kind == "float":
            return float(loss)
        if kind == "int":
            return int(float(loss))
        if kind == "numpy":
            return np.float64(float(loss))
        if kind == "one_element":
            return loss.detach().reshape(1)
        if kind == "none":
            return None
        return loss

    return closure


# --------------------------------------------------------------------------------------------------------
# Scripts: what is done to the optimizer, and how both runs are recorded
# --------------------------------------------------------------------------------------------------------

Action = tuple[Any, ...]
STEP: Action = ("step", "tensor")


def steps(n: int, kind: str = "tensor") -> list[Action]:
    return [("step", kind)] * n


@dataclass
class Config:
    """One side-by-side case. ``differences`` maps an action index to the (torch, reference) exception names
    where the reference deliberately raises another type (module docstring of the reference, point 8)."""

    name: str
    problem: Callable[[], Problem]
    kwargs: Callable[[], dict[str, Any]]
    script: list[Action]
    differences: dict[int, tuple[str, str]] = field(default_factory=dict)


def play(cls: type, config: Config, *, swap_to: tuple[type, ...] = (), reload: bool = True) -> list[Any]:
    """Run ``config.script``; after each action record outcome, parameters, state_dict and state key order.

    ``("interchange",)`` saves the state_dict (deep-copied), builds a new optimizer of the next class in
    ``swap_to`` (cycling; ``cls`` when empty) on the same parameters and loads it (only recorded when not
    ``reload``: the uninterrupted run).
    """
    problem = config.problem()
    opt = cls(problem.spec, **config.kwargs())
    swaps = list(swap_to) or [cls]
    events = []
    calls = [0]
    for index, action in enumerate(config.script):
        outcome: Any
        try:
            if action[0] == "step":
                calls[0] = 0
                returned = opt.step(closure_for(opt, problem, action[1], calls))
                outcome = ("returned", type(returned).__name__, clone_structure(returned))
            elif action[0] == "step_none":
                outcome = ("returned", opt.step(None))
            elif action[0] == "edit":
                opt.param_groups[0][action[1]] = action[2]() if callable(action[2]) else action[2]
                outcome = ("edited",)
            elif action[0] == "add_param_group":
                opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)]})
                outcome = ("added",)
            elif action[0] == "interchange" and not reload:
                outcome = ("loaded",)
            elif action[0] == "interchange":
                saved = copy.deepcopy(opt.state_dict())
                opt = swaps.pop(0)(problem.spec, **config.kwargs())
                swaps.append(type(opt))
                with warnings.catch_warnings():  # a diverged state loads with a RuntimeWarning (reference only)
                    warnings.simplefilter("ignore", RuntimeWarning)
                    opt.load_state_dict(saved)
                outcome = ("loaded",)
            else:
                raise ValueError(action)
        except Exception as exc:  # the exception type is part of the behaviour compared
            name = type(exc).__name__
            if index in config.differences and cls is LBFGS:
                torch_name, reference_name = config.differences[index]
                assert name == reference_name, f"{config.name}: action {index} raised {name}, not {reference_name}"
                name = torch_name
            outcome = ("raised", name)
        first = problem.tensors[0]
        order = list(opt.state[first]) if first in opt.state else None
        events.append((index, action[0], outcome, [p.detach().clone() for p in problem.tensors],
                       clone_structure(opt.state_dict()), order))
    return events


def torch_load_casts(config: Config) -> bool:
    """Whether torch's load changes the state's dtypes here (reference docstring, difference 6): it casts every
    state tensor to ``params[0]``'s dtype, so a tensor lr of another dtype (``t``) or parameters of mixed
    dtypes (the flat vectors) come back with other bits; the reference keeps them."""
    problem, kwargs = config.problem(), config.kwargs()
    first = problem.tensors[0]
    if not first.is_floating_point():
        return False
    lr = kwargs.get("lr")
    flat = torch.cat([(torch.view_as_real(p) if p.is_complex() else p).detach().reshape(-1) for p in problem.tensors])
    return (isinstance(lr, torch.Tensor) and lr.dtype != first.dtype) or flat.dtype != first.dtype


def assert_side_by_side(config: Config) -> None:
    """Reference alone, and reference <-> torch interchanged, equal torch alone after every action.

    Where torch's own load changes dtypes (:func:`torch_load_casts`), the reference reloading itself must equal
    torch's *uninterrupted* run instead (what defect 6's fix promises) and torch is not reloaded."""
    casts = torch_load_casts(config)
    with comparison_environment(1):
        expected = play(TORCH, config, reload=not casts)
        actual = play(LBFGS, config)
        difference = first_difference(expected, actual, f"{config.name} (torch vs reference)")
        assert difference is None, str(difference)
        if not casts and any(a[0] == "interchange" for a in config.script):
            mixed = play(LBFGS, config, swap_to=(TORCH, LBFGS))
            difference = first_difference(expected, mixed, f"{config.name} (reference -> torch -> reference)")
            assert difference is None, str(difference)


# --------------------------------------------------------------------------------------------------------
# optim_db: every LBFGS optim_inputs_func config, the ways test_optim.py uses them
# --------------------------------------------------------------------------------------------------------

OPTIM_DB_INPUTS = LBFGS_INFO.optim_inputs_func(device="cpu")
MID_RUN = [*steps(3), ("interchange",), *steps(2), ("interchange",), *steps(2)]


def _db_kwargs(index: int) -> Callable[[], dict[str, Any]]:
    return lambda: copy.deepcopy(LBFGS_INFO.optim_inputs_func(device="cpu")[index].kwargs)


@pytest.mark.parametrize("index", range(len(OPTIM_DB_INPUTS)), ids=[i.desc for i in OPTIM_DB_INPUTS])
@pytest.mark.parametrize(("problem_name", "problem"), [
    ("weight_bias_f32", lambda: weight_bias()),
    ("weight_bias_noncontiguous", lambda: weight_bias(contiguous=False)),
    ("weight_bias_f64_named", lambda: weight_bias(torch.float64, named=True)),
    ("conv_batchnorm", lambda: conv_batchnorm()),
    ("conv_batchnorm_named", lambda: conv_batchnorm(named=True)),
])
def test_optim_db_config_side_by_side(index: int, problem_name: str, problem: Callable[[], Problem]) -> None:
    config = Config(f"{OPTIM_DB_INPUTS[index].desc}/{problem_name}", problem, _db_kwargs(index), MID_RUN)
    assert_side_by_side(config)


def test_optim_db_covers_what_the_side_by_side_test_assumes() -> None:
    """The installed optim_db still describes LBFGS as this test reads it (step needs a closure, one group)."""
    assert LBFGS_INFO.step_requires_closure and not LBFGS_INFO.supports_param_groups
    assert len(OPTIM_DB_INPUTS) >= 5 and all(i.params is None for i in OPTIM_DB_INPUTS)


def test_conv_batchnorm_with_strong_wolfe_really_diverges() -> None:
    """The diverged-state path is exercised: the strong_wolfe run of the Conv+BN model ends non-finite."""
    problem = conv_batchnorm()
    opt = LBFGS(problem.spec, line_search_fn="strong_wolfe")
    calls = [0]
    for _ in range(3):
        opt.step(closure_for(opt, problem, "tensor", calls))
    state = opt.state[problem.tensors[0]]
    assert not bool(torch.isfinite(state["d"]).all()) or not bool(torch.isfinite(state["prev_flat_grad"]).all())


# --------------------------------------------------------------------------------------------------------
# Edge configurations (issue point 5)
# --------------------------------------------------------------------------------------------------------

WB64 = smooth
EDGE_CONFIGS = [
    # parameter layouts
    *(Config(f"layout_{kind}", lambda kind=kind: layout(kind), lambda: {"history_size": 3, "max_iter": 4},
             [*steps(2), ("interchange",), *steps(2)]) for kind in ("scalar", "complex", "unused_and_empty")),
    Config("layout_mixed_dtypes", lambda: layout("mixed_dtypes"), lambda: {"history_size": 3, "max_iter": 4},
           [*steps(2), ("interchange",), *steps(2)]),
    Config("layout_no_grad_params", lambda: layout("no_grad_params"), lambda: {}, [*steps(2), ("interchange",)]),
    Config("layout_param_group_dict", lambda: weight_bias(as_group=True), lambda: {"max_iter": 3},
           [*steps(2), ("interchange",), *steps(1)]),
    Config("layout_named_group_dict", lambda: weight_bias(named=True, as_group=True), lambda: {"max_iter": 3},
           [*steps(2), ("interchange",), *steps(1)]),
    # hyperparameter types
    Config("lr_numpy_float32", WB64, lambda: {"lr": np.float32(0.5), "max_iter": 3}, [*steps(2), ("interchange",),
                                                                                       *steps(1)]),
    Config("lr_integer_tensor", WB64, lambda: {"lr": torch.tensor(1), "max_iter": 3}, [*steps(2), ("interchange",),
                                                                                      *steps(1)]),
    Config("lr_float64_tensor", WB64, lambda: {"lr": torch.tensor(0.5, dtype=torch.float64), "max_iter": 3},
           [*steps(2), ("interchange",), *steps(1)]),
    Config("lr_one_element_1d_tensor", WB64, lambda: {"lr": torch.tensor([0.5], dtype=torch.float64)}, steps(2)),
    Config("lr_inf", WB64, lambda: {"lr": float("inf"), "max_iter": 2}, [*steps(2), ("interchange",)]),
    Config("max_iter_numpy_int64", WB64, lambda: {"max_iter": np.int64(4)}, [*steps(2), ("interchange",)]),
    Config("max_iter_float", WB64, lambda: {"max_iter": 4.0}, [*steps(2), ("interchange",), *steps(1)]),
    Config("max_iter_fractional", WB64, lambda: {"max_iter": 2.5}, steps(2)),
    Config("max_iter_zero", WB64, lambda: {"max_iter": 0}, [*steps(2), ("interchange",), *steps(1)]),
    Config("max_iter_zero_then_five", WB64, lambda: {"max_iter": 0},
           [*steps(1), ("edit", "max_iter", 5), *steps(1), ("interchange",), *steps(1)]),
    Config("max_eval_zero", WB64, lambda: {"max_eval": 0}, [*steps(2), ("interchange",), *steps(1)]),
    Config("max_eval_float", WB64, lambda: {"max_eval": 7.0, "line_search_fn": "strong_wolfe"}, steps(2)),
    Config("history_size_numpy_int64", WB64, lambda: {"history_size": np.int64(2), "max_iter": 6},
           [*steps(2), ("interchange",), *steps(1)]),
    Config("tolerances_tensors", WB64, lambda: {"tolerance_grad": torch.tensor(1e-5),
                                                "tolerance_change": torch.tensor(1e-9, dtype=torch.float64)},
           [*steps(2), ("interchange",), *steps(1)]),
    Config("tolerance_grad_minus_inf", WB64, lambda: {"tolerance_grad": -float("inf"), "max_iter": 3},
           [*steps(2), ("interchange",), *steps(1)]),
    Config("tolerance_grad_inf", WB64, lambda: {"tolerance_grad": float("inf")}, [*steps(2), ("interchange",)]),
    Config("tolerance_change_numpy", WB64, lambda: {"tolerance_change": np.float64(1e-3)}, steps(2)),
    # hyperparameter edits between steps
    Config("edit_lr_and_line_search", WB64, lambda: {"max_iter": 3},
           [*steps(1), ("edit", "lr", 0.25), *steps(1), ("edit", "line_search_fn", "strong_wolfe"), *steps(1),
            ("edit", "lr", lambda: torch.tensor(0.5, dtype=torch.float64)), *steps(1)]),
    Config("edit_max_iter_tolerances", WB64, lambda: {"max_iter": 2},
           [*steps(1), ("edit", "max_iter", 7), ("edit", "tolerance_change", 0.0), *steps(1),
            ("edit", "tolerance_grad", 1e-3), *steps(1)]),
    Config("shrink_history_before_full", WB64, lambda: {"history_size": 8, "max_iter": 2},
           [*steps(2), ("edit", "history_size", 3), *steps(4), ("interchange",), *steps(1)]),
    # closures returning odd types or raising
    *(Config(f"closure_returns_{kind}", WB64, lambda: {"max_iter": 3},
             [*steps(1, kind), ("interchange",), *steps(1, kind)]) for kind in ("float", "int", "numpy",
                                                                              "one_element")),
    Config("closure_returns_none", WB64, lambda: {"max_iter": 3}, [*steps(1, "none"), *steps(1)]),
    Config("closure_raises_at_first_call", WB64, lambda: {"max_iter": 3}, [*steps(1, "raise_at_1"), *steps(2)]),
    Config("closure_raises_in_first_iteration", WB64, lambda: {"max_iter": 3},
           [*steps(1, "raise_at_2"), ("interchange",), *steps(1), *steps(1)]),
    Config("closure_raises_in_line_search", WB64, lambda: {"max_iter": 4, "line_search_fn": "strong_wolfe"},
           [*steps(1), *steps(1, "raise_at_3"), ("interchange",), *steps(2)]),
    Config("step_none", WB64, lambda: {}, [("step_none",), ("interchange",), *steps(1)]),
    # add_param_group: torch raises AssertionError in step(), the reference ValueError (point 8)
    Config("add_param_group_then_step", WB64, lambda: {"max_iter": 2},
           [*steps(1), ("add_param_group",), *steps(1), ("interchange",), *steps(1)],
           differences={2: ("AssertionError", "ValueError"), 4: ("AssertionError", "ValueError")}),
]


@pytest.mark.parametrize("config", EDGE_CONFIGS, ids=lambda c: c.name)
def test_edge_configuration_side_by_side(config: Config) -> None:
    assert_side_by_side(config)


def test_edge_configurations_reach_the_paths_they_name() -> None:
    """The raising closures really leave torch's half-updated state (counters only), and the closure that
    raises in the line search leaves the state a later step continues from."""
    events = play(LBFGS, next(c for c in EDGE_CONFIGS if c.name == "closure_raises_in_first_iteration"))
    assert events[0][2] == ("raised", "RuntimeError")
    assert set(events[0][4]["state"][0]) == {"func_evals", "n_iter"} and events[0][4]["state"][0]["n_iter"] == 1
    assert events[2][2] == ("raised", "TypeError")  # the next iterating step cannot continue, as in torch
    events = play(LBFGS, next(c for c in EDGE_CONFIGS if c.name == "shrink_history_before_full"))
    final = events[-1][4]
    assert len(final["state"][0]["old_dirs"]) == 3 and len(final["state"][0]["al"]) == 8  # rolled at 3, al kept
