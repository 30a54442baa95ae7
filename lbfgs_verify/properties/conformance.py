"""Conformance properties (``conformance.*``, only in ``--mode conformance``): bitwise torch.optim.LBFGS.

On the CPU with the same thread count, the target must be a bitwise twin of ``torch.optim.LBFGS``: the same
parameters, returned losses, closure calls and ``state_dict()`` (values, dtypes and Python types) after every
step, over generated problems and hyperparameters (float32/float64, line_search_fn None/"strong_wolfe", lr as
int/float/0-dim tensor, small history sizes so the history rolls, max_iter, max_eval, tolerances, several and
complex parameters, parameters without grad: :func:`lbfgs_verify.engine.strategies.scenarios`). State must
interchange both ways mid-run: the target's ``state_dict`` loads into torch and torch's into the target, and
the run continues bitwise as torch's uninterrupted run.

The API properties (state in ``optimizer.state``, hooks, named state dicts, extra keys, a diverged run's state)
check, side by side with torch, what PyTorch's generic optimizer tests (``test/test_optim.py``,
``TestOptimRenewed``) assert of every ``torch.optim`` optimizer.

Source of the rules: torch/optim/lbfgs.py and torch/optim/optimizer.py of the installed torch (2.13 when this
was written); docs/torch-2.13-lbfgs.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from hypothesis import given

from lbfgs_verify.compare.environment import comparison_environment
from lbfgs_verify.engine.recordings import uninterrupted
from lbfgs_verify.engine.runs import TORCH_SAVE, Scenario, divergence_failure, step_divergence
from lbfgs_verify.engine.strategies import make_problem, scenarios
from lbfgs_verify.properties.base import CheckContext, PropertyFailed, register
from lbfgs_verify.properties.resume import check_transport
from lbfgs_verify.targets.load import Target

ORACLE_SPEC = "torch.optim:LBFGS"


def oracle() -> Target:
    """``torch.optim.LBFGS`` of the installed torch, as a :class:`Target`."""
    return Target(spec=ORACLE_SPEC, factory=torch.optim.LBFGS)


MODES_CONFORMANCE = ("conformance",)


@register(
    "conformance.trajectory",
    category="conformance",
    title="parameters, returned losses, closure calls and state_dict() after every step are bitwise equal to "
          "torch.optim.LBFGS's",
    catches="any deviation from torch's arithmetic or control flow (operation order, step-size rule, curvature "
            "test, stopping rules, history roll, evaluation count), or a state format other than torch's",
    modes=MODES_CONFORMANCE,
)
def check_trajectory(ctx: CheckContext) -> None:
    torch_lbfgs = oracle()

    @ctx.settings()
    @given(scenario=scenarios(ctx.budget.steps))
    def check(scenario: Scenario) -> None:
        with comparison_environment(ctx.threads):
            expected = uninterrupted(torch_lbfgs, scenario, device=ctx.device)
            actual = uninterrupted(ctx.target, scenario, device=ctx.device)
            divergence = step_divergence(expected.trace.steps, actual.trace.steps)
            if divergence is not None:
                raise divergence_failure("the target's run differs from torch.optim.LBFGS's", scenario, divergence,
                                         threads=ctx.threads)

    check()


@register(
    "conformance.state_into_torch",
    category="conformance",
    title="the target's state_dict, saved at any step boundary (torch.save, weights_only load), loads into "
          "torch.optim.LBFGS and continues bitwise as torch's uninterrupted run",
    catches="state entries torch cannot use or uses differently (names, types, dtypes, list lengths, the lazily "
            "created 'al', int/float/tensor t and H_diag)",
    modes=MODES_CONFORMANCE,
)
def check_state_into_torch(ctx: CheckContext) -> None:
    torch_lbfgs = oracle()
    check_transport(ctx, TORCH_SAVE, saver=ctx.target, loader=torch_lbfgs, expected=torch_lbfgs,
                    what="torch.optim.LBFGS resumed from the target's state_dict differs from torch's uninterrupted "
                         "run")


@register(
    "conformance.state_from_torch",
    category="conformance",
    title="torch.optim.LBFGS's state_dict, saved at any step boundary, loads into the target and continues bitwise "
          "as torch's uninterrupted run",
    catches="a target that cannot read torch's checkpoints, or reads them differently (migration from torch.optim)",
    modes=MODES_CONFORMANCE,
)
def check_state_from_torch(ctx: CheckContext) -> None:
    torch_lbfgs = oracle()
    check_transport(ctx, TORCH_SAVE, saver=torch_lbfgs, loader=ctx.target, expected=torch_lbfgs,
                    what="the target resumed from torch.optim.LBFGS's state_dict differs from torch's uninterrupted "
                         "run")


def _api_cases() -> list[tuple[str, Callable[[Any], Any]]]:
    """(description, action(factory)) pairs; each action builds and maybe steps an optimizer."""
    problem = make_problem("coupled_tensors", torch.float64)

    def build(**kwargs: Any) -> Callable[[Any], Any]:
        def action(factory: Any) -> Any:
            return factory(problem.make_params(), **kwargs).state_dict()["param_groups"]

        return action

    def two_groups(factory: Any) -> Any:
        a, b, c = problem.make_params()
        return factory([{"params": [a]}, {"params": [b, c], "lr": 0.5}])

    def step_without_closure(factory: Any) -> Any:
        return factory(problem.make_params()).step()

    def step_unknown_line_search(factory: Any) -> Any:
        params = problem.make_params()
        return float(factory(params, line_search_fn="bogus").step(problem.make_closure(params)))

    return [
        ("defaults", build()),
        ("max_iter=7 (max_eval defaults to max_iter*5//4)", build(max_iter=7)),
        ("lr=-1", build(lr=-1.0)),
        ("lr=tensor of two elements", build(lr=torch.tensor([0.1, 0.2]))),
        ("lr=0-dim tensor", build(lr=torch.tensor(0.5))),
        ("two parameter groups", two_groups),
        ("step() without a closure", step_without_closure),
        ("line_search_fn='bogus' then step()", step_unknown_line_search),
    ]


def _outcome(action: Callable[[Any], Any], factory: Any) -> tuple[str, Any]:
    try:
        return "returned", action(factory)
    except Exception as exc:
        return "raised", type(exc).__name__


@register(
    "conformance.api_errors",
    category="conformance",
    title="construction and step() accept what torch.optim.LBFGS accepts (same param_groups and defaults) and "
          "reject what it rejects (with some exception; earlier or more specific errors are fine)",
    catches="different defaults (max_eval = max_iter*5//4), missing validation (negative lr, multi-element lr, "
            "several parameter groups, unknown line search, step() without a closure), arguments torch accepts "
            "but the target refuses",
    modes=MODES_CONFORMANCE,
)
def check_api_errors(ctx: CheckContext) -> None:
    from lbfgs_verify.compare.bitwise import first_difference

    mismatches: list[str] = []
    with comparison_environment(ctx.threads):
        for description, action in _api_cases():
            expected = _outcome(action, torch.optim.LBFGS)
            actual = _outcome(action, ctx.target.factory)
            if expected[0] != actual[0]:
                mismatches.append(f"{description}: torch {expected[0]} {_short(expected[1])}, "
                                  f"target {actual[0]} {_short(actual[1])}")
            elif expected[0] == "returned":
                difference = first_difference(expected[1], actual[1], "param_groups")
                if difference is not None:
                    mismatches.append(f"{description}: {difference}")
    if mismatches:
        raise PropertyFailed(f"{len(mismatches)} API case(s) differ from torch.optim.LBFGS: " + "; ".join(mismatches),
                             {"mismatches": mismatches})


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 120 else text[:117] + "..."


# --------------------------------------------------------------------------------------------------------
# The API a drop-in replacement must have: what PyTorch's generic optimizer tests (test/test_optim.py,
# TestOptimRenewed: state_dict/load_state_dict/step hooks, named state dicts, older state dicts, non-empty
# state) assert of every torch.optim optimizer, checked here side by side with torch.optim.LBFGS.
# --------------------------------------------------------------------------------------------------------


def _api_problem() -> Any:
    return make_problem("coupled_tensors", torch.float64)


def _attempt(action: Callable[[], Any], notes: list[str], who: str) -> Any:
    """``action()``'s result, or ``("raised", ExceptionName)`` (the message kept in ``notes``)."""
    try:
        return action()
    except Exception as exc:
        notes.append(f"{who}: {type(exc).__name__}: {exc}")
        return ("raised", type(exc).__name__)


