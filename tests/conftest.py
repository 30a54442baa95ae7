"""Shared test set-up: the hypothesis profile (``LBFGS_VERIFY_PROFILE``, default ``ci``), the thread count, and
the grouping of tests for pytest-xdist."""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify.hypothesis_profiles import load_profile

load_profile()
# Bits depend on the thread count: every comparison in this suite runs single-threaded.
torch.set_num_threads(1)

SHARED_SCOPES = ("class", "module", "package", "session")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses one of this suite's fixtures of a scope wider than the test with
    ``xdist_group``, so that ``pytest -n N --dist loadgroup`` runs the tests sharing that fixture in one worker and
    computes it once (a report, scipy's routed suite, the MGH runs), while all other tests spread one by one.
    Fixtures of pytest itself (``tmp_path_factory``) and of plugins do not group. Runs before pytest-xdist's own
    hook (``xdist/remote.py``), which reads the marks. Serially the marks change nothing."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        groups = set()
        for definitions in info.name2fixturedefs.values():
            fixture = definitions[-1]
            if not fixture.baseid or fixture.scope not in SHARED_SCOPES:
                continue  # pytest's own or a plugin's fixture, or one computed per test
            if fixture.scope in ("class", "module"):
                groups.add(item.module.__name__ if item.module is not None else fixture.baseid)
            else:
                groups.add(f"{fixture.baseid}::{fixture.argname}")
        for group in sorted(groups):
            item.add_marker(pytest.mark.xdist_group(group))
