#!/usr/bin/env bash
# What a rebuild of the 50-handler crate would cost if the supervision were compiled once, in
# peeper, instead of once per server type in the user's crate: the bound of that redesign, before
# anyone writes it.
#
# It checks out this commit into a scratch worktree, applies what-if-erased-supervision.patch
# there (the branch's task becomes the boxed worker alone: no restart, no end, no listener, no
# store paths; it does not run correctly, it only compiles), and times, in one alternating run,
# the `peeper` and `peeper-1call` crates against this repository's peeper and against the
# patched one, with ractor's two crates beside them. What an erased supervision would still
# compile per server type (the typed steps it calls through a vtable) is left out, so the
# patched times are a lower bound.
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
                 description=entry["description"] + ", supervision erased (lower bound)")
    manifest.append(entry)
json.dump(manifest, open(path, "w"), indent=2)
EOF

{
    echo "# What if the supervision were compiled once"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); peeper $(git -C "$repo" rev-parse --short HEAD); $(rustc -V)"
    echo "- patch: scripts/compile-time/what-if-erased-supervision.patch"
    echo
    python3 "$here/measure.py" --out "$out" --rounds "$rounds" --passes \
        --variants peeper,peeper-erased,ractor,peeper-1call,peeper-1call-erased,ractor-1call \
        --title "Rebuild with the supervision compiled per server type (now) and erased" \
        --save results-what-if
} 2>&1 | tee "$out/what-if.md"
