"""The delivery dashboard as one HTML page: tiles, charts, a timeline, a table.

One self-contained page per run (inline CSS and SVG, no script, no network): what
``invoke report --html`` writes, ``nox -s demo`` ends with and
:mod:`cicd.reporting.publish` pushes beside the documentation. The figures are
:mod:`cicd.reporting.dora`'s, in the words of :mod:`cicd.reporting.report`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cicd.reporting.dora import DAYS, EnvReport, Incident, Mark
from cicd.reporting.report import duration, gather, summary

#: Deploys listed on the page per environment (all of them are in ``--json``).
TABLE_ROWS = 50

COLOURS = {
    "deploy": "#1a7f37",
    "failed": "#cf222e",
    "rollback": "#bc4c00",
    "ci_failed": "#cf222e",
    "down": "#cf222e",
    "up": "#1a7f37",
}
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;
color:#1f2328;background:#f6f8fa}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 8px}
h3{font-size:15px;margin:18px 0 6px;color:#57606a}
.muted{color:#57606a}section{background:#fff;border:1px solid #d0d7de;
border-radius:8px;padding:16px 20px;margin:16px 0}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px}
.tile{border:1px solid #d0d7de;border-radius:6px;padding:10px 12px;background:#fff}
.tile b{display:block;font-size:13px;color:#57606a;font-weight:600}
.tile span{display:block;font-size:17px;margin:4px 0 2px}
.level{font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.elite,.high{color:#1a7f37}.medium{color:#9a6700}.low{color:#cf222e}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #d8dee4;padding:4px 6px;text-align:left}
code{font:12px ui-monospace,monospace}svg{display:block;max-width:100%}
"""


def render_html(
    reports: Sequence[EnvReport], *, title: str = "Delivery dashboard"
) -> str:
    """One self-contained page: inline CSS and SVG charts, no script, no network."""
    made = max((r.end for r in reports), default=datetime.now(UTC))
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">The four DORA measures and availability per day, from '
        f"each environment's ledger and monitor history. Made {made:%Y-%m-%d %H:%M} "
        "UTC with <code>invoke report --html</code>.</p>",
    ]
    if not reports:
        body.append("<section><p>No environment configured.</p></section>")
    for report in reports:
        body.append(_section(report))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may load from anywhere: styles and pictures are in the page.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _section(report: EnvReport) -> str:
    tiles = "".join(
        f'<div class="tile"><b>{_e(name)}</b><span>{_e(value)}</span>'
        + (
            f'<em class="level {_e(note)}">{_e(note)}</em>'
            if note in ("elite", "high", "medium", "low")
            else f'<em class="muted">{_e(note)}</em>'
        )
        + "</div>"
        for name, value, note in summary(report)
    )
    parts = [
        f'<section id="{_e(report.env)}"><h2>{_e(report.env)}</h2>',
        f'<p class="muted">{report.start:%Y-%m-%d} → {report.end:%Y-%m-%d}</p>',
        f'<div class="tiles">{tiles}</div>',
        "<h3>Availability per day</h3>",
        _availability_svg(report),
        "<h3>Timeline of deploys, rollbacks and outages</h3>",
        _timeline_svg(report),
        _deploy_table(report),
    ]
    parts += [f'<p class="muted">warning: {_e(w)}</p>' for w in report.warnings]
    parts.append("</section>")
    return "".join(parts)


