//! The workspace's shape: no file of `peeper/src` or `peeper-macros/src` over 600 lines, and no
//! two modules of `peeper/src` that reach into each other's insides (`crate::a::...` from `b` and
//! `crate::b::...` from `a`, or a longer loop).
//!
//! A path into a module's insides is `crate::m::...`, or `m::...` inside a `use crate::{...}`;
//! comment lines are skipped. Items the crate root re-exports (`crate::Server`, `crate::Client`)
//! are the crate's public API, and using them is not an edge: a trait and the types generic over
//! it name each other. `scripts/module-cycles.py` prints the same graph's cycles (and, with
//! `--through-root`, the whole picture).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../peeper/src")
}

/// Every `.rs` file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn no_source_file_is_over_600_lines() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let long: Vec<String> = ["peeper/src", "peeper-macros/src"]
        .iter()
        .flat_map(|dir| files(&workspace.join(dir)))
        .filter_map(|path| {
            let lines = fs::read_to_string(&path).unwrap().lines().count();
            (lines > MAX_LINES).then(|| {
                format!(
                    "{}: {lines}",
                    path.strip_prefix(&workspace).unwrap().display()
                )
            })
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

/// The top-level module a file belongs to (`None` for the crate root).
fn module_of(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(module) => Some(module.to_owned()),
        None => Some(first.to_owned()),
    }
}

/// The identifiers `text` names right before a `::` (module paths), lowercase only.
fn module_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_lowercase() || bytes[i] == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let preceded =
                start > 0 && (bytes[start - 1] == b':' || bytes[start - 1].is_ascii_alphanumeric());
            if !preceded && text[i..].starts_with("::") {
                found.push(text[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    found
}

/// The modules a file's code reaches into.
fn edges(code: &str) -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b::{Y, Z}, Root}`: every module path in the group.
            let end = group.find("};").unwrap_or(group.len());
            targets.extend(module_paths(&group[..end]));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if rest[name.len()..].starts_with("::") && name.starts_with(|c: char| c.is_lowercase())
            {
                targets.insert(name);
            }
        }
    }
    targets
}

#[test]
fn no_two_runtime_modules_import_each_other() {
    let root = sources();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files(&root) {
        let Some(module) = module_of(&root, &path) else {
            continue;
        };
        let code: String = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let targets = edges(&code);
        graph
            .entry(module.clone())
            .or_default()
            .extend(targets.into_iter().filter(|target| *target != module));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for targets in graph.values_mut() {
        targets.retain(|target| modules.contains(target));
    }
    // A module is in a cycle if it can reach itself.
    let mut in_cycles = Vec::new();
    for module in &modules {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = graph[module].iter().collect();
        while let Some(next) = stack.pop() {
            if seen.insert(next.clone()) {
                stack.extend(graph[next].iter());
            }
        }
        if seen.contains(module) {
            let back: Vec<&String> = graph[module]
                .iter()
                .filter(|target| reaches(&graph, target, module))
                .collect();
            in_cycles.push(format!("{module} -> {back:?}"));
        }
    }
    assert!(
        in_cycles.is_empty(),
        "modules in import cycles (each with the modules it imports that lead back to it):\n{}",
        in_cycles.join("\n")
    );
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(next) = stack.pop() {
        if next == to {
            return true;
        }
        if seen.insert(next.clone()) {
            stack.extend(graph[&next].iter().cloned());
        }
    }
    false
}

/// The scanner itself, on the forms the runtime uses.
#[test]
fn paths_into_modules_are_found() {
    let code = "use crate::store::{Key, StoreError};\n\
                use crate::{Branch, keeper::{self, Cell}, worker::Worker};\n\
                let x = crate::durable::release(a);\n\
                let y: crate::Server = z;\n";
    assert_eq!(
        edges(code),
        ["durable", "keeper", "store", "worker"]
            .map(String::from)
            .into(),
    );
}
