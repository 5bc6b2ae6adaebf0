"""Reports over a results directory: tables and learning curves with bootstrap intervals, as a PDF
with CSV, Markdown and LaTeX tables beside it. The only part of gcrl-bench that imports matplotlib,
seaborn and rliable."""

from gcrl_bench.reports.report import build_report
from gcrl_bench.reports.results import load_results

__all__ = ["build_report", "load_results"]
