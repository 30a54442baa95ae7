"""The report's PNG plots, drawn with matplotlib's Agg backend from the report dict only.

Every plot function returns a :class:`matplotlib.figure.Figure`; :func:`save` writes it as PNG with metadata:
``Title`` and ``lbfgs_verify:labels``, the JSON list of the legend entries and axis tick labels actually drawn
(so a reader, or a test, can see which solvers a picture names without looking at it). Styles follow what
optimization people expect: benchopt's suboptimality curves (log f − f_ref against work) and Dolan & Moré's
performance profiles (Math. Programming 91, 2002; τ on a log₂ axis).
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: the report runs headless, in CI too

import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from lbfgs_verify.report.verdicts import DEFAULT_FINDINGS, NEUTRAL_FUZZ_OUTCOMES, fuzz_matrix, verdict_grid

STATUS_COLORS = {"pass": "#2e7d32", "bitwise": "#2e7d32", "fail": "#c62828", "differs": "#c62828",
                 "error": "#ef6c00", "failed": "#ef6c00", "skip": "#bdbdbd", "skipped": "#bdbdbd",
                 "lower": "#1565c0", "none": "#eeeeee"}
LABELS_KEY = "lbfgs_verify:labels"
FLOOR = 1e-16
"""f − f_ref is drawn at least at FLOOR · max(1, |f_ref|) (log scale)."""


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def solver_colors(report: Mapping[str, Any]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {s["id"]: cmap(i % 10) for i, s in enumerate(report["solvers"])}


def solver_styles(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per solver: width falling and dashes alternating with its position, so that the curves of twins (the
    reference and torch with strong Wolfe, scipy and minimize_lbfgsb) stay visible on top of each other."""
    return {s["id"]: {"lw": max(1.0, 3.0 - 0.4 * i), "ls": "-" if i == 0 else (0, (5, 1 + 2 * (i % 2)))}
            for i, s in enumerate(report["solvers"])}


def solver_names(report: Mapping[str, Any]) -> dict[str, str]:
    return {s["id"]: s["name"] for s in report["solvers"]}


def short_name(name: str) -> str:
    """A problem name without its dtype and a 1·x0 start (axis labels)."""
    return re.sub(r",?float(16|32|64)\]", "]", name.replace("x0*1,", "")).replace("[]", "")


def slug(name: str) -> str:
    """A file-name-safe version of a problem name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def drawn_labels(fig: Figure) -> list[str]:
    """Legend texts and tick labels of every axes of ``fig``, in order, without repeats."""
    labels: list[str] = []
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
        if legend is not None:
            labels += [t.get_text() for t in legend.get_texts()]
    for ax in fig.axes:
        labels += [t.get_text() for t in (*ax.get_xticklabels(), *ax.get_yticklabels())]
    return [label for label in dict.fromkeys(labels) if label]


PAD_INCHES = 0.08
"""White margin around the saved picture (``bbox_inches="tight"``: the PNG holds every drawn artist, so no
label is clipped whatever its length)."""


def save(fig: Figure, path: Path, title: str, *, tight: bool = True) -> Path:
    """Write ``fig`` as PNG with ``Title`` and the drawn labels as metadata, then close it; the saved area is the
    tight box around everything drawn, plus :data:`PAD_INCHES` (matplotlib's ``bbox_inches="tight"``, which
    draws the figure once more), or with ``tight=False`` the figure as laid out (a fixed layout that fits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=fig.dpi, bbox_inches="tight" if tight else None, pad_inches=PAD_INCHES,
                metadata={"Title": title, LABELS_KEY: json.dumps(drawn_labels(fig)), "Software": "lbfgs_verify"})
    plt.close(fig)
    return path


