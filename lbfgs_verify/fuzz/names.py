"""The names of the fuzzer's routes and corruption classes, importable without torch (for ``--help``).

They are part of the interface; ``tests/fast/test_fuzz.py`` checks that they equal
:data:`lbfgs_verify.engine.runs.ROUTES` and :data:`lbfgs_verify.fuzz.corruptions.CORRUPTIONS`.
"""

ROUTE_NAMES: tuple[str, ...] = ("save-load", "save-load-file", "deepcopy", "pickle", "optimizer-copy", "in-memory",
                                "load-twice", "snapshot", "dtype", "cuda")
CLASS_NAMES: tuple[str, ...] = ("missing-key", "extra-key", "wrong-type", "wrong-size", "wrong-dtype", "non-finite",
                                "history-inconsistent", "history-too-long", "bad-counter", "param-groups-mismatch",
                                "truncated-file", "bit-flip", "hostile-pickle")
