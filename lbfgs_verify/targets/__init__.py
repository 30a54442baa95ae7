"""Targets: the optimizer under test, of any kind (issue 20).

- :mod:`~lbfgs_verify.targets.load`: loading a target from ``module:attr``, a built-in name or an object;
- :mod:`~lbfgs_verify.targets.kinds`: the kinds (torch optimizer, stepper, functional) and the built-in names;
- :mod:`~lbfgs_verify.targets.protocols`: the stepper and functional protocols and the declared conventions;
- :mod:`~lbfgs_verify.targets.stepper` and :mod:`~lbfgs_verify.targets.functional`: driving each kind;
- :mod:`~lbfgs_verify.targets.serialize`: the default serializer of an explicit state (numpy leaves + manifest);
- :mod:`~lbfgs_verify.targets.adapters`: one module per built-in adapter (optax, jaxopt, optimistix, tfp, scipy,
  PyLBFGS, lbfgsb, torchmin).
"""
