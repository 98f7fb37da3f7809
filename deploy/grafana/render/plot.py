"""Draws deploy/grafana/breakwater.json from a live Prometheus: every panel
at its grid position, under its row, with its title, unit and legend, each
target's PromQL sent to /api/v1/query_range. Nothing is drawn that
Prometheus did not answer; a panel whose queries return no series says so.

    python plot.py --prometheus http://127.0.0.1:9090 --start T0 --end T1 \\
        --agent support-agent-0 --out deploy/grafana/dashboard.png

render.sh runs it after a chaos run (it needs matplotlib: requirements.txt).
"""

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

import dashboard  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# Grafana's dark theme, so the picture reads like the dashboard it stands for.
BG, PANEL, GRID, TEXT, DIM = "#111217", "#181b1f", "#2c3235", "#ccccdc", "#8e8e9e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2",
           "#b877d9", "#705da0", "#37872d", "#fade2a", "#c4162a", "#1f60c4"]
INCH_PER_ROW_UNIT = 0.21  # a Grafana grid unit is 30 px tall, a column 1/24 of the width
WIDTH_IN = 18


def query_range(base, expr, start, end, step):
    """One query_range call; returns [(labels, [(t, value)])]. A Prometheus
    error is fatal: the picture must not quietly miss a panel."""
    qs = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{qs}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    out = []
    for s in body["data"]["result"]:
        pts = [(float(t), float(v)) for t, v in s["values"]]
        out.append((s["metric"], pts))
    return out


def fmt(unit, v):
    """Tick and value labels in the panel's Grafana unit."""
    if v is None or math.isnan(v):
        return "–"
    if unit == "percentunit":
        return f"{v * 100:.0f}%" if abs(v) >= 0.1 or v == 0 else f"{v * 100:.1f}%"
    if unit == "s":
        if v == 0:
            return "0"
        return f"{v * 1000:.3g} ms" if abs(v) < 1 else f"{v:.3g} s"
    suffix = " ops/s" if unit == "ops" else ""
    for div, sym in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{sym}{suffix}"
    return f"{v:.3g}{suffix}"


def series_of(panel, base, start, end, step):
    """Every series of the panel's targets with its legend, in query order."""
    out = []
    for t in panel.targets:
        for labels, pts in query_range(base, t.expr, start, end, step):
            out.append((dashboard.legend(t.legend, labels, t.expr), pts))
    return out


def style(ax):
    ax.set_facecolor(PANEL)
    for s in ax.spines.values():
        s.set_color(GRID)
    ax.tick_params(colors=DIM, labelsize=7, length=2)


def utc(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc)


def with_gaps(pts, step):
    """A NaN wherever a series skips a step, so the line breaks there as in
    Grafana instead of bridging the time the series did not exist (topk's
    members change, an agent's series expires)."""
    out = []
    for i, (t, v) in enumerate(pts):
        if i and t - pts[i - 1][0] > 1.5 * step:
            out.append((pts[i - 1][0] + step, math.nan))
        out.append((t, v))
    return out


def seconds(step):
    """Prometheus' duration syntax for the step: 2s, 1m, 500ms, or seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", step)
    if not m:
        raise ValueError(f"step {step!r}: expected e.g. 2s, 1m")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


def legend_columns(series):
    return 1 if len(series) <= 8 else 2


def draw_timeseries(ax, panel, series, start, end, step):
    style(ax)
    ax.grid(True, color=GRID, linewidth=0.5)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(panel.unit, v)))
    # Whole minutes, as Grafana labels a range of a few minutes.
    minutes = max(1, round((end - start) / 60 / 6))
    ax.xaxis.set_major_locator(mdates.MinuteLocator(interval=minutes, tz=dt.timezone.utc))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=dt.timezone.utc))
    ax.set_xlim(utc(start), utc(end))
    values = []
    for i, (name, pts) in enumerate(series):
        pts = with_gaps(pts, step)
        ys = [v for _, v in pts]
        values += [v for v in ys if not math.isnan(v)]
        ax.plot([utc(t) for t, _ in pts], ys, color=PALETTE[i % len(PALETTE)], linewidth=1.2, label=name)
    if values and min(values) >= 0:
        # Counts, rates and ratios start at zero, so a flat line reads as a level.
        ax.set_ylim(bottom=0, top=max(max(values) * 1.1, 1e-9) if max(values) > 0 else 1)
    if series:
        # Grafana lists the legend under the panel; beside it fits here.
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6 if len(series) <= 8 else 5.5,
                  frameon=False, labelcolor=TEXT, ncol=legend_columns(series), handlelength=1.2,
                  columnspacing=0.8)
    else:
        ax.text(0.5, 0.5, "No data", color=DIM, ha="center", va="center", transform=ax.transAxes)


def draw_stat(ax, panel, series, start, end, step):
    """Grafana's stat: the last value, large, over a faint sparkline."""
    style(ax)
    ax.set_xticks([])
    ax.set_yticks([])
    last = None
    if series and series[0][1]:
        pts = series[0][1]
        last = pts[-1][1]
        ax.fill_between([t for t, _ in pts], [v for _, v in pts], color=PALETTE[0], alpha=0.18, linewidth=0)
        ax.set_xlim(start, end)
        ax.set_ylim(bottom=min(0, min(v for _, v in pts)))
    ax.text(0.5, 0.45, fmt(panel.unit, last) if series else "No data", color=PALETTE[0] if series else DIM,
            fontsize=22, fontweight="bold", ha="center", va="center", transform=ax.transAxes)


