"""lbfgs_verify: a testing and property-verification harness for L-BFGS optimizers.

Folders, one idea each (lower layers know nothing of higher ones):

- :mod:`lbfgs_verify.problems`       test problems (Moré–Garbow–Hillstrom and more) for torch, numpy and JAX
- :mod:`lbfgs_verify.line_search`    strong-Wolfe (torch's) and Moré–Thuente (MINPACK-2) line searches
- :mod:`lbfgs_verify.reference`      reference optimizers: ``LBFGS`` (bitwise torch.optim.LBFGS), ``LBFGSB`` (scipy)
- :mod:`lbfgs_verify.compare`        bitwise comparison, traces, tolerances, golden traces
- :mod:`lbfgs_verify.targets`        the optimizer under test, of any kind, and the built-in adapters
- :mod:`lbfgs_verify.engine`         the run engine: runs, recordings, observation, strategies, capabilities, repro
- :mod:`lbfgs_verify.properties`     the property suite (resume, mathematics, behaviour, convergence, kinds)
- :mod:`lbfgs_verify.fuzz`           the state_dict fuzzer
- :mod:`lbfgs_verify.report`         the comparison report
- :mod:`lbfgs_verify.cli`, :mod:`lbfgs_verify.plugin`   the two faces: the ``lbfgs-verify`` command, the pytest plugin
"""

__version__ = "0.1.0"
