"""``lbfgs-verify report`` on a tiny problem set: every section present in index.md and index.html and agreeing
with report.json, plots that are real images naming the right solvers, a third-party target in every section,
a target that raises or ends at NaN shown as failed, the fuzz matrix (with an injected run_fuzz, and the section
when there is no fuzzer), determinism apart from the timing fields, and the page in a real headless browser."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import sys
import types
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lbfgs_verify.cli import main
from lbfgs_verify.problems import mgh_problem
from lbfgs_verify.report import REPORT_BUDGETS, ReportOptions, collect, without_timings
from lbfgs_verify.report import plots as report_plots
from lbfgs_verify.report.benchmarks import STEP_SPEED, benchmark_ratios, run_benchmarks
from lbfgs_verify.report.document import SECTION_IDS, build_sections, fmt
from lbfgs_verify.report.markdown import render_markdown
from lbfgs_verify.report.profiles import performance_profile
from lbfgs_verify.report.verdicts import FUZZ_UNAVAILABLE, fuzz_reports
from lbfgs_verify.report.write import write_report
from tests.fast.report_browser import find_browser, inspect_page

FLAKY = "tests.fast.report_targets:FlakyLBFGS"
FLAKY_ID = f"target:{FLAKY}"
TINY_BUDGET = dataclasses.replace(REPORT_BUDGETS["quick"], bitwise_problems=2, bitwise_steps=3, resume_steps=3,
                                  fuzz_examples=2, benchmark_max_time=0.005)
CHECKED = ("state.round_trip_exact", "resume.torch_save")


def _fake_fuzz_module() -> types.ModuleType:
    """A stand-in for ``lbfgs_verify.fuzz`` with its contract (``FuzzReport.to_json``: ``matrix`` counts every
    generated case, ``results`` holds one entry per (kind, route/class, outcome)); its outcomes depend on the
    target, so the matrix must be built per target from what run_fuzz returned."""

    class FakeFuzzReport:
        def __init__(self, target: Any, examples: int, seed: int, lacks: frozenset[str]) -> None:
            self.target, self.examples, self.seed, self.lacks = target, examples, seed, lacks

        def to_json(self) -> dict[str, Any]:
            torch_like = self.target.spec.startswith("torch")
            n = self.examples
            routes = {"save-load": {"exact": n}, "in-memory": {"diverged" if torch_like else "exact": n}}
            bad = "silent" if torch_like else "rejected-at-load"
            classes = {"wrong-size": {bad: n}, "non-finite": {bad: n - 1, "absorbed": 1},
                       "extra-key": {"absorbed" if torch_like else "rejected-at-load": 1}}
            results = [{"kind": "valid", "route": route, "class": None, "outcome": outcome, "message": "",
                        "example": {}} for route, outcomes in routes.items() for outcome in outcomes]
            results += [{"kind": "corrupt", "route": "save-load", "class": cls, "outcome": outcome, "message": "",
                         "example": {}} for cls, outcomes in classes.items() for outcome in outcomes]
            return {"target": self.target.spec, "versions": {}, "results": results,
                    "matrix": {"routes": routes, "classes": classes}}

    module = types.ModuleType("lbfgs_verify.fuzz")

    def run_fuzz(target: Any, *, examples: int = 60, seed: int = 0, routes: Any = None, classes: Any = None,
                 lacks: frozenset[str] = frozenset(), on_progress: Any = None) -> FakeFuzzReport:
        return FakeFuzzReport(target, examples, seed, lacks)

    module.run_fuzz = run_fuzz  # type: ignore[attr-defined]
    module.FINDINGS = frozenset({"diverged", "crashed", "error-at-step", "silent"})  # type: ignore[attr-defined]
    return module


def _options(out: Path, **changes: Any) -> ReportOptions:
    base = ReportOptions(
        out=out, budget=TINY_BUDGET, targets=(FLAKY,), problem_set="tiny",
        # n = 2: Flaky runs; n = 3: Flaky raises; n = 4: Flaky ends at NaN.
        problems=[mgh_problem(1), mgh_problem(7), mgh_problem(13)],
        default_solvers=("reference", "torch-strong_wolfe", "scipy", "minimize_lbfgsb"), check_only=CHECKED,
        history_sizes=(100,), progress=False)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "lbfgs_verify.fuzz", _fake_fuzz_module())
        report = write_report(_options(out))
    return report, out


@pytest.fixture(scope="module")
def data(written: tuple[dict[str, Any], Path]) -> dict[str, Any]:
    return json.loads((written[1] / "report.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def markdown(written: tuple[dict[str, Any], Path]) -> str:
    return (written[1] / "index.md").read_text(encoding="utf-8")


def md_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table as a list of {header: cell} rows."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            headers = _cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(dict(zip(headers, _cells(lines[i]), strict=True)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def _cells(line: str) -> list[str]:
    return [html.unescape(c.strip().replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def table_with(text: str, header: str) -> list[dict[str, str]]:
    found = [t for t in md_tables(text) if t and header in t[0]]
    assert found, f"no table with a column {header!r}"
    return found[0]


# ------------------------------------------------------------------------------------------- sections and numbers


def test_every_section_is_in_markdown_html_and_json(data: dict[str, Any], markdown: str,
                                                    written: tuple[dict[str, Any], Path]) -> None:
    page = (written[1] / "index.html").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", markdown, flags=re.M)
    assert len(headings) == len(SECTION_IDS)
    for section_id in SECTION_IDS:
        assert f'<section id="{section_id}">' in page
    for key in ("environment", "solvers", "convergence", "profiles", "agreement", "check", "fuzz", "resume",
                "benchmarks", "command", "timing_fields"):
        assert key in data


def test_convergence_tables_agree_with_json(data: dict[str, Any], markdown: str) -> None:
    names = {s["id"]: s["name"] for s in data["solvers"]}
    summary = {row["solver"]: row for row in table_with(markdown, "median evaluations to solve")}
    for row in data["convergence"]["summary"]:
        shown = summary[names[row["solver"]]]
        assert (int(shown["solved"]), int(shown["failed"])) == (row["solved"], row["failed"])
    per_problem = {row["problem"]: row for row in table_with(markdown, "f_ref")}
    for run in data["convergence"]["runs"]:
        shown = per_problem[run["problem"]][names[run["solver"]]]
        if run["status"] != "ok":
            assert shown == run["status"]
            continue
        gap, evaluations = shown.split(" (")[0].split(" / ")
        assert float(gap) == pytest.approx(float(run["f_minus_f_ref"]), rel=1e-5, abs=1e-300)
        assert int(evaluations) == run["evaluations"]
        assert ("unsolved" not in shown) == run["solved"]


def test_agreement_check_resume_and_benchmark_tables_agree_with_json(data: dict[str, Any], markdown: str) -> None:
    names = {s["id"]: s["name"] for s in data["solvers"]}
    bitwise = table_with(markdown, "configuration")
    for c in data["agreement"]["bitwise"]["cells"]:
        row = next(r for r in bitwise if r["configuration"] == c["configuration"])
        assert row[names[c["solver"]]].startswith(f"{c['status']} {c['bitwise_problems']}/{c['problems']}")
    lbfgsb = {r["problem"]: r for r in table_with(markdown, "counts identical")}
    for r in data["agreement"]["lbfgsb_vs_scipy"]["rows"]:
        assert lbfgsb[r["problem"]]["nfev (ours / scipy)"] == f"{r['nfev_minimize_lbfgsb']} / {r['nfev_scipy']}"
        assert lbfgsb[r["problem"]]["first iteration beyond 1e-08"] == fmt(r["first_iteration_beyond_tolerance"])
    solution = {r["problem"]: r for r in table_with(markdown, "explanation")}
    for r in data["agreement"]["solution"]:
        assert solution[r["problem"]]["verdict"] == r["verdict"]
        assert float(solution[r["problem"]]["f torch"]) == pytest.approx(float(r["f_torch"]), rel=1e-5, abs=1e-300)
    grid = {r["property"].strip("`"): r for r in table_with(markdown, "property")}
    for target, report in data["check"]["reports"].items():
        for result in report["results"]:
            assert grid[result["property"]][f"`{target}`"] == result["status"]
    resume = table_with(markdown, "bitwise splits")
    for row in data["resume"]["rows"]:
        if row["splits"]:
            shown = next(r for r in resume
                         if r["solver"] == names[row["solver"]] and r["transport"] == row["transport"])
            good = sum(s["status"] == "bitwise" for s in row["splits"])
            assert shown["bitwise splits"] == f"{good}/{len(row['splits'])}"
    bench = table_with(markdown, "paired ratio")
    assert len(bench) == len(data["benchmarks"]["rows"]) > 0
    torch_median = {r["case"]: float(r["median seconds"]) for r in bench if r["optimizer"] == "torch.optim.LBFGS"}
    for shown, row in zip(bench, data["benchmarks"]["rows"], strict=True):
        assert shown["optimizer"] == row["optimizer"]
        assert float(shown["median seconds"]) == pytest.approx(row["median_seconds"], rel=1e-5)
        assert shown["paired ratio"] == fmt(row["paired_ratio"])
        # the ratio shown next to the medians is the ratio of the medians shown
        assert float(shown["median / torch's median"]) == pytest.approx(
            float(shown["median seconds"]) / torch_median[shown["case"]], rel=1e-4)
    assert {r["optimizer"] for r in data["benchmarks"]["rows"]} == {"torch.optim.LBFGS",
                                                                    "lbfgs_verify.reference.LBFGS", FLAKY}


def test_environment_is_stated(data: dict[str, Any], markdown: str) -> None:
    env = data["environment"]
    for name in ("python", "torch", "numpy", "scipy", "hypothesis", "lbfgs_verify"):
        assert env["versions"][name] not in ("", "missing")
    table = {r["what"]: r["value"] for r in table_with(markdown, "what")}
    assert table["torch"] == env["versions"]["torch"]
    assert table["CUDA"] == env["cuda"]
    assert table["seed"] == "0" and table["threads in comparisons"] == "1"
    assert all(b["threads"] == 1 for b in env["threads"]["blas_libraries"])
    assert env["cpu"] and env["blas"]["numpy"] != "unknown"


class _Text(HTMLParser):
    """The text of every <td>/<th> cell of an HTML page, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._in: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("td", "th"):
            self._in = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._in is not None:
            self.cells.append("".join(self._in))
            self._in = None

    def handle_data(self, text: str) -> None:
        if self._in is not None:
            self._in.append(text)


