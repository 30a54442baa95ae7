"""What a newcomer copies from the README works, and what it names exists.

- the problem-suite snippet runs as written (its imports included);
- the ``Problem`` fields the README lists are the fields of :class:`lbfgs_verify.problems.base.Problem`;
- the category list names every registered category;
- the README sections that ``.ci/run`` refers to exist.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from lbfgs_verify.problems.base import Problem
from lbfgs_verify.properties.base import REGISTRY, load_all

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.M | re.S)
    assert match, f"README has no section '## {title}'"
    return match.group(1)


def test_problem_suite_snippet_runs_as_written() -> None:
    snippet = re.search(r"```python\n(.*?)```", _section("The problem suite"), flags=re.S)
    assert snippet, "the problem-suite section has no python snippet"
    namespace: dict[str, object] = {}
    exec(compile(snippet.group(1), "README.md (problem suite)", "exec"), namespace)
    problem, params, closure = namespace["p"], namespace["params"], namespace["closure"]
    assert isinstance(problem, Problem) and callable(closure) and params


def test_problem_fields_named_in_the_readme_exist() -> None:
    fields = {f.name for f in dataclasses.fields(Problem)}
    sentence = re.search(r"A `Problem` is one immutable object:(.*?)\.\s", _section("The problem suite"), flags=re.S)
    assert sentence, "the README no longer describes the Problem fields"
    named = set(re.findall(r"`(\w+)`", sentence.group(1))) - {"REACHES_F_STAR", "STATIONARY_POINT"}
    assert {"f_star", "expectation", "source"} <= named
    assert named <= fields, f"README names Problem fields that do not exist: {sorted(named - fields)}"


def test_every_registered_category_is_listed() -> None:
    load_all()
    listed = set(re.findall(r"`(\w+)\.\*`", _section("Check your optimizer")))
    assert {p.category for p in REGISTRY.values()} <= listed


def test_sections_that_the_ci_script_names_exist() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    named = re.findall(r'README, "([^"]+)"', ci)
    assert named, ".ci/run names no README section (the test would check nothing)"
    for title in named:
        _section(title)


def test_the_ci_script_runs_the_readme_test_command() -> None:
    """``.ci/run`` runs the README's test command, options included (``-n auto`` and the rest)."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    block = re.search(r"Run the tests \(what CI runs, `\.ci/run`\):\s*```bash\n(.*?)```", README, flags=re.S)
    assert block, "the README has no 'Run the tests' command block"
    readme_command = block.group(1).strip().split(" && ")[-1]
    ci_commands = [line.strip() for line in ci.splitlines() if "-m pytest" in line and not line.startswith("#")]
    assert ci_commands == [readme_command], f".ci/run runs {ci_commands}, the README says {readme_command!r}"
