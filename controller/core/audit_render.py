"""The audit report as Markdown (for a PR or a ticket) and as one self-contained HTML page. Pure.

Place in the flow: after controller/core/audit.py's fold, before the CLI prints. The HTML needs
no network: inline CSS, a timeline per environment, and an inline SVG plot of each gated metric
across versions, with its threshold.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from controller.core.audit_report import AuditReport, ChangeRow, OutcomeRow

PLOT_W, PLOT_H, PAD = 640, 220, 40
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _when(row: ChangeRow | OutcomeRow) -> str:
    return row.at.strftime("%Y-%m-%d %H:%M")


def _gates(outcome: OutcomeRow | None) -> str:
    if outcome is None or not outcome.gates:
        return "-"
    parts = []
    for g in outcome.gates:
        value = "n/a" if g.value is None else f"{g.value:.4g}"
        where = f" [{g.slice}]" if g.slice else ""
        parts.append(f"{g.metric}{where} {value} {g.op} {g.threshold:g} {'ok' if g.passed else 'FAILED'}")
    return "; ".join(parts)


def _last(change: ChangeRow) -> OutcomeRow | None:
    return change.outcomes[-1] if change.outcomes else None


def _outcome_text(change: ChangeRow) -> str:
    last = _last(change)
    if last is None:
        return "no outcome yet"
    text = last.phase + (" (rollback)" if last.action == "rollback" else "") + (" (adopted)" if last.adopted else "")
    if last.phase != "Deployed" and last.reason:
        text += f": {last.reason}"
    return text


def _approvals(change: ChangeRow) -> str:
    found = {a.identity for o in change.outcomes for a in o.approvals}
    return ", ".join(sorted(found)) or "-"


def _md_cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown(report: AuditReport) -> str:
    s = report.summary
    out = [f"# Release audit at `{report.head[:12]}`", ""]
    if report.since or report.until:
        span = f"{report.since:%Y-%m-%d}" if report.since else "the beginning"
        end = f"{report.until:%Y-%m-%d}" if report.until else "now"
        out += [f"Changes from {span} to {end}.", ""]
    rate = "-" if s.change_failure_rate is None else f"{s.change_failure_rate:.0%}"
    out += [
        "| changes | deploys | rollbacks | failed | change failure rate | median lead time (merge → deploy) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {s.changes} | {s.deploys} | {s.rollbacks} | {s.failed} | {rate} | {duration(s.median_lead_time_s)} |",
        "",
    ]
    if report.breaks is not None:
        out.append("## Verification")
        out.append("")
        if not report.breaks:
            out.append("The chain verifies: no breaks.")
        for b in report.breaks:
            out.append(f"- `{b.commit[:12]}` {_md_cell(b.message, 400)} (`{b.rule}`)")
        out.append("")
    for env in report.environments:
        out += [f"## {env.environment}", ""]
        for m in env.models:
            out += [
                f"### {m.model}",
                "",
                "| when | change | version | authors | merged by | approvals | outcome | gates | workflow | artifact "
                "| upstream | to deploy |",
                "|---|---|---|---|---|---|---|---|---|---|---|---:|",
            ]
            for c in m.changes:
                last = _last(c)
                upstream = (
                    f"{last.upstream_environment} `{(last.upstream_commit or '')[:12]}`"
                    if last and (last.upstream_environment)
                    else "-"
                )
                ttd = duration(c.time_to_restore_s if c.rollback else c.time_to_deploy_s)
                out.append(
                    "| "
                    + " | ".join(
                        [
                            _when(c),
                            f"`{c.commit[:12]}` {c.kind}",
                            c.version,
                            _md_cell(", ".join(c.authors) or "-"),
                            _md_cell(c.merger or "-"),
                            _md_cell(_approvals(c)),
                            _md_cell(_outcome_text(c)),
                            _md_cell(_gates(last)),
                            _md_cell(last.workflow or "-") if last else "-",
                            f"`{last.artifact[:19]}…`" if last and last.artifact else "-",
                            upstream,
                            ttd + (" (restore)" if c.rollback else ""),
                        ]
                    )
                    + " |"
                )
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# -- html -----------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
.timeline{list-style:none;border-left:3px solid #888;padding-left:1em}
.timeline li{margin:.4em 0}.Deployed{color:#176f2c}.Failed,.Errored{color:#b00020}.Blocked,.Rejected{color:#a15c00}
.break{color:#b00020}code{font-size:90%}svg{background:#fafafa;border:1px solid #ddd;margin:.5em 0}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _timeline(changes: Iterable[tuple[str, ChangeRow]]) -> str:
    items = []
    for model, c in sorted(changes, key=lambda mc: mc[1].at):
        outcomes = "".join(
            f'<li class="outcome {_e(o.phase)}"><time datetime="{o.at.isoformat()}">{_e(_when(o))}</time> '
            f"{_e(o.phase)} <code>{_e(o.commit[:12])}</code> {_e(o.reason[:200])}"
            f"{(' — approvals: ' + _e(', '.join(a.identity for a in o.approvals))) if o.approvals else ''}</li>"
            for o in c.outcomes
        )
        items.append(
            f'<li class="change"><time datetime="{c.at.isoformat()}">{_e(_when(c))}</time> <b>{_e(model)}</b> '
            f"{_e(c.version)} <code>{_e(c.commit[:12])}</code> by {_e(', '.join(c.authors) or '?')}"
            f"{' (rollback)' if c.rollback else ''}<ul>{outcomes}</ul></li>"
        )
    return '<ol class="timeline">' + "\n".join(items) + "</ol>"


def _series(report: AuditReport, metric: str) -> dict[str, list[tuple[str, float, float | None, str]]]:
    """(environment/model) -> [(version, value, threshold, op)] of every evaluated outcome, in order."""
    series: dict[str, list[tuple[str, float, float | None, str]]] = {}
    for env in report.environments:
        for m in env.models:
            for c in m.changes:
                for o in c.outcomes:
                    for g in o.gates:
                        if g.metric == metric and g.kind == "gate" and g.value is not None:
                            series.setdefault(f"{env.environment}/{m.model}", []).append(
                                (c.version, g.value, g.threshold, g.op)
                            )
    return series


def plot(report: AuditReport, metric: str) -> str:
    """An inline SVG of one gated metric across versions: one line per environment and model."""
    series = _series(report, metric)
    values = [v for points in series.values() for _, v, _, _ in points]
    values += [t for points in series.values() for _, _, t, _ in points if t is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    width = max((len(p) for p in series.values()), default=1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = PAD + (PLOT_W - 2 * PAD) * (i / max(width - 1, 1))
        y = PLOT_H - PAD - (PLOT_H - 2 * PAD) * ((v - lo) / (hi - lo))
        return round(x, 1), round(y, 1)

    parts = [
        f'<svg class="metric-plot" data-metric="{_e(metric)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{PLOT_W}" height="{PLOT_H}" viewBox="0 0 {PLOT_W} {PLOT_H}" role="img">',
        f"<title>{_e(metric)} across versions</title>",
        f'<text x="{PAD}" y="20" font-size="13">{_e(metric)}</text>',
        f'<text x="4" y="{PAD}" font-size="10">{hi:.4g}</text>',
        f'<text x="4" y="{PLOT_H - PAD}" font-size="10">{lo:.4g}</text>',
    ]
    for n, (name, points) in enumerate(sorted(series.items())):
        colour = COLOURS[n % len(COLOURS)]
        coords = [xy(i, v) for i, (_, v, _, _) in enumerate(points)]
        parts.append(
            f'<polyline class="series" data-series="{_e(name)}" fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{" ".join(f"{x},{y}" for x, y in coords)}"/>'
        )
        for (x, y), (version, v, _, _) in zip(coords, points, strict=True):
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"><title>{_e(name)} {_e(version)}: {v:.4g}</title>'
                "</circle>"
            )
        threshold = next((t for _, _, t, _ in reversed(points) if t is not None), None)
        if threshold is not None:
            _, ty = xy(0, threshold)
            parts.append(
                f'<line class="threshold" x1="{PAD}" x2="{PLOT_W - PAD}" y1="{ty}" y2="{ty}" stroke="{colour}" '
                f'stroke-dasharray="4 3"><title>{_e(name)} gate {points[-1][3]} {threshold:g}</title></line>'
            )
        parts.append(
            f'<text x="{PLOT_W - PAD - 150}" y="{20 + 12 * n}" font-size="10" fill="{colour}">{_e(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def gated_metrics(report: AuditReport) -> list[str]:
    return sorted(
        {
            g.metric
            for env in report.environments
            for m in env.models
            for c in m.changes
            for o in c.outcomes
            for g in o.gates
            if g.kind == "gate"
        }
    )


def html_page(report: AuditReport) -> str:
    s = report.summary
    rate = "-" if s.change_failure_rate is None else f"{s.change_failure_rate:.0%}"
    body = [
        f"<h1>Release audit at <code>{_e(report.head[:12])}</code></h1>",
        "<table><tr><th>changes</th><th>deploys</th><th>rollbacks</th><th>failed</th>"
        "<th>change failure rate</th><th>median lead time</th></tr>"
        f"<tr><td>{s.changes}</td><td>{s.deploys}</td><td>{s.rollbacks}</td><td>{s.failed}</td><td>{rate}</td>"
        f"<td>{_e(duration(s.median_lead_time_s))}</td></tr></table>",
    ]
    if report.breaks is not None:
        body.append("<h2>Verification</h2>")
        body.append(
            "<p>The chain verifies: no breaks.</p>"
            if not report.breaks
            else "<ul>"
            + "".join(
                f'<li class="break"><code>{_e(b.commit[:12])}</code> {_e(b.message)} ({_e(b.rule)})</li>'
                for b in report.breaks
            )
            + "</ul>"
        )
    for env in report.environments:
        body.append(f'<section class="environment" data-environment="{_e(env.environment)}">')
        body.append(f"<h2>{_e(env.environment)}</h2>")
        body.append(_timeline((m.model, c) for m in env.models for c in m.changes))
        body.append("</section>")
    body.append("<h2>Gated metrics across versions</h2>")
    body += [plot(report, metric) for metric in gated_metrics(report)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Release audit {_e(report.head[:12])}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
