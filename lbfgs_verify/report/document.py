"""The report's sections, laid out once from the report dict and the plot paths; :mod:`.markdown` and
:mod:`.html` write the same blocks, so ``index.md`` and ``index.html`` show the same numbers as ``report.json``.

Inline text may use two Markdown forms only, which both writers understand: ``code`` in backticks and
``[text](url)`` links.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from lbfgs_verify.report.verdicts import (
    DEFAULT_FINDINGS,
    FUZZ_UNAVAILABLE,
    fuzz_cases,
    fuzz_findings,
    fuzz_matrix,
    verdict_grid,
)


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: str
    alt: str


@dataclass
class Details:
    """A collapsed group (``<details>``), e.g. one plot per problem."""

    summary: str
    blocks: list[Block]


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)


Block = Union[Paragraph, Bullets, Table, Image, Details]  # noqa: UP007 (runtime alias on Python 3.10)

SECTION_IDS = ("summary", "environment", "solvers", "convergence", "profiles", "agreement", "check", "fuzz",
               "resume", "benchmarks", "reproduce")


def fmt(value: Any) -> str:
    """How every number is written: 6 significant digits; ``None`` as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.6g}"


def cell(text: Any) -> str:
    """A table cell: one line, pipes escaped."""
    return fmt(text).replace("|", "\\|").replace("\n", " ")


def _short(text: str) -> str:
    """The first line of a message, whole (tables wrap: no fact is cut)."""
    return (text or "").splitlines()[0] if text else ""


RUN_BY = {"convergence": "convergence", "profiles": "convergence", "agreement": "agreement", "check": "properties",
          "fuzz": "fuzz", "resume": "resume", "benchmarks": "benchmarks"}
"""Page section -> the ``--sections`` name that runs it (:data:`lbfgs_verify.report.options.SECTIONS`)."""
TITLES = {"convergence": "Convergence", "profiles": "Performance profiles", "agreement": "Agreement",
          "check": "Property verdicts", "fuzz": "State-dict fuzzer", "resume": "Resume at every split",
          "benchmarks": "Benchmarks"}


def build_sections(report: Mapping[str, Any], plots: Mapping[str, Any]) -> list[Section]:
    """Every section of the report, in order (:data:`SECTION_IDS`); one left out by ``--sections`` says so."""
    names = {s["id"]: s["name"] for s in report["solvers"]}
    ran = set(report.get("sections", RUN_BY.values()))
    built = {
        "convergence": lambda: _convergence(report, plots, names), "profiles": lambda: _profiles(report, plots, names),
        "agreement": lambda: _agreement(report, plots, names), "check": lambda: _check(report, plots),
        "fuzz": lambda: _fuzz(report, plots), "resume": lambda: _resume(report, plots, names),
        "benchmarks": lambda: _benchmarks(report, plots),
    }
    middle = [built[sid]() if RUN_BY[sid] in ran else Section(sid, TITLES[sid], [Paragraph(
        f"Not run in this report (`--sections` left out `{RUN_BY[sid]}`).")]) for sid in built]
    return [_summary(report, names), _environment(report), _solvers(report), *middle, _reproduce(report)]


def report_counts(report: Mapping[str, Any]) -> dict[str, Any]:
    """The counts the page shows that are sums over report.json's lists, stored in it as ``counts`` (so that every
    number on the page is in report.json): per solver, bitwise configurations and resumed (split, transport)
    pairs; per fuzzed target, generated cases and finding cases; the minimize_lbfgsb/scipy agreement."""
    bitwise: dict[str, dict[str, int]] = {}
    for c in report["agreement"]["bitwise"]["cells"]:
        row = bitwise.setdefault(c["solver"], {"bitwise": 0, "configurations": 0})
        row["bitwise"] += c["status"] == "bitwise"
        row["configurations"] += 1
    resume: dict[str, dict[str, int]] = {}
    for r in report["resume"]["rows"]:
        if r["splits"]:
            row = resume.setdefault(r["solver"], {"bitwise": 0, "pairs": 0})
            row["bitwise"] += sum(s["status"] == "bitwise" for s in r["splits"])
            row["pairs"] += len(r["splits"])
    findings = report["fuzz"].get("finding_outcomes", DEFAULT_FINDINGS)
    fuzz = {target: {"cases": fuzz_cases(data), "finding_cases": fuzz_findings(data, findings),
                     "distinct_findings": sum(1 for r in data.get("results", []) if r.get("outcome") in findings)}
            for target, data in report["fuzz"]["reports"].items() if "error" not in data}
    rows = report["agreement"]["lbfgsb_vs_scipy"]["rows"]
    lbfgsb = {"problems": len(rows), "counts_identical": sum(bool(r["counts_identical"]) for r in rows),
              "within_tolerance": sum(r["first_iteration_beyond_tolerance"] is None for r in rows)}
    return {"bitwise": bitwise, "resume": resume, "fuzz": fuzz, "lbfgsb": lbfgsb}


