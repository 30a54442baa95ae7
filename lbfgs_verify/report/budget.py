"""How much work ``lbfgs-verify report`` does: one :class:`ReportBudget` per ``--budget`` name.

The names match ``lbfgs-verify check --budget`` (:data:`lbfgs_verify.properties.base.BUDGETS`), and the check
section runs that budget of the property suite.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportBudget:
    """What each section of the report runs.

    Attributes:
        name: ``quick``, ``ci`` or ``thorough`` (also the ``check`` budget of the verdict section).
        max_iter: iteration limit of every convergence run (scipy ``maxiter``, torch ``max_iter``); the evaluation
            limit is ``max_iter * 5 // 4`` for torch-like optimizers (torch's rule) and scipy's ``maxfun``.
        bitwise_problems: how many problems (from the start of the problem set) each bitwise configuration runs.
        bitwise_steps: ``step()`` calls per bitwise run (torch's default ``max_iter=20`` iterations each).
        resume_steps: length of the trajectory whose every split point is resumed.
        fuzz_examples: examples per target for the state_dict fuzzer.
        benchmark_max_time: pytest-benchmark ``--benchmark-max-time`` (seconds per benchmark).
        check_only: property ID prefixes for the verdict grid (``None``: every property of the mode).
        stepper_problems: how many problems stepper targets (JAX) run: each (stepper, problem) compiles its step
            once, 0.6 to 9 s (tfp the longest; measured, jax 0.10.2 CPU, 2 cores), so the quick budget runs the
            first two of :data:`lbfgs_verify.report.kinds.REPRESENTATIVE` (Rosenbrock-2 and extended
            Rosenbrock-10: 8 compiles, about 20 s of CPU; four problems took 43 s), ci twelve; these are also the
            agreement matrix's problems.
    """

    name: str
    max_iter: int
    bitwise_problems: int
    bitwise_steps: int
    resume_steps: int
    fuzz_examples: int
    benchmark_max_time: float
    check_only: tuple[str, ...] | None = None
    stepper_problems: int = 10**6


REPORT_BUDGETS: dict[str, ReportBudget] = {
    "quick": ReportBudget("quick", max_iter=1000, bitwise_problems=4, bitwise_steps=4, resume_steps=6,
                          fuzz_examples=6, benchmark_max_time=0.25, stepper_problems=2),
    "ci": ReportBudget("ci", max_iter=5000, bitwise_problems=43, bitwise_steps=6, resume_steps=10,
                       fuzz_examples=20, benchmark_max_time=1.0, stepper_problems=12),
    "thorough": ReportBudget("thorough", max_iter=15000, bitwise_problems=10**6, bitwise_steps=10, resume_steps=25,
                             fuzz_examples=60, benchmark_max_time=2.0),
}
