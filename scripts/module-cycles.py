#!/usr/bin/env python3
"""Prints the import cycles between the top-level modules of `peeper/src`; exits 1 if any.

An edge A -> B is a path into module B's insides (`crate::B::...`, or `B::...` inside a
`use crate::{...}`) in a file of module A; comment lines are skipped. Items the crate root
re-exports (`crate::Server`, `crate::Client`, ...) are the crate's public API, and using them is
not an edge: the `Server` trait and the `Client<S: Server>` it returns name each other, as a trait
and the types generic over it do. `--through-root` counts those too, to show the whole picture.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'peeper', 'src')


def code(path):
    return '\n'.join(l for l in open(path).read().split('\n') if not l.lstrip().startswith('//'))


def root_exports():
    lib = code(os.path.join(ROOT, 'lib.rs'))
    exports = {}
    for m in re.finditer(r'pub use ([a-z_]+)::(\{[^}]*\}|[A-Za-z_]+)\s*;', lib, re.S):
        module, names = m.group(1), m.group(2)
        for name in re.findall(r'[A-Za-z_]+', names):
            exports[name] = module
    return exports


def graph(through_root):
    exports = root_exports() if through_root else {}
    edges = {}
    for dirpath, _, files in os.walk(ROOT):
        for file in files:
            if not file.endswith('.rs'):
                continue
            path = os.path.join(dirpath, file)
            parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
            if parts == ['lib']:
                continue
            top = parts[0]
            src = code(path)
            targets = edges.setdefault(top, set())
            names = re.findall(r'crate::([a-z_]+)::', src)
            groups = re.findall(r'crate::\{([^;]*?)\}\s*;', src, re.S)
            for group in groups:
                names += re.findall(r'(?:^|[,{\s])([a-z_]+)::', group)
            if through_root:
                names += [n for n in re.findall(r'crate::([A-Z][A-Za-z_]*)', src)]
                for group in groups:
                    names += re.findall(r'(?:^|[,{\s])([A-Za-z_]+)(?=\s*(?:,|\}|$))', group)
            for name in names:
                target = exports.get(name, name)
                if target != top:
                    targets.add(target)
    return {k: {v for v in vs if v in edges} for k, vs in edges.items()}


def cycles(g):
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


if __name__ == '__main__':
    g = graph('--through-root' in sys.argv)
    found = cycles(g)
    for component in found:
        print('cycle:', ', '.join(component))
        for module in component:
            print(f'  {module} -> {", ".join(sorted(w for w in g[module] if w in component))}')
    sys.exit(1 if found else 0)
