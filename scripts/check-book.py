#!/usr/bin/env python3
"""Checks the built book and its sources; run by `scripts/book` after `mdbook build book`.

1. Links: every `href` and `src` of every page under `book/book/` that points inside the book
   must name a file that exists and, when it has a `#fragment`, an element with that id.
   External links (`https:`, `mailto:`, ...) are not fetched.
2. Tests: every chapter under `book/src/` with a Rust code block must be included in
   `examples/lib.rs`, where `cargo test --workspace` runs its blocks as doctests.
3. The expansion shown in `macro-expansion.md` must be the one in the documentation of
   `peeper::server` (`peeper/src/docs/server-attribute.md`), which a test compares with what the macro emits.
4. Examples: the chapter blocks listed in `SYNCED` must be, once their hidden (`#`) lines are
   shown and both sides are formatted by rustfmt, the programs in `examples/` that a reader on
   GitHub sees without hidden lines. `--write-examples` writes those files from the chapters.
5. Pictures: every SVG under `book/src/` parses as XML, has an `<svg>` root with a `viewBox`, and
   is shown by a chapter (or the README).
6. Rustdoc paths: every `peeper::...` path a chapter names in inline code, and every link to
   `docs.rs/peeper/...`, must exist in the rustdoc under `target/doc` (which `scripts/book`
   builds with every feature first); every link to a file of the repository on GitHub must name
   a file that exists here.

Exits with 1 and one line per problem if anything is wrong.
"""

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
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
    docs = os.path.join("peeper", "src", "docs", "server-attribute.md")
    with open(os.path.join(ROOT, docs), encoding="utf-8") as file:
        lines = file.read().split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("<details><summary>What <code>#[peeper::server]</code> generates")]
    if not starts:
        problems.append(f"{docs}: the expansion (`<details><summary>What <code>#[peeper::server]</code> generates`) was not found")
        return
    i = starts[0]
    while lines[i].strip() != "```":
        i += 1
    j = i + 1
    while lines[j].strip() != "```":
        j += 1
    documented = "\n".join(lines[i + 1:j])
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
            "`peeper::server` in peeper/src/docs/server-attribute.md: copy it again (everything "
            "before its `main`)")


# (chapter, index of its ```rust block, example file under examples/, what the example is).
SYNCED = [
    ("getting-started.md", 1, "getting_started.rs",
     "The durable program of the book's getting-started chapter"),
    ("tutorial.md", 0, "tutorial_step1.rs", "Step 1 of the book's tutorial: the state, as plain Rust"),
    ("tutorial.md", 1, "tutorial_step2.rs", "Step 2 of the book's tutorial: handlers, calls and casts"),
    ("tutorial.md", 2, "tutorial_step3.rs", "Step 3 of the book's tutorial: a crash, and what survives it"),
    ("tutorial.md", 3, "tutorial_step4.rs", "Step 4 of the book's tutorial: a listener for the operators"),
    ("tutorial.md", 4, "tutorial_step5.rs", "Step 5 of the book's tutorial: a name"),
    ("tutorial.md", 5, "tutorial_step6.rs", "Step 6 of the book's tutorial: tests"),
    ("deploying.md", 0, "shutdown.rs",
     "One node that shuts down cleanly on Ctrl-C or SIGTERM, from the book's deploying chapter"),
]


def shown(code):
    """`code` as rustdoc compiles it: hidden lines (`# ...`, `#`) shown, `##` unescaped."""
    out = []
    for line in code.split("\n"):
        text = line.lstrip()
        if text == "#":
            out.append("")
        elif text.startswith("##"):
            out.append(line.replace("##", "#", 1))
        elif text.startswith("# "):
            out.append(text[2:])
        else:
            out.append(line)
    return "\n".join(out)