def _availability_svg(report: EnvReport) -> str:
    width, height, left, bottom = 940, 170, 44, 26
    values = [d.availability for d in report.days if d.availability is not None]
    if not values:
        return '<p class="muted">No monitor checks in this window yet.</p>'
    floor = min(95.0, 5 * int(min(values) // 5))
    plot_h = height - bottom - 10
    step = (width - left) / max(len(report.days), 1)
    items = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="availability per day of {_e(report.env)}">'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = 10 + plot_h * (1 - fraction)
        label = floor + (100 - floor) * fraction
        items.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" '
            'stroke="#d8dee4"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#57606a">{label:g} %</text>'
        )
    for n, day in enumerate(report.days):
        x = left + n * step + step * 0.15
        value = day.availability
        if value is None:
            items.append(
                f'<rect x="{x:.1f}" y="{height - bottom - 2}" width="{step * 0.7:.1f}" '
                f'height="2" fill="#d0d7de"><title>{day.day}: no data</title></rect>'
            )
        else:
            shown = max(value, floor)
            bar = plot_h * (shown - floor) / (100 - floor)
            colour = (
                "#1a7f37" if value >= 99.5 else "#bf8700" if value >= 99 else "#cf222e"
            )
            items.append(
                f'<rect x="{x:.1f}" y="{10 + plot_h - bar:.1f}" '
                f'width="{step * 0.7:.1f}" '
                f'height="{max(bar, 1):.1f}" fill="{colour}"><title>{day.day}: '
                f"{value:.2f} % of {day.observed / 3600:.1f} h observed</title></rect>"
            )
        if n % max(1, len(report.days) // 6) == 0 or n == len(report.days) - 1:
            items.append(
                f'<text x="{x + step * 0.35:.1f}" y="{height - 8}" font-size="11" '
                f'text-anchor="middle" fill="#57606a">{day.day:%m-%d}</text>'
            )
    items.append("</svg>")
    return "".join(items)


#: The timeline's lanes: each label's height in the picture.
LANES = {"deploys": 42, "rollbacks, CI": 68, "monitor": 94}
#: The lane of each kind of mark.
LANE_OF = {
    "deploy": 42,
    "failed": 42,
    "rollback": 68,
    "ci_failed": 68,
    "down": 94,
    "up": 94,
}


@dataclass(frozen=True)
class _TimeAxis:
    """The timeline's horizontal axis: from ``origin`` to the end of the report.

    Attributes:
        origin: The time at the left edge.
        end: The time at the right edge.
        width: The picture's width.
        left: Room left of the axis, for the lanes' labels.
        right: Room right of the axis.
    """

    origin: datetime
    end: datetime
    width: int = 940
    left: int = 92
    right: int = 10

    @classmethod
    def around(cls, report: EnvReport) -> _TimeAxis:
        """From shortly before the report's first mark to its end.

        A quiet month must not squeeze a busy afternoon into one pixel.
        """
        first = max(min(m.time for m in report.marks), report.start)
        pad = max((report.end - first) * 0.04, timedelta(minutes=1))
        return cls(max(first - pad, report.start), report.end)

    def x(self, moment: datetime) -> float:
        """Where a moment is on the axis (clamped to its ends)."""
        span = max((self.end - self.origin).total_seconds(), 1.0)
        offset = (moment - self.origin).total_seconds() / span
        length = self.width - self.left - self.right
        return self.left + length * min(max(offset, 0.0), 1.0)


def _timeline_svg(report: EnvReport) -> str:
    """Deploys, rollbacks, CI failures and outages in lanes, incidents shaded."""
    if not report.marks:
        return '<p class="muted">Nothing happened in this window.</p>'
    axis = _TimeAxis.around(report)
    items = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {axis.width} 112" '
        f'role="img" aria-label="timeline of {_e(report.env)}">',
    ]
    for label, y in LANES.items():
        items.append(
            f'<line x1="{axis.left}" y1="{y}" x2="{axis.width - axis.right}" '
            f'y2="{y}" stroke="#d8dee4"/>'
            f'<text x="{axis.left - 8}" y="{y + 4}" font-size="11" '
            f'text-anchor="end" fill="#57606a">{label}</text>'
        )
    items += [_incident_band(incident, axis) for incident in report.incidents]
    items += [_mark_shape(mark, axis.x(mark.time)) for mark in report.marks]
    items.append(_timeline_legend(axis))
    items.append("</svg>")
    return "".join(items)


def _incident_band(incident: Incident, axis: _TimeAxis) -> str:
    """A shaded band over all lanes while the incident lasted (or goes on)."""
    end = incident.end or axis.end
    start = axis.x(incident.start)
    return (
        f'<rect x="{start:.1f}" y="30" '
        f'width="{max(axis.x(end) - start, 2):.1f}" height="76" '
        f'fill="#cf222e" fill-opacity="0.15"><title>{_e(incident.cause)}: '
        f"{incident.start:%Y-%m-%d %H:%M} → "
        f"{end:%Y-%m-%d %H:%M}</title></rect>"
    )


def _mark_shape(mark: Mark, cx: float) -> str:
    """A mark in its lane: ▼ a rollback or CI failure, ✕ not ready, ● the others."""
    cy, colour = LANE_OF.get(mark.kind, 55), COLOURS.get(mark.kind, "#57606a")
    tip = f"<title>{mark.time:%Y-%m-%d %H:%M} {_e(mark.label)}</title>"
    if mark.kind in ("rollback", "ci_failed"):
        return (
            f'<path d="M{cx - 6:.1f},{cy - 5} L{cx + 6:.1f},{cy - 5} '
            f'L{cx:.1f},{cy + 6} Z" '
            f'fill="{colour}">{tip}</path>'
        )
    if mark.kind == "failed":
        return (
            f'<path d="M{cx - 5:.1f},{cy - 5} L{cx + 5:.1f},{cy + 5} '
            f'M{cx + 5:.1f},{cy - 5} L{cx - 5:.1f},{cy + 5}" '
            f'stroke="{colour}" stroke-width="3">{tip}</path>'
        )
    return f'<circle cx="{cx:.1f}" cy="{cy}" r="5" fill="{colour}">{tip}</circle>'


def _timeline_legend(axis: _TimeAxis) -> str:
    """The axis' first and last times, and what each shape means."""
    return (
        f'<text x="{axis.left}" y="14" font-size="11" fill="#57606a">'
        f"{axis.origin:%Y-%m-%d %H:%M}</text>"
        f'<text x="{axis.width - axis.right}" y="14" font-size="11" '
        f'text-anchor="end" fill="#57606a">{axis.end:%Y-%m-%d %H:%M} UTC</text>'
        '<text x="516" y="14" font-size="11" text-anchor="middle" fill="#57606a">'
        "● deploy  ✕ not ready  ▼ rollback or CI failure  ● down / up</text>"
    )


def _deploy_table(report: EnvReport) -> str:
    if not report.changes:
        return '<p class="muted">No deploys in this window.</p>'
    rows = "".join(
        f"<tr><td>{c.time:%Y-%m-%d %H:%M}</td><td><code>{_e(c.sha[:12])}</code></td>"
        f"<td>{_e(c.actor)}</td><td>{'deployed' if c.ok else 'not ready'}</td>"
        f"<td>{_e(c.failed or '–')}</td><td>{duration(c.lead)}</td>"
        f"<td>{duration(c.restored) if c.failed else '–'}</td></tr>"
        for c in list(reversed(report.changes))[:TABLE_ROWS]
    )
    older = len(report.changes) - TABLE_ROWS
    more = f'<p class="muted">and {older} older (in --json)</p>' if older > 0 else ""
    return (
        "<h3>Deploys, newest first</h3><table><tr><th>time (UTC)</th><th>sha</th>"
        "<th>by</th><th>outcome</th><th>failed change</th><th>lead time</th>"
        f"<th>restored after</th></tr>{rows}</table>{more}"
    )


def write_html(reports: Sequence[EnvReport], path: Path) -> Path:
    """Write the page (parent directories made) and return its absolute path."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(reports), encoding="utf-8")
    return path


def write_report(config_path: Path, path: Path, *, days: int = DAYS) -> Path:
    """The dashboard of every environment of a configuration, written to ``path``.

    What ``nox -s demo`` calls at its end; the same page as ``invoke report --html``.
    """
    from invoke.context import Context

    from cicd.core import config
    from cicd.transport.runner import Runner
    from cicd.host.target import Target

    settings = config.load(config_path)
    reports = [
        gather(Target(Runner(Context()), settings, name), days=days)
        for name in sorted(settings.envs)
    ]
    return write_html(reports, path)