def render(panels, base, start, end, step, out, subtitle):
    rows = max(p.y + p.h for p in panels)
    height = rows * INCH_PER_ROW_UNIT + 0.9
    fig = plt.figure(figsize=(WIDTH_IN, height), facecolor=BG)
    fig.text(0.01, 1 - 0.25 / height, "Breakwater", color=TEXT, fontsize=14, fontweight="bold", va="top")
    fig.text(0.01, 1 - 0.55 / height, subtitle, color=DIM, fontsize=8, va="top")
    top = 0.9  # inches above grid row 0: the title

    def box(x, y, w, h, pad_top, pad_right):
        # Figure coordinates of a grid cell, less room for title and legend.
        left = x / 24 + 0.035
        bottom = 1 - (top + (y + h) * INCH_PER_ROW_UNIT) / height + 0.25 / height
        return [left, bottom, w / 24 - 0.035 - pad_right,
                h * INCH_PER_ROW_UNIT / height - pad_top / height - 0.25 / height]

    seen_rows = set()
    for p in panels:
        if p.row not in seen_rows:
            seen_rows.add(p.row)
            fig.text(0.01, 1 - (top + (p.y - 0.6) * INCH_PER_ROW_UNIT) / height, p.row,
                     color=TEXT, fontsize=11, fontweight="bold", va="center")
        series = series_of(p, base, start, end, step)
        legend_room = 0 if p.kind == "stat" else 0.105 * legend_columns(series)
        ax = fig.add_axes(box(p.x, p.y, p.w, p.h, 0.28, legend_room))
        (draw_stat if p.kind == "stat" else draw_timeseries)(ax, p, series, start, end, seconds(step))
        ax.set_title(p.title, color=TEXT, fontsize=9, loc="left", pad=4)
    fig.savefig(out, dpi=72, facecolor=BG)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--start", type=float, required=True, help="epoch seconds")
    ap.add_argument("--end", type=float, required=True, help="epoch seconds")
    ap.add_argument("--step", default="5s")
    ap.add_argument("--agent", required=True, help="the drill-down's $agent (a regex, as in Grafana)")
    ap.add_argument("--dashboard", default=os.path.join(HERE, "..", "breakwater.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "dashboard.png"))
    ap.add_argument("--note", default="", help="appended to the subtitle")
    a = ap.parse_args()
    panels = dashboard.load(a.dashboard, {"agent": a.agent, "datasource": "prometheus"})
    t0 = dt.datetime.fromtimestamp(a.start, dt.timezone.utc)
    subtitle = (f"{t0:%Y-%m-%d %H:%M} – {dt.datetime.fromtimestamp(a.end, dt.timezone.utc):%H:%M} UTC, "
                f"every panel of deploy/grafana/breakwater.json queried from Prometheus (step {a.step}), "
                f"agent = {a.agent}" + (f"; {a.note}" if a.note else ""))
    render(panels, a.prometheus.rstrip("/"), a.start, a.end, a.step, a.out, subtitle)
    print(f"wrote {a.out} ({os.path.getsize(a.out) // 1024} KiB, {len(panels)} panels)", file=sys.stderr)


if __name__ == "__main__":
    main()
