"""The panels of deploy/grafana/breakwater.json as plain data: title, kind,
grid position, row, and each target's PromQL with the dashboard's variables
filled in. plot.py draws from this, so the picture follows the JSON rather
than a second copy of its queries. Standard library only, so the unit tests
(test_dashboard.py) run without the plotting venv.
"""

import json
import re
from dataclasses import dataclass, field

# Grafana's built-in interval variables, should a panel start using them.
# Prometheus needs a range of at least a few scrapes; callers pass the one
# that suits their scrape interval.
BUILTIN_INTERVALS = ("$__rate_interval", "$__interval", "$__range")

_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass
class Target:
    expr: str
    legend: str


@dataclass
class Panel:
    id: int
    title: str
    kind: str  # "stat" or "timeseries"
    x: int
    y: int
    w: int
    h: int
    row: str
    unit: str  # Grafana's unit id: short, ops, percentunit, s, ...
    targets: list = field(default_factory=list)


def substitute(expr, variables, interval):
    """Fills `$name`, `${name}` and `${name:format}` from `variables`, and
    Grafana's interval variables with `interval`. An unknown variable is an
    error: a query sent with a literal `$x` would fail or, worse, match
    nothing and draw an empty panel that looks like a quiet system."""
    for name in BUILTIN_INTERVALS:
        expr = expr.replace(name, interval)

    def fill(m):
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise KeyError(f"dashboard variable ${name} has no value (in {expr!r})")
        return variables[name]

    return _VAR.sub(fill, expr)


def legend(fmt, labels, expr):
    """Grafana's legendFormat: `{{label}}` from the series' labels (empty
    when the series lacks it); without a format, the series' labels or,
    for a label-less series, the query itself, as Grafana shows them."""
    if fmt:
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if shown:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"
    return expr


def panels(dashboard, variables, interval="1m"):
    """The drawable panels in reading order (top to bottom, left to right),
    each with the title of the row above it. Collapsed rows keep their
    panels inside the row object; those are taken too."""
    flat = []
    for p in dashboard.get("panels", []):
        flat.append(p)
        flat.extend(p.get("panels", []) if p.get("type") == "row" else [])
    flat.sort(key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    out, row = [], ""
    for p in flat:
        if p.get("type") == "row":
            row = substitute(p.get("title", ""), variables, interval)
            continue
        if p.get("type") not in ("stat", "timeseries"):
            raise ValueError(f"panel {p.get('id')} {p.get('title')!r}: type {p.get('type')!r} is not drawn")
        g = p["gridPos"]
        targets = [
            Target(substitute(t["expr"], variables, interval), t.get("legendFormat", ""))
            for t in p.get("targets", [])
            if not t.get("hide")
        ]
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        out.append(Panel(p["id"], p["title"], p["type"], g["x"], g["y"], g["w"], g["h"], row, unit, targets))
    return out


def load(path, variables, interval="1m"):
    with open(path, encoding="utf-8") as f:
        return panels(json.load(f), variables, interval)