def _summary(report: Mapping[str, Any], names: Mapping[str, str]) -> Section:
    opts = report["options"]
    items = []
    for row in report["convergence"]["summary"]:
        items.append(f"{names[row['solver']]}: solved {row['solved']} of {row['problems']} problems "
                     f"({row['failed']} failed, {row['skipped']} skipped)")
    counts = report.get("counts") or report_counts(report)
    for sid, row in counts["bitwise"].items():
        items.append(f"{names[sid]}: bitwise equal to torch.optim.LBFGS in {row['bitwise']} of "
                     f"{row['configurations']} configurations")
    for sid, row in counts["resume"].items():
        items.append(f"{names[sid]}: resumes bitwise at {row['bitwise']} of {row['pairs']} (split, transport) pairs")
    for target, data in report["check"]["reports"].items():
        if "error" in data:
            items.append(f"`check {target}`: {_short(data['error'])}")
        else:
            s = data["summary"]
            items.append(f"`check {target}`: {s['pass']} pass, {s['fail']} fail, {s['error']} error, "
                         f"{s['skip']} skip")
    for target, row in counts["fuzz"].items():
        items.append(f"`fuzz {target}`: {row['finding_cases']} of {row['cases']} generated cases are findings")
    text = (f"Budget `{opts['budget']}`, problems `{opts['problems']}` ({len(report['problems'])}), seed "
            f"{opts['seed']}, {opts['threads']} thread(s), {len(report['solvers'])} solvers; made in "
            f"{fmt(report['seconds'])} s on {report['environment']['date']}. Every number on this page is in "
            "`report.json` or counted from its lists (a test compares them); the fields that vary between "
            "identical runs are listed in its `timing_fields`.")
    return Section("summary", "Summary", [Paragraph(text), Bullets(items)])


def _environment(report: Mapping[str, Any]) -> Section:
    env = report["environment"]
    rows = [[name, cell(version)] for name, version in env["versions"].items()]
    rows += [["BLAS (torch build)", cell(env["blas"]["torch"])], ["BLAS (numpy)", cell(env["blas"]["numpy"])],
             ["BLAS (scipy)", cell(env["blas"]["scipy"])],
             ["threads in comparisons", cell(env["threads"]["comparisons"])],
             ["torch default threads", cell(env["threads"]["torch_default"])],
             ["CPU count", cell(env["threads"]["cpu_count"])],
             ["BLAS threads during runs", cell(", ".join(f"{b['library']} {b['version']}: {b['threads']}"
                                                          for b in env["threads"]["blas_libraries"]))],
             ["CPU", cell(env["cpu"])], ["platform", cell(env["platform"])], ["CUDA", cell(env["cuda"])],
             ["date", cell(env["date"])], ["seed", cell(env["seed"])]]
    return Section("environment", "Environment", [Table(["what", "value"], rows)])


