#!/usr/bin/env python3
"""Checks the built book and its sources; run by `scripts/book` after `mdbook build book`.

1. Links: every `href` and `src` of every page under `book/book/` that points inside the book
   must name a file that exists and, when it has a `#fragment`, an element with that id.
   External links (`https:`, `mailto:`, ...) are not fetched.
2. Tests: every chapter under `book/src/` with a Rust code block must be included in
   `examples/lib.rs`, where `cargo test --workspace` runs its blocks as doctests.
3. The expansion shown in `macro-expansion.md` must be the one in the documentation of
   `peeper::server` (`peeper/src/lib.rs`), which a test compares with what the macro emits.

Exits with 1 and one line per problem if anything is wrong.
"""

import os
import re
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BUILT = os.path.join(ROOT, "book", "book")
SOURCES = os.path.join(ROOT, "book", "src")


class Page(HTMLParser):
    """The links and the ids of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links = []
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("href", "src"):
                self.links.append((tag, name, value))
            elif name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)


def parse(path, cache):
    if path not in cache:
        page = Page()
        with open(path, encoding="utf-8") as file:
            page.feed(file.read())
        cache[path] = page
    return cache[path]


def check_links(problems):
    if not os.path.isdir(BUILT):
        problems.append(f"{BUILT} does not exist: run `mdbook build book` first")
        return 0
    cache = {}
    pages = []
    for folder, _, files in os.walk(BUILT):
        pages.extend(os.path.join(folder, f) for f in files if f.endswith(".html"))
    checked = 0
    for page_path in sorted(pages):
        page = parse(page_path, cache)
        shown = os.path.relpath(page_path, ROOT)
        for tag, attribute, link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue  # external: not fetched
            path = unquote(parts.path)
            if path.startswith("/"):
                target = os.path.join(BUILT, path.lstrip("/"))
            elif path:
                target = os.path.join(os.path.dirname(page_path), path)
            else:
                target = page_path
            target = os.path.normpath(target)
            if os.path.isdir(target):
                target = os.path.join(target, "index.html")
            checked += 1
            if not target.startswith(BUILT + os.sep) and target != BUILT:
                problems.append(f"{shown}: <{tag} {attribute}=\"{link}\"> points outside the book")
                continue
            if not os.path.isfile(target):
                problems.append(f"{shown}: <{tag} {attribute}=\"{link}\"> is broken: no {os.path.relpath(target, ROOT)}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.endswith(".html"):
                if fragment not in parse(target, cache).ids:
                    problems.append(f"{shown}: <{tag} {attribute}=\"{link}\">: no id \"{fragment}\" in {os.path.relpath(target, ROOT)}")
    return checked


FENCE = re.compile(r"^(\s*)(```+|~~~+)(.*)$")


def has_rust_block(text):
    """Whether a markdown text has a code block that rustdoc would test: tagged `rust` (with any
    options) or untagged."""
    fence = None
    for line in text.splitlines():
        match = FENCE.match(line)
        if not match:
            continue
        if fence is None:
            fence = match.group(2)
            info = match.group(3).strip()
            tags = [t for t in re.split(r"[\s,]+", info) if t]
            if not tags or tags[0] == "rust" or all(
                t in ("ignore", "no_run", "should_panic", "compile_fail", "edition2015",
                      "edition2018", "edition2021", "edition2024") for t in tags):
                return True
        elif match.group(2).startswith(fence[0]) and len(match.group(2)) >= len(fence) and not match.group(3).strip():
            fence = None
    return False


def check_registered(problems):
    with open(os.path.join(ROOT, "examples", "lib.rs"), encoding="utf-8") as file:
        registry = file.read()
    for name in sorted(os.listdir(SOURCES)):
        if not name.endswith(".md"):
            continue
        with open(os.path.join(SOURCES, name), encoding="utf-8") as file:
            text = file.read()
        if has_rust_block(text) and f'include_str!("../book/src/{name}")' not in registry:
            problems.append(
                f"book/src/{name} has Rust code blocks but is not included in examples/lib.rs "
                f"(add `#[doc = include_str!(\"../book/src/{name}\")] mod book_...{{}}`), so they are never tested")


def rust_blocks(text):
    """The contents of the ```rust blocks of a markdown text."""
    return re.findall(r"^```rust\n(.*?)^```$", text, flags=re.S | re.M)


def trimmed(code):
    """`code` without trailing blank or empty hidden (`#`) lines."""
    lines = code.rstrip().split("\n")
    while lines and lines[-1].strip() in ("", "#"):
        lines.pop()
    return "\n".join(lines)


def check_expansion(problems):
    with open(os.path.join(ROOT, "peeper", "src", "lib.rs"), encoding="utf-8") as file:
        lines = file.read().split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("/// <details><summary>What <code>#[peeper::server]</code> generates")]
    if not starts:
        problems.append("peeper/src/lib.rs: the expansion (`<details><summary>What <code>#[peeper::server]</code> generates`) was not found")
        return
    i = starts[0]
    while lines[i].strip() != "/// ```":
        i += 1
    j = i + 1
    while lines[j].strip() != "/// ```":
        j += 1
    documented = "\n".join(line[4:] if line.startswith("/// ") else line[3:] for line in lines[i + 1:j])
    documented = documented.split("# fn main() {}")[0]

    with open(os.path.join(SOURCES, "macro-expansion.md"), encoding="utf-8") as file:
        blocks = rust_blocks(file.read())
    if not blocks:
        problems.append("book/src/macro-expansion.md has no ```rust block")
        return
    shown = blocks[-1].split("// No `#[peeper::server]` anywhere in this block")[0].rstrip()
    if trimmed(shown) != trimmed(documented):
        problems.append(
            "book/src/macro-expansion.md: its last block is not the expansion documented on "
            "`peeper::server` in peeper/src/lib.rs: copy it again (everything before its `main`)")


def main():
    problems = []
    checked = check_links(problems)
    check_registered(problems)
    check_expansion(problems)
    for problem in problems:
        print(f"check-book: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-book: {checked} internal links and images OK; every chapter's Rust blocks are "
          "doctests; the macro expansion is in sync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
