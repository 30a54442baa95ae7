"""The report's blocks for targets of every kind (:mod:`lbfgs_verify.report.kinds`) and the scipy-twin benchmark
table: every number drawn from ``report.json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbfgs_verify.report.document import Block, Bullets, Paragraph, Section, Table, cell, fmt


def left_out_blocks(report: Mapping[str, Any]) -> list[Block]:
    """The built-in adapters that are not in this report, and why (the extra to install)."""
    left = report.get("solvers_left_out") or []
    if not left:
        return []
    return [Paragraph("Built-in adapters left out of this report (`lbfgs_verify.targets.kinds.BUILTINS`, read at run "
                      "time):"), Bullets([f"`{r['spec']}`: {r['reason']}" for r in left])]


def jit_blocks(report: Mapping[str, Any], names: Mapping[str, str]) -> list[Block]:
    """Stepper targets: the problems they ran and seconds per iteration under jit, compile time apart."""
    conv = report["convergence"]
    rows = conv.get("jit") or []
    blocks: list[Block] = []
    if conv.get("stepper_problems"):
        blocks.append(Paragraph(
            f"Stepper targets (JAX) ran {len(conv['stepper_problems'])} problem(s) at this budget: "
            + ", ".join(f"`{p}`" for p in conv["stepper_problems"])
            + "; each (stepper, problem) compiles its step once, ahead of time. The performance profiles leave out "
              "the solvers that did not run every problem: "
            + (", ".join(f"`{s}`" for s in sorted({r["solver"] for r in conv["runs"]} - set(report["profiles"].get(
                "evaluations", {})))) or "none") + "."))
    if rows:
        blocks.append(Paragraph(
            "Time per iteration under jit (the compiled step, median over the run's iterations; it includes the "
            "harness's ordered callback that records each evaluation); the one-time cost (make, init, trace, lower, "
            "compile; the steppers compile side by side in threads) is not in it and is shown apart (a timing "
            "field)."))
        blocks.append(Table(["solver", "problem", "iterations", "median seconds per iteration", "compile seconds"],
                            [[cell(names.get(r["solver"], r["solver"])), cell(r["problem"]), cell(r["iterations"]),
                              cell(r["median_seconds_per_iteration"]), cell(r["compile_seconds"])] for r in rows]))
    return blocks


def agreement_section(report: Mapping[str, Any], names: Mapping[str, str]) -> Section:
    """Who tracks whom, for how many iterations, and why they part, per problem."""
    kinds = report["agreement"].get("kinds") or {"rows": [], "problems": [], "solvers": [], "tolerance": 0}
    blocks: list[Block] = [Paragraph(
        f"Every pair of solvers on the same start, iterate by iterate: `tracked` is the number of iterations whose "
        f"iterates stay within {fmt(kinds['tolerance'])} (relative, ‖·‖∞), `bitwise` the number equal to the bit. "
        "Where they part, the cause is classified from the declared conventions (first-step rule, memory size, H₀ "
        "rule, line-search constants; `lbfgs_verify.targets.protocols.Conventions`) and the recorded evaluations "
        "(the first trial point of each iteration, the trial points per line search); `rounding` means no "
        "declared rule differs there.")]
    if not kinds["rows"]:
        blocks.append(Paragraph("No pairs compared (no agreement problems at this budget)."))
    for problem in kinds["problems"]:
        rows = [r for r in kinds["rows"] if r["problem"] == problem]
        present = list(dict.fromkeys([r["a"] for r in rows] + [r["b"] for r in rows]))
        by_pair = {(r["a"], r["b"]): r for r in rows} | {(r["b"], r["a"]): r for r in rows}
        matrix = []
        for a in present:
            line = [cell(names.get(a, a))]
            for b in present:
                r = by_pair.get((a, b))
                line.append("—" if r is None else f"{r['tracked_iterations']} ({r['bitwise_iterations']})")
            matrix.append(line)
        blocks.append(Paragraph(f"`{problem}`: iterations tracked (bitwise) for each pair."))
        blocks.append(Table(["", *[cell(names.get(s, s)) for s in present]], matrix))
        blocks.append(Bullets([why_line(r) for r in rows]))
    conventions = kinds.get("conventions") or {}
    if conventions:
        blocks.append(Bullets([f"`{sid}`: " + ("; ".join(lines) if lines else "conventions not declared")
                               for sid, lines in conventions.items()]))
    return Section("agreement-kinds", "Agreement across frameworks", blocks)


def why_line(row: Mapping[str, Any]) -> str:
    """One pair's line: tracked/bitwise iterations, where and why they part."""
    head = (f"`{row['a']}` and `{row['b']}` track for {row['tracked_iterations']} iteration(s) "
            f"({row['bitwise_iterations']} bitwise)")
    if row["parts_at"] is None:
        return f"{head}; {row['cause']}: {row['detail']}"
    return (f"{head}, part at iteration {row['parts_at']} (difference {fmt(row['difference_at_parting'])}): "
            f"{row['cause']}: {row['detail']}")


def resume_blocks(report: Mapping[str, Any], names: Mapping[str, str]) -> list[Block]:
    """The stepper resume property per kind target; functional ones shown as not applicable."""
    rows = report["resume"].get("kinds") or []
    if not rows:
        return []
    return [Paragraph("Targets of the other kinds: `stepper.resume_fresh_process` (save (params, state) after k "
                      "iterations, serialize, restore in a fresh process, continue: bitwise on the CPU under jit "
                      "and x64; a cold restart must differ). A functional minimizer has no state to save."),
            Table(["solver", "property", "verdict", "message"],
                  [[cell(names.get(r["solver"], r["solver"])), cell(r["property"]), cell(r["status"]),
                    cell(r["message"] or "—")] for r in rows])]


def twin_benchmark_blocks(report: Mapping[str, Any]) -> list[Block]:
    """The scipy twin against scipy (``reports/speed/lbfgsb_vs_scipy.json``), when the file was there."""
    twin = report["benchmarks"].get("twin_vs_scipy")
    if not twin:
        return []
    if not twin.get("rows"):
        return [Paragraph(twin.get("note") or "No scipy-twin benchmark results.")]
    return [Paragraph(twin["note"]),
            Table(["n", "bounds", "iterations", "twin median s", "scipy median s", "ratio (median of paired)",
                   "ratio range", "physical limit s"],
                  [[cell(r["n"]), cell(", ".join(map(fmt, r["bounds"])) if r["bounds"] else "none"), cell(r["nit"]),
                    cell(r["median_twin_s"]),
                    cell(r["median_scipy_s"]), cell(r["median_ratio"]),
                    f"{fmt(r['min_ratio'])}–{fmt(r['max_ratio'])}", cell(r["physical_limit_s"])]
                   for r in twin["rows"]])]
