"""``lbfgs-verify report``: how optimizers compare, as a Markdown page, a self-contained HTML page, PNG plots and
``report.json``.

- :mod:`~lbfgs_verify.report.collect` runs every section once and gathers the numbers (``report.json``);
- :mod:`~lbfgs_verify.report.plots` draws the PNGs from those numbers (matplotlib, Agg);
- :mod:`~lbfgs_verify.report.document` lays the sections out once; :mod:`~lbfgs_verify.report.markdown` and
  :mod:`~lbfgs_verify.report.html` write them as ``index.md`` and ``index.html``.

:func:`write_report` does all of it.
"""

from lbfgs_verify.report.budget import REPORT_BUDGETS, ReportBudget
from lbfgs_verify.report.collect import ReportOptions, collect, without_timings

__all__ = ["REPORT_BUDGETS", "ReportBudget", "ReportOptions", "collect", "without_timings", "write_report"]


def write_report(options: ReportOptions) -> dict:
    """Collect, plot and write ``index.md``, ``index.html``, ``report.json`` and ``plots/`` under ``options.out``."""
    from lbfgs_verify.report.write import write_report as _write

    return _write(options)