def _fit(fig: Figure, **kwargs: Any) -> None:
    """``tight_layout``; where the labels cannot all fit, matplotlib keeps the layout it has (cosmetic only)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tight layout not applied", category=UserWarning)
        fig.tight_layout(**kwargs)


# ---------------------------------------------------------------------------------------------- convergence


def _suboptimality(values: Sequence[Any], f_ref: float) -> list[float]:
    floor = FLOOR * max(1.0, abs(f_ref))
    return [max(_number(v) - f_ref, floor) for v in values]


def _draw_convergence(ax: Any, report: Mapping[str, Any], problem: Mapping[str, Any], *, legend: bool) -> None:
    colors, names, styles = solver_colors(report), solver_names(report), solver_styles(report)
    f_ref = _number(problem["f_ref"])
    runs = [r for r in report["convergence"]["runs"] if r["problem"] == problem["name"]]
    for run in runs:
        label = names[run["solver"]] + ("" if run["status"] == "ok" else f" ({run['status']})")
        curve = run["curve"]
        if curve["evaluations"] and math.isfinite(f_ref):
            style = styles[run["solver"]] if run["status"] == "ok" else {"lw": 1.2, "ls": ":"}
            ax.plot(curve["evaluations"], _suboptimality(curve["f_best"], f_ref), drawstyle="steps-post",
                    color=colors[run["solver"]], label=label, **style)
        else:
            ax.plot([], [], color=colors[run["solver"]], label=label, ls=":")
    ax.set_yscale("log")
    # Plain "1e-04" labels: matplotlib's default log labels are mathtext, whose layout was a quarter of drawing
    # the 43 convergence figures and the overview's 43 axes.
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:.0e}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", alpha=0.3)
    if legend:
        ax.legend(fontsize=7, loc="upper right")


def convergence_figure(report: Mapping[str, Any], problem: Mapping[str, Any]) -> Figure:
    """f − f_ref (lowest f so far) against evaluations on one problem, one line per solver."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=80)
    _draw_convergence(ax, report, problem, legend=True)
    star = "f*" if problem.get("f_star") is not None else "best f found"
    ax.set_title(problem["name"], fontsize=9)
    ax.set_xlabel("function evaluations")
    ax.set_ylabel(f"f − f_ref (f_ref = min of {star} and solvers)", fontsize=8)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.92)
    return fig


def convergence_overview(report: Mapping[str, Any]) -> Figure:
    """Every problem's convergence plot, small, with one legend."""
    problems = report["problems"]
    cols = min(6, max(1, len(problems)))
    rows = math.ceil(len(problems) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.3 * rows + 0.9), dpi=60, squeeze=False)
    for ax, problem in zip(axes.flat, problems, strict=False):
        _draw_convergence(ax, report, problem, legend=False)
        ax.set_title(short_name(problem["name"]), fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(problems):]:
        ax.axis("off")
    colors, names = solver_colors(report), solver_names(report)
    styles = solver_styles(report)
    handles = [Line2D([], [], color=colors[s["id"]], **styles[s["id"]]) for s in report["solvers"]]
    fig.legend(handles, [names[s["id"]] for s in report["solvers"]], loc="upper center", ncol=min(3, len(handles)),
               fontsize=9, frameon=False, title="f − f_ref (lowest f so far) against function evaluations",
               title_fontsize=11)
    height = 2.3 * rows + 0.9  # inches; fixed spacing instead of tight_layout (one draw less for ~40 axes)
    legend_inches = 0.55 + 0.2 * math.ceil(len(handles) / min(3, max(1, len(handles))))  # title + entry rows
    fig.subplots_adjust(left=0.45 / (3.0 * cols), right=1 - 0.1 / (3.0 * cols), bottom=0.35 / height,
                        top=1 - legend_inches / height, wspace=0.32, hspace=0.5)
    return fig


