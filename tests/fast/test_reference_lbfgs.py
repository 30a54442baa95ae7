"""The reference LBFGS is a bitwise twin of torch.optim.LBFGS, its state is interchangeable with torch's,
and it is safe where torch 2.13 is not (each safety point is checked beside torch's own behaviour)."""

from __future__ import annotations

import copy
import io
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import assume, example, given, note
from hypothesis import strategies as st

from lbfgs_verify.compare.bitwise import clone_structure, first_difference, shares_storage
from lbfgs_verify.reference import LBFGS, two_loop_direction

# --------------------------------------------------------------------------------------------------------
# Generated problems and hyperparameters
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmallProblem:
    """A smooth non-quadratic problem over several tensors; optionally a complex one and one without grad."""

    seed: int
    sizes: tuple[int, ...]
    dtype: torch.dtype
    with_complex: bool
    with_unused: bool
    at_optimum: bool = False

    def start(self) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        params = [torch.randn(n, generator=g, dtype=torch.float64).to(self.dtype) for n in self.sizes]
        if self.at_optimum:
            params = [torch.zeros_like(p) for p in params]
        if self.with_complex:
            cdtype = torch.complex64 if self.dtype == torch.float32 else torch.complex128
            params.append(torch.randn(2, generator=g, dtype=cdtype))
        if self.with_unused:
            params.append(torch.ones(3, dtype=self.dtype))
        return params

    def loss(self, params: list[torch.Tensor]) -> torch.Tensor:
        used = params[: len(self.sizes)]
        x = torch.cat(used)
        weights = torch.linspace(1.0, 4.0, x.numel(), dtype=x.dtype)
        value = (weights * x**2).sum() + 0.1 * (x**4).sum()
        if not self.at_optimum:
            value = value + (x[:-1] * x[1:]).sum() - x.sum() * 0.3
        if self.with_complex:
            z = params[len(self.sizes)]
            value = value + ((z - (1 + 2j)).abs() ** 2).sum() + 0.05 * (z.abs() ** 4).sum()
        return value


@st.composite
def small_problems(draw: Any) -> SmallProblem:
    return SmallProblem(
        seed=draw(st.integers(0, 2**16)),
        sizes=tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))),
        dtype=draw(st.sampled_from([torch.float32, torch.float64])),
        with_complex=draw(st.booleans()),
        with_unused=draw(st.booleans()),
        at_optimum=draw(st.integers(0, 9)) == 0,  # one in ten starts at the optimum: early return
    )


@st.composite
def hyperparameters(draw: Any) -> dict[str, Any]:
    lr_kind = draw(st.sampled_from(["int", "float", "tensor"]))
    lr_value = draw(st.sampled_from([0.25, 0.5, 1.0, 1.5]))
    lr: Any = {"int": 1, "float": lr_value, "tensor": torch.tensor(lr_value)}[lr_kind]
    max_iter = draw(st.integers(1, 25))
    hyper: dict[str, Any] = {
        "lr": lr,
        "max_iter": max_iter,
        "history_size": draw(st.integers(1, 6) | st.just(100)),
        "line_search_fn": draw(st.sampled_from([None, "strong_wolfe"])),
        "tolerance_grad": draw(st.sampled_from([1e-7, 0.0, 1e-3])),
        "tolerance_change": draw(st.sampled_from([1e-9, 0.0, 1e-4])),
    }
    if draw(st.booleans()):
        hyper["max_eval"] = draw(st.integers(1, 40))
    return hyper


def run(cls: type, problem: SmallProblem, hyper: dict[str, Any], n_steps: int, *,
        params: list[torch.Tensor] | None = None, state: dict[str, Any] | None = None,
        load_into: Callable[[Any, dict[str, Any]], None] | None = None) -> tuple[list[Any], Any, list[torch.Tensor]]:
    """Record (returned loss, params, state_dict snapshot) after each of ``n_steps`` steps."""
    if params is None:
        params = [t.clone().requires_grad_(True) for t in problem.start()]
    opt = cls(params, **copy.deepcopy(hyper))
    if state is not None:
        opt.load_state_dict(state)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = problem.loss(params)
        value.backward()
        return value

    record = []
    for _ in range(n_steps):
        returned = opt.step(closure)
        record.append((float(returned.detach()), [p.detach().clone() for p in params],
                       clone_structure(opt.state_dict())))
    return record, opt, params