def _solvers(report: Mapping[str, Any]) -> Section:
    rows = [[cell(s["name"]), cell(s["id"]), cell(s["kind"]), cell(s["spec"] or "scipy.optimize.minimize"),
             cell(", ".join(f"{k}={v}" for k, v in s["settings"].items())),
             cell(", ".join(s["lacks"]) or "—"), "yes" if s["is_target"] else "no"] for s in report["solvers"]]
    text = ("Every optimizer runs one `step()` with scipy's numbers where torch has a counterpart (tolerance_grad = "
            "gtol, tolerance_change = ftol (absolute), history_size = maxcor: the settings column; see "
            "`lbfgs_verify.compare.solutions`) and the budget's limits; evaluations are counted as each solver "
            "counts them (torch: closure calls; scipy: `nfev`, memoized).")
    from lbfgs_verify.report.kinds_document import left_out_blocks

    return Section("solvers", "Solvers", [Paragraph(text), Table(
        ["solver", "id", "kind", "spec", "settings", "lacks (declared)", "--target"], rows),
        *left_out_blocks(report)])


def _convergence(report: Mapping[str, Any], plots: Mapping[str, Any], names: Mapping[str, str]) -> Section:
    conv = report["convergence"]
    blocks: list[Block] = [Paragraph(f"{conv['criterion'][0].upper()}{conv['criterion'][1:]}.")]
    blocks.append(Table(["solver", "solved", "unsolved", "failed", "skipped", "median evaluations to solve",
                         "median seconds to solve"],
                        [[cell(names[r["solver"]]), cell(r["solved"]), cell(r["unsolved"]), cell(r["failed"]),
                          cell(r["skipped"]), cell(r["median_evaluations_to_solve"]),
                          cell(r["median_seconds_to_solve"])] for r in conv["summary"]]))
    blocks.append(Paragraph("Bitwise twins draw the same curve: the reference's lies under torch.optim.LBFGS "
                            "(strong_wolfe)'s, scipy's under minimize_lbfgsb's (thinner dashed lines over thicker "
                            "ones)."))
    blocks.append(Image(plots["convergence_overview"], "f − f_ref against evaluations, every problem"))
    bad = [r for r in conv["runs"] if r["status"] != "ok"]
    if bad:
        blocks.append(Paragraph("Runs that failed or were skipped (the report went on):"))
        blocks.append(Table(["solver", "problem", "status", "message"],
                            [[cell(names[r["solver"]]), cell(r["problem"]), r["status"], cell(_short(r["message"]))]
                             for r in bad]))
    solver_ids = [s["id"] for s in report["solvers"]]
    by_key = {(r["solver"], r["problem"]): r for r in conv["runs"]}
    rows = []
    for problem in report["problems"]:
        row = [cell(problem["name"]), cell(problem["f_star"]), cell(problem["f_ref"])]
        for sid in solver_ids:
            run = by_key[(sid, problem["name"])]
            if run["status"] != "ok":
                row.append(run["status"])
            else:
                mark = "" if run["solved"] else " (unsolved)"
                row.append(f"{fmt(run['f_minus_f_ref'])} / {run['evaluations']}{mark}")
        rows.append(row)
    blocks.append(Paragraph("Per problem: f − f_ref at the end / evaluations used."))
    blocks.append(Table(["problem", "f*", "f_ref", *[names[s] for s in solver_ids]], rows))
    from lbfgs_verify.report.kinds_document import jit_blocks

    blocks += jit_blocks(report, names)
    blocks.append(Details("One plot per problem",
                          [Image(plots["convergence"][p["name"]], f"convergence on {p['name']}")
                           for p in report["problems"]]))
    return Section("convergence", "Convergence", blocks)


def _profiles(report: Mapping[str, Any], plots: Mapping[str, Any], names: Mapping[str, str]) -> Section:
    prof = report["profiles"]
    rows = [[cell(names[sid]), cell(prof["evaluations"][sid][0]), cell(prof["evaluations"][sid][-1]),
             cell(prof["time"][sid][0]), cell(prof["time"][sid][-1])] for sid in prof["evaluations"]]
    text = ("Dolan & Moré (Math. Programming 91, 2002): for each solver, the share of problems it solved within a "
            "factor τ of the cheapest solver on that problem. ρ(1): share where it was the cheapest; "
            f"ρ({fmt(prof['tau'][-1])}): share solved. Time is wall time on a shared machine (a timing field).")
    left = [names[s["id"]] for s in report["solvers"] if s["id"] not in prof.get("evaluations", {})]
    if left and prof.get("evaluations"):
        text += (" Left out (the budget did not run them on every problem, see Convergence): "
                 + ", ".join(left) + ".")
    return Section("profiles", "Performance profiles", [
        Paragraph(text), Image(plots["profile_evaluations"], "performance profile on evaluations"),
        Image(plots["profile_time"], "performance profile on time"),
        Table(["solver", "ρ(1) evaluations", f"ρ({fmt(prof['tau'][-1])}) evaluations", "ρ(1) time",
               f"ρ({fmt(prof['tau'][-1])}) time"], rows)])