def test_html_tables_show_the_markdown_cells(markdown: str, written: tuple[dict[str, Any], Path]) -> None:
    parser = _Text()
    parser.feed((written[1] / "index.html").read_text(encoding="utf-8"))
    md_cells = [c.replace("`", "") for table in md_tables(markdown) for row in table for c in
                [*row.keys(), *row.values()]]
    html_cells = [html.unescape(c) for c in parser.cells]
    missing = [c for c in md_cells if c not in html_cells]
    assert not missing, missing[:5]


# ------------------------------------------------------------------------------------------- targets and failures


def test_a_target_appears_in_every_section(data: dict[str, Any]) -> None:
    assert FLAKY_ID in [s["id"] for s in data["solvers"]]
    assert {r["problem"] for r in data["convergence"]["runs"] if r["solver"] == FLAKY_ID} == {
        p["name"] for p in data["problems"]}
    assert FLAKY_ID in data["profiles"]["evaluations"] and FLAKY_ID in data["profiles"]["time"]
    assert any(c["solver"] == FLAKY_ID for c in data["agreement"]["bitwise"]["cells"])
    assert any(r["solver"] == FLAKY_ID for r in data["agreement"]["final_f_vs_scipy"])
    assert FLAKY in data["check"]["reports"] and FLAKY in data["fuzz"]["reports"]
    assert any(r["solver"] == FLAKY_ID and r["splits"] for r in data["resume"]["rows"])
    assert any(r["optimizer"] == FLAKY for r in data["benchmarks"]["rows"])


