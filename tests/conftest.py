"""Shared test set-up: the hypothesis profile (``LBFGS_VERIFY_PROFILE``, default ``ci``), the thread count, and
how pytest-xdist shares the tests out (``-n N --dist loadgroup``)."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

import lbfgs_verify.reference  # noqa: F401  (see below)
from lbfgs_verify.engine.hypothesis_profiles import load_profile

load_profile()
# Bits depend on the thread count: every comparison in this suite runs single-threaded.
torch.set_num_threads(1)
# `check` and `report` default to --jobs auto (worker processes); the suite already runs under pytest-xdist, so
# the commands it runs use one process unless a test asks for more (tests/fast/test_jobs.py).
os.environ["LBFGS_VERIFY_JOBS"] = "1"
# The reference (and scipy and numpy.fft behind it) is imported here, once per process: pytester's in-process
# runs drop the modules first imported inside them, and numpy's C extensions cannot be imported a second time
# ("cannot load module more than once per process"), so a test file run alone, or on an xdist worker whose
# earlier tests did not import them, would otherwise fail its second in-process run.

SHARED_FIXTURE_MODULES = frozenset({
    "tests/fast/test_check_repro.py",
    "tests/fast/test_report.py",
    "tests/fast/test_verdicts.py",
    "tests/slow/test_lbfgsb_bounded_mgh.py",
    "tests/slow/test_lbfgsb_mgh.py",
    "tests/slow/test_scipy_suite_routed.py",
    "tests/slow/test_solution_compare.py",
})
"""Test modules with a fixture of this suite computed once per module (a report, scipy's routed suite, the MGH
runs): under pytest-xdist each runs whole in one worker, so that fixture is computed once; every other test is
sent on its own. Checked at every collection (:func:`pytest_collection_modifyitems`)."""
SHARED_SCOPES = ("class", "module", "package", "session")


def _module_path(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that uses one of this suite's fixtures of a scope wider than the test from a module not in
    :data:`SHARED_FIXTURE_MODULES` (pytest-xdist would compute that fixture once per worker that runs one of
    its tests). pytest's own fixtures (``tmp_path_factory``) and plugins' do not count."""
    missing = set()
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        for definitions in (info.name2fixturedefs.values() if info is not None else ()):
            fixture = definitions[-1]
            if fixture.baseid and fixture.scope in SHARED_SCOPES \
                    and _module_path(item.nodeid) not in SHARED_FIXTURE_MODULES:
                missing.add(f"{_module_path(item.nodeid)} (fixture {fixture.argname!r}, scope {fixture.scope})")
    if missing:
        raise pytest.UsageError("add to SHARED_FIXTURE_MODULES in tests/conftest.py: " + "; ".join(sorted(missing)))


if importlib.util.find_spec("xdist") is not None:
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        """``--dist loadgroup`` for this suite: the tests of a module in :data:`SHARED_FIXTURE_MODULES` form one
        unit of work, every other test is a unit of its own; larger units are sent first (xdist's
        ``loadscopereorder``). pytest-xdist's own loadgroup reads ``xdist_group`` marks through node ids that
        pytest 9.2 no longer lets it rewrite, so it silently stops grouping (pytest-xdist issue #1386)."""

        def _split_scope(self, nodeid: str) -> str:
            module = _module_path(nodeid)
            return module if module in SHARED_FIXTURE_MODULES else nodeid

    def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LoadScopeScheduling | None:
        """pytest-xdist's hook (``xdist/newhooks.py``): this suite's scheduler for ``--dist loadgroup``."""
        return SharedFixtureScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None
