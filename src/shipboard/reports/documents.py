"""The reports as documents: a standalone HTML page (Jinja templates in ``reports/templates/``,
charts from ``core.charts``, figures written by ``core.formatting``) and CSV.

Pure: a computed report in, text out; no database and no clock. The same page is what the API
answers to ``format=html``, what scheduled reports attach to an email, and what the CLI prints;
a page needs nothing from elsewhere (no stylesheet, script or font), so it prints and files as is.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from shipboard.core import charts, formatting
from shipboard.core.csvsafe import dict_writer
from shipboard.environments.config_sections import ReportKind
from shipboard.reports.dora import WEEKLY_FIELDS, totals_row
from shipboard.reports.monitoring import MetricSummary, MonitoringReport

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["duration"] = formatting.duration
_env.filters["percent"] = formatting.percent
_env.filters["percent_change"] = formatting.percent_change


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _number(value: float | None) -> str:
    return formatting.MISSING if value is None else f"{value:.4g}"


def _tags(tags: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


_env.filters["plural"] = _plural
_env.filters["number"] = _number
_env.filters["tags"] = _tags
_env.globals["sparkline"] = charts.sparkline


def dora_chart(
    report: dict[str, Any], *, title: str, empty_text: str = "No completed deployments"
) -> Markup:
    """Deployments that reached the environment, and failed or rolled-back ones, per calendar
    week (labelled with the Monday's month-day): the DORA page's chart and the document's."""
    weekly = report["weekly"]
    return charts.bar_chart(
        [row["week_start"][5:] for row in weekly],
        [
            charts.Bars("deployments", [row["deployments"] for row in weekly], "deployed"),
            charts.Bars("failed", [row["failed"] for row in weekly], "failed"),
        ],
        title=title,
        unit="count",
        empty_text=empty_text,
    )


def to_html(kind: ReportKind, report: Any) -> str:
    """The report as one standalone HTML page."""
    context: dict[str, Any] = {"report": report}
    if kind == "dora":
        context["chart"] = dora_chart(report, title="Deployments per week")
        context["total"] = totals_row(report)
    return _env.get_template(f"{kind}.html").render(context)


# --- CSV -------------------------------------------------------------------------------------

PERFORMANCE_FIELDS: Final = (
    "name",
    "tags",
    "unit",
    "direction",
    "points",
    "latest",
    "latest_version",
    "min",
    "max",
    "mean",
    "median",
    "change_pct",
    "trend",
    "regressed",
)
SECURITY_FIELDS: Final = (
    "severity",
    "title",
    "location",
    "cwe_id",
    "tool",
    "scan_type",
    "first_seen_at",
    "due_at",
    "overdue",
)


def _csv(fields: tuple[str, ...] | list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = dict_writer(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def dora_csv(report: dict[str, Any]) -> str:
    """A header, then the totals as a ``total`` row, then one row per week. A None value is
    written as an empty cell."""
    return _csv(WEEKLY_FIELDS, [totals_row(report), *report["weekly"]])


def performance_csv(report: dict[str, Any]) -> str:
    """One row per benchmark series; tags as ``k=v;k=v``."""
    rows = [
        {**row, "tags": ";".join(f"{k}={v}" for k, v in sorted(row["tags"].items()))}
        for row in report["benchmarks"]
    ]
    return _csv(PERFORMANCE_FIELDS, rows)


def security_csv(report: dict[str, Any]) -> str:
    """One row per open finding."""
    return _csv(SECURITY_FIELDS, report["findings"])


def monitoring_csv(report: MonitoringReport) -> str:
    """One row per metric."""
    return _csv(list(MetricSummary.model_fields), [m.model_dump() for m in report.metrics])


_CSV: Final[dict[str, Callable[[Any], str]]] = {
    "dora": dora_csv,
    "performance": performance_csv,
    "security": security_csv,
    "monitoring": monitoring_csv,
}


def to_csv(kind: ReportKind, report: Any) -> str:
    """The report's rows as CSV, through the one formula-safe writer."""
    return _CSV[kind](report)