def profile_figure(report: Mapping[str, Any], measure: str) -> Figure:
    """Dolan–Moré performance profile on ``evaluations`` or ``time``."""
    colors, names, styles = solver_colors(report), solver_names(report), solver_styles(report)
    profile = report["profiles"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=80)
    for sid, rho in profile[measure].items():
        ax.plot(profile["tau"], rho, drawstyle="steps-post", color=colors[sid], label=names[sid], **styles[sid])
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("τ (within a factor τ of the best solver)")
    ax.set_ylabel("share of problems")
    what = "function evaluations" if measure == "evaluations" else "time (seconds)"
    ax.set_title(f"Performance profile on {what}, {len(report['problems'])} problems", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    _fit(fig)
    return fig


# ---------------------------------------------------------------------------------------------- grids


def _grid(ax: Any, rows: Sequence[str], cols: Sequence[str], status: Mapping[tuple[str, str], str],
          texts: Mapping[tuple[str, str], str] | None = None) -> None:
    """A colored grid: one cell per (row, col), color from :data:`STATUS_COLORS`, optional text in the cell."""
    keys = list(dict.fromkeys(STATUS_COLORS))
    index = {k: i for i, k in enumerate(keys)}
    data = [[index.get(status.get((r, c), "none"), index["none"]) for c in cols] for r in rows]
    ax.imshow(data, cmap=ListedColormap([STATUS_COLORS[k] for k in keys]), vmin=-0.5, vmax=len(keys) - 0.5,
              aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xticks([x - 0.5 for x in range(1, len(cols))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    ax.grid(which="minor", color="white", lw=1.5)
    ax.tick_params(which="minor", length=0)
    for (r, c), text in (texts or {}).items():
        if r in rows and c in cols:
            ax.text(cols.index(c), rows.index(r), text, ha="center", va="center", fontsize=7, color="white")


def _status_legend(ax: Any, statuses: Sequence[str], **kwargs: Any) -> None:
    ax.legend(handles=[Patch(color=STATUS_COLORS[s], label=s) for s in statuses], fontsize=7, **kwargs)


def bitwise_figure(report: Mapping[str, Any]) -> Figure:
    """Optimizer vs torch.optim.LBFGS, bitwise, per configuration (rows) and solver (columns)."""
    names = solver_names(report)
    bitwise = report["agreement"]["bitwise"]
    rows = bitwise["configurations"]
    cols = list(dict.fromkeys(names[c["solver"]] for c in bitwise["cells"])) or ["(no solver to compare)"]
    status = {(c["configuration"], names[c["solver"]]): c["status"] for c in bitwise["cells"]}
    texts = {(c["configuration"], names[c["solver"]]): f"{c['bitwise_problems']}/{c['problems']}"
             for c in bitwise["cells"] if c["status"] != "skipped"}
    fig, ax = plt.subplots(figsize=(3.5 + 2.0 * len(cols), 2.4 + 0.38 * len(rows)), dpi=80)
    _grid(ax, rows, cols, status, texts)
    ax.set_title(f"bitwise equal to torch.optim.LBFGS ({bitwise['steps']} steps; cells: problems equal/run)",
                 fontsize=9)
    _status_legend(ax, ["bitwise", "differs", "failed", "skipped"], loc="upper left", bbox_to_anchor=(1.01, 1))
    _fit(fig)
    return fig


def lbfgsb_figure(report: Mapping[str, Any]) -> Figure:
    """minimize_lbfgsb vs scipy: largest relative iterate difference per problem; color: counts identical."""
    part = report["agreement"]["lbfgsb_vs_scipy"]
    rows = part["rows"]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.22 * len(rows) + 2), 3.8), dpi=80)
    labels = [short_name(r["problem"]) for r in rows]
    values = [max(_number(r["max_relative_iterate_difference"]), 1e-18) for r in rows]
    colors = [STATUS_COLORS["bitwise" if r["counts_identical"] else "differs"] for r in rows]
    ax.bar(range(len(rows)), values, color=colors)
    ax.axhline(part["iterate_tolerance"], color="black", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), labels, rotation=90, fontsize=6)
    ax.set_ylabel("max ‖x_ours − x_scipy‖∞ / ‖x_scipy‖∞")
    ax.set_title("lbfgs_verify.reference.minimize_lbfgsb vs scipy L-BFGS-B, every iteration "
                 "(bars at 1e-18: identical)", fontsize=9)
    ax.legend(handles=[Patch(color=STATUS_COLORS["bitwise"], label="evaluation counts identical"),
                       Patch(color=STATUS_COLORS["differs"], label="evaluation counts differ"),
                       Line2D([], [], color="black", ls="--", label=f"tolerance {part['iterate_tolerance']:g}")],
              fontsize=7, loc="upper left")
    _fit(fig)
    return fig