def assert_same(expected: Any, actual: Any, what: str) -> None:
    diff = first_difference(expected, actual, what)
    assert diff is None, f"{what} differs: {diff}"


def torch_save_load(state_dict: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# --------------------------------------------------------------------------------------------------------
# Bitwise twin
# --------------------------------------------------------------------------------------------------------


@given(problem=small_problems(), hyper=hyperparameters(), n_steps=st.integers(1, 8))
def test_bitwise_equal_to_torch_after_every_step(problem: SmallProblem, hyper: dict[str, Any], n_steps: int) -> None:
    """Params, returned loss and state_dict (values and types) agree to the bit after every step()."""
    note(f"problem={problem} hyperparameters={hyper} steps={n_steps}")
    expected, _, _ = run(torch.optim.LBFGS, problem, hyper, n_steps)
    actual, _, _ = run(LBFGS, problem, hyper, n_steps)
    for k, (e, a) in enumerate(zip(expected, actual, strict=True)):
        assert_same(e, a, f"step {k} (returned, params, state_dict)")


def test_full_and_rolling_histories_are_exercised() -> None:
    """The generated configurations really roll the history (more pairs than history_size)."""
    problem = SmallProblem(seed=1, sizes=(4, 3), dtype=torch.float64, with_complex=True, with_unused=True)
    hyper = {"history_size": 2, "max_iter": 10, "line_search_fn": "strong_wolfe"}
    record, opt, _ = run(LBFGS, problem, hyper, 1)
    assert len(opt.lbfgs_state.old_dirs) == 2 and opt.lbfgs_state.n_iter > 3
    expected, _, _ = run(torch.optim.LBFGS, problem, hyper, 1)
    assert_same(expected, record, "rolling history run")


def _torch_two_loop(flat_grad: torch.Tensor, old_dirs: list[torch.Tensor], old_stps: list[torch.Tensor],
                    ro: list[Any], H_diag: Any, al: list[Any]) -> torch.Tensor:
    """torch 2.13's two-loop recursion as torch/optim/lbfgs.py writes it (tensor alphas)."""
    q = flat_grad.neg()
    for i in range(len(old_dirs) - 1, -1, -1):
        al[i] = old_stps[i].dot(q) * ro[i]
        q.add_(old_dirs[i], alpha=-al[i])
    r = torch.mul(q, H_diag)
    for i in range(len(old_dirs)):
        be_i = old_dirs[i].dot(r) * ro[i]
        r.add_(old_stps[i], alpha=al[i] - be_i)
    return r


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40), m=st.integers(1, 12),
       dtype=st.sampled_from([torch.float64, torch.float32, torch.bfloat16, torch.float16]),
       ro_dtype=st.sampled_from([None, torch.float64, torch.float32]), spread=st.integers(0, 40),
       poison=st.sampled_from([None, math.nan, -math.nan, math.inf, -math.inf]), poisoned=st.integers(0, 12))
