#!/usr/bin/env bash
# How long a user crate with a 50-handler server takes to rebuild: #[peeper::server] against
# ractor's #[ractor::actor] and against no macro, then a breakdown of where peeper's time goes.
# See README.md beside this file.
#
# Usage: scripts/compile-time/measure.sh [--rounds N] [--breakdown-rounds N] [--compare-only]
#                                         [--no-passes]
#   --rounds N            rounds of the peeper / ractor / plain comparison (default 15)
#   --breakdown-rounds N  rounds of the breakdown, 19 variants (default 11)
#   --compare-only        skip the breakdown (about 1 minute instead of 6)
#   --no-passes           skip the untimed `-Z time-passes` / mono-item counts
#
# After the timed rounds it also counts, untimed, the LLVM IR lines of each function the crate
# codegens (llvm_lines.py), which shows what the time is spent on.
#
# Writes the crates and target dirs under target/compile-time/ (git ignores it) and the report,
# also printed, to target/compile-time/report.md. Needs python3, cargo and the registry (the first
# run downloads ractor); later runs build offline.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # the scripts import each other: no __pycache__ in the repository

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/target/compile-time"
rounds=15
breakdown_rounds=11
breakdown=1
passes=--passes
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --breakdown-rounds) breakdown_rounds="$2"; shift 2 ;;
        --compare-only) breakdown=0; shift ;;
        --no-passes) passes=""; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
if [ "$rounds" -lt 5 ] || [ "$breakdown_rounds" -lt 5 ]; then
    echo "at least 5 rounds" >&2
    exit 2
fi

mkdir -p "$out"
{
    echo "# Compile cost of #[peeper::server]"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "- $(rustc -V), $(cargo -V)"
    echo "- peeper: $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- peeper peeper-macros || echo ' + uncommitted changes in peeper/ or peeper-macros/')"
    echo "- loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- CARGO_INCREMENTAL=0, dev profile, \`touch src/main.rs\` then \`cargo build\` of the user crate alone"
    echo

    variants=compare
    [ "$breakdown" = 1 ] && variants=compare,breakdown
    python3 "$here/generate.py" --out "$out" --variants "$variants" > /dev/null

    python3 "$here/measure.py" --out "$out" --variants peeper,ractor,plain --rounds "$rounds" \
        --title "Rebuild of the user crate: peeper vs ractor vs no macro" --save results-compare $passes

    if [ "$breakdown" = 1 ]; then
        breakdown_variants="$(python3 -c "import sys; sys.path.insert(0, '$here'); import generate; print(','.join(generate.GROUPS['breakdown']))")"
        python3 "$here/measure.py" --out "$out" --variants "$breakdown_variants" --rounds "$breakdown_rounds" \
            --title "Breakdown: variants of the input and of the expansion" --save results-breakdown $passes
    fi
    # Untimed: LLVM IR lines per function, for where the codegen time goes.
    if [ "$breakdown" = 1 ]; then
        python3 "$here/llvm_lines.py" --out "$out" --detail peeper,ractor --variants \
            peeper-1call,peeper-calls,peeper-calls-ref,peeper-calls-mut,peeper-casts,peeper-infos,peeper,peeper-async,expanded-no-client,expanded-server-only,ractor-1call,ractor,ractor-async,plain
    else
        python3 "$here/llvm_lines.py" --out "$out" --detail peeper,ractor --variants peeper,ractor,plain
    fi
    echo "- loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$out/report.md"