def _agreement(report: Mapping[str, Any], plots: Mapping[str, Any], names: Mapping[str, str]) -> Section:
    agree = report["agreement"]
    bitwise = agree["bitwise"]
    solvers = list(dict.fromkeys(c["solver"] for c in bitwise["cells"]))
    cells = {(c["configuration"], c["solver"]): c for c in bitwise["cells"]}
    rows = []
    for config in bitwise["configurations"]:
        row = [config]
        for sid in solvers:
            c = cells[(config, sid)]
            text = f"{c['status']} {c['bitwise_problems']}/{c['problems']}"
            if c["first_difference"]:
                text += f": {_short(c['first_difference'])}"
            row.append(cell(text))
        rows.append(row)
    bit = Section("agreement-bitwise", "Bitwise against torch.optim.LBFGS", [
        Paragraph(f"Each optimizer with torch's interface against `torch.optim.LBFGS`: {bitwise['steps']} `step()` "
                  f"calls on each of {len(bitwise['problems'])} problems per configuration, compared byte by byte "
                  "(parameters, returned loss, closure calls and their losses) on the CPU with the same thread count."),
        Table(["configuration", *[names[s] for s in solvers]], rows) if solvers else Paragraph(
            "No optimizer other than torch.optim.LBFGS to compare."),
        Image(plots["bitwise"], "bitwise agreement with torch.optim.LBFGS") if "bitwise" in plots else Paragraph(
            "No plot: every cell of the table above is the same.")])
    part = agree["lbfgsb_vs_scipy"]
    lb_rows = [[cell(r["problem"]), f"{r['iterations_minimize_lbfgsb']} / {r['iterations_scipy']}",
                f"{r['nfev_minimize_lbfgsb']} / {r['nfev_scipy']}", cell(r["counts_identical"]),
                cell(r["first_iteration_beyond_tolerance"]), cell(r["max_relative_iterate_difference"])]
               for r in part["rows"]]
    lb_counts = (report.get("counts") or report_counts(report))["lbfgsb"]
    lb_blocks: list[Block] = [Paragraph(
        f"`minimize_lbfgsb` against scipy's L-BFGS-B on the convergence runs: evaluation counts identical in every "
        f"iteration on {lb_counts['counts_identical']} of {lb_counts['problems']} problems; iterates within "
        f"{fmt(part['iterate_tolerance'])} (relative, ‖·‖∞) at every iteration on {lb_counts['within_tolerance']}.")]
    if lb_rows:
        lb_blocks.append(Table(["problem", "iterations (ours / scipy)", "nfev (ours / scipy)", "counts identical",
                                f"first iteration beyond {fmt(part['iterate_tolerance'])}",
                                "max relative iterate difference"], lb_rows))
        if "lbfgsb" in plots:
            lb_blocks.append(Image(plots["lbfgsb"], "minimize_lbfgsb against scipy"))
        else:  # a plot of equal bars says nothing a sentence does not
            first = part["rows"][0]
            lb_blocks.append(Paragraph(
                f"No plot: every one of the {len(part['rows'])} problems has the same bar (evaluation counts "
                f"identical: {fmt(first['counts_identical'])}, max relative iterate difference "
                f"{fmt(first['max_relative_iterate_difference'])})."))
    lbfgsb = Section("agreement-lbfgsb", "minimize_lbfgsb against scipy L-BFGS-B", lb_blocks)
    sol_rows = [[cell(r["problem"]), cell(r["f_scipy"]), cell(r["f_torch"]),
                 f"{r['evaluations_scipy']} / {r['evaluations_torch']}", f"{r['stop_scipy']} / {r['stop_torch']}",
                 r["verdict"], r["explanation"], cell(_short(r["reason"]))] for r in agree["solution"]]
    counts: dict[str, dict[str, int]] = {}
    for r in agree["final_f_vs_scipy"]:
        counts.setdefault(r["solver"], {}).setdefault(r["outcome"], 0)
        counts[r["solver"]][r["outcome"]] += 1
    outcomes = ("same", "lower", "higher", "failed", "skipped")
    count_rows = [[cell(names[sid]), *[cell(c.get(o, 0)) for o in outcomes]] for sid, c in counts.items()]
    solution = Section("agreement-solution", "Solution level against scipy", [
        Paragraph("`torch.optim.LBFGS` (strong Wolfe, scipy's numbers) against scipy, explained by "
                  "`lbfgs_verify.compare.solutions.compare_solutions` (same f: |Δf| ≤ 1e-6·max(1, |f|)):"),
        Table(["problem", "f scipy", "f torch", "evaluations (scipy / torch)", "stop rule (scipy / torch)",
               "verdict", "explanation", "reason"], sol_rows),
        Paragraph("Every solver's final f in the convergence runs against scipy's, problems per outcome:"),
        Table(["solver", *outcomes], count_rows),
        *([Image(plots["solution"], "final f against scipy's")] if "solution" in plots else [])])
    from lbfgs_verify.report.kinds_document import agreement_section

    return Section("agreement", "Agreement", subsections=[agreement_section(report, names), bit, lbfgsb, solution])


