"""Engine throughput vs number of agents, from criterion's estimates.

Reads target/criterion/engine_<label>/<function>/new/estimates.json (written
by `BREAKWATER_BENCH_AGENTS=... cargo bench --bench engine`) and writes
benches/throughput_vs_agents.png.

    python3 -m venv /tmp/plotvenv && /tmp/plotvenv/bin/pip install matplotlib
    /tmp/plotvenv/bin/python benches/plot_throughput.py

`PLOT_NOTE=...` adds a line of text (e.g. the machine and its load).
"""

import glob
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(ROOT, "target", "criterion")
OUT = os.path.join(ROOT, "benches", "throughput_vs_agents.png")


def agents(label):
    if label.startswith("10k_agents"):
        return 10_000
    if label.startswith("1M_agents"):
        return 1_000_000
    m = re.match(r"(\d+)_agents", label)
    return int(m.group(1)) if m else None


def main():
    series = {}
    # criterion writes the group `engine/<label>` as the directory `engine_<label>`.
    for path in glob.glob(os.path.join(CRITERION, "engine_*", "*", "new", "estimates.json")):
        parts = path.split(os.sep)
        label, function = parts[-4][len("engine_"):], parts[-3]
        n = agents(label)
        if n is None or "smoke" in label:
            continue
        with open(path) as f:
            est = json.load(f)
        # What criterion prints as `time:`: the slope when it sampled
        # linearly (the engine bench does), else the mean.
        ns = (est.get("slope") or est["mean"])["point_estimate"]
        series.setdefault(function, []).append((n, 1e9 / ns, label))
    if not series:
        sys.exit(f"no estimates under {CRITERION}: run the engine bench first")

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for function, points in sorted(series.items()):
        points.sort()
        xs = [p[0] for p in points]
        ys = [p[1] / 1e6 for p in points]
        ax.plot(xs, ys, marker="o", label=function)
        for x, y in zip(xs, ys if function == "process_batch" else []):
            ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
        print(function, [(p[0], round(p[1])) for p in points])
    ax.axhline(5, color="tab:red", linestyle="--", linewidth=1, label="target 5 M/s at 10k")
    ax.axhline(2, color="tab:orange", linestyle=":", linewidth=1, label="target 2 M/s at 1M")
    ax.set_xscale("log")
    ax.set_xlabel("agents tracked by the engine")
    ax.set_ylabel("events/s per core (millions)")
    ax.set_title("Breakwater engine alone: throughput vs fleet size (1 core)")
    note = os.environ.get("PLOT_NOTE")
    if note:
        ax.text(0.99, 0.6, note, transform=ax.transAxes, ha="right", fontsize=8, color="gray")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
