#!/usr/bin/env bash
# How much of a rebuild is still the supervision's: the 50-handler crate timed against this
# repository's peeper and against one whose supervision has no per-type code left at all.
#
# The supervision's loop is compiled once, in peeper, since the branch's task was split into a
# non-generic supervision and a typed half (`peeper/src/supervisor/typed.rs`). Before that split,
# this script measured the bound of it (1.24x of ractor's rebuild then; 1.09x at best with the
# supervision erased). What it measures now is what the typed half still costs: its end, its
# hand-over, hibernation and listener paths, and the start.
#
# It checks out this commit into a scratch worktree, applies what-if-erased-supervision.patch
# there (the branch's task becomes the boxed worker alone: no restart, no end, no listener, no
# store paths; it does not run correctly, it only compiles), and times, in one alternating run,
# the `peeper` and `peeper-1call` crates against this repository's peeper and against the
# patched one, with ractor's two crates beside them. The patched times are a lower bound.
#
# Usage: scripts/compile-time/what-if.sh [--rounds N]   (default 7; about 1 minute)
# Writes under target/compile-time/ as measure.sh does; the report goes to what-if.md there.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$repo/target/compile-time"
rounds=7
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

src="$out/what-if-src"
cleanup() { git -C "$repo" worktree remove --force "$src" 2>/dev/null || rm -rf "$src"; }
trap cleanup EXIT
cleanup
mkdir -p "$out"
git -C "$repo" worktree add --quiet --detach "$src" HEAD
git -C "$src" apply "$here/what-if-erased-supervision.patch"

python3 "$here/generate.py" --out "$out" --variants peeper,peeper-1call,ractor,ractor-1call > /dev/null
# The same two crates again, against the patched peeper, in a target dir of their own.
python3 - "$out" "$src" <<'EOF'
import json, os, shutil, sys
out, src = sys.argv[1:]
path = os.path.join(out, "manifest.json")
manifest = json.load(open(path))
for base in ["peeper", "peeper-1call"]:
    entry = dict(next(e for e in manifest if e["name"] == base))
    name = base + "-erased"
    crate = os.path.join(out, "crates", name)
    shutil.rmtree(crate, ignore_errors=True)
    shutil.copytree(entry["dir"], crate, ignore=shutil.ignore_patterns("target"))
    toml = os.path.join(crate, "Cargo.toml")
    text = open(toml).read()
    old = 'path = "%s"' % os.path.join(os.path.dirname(os.path.dirname(out)), "peeper")
    assert old in text, "the generated crate depends on this repository's peeper"
    open(toml, "w").write(text.replace(old, 'path = "%s"' % os.path.join(src, "peeper")))
    entry.update(name=name, dir=crate, target_dir=os.path.join(out, "targets", "what-if"),
                 description=entry["description"] + ", no per-type supervision (lower bound)")
    manifest.append(entry)
json.dump(manifest, open(path, "w"), indent=2)
EOF

{
    echo "# What if the supervision had no per-type code at all"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); peeper $(git -C "$repo" rev-parse --short HEAD); $(rustc -V)"
    echo "- patch: scripts/compile-time/what-if-erased-supervision.patch"
    echo
    python3 "$here/measure.py" --out "$out" --rounds "$rounds" --passes \
        --variants peeper,peeper-erased,ractor,peeper-1call,peeper-1call-erased,ractor-1call \
        --title "Rebuild with the typed half of the supervision (now) and without it" \
        --save results-what-if
} 2>&1 | tee "$out/what-if.md"
