"""``check --jobs N``: properties in worker processes give the verdicts of a serial run."""

from __future__ import annotations

import pytest
import torch

from lbfgs_verify.properties.base import load_all
from lbfgs_verify.properties.runner import property_groups, run_check, select_properties
from lbfgs_verify.targets.load import Target, load_target


def test_groups_cover_every_property_once_and_keep_categories_together() -> None:
    load_all()
    selected = select_properties("properties")
    for jobs in (1, 2, 3, 8):
        groups = property_groups(selected, jobs)
        assert len(groups) <= jobs
        assert sorted(p.id for g in groups for p in g) == sorted(p.id for p in selected)
    groups = property_groups(selected, 2)
    resume = [i for i, g in enumerate(groups) if any(p.id.startswith("resume.") for p in g)]
    assert len(resume) == 1  # the resume.* properties share their recordings: one process


def test_two_processes_give_the_serial_verdicts() -> None:
    load_all()
    selected = select_properties("properties", ["resume.torch_save", "resume.deepcopy_optimizer", "state.snapshot",
                                                "behaviour.defaults"])
    target = load_target("torch.optim:LBFGS")
    serial = run_check(target, "properties", "quick", properties=selected)
    parallel = run_check(target, "properties", "quick", properties=selected, jobs=2)
    assert [r.property for r in parallel.results] == [p.id for p in selected]
    assert [(r.property, r.status, r.detail) for r in parallel.results] == \
        [(r.property, r.status, r.detail) for r in serial.results]
    assert any(r.status.value == "fail" for r in serial.results)  # torch 2.13 fails deepcopy_optimizer


def test_a_target_that_workers_cannot_import_is_refused_before_running() -> None:
    load_all()
    local = Target("tests.nowhere:LBFGS", torch.optim.LBFGS)
    with pytest.raises(ValueError, match="cannot be loaded by its spec"):
        run_check(local, "properties", "quick", properties=select_properties("properties", ["resume.torch_save",
                                                                                           "state.snapshot"]), jobs=2)
