"""Small HTML builders for the report: every piece of text goes through `esc`."""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Iterable, Sequence

STATUS_COLORS = {
    "complete": "#2e7d32",
    "cached": "#1565c0",
    "failed": "#c62828",
    "canceled": "#c62828",
    "running": "#ef6c00",
    "not run": "#9e9e9e",
}


class Markup(str):
    """HTML that is already safe: `esc` and `table` pass it through unchanged."""


def esc(value: object) -> Markup:
    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


def number(value: float | None) -> str:
    """Whole numbers from 1,000 up with separators, others to 4 significant digits;
    '-' when unknown."""
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f}%"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> Markup:
    """A table; `align` has one letter per column, `l` or `r` (numbers); by default the
    first column is left-aligned and the others right-aligned."""
    alignment = align or "l" + "r" * (len(headers) - 1)

    def cells(row: Sequence[object], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=num' if side == 'r' else ''}>{esc(cell)}</{tag}>"
            for side, cell in zip(alignment, row, strict=True)
        )

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    return Markup(
        f"<table><thead><tr>{cells(headers, 'th')}</tr></thead><tbody>{body}</tbody></table>"
    )


def note(text: str, kind: str = "missing") -> Markup:
    """A highlighted line: `missing` (grey), `ok` (green) or `bad` (red)."""
    return Markup(f'<p class="note {kind}">{esc(text)}</p>')


def paragraph(text: str) -> Markup:
    return Markup(f"<p>{esc(text)}</p>")


def heading(text: str) -> Markup:
    return Markup(f"<h3>{esc(text)}</h3>")


def badge(text: str, status: str | None = None) -> Markup:
    """`text` on the color of `status` (default: `text` itself is the status)."""
    color = STATUS_COLORS.get(status or text, "#616161")
    return Markup(f'<span class="badge" style="background:{color}">{esc(text)}</span>')


def image(relative_path: str, alt: str) -> Markup:
    return Markup(f'<img src="{esc(relative_path)}" alt="{esc(alt)}">')


def bullets(items: Iterable[str]) -> Markup:
    return Markup("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>")


@dataclasses.dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    body: Markup


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121;
       margin: 0 auto; max-width: 1180px; padding: 16px 28px 60px; }
h1 { font-size: 22px; margin: 8px 0 2px; }
h2 { font-size: 18px; border-bottom: 2px solid #e0e0e0; padding-bottom: 4px; margin-top: 34px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
nav a { margin-right: 14px; color: #1565c0; text-decoration: none; }
.subtitle { color: #616161; margin: 0 0 10px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { color: white; border-radius: 3px; padding: 1px 7px; font-size: 12px; }
.note { white-space: pre-line; padding: 6px 10px; border-left: 4px solid #9e9e9e; background: #fafafa; }
.note.ok { border-color: #2e7d32; background: #f1f8e9; }
.note.bad { border-color: #c62828; background: #ffebee; }
img { max-width: 100%; border: 1px solid #eeeeee; }
svg text { font: 13px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
"""


def page(title: str, subtitle: Markup, sections: Sequence[Section]) -> str:
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"
        f'<div class="subtitle">{subtitle}</div><nav>{nav}</nav>{body}</body></html>\n'
    )
