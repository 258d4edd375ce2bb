#!/usr/bin/env python3
"""Draws the keep strategies' cost against the state's size: `book/src/keep-strategies.svg`, and
the table between the `keep-table` markers of `book/src/choosing-a-strategy.md`.

The numbers come from the interleaved benchmark `tests/benches/keep_strategies.rs`:

    cargo bench -p peeper-tests --bench keep_strategies     # writes target/keep-strategies.csv
    python3 scripts/keep-chart.py                           # draws from it

The CSV is copied to `book/src/keep-strategies.csv`, so that the chart can be drawn again (after
a change of this script) without running the benchmark: without `target/keep-strategies.csv`,
the script draws from that copy. No dependency beyond Python's standard library.
"""

import csv
import datetime
import math
import os
import platform
import re
import shutil
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MEASURED = os.path.join(ROOT, "target", "keep-strategies.csv")
KEPT = os.path.join(ROOT, "book", "src", "keep-strategies.csv")
SVG = os.path.join(ROOT, "book", "src", "keep-strategies.svg")
CHAPTER = os.path.join(ROOT, "book", "src", "choosing-a-strategy.md")

COLORS = {
    "Snapshot": "#d62728",
    "Projection": "#1f77b4",
    "InPlace": "#2ca02c",
    "&self (no copy)": "#7f7f7f",
}

WIDTH, HEIGHT = 720, 430
LEFT, RIGHT, TOP, BOTTOM = 80, 190, 40, 60


def size_text(size):
    if size >= 1 << 20:
        return f"{size >> 20} MiB"
    if size >= 1 << 10:
        return f"{size >> 10} KiB"
    return f"{size} B"


def time_text(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.3g} µs"
    return f"{ns:.3g} ns"


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def read(path):
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        row["size_bytes"] = int(row["size_bytes"])
        for key in ("median_ns", "p10_ns", "p90_ns"):
            row[key] = float(row[key])
    return rows


def draw(rows):
    sizes = sorted({row["size_bytes"] for row in rows})
    low = min(row["p10_ns"] for row in rows)
    high = max(row["p90_ns"] for row in rows)
    y_min = 10 ** math.floor(math.log10(low))
    y_max = 10 ** math.ceil(math.log10(high))
    x_min, x_max = math.log2(sizes[0]), math.log2(sizes[-1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(size):
        return LEFT + (math.log2(size) - x_min) / (x_max - x_min) * plot_w

    def y(ns):
        return TOP + (math.log10(y_max) - math.log10(ns)) / (math.log10(y_max) - math.log10(y_min)) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
        "<title>Time per call against the state's size, by keep strategy</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">Time per call against the '
        "state's size (log-log; median, bars from p10 to p90)</text>",
    ]
    decade = y_min
    while decade <= y_max:
        yy = y(decade)
        out.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{LEFT + plot_w}" y2="{yy:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 8}" y="{yy + 4:.1f}" text-anchor="end">{escape(time_text(decade))}</text>')
        decade *= 10
    for size in sizes:
        xx = x(size)
        out.append(f'<line x1="{xx:.1f}" y1="{TOP}" x2="{xx:.1f}" y2="{TOP + plot_h}" stroke="#eee"/>')
        out.append(f'<text x="{xx:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{size_text(size)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 18}" text-anchor="middle">size of the state</text>')
    out.append(f'<text transform="translate(18 {TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">time per call</text>')

    strategies = [s for s in COLORS if any(row["strategy"] == s for row in rows)]
    for index, strategy in enumerate(strategies):
        color = COLORS[strategy]
        points = sorted((row for row in rows if row["strategy"] == strategy), key=lambda r: r["size_bytes"])
        path = " ".join(f'{x(p["size_bytes"]):.1f},{y(p["median_ns"]):.1f}' for p in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for p in points:
            xx = x(p["size_bytes"])
            out.append(f'<line x1="{xx:.1f}" y1="{y(p["p10_ns"]):.1f}" x2="{xx:.1f}" y2="{y(p["p90_ns"]):.1f}" stroke="{color}"/>')
            out.append(f'<circle cx="{xx:.1f}" cy="{y(p["median_ns"]):.1f}" r="3" fill="{color}"/>')
        ly = TOP + 20 + index * 22
        lx = LEFT + plot_w + 16
        out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 22}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{lx + 28}" y="{ly}">{escape(strategy)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def table(rows, source):
    sizes = sorted({row["size_bytes"] for row in rows})
    strategies = [s for s in COLORS if any(row["strategy"] == s for row in rows)]
    by = {(row["size_bytes"], row["strategy"]): row for row in rows}
    rounds = rows[0].get("rounds", "?")
    lines = [
        "",
        f"Measured on {source}. Median time per call over {rounds} interleaved rounds; in "
        "parentheses, the 10th to 90th percentile.",
        "",
        "| state | " + " | ".join(strategies) + " |",
        "|---|" + "---|" * len(strategies),
    ]
    for size in sizes:
        cells = []
        for strategy in strategies:
            row = by.get((size, strategy))
            cells.append("" if row is None else
                         f'{time_text(row["median_ns"])} ({time_text(row["p10_ns"])} to {time_text(row["p90_ns"])})')
        lines.append(f"| {size_text(size)} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            found = re.search(r"^model name\s*:\s*(.+)$", file.read(), flags=re.M)
            if found:
                model = found.group(1).strip()
    except OSError:
        pass
    return f"{datetime.date.today().isoformat()}, {model}, {os.cpu_count()} CPUs"


def main():
    if os.path.isfile(MEASURED):
        shutil.copyfile(MEASURED, KEPT)
        source = machine()
    elif os.path.isfile(KEPT):
        source = None
    else:
        print("keep-chart: no numbers: run `cargo bench -p peeper-tests --bench keep_strategies` first",
              file=sys.stderr)
        return 1
    rows = read(KEPT)
    with open(SVG, "w", encoding="utf-8") as file:
        file.write(draw(rows))
    with open(CHAPTER, encoding="utf-8") as file:
        chapter = file.read()
    begin, end = "<!-- keep-table:begin -->", "<!-- keep-table:end -->"
    if begin not in chapter or end not in chapter:
        print(f"keep-chart: no {begin} ... {end} in {CHAPTER}", file=sys.stderr)
        return 1
    head, rest = chapter.split(begin, 1)
    old, tail = rest.split(end, 1)
    if source is None:
        # Drawn again from the kept copy: the table's numbers and their date stay.
        source_match = re.search(r"Measured on (.+?)\. Median", old)
        source = source_match.group(1) if source_match else "an earlier run"
    with open(CHAPTER, "w", encoding="utf-8") as file:
        file.write(head + begin + "\n" + table(rows, source) + "\n" + end + tail)
    print(f"keep-chart: wrote {os.path.relpath(SVG, ROOT)} and the table of {os.path.relpath(CHAPTER, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
