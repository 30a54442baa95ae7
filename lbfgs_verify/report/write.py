"""Write a report directory: ``report.json``, ``plots/``, ``index.md``, ``index.html``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from lbfgs_verify.report.collect import TITLE, ReportOptions, collect
from lbfgs_verify.report.document import build_sections
from lbfgs_verify.report.html import render_html
from lbfgs_verify.report.markdown import render_markdown
from lbfgs_verify.report.plots import write_convergence_plots, write_plots


def is_report_directory(path: Path) -> bool:
    """``path`` holds a report written by ``lbfgs-verify report`` (its ``report.json`` has the report's title)."""
    try:
        data = json.loads((path / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("title") == TITLE and "schema_version" in data


def output_problem(out: Path, *, force: bool = False) -> str | None:
    """Why ``lbfgs-verify report`` will not write into ``out``, or ``None``: a file, or a non-empty folder that
    no report wrote (``--force`` writes there anyway). An earlier report's folder is replaced: its
    ``report.json``, pages and ``plots/``; nothing else in it is touched."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: is a file, not a folder"
    if out.is_dir() and any(out.iterdir()) and not force and not is_report_directory(out):
        return (f"--out {out}: the folder is not empty and holds no earlier report (no report.json of "
                "lbfgs-verify report); choose a new or empty folder, or pass --force to write there anyway")
    return None


def fresh_directory(parent: Path, stamp: str) -> Path:
    """A folder name under ``parent`` that does not exist yet: ``lbfgs-verify-report-STAMP`` (``-2``, ``-3``...)."""
    candidate = parent / f"lbfgs-verify-report-{stamp}"
    number = 1
    while candidate.exists():
        number += 1
        candidate = parent / f"lbfgs-verify-report-{stamp}-{number}"
    return candidate


def render(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """Draw the plots and write the pages and ``report.json`` for an already collected ``report`` (an earlier
    report's ``plots/`` is removed first, so that no stale picture stays next to the new pages)."""
    drawn = report.pop("_drawn", None)  # plots collect drew already (write_report)
    out.mkdir(parents=True, exist_ok=True)
    if drawn is None:
        remove_old_plots(out)
    plots = write_plots(report, out, drawn)
    report["plots"] = plots
    sections = build_sections(report, plots)
    paths = {"json": out / "report.json", "markdown": out / "index.md", "html": out / "index.html"}
    paths["json"].write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(report["title"], sections), encoding="utf-8")
    paths["html"].write_text(render_html(report["title"], sections, out), encoding="utf-8")
    return paths


def remove_old_plots(out: Path) -> None:
    """Remove an earlier report's ``plots/`` (no stale picture stays next to the new pages)."""
    if (out / "plots").is_dir() and is_report_directory(out):
        shutil.rmtree(out / "plots")


def write_report(options: ReportOptions) -> dict[str, Any]:
    """Collect every section, then :func:`render` it under ``options.out``; return the report dict. The
    convergence plots are drawn as soon as their numbers are final (:func:`collect`'s ``draw_convergence``)."""
    remove_old_plots(options.out)
    report = collect(options, draw_convergence=lambda partial: write_convergence_plots(partial, options.out))
    render(report, options.out)
    return report
