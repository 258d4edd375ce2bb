#!/usr/bin/env python3
"""Where one more operation's cost goes: the difference between two callgrind runs of the same
workload at n1 and n2 operations, divided by n2 - n1, by function, by source line, or by call edge.

`scripts/instructions` and `scripts/cache-misses` give the totals; this splits them. Run the
`instructions` bench under callgrind twice, e.g. (a build with line tables gives the line view):

    CARGO_TARGET_DIR=target/cgdebug CARGO_PROFILE_BENCH_DEBUG=line-tables-only \\
        cargo bench -p peeper-tests --bench instructions --no-run
    valgrind --tool=callgrind --dump-line=yes --callgrind-out-file=/tmp/cg.200 BIN cycle peeper 200
    valgrind --tool=callgrind --dump-line=yes --callgrind-out-file=/tmp/cg.1200 BIN cycle peeper 1200
    scripts/callgrind-diff.py /tmp/cg.200 /tmp/cg.1200 1000                  # by function, Ir
    scripts/callgrind-diff.py /tmp/cg.200 /tmp/cg.1200 1000 --by line        # by source line
    scripts/callgrind-diff.py /tmp/cg.200 /tmp/cg.1200 1000 --calls malloc   # who calls `malloc`,
                                                                             # how often, how dear
    # with --cache-sim=yes runs: --event DLmr (or DLmw, D1mr, ...)

Costs are self costs (a function's own instructions, not its callees'); call edges are inclusive.
"""

import argparse
import collections
import re


def parse(path):
    """Self costs per (event, file, line, function), and call edges per (caller, callee)."""
    names = {}
    self_cost = collections.Counter()
    calls = collections.Counter()
    call_cost = collections.Counter()
    events = []
    file = inlined = function = callee = None
    line_no = 0
    pending_calls = None

    def name(text):
        # Callgrind compresses names: "(id) name" the first time, "(id)" after.
        match = re.match(r"\((\d+)\)(?:\s+(.*))?", text)
        if not match:
            return text
        if match.group(2):
            names[match.group(1)] = match.group(2)
        return names.get(match.group(1), "?")

    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("fl="):
                file, inlined = name(line[3:]), None
            elif line.startswith(("fi=", "fe=")):
                inlined = name(line[3:])
            elif line.startswith("fn="):
                function, inlined = name(line[3:]), None
            elif line.startswith("cfn="):
                callee = name(line[4:])
            elif line.startswith(("cfl=", "cfi=")):
                name(line[4:])
            elif line.startswith(("cob=", "ob=")):
                continue
            elif line.startswith("calls="):
                pending_calls = int(line[6:].split()[0])
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                fields = line.split()
                position = fields[0]
                if position == "*":
                    pass
                elif position[0] in "+-":
                    line_no += int(position)
                else:
                    line_no = int(position)
                values = [int(value) for value in fields[1:]]
                if pending_calls is not None:
                    # The line after `calls=` is the call's inclusive cost, not a self cost.
                    calls[(function, callee)] += pending_calls
                    call_cost[(function, callee)] += values[0] if values else 0
                    pending_calls = None
                    continue
                for event, value in zip(events, values):
                    self_cost[(event, inlined or file, line_no, function)] += value
    return self_cost, calls, call_cost


def short(path):
    return path.split("/src/")[-1] if "/src/" in path else path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", help="callgrind output at n1 operations")
    parser.add_argument("second", help="callgrind output at n2 operations")
    parser.add_argument("ops", type=int, help="n2 - n1")
    parser.add_argument("--event", default="Ir", help="Ir (default), DLmr, DLmw, D1mr, ...")
    parser.add_argument("--by", choices=["function", "line"], default="function")
    parser.add_argument("--calls", metavar="CALLEE", help="call edges into functions matching this")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()

    first, first_calls, first_call_cost = parse(args.first)
    second, second_calls, second_call_cost = parse(args.second)

    if args.calls:
        rows = []
        for edge in set(first_calls) | set(second_calls):
            if args.calls not in (edge[1] or ""):
                continue
            count = (second_calls[edge] - first_calls[edge]) / args.ops
            cost = (second_call_cost[edge] - first_call_cost[edge]) / args.ops
            if count or cost:
                rows.append((cost, count, edge))
        print(f"calls into `{args.calls}` per operation (inclusive {args.event}):")
        for cost, count, (caller, callee) in sorted(rows, reverse=True)[: args.top]:
            print(f"{cost:9.1f} {count:6.2f} calls  {caller[:110]} -> {callee[:50]}")
        return

    totals = collections.Counter()
    for costs, sign in ((second, 1), (first, -1)):
        for (event, file, line, function), value in costs.items():
            if event != args.event:
                continue
            key = function if args.by == "function" else f"{short(file or '?')}:{line}  {function[:70]}"
            totals[key] += sign * value
    print(f"{args.event} per operation: {sum(totals.values()) / args.ops:.1f}")
    for key, value in totals.most_common(args.top):
        if value / args.ops < 0.05:
            break
        print(f"{value / args.ops:9.2f}  {key[:160]}")


if __name__ == "__main__":
    main()
