"""pytest plugin of lbfgs_verify: run the property suite as pytest tests.

    pytest --pyargs lbfgs_verify.suite --lbfgs-target mypkg:MyLBFGS [--lbfgs-level semantics]
           [--lbfgs-budget quick|ci|thorough] [--lbfgs-threads N] [--lbfgs-only ID-or-prefix]
           [--lbfgs-lacks complex,strong_wolfe] [--lbfgs-skips-file PATH]

Every option has an ini twin (``lbfgs_target``, ``lbfgs_level``, ``lbfgs_budget``, ``lbfgs_threads``,
``lbfgs_only``, ``lbfgs_lacks``, ``lbfgs_skips_file``) for ``[tool.pytest.ini_options]``; the target may also
come from ``LBFGS_VERIFY_TARGET``. ``--lbfgs-mode``/``lbfgs_mode`` are other names of the level. Precedence:
command line, then ini, then the environment. Declared lacks are merged with the target's optional
``lbfgs_verify_lacks`` attribute.

To run the suite inside your own tests, write a test module containing::

    from lbfgs_verify.suite.test_properties import *  # noqa: F403

and set ``lbfgs_target = mypkg:MyLBFGS`` in your pytest configuration.

The plugin is loaded in every pytest run (``pytest11`` entry point) and stays inert unless a test requests
the ``lbfgs_property`` fixture (the suite's test does) or a target is configured: it imports nothing heavy
(no torch) at import time, adds no header lines and no tests. When suite tests are collected without a
target, collection stops with a usage error that says what to set (like array-api-tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from lbfgs_verify.targets.load import TARGET_ENV_VAR

if TYPE_CHECKING:
    from collections.abc import Iterator

    from lbfgs_verify.properties.base import CheckContext, PropertyResult

MODES = ("properties", "semantics", "conformance")
BUDGETS = ("quick", "ci", "thorough")
DEFAULT_MODE = "properties"
DEFAULT_BUDGET = "ci"
DEFAULT_THREADS = 1
PROPERTY_FIXTURE = "lbfgs_property"

MISSING_TARGET_MESSAGE = (
    "lbfgs_verify.suite needs the optimizer to check. Pass --lbfgs-target module:attr "
    "(e.g. --lbfgs-target torch.optim:LBFGS), or set `lbfgs_target = module:attr` in [tool.pytest.ini_options] "
    f"(pytest.ini: [pytest]), or set the environment variable {TARGET_ENV_VAR}."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lbfgs-verify", "lbfgs_verify property suite (pytest --pyargs lbfgs_verify.suite)")
    group.addoption("--lbfgs-target", dest="lbfgs_target", metavar="MODULE:ATTR", default=None,
                    help=f"optimizer class/factory to check (ini: lbfgs_target; env: {TARGET_ENV_VAR})")
    group.addoption("--lbfgs-level", "--lbfgs-mode", dest="lbfgs_mode", choices=MODES, default=None,
                    help="properties (default), semantics (also torch's documented behaviour) or conformance "
                         "(also bitwise torch.optim.LBFGS) (ini: lbfgs_level or lbfgs_mode)")
    group.addoption("--lbfgs-lacks", dest="lbfgs_lacks", action="append", default=None, metavar="FEATURE,...",
                    help="features the target lacks: never drawn, properties needing them skip (ini: lbfgs_lacks)")
    group.addoption("--lbfgs-skips-file", dest="lbfgs_skips_file", default=None, metavar="PATH",
                    help="property IDs or prefixes to skip, one a line as 'ID  # reason' (ini: lbfgs_skips_file)")
    group.addoption("--lbfgs-budget", dest="lbfgs_budget", choices=BUDGETS, default=None,
                    help="quick, ci (default) or thorough (ini: lbfgs_budget)")
    group.addoption("--lbfgs-threads", dest="lbfgs_threads", type=int, default=None, metavar="N",
                    help="torch thread count for every run, default 1 (ini: lbfgs_threads)")
    group.addoption("--lbfgs-only", dest="lbfgs_only", action="append", default=None, metavar="ID",
                    help="only property IDs equal to or starting with ID (repeatable; ini: lbfgs_only)")
    group.addoption("--lbfgs-repro", dest="lbfgs_repro", default=None, metavar="DIR",
                    help="write one standalone reproduction script per failure cause into DIR (as check --repro)")
    group.addoption("--lbfgs-no-baseline", dest="lbfgs_no_baseline", action="store_true", default=False,
                    help="do not run torch.optim.LBFGS on the failed properties to mark the failures it shares "
                         "(as check --no-baseline)")
    parser.addini("lbfgs_target", f"optimizer to check, module:attr (or set {TARGET_ENV_VAR})", default=None)
    parser.addini("lbfgs_level", "lbfgs_verify level: properties, semantics or conformance", default=None)
    parser.addini("lbfgs_mode", "another name of lbfgs_level", default=None)
    parser.addini("lbfgs_lacks", "features the target lacks (comma- or whitespace-separated)", type="args",
                  default=[])
    parser.addini("lbfgs_skips_file", "a skips file: property IDs or prefixes with reasons", default=None)
    parser.addini("lbfgs_budget", "lbfgs_verify budget: quick, ci or thorough", default=None)
    parser.addini("lbfgs_threads", "torch thread count for lbfgs_verify runs", default=None)
    parser.addini("lbfgs_only", "property IDs or prefixes to run (whitespace-separated)", type="args", default=[])


@dataclass(frozen=True)
class SuiteSettings:
    """The resolved options; ``target_source`` says where the target came from (for the header)."""

    target: str | None
    target_source: str
    mode: str
    budget: str
    threads: int
    only: tuple[str, ...]
    lacks: frozenset[str] = frozenset()
    lacks_source: str = ""
    skips: tuple[tuple[str, str], ...] = ()
    skips_file: str | None = None


def suite_settings(config: pytest.Config) -> SuiteSettings:
    """Options, then ini values, then ``LBFGS_VERIFY_TARGET``; invalid ini values raise ``pytest.UsageError``."""
    target, source = config.getoption("lbfgs_target"), "--lbfgs-target"
    if not target:
        target, source = config.getini("lbfgs_target"), "ini lbfgs_target"
    if not target:
        target, source = os.environ.get(TARGET_ENV_VAR) or None, TARGET_ENV_VAR
    if not target:
        source = "none"
    mode = (config.getoption("lbfgs_mode") or config.getini("lbfgs_level") or config.getini("lbfgs_mode")
            or DEFAULT_MODE)
    budget = config.getoption("lbfgs_budget") or config.getini("lbfgs_budget") or DEFAULT_BUDGET
    threads_text = config.getoption("lbfgs_threads") or config.getini("lbfgs_threads") or DEFAULT_THREADS
    only = tuple(config.getoption("lbfgs_only") or config.getini("lbfgs_only") or ())
    if mode not in MODES:
        raise pytest.UsageError(f"lbfgs_mode = {mode!r}: choose one of {', '.join(MODES)}")
    if budget not in BUDGETS:
        raise pytest.UsageError(f"lbfgs_budget = {budget!r}: choose one of {', '.join(BUDGETS)}")
    try:
        threads = int(threads_text)
    except ValueError:
        raise pytest.UsageError(f"lbfgs_threads = {threads_text!r} is not an integer") from None
    if threads < 1:
        raise pytest.UsageError(f"lbfgs_threads = {threads} must be at least 1")
    from lbfgs_verify.engine.capabilities import CapabilityError, SkipsFileError, parse_lacks, read_skips_file

    lacks_option = config.getoption("lbfgs_lacks")
    lacks_source = "--lbfgs-lacks" if lacks_option else "ini lbfgs_lacks"
    try:
        lacks = parse_lacks(lacks_option or config.getini("lbfgs_lacks") or None)
    except CapabilityError as exc:
        raise pytest.UsageError(f"{lacks_source}: {exc}") from None
    skips_file = config.getoption("lbfgs_skips_file") or config.getini("lbfgs_skips_file") or None
    skips: dict[str, str] = {}
    if skips_file:
        from lbfgs_verify.properties.base import REGISTRY, load_all

        load_all()
        try:
            skips = read_skips_file(skips_file, REGISTRY)
        except SkipsFileError as exc:
            raise pytest.UsageError(str(exc)) from None
    return SuiteSettings(target.strip() if target else None, source, mode, budget, threads, only, lacks,
                         lacks_source if lacks else "", tuple(skips.items()), skips_file)


def _lacks_sources(settings: SuiteSettings, target: object) -> dict[str, list[str]]:
    from lbfgs_verify.properties.runner import declared_lacks_of

    return declared_lacks_of(target, (settings.lacks_source or "--lbfgs-lacks", sorted(settings.lacks)))  # type: ignore[arg-type]


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = suite_settings(config)
    if settings.target is None:
        return []
    from lbfgs_verify.properties.base import BUDGETS as BUDGET_OBJECTS
    from lbfgs_verify.properties.runner import execution_description, header_lines, library_versions, target_version
    from lbfgs_verify.targets.load import load_target

    sources: dict[str, list[str]] = {}
    execution = None
    try:
        target = load_target(settings.target, root=config.rootpath)
        version = target_version(target)
        sources = _lacks_sources(settings, target)
        execution = execution_description(target)
    except Exception as exc:  # TargetLoadError, or a bad lbfgs_verify_lacks attribute
        version = f"cannot be loaded: {exc}"
    lines = header_lines(settings.target, version, settings.mode, BUDGET_OBJECTS[settings.budget], settings.threads,
                         library_versions(), sources, dict(settings.skips), execution)
    lines[0] += f" [from {settings.target_source}]"
    if settings.only:
        lines.append(f"lbfgs-verify: only {', '.join(settings.only)}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that requests ``lbfgs_property`` over the property IDs of the configured mode."""
    if PROPERTY_FIXTURE not in metafunc.fixturenames:
        return
    from lbfgs_verify.properties.runner import SelectionError, select_properties

    settings = suite_settings(metafunc.config)
    try:
        ids = [p.id for p in select_properties(settings.mode, settings.only)]
    except SelectionError as exc:
        raise pytest.UsageError(str(exc)) from None
    metafunc.parametrize(PROPERTY_FIXTURE, ids, ids=ids)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop with a usage error when suite tests were collected but no (loadable) target is configured."""
    if not any(PROPERTY_FIXTURE in getattr(item, "fixturenames", ()) for item in items):
        return
    settings = suite_settings(config)
    if settings.target is None:
        raise pytest.UsageError(MISSING_TARGET_MESSAGE)
    from lbfgs_verify.properties.runner import interface_problem
    from lbfgs_verify.targets.load import TargetLoadError, load_target

    try:
        target = load_target(settings.target, root=config.rootpath)
    except TargetLoadError as exc:
        raise pytest.UsageError(f"lbfgs_verify.suite: {exc} (target from {settings.target_source})") from None
    from lbfgs_verify.engine.capabilities import CapabilityError

    try:
        sources = _lacks_sources(settings, target)
    except CapabilityError as exc:
        raise pytest.UsageError(f"lbfgs_verify.suite: target {settings.target!r}: {exc}") from None
    problem = interface_problem(target, [f for fs in sources.values() for f in fs])
    if problem is not None:
        raise pytest.UsageError(f"lbfgs_verify.suite: target {settings.target!r} cannot be checked: {problem}")


@pytest.fixture(scope="session")
def lbfgs_check_context(pytestconfig: pytest.Config) -> Iterator[CheckContext]:
    """The :class:`~lbfgs_verify.properties.base.CheckContext` of the configured target, mode, budget, threads.
    The uninterrupted recordings are shared by the whole session, as ``lbfgs-verify check`` shares them
    (:mod:`lbfgs_verify.engine.recordings`)."""
    from lbfgs_verify.engine.recordings import shared_recordings
    from lbfgs_verify.properties.base import BUDGETS as BUDGET_OBJECTS
    from lbfgs_verify.properties.base import CheckContext
    from lbfgs_verify.targets.load import load_target

    settings = suite_settings(pytestconfig)
    if settings.target is None:
        raise pytest.UsageError(MISSING_TARGET_MESSAGE)
    target = load_target(settings.target, root=pytestconfig.rootpath)
    lacks = frozenset(f for fs in _lacks_sources(settings, target).values() for f in fs)
    with shared_recordings():
        yield CheckContext(target=target, mode=settings.mode, budget=BUDGET_OBJECTS[settings.budget],
                           threads=settings.threads, lacks=lacks, skips=dict(settings.skips))



RESULTS_KEY = pytest.StashKey[list]()
"""Where the suite's tests leave their :class:`~lbfgs_verify.properties.base.PropertyResult` for the summary."""


