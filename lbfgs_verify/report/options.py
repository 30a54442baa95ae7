"""Choosing the problem set of a report (``--problems``)."""

from __future__ import annotations

import re

from lbfgs_verify.problems.base import Problem


class ProblemSetError(ValueError):
    """``--problems`` named neither a set nor known problems; the message lists the sets and close names."""


PROBLEM_SETS = ("suite", "mgh", "extra", "mgh-scaled")


def problem_set(name: str) -> list[Problem]:
    """``suite`` (35 MGH + the other suite problems), ``mgh``, ``extra``, ``mgh-scaled`` (35 MGH from 1, 10 and
    100 times x0), or comma-separated names that :func:`lbfgs_verify.problems.get_problem` resolves."""
    from lbfgs_verify.problems import extra_problems, get_problem, mgh_suite, suite_problems

    if name == "suite":
        return suite_problems()
    if name == "mgh":
        return mgh_suite()
    if name == "extra":
        return extra_problems()
    if name == "mgh-scaled":
        return mgh_suite(scales=(1.0, 10.0, 100.0))
    problems = []
    for part in (p.strip() for p in re.split(r",(?![^\[]*\])", name)):  # commas inside [...] are the name's
        if not part:
            continue
        try:
            problems.append(get_problem(part))
        except KeyError as exc:
            raise ProblemSetError(f"--problems {part!r}: not one of the sets {', '.join(PROBLEM_SETS)} and "
                                  f"{exc.args[0]}") from None
    if not problems:
        raise ProblemSetError(f"--problems {name!r}: choose one of {', '.join(PROBLEM_SETS)} or give problem names")
    return problems