def _check(report: Mapping[str, Any], plots: Mapping[str, Any]) -> Section:
    reports = report["check"]["reports"]
    properties, targets, status = verdict_grid({t: r for t, r in reports.items() if "error" not in r})
    targets = list(reports)
    rows = [[f"`{p}`", *[status.get((p, t), "—") for t in targets]] for p in properties]
    blocks: list[Block] = [Paragraph(
        f"`lbfgs-verify check TARGET --budget {report['check']['budget']}` (mode properties) for each optimizer "
        "with torch's interface; the property IDs are documented in `docs/properties.md`."),
        Table(["property", *[f"`{t}`" for t in targets]], rows)]
    errors = [[f"`{t}`", cell(_short(r["error"]))] for t, r in reports.items() if "error" in r]
    if errors:
        blocks.append(Table(["target", "could not be checked"], errors))
    failures = [[f"`{t}`", f"`{res['property']}`", res["status"], cell(_short(res["detail"]))]
                for t, r in reports.items() if "error" not in r for res in r["results"]
                if res["status"] in ("fail", "error")]
    if failures:
        blocks.append(Details(f"Why each failure failed ({len(failures)})",
                              [Table(["target", "property", "status", "first line of the evidence"], failures)]))
    blocks.append(Image(plots["check"], "property verdicts per target"))
    return Section("check", "Property verdicts", blocks)


def _fuzz(report: Mapping[str, Any], plots: Mapping[str, Any]) -> Section:
    fuzz = report["fuzz"]
    if not fuzz["available"]:
        return Section("fuzz", "State-dict fuzzer", [Paragraph(f"{FUZZ_UNAVAILABLE[0].upper()}{FUZZ_UNAVAILABLE[1:]} "
                                                                "(`lbfgs_verify.fuzz` cannot be imported).")])
    blocks: list[Block] = [Paragraph(f"`lbfgs-verify fuzz TARGET --examples {fuzz['examples']}` for each optimizer "
                                     "with torch's interface. Each cell counts generated cases (`matrix` in "
                                     "`report.json`): rows are routes (valid states) and corruption classes "
                                     "(damaged states), columns the outcomes; findings (defects of the target): "
                                     + ", ".join(f"`{o}`" for o in fuzz.get("finding_outcomes", DEFAULT_FINDINGS))
                                     + ". Each distinct (row, finding) keeps one shrunk example in `results`.")]
    for target, data in fuzz["reports"].items():
        if "error" in data:
            blocks.append(Paragraph(f"`{target}`: {_short(data['error'])}"))
            continue
        rows, outcomes, counts = fuzz_matrix(data)
        row = (report.get("counts") or report_counts(report))["fuzz"][target]
        blocks.append(Paragraph(f"`{target}`: {row['finding_cases']} of {row['cases']} generated cases are findings, "
                                f"in {row['distinct_findings']} distinct (row, outcome) pair(s)."))
        blocks.append(Table(["route or class", *outcomes], [[r, *[cell(counts.get((r, o), 0)) for o in outcomes]]
                                                  for r in rows]))
    if "fuzz" in plots:
        blocks.append(Image(plots["fuzz"], "fuzz outcome matrix"))
    return Section("fuzz", "State-dict fuzzer", blocks)


