"""The property suite as pytest tests: ``pytest --pyargs lbfgs_verify.suite --lbfgs-target module:attr``.

See :mod:`lbfgs_verify.plugin` for the options and :mod:`lbfgs_verify.suite.test_properties` for reusing the
suite in your own test files.
"""
