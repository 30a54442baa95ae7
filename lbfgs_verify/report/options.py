"""Choosing the problem set (``--problems``) and the sections (``--sections``) of a report."""

from __future__ import annotations

import re

from lbfgs_verify.problems.base import Problem


class ProblemSetError(ValueError):
    """``--problems`` named neither a set nor known problems; the message lists the sets and close names."""


PROBLEM_SETS = ("suite", "mgh", "extra", "mgh-scaled")


SECTIONS = ("convergence", "agreement", "properties", "fuzz", "resume", "benchmarks")
"""The report's optional sections (``--sections``): convergence runs every solver on every problem (and feeds the
performance profiles), agreement the bitwise and scipy comparisons, properties ``lbfgs-verify check``, fuzz the
state_dict fuzzer, resume the every-split resume grid, benchmarks pytest-benchmark."""


def section_set(text: str | None, *, no_benchmarks: bool = False) -> frozenset[str]:
    """``--sections a,b`` (default: all of :data:`SECTIONS`; ``none``: only the header, environment and solvers),
    less benchmarks with ``--no-benchmarks``."""
    if text is None or not text.strip():
        chosen = set(SECTIONS)
    else:
        chosen = {part.strip() for part in text.split(",") if part.strip() and part.strip() != "none"}
        unknown = sorted(chosen - set(SECTIONS))
        if unknown:
            raise ProblemSetError(f"--sections {', '.join(unknown)}: unknown section; choose from "
                                  f"{', '.join(SECTIONS)}")
    if no_benchmarks:
        chosen.discard("benchmarks")
    return frozenset(chosen)


DEFAULT_SOLVER_IDS = ("reference", "torch", "torch-strong_wolfe", "scipy", "minimize_lbfgsb")
"""The ids of the five default solvers (:func:`lbfgs_verify.report.solvers.default_solvers`)."""


def solver_set(text: str | None) -> tuple[str, ...] | None:
    """``--solvers a,b``: the default solvers and built-in adapters to run, by id (a default solver's id or a
    built-in adapter's name, :data:`lbfgs_verify.targets.kinds.BUILTINS`); ``None`` (no option): every default
    solver and every installed built-in. ``--target`` solvers always run. An unknown id raises
    :class:`ProblemSetError` naming the valid ones."""
    if text is None:
        return None
    from lbfgs_verify.targets.kinds import BUILTINS

    known = list(DEFAULT_SOLVER_IDS) + [spec for spec in BUILTINS if spec not in DEFAULT_SOLVER_IDS]
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip() and part.strip() != "none"))
    unknown = [part for part in chosen if part not in known]
    if unknown:
        raise ProblemSetError(f"--solvers {', '.join(unknown)}: unknown solver; choose from {', '.join(known)} "
                              "(or none: only the --target solvers)")
    return chosen


def short_name(name: str) -> str:
    """``mgh01_rosenbrock[n=2,x0*1,float64]`` -> ``rosenbrock``; ``spd_quadratic[...]`` -> ``spd_quadratic``."""
    return re.sub(r"^mgh\d\d_", "", name.split("[")[0])


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` as in a shell glob; every other character (brackets of problem names too) literal."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def _select(part: str, candidates: list[Problem]) -> list[Problem]:
    """The ``suite`` problems a short name (``rosenbrock``, ``mgh01``) or a glob (``*rosenbrock*``) names."""
    def keys(problem: Problem) -> tuple[str, ...]:
        number = re.match(r"mgh\d\d(?=_)", problem.name)
        return (problem.name, problem.name.split("[")[0], short_name(problem.name), *([number[0]] if number else []))

    if "*" in part or "?" in part:
        pattern = _glob(part)
        return [p for p in candidates if any(pattern.fullmatch(key) for key in keys(p))]
    return [p for p in candidates if part in keys(p)[1:]]


def problem_set(name: str) -> list[Problem]:
    """``suite`` (35 MGH + the other suite problems), ``mgh``, ``extra``, ``mgh-scaled`` (35 MGH from 1, 10 and
    100 times x0), or comma-separated problems: full names that :func:`lbfgs_verify.problems.get_problem`
    resolves, or short names (``rosenbrock``, ``mgh05``, ``spd_quadratic``) and globs (``*rosenbrock*``,
    ``mgh0?``) picked from the ``suite`` set."""
    from lbfgs_verify.problems import extra_problems, get_problem, mgh_suite, suite_problems

    if name == "suite":
        return suite_problems()
    if name == "mgh":
        return mgh_suite()
    if name == "extra":
        return extra_problems()
    if name == "mgh-scaled":
        return mgh_suite(scales=(1.0, 10.0, 100.0))
    problems: list[Problem] = []
    suite: list[Problem] | None = None
    for part in (p.strip() for p in re.split(r",(?![^\[]*\])", name)):  # commas inside [...] are the name's
        if not part:
            continue
        try:
            problems.append(get_problem(part))
            continue
        except KeyError as exc:
            miss = exc.args[0]
        suite = suite if suite is not None else suite_problems()
        picked = _select(part, suite)
        if not picked:
            raise ProblemSetError(f"--problems {part!r}: not one of the sets {', '.join(PROBLEM_SETS)}, no short "
                                  f"name or glob of a suite problem (e.g. rosenbrock, mgh05, '*quadratic*') and "
                                  f"{miss}")
        problems += [p for p in picked if p.name not in {q.name for q in problems}]
    if not problems:
        raise ProblemSetError(f"--problems {name!r}: choose one of {', '.join(PROBLEM_SETS)} or give problem names")
    return problems