def _resume(report: Mapping[str, Any], plots: Mapping[str, Any], names: Mapping[str, str]) -> Section:
    from lbfgs_verify.report.kinds_document import resume_blocks

    resume = report["resume"]
    rows = []
    for row in resume["rows"]:
        if not row["splits"]:
            rows.append([cell(names[row["solver"]]), cell(row["transport"] or "—"), "—", cell(_short(row["note"]))])
            continue
        good = sum(s["status"] == "bitwise" for s in row["splits"])
        first_bad = next((s for s in row["splits"] if s["status"] != "bitwise"), None)
        detail = ("" if first_bad is None
                  else f"split {first_bad['split']}: {first_bad['status']}: {_short(first_bad['detail'])}")
        rows.append([cell(names[row["solver"]]), cell(row["transport"]), f"{good}/{len(row['splits'])}",
                     cell(detail or "—")])
    text = (f"One trajectory of `{resume['problem']}` ({resume['steps']} `step()` calls, max_iter "
            f"{resume['max_iter_per_step']} per step), saved before every step through each transport, restored in "
            "a process whose global RNGs were reseeded, continued to the end and compared bitwise with the "
            "uninterrupted steps.")
    return Section("resume", "Resume at every split", [
        Paragraph(text), Table(["solver", "transport", "bitwise splits", "first split that is not"], rows),
        Image(plots["resume"], "resume bitwise at every split"), *resume_blocks(report, names)])


def _benchmarks(report: Mapping[str, Any], plots: Mapping[str, Any]) -> Section:
    bench = report["benchmarks"]
    blocks: list[Block] = []
    if bench.get("note"):
        blocks.append(Paragraph(bench["note"]))
    if bench["rows"]:
        blocks.append(Paragraph(
            f"pytest-benchmark (`{bench['source']}`); timings on a shared machine. Two ratios, both below 1 when "
            "the optimizer is faster than torch.optim.LBFGS: `median / torch's median` is this row's median "
            "seconds divided by torch's median seconds in the same case (the two numbers shown); `paired ratio` "
            "is the median over rounds of (this optimizer's time / torch's time in the same round), measured by a "
            "benchmark that runs both in turn, which cancels the machine's drift between the two runs and so can "
            "differ from the ratio of the medians. The bar plot shows the paired ratio where there is one."))
        blocks.append(Table(["case", "optimizer", "median seconds", "rounds", "median / torch's median",
                             "paired ratio"],
                            [[cell(r["case"]), cell(r["optimizer"]), cell(r["median_seconds"]), cell(r["rounds"]),
                              cell(r.get("ratio_of_medians")), cell(r.get("paired_ratio"))]
                             for r in bench["rows"]]))
    if "benchmarks" in plots:
        blocks.append(Image(plots["benchmarks"], "benchmark ratios to torch.optim.LBFGS"))
    from lbfgs_verify.report.kinds_document import twin_benchmark_blocks

    blocks += twin_benchmark_blocks(report)
    return Section("benchmarks", "Benchmarks", blocks)


def _reproduce(report: Mapping[str, Any]) -> Section:
    return Section("reproduce", "Reproduce", [Paragraph(f"`{report['command']}`")])


def all_images(sections: Sequence[Section]) -> list[Image]:
    """Every image of the document, in order."""
    out: list[Image] = []

    def visit(blocks: Sequence[Block]) -> None:
        for block in blocks:
            if isinstance(block, Image):
                out.append(block)
            elif isinstance(block, Details):
                visit(block.blocks)

    for section in sections:
        visit(section.blocks)
        for sub in section.subsections:
            visit(sub.blocks)
    return out
