"""How much work ``lbfgs-verify check`` asks of the target: ``step()`` and closure calls, counted.

The count is deterministic under the derandomized ``ci`` and ``quick`` budgets, so it measures the harness,
not the machine: ``python benchmarks/harness_cost.py --budget ci [--level properties] [--target torch.optim:LBFGS]``
prints the calls and the seconds; ``--issue-baseline`` counts the 34 properties ``check`` ran when issue 13 was
filed and compares with their calls then; ``benchmarks/test_harness_cost.py`` records them with pytest-benchmark.

The target class is subclassed with a ``step`` that counts its calls and wraps the closure to count its
calls too (the subclass is otherwise the target: same verdicts). The all-splits resume check is measured
alone as well: ``resume.torch_save``'s calls against those of the uninterrupted runs it checks.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COUNTS = {"step": 0, "closure": 0}


def counting_subclass(cls: type) -> type:
    """``cls`` with every ``step()`` call and every closure call counted in :data:`COUNTS`."""

    def step(self: Any, closure: Callable[[], Any] | None = None) -> Any:
        COUNTS["step"] += 1

        def counted() -> Any:
            COUNTS["closure"] += 1
            return closure()  # type: ignore[misc]

        return cls.step(self, counted if closure is not None else None)

    return type(f"Counting{cls.__name__}", (cls,), {"step": step, "__module__": __name__})


@dataclass
class Cost:
    steps: int
    closures: int
    seconds: float
    summary: str


def check_cost(spec: str = "torch.optim:LBFGS", *, level: str = "properties", budget: str = "ci",
               only: list[str] | None = None) -> Cost:
    """Run ``check`` (no baseline) of a counting subclass of ``spec``'s class; the calls it made."""
    from lbfgs_verify.properties.base import load_all
    from lbfgs_verify.properties.runner import run_check, select_properties, summary_line
    from lbfgs_verify.targets.load import Target, load_target

    load_all()
    target = load_target(spec)
    counted = Target(spec, counting_subclass(target.factory))  # type: ignore[arg-type]
    COUNTS.update(step=0, closure=0)
    start = time.perf_counter()
    report = run_check(counted, level, budget, properties=select_properties(level, only))
    return Cost(COUNTS["step"], COUNTS["closure"], time.perf_counter() - start, summary_line(report))


ISSUE_BASELINE_COMMIT = "ae9aa4a"
"""The last commit before the harness work of issue 13 (no levels then: ``check`` ran 34 properties)."""

ISSUE_BASELINE_CALLS = (8816, 18960)
"""``step()`` and closure calls of ``check torch.optim:LBFGS --budget ci`` at :data:`ISSUE_BASELINE_COMMIT`,
counted by the same subclass (the issue quotes 10004 / 20828, measured on a tree before that commit)."""

ISSUE_BASELINE_VERDICTS = {
    "behaviour.change_history_size": "fail", "behaviour.change_lr": "pass", "behaviour.change_max_iter": "pass",
    "behaviour.converged_no_move": "pass", "behaviour.defaults": "pass", "behaviour.func_evals": "pass",
    "behaviour.iterations": "pass", "behaviour.max_eval": "pass", "behaviour.no_grad_params": "pass",
    "behaviour.returns_first_loss": "pass", "behaviour.stop_reasons": "pass",
    "convergence.agrees_with_torch": "pass", "convergence.reaches_f_star": "pass",
    "cuda.article_model_move": "skip", "cuda.cpu_state_to_cuda": "skip", "cuda.resume_on_cuda": "skip",
    "mathematics.descent_direction": "pass", "mathematics.first_step": "pass", "mathematics.invariance": "pass",
    "mathematics.quadratic_termination": "pass", "mathematics.strong_wolfe": "pass",
    "mathematics.two_loop_direction": "pass", "resume.deepcopy_optimizer": "fail",
    "resume.deepcopy_state_dict": "pass", "resume.low_precision_tensor_lr": "fail",
    "resume.pickle_optimizer": "fail", "resume.pickle_state_dict": "pass", "resume.torch_save": "pass",
    "resume.uses_saved_state": "pass", "seed.load_restores_hyperparameters": "pass",
    "state.load_independence": "fail", "state.load_validates_size": "fail", "state.round_trip_exact": "fail",
    "state.snapshot": "fail",
}
"""The 34 properties ``check --budget ci`` ran at :data:`ISSUE_BASELINE_COMMIT`, with torch's verdicts then."""