def test_a_target_that_raises_or_ends_at_nan_is_failed_there_and_the_report_goes_on(
        data: dict[str, Any], markdown: str) -> None:
    runs = {r["problem"].split("_")[0]: r for r in data["convergence"]["runs"] if r["solver"] == FLAKY_ID}
    assert runs["mgh07"]["status"] == "failed" and "planted failure" in runs["mgh07"]["message"]
    assert runs["mgh13"]["status"] == "failed" and "NaN" in runs["mgh13"]["message"]
    assert runs["mgh01"]["status"] == "ok" and runs["mgh01"]["solved"]
    failures = table_with(markdown, "message")
    assert {r["problem"].split("_")[0] for r in failures if r["status"] == "failed"} == {"mgh07", "mgh13"}
    bitwise = [c for c in data["agreement"]["bitwise"]["cells"] if c["solver"] == FLAKY_ID]
    assert all(c["status"] == "failed" and "planted failure" in c["first_difference"] for c in bitwise)
    for text in (markdown, json.dumps(data)):  # no machine paths in a report that is committed and shared
        assert "site-packages/" not in text and str(Path.cwd()) not in text


# ------------------------------------------------------------------------------------------- plots


def _labels(path: Path) -> list[str]:
    with Image.open(path) as image:
        return json.loads(image.text[report_plots.LABELS_KEY])


def test_plots_are_non_empty_images_naming_the_right_solvers(data: dict[str, Any],
                                                             written: tuple[dict[str, Any], Path]) -> None:
    out = written[1]
    names = [s["name"] for s in data["solvers"]]
    plots = data["plots"]
    files = [plots[k] for k in plots if k != "convergence"] + list(plots["convergence"].values())
    assert {"profile_evaluations", "profile_time", "bitwise", "check", "fuzz", "resume", "benchmarks"} <= set(plots)
    bars = [(r["counts_identical"], r["max_relative_iterate_difference"])
            for r in data["agreement"]["lbfgsb_vs_scipy"]["rows"]]
    assert ("lbfgsb" in plots) == (len(set(bars)) > 1)  # equal bars: a sentence instead (see below)
    for relative in files:
        with Image.open(out / relative) as image:
            assert image.width > 100 and image.height > 100
            assert np.asarray(image.convert("L")).std() > 5, f"{relative} is blank"
    for key in ("profile_evaluations", "profile_time", "convergence_overview"):
        assert set(names) <= set(_labels(out / plots[key])), key
    for problem, relative in plots["convergence"].items():
        labels = _labels(out / relative)
        for run in (r for r in data["convergence"]["runs"] if r["problem"] == problem):
            name = next(s["name"] for s in data["solvers"] if s["id"] == run["solver"])
            assert (name if run["status"] == "ok" else f"{name} ({run['status']})") in labels
    checked = list(data["check"]["reports"])
    assert set(checked) <= set(_labels(out / plots["check"]))
    assert {f"{FLAKY} | {r}" for r in ("save-load", "in-memory")} - set(_labels(out / plots["fuzz"])) == {
        f"{FLAKY} | save-load", f"{FLAKY} | in-memory"}  # rows are cases, titles name targets (not labels)
    assert any(label.startswith(names[-1]) for label in _labels(out / plots["resume"]))
    assert any(label.startswith(f"{FLAKY} |") for label in _labels(out / plots["benchmarks"]))


def test_profile_legend_names_every_solver(data: dict[str, Any]) -> None:
    figure = report_plots.profile_figure(data, "evaluations")
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    report_plots.plt.close(figure)
    assert legend == [s["name"] for s in data["solvers"]]


# ------------------------------------------------------------------------------------------- fuzz