def solution_figure(report: Mapping[str, Any]) -> Figure:
    """Every solver's final f against scipy's, per problem: same / lower / higher / failed."""
    names = solver_names(report)
    rows_data = report["agreement"]["final_f_vs_scipy"]
    problems = [p["name"] for p in report["problems"]]
    solvers = list(dict.fromkeys(names[r["solver"]] for r in rows_data))
    outcome_status = {"same": "bitwise", "lower": "lower", "higher": "differs", "failed": "failed",
                      "skipped": "none"}
    status = {(names[r["solver"]], r["problem"]): outcome_status.get(r["outcome"], "none") for r in rows_data}
    fig, ax = plt.subplots(figsize=(max(6.4, 0.2 * len(problems) + 5.5), 2.8 + 0.4 * len(solvers)), dpi=80)
    _grid(ax, solvers, problems, status)
    ax.set_xticks(range(len(problems)), [short_name(p) for p in problems], rotation=90, fontsize=6)
    ax.set_title("final f against scipy L-BFGS-B's (same: within 1e-6·max(1,|f|))", fontsize=9)
    ax.legend(handles=[Patch(color=STATUS_COLORS[v], label=k) for k, v in outcome_status.items()
                       if k != "skipped"], fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    _fit(fig)
    return fig


def check_figure(report: Mapping[str, Any]) -> Figure:
    """The property × target verdict grid of ``lbfgs-verify check``."""
    reports = report["check"]["reports"]
    properties, targets, status = verdict_grid({t: r for t, r in reports.items() if "error" not in r})
    targets = list(reports)
    fig, ax = plt.subplots(figsize=(3.5 + 2.0 * len(targets), 2.6 + 0.24 * max(1, len(properties))), dpi=80)
    _grid(ax, properties or ["(no property ran)"], targets, status)
    ax.set_title(f"lbfgs-verify check --budget {report['check']['budget']} (mode properties)", fontsize=9)
    _status_legend(ax, ["pass", "fail", "error", "skip"], loc="upper left", bbox_to_anchor=(1.01, 1))
    _fit(fig)
    return fig


def fuzz_figure(report: Mapping[str, Any]) -> Figure:
    """The fuzzer's outcome matrix per target: case (route or corruption class) × outcome, with counts."""
    reports = {t: r for t, r in report["fuzz"]["reports"].items() if "error" not in r}
    findings = frozenset(report["fuzz"].get("finding_outcomes", DEFAULT_FINDINGS))
    fig, axes = plt.subplots(1, max(1, len(reports)), figsize=(1.0 + 4.4 * max(1, len(reports)), 5.5), dpi=80,
                             squeeze=False)
    for ax, (target, data) in zip(axes.flat, reports.items(), strict=False):
        rows, outcomes, counts = fuzz_matrix(data)
        status = {}
        for (row, outcome), n in counts.items():
            status[(row, outcome)] = ("fail" if outcome in findings else
                                      "skip" if outcome in NEUTRAL_FUZZ_OUTCOMES else "pass") if n else "none"
        _grid(ax, rows or ["(no case)"], outcomes or ["(none)"], status,
              {k: str(v) for k, v in counts.items()})
        ax.set_title(target, fontsize=9)
    fig.suptitle("state_dict fuzzer: outcomes (red: a finding, a defect of the target)", fontsize=10)
    _fit(fig)
    return fig


def resume_figure(report: Mapping[str, Any]) -> Figure:
    """Per solver and transport: bitwise continuation (or not) after resuming at each split point."""
    names = solver_names(report)
    resume = report["resume"]
    rows, status = [], {}
    for row in resume["rows"]:
        label = names[row["solver"]] + (f" | {row['transport']}" if row["transport"] else " | (no state)")
        rows.append(label)
        for split in row["splits"]:
            status[(label, str(split["split"]))] = split["status"]
        if not row["splits"]:
            for k in range(resume["steps"]):
                status[(label, str(k))] = "skipped" if not row["transport"] else "failed"
    cols = [str(k) for k in range(resume["steps"])]
    fig, ax = plt.subplots(figsize=(8.5 + 0.35 * len(cols), 1.6 + 0.27 * len(rows)), dpi=80)
    _grid(ax, rows, cols, status)
    ax.set_xticks(range(len(cols)), cols, rotation=0, fontsize=8)
    ax.set_xlabel("split: steps done before save → load → continue")
    ax.set_title(f"resume bitwise at every split ({resume['problem']})", fontsize=9)
    _status_legend(ax, ["bitwise", "differs", "failed", "skipped"], loc="upper left", bbox_to_anchor=(1.01, 1))
    _fit(fig)
    return fig


def benchmark_figure(report: Mapping[str, Any]) -> Figure:
    """Median time of each benchmark as a ratio to torch.optim.LBFGS's."""
    rows = [r for r in report["benchmarks"]["rows"] if r["ratio_to_torch"] is not None]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.35 * max(1, len(rows))), dpi=80)
    labels = [f"{r['optimizer']} | {r['case']}" for r in rows]
    ax.barh(range(len(rows)), [r["ratio_to_torch"] for r in rows], color="#1565c0")
    ax.axvline(1.0, color="black", lw=1)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("median time / torch.optim.LBFGS's median time (pytest-benchmark)")
    ax.set_title("step speed, ratio to torch.optim.LBFGS", fontsize=9)
    _fit(fig)
    return fig


def is_constant(values: Sequence[Any]) -> bool:
    """Two or more values, all equal: their plot would be a row of identical marks (the page says it in words)."""
    return len(values) >= 2 and all(v == values[0] for v in values)


def _convergence_drawers(report: Mapping[str, Any]) -> dict[str, Any]:
    """Role -> drawer for the plots of the convergence runs alone (:data:`CONVERGENCE_ROLES`)."""
    return {"convergence_overview": lambda: convergence_overview(report),
            "profile_evaluations": lambda: profile_figure(report, "evaluations"),
            "profile_time": lambda: profile_figure(report, "time")}


