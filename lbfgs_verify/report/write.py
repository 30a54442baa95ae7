"""Write a report directory: ``report.json``, ``plots/``, ``index.md``, ``index.html``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lbfgs_verify.report.collect import ReportOptions, collect
from lbfgs_verify.report.document import build_sections
from lbfgs_verify.report.html import render_html
from lbfgs_verify.report.markdown import render_markdown
from lbfgs_verify.report.plots import write_plots


def render(report: dict[str, Any], out: Path) -> dict[str, Path]:
    """Draw the plots and write the pages and ``report.json`` for an already collected ``report``."""
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(report, out)
    report["plots"] = plots
    sections = build_sections(report, plots)
    paths = {"json": out / "report.json", "markdown": out / "index.md", "html": out / "index.html"}
    paths["json"].write_text(json.dumps(report, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(report["title"], sections), encoding="utf-8")
    paths["html"].write_text(render_html(report["title"], sections, out), encoding="utf-8")
    return paths


def write_report(options: ReportOptions) -> dict[str, Any]:
    """Collect every section, then :func:`render` it under ``options.out``; return the report dict."""
    report = collect(options)
    render(report, options.out)
    return report