@dataclass
class BaselineCost:
    steps: int
    closures: int
    seconds: float
    verdicts: dict[str, str]

    @property
    def fractions(self) -> tuple[float, float]:
        """The calls as fractions of :data:`ISSUE_BASELINE_CALLS`."""
        return self.steps / ISSUE_BASELINE_CALLS[0], self.closures / ISSUE_BASELINE_CALLS[1]


def baseline_cost(spec: str = "torch.optim:LBFGS") -> BaselineCost:
    """The 34 properties of the issue's baseline, today (each at its own level), counted as :func:`check_cost`."""
    from lbfgs_verify.properties.base import REGISTRY, load_all
    from lbfgs_verify.properties.runner import run_check
    from lbfgs_verify.targets.load import Target, load_target

    load_all()
    target = load_target(spec)
    counted = Target(spec, counting_subclass(target.factory))  # type: ignore[arg-type]
    COUNTS.update(step=0, closure=0)
    start = time.perf_counter()
    report = run_check(counted, "conformance", "ci", properties=[REGISTRY[pid] for pid in ISSUE_BASELINE_VERDICTS])
    verdicts = {result.property: result.status.value for result in report.results}
    return BaselineCost(COUNTS["step"], COUNTS["closure"], time.perf_counter() - start, verdicts)


@dataclass
class SplitCost:
    recording: int
    one_step_checks: int
    continuations: int

    @property
    def all_splits_ratio(self) -> float:
        """(recording + a one-step resume at every split) / recording."""
        return (self.recording + self.one_step_checks) / self.recording

    @property
    def with_continuations_ratio(self) -> float:
        return (self.recording + self.one_step_checks + self.continuations) / self.recording


def all_splits_cost(spec: str = "torch.optim:LBFGS", budget: str = "ci") -> SplitCost:
    """``resume.torch_save`` alone, its ``step()`` calls split into the uninterrupted recording, the one-step
    resume at every split, and the resume chain (the full continuations)."""
    import lbfgs_verify.engine.recordings as recordings
    import lbfgs_verify.properties.resume as resume

    phase = {"name": "one_step"}
    by_phase = {"recording": 0, "one_step": 0, "chain": 0}

    def counted_in(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            before, outer = COUNTS["step"], phase["name"]
            phase["name"] = name
            try:
                return fn(*args, **kwargs)
            finally:
                by_phase[name] += COUNTS["step"] - before
                phase["name"] = outer

        return wrapper

    extend, chain = recordings._extend, resume.resume_chain
    recordings._extend = counted_in("recording", extend)  # type: ignore[assignment]
    resume.resume_chain = counted_in("chain", chain)  # type: ignore[assignment]
    try:
        cost = check_cost(spec, budget=budget, only=["resume.torch_save"])
    finally:
        recordings._extend, resume.resume_chain = extend, chain  # type: ignore[assignment]
    return SplitCost(by_phase["recording"], cost.steps - by_phase["recording"] - by_phase["chain"], by_phase["chain"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="torch.optim:LBFGS")
    parser.add_argument("--level", default="properties")
    parser.add_argument("--budget", default="ci")
    parser.add_argument("--only", action="append")
    parser.add_argument("--issue-baseline", action="store_true",
                        help=f"count the 34 properties check ran at commit {ISSUE_BASELINE_COMMIT} instead")
    args = parser.parse_args(argv)
    if args.issue_baseline:
        base = baseline_cost(args.target)
        same = sum(base.verdicts[pid] == verdict for pid, verdict in ISSUE_BASELINE_VERDICTS.items())
        print(f"the {len(ISSUE_BASELINE_VERDICTS)} properties of check --budget ci at {ISSUE_BASELINE_COMMIT}: "
              f"step() calls {base.steps} (was {ISSUE_BASELINE_CALLS[0]}, {base.fractions[0]:.0%}), closure calls "
              f"{base.closures} (was {ISSUE_BASELINE_CALLS[1]}, {base.fractions[1]:.0%}), {base.seconds:.1f} s; "
              f"{same} of {len(ISSUE_BASELINE_VERDICTS)} verdicts as then")
        return 0
    cost = check_cost(args.target, level=args.level, budget=args.budget, only=args.only)
    print(f"check {args.target} --level {args.level} --budget {args.budget}: {cost.summary}")
    print(f"  step() calls {cost.steps}, closure calls {cost.closures}, {cost.seconds:.1f} s")
    split = all_splits_cost(args.target, args.budget)
    print(f"resume.torch_save: recording {split.recording} steps, one-step resume at every split "
          f"{split.one_step_checks}, resume chains {split.continuations}: all splits = "
          f"{split.all_splits_ratio:.2f}x the uninterrupted runs ({split.with_continuations_ratio:.2f}x with the "
          f"full continuations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