@pytest.fixture(scope="session")
def lbfgs_results(pytestconfig: pytest.Config) -> list[PropertyResult]:
    """The results of the suite's tests in this session (the same records ``lbfgs-verify check`` collects)."""
    return pytestconfig.stash.setdefault(RESULTS_KEY, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """What ``lbfgs-verify check`` prints after its table, for the same results: the baseline marks (torch
    fails this too, same cause), the failures grouped by cause, and ``--lbfgs-repro`` scripts. One behaviour,
    two faces: the functions are :mod:`lbfgs_verify.properties.runner`'s (a run under pytest-xdist keeps its
    results in the workers: this summary is then left out)."""
    results = config.stash.get(RESULTS_KEY, [])
    if not results:
        return
    import io
    from pathlib import Path

    from lbfgs_verify.properties.base import BUDGETS as BUDGET_OBJECTS
    from lbfgs_verify.properties.runner import (
        RunReport,
        library_versions,
        mark_baseline_failures,
        print_baseline,
        print_notes,
        print_shared_causes,
        summary_line,
        target_version,
        write_reproductions,
    )
    from lbfgs_verify.targets.load import load_target

    settings = suite_settings(config)
    target = load_target(settings.target, root=config.rootpath)  # type: ignore[arg-type]
    report = RunReport(target.spec, target_version(target), settings.mode, BUDGET_OBJECTS[settings.budget],
                       settings.threads, library_versions(), list(results),
                       lacks=frozenset(f for fs in _lacks_sources(settings, target).values() for f in fs))
    if not config.getoption("lbfgs_no_baseline"):
        mark_baseline_failures(report, target)
    text = io.StringIO()
    print(summary_line(report).split(" in ")[0], file=text)
    print_baseline(report, text)
    print_shared_causes(report, text)
    print_notes(report, text)
    repro = config.getoption("lbfgs_repro")
    if repro:
        write_reproductions(report, Path(repro), text)
    terminalreporter.write_sep("=", "lbfgs-verify summary")
    for line in text.getvalue().splitlines():
        terminalreporter.write_line(line)