def test_fuzz_tables_count_generated_cases_as_the_json_matrix_does(data: dict[str, Any], markdown: str) -> None:
    """Each cell is the matrix count of report.json (cases), not the number of distinct ``results`` entries."""
    fuzz = data["fuzz"]
    n = TINY_BUDGET.fuzz_examples
    assert fuzz["available"] and fuzz["examples"] == n
    tables = [t for t in md_tables(markdown) if t and "route or class" in t[0]]
    assert len(tables) == len(fuzz["reports"])
    section = markdown.split("## State-dict fuzzer")[1].split("\n## ")[0]
    for (target, report), table in zip(fuzz["reports"].items(), tables, strict=True):
        shown = {(row["route or class"], outcome): int(value) for row in table for outcome, value in row.items()
                 if outcome != "route or class"}
        expected = {(f"{kind}: {name}", outcome): count
                    for kind, key in (("valid", "routes"), ("corrupt", "classes"))
                    for name, outcomes in report["matrix"][key].items() for outcome, count in outcomes.items()}
        assert {k: v for k, v in shown.items() if v} == expected
        cases = sum(expected.values())
        findings = sum(v for (_, o), v in expected.items() if o in fuzz["finding_outcomes"])
        distinct = sum(r["outcome"] in fuzz["finding_outcomes"] for r in report["results"])
        assert f"`{target}`: {findings} of {cases} generated cases are findings, in {distinct} distinct" in section
    torch_rows = {r["route or class"]: r for r in tables[list(fuzz["reports"]).index("torch.optim:LBFGS")]}
    assert torch_rows["valid: in-memory"]["diverged"] == str(n) and n > 1  # a count, not 0/1
    assert torch_rows["corrupt: extra-key"]["absorbed"] == "1"  # shown, and not counted as a finding
    flaky = tables[list(fuzz["reports"]).index(FLAKY)]
    assert set(flaky[0]) == {"route or class", "exact", "rejected-at-load", "absorbed"}  # no finding column


def test_without_a_fuzzer_the_section_says_so(monkeypatch: pytest.MonkeyPatch, data: dict[str, Any]) -> None:
    monkeypatch.setitem(sys.modules, "lbfgs_verify.fuzz", None)  # import raises ImportError
    fuzz = fuzz_reports([], examples=3, seed=0)
    assert fuzz == {"available": False, "message": FUZZ_UNAVAILABLE, "examples": 3, "reports": {}}
    text = render_markdown("t", build_sections({**data, "fuzz": fuzz}, data["plots"]))
    section = text.split("## State-dict fuzzer")[1].split("## ")[0]
    assert "Fuzzer not available in this version" in section and "|" not in section


# ------------------------------------------------------------------------------------------- determinism, pieces


def test_same_seed_same_numbers_except_timing_fields(tmp_path: Path) -> None:
    options = _options(tmp_path, targets=(), problems=[mgh_problem(1)], default_solvers=("torch-strong_wolfe",
                       "scipy"), check_only=("state.round_trip_exact",), benchmark_dir=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "lbfgs_verify.fuzz", None)
        first, second = collect(options), collect(options)
    assert first["seconds"] > 0 and first["convergence"]["runs"][0]["seconds"] > 0
    assert without_timings(first) == without_timings(second)
    stripped = without_timings(first)
    assert "seconds" not in stripped["convergence"]["runs"][0]
    assert "seconds" not in stripped["convergence"]["runs"][0]["curve"]
    assert "date" not in stripped["environment"] and "time" not in stripped["profiles"]


def test_performance_profile_matches_dolan_more() -> None:
    inf = float("inf")
    # ratios: A = [1, 1, inf], B = [2, 1, 1]
    rho = performance_profile({"A": [1.0, 2.0, inf], "B": [2.0, 2.0, 4.0]}, [1.0, 1.5, 2.0])
    assert rho == {"A": [2 / 3, 2 / 3, 2 / 3], "B": [2 / 3, 2 / 3, 1.0]}


def test_benchmark_ratios_divide_by_torch_of_the_same_case() -> None:
    data = {"benchmarks": [
        {"name": "test_a[x-torch.optim.LBFGS]", "params": {"optimizer": "torch.optim.LBFGS", "n": 1},
         "stats": {"median": 2.0, "rounds": 5}},
        {"name": "test_a[x-mine]", "params": {"optimizer": "mine", "n": 1}, "stats": {"median": 3.0, "rounds": 5}},
        {"name": "test_a[y-mine]", "params": {"optimizer": "mine", "n": 2}, "stats": {"median": 3.0, "rounds": 5}},
        {"name": "test_b[3]", "params": {"n": 3}, "stats": {"median": 9.0, "rounds": 5},
         "extra_info": {"median_ratio_reference_over_torch": 0.75}},  # both timed interleaved in one benchmark
        {"name": "test_a[z-torch.optim.LBFGS]", "params": {"optimizer": "torch.optim.LBFGS", "n": 4},
         "stats": {"median": 2.0, "rounds": 5}},
        {"name": "test_a[z-mine]", "params": {"optimizer": "mine", "n": 4}, "stats": {"median": 3.0, "rounds": 5},
         "extra_info": {"median_ratio_to_torch_paired": 0.9}},  # run in turn with torch: preferred to 3/2
    ]}
    rows = {(r["case"], r["optimizer"]): r["ratio_to_torch"] for r in benchmark_ratios(data)}
    assert rows == {("test_a[n=1]", "torch.optim.LBFGS"): 1.0, ("test_a[n=1]", "mine"): 1.5,
                    ("test_a[n=2]", "mine"): None, ("test_b[n=3]", "lbfgs_verify.reference.LBFGS"): 0.75,
                    ("test_a[n=4]", "torch.optim.LBFGS"): 1.0, ("test_a[n=4]", "mine"): 0.9}