def _snapshot(value: Any) -> Any:
    from lbfgs_verify.compare.bitwise import clone_structure

    return clone_structure(value)


def _compare_api(ctx: CheckContext, what: str, scenario: Callable[[Any, list[str], str], Any]) -> None:
    """Run ``scenario(factory, notes, who)`` for torch and the target; their records must be bitwise equal."""
    from lbfgs_verify.compare.bitwise import first_difference

    notes: list[str] = []
    with comparison_environment(ctx.threads):
        expected = scenario(torch.optim.LBFGS, notes, "torch")
        actual = scenario(ctx.target.factory, notes, "target")
    difference = first_difference(expected, actual, "record")
    if difference is not None:
        raise PropertyFailed(f"{what}: the target differs from torch.optim.LBFGS at {difference.path}: "
                             f"{difference.detail}" + (f" ({'; '.join(notes)})" if notes else ""),
                             {"difference": str(difference), "exceptions": notes})


def _state_of(optimizer: Any, param: Any) -> Any:
    state = getattr(optimizer, "state", None)
    if not isinstance(state, dict) or param not in state:
        return None
    return (list(state[param]), _snapshot(dict(state[param])))


@register(
    "conformance.state_in_optimizer_state",
    category="conformance",
    title="after every step the state sits in optimizer.state[params[0]], with torch.optim.LBFGS's keys (in its "
          "order), types and values, and no other parameter has state",
    catches="a state kept elsewhere (an attribute, a dataclass) so that optimizer.state stays empty and generic "
            "tools (hooks, checkpoint utilities, state[p]['n_iter']) see nothing; other keys, types or key order",
    modes=MODES_CONFORMANCE,
)
def check_state_in_optimizer_state(ctx: CheckContext) -> None:
    problem = _api_problem()
    cases: list[dict[str, Any]] = [
        {"history_size": 2, "max_iter": 3},
        {"line_search_fn": "strong_wolfe", "max_iter": 4, "history_size": 3, "lr": torch.tensor(0.5)},
        {"max_iter": 1},
    ]

    def scenario(factory: Any, notes: list[str], who: str) -> Any:
        record = []
        for kwargs in cases:
            params = problem.make_params(ctx.device)
            opt = factory(params, **{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()})
            closure = problem.make_closure(params)
            for _ in range(4):
                _attempt(lambda opt=opt, closure=closure: opt.step(closure), notes, who)
                others = [i for i, p in enumerate(params[1:], 1) if _state_of(opt, p) is not None]
                record.append((_state_of(opt, params[0]), others))
        return record

    _compare_api(ctx, "optimizer.state after each step", scenario)