@example(seed=0, n=3, m=2, dtype=torch.float64, ro_dtype=None, spread=0, poison=math.nan, poisoned=12)
def test_two_loop_scalar_shortcut_keeps_torchs_bits(seed: int, n: int, m: int, dtype: torch.dtype,
                                                   ro_dtype: torch.dtype | None, spread: int, poison: float | None,
                                                   poisoned: int) -> None:
    """two_loop_direction forms α_i - β_i as Python floats for float32/float64 (one tensor op less per pair): the
    direction and every stored α_i stay torch's bits, for pairs whose scales differ by up to 2**spread (so that
    α_i - β_i needs the correct rounding), in every dtype, with ρ of another dtype (the tensor fallback), and with
    a NaN or infinity in the gradient or a pair (NaN signs and payloads are the kernel's)."""
    g = torch.Generator().manual_seed(seed)
    limit = 8 if dtype in (torch.bfloat16, torch.float16) else spread

    def scaled(k: int) -> torch.Tensor:
        return (torch.randn(n, generator=g, dtype=torch.float64) * 2.0 ** (k % (limit + 1) - limit // 2)).to(dtype)

    old_stps = [scaled(3 * i) for i in range(m)]
    old_dirs = [s * (1 + torch.rand(n, generator=g, dtype=torch.float64)).to(dtype) for s in old_stps]
    ro = [(1.0 / y.dot(s)).to(ro_dtype or dtype) for y, s in zip(old_dirs, old_stps, strict=True)]
    flat_grad, H_diag = scaled(7), old_dirs[-1].dot(old_stps[-1]) / old_dirs[-1].dot(old_dirs[-1])
    if poison is not None:  # the gradient (poisoned >= m) or one stored step
        (flat_grad if poisoned >= m else old_stps[poisoned])[seed % n] = poison
    note(f"dtype={dtype} ro dtype={ro[0].dtype} n={n} m={m}")
    expected_al: list[Any] = [None] * m
    actual_al: list[Any] = [None] * m
    expected = _torch_two_loop(flat_grad, old_dirs, old_stps, ro, H_diag, expected_al)
    actual = two_loop_direction(flat_grad, old_dirs, old_stps, ro, H_diag, actual_al)
    assert_same(expected, actual, "direction")
    assert_same(expected_al, actual_al, "al")


def test_same_constructor_defaults_as_torch() -> None:
    p = [torch.zeros(2, requires_grad=True)]
    ours, theirs = LBFGS(p).state_dict(), torch.optim.LBFGS(p).state_dict()
    assert_same(theirs, ours, "fresh state_dict")


# --------------------------------------------------------------------------------------------------------
# Interchangeable state
# --------------------------------------------------------------------------------------------------------


@given(problem=small_problems(), hyper=hyperparameters(), split=st.integers(1, 4), rest=st.integers(1, 4),
       direction=st.sampled_from(["torch->reference", "reference->torch"]))
def test_state_interchange_mid_run_continues_bitwise(problem: SmallProblem, hyper: dict[str, Any], split: int,
                                                     rest: int, direction: str) -> None:
    """A torch state_dict loads into the reference (and back) mid-run, through torch.save/torch.load
    (weights_only=True), and the continuation equals the uninterrupted run."""
    note(f"problem={problem} hyperparameters={hyper} split={split} direction={direction}")
    lr = hyper.get("lr")
    # torch's own load casts a tensor `t` to the parameters' dtype (facts defect 6, tested on its own in
    # test_low_precision_params_with_tensor_lr_resume_bitwise): with torch as destination and an lr tensor of
    # another dtype, the state would differ in t's dtype for torch's reasons, not the reference's.
    assume(not (direction == "reference->torch" and isinstance(lr, torch.Tensor) and lr.dtype != problem.dtype))
    source_cls, dest_cls = (torch.optim.LBFGS, LBFGS) if direction == "torch->reference" else (LBFGS, torch.optim.LBFGS)
    uninterrupted, _, _ = run(torch.optim.LBFGS, problem, hyper, split + rest)
    first, _, params = run(source_cls, problem, hyper, split)
    saved = torch_save_load(first[-1][2])
    fresh = [p.detach().clone().requires_grad_(True) for p in params]
    second, _, _ = run(dest_cls, problem, hyper, rest, params=fresh, state=saved)
    for k, (e, a) in enumerate(zip(uninterrupted[split:], second, strict=True)):
        assert_same(e, a, f"step {split + k} after the {direction} load")


# --------------------------------------------------------------------------------------------------------
# Safe where torch is not (torch's behaviour checked beside ours)
# --------------------------------------------------------------------------------------------------------

QUAD = SmallProblem(seed=3, sizes=(4, 2), dtype=torch.float64, with_complex=False, with_unused=False)
HYPER = {"history_size": 3, "max_iter": 4, "line_search_fn": "strong_wolfe"}


def _state_after(cls: type, steps: int = 2) -> tuple[Any, dict[str, Any]]:
    _, opt, _ = run(cls, QUAD, HYPER, steps)
    return opt, opt.state_dict()


def _corrupt(sd: dict[str, Any], mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    sd = clone_structure(sd)
    mutate(sd)
    return sd


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda sd: sd["state"][0].__setitem__(key, value)


CORRUPTIONS: dict[str, tuple[Callable[[dict[str, Any]], None], type, str]] = {
    "missing state key": (lambda sd: sd["state"][0].pop("ro"), ValueError, "ro"),
    "d wrong size": (lambda sd: sd["state"][0].__setitem__("d", torch.zeros(5, dtype=torch.float64)), ValueError, "d"),
    "d not a tensor": (_set("d", [0.0] * 6), TypeError, "d"),
    "d None among the others": (_set("d", None), TypeError, "'d'"),
    "t negative": (_set("t", -0.5), ValueError, "'t'"),
    "ro not a tensor": (lambda sd: sd["state"][0]["ro"].__setitem__(0, 0.5), TypeError, "['ro'][0]"),
    "n_iter float": (_set("n_iter", 2.0), TypeError, "n_iter"),
    "n_iter negative": (_set("func_evals", -1), ValueError, "func_evals"),
    "history lengths differ": (lambda sd: sd["state"][0]["ro"].pop(), ValueError, "equal lengths"),
    "history_size zero": (lambda sd: sd["param_groups"][0].__setitem__("history_size", 0), ValueError,
                          "history_size"),
    "al not a list": (_set("al", 3), TypeError, "'al'"),
    "al entry a float": (lambda sd: sd["state"][0]["al"].__setitem__(0, 0.5), TypeError, "['al'][0]"),
    "ro negative": (lambda sd: sd["state"][0]["ro"].__setitem__(0, torch.tensor(-1.0, dtype=torch.float64)),
                    ValueError, "['ro'][0]"),
    "H_diag int 2": (_set("H_diag", 2), ValueError, "H_diag"),
    "iteration keys without counters": (lambda sd: sd["state"][0].pop("n_iter"), ValueError, "n_iter"),
    "prev_loss str": (_set("prev_loss", "1.0"), TypeError, "prev_loss"),
    "t is a list": (_set("t", [1.0]), TypeError, "'t'"),
    "flat grad int dtype": (_set("prev_flat_grad", torch.zeros(6, dtype=torch.int64)), TypeError, "prev_flat_grad"),
    "two param groups": (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), ValueError,
                         "param_groups"),
    "param count": (lambda sd: sd["param_groups"][0].__setitem__("params", [0, 1, 2]), ValueError, "params"),
    "missing hyperparameter": (lambda sd: sd["param_groups"][0].pop("max_eval"), ValueError, "max_eval"),
    "bad line search": (lambda sd: sd["param_groups"][0].__setitem__("line_search_fn", "armijo"), ValueError,
                        "line_search_fn"),
    "negative lr": (lambda sd: sd["param_groups"][0].__setitem__("lr", -1.0), ValueError, "lr"),
    "state under wrong id": (lambda sd: sd["state"].__setitem__(7, sd["state"].pop(0)), ValueError, "[7]"),
    "missing param_groups": (lambda sd: sd.pop("param_groups"), ValueError, "param_groups"),
    "max_iter a string": (lambda sd: sd["param_groups"][0].__setitem__("max_iter", "20"), TypeError, "max_iter"),
    "t an integer tensor with a float lr": (_set("t", torch.tensor(1)), TypeError, "['t']"),
    "more pairs than history_size": (lambda sd: sd["param_groups"][0].__setitem__(
        "history_size", len(sd["state"][0]["old_dirs"]) - 1), ValueError, "['old_dirs']"),
    "al shorter than the history": (lambda sd: sd["state"][0].__setitem__(
        "al", sd["state"][0]["al"][: len(sd["state"][0]["old_dirs"]) - 1]), ValueError, "['al']"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_state_dict_is_rejected_naming_the_key_and_nothing_changes(case: str) -> None:
    mutate, error, key_text = CORRUPTIONS[case]
    _, good = _state_after(LBFGS)
    target, _ = _state_after(LBFGS, steps=1)
    before = clone_structure(target.state_dict())
    group_before = dict(target.param_groups[0])
    with pytest.raises(error) as info:
        target.load_state_dict(_corrupt(good, mutate))
    assert key_text in str(info.value), f"error {info.value!r} does not name {key_text!r}"
    assert_same(before, target.state_dict(), "state after a rejected load")
    assert target.param_groups[0] == group_before


def test_state_from_another_size_is_rejected_at_load_where_torch_loads_silently() -> None:
    """Defect 5: torch accepts the state of a 6-element problem on 5 elements and fails later in step()."""
    _, saved = _state_after(torch.optim.LBFGS)
    small = [torch.ones(4, dtype=torch.float64, requires_grad=True),
             torch.ones(1, dtype=torch.float64, requires_grad=True)]
    theirs = torch.optim.LBFGS(small, **HYPER)
    theirs.load_state_dict(saved)  # silently accepted ...

    def closure() -> torch.Tensor:
        theirs.zero_grad()
        value = (torch.cat(small) ** 2).sum()
        value.backward()
        return value

    with pytest.raises(RuntimeError, match="size"):  # ... and fails inside step() as an opaque size mismatch
        theirs.step(closure)
    with pytest.raises(ValueError, match=r"'d'.*5 elements.*got shape \(6,\)"):
        LBFGS(small, **HYPER).load_state_dict(saved)


def _live_state(opt: Any) -> dict[str, Any]:
    """The optimizer's own state objects (not a snapshot): both keep them in ``state[params[0]]``."""
    return opt.state[opt.param_groups[0]["params"][0]]


def test_loaded_optimizer_shares_no_tensor_and_source_stays_independent() -> None:
    """Defect 1 (pytorch #196083): after an in-memory load torch shares tensors; stepping the copy changes
    the source's trajectory. Ours shares nothing and the source continues as if alone."""
    for cls, should_alias in ((torch.optim.LBFGS, True), (LBFGS, False)):
        source, _ = _state_after(cls)
        params_b = [p.detach().clone().requires_grad_(True) for p in source.param_groups[0]["params"]]
        copy_b = cls(params_b, **HYPER)
        copy_b.load_state_dict(source.state_dict())
        shared = shares_storage(_live_state(copy_b), _live_state(source))
        assert bool(shared) == should_alias, f"{cls.__name__}: shared tensors {shared}"
    # behavioural check on ours: stepping the loaded copy does not disturb the source
    alone, _, _ = run(LBFGS, QUAD, HYPER, 4)
    _, source, params_a = run(LBFGS, QUAD, HYPER, 2)
    params_b = [p.detach().clone().requires_grad_(True) for p in params_a]
    run(LBFGS, QUAD, HYPER, 2, params=params_b, state=source.state_dict())
    continued = []

    def closure() -> torch.Tensor:
        source.zero_grad()
        value = QUAD.loss(params_a)
        value.backward()
        return value

    for _ in range(2):
        returned = source.step(closure)
        continued.append((float(returned.detach()), [p.detach().clone() for p in params_a],
                          clone_structure(source.state_dict())))
    assert_same(alone[2:], continued, "source trajectory after stepping a loaded copy")


def test_state_dict_is_a_snapshot() -> None:
    """Defect 2: torch's state_dict()['state'][0] is the live dict; ours does not change after later steps."""
    for cls, is_snapshot in ((torch.optim.LBFGS, False), (LBFGS, True)):
        _, opt, params = run(cls, QUAD, HYPER, 1)
        taken = opt.state_dict()
        kept = clone_structure(taken)

        def closure(opt: Any = opt, params: list[torch.Tensor] = params) -> torch.Tensor:
            opt.zero_grad()
            value = QUAD.loss(params)
            value.backward()
            return value

        opt.step(closure)
        assert (first_difference(kept, taken) is None) == is_snapshot, cls.__name__


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copied_optimizer_steps_and_continues_bitwise(how: str) -> None:
    """Defect 3: torch's copy loses _params/_numel_cache and step() raises AttributeError."""
    def duplicate(opt: Any) -> Any:
        return copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))

    _, theirs, _ = run(torch.optim.LBFGS, QUAD, HYPER, 1)
    theirs_copy = duplicate(theirs)
    with pytest.raises(AttributeError):
        params = theirs_copy.param_groups[0]["params"]
        theirs_copy.step(lambda: QUAD.loss(params))

    uninterrupted, _, _ = run(LBFGS, QUAD, HYPER, 3)
    _, ours, _ = run(LBFGS, QUAD, HYPER, 1)
    ours_copy = duplicate(ours)
    params = ours_copy.param_groups[0]["params"]

    def closure() -> torch.Tensor:
        ours_copy.zero_grad()
        value = QUAD.loss(params)
        value.backward()
        return value

    continued = []
    for _ in range(2):
        returned = ours_copy.step(closure)
        continued.append((float(returned.detach()), [p.detach().clone() for p in params],
                          clone_structure(ours_copy.state_dict())))
    assert_same(uninterrupted[1:], continued, f"continuation of a {how} copy")


@pytest.mark.parametrize("new_size", [1, 2, 6])
def test_history_size_change_between_steps(new_size: int) -> None:
    """Defect 4: torch raises IndexError on `al`; ours keeps the newest pairs and continues."""
    hyper = {"history_size": 4, "max_iter": 6}
    for cls in (torch.optim.LBFGS, LBFGS):
        _, opt, params = run(cls, QUAD, hyper, 1)
        opt.param_groups[0]["history_size"] = new_size

        def closure(opt: Any = opt, params: list[torch.Tensor] = params) -> torch.Tensor:
            opt.zero_grad()
            value = QUAD.loss(params)
            value.backward()
            return value

        if cls is torch.optim.LBFGS:
            if new_size != 4:
                with pytest.raises(IndexError):
                    opt.step(closure)
            continue
        before = list(opt.lbfgs_state.old_dirs)
        opt.step(closure)
        state = opt.lbfgs_state
        assert len(state.old_dirs) <= new_size and len(state.al) >= len(state.old_dirs)
        # the pairs that survive from before are its newest ones, in order (oldest are dropped first)
        kept = [y for y in state.old_dirs if any(y is b for b in before)]
        assert all(k is b for k, b in zip(kept, before[len(before) - len(kept):], strict=True))
        assert state.old_dirs[: len(kept)] == kept


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_params_with_tensor_lr_resume_bitwise(dtype: torch.dtype) -> None:
    """Defect 6: torch casts the float32 tensor `t` down to the params' dtype on load (0.1 -> 0.1000977 in
    bf16) and the resumed run differs; ours keeps `t`'s dtype and resumes bitwise."""
    problem = SmallProblem(seed=5, sizes=(6,), dtype=dtype, with_complex=False, with_unused=False)
    hyper = {"lr": torch.tensor(0.1), "max_iter": 3, "history_size": 5}
    outcomes = {}
    for cls in (torch.optim.LBFGS, LBFGS):
        uninterrupted, _, _ = run(cls, problem, hyper, 6)
        first, _, params = run(cls, problem, hyper, 3)
        fresh = [p.detach().clone().requires_grad_(True) for p in params]
        second, _, _ = run(cls, problem, hyper, 3, params=fresh, state=torch_save_load(first[-1][2]))
        outcomes[cls] = first_difference(uninterrupted[3:], second, "resumed")
    assert outcomes[torch.optim.LBFGS] is not None, "torch 2.13 was expected to lose the bits of t"
    assert outcomes[LBFGS] is None, f"reference resume differs: {outcomes[LBFGS]}"


def test_step_without_closure_is_a_clear_type_error() -> None:
    opt = LBFGS([torch.zeros(2, requires_grad=True)])
    with pytest.raises(TypeError, match="closure"):
        opt.step(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "error", "named"), [
    ({"history_size": 0}, ValueError, "history_size"),
    ({"history_size": 2.0}, TypeError, "history_size"),
    ({"line_search_fn": "armijo"}, ValueError, "line_search_fn"),
    ({"lr": -1.0}, ValueError, "lr"),
    ({"lr": True}, TypeError, "lr"),
    ({"lr": torch.tensor(True)}, TypeError, "lr"),
    ({"max_iter": "5"}, TypeError, "max_iter"),
    ({"max_eval": None, "max_iter": None}, TypeError, "max_iter"),
    ({"max_eval": torch.tensor(3)}, TypeError, "max_eval"),
    ({"tolerance_grad": None}, TypeError, "tolerance_grad"),
    ({"tolerance_change": "1e-9"}, TypeError, "tolerance_change"),
    ({"max_eval": 0, "line_search_fn": "strong_wolfe"}, ValueError, "max_eval"),
])
def test_bad_constructor_arguments_raise_naming_the_argument(kwargs: dict[str, Any], error: type,
                                                             named: str) -> None:
    """Deliberate difference 7: what torch cannot run with is refused at once (never by an ``assert``)."""
    with pytest.raises(error, match=named):
        LBFGS([torch.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("max_eval", [0, -1, 0.5])
def test_strong_wolfe_without_evaluations_fails_in_torch(max_eval: float) -> None:
    """Why max_eval < 1 with strong_wolfe is refused: torch's line search then fails with UnboundLocalError."""
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = torch.optim.LBFGS([p], max_eval=max_eval, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = (p**2).sum()
        value.backward()
        return value

    with pytest.raises(UnboundLocalError):
        opt.step(closure)


def test_integer_t_of_an_integer_tensor_lr_loads_and_resumes_bitwise() -> None:
    """An integer tensor lr makes ``t = lr`` an integer tensor: the optimizer's own state, so it must load (and
    resume exactly), while the same ``t`` under a float lr is rejected (the corruption case above)."""
    hyper = {"lr": torch.tensor(1), "max_iter": 2, "history_size": 3}
    uninterrupted, _, _ = run(LBFGS, QUAD, hyper, 4)
    first, _, params = run(LBFGS, QUAD, hyper, 2)
    saved = first[-1][2]
    assert saved["state"][0]["t"].dtype == torch.int64
    fresh = [p.detach().clone().requires_grad_(True) for p in params]
    second, _, _ = run(LBFGS, QUAD, hyper, 2, params=fresh, state=torch_save_load(saved))
    assert_same(uninterrupted[2:], second, "resumed with an integer t")


def test_state_dict_after_lowering_history_size_fits_it_and_resumes_bitwise() -> None:
    """history_size lowered between steps: state_dict() saves only the newest pairs (the next step drops the
    others first), so it loads under the lowered size and the continuation is the live optimizer's."""
    hyper = {"history_size": 4, "max_iter": 6}
    _, opt, params = run(LBFGS, QUAD, hyper, 1)
    assert len(opt.lbfgs_state.old_dirs) >= 3
    opt.param_groups[0]["history_size"] = 2
    saved = opt.state_dict()
    assert len(saved["state"][0]["old_dirs"]) == 2 and len(opt.lbfgs_state.old_dirs) >= 3
    assert all(torch.equal(a, b) for a, b in zip(saved["state"][0]["old_dirs"], opt.lbfgs_state.old_dirs[-2:],
                                                 strict=True))
    fresh = [p.detach().clone().requires_grad_(True) for p in params]
    resumed, _, _ = run(LBFGS, QUAD, hyper, 2, params=fresh, state=torch_save_load(saved))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = QUAD.loss(params)
        value.backward()
        return value

    live = []
    for _ in range(2):
        returned = opt.step(closure)
        live.append((float(returned.detach()), [p.detach().clone() for p in params], clone_structure(opt.state_dict())))
    assert_same(live, resumed, "resumed after history_size was lowered")


def test_negative_infinity_loads_with_a_warning_like_any_non_finite_value() -> None:
    """A sign check applies to finite values; -inf (and NaN) follow the non-finite policy (loaded, warned)."""
    _, good = _state_after(LBFGS)
    bad = clone_structure(good)
    bad["state"][0]["ro"][0] = torch.tensor(float("-inf"), dtype=torch.float64)
    target, _ = _state_after(LBFGS, steps=1)
    with pytest.warns(RuntimeWarning, match=r"\['ro\[0\]'\]"):
        target.load_state_dict(bad)


def test_nonfinite_state_loads_with_a_warning_naming_the_keys() -> None:
    """Load policy: non-finite values (a diverged run) load, with a RuntimeWarning naming the keys."""
    _, good = _state_after(LBFGS)
    bad = clone_structure(good)
    bad["state"][0]["d"][0] = float("nan")
    bad["state"][0]["old_stps"][0][1] = float("inf")
    bad["state"][0]["H_diag"] = torch.tensor(float("nan"), dtype=torch.float64)
    target, _ = _state_after(LBFGS, steps=1)
    with pytest.warns(RuntimeWarning, match=r"\['d', 'H_diag', 'old_stps\[0\]'\]"):
        target.load_state_dict(bad)
    assert_same(bad["state"], target.state_dict()["state"], "loaded non-finite state")


def test_extra_entries_are_carried_like_torch() -> None:
    """A hook's notes in the state (per parameter or top level) load as torch loads them."""
    _, good = _state_after(LBFGS)
    extra = clone_structure(good)
    extra["state"][0]["momentum"] = 1.0
    extra["state"]["note"] = {"by": "a hook"}
    extra["written_by_a_post_hook"] = True
    for cls in (torch.optim.LBFGS, LBFGS):
        target, _ = _state_after(cls, steps=1)
        target.load_state_dict(clone_structure(extra))
        saved = target.state_dict()
        assert saved["state"][0]["momentum"] == 1.0 and saved["state"]["note"] == {"by": "a hook"}, cls
        assert "written_by_a_post_hook" not in saved, cls


def test_string_in_a_parameter_state_loads_as_it_was() -> None:
    """Deliberate difference 10: torch's load rebuilds a str through ``type(value)(generator)``; ours copies it."""
    for cls, kept in ((torch.optim.LBFGS, False), (LBFGS, True)):
        opt, saved = _state_after(cls, steps=1)
        saved["state"][0]["note"] = "epoch 3"
        opt.load_state_dict(saved)
        assert (opt.state_dict()["state"][0]["note"] == "epoch 3") == kept, cls


@st.composite
def accepted_arguments(draw: Any) -> dict[str, Any]:
    """Constructor arguments of every kind torch runs with (numpy scalars, floats and 0 for counts, ±inf and
    tensor tolerances, integer and 1-d tensor lr); some combinations are refused, and then skipped."""
    import numpy as np

    kwargs: dict[str, Any] = {
        "lr": draw(st.sampled_from([1, 0.5, np.float32(0.5), np.float64(0.25), torch.tensor(0.5),
                                    torch.tensor(0.5, dtype=torch.float64), torch.tensor(1), torch.tensor([0.5]),
                                    float("inf"), 0.0])),
        "max_iter": draw(st.sampled_from([0, 1, 3, np.int64(3), 3.0, 2.5])),
        "tolerance_grad": draw(st.sampled_from([1e-7, 0.0, -float("inf"), float("inf"), torch.tensor(1e-5),
                                                np.float64(1e-6)])),
        "tolerance_change": draw(st.sampled_from([1e-9, 0.0, -float("inf"), torch.tensor(1e-9), np.float32(1e-9)])),
        "history_size": draw(st.sampled_from([1, 2, np.int64(3), 100])),
        "line_search_fn": draw(st.sampled_from([None, "strong_wolfe"])),
    }
    max_eval = draw(st.sampled_from([None, 0, 1, 5, np.int64(5), 7.0]))
    if max_eval is not None:
        kwargs["max_eval"] = max_eval
    return kwargs


@given(problem=small_problems(), kwargs=accepted_arguments(), n_steps=st.integers(1, 3))
def test_whatever_the_constructor_accepts_its_own_state_dict_loads(problem: SmallProblem, kwargs: dict[str, Any],
                                                                    n_steps: int) -> None:
    """The load policy: the optimizer's own state_dict (diverged ones included) loads, and the loaded optimizer
    continues bitwise as the original does."""
    import warnings

    note(f"problem={problem} kwargs={kwargs} steps={n_steps}")
    try:
        LBFGS([torch.zeros(1, requires_grad=True)], **copy.deepcopy(kwargs))
    except (TypeError, ValueError):
        assume(False)  # refused at construction: nothing of its own to load
    _, original, params = run(LBFGS, problem, kwargs, n_steps)
    copies = [p.detach().clone().requires_grad_(True) for p in params]
    loaded = LBFGS(copies, **copy.deepcopy(kwargs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # non-finite values: loaded, with a warning
        loaded.load_state_dict(torch_save_load(original.state_dict()) if _weights_only_safe(kwargs)
                               else copy.deepcopy(original.state_dict()))
    assert_same(clone_structure(original.state_dict()), clone_structure(loaded.state_dict()), "loaded state")
    for opt, ps in ((original, params), (loaded, copies)):
        def closure(opt: Any = opt, ps: list[torch.Tensor] = ps) -> torch.Tensor:
            opt.zero_grad()
            value = problem.loss(ps)
            value.backward()
            return value

        opt.step(closure)
    assert_same([p.detach() for p in params], [p.detach() for p in copies], "parameters after the next step")
    assert_same(clone_structure(original.state_dict()), clone_structure(loaded.state_dict()), "state after")


def _weights_only_safe(kwargs: dict[str, Any]) -> bool:
    """torch.load(weights_only=True) refuses numpy scalars; those dicts go through copy.deepcopy instead."""
    import numpy as np

    return not any(isinstance(v, np.generic) for v in kwargs.values())


@pytest.mark.parametrize(("kwargs", "torch_error"), [
    ({"history_size": 0}, IndexError),
    ({"history_size": 2.0}, TypeError),
    ({"line_search_fn": "armijo"}, RuntimeError),
    ({"max_iter": "5", "max_eval": 5}, TypeError),
    ({"tolerance_grad": None}, TypeError),
])
def test_what_the_reference_refuses_at_once_torch_fails_on_later(kwargs: dict[str, Any], torch_error: type) -> None:
    """The stated reason of deliberate difference 7 is true: torch accepts these and fails inside step()."""
    problem = SmallProblem(seed=2, sizes=(3,), dtype=torch.float64, with_complex=False, with_unused=False)
    params = [t.clone().requires_grad_(True) for t in problem.start()]
    opt = torch.optim.LBFGS(params, **kwargs)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = problem.loss(params)
        value.backward()
        return value

    with pytest.raises(torch_error):
        for _ in range(3):
            opt.step(closure)
    with pytest.raises((TypeError, ValueError)):
        LBFGS([t.clone().requires_grad_(True) for t in problem.start()], **kwargs)