def figures(report: Mapping[str, Any]) -> dict[str, Any]:
    """Role -> a function drawing that figure, for every plot the report has (constant ones left out)."""
    ran = set(report.get("sections", ("convergence", "agreement", "properties", "fuzz", "resume", "benchmarks")))
    out: dict[str, Any] = {}
    if "convergence" in ran:
        out.update(_convergence_drawers(report))
    agreement = report["agreement"]
    cells = agreement["bitwise"]["cells"]
    if "agreement" in ran and not is_constant([(c["status"], c["bitwise_problems"], c["problems"]) for c in cells]):
        out["bitwise"] = lambda: bitwise_figure(report)
    bars = [(r["counts_identical"], r["max_relative_iterate_difference"]) for r in agreement["lbfgsb_vs_scipy"]["rows"]]
    if bars and not is_constant(bars):
        out["lbfgsb"] = lambda: lbfgsb_figure(report)
    if agreement["final_f_vs_scipy"]:
        out["solution"] = lambda: solution_figure(report)
    if "properties" in ran:
        out["check"] = lambda: check_figure(report)
    if report["fuzz"]["available"] and report["fuzz"]["reports"]:
        out["fuzz"] = lambda: fuzz_figure(report)
    if "resume" in ran:
        out["resume"] = lambda: resume_figure(report)
    if any(r["ratio_to_torch"] is not None for r in report["benchmarks"]["rows"]):
        out["benchmarks"] = lambda: benchmark_figure(report)
    return out


FILES = {"convergence_overview": ("convergence_overview.png", "convergence, every problem"),
         "profile_evaluations": ("profile_evaluations.png", "performance profile, evaluations"),
         "profile_time": ("profile_time.png", "performance profile, time"),
         "bitwise": ("agreement_bitwise.png", "bitwise vs torch"),
         "lbfgsb": ("agreement_lbfgsb_scipy.png", "minimize_lbfgsb vs scipy"),
         "solution": ("agreement_final_f.png", "final f vs scipy"),
         "check": ("check_verdicts.png", "property verdicts"), "fuzz": ("fuzz_outcomes.png", "fuzz outcomes"),
         "resume": ("resume_splits.png", "resume at every split"),
         "benchmarks": ("benchmarks.png", "benchmark ratios")}


CONVERGENCE_ROLES = ("convergence_overview", "profile_evaluations", "profile_time")
"""The plots drawn from the convergence runs alone (``solvers``, ``problems``, ``convergence``, ``profiles``)."""


def write_convergence_plots(report: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Draw the convergence plots (:data:`CONVERGENCE_ROLES` and one per problem) from a report that may have
    only the convergence fields yet; return their paths relative to ``out`` (``{}`` when convergence did not
    run). The report draws them while its worker process is still busy with the verdict sections."""
    if "convergence" not in report.get("sections", ()):
        return {}
    plots = out / "plots"
    paths: dict[str, Any] = {"convergence": {}}
    for role, draw in _convergence_drawers(report).items():
        name, title = FILES[role]
        paths[role] = save(draw(), plots / name, title)
    for problem in report["problems"]:
        path = save(convergence_figure(report, problem), plots / "convergence" / f"{slug(problem['name'])}.png",
                    f"convergence on {problem['name']}", tight=False)  # fixed margins: one draw, not two
        paths["convergence"][problem["name"]] = path
    return _relative(paths, out)


def write_plots(report: Mapping[str, Any], out: Path, drawn: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Draw every plot under ``out/plots`` but those of ``drawn`` (paths :func:`write_convergence_plots`
    returned for this report); return their paths relative to ``out`` by role."""
    plots = out / "plots"
    drawn = dict(drawn) if drawn else write_convergence_plots(report, out)
    paths: dict[str, Any] = {"convergence": {}}
    for role, draw in figures(report).items():
        if role in CONVERGENCE_ROLES:
            continue
        name, title = FILES[role]
        paths[role] = save(draw(), plots / name, title)
    paths = _relative(paths, out)
    ordered = {role: drawn[role] for role in CONVERGENCE_ROLES if role in drawn}
    return {"convergence": drawn.get("convergence", {}), **ordered,
            **{role: path for role, path in paths.items() if role != "convergence"}}


def _relative(paths: dict[str, Any], out: Path) -> dict[str, Any]:
    def relative(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: relative(v) for k, v in value.items()}
        return value if isinstance(value, str) else value.relative_to(out).as_posix()

    return relative(paths)