def rustfmt(code):
    result = subprocess.run(["rustfmt", "--edition", "2024", "--emit", "stdout"], input=code,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise ValueError(result.stderr.strip())
    return result.stdout


def without_header(text):
    """An example's code without its leading `//!` lines (and the blank line after them)."""
    lines = text.split("\n")
    while lines and lines[0].startswith("//!"):
        lines.pop(0)
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


def example_text(chapter, index, what):
    with open(os.path.join(SOURCES, chapter), encoding="utf-8") as file:
        blocks = re.findall(r"^```rust[^\n]*\n(.*?)^```$", file.read(), flags=re.S | re.M)
    if index >= len(blocks):
        raise ValueError(f"book/src/{chapter} has no ```rust block number {index + 1}")
    name = f"{chapter}, block {index + 1}"
    header = (f"//! {what}.\n//!\n//! Generated from book/src/{name} (with its hidden lines "
              "shown) by\n//! `python3 scripts/check-book.py --write-examples`; `scripts/book` "
              "checks that the two agree.\n\n")
    return header + rustfmt(shown(blocks[index]))


def check_examples(problems, write=False):
    for chapter, index, example, what in SYNCED:
        path = os.path.join(ROOT, "examples", example)
        try:
            expected = example_text(chapter, index, what)
        except ValueError as error:
            problems.append(f"examples/{example}: {error}")
            continue
        if write:
            with open(path, "w", encoding="utf-8") as file:
                file.write(expected)
            continue
        if not os.path.isfile(path):
            problems.append(f"examples/{example} is missing: run `python3 scripts/check-book.py --write-examples`")
            continue
        with open(path, encoding="utf-8") as file:
            actual = file.read()
        try:
            same = rustfmt(without_header(actual)) == rustfmt(without_header(expected))
        except ValueError as error:
            problems.append(f"examples/{example}: {error}")
            continue
        if not same:
            problems.append(
                f"examples/{example} is not block {index + 1} of book/src/{chapter}: edit the "
                "chapter, then run `python3 scripts/check-book.py --write-examples`")


def check_pictures(problems):
    texts = []
    for name in os.listdir(SOURCES):
        if name.endswith(".md"):
            with open(os.path.join(SOURCES, name), encoding="utf-8") as file:
                texts.append(file.read())
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        texts.append(file.read())
    shown_anywhere = "\n".join(texts)
    count = 0
    for name in sorted(os.listdir(SOURCES)):
        if not name.endswith(".svg"):
            continue
        count += 1
        try:
            root = ElementTree.parse(os.path.join(SOURCES, name)).getroot()
        except ElementTree.ParseError as error:
            problems.append(f"book/src/{name} is not well-formed XML: {error}")
            continue
        if root.tag not in ("svg", "{http://www.w3.org/2000/svg}svg"):
            problems.append(f"book/src/{name}: the root element is <{root.tag}>, not <svg>")
        elif "viewBox" not in root.attrib:
            problems.append(f"book/src/{name}: the <svg> has no viewBox, so it cannot scale")
        if f"({name})" not in shown_anywhere and f"/{name})" not in shown_anywhere:
            problems.append(f"book/src/{name} is shown by no chapter: show it, or delete it")
    return count


DOC = os.path.join(ROOT, "target", "doc")
ITEM_KINDS = ("struct", "enum", "trait", "fn", "type", "macro", "constant", "static", "derive",
              "attr", "union", "traitalias", "primitive")
MEMBER_KINDS = ("method", "tymethod", "variant", "associatedtype", "associatedconstant",
                "structfield")


def page(path, cache):
    return parse(path, cache) if os.path.isfile(path) else None


def reexport_target(folder, name, cache):
    """The page a `pub use` named `name` in the module at `folder` points to, if any."""
    index = page(os.path.join(folder, "index.html"), cache)
    if index is None:
        return None
    with open(os.path.join(folder, "index.html"), encoding="utf-8") as file:
        html = file.read()
    match = re.search(r'id="reexport\.' + re.escape(name) + r'".*?href="([^"#]+)', html, flags=re.S)
    if not match:
        return None
    return os.path.normpath(os.path.join(folder, match.group(1)))


def resolve(segments, cache):
    """Whether `peeper::<segments>` exists in the rustdoc: modules, items, re-exports, then one
    member (a method, a variant, a field, an associated item)."""
    folder = os.path.join(DOC, "peeper")
    for i, segment in enumerate(segments):
        if os.path.isfile(os.path.join(folder, segment, "index.html")):
            folder = os.path.join(folder, segment)
            continue
        target = None
        for kind in ITEM_KINDS:
            candidate = os.path.join(folder, f"{kind}.{segment}.html")
            if os.path.isfile(candidate):
                target = candidate
                break
        if target is None:
            target = reexport_target(folder, segment, cache)
            if target is not None and target.endswith("index.html"):
                folder = os.path.dirname(target)
                continue
        if target is None or not os.path.isfile(target):
            return False
        rest = segments[i + 1:]
        if not rest:
            return True
        ids = parse(target, cache).ids
        return any(f"{kind}.{rest[0]}" in ids for kind in MEMBER_KINDS)
    return True


INLINE_CODE = re.compile(r"`([^`\n]+)`")
PEEPER_PATH = re.compile(r"(?<![\w:])peeper((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GITHUB = re.compile(r"https://github\.com/peeper-rs/peeper/blob/main/([^)\s\"#]+)")
DOCS_RS = re.compile(r"https://docs\.rs/peeper/[^/]+/peeper/([^)\s\"#]*)(?:#([^)\s\"]*))?")


def prose(text):
    """A chapter's text outside its fenced code blocks."""
    out, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if match and fence is None:
            fence = match.group(2)
            continue
        if match and fence and match.group(2).startswith(fence[0]) and not match.group(3).strip():
            fence = None
            continue
        if fence is None:
            out.append(line)
    return "\n".join(out)


def check_rustdoc_paths(problems):
    if not os.path.isfile(os.path.join(DOC, "peeper", "index.html")):
        problems.append(f"{os.path.relpath(DOC, ROOT)}/peeper does not exist: run `cargo doc -p peeper --no-deps --all-features` first")
        return 0
    cache = {}
    checked = 0
    names = sorted(n for n in os.listdir(SOURCES) if n.endswith(".md"))
    for name in names + ["../../README.md"]:
        with open(os.path.join(SOURCES, name), encoding="utf-8") as file:
            text = prose(file.read())
        shown_name = os.path.normpath(os.path.join("book/src", name))
        for code in INLINE_CODE.findall(text):
            for match in PEEPER_PATH.finditer(code):
                segments = [s for s in match.group(1).split("::") if s]
                if any(s.startswith("__") for s in segments):
                    continue
                checked += 1
                if not resolve(segments, cache):
                    problems.append(f"{shown_name}: `peeper{match.group(1)}` is not in the rustdoc (target/doc/peeper)")
        for path in GITHUB.findall(text):
            checked += 1
            if not os.path.exists(os.path.join(ROOT, unquote(path))):
                problems.append(f"{shown_name}: the link to the repository's {path} names no file of this repository")
        for path, fragment in DOCS_RS.findall(text):
            checked += 1
            target = os.path.join(DOC, "peeper", unquote(path) or "index.html")
            if not os.path.isfile(target):
                problems.append(f"{shown_name}: the docs.rs link to peeper/{path} has no page in target/doc/peeper")
            elif fragment and unquote(fragment) not in parse(target, cache).ids:
                problems.append(f"{shown_name}: the docs.rs link to peeper/{path}#{fragment}: no such id")
    return checked


def main():
    if sys.argv[1:] == ["--write-examples"]:
        problems = []
        check_examples(problems, write=True)
        for problem in problems:
            print(f"check-book: {problem}", file=sys.stderr)
        return 1 if problems else 0
    problems = []
    checked = check_links(problems)
    check_registered(problems)
    check_expansion(problems)
    check_examples(problems)
    pictures = check_pictures(problems)
    paths = check_rustdoc_paths(problems)
    for problem in problems:
        print(f"check-book: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-book: {checked} internal links and images OK; every chapter's Rust blocks are "
          f"doctests; the macro expansion is in sync; {len(SYNCED)} examples match their chapters; "
          f"{pictures} SVGs parse; {paths} rustdoc paths and links exist")
    return 0


if __name__ == "__main__":
    sys.exit(main())