@register(
    "conformance.optimizer_hooks",
    category="conformance",
    title="torch.optim.Optimizer's hooks are honoured as torch.optim.LBFGS honours them: step pre/post (local and "
          "global, in order, removable), state_dict pre/post (a pre-hook writing into optimizer.state, a post-hook "
          "adding a key), load_state_dict pre (modifying or replacing the dict, prepend order) and post",
    catches="a state_dict/load_state_dict/step that bypasses the hooks, runs them at another moment, ignores a "
            "hook's returned dict, or drops what a hook wrote into optimizer.state",
    modes=MODES_CONFORMANCE,
)
def check_optimizer_hooks(ctx: CheckContext) -> None:
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    problem = _api_problem()

    def scenario(factory: Any, notes: list[str], who: str) -> Any:
        log: list[Any] = []
        params = problem.make_params(ctx.device)
        opt = factory(params, max_iter=3)
        closure = problem.make_closure(params)
        local_pre = opt.register_step_pre_hook(lambda o, a, k: log.append("local_pre"))
        local_post = opt.register_step_post_hook(lambda o, a, k: log.append("local_post"))
        global_pre = register_optimizer_step_pre_hook(lambda o, a, k: log.append("global_pre"))
        global_post = register_optimizer_step_post_hook(lambda o, a, k: log.append("global_post"))
        try:
            log.append(_attempt(lambda: float(opt.step(closure)), notes, who))
        finally:
            global_pre.remove()
            global_post.remove()
        local_pre.remove()
        local_post.remove()
        log.append(_attempt(lambda: float(opt.step(closure)), notes, who))  # no hook fires any more

        opt.register_state_dict_pre_hook(lambda o: o.state.__setitem__("written_by_pre_hook", 1))

        def post_hook(o: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
            state_dict["added_by_post_hook"] = True
            return state_dict

        opt.register_state_dict_post_hook(post_hook)
        saved = _attempt(opt.state_dict, notes, who)
        log.append(_snapshot(saved))
        if isinstance(saved, tuple):
            return log
        opt.register_load_state_dict_pre_hook(lambda o, sd: sd["param_groups"][0].__setitem__("lr", 0.25))
        opt.register_load_state_dict_pre_hook(
            lambda o, sd: {**sd, "param_groups": [{**sd["param_groups"][0], "lr": 0.75, "max_iter": 2}]},
            prepend=True)

        def load_post_hook(o: Any) -> None:
            log.append(("load_post", float(o.param_groups[0]["lr"]), o.param_groups[0]["max_iter"]))
            o.state["written_by_load_post_hook"] = True

        opt.register_load_state_dict_post_hook(load_post_hook)
        log.append(_attempt(lambda: opt.load_state_dict(_snapshot(saved)), notes, who))
        log.append(_attempt(lambda: float(opt.step(closure)), notes, who))
        log.append(_snapshot([p.detach() for p in params]))
        log.append(_attempt(lambda: {k: v for k, v in opt.state_dict().items() if k != "param_groups"}, notes, who))
        return log

    _compare_api(ctx, "hooks", scenario)


@register(
    "conformance.named_state_dict",
    category="conformance",
    title="named parameters work as in torch.optim.LBFGS: state_dict() saves param_names, a dict without names "
          "loads into a named optimizer keeping its names, a named dict gives its names, and the run continues",
    catches="param_names lost or refused at load (KeyError 'param_names'), names from the wrong side, named "
            "parameters refused by the constructor",
    modes=MODES_CONFORMANCE,
)
def check_named_state_dict(ctx: CheckContext) -> None:
    problem = _api_problem()

    def named(params: list[torch.Tensor], is_named: bool) -> Any:
        return [(f"layer{i}.weight", p) for i, p in enumerate(params)] if is_named else params

    def one_way(factory: Any, notes: list[str], who: str, saved_named: bool, loading_named: bool) -> list[Any]:
        record: list[Any] = []
        params = problem.make_params(ctx.device)
        opt = factory(named(params, saved_named), max_iter=3)
        closure = problem.make_closure(params)
        for _ in range(2):
            record.append(_attempt(lambda: float(opt.step(closure)), notes, who))
        saved = _attempt(opt.state_dict, notes, who)
        record.append(_snapshot(saved))
        copies = [p.detach().clone().requires_grad_(True) for p in params]
        other = factory(named(copies, loading_named), max_iter=3)
        record.append(_attempt(lambda: other.load_state_dict(_snapshot(saved)), notes, who))
        record.append(_attempt(lambda: other.state_dict()["param_groups"], notes, who))
        record.append(_attempt(lambda: float(other.step(problem.make_closure(copies))), notes, who))
        record.append(_snapshot([p.detach() for p in copies]))
        return record

    def scenario(factory: Any, notes: list[str], who: str) -> Any:
        return [one_way(factory, notes, who, saved_named, loading_named)
                for saved_named, loading_named in ((True, False), (False, True), (True, True))]

    _compare_api(ctx, "named state dicts", scenario)


@register(
    "conformance.extra_keys_carried",
    category="conformance",
    title="a state_dict with keys a hook added (top level, under state, inside the parameter's state) loads as "
          "in torch.optim.LBFGS: top-level ones ignored, the others carried into optimizer.state and saved again",
    catches="a load that refuses unknown keys ('unknown keys') where torch loads, or silently drops what torch "
            "carries",
    modes=MODES_CONFORMANCE,
)
def check_extra_keys_carried(ctx: CheckContext) -> None:
    problem = _api_problem()

    def scenario(factory: Any, notes: list[str], who: str) -> Any:
        record: list[Any] = []
        params = problem.make_params(ctx.device)
        opt = factory(params, max_iter=3)
        closure = problem.make_closure(params)
        for _ in range(2):
            record.append(_attempt(lambda: float(opt.step(closure)), notes, who))
        saved = _attempt(opt.state_dict, notes, who)
        if isinstance(saved, tuple):
            return [*record, saved]
        extended = _snapshot(saved)
        extended["added_by_a_post_hook"] = {"epoch": 3}
        extended["state"]["note_of_a_hook"] = 7
        if extended["state"]:
            next(iter(extended["state"].values()))["per_parameter_note"] = 11  # not a str: torch's load garbles it
        copies = [p.detach().clone().requires_grad_(True) for p in params]
        other = factory(copies, max_iter=3)
        record.append(_attempt(lambda: other.load_state_dict(extended), notes, who))
        record.append(_attempt(lambda: _snapshot(other.state_dict()), notes, who))
        record.append(_attempt(lambda: float(other.step(problem.make_closure(copies))), notes, who))
        record.append(_snapshot([p.detach() for p in copies]))
        return record

    _compare_api(ctx, "extra keys", scenario)


def _diverging_model(device: str) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
    """test_optim.py's Conv2d+BatchNorm2d model, loss = output sum (unbounded below): strong_wolfe ends in NaN."""
    generator = torch.Generator().manual_seed(1)
    conv = torch.nn.Conv2d(4, 2, 1, stride=2)
    norm = torch.nn.BatchNorm2d(2, eps=1e-05, momentum=0.1)
    with torch.no_grad():
        for p in (*conv.parameters(), *norm.parameters()):
            p.copy_(torch.rand(p.shape, generator=generator, dtype=p.dtype) - 0.5)
    model = torch.nn.Sequential(conv, norm).to(device)
    x = torch.rand(1, 4, 16, 16, generator=generator).to(device)
    params = list(model.parameters())

    def closure() -> torch.Tensor:
        for p in params:
            p.grad = None
        loss = model(x).sum()
        loss.backward()
        return loss

    return params, closure


@register(
    "conformance.diverged_state_loads",
    category="conformance",
    title="after a run diverged to NaN/inf (strong_wolfe on an unbounded model), the optimizer's own state_dict "
          "and torch.optim.LBFGS's load into the target (a warning is fine) and the next step matches torch's",
    catches="a load that refuses non-finite values ('contains NaN or inf') where torch loads its own state: "
            "checkpoints of a diverged run become unusable, PyTorch's test_can_load_older_state_dict fails",
    modes=MODES_CONFORMANCE,
)
def check_diverged_state_loads(ctx: CheckContext) -> None:
    import warnings

    def scenario(factory: Any, notes: list[str], who: str) -> Any:
        record: list[Any] = []
        for source in (factory, torch.optim.LBFGS):
            params, closure = _diverging_model(ctx.device)
            opt = source(params, line_search_fn="strong_wolfe")
            for _ in range(3):
                _attempt(lambda opt=opt, closure=closure: opt.step(closure), notes, who)
            saved = _attempt(opt.state_dict, notes, who)
            flat = [t for t in saved["state"][0].values() if isinstance(t, torch.Tensor)] if isinstance(
                saved, dict) and saved["state"] else []
            diverged = any(not bool(torch.isfinite(t).all()) for t in flat)
            other = factory(params, line_search_fn="strong_wolfe")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                record.append((diverged, _attempt(lambda other=other, saved=saved: other.load_state_dict(
                    _snapshot(saved)), notes, who)))
            record.append(_attempt(lambda other=other, closure=closure: float(other.step(closure)), notes, who))
            record.append(_snapshot([p.detach() for p in params]))
        return record

    _compare_api(ctx, "a diverged run's state", scenario)
