"""lbfgs_verify: a testing and property-verification harness for L-BFGS optimizers.

Modules, one idea each:

- :mod:`lbfgs_verify.problems`       test problems (Moré–Garbow–Hillstrom and more) in torch
- :mod:`lbfgs_verify.reference`      reference optimizers: ``LBFGS`` (bitwise torch.optim.LBFGS), ``LBFGSB`` (scipy)
- :mod:`lbfgs_verify.line_search`    strong-Wolfe (torch's) and Moré–Thuente (MINPACK-2) line searches
- :mod:`lbfgs_verify.trace`          recording of optimizer runs, reused by properties and reports
- :mod:`lbfgs_verify.bitwise`        byte-level comparison of tensors and state dicts, ULP distances
- :mod:`lbfgs_verify.properties`     the property suite (resume, mathematics, behaviour, convergence)
- :mod:`lbfgs_verify.targets`        loading the optimizer under test from ``module:attr``
- :mod:`lbfgs_verify.cli`            the ``lbfgs-verify`` command
- :mod:`lbfgs_verify.plugin`         the pytest plugin
"""

__version__ = "0.1.0"
