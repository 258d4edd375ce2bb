#!/usr/bin/env python3
"""What the user crate's codegen is spent on: `cargo llvm-lines` for the generated crates.

Compiles a variant's crate once more with `--emit=llvm-ir` (the rustc command cargo runs, output
in a scratch dir), counts the LLVM IR lines of each function, and sums them per generic function
(symbols demangled with c++filt, hash and generic arguments dropped), and per origin. LLVM IR
lines track codegen time, which is most of a debug rebuild here (see the `-Z time-passes` table).

Usage: llvm_lines.py --out DIR --variants NAME,... [--top N] [--detail NAME,...]
"""

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402


def functions(ll_path):
    """(mangled name, IR lines) of each function defined in the .ll file."""
    out = []
    name, lines = None, 0
    with open(ll_path) as f:
        for line in f:
            if name is None:
                m = re.match(r"define .*?@(\"[^\"]+\"|[\w.$]+)\(", line)
                if m:
                    name, lines = m.group(1).strip('"'), 1
            else:
                lines += 1
                if line.startswith("}"):
                    out.append((name, lines))
                    name = None
    return out


def demangle(names):
    result = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    demangled = result.stdout.splitlines() if result.returncode == 0 else names
    return [re.sub(r"::h[0-9a-f]{16}$", "", d) for d in demangled]


def origin(name):
    """The crate a function comes from: `peeper`, `tokio`, `std` (core/alloc/std), or the user
    crate (`generated`, which holds what the macro emits, and the user's own methods)."""
    # For `<T as Trait>::method`, the impl's type tells where the code was written, except for
    # drop glue (`core::ptr::drop_in_place<T>`), which is filed under `drop glue`.
    if name.startswith("core::ptr::drop_in_place"):
        return "drop glue"
    m = re.match(r"<([^ >]+)", name)
    head = m.group(1) if m else name
    head = head.lstrip("&*").replace("mut ", "").replace("dyn ", "")
    crate = re.split(r"::|<|\[|\(", head)[0]
    if crate in ("core", "alloc", "std", "const", "fn", "usize", "u8", "str") or re.fullmatch(r"[A-Z]", crate):
        # `<T as alloc::...>` and friends: blanket impls of the standard library.
        return "std"
    if crate.startswith("ct_") or crate in ("Bank", "main") or crate.startswith("Bank") or crate.startswith("Tick"):
        return "generated/user"
    return crate or "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", required=True)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--detail", help="the variants that get a top-N table (default: all)")
    args = parser.parse_args()
    with open(os.path.join(args.out, "manifest.json")) as f:
        manifest = {entry["name"]: entry for entry in json.load(f)}

    print("## Where the codegen goes: LLVM IR lines of the user crate (`cargo llvm-lines`-style)\n")
    by_origin = {}
    for name in args.variants.split(","):
        entry = manifest[name]
        out_dir = os.path.join(os.path.abspath(args.out), "llvm-lines", name)
        for old in glob.glob(os.path.join(out_dir, "*.ll")):
            os.remove(old)
        cmd = measure.rustc_command(entry, out_dir, drop=("--error-format", "--json", "--emit"))
        result = subprocess.run(cmd + ["--emit=llvm-ir"], cwd=entry["dir"], env=measure.ENV,
                                capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stderr[-3000:])
            sys.exit(f"{name}: rustc --emit=llvm-ir failed")
        funcs = []
        for ll in glob.glob(os.path.join(out_dir, "*.ll")):
            funcs += functions(ll)
        names = demangle([n for n, _ in funcs])
        total = sum(lines for _, lines in funcs)
        groups = collections.defaultdict(lambda: [0, 0])
        origins = {}
        for dname, (_, lines) in zip(names, funcs):
            groups[dname][0] += lines
            groups[dname][1] += 1
            slot = origins.setdefault(origin(dname), [0, 0])
            slot[0] += lines
            slot[1] += 1
        by_origin[name] = (total, len(funcs), origins)
        if args.detail is not None and name not in args.detail.split(","):
            continue
        print(f"### `{name}`: {total} lines of LLVM IR in {len(funcs)} functions\n")
        print("| lines | % | copies | function (generic arguments erased) |")
        print("|---:|---:|---:|---|")
        for dname, (lines, copies) in sorted(groups.items(), key=lambda kv: -kv[1][0])[: args.top]:
            shown = dname if len(dname) <= 110 else dname[:107] + "..."
            print(f"| {lines} | {100 * lines / total:.1f} | {copies} | `{shown}` |")
        print()

    # Origins under 1% of every variant's lines are summed as "other".
    for total, _, origins in by_origin.values():
        for kind in list(origins):
            if not any(o.get(kind, [0])[0] >= 0.01 * t for t, _, o in by_origin.values()):
                other = origins.setdefault("other", [0, 0])
                other[0] += origins[kind][0]
                other[1] += origins[kind][1]
                del origins[kind]
    kinds = sorted({k for _, _, origins in by_origin.values() for k in origins},
                   key=lambda k: (k == "other", -max(o[k][0] for _, _, o in by_origin.values() if k in o)))
    print("Per origin (IR lines / functions); `generated/user` is what the macro emitted plus the "
          "user's methods and `main`, `drop glue` the drop_in_place of every type:\n")
    print("| variant | total | " + " | ".join(kinds) + " |")
    print("|---|---:|" + "---:|" * len(kinds))
    for name, (total, count, origins) in by_origin.items():
        cells = [f"{origins[k][0]} / {origins[k][1]}" if k in origins else "-" for k in kinds]
        print(f"| `{name}` | {total} / {count} | " + " | ".join(cells) + " |")
    print()


if __name__ == "__main__":
    main()
