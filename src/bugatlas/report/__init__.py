"""The study report: self-contained HTML (plotly inlined), Markdown, CSV and LaTeX tables."""

from bugatlas.report.build import ReportResult, build_report, md_escape

__all__ = ["ReportResult", "build_report", "md_escape"]
