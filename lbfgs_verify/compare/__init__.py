"""Comparison: how two runs, two states or a run and a recording are told apart.

- :mod:`~lbfgs_verify.compare.bitwise`: byte-level comparison of tensors and state dicts, ULP distances;
- :mod:`~lbfgs_verify.compare.trace`: step records of a run and the first step where two runs part;
- :mod:`~lbfgs_verify.compare.tolerances`: the stated tolerances where bits cannot be the contract;
- :mod:`~lbfgs_verify.compare.golden_traces`: recorded traces of torch and scipy, per CPU kernel set;
- :mod:`~lbfgs_verify.compare.scipy_trace`: scipy's L-BFGS-B recorded iterate by iterate;
- :mod:`~lbfgs_verify.compare.solutions`: end points of two optimizers on the same problem.
"""
