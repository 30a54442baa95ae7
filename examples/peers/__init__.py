"""Factory modules that put third-party L-BFGS behind torch.optim.LBFGS's constructor, for ``lbfgs-verify check``.

Each module names one target (``examples.peers.<module>:<Class>``) and declares, in ``lbfgs_verify_lacks``, the
features the optimizer honestly does not have; ``docs/peers.md`` shows their verdicts. The packages are the
optional extra ``peers`` (``pip install lbfgs-verify[peers]``; sqnm needs ``--no-deps --ignore-requires-python``
on Python 3.11).
"""
