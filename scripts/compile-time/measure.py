#!/usr/bin/env python3
"""Times the rebuild of the crates generate.py wrote, alternating between them.

For each variant: its dependencies are built once (untimed), then each round touches its
src/main.rs and times `cargo build --offline` of that crate alone (wall clock around the cargo
process, CARGO_INCREMENTAL=0, dev profile). A round builds every variant once, in an order
rotated by one each round (A B C, B C A, C A B, ...), so load from other processes falls on all
of them alike; `/proc/loadavg` is printed before each round. A build that recompiled anything
besides the crate itself, or waited for a cargo lock, is thrown away and done again.

Usage: measure.py --out DIR --variants NAME,... [--rounds N] [--passes]
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time

ENV = dict(os.environ, CARGO_INCREMENTAL="0", CARGO_TERM_COLOR="never")
for var in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER",
            "CARGO_PROFILE_DEV_OPT_LEVEL", "RUSTC_BOOTSTRAP"):
    ENV.pop(var, None)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cargo_build(entry, offline=True, verbose=False):
    cmd = ["cargo", "build", "--manifest-path", os.path.join(entry["dir"], "Cargo.toml")]
    if offline:
        cmd.append("--offline")
    if verbose:
        cmd.append("-v")
    env = dict(ENV, CARGO_TARGET_DIR=entry["target_dir"])
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        sys.exit(f"cargo build of {entry['name']} failed")
    return elapsed, result.stderr


def touch(entry):
    os.utime(os.path.join(entry["dir"], "src", "main.rs"), None)


def clean(entry, stderr):
    """Whether the build compiled the crate and nothing else, without waiting for a lock."""
    compiled = re.findall(r"^\s*Compiling (\S+) ", stderr, re.M)
    return compiled == [entry["package"]] and "Blocking" not in stderr


def timed_build(entry, tries=3):
    for _ in range(tries):
        touch(entry)
        elapsed, stderr = cargo_build(entry)
        if clean(entry, stderr):
            return elapsed
        compiled = re.findall(r"^\s*Compiling (\S+) ", stderr, re.M)
        print(f"    ({entry['name']}: discarded {elapsed:.2f} s, compiled {compiled}"
              f"{', waited for a lock' if 'Blocking' in stderr else ''}; again)", flush=True)
    sys.exit(f"{entry['name']}: no clean build in {tries} tries")


def warm_up(entries):
    for entry in entries:
        start = time.perf_counter()
        cargo_build(entry, offline=False)  # dependencies, and the lock file on a first run
        touch(entry)
        cargo_build(entry)  # once more, untimed: caches warm
        print(f"  ready: {entry['name']} ({time.perf_counter() - start:.1f} s)", flush=True)


def rustc_command(entry, out_dir, drop=("--error-format", "--json")):
    """The rustc command cargo runs for the crate (from `cargo build -v` after a touch), with
    its output sent to `out_dir` so that the timed target dir is untouched."""
    touch(entry)
    _, stderr = cargo_build(entry, verbose=True)
    match = re.search(r"^\s*Running `(\S*rustc --crate-name " + entry["package"] + r" .*)`$", stderr, re.M)
    if not match:
        return None
    os.makedirs(out_dir, exist_ok=True)
    args = shlex.split(match.group(1))
    args[args.index("--out-dir") + 1] = out_dir
    return [arg for arg in args if not arg.startswith(drop)]


def passes(entry, out):
    """One extra, untimed compile of the crate with `-Z time-passes -Z print-mono-items=yes`
    (RUSTC_BOOTSTRAP=1, the rustc command cargo ran, written to a scratch dir so the timed
    target dir is untouched): where rustc spends the time, and how many functions it codegens."""
    out_dir = os.path.join(os.path.abspath(out), "passes", entry["name"])
    args = rustc_command(entry, out_dir)
    if args is None:
        return None
    args += ["-Z", "time-passes", "-Z", "print-mono-items=yes"]
    env = dict(ENV, RUSTC_BOOTSTRAP="1")
    result = subprocess.run(args, cwd=entry["dir"], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-3000:])
        return None
    found = {}
    for line in result.stderr.splitlines():
        m = re.match(r"time:\s+([\d.]+);.*\s(\S+)$", line)
        if m:
            found[m.group(2)] = float(m.group(1))
    items = [line for line in result.stdout.splitlines() if line.startswith("MONO_ITEM")]
    with open(os.path.join(out_dir, "mono-items.txt"), "w") as f:
        f.write("\n".join(sorted(items)) + "\n")
    found["mono items"] = len(items)
    # Functions instantiated for the state type or the types generated from it.
    found["for Bank"] = sum(bool(re.search(r"\bBank", line.split(" @@ ")[0])) for line in items)
    return found


PASSES = [
    ("macro_expand_crate", "expand"),
    ("type_check_crate", "typeck"),
    ("MIR_borrow_checking", "borrowck"),
    ("monomorphization_collector_graph_walk", "mono collect"),
    ("codegen_to_LLVM_IR", "to LLVM IR"),
    ("LLVM_passes", "LLVM"),
    ("link", "link"),
    ("total", "rustc total"),
    ("mono items", "fns codegened"),
    ("for Bank", "of them for Bank"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--title", default="Rebuild of the user crate")
    parser.add_argument("--reference", default="ractor", help="the variant ratios are taken to")
    parser.add_argument("--passes", action="store_true", help="add a -Z time-passes table")
    parser.add_argument("--save", default="results", help="DIR/SAVE.json gets the raw times")
    args = parser.parse_args()

    with open(os.path.join(args.out, "manifest.json")) as f:
        manifest = {entry["name"]: entry for entry in json.load(f)}
    entries = [manifest[name] for name in args.variants.split(",")]

    print(f"## {args.title}\n", flush=True)
    print("Warming up (dependencies built once, untimed):", flush=True)
    warm_up(entries)

    times = {entry["name"]: [] for entry in entries}
    loads = []
    started = time.perf_counter()
    for round_ in range(args.rounds):
        order = entries[round_ % len(entries):] + entries[: round_ % len(entries)]
        load = loadavg()
        loads.append(load)
        parts = []
        for entry in order:
            elapsed = timed_build(entry)
            times[entry["name"]].append(elapsed)
            parts.append(f"{entry['name']} {elapsed:.2f}")
        print(f"  round {round_ + 1}/{args.rounds}  loadavg {load}  |  " + "  ".join(parts), flush=True)
    print(f"  ({time.perf_counter() - started:.0f} s of rounds; loadavg after: {loadavg()})\n", flush=True)

    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = medians.get(args.reference)
    print(f"| variant | what | median (s) | min-max (s) | vs {args.reference} |")
    print("|---|---|---:|---:|---:|")
    for entry in entries:
        values = times[entry["name"]]
        ratio = f"{medians[entry['name']] / reference:.2f}" if reference else "-"
        print(f"| `{entry['name']}` | {entry['description']} | {medians[entry['name']]:.2f} | "
              f"{min(values):.2f}-{max(values):.2f} | {ratio} |")
    print(f"\n{args.rounds} rounds; loadavg (1, 5, 15 min) before each: " + "; ".join(loads) + "\n")

    if args.passes:
        print("`-Z time-passes` (s) and `-Z print-mono-items` of one extra compile each, after the "
              "rounds (one sample: indicative; \"LLVM\" runs on other threads alongside \"to LLVM IR\"):\n")
        rows = {entry["name"]: passes(entry, args.out) for entry in entries}
        print("| variant | " + " | ".join(label for _, label in PASSES) + " |")
        print("|---|" + "---:|" * len(PASSES))
        for name, found in rows.items():
            if found is None:
                print(f"| `{name}` | (no rustc command found) |")
                continue
            cells = [
                "-" if key not in found else str(found[key]) if isinstance(found[key], int) else f"{found[key]:.2f}"
                for key, _ in PASSES
            ]
            print(f"| `{name}` | " + " | ".join(cells) + " |")
        print()

    with open(os.path.join(args.out, f"{args.save}.json"), "w") as f:
        json.dump({"times": times, "loads": loads}, f, indent=2)


if __name__ == "__main__":
    main()
