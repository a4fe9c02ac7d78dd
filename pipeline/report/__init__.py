"""The run report: `<output>/report.html` and the `leanline report` / `leanline runs` commands."""

from pipeline.report.build import REPORT_FILE, write_report

__all__ = ["REPORT_FILE", "write_report"]