def test_benchmarks_run_when_the_report_is_built_inside_an_xdist_worker(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-benchmark disables itself in a process that has PYTEST_XDIST_WORKER; the report's own benchmark
    run is a separate serial session and must still time (``pytest -n 2`` over this file builds the report in a
    worker; this is the same condition in a serial run)."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    out = tmp_path / "bench.json"
    assert run_benchmarks(STEP_SPEED, out, targets=(), max_time=0.005) == ""
    rows = benchmark_ratios(json.loads(out.read_text(encoding="utf-8")))
    assert {r["optimizer"] for r in rows} == {"torch.optim.LBFGS", "lbfgs_verify.reference.LBFGS"}
    assert all(r["rounds"] >= 3 and r["ratio_to_torch"] > 0 for r in rows)
    paired = json.loads(out.read_text(encoding="utf-8"))["benchmarks"]
    assert all(("median_ratio_to_torch_paired" in b["extra_info"]) == ("reference" in b["name"]) for b in paired)


@pytest.mark.parametrize("argv, message", [
    (["report", "--problems", "no_such_problem"], "not one of the sets"),
    (["report", "--target", "no_such_module:X"], "cannot import module"),
    (["report", "--lacks", "teleportation"], "unknown feature"),
    (["report", "--benchmark-json", "no/such.json"], "no such file"),
])
def test_report_arguments_are_checked_before_anything_runs(argv: list[str], message: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- the page in a browser


@pytest.fixture(scope="module")
def browser() -> Iterator[str]:
    path = find_browser()
    if path is None:
        pytest.skip("no headless browser installed (chromium: `apt-get install -y chromium`, as .ci/run does)")
    yield path


def test_index_html_opens_in_a_headless_browser_with_every_image_loaded(
        browser: str, data: dict[str, Any], written: tuple[dict[str, Any], Path]) -> None:
    page = inspect_page(browser, written[1] / "index.html")
    assert page["errors"] == []
    expected = [*(v for k, v in data["plots"].items() if k != "convergence"), *data["plots"]["convergence"].values()]
    assert sorted(i["file"] for i in page["images"]) == sorted(expected)
    assert all(i["complete"] and i["naturalWidth"] > 0 for i in page["images"]), page["images"]
    assert set(SECTION_IDS) <= set(page["sections"])
    # at 1400 px nothing is cut off or hidden behind a scroll bar: wide tables wrap their cells
    assert page["viewport"] == 1400 and page["page_width"] <= 1400, page["page_width"]
    assert page["overflowing"] == [], page["overflowing"][:5]


def test_report_command_writes_the_three_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from lbfgs_verify.targets import kinds as target_kinds

    monkeypatch.setitem(REPORT_BUDGETS, "quick", dataclasses.replace(TINY_BUDGET, check_only=CHECKED))
    # the built-in adapters (JAX steppers compile for seconds) are tested in test_report_kinds.py
    monkeypatch.setattr(target_kinds, "BUILTINS", {})
    out = tmp_path / "out"
    problem = "mgh05_beale[n=2,x0*1,float64]"
    assert main(["report", "--out", str(out), "--problems", problem, "--no-benchmarks", "--no-progress",
                 "--sections", "convergence,agreement,properties,resume,benchmarks", "--seed", "3"]) == 0
    assert "report written to" in capsys.readouterr().out
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [p["name"] for p in data["problems"]] == [problem]
    assert [s["id"] for s in data["solvers"]] == ["reference", "torch", "torch-strong_wolfe", "scipy",
                                                  "minimize_lbfgsb"]
    assert data["environment"]["seed"] == 3 and "--seed 3" in data["command"]
    assert data["benchmarks"]["rows"] == [] and "not run" in data["benchmarks"]["note"]
    assert data["sections"] == ["convergence", "agreement", "properties", "resume"] and data["fuzz"]["reports"] == {}
    assert (out / "index.md").read_text(encoding="utf-8").startswith("# L-BFGS comparison report")
    assert "<img src=\"data:image/png;base64," in (out / "index.html").read_text(encoding="utf-8")


def test_solvers_option_chooses_defaults_and_builtins_and_refuses_unknown_ids(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--solvers``: the chosen default solvers and built-ins only (targets always run), in the reproduce command;
    an unknown id is a usage error naming the valid ones, and nothing is written."""
    from lbfgs_verify.report.options import ProblemSetError, solver_set

    assert solver_set(None) is None and solver_set("none") == () and solver_set("torch, scipy,torch") == (
        "torch", "scipy")
    assert solver_set("optax:lbfgs") == ("optax:lbfgs",)  # a built-in name is known whether or not it is installed
    with pytest.raises(ProblemSetError, match=r"--solvers nope: unknown solver; choose from reference, torch"):
        solver_set("torch,nope")
    out = tmp_path / "out"
    assert main(["report", "--out", str(out), "--problems", "mgh05_beale[n=2,x0*1,float64]", "--no-progress",
                 "--sections", "none", "--solvers", "nope"]) == 2
    assert "unknown solver" in capsys.readouterr().err and not out.exists()
    assert main(["report", "--out", str(out), "--problems", "mgh05_beale[n=2,x0*1,float64]", "--no-progress",
                 "--sections", "none", "--solvers", "scipy,torch"]) == 0
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [s["id"] for s in data["solvers"]] == ["torch", "scipy"] and "--solvers scipy,torch" in data["command"]


def test_solved_cost_is_the_first_evaluation_within_tolerance_of_f_ref() -> None:
    from lbfgs_verify.report.profiles import solved_cost

    run = {"status": "ok", "final_f": 1e-9,
           "curve": {"evaluations": [1, 5, 9, 12], "f_best": [10.0, 1e-3, 5e-7, 1e-9], "seconds": [0.1, 0.2, 0.3, 0.4]}}
    assert solved_cost(run, 0.0) == (9, 0.3)  # 5e-7 <= 1e-6 * max(1, |0|)
    assert solved_cost(run, 1e-3 - 5e-7) == (5, 0.2)  # a higher f_ref: reached already at evaluation 5
    assert solved_cost({**run, "final_f": 1e-3}, 0.0) is None  # ended above the tolerance: unsolved
    assert solved_cost({**run, "status": "failed"}, 0.0) is None


def test_declared_lacks_change_what_a_target_runs() -> None:
    from lbfgs_verify.problems import complex_least_squares
    from lbfgs_verify.report.solvers import lacks_skip_reason, report_solvers

    solvers = report_solvers(TINY_BUDGET, (FLAKY,), frozenset({"strong_wolfe", "complex"}), defaults=("torch",))
    target = solvers[-1]
    assert target.settings["line_search_fn"] is None and target.name.endswith("(no line search)")
    assert lacks_skip_reason(target, complex_least_squares()) == "lacks complex (declared)"
    assert lacks_skip_reason(target, mgh_problem(1)) is None
    assert lacks_skip_reason(solvers[0], complex_least_squares()) is None  # the defaults declare nothing


# ------------------------------------------------------------------------------- issue 21: the page's numbers


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.]*\d)")
CITATIONS = ("Math. Programming 91, 2002",)
"""Prose that is a citation, not a measurement (Dolan & Moré's volume and year)."""


def _json_tokens(node: Any, out: set[str]) -> None:
    """Every number of report.json as written there and as the page writes it (:func:`fmt`), the numbers inside
    its strings, and the length of every list (a count the page shows is a count of some list)."""
    if isinstance(node, dict):
        out.add(str(len(node)))
        for value in node.values():
            _json_tokens(value, out)
    elif isinstance(node, list):
        out.add(str(len(node)))
        for value in node:
            _json_tokens(value, out)
    elif isinstance(node, bool) or node is None:
        return
    elif isinstance(node, (int, float)):
        out.update({str(node), fmt(node), repr(node)})
    elif isinstance(node, str):
        out.update(NUMBER.findall(node))


def _page_tokens(markdown: str) -> list[str]:
    text = re.sub(r"\]\([^)]*\)", "]", markdown)  # image and link targets are paths, not numbers
    text = re.sub(r"^- \[.*$", "", text, flags=re.M)  # the table of contents
    for citation in CITATIONS:
        text = text.replace(citation, "")
    return NUMBER.findall(text)


def test_every_number_on_the_page_comes_from_report_json(data: dict[str, Any], markdown: str) -> None:
    """Each number of index.md is a number of report.json (as fmt writes it, or inside one of its strings), the
    length of one of its lists, or a count the report stores in ``counts``: nothing on the page is made up."""
    known: set[str] = set()
    _json_tokens(data, known)
    strays = sorted({t for t in _page_tokens(markdown) if t not in known})
    assert not strays, strays


def test_summary_counts_are_recounted_from_the_json_lists(data: dict[str, Any], markdown: str) -> None:
    counts = data["counts"]
    for sid, row in counts["resume"].items():
        splits = [s for r in data["resume"]["rows"] if r["solver"] == sid for s in r["splits"]]
        assert row == {"bitwise": sum(s["status"] == "bitwise" for s in splits), "pairs": len(splits)}
    for sid, row in counts["bitwise"].items():
        cells = [c for c in data["agreement"]["bitwise"]["cells"] if c["solver"] == sid]
        assert row == {"bitwise": sum(c["status"] == "bitwise" for c in cells), "configurations": len(cells)}
    for target, row in counts["fuzz"].items():
        matrix = data["fuzz"]["reports"][target]["matrix"]
        cells = [(o, n) for key in ("routes", "classes") for outcomes in matrix[key].values()
                 for o, n in outcomes.items()]
        assert row["cases"] == sum(n for _, n in cells)
        assert row["finding_cases"] == sum(n for o, n in cells if o in data["fuzz"]["finding_outcomes"])
    lbfgsb = data["agreement"]["lbfgsb_vs_scipy"]["rows"]
    assert counts["lbfgsb"] == {"problems": len(lbfgsb), "counts_identical": sum(r["counts_identical"] for r in lbfgsb),
                                "within_tolerance": sum(r["first_iteration_beyond_tolerance"] is None
                                                        for r in lbfgsb)}
    summary = markdown.split("## Summary")[1].split("\n## ")[0]
    for sid, row in counts["resume"].items():
        name = next(s["name"] for s in data["solvers"] if s["id"] == sid)
        assert f"{name}: resumes bitwise at {row['bitwise']} of {row['pairs']}" in summary


def test_no_label_of_any_plot_is_clipped(data: dict[str, Any], written: tuple[dict[str, Any], Path]) -> None:
    """Every text artist of every figure lies inside the area saved (``bbox_inches="tight"``), and every saved
    PNG has a blank margin all round (a label cut at the edge would touch it)."""
    from matplotlib.text import Text

    drawers = report_plots.figures(data)
    problem = data["problems"][0]
    drawers["convergence_one"] = lambda: report_plots.convergence_figure(data, problem)
    for role, draw in drawers.items():
        fig = draw()
        renderer = fig.canvas.get_renderer()
        drawn: list[Text] = []  # the texts actually drawn (a tick label outside the view limits is not)
        draw_text = renderer.draw_text

        def record(gc: Any, x: float, y: float, s: str, prop: Any, angle: float, ismath: Any = False,
                   mtext: Any = None, _draw: Any = draw_text, _drawn: list[Text] = drawn) -> Any:
            if mtext is not None and s.strip():
                _drawn.append(mtext)
            return _draw(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

        renderer.draw_text = record
        fig.draw(renderer)
        renderer.draw_text = draw_text
        saved = fig.get_tightbbox(renderer).padded(report_plots.PAD_INCHES)
        inches = fig.dpi_scale_trans.inverted()
        assert drawn, role
        for text in drawn:
            if isinstance(text, Text):
                box = text.get_window_extent(renderer).transformed(inches)
                assert (box.x0 >= saved.x0 - 1e-6 and box.y0 >= saved.y0 - 1e-6 and box.x1 <= saved.x1 + 1e-6
                        and box.y1 <= saved.y1 + 1e-6), (role, text.get_text())
        report_plots.plt.close(fig)
    out = written[1]
    files = [v for k, v in data["plots"].items() if k != "convergence"] + list(data["plots"]["convergence"].values())
    for relative in files:
        with Image.open(out / relative) as image:
            pixels = np.asarray(image.convert("L"))
        frame = np.concatenate([pixels[:2].ravel(), pixels[-2:].ravel(), pixels[:, :2].ravel(), pixels[:, -2:].ravel()])
        assert frame.min() >= 250, f"{relative}: something is drawn at the edge (clipped?)"


def test_a_plot_of_equal_bars_becomes_a_sentence(data: dict[str, Any]) -> None:
    rows = [{**data["agreement"]["lbfgsb_vs_scipy"]["rows"][0], "problem": f"p{i}"} for i in range(4)]
    same = {**data, "agreement": {**data["agreement"], "lbfgsb_vs_scipy": {
        **data["agreement"]["lbfgsb_vs_scipy"], "rows": rows}}}
    assert "lbfgsb" not in report_plots.figures(same)
    text = render_markdown("t", build_sections(same, {k: v for k, v in data["plots"].items() if k != "lbfgsb"}))
    part = text.split("### minimize_lbfgsb against scipy L-BFGS-B")[1].split("\n### ")[0]
    assert "No plot: every one of the 4 problems has the same bar" in part and "![" not in part
    different = {**same, "agreement": {**same["agreement"], "lbfgsb_vs_scipy": {
        **same["agreement"]["lbfgsb_vs_scipy"], "rows": [*rows[:3], {**rows[3], "counts_identical": False}]}}}
    assert "lbfgsb" in report_plots.figures(different)


def test_the_reproduce_line_is_quoted_for_posix_shells_and_zsh(tmp_path: Path) -> None:
    import shlex
    import shutil
    import subprocess

    from lbfgs_verify.report.collect import reproduce_command

    name = "mgh01_rosenbrock[n=2,x0*1,float64]"
    command = reproduce_command(_options(tmp_path / "my report", problem_set=name, targets=(FLAKY,)))
    words = shlex.split(command)
    assert words[words.index("--problems") + 1] == name and words[words.index("--out") + 1] == "my report"
    zsh = shutil.which("zsh")
    if zsh is not None:  # zsh refuses an unquoted [ ] that matches no file ("no matches found")
        done = subprocess.run([zsh, "-c", "print -rl -- " + command.removeprefix("lbfgs-verify report ")],
                              capture_output=True, text=True, cwd=tmp_path, timeout=30)
        assert done.returncode == 0 and name in done.stdout.splitlines(), done.stderr


def test_sections_left_out_run_nothing_and_say_so(tmp_path: Path) -> None:
    options = _options(tmp_path, targets=(), problems=[mgh_problem(1)], default_solvers=("torch-strong_wolfe",
                       "scipy"), sections=frozenset({"convergence"}), benchmark_dir=None)
    report = write_report(options)
    assert report["sections"] == ["convergence"]
    assert report["check"]["reports"] == {} and report["fuzz"]["reports"] == {} and report["resume"]["rows"] == []
    assert report["agreement"]["bitwise"]["cells"] == [] and report["agreement"]["solution"] == []
    assert report["benchmarks"]["rows"] == [] and len(report["convergence"]["runs"]) == 2
    text = (tmp_path / "index.md").read_text(encoding="utf-8")
    for title, name in (("Agreement", "agreement"), ("Property verdicts", "properties"),
                        ("State-dict fuzzer", "fuzz"), ("Resume at every split", "resume"),
                        ("Benchmarks", "benchmarks")):
        assert f"Not run in this report (`--sections` left out `{name}`)." in text.split(f"## {title}")[1]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "convergence", "convergence_overview.png", "profile_evaluations.png", "profile_time.png"]
    assert "--sections convergence" in report["command"]


@pytest.mark.parametrize(("given", "expected"), [
    ("rosenbrock", ["mgh01_rosenbrock[n=2,x0*1,float64]"]),
    ("mgh05", ["mgh05_beale[n=2,x0*1,float64]"]),
    ("rosenbrock_chained", ["rosenbrock_chained[n=2,x0=std,float64]", "rosenbrock_chained[n=10,x0=std,float64]"]),
    ("*rosenbrock*", ["mgh01_rosenbrock[n=2,x0*1,float64]", "mgh21_extended_rosenbrock[n=10,x0*1,float64]",
                      "rosenbrock_chained[n=2,x0=std,float64]", "rosenbrock_chained[n=10,x0=std,float64]"]),
    ("beale,mgh01_rosenbrock[n=2,x0*1,float32]", ["mgh05_beale[n=2,x0*1,float64]",
                                                  "mgh01_rosenbrock[n=2,x0*1,float32]"]),
])
def test_problems_by_short_name_or_glob(given: str, expected: list[str]) -> None:
    from lbfgs_verify.report.options import problem_set

    assert [p.name for p in problem_set(given)] == expected


def test_sections_and_problems_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--sections", "convergence,speed", "--out", str(tmp_path / "a")]) == 2
    assert "--sections speed: unknown section" in capsys.readouterr().err
    assert main(["report", "--problems", "no_such_thing*", "--out", str(tmp_path / "b")]) == 2
    assert "no short name or glob of a suite problem" in capsys.readouterr().err


def test_report_never_writes_into_a_folder_it_did_not_make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from lbfgs_verify.report.write import fresh_directory, output_problem

    mine = tmp_path / "data"
    mine.mkdir()
    (mine / "notes.txt").write_text("committed data\n")
    assert main(["report", "--out", str(mine), "--problems", "rosenbrock", "--sections", "none"]) == 2
    assert "not empty and holds no earlier report" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert output_problem(mine, force=True) is None
    assert output_problem(tmp_path / "new") is None and output_problem(mine / "notes.txt") is not None
    # the default is a new folder under the working directory; a second report goes next to it
    monkeypatch.chdir(tmp_path)
    argv = ["report", "--problems", "rosenbrock", "--sections", "none", "--no-progress"]
    assert main(argv) == 0
    made = [p for p in tmp_path.iterdir() if p.name.startswith("lbfgs-verify-report-")]
    assert len(made) == 1 and (made[0] / "report.json").is_file()
    assert fresh_directory(tmp_path, made[0].name.removeprefix("lbfgs-verify-report-")) != made[0]
    # an earlier report's folder is replaced in place (how a checkout's reports/ is regenerated)
    assert main([*argv, "--out", str(made[0])]) == 0
    assert "written to" in capsys.readouterr().out


def test_the_committed_report_shows_the_numbers_of_its_report_json() -> None:
    """``reports/`` (made by ``lbfgs-verify report --budget quick --out reports``): every number of index.md is in
    its report.json, and the fuzz tables are the JSON matrices (counts of cases)."""
    root = Path(__file__).resolve().parents[2] / "reports"
    if not (root / "report.json").is_file():
        pytest.skip("no committed report in this tree")
    committed = json.loads((root / "report.json").read_text(encoding="utf-8"))
    page = (root / "index.md").read_text(encoding="utf-8")
    known: set[str] = set()
    _json_tokens(committed, known)
    strays = sorted({t for t in _page_tokens(page) if t not in known})
    assert not strays, strays
    tables = [t for t in md_tables(page) if t and "route or class" in t[0]]
    reports = {t: r for t, r in committed["fuzz"]["reports"].items() if "error" not in r}
    assert len(tables) == len(reports)
    for report, table in zip(reports.values(), tables, strict=True):
        shown = sum(int(v) for row in table for k, v in row.items() if k != "route or class")
        assert shown == sum(n for key in ("routes", "classes") for c in report["matrix"][key].values()
                            for n in c.values())
    for relative in [v for k, v in committed["plots"].items() if k != "convergence"]:
        assert (root / relative).is_file(), relative


def test_the_committed_page_shows_everything_at_1400_px(browser: str) -> None:
    """``reports/index.html`` in headless Chromium, 1400 px wide: every image loads, nothing is cut off or hidden
    behind a scroll bar (the wide tables wrap their cells)."""
    page_path = Path(__file__).resolve().parents[2] / "reports" / "index.html"
    if not page_path.is_file():
        pytest.skip("no committed report in this tree")
    page = inspect_page(browser, page_path)
    assert page["errors"] == []
    assert page["images"] and all(i["complete"] and i["naturalWidth"] > 0 for i in page["images"])
    assert page["page_width"] <= page["viewport"] == 1400
    assert page["overflowing"] == [], page["overflowing"][:5]
