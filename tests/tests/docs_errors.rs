//! The book's errors catalogue (`book/src/errors.md`) against peeper's source, so that neither
//! drifts from the other.
//!
//! The error enums are read from `peeper/src` with `syn`: every `pub enum` that derives
//! `thiserror::Error` or implements `std::error::Error` (so a new error enum is found without
//! being listed here). For each, the catalogue must have a `` ## `Enum` `` section with exactly
//! one table row per variant, `` | `Variant` | when | what to do | ``; a variant added to the
//! source means one row added there, and a row for a variant that does not exist fails too.
//! Every text of `StartError::InvalidOptions` in the source must also be quoted in the catalogue.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use quote::ToTokens;
use syn::visit_mut::VisitMut;

const CATALOGUE: &str = "book/src/errors.md";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every `.rs` file under `peeper/src`, parsed.
fn sources() -> Vec<(PathBuf, syn::File)> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&workspace().join("peeper/src"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let file = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            (path, file)
        })
        .collect()
}

/// The public error enums of the source and their variants, in declaration order.
fn error_enums(files: &[(PathBuf, syn::File)]) -> BTreeMap<String, Vec<String>> {
    let mut enums = BTreeMap::new();
    for (_, file) in files {
        let implements_error: BTreeSet<String> = file
            .items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Impl(imp) => {
                    let (_, path, _) = imp.trait_.as_ref()?;
                    let last = path.segments.last()?;
                    if last.ident != "Error" {
                        return None;
                    }
                    match &*imp.self_ty {
                        syn::Type::Path(ty) => Some(ty.path.segments.last()?.ident.to_string()),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect();
        for item in &file.items {
            let syn::Item::Enum(item) = item else {
                continue;
            };
            if !matches!(item.vis, syn::Visibility::Public(_)) {
                continue;
            }
            let derives_error = item.attrs.iter().any(|attr| {
                attr.path().is_ident("derive")
                    && attr
                        .meta
                        .to_token_stream()
                        .to_string()
                        .split([',', '(', ')', ' '])
                        .any(|word| word == "Error")
            });
            let name = item.ident.to_string();
            if derives_error || implements_error.contains(&name) {
                let variants = item.variants.iter().map(|v| v.ident.to_string()).collect();
                enums.insert(name, variants);
            }
        }
    }
    enums
}

/// Every string literal given to `InvalidOptions(..)` in the source.
fn invalid_options_texts(files: &mut [(PathBuf, syn::File)]) -> Vec<String> {
    struct Texts(Vec<String>);
    impl VisitMut for Texts {
        fn visit_expr_call_mut(&mut self, call: &mut syn::ExprCall) {
            if let syn::Expr::Path(func) = &*call.func
                && func
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "InvalidOptions")
                && let Some(syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(text),
                    ..
                })) = call.args.first()
            {
                self.0.push(text.value());
            }
            syn::visit_mut::visit_expr_call_mut(self, call);
        }
    }
    let mut texts = Texts(Vec::new());
    for (_, file) in files.iter_mut() {
        texts.visit_file_mut(file);
    }
    texts.0
}

/// The catalogue's entries: for each `` ## `Enum` `` section, the first cells of its table rows.
fn catalogue_entries(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut entries: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading
                .strip_prefix('`')
                .and_then(|rest| rest.strip_suffix('`'))
                .map(str::to_owned);
            if let Some(name) = &section {
                entries.entry(name.clone()).or_default();
            }
        } else if let (Some(name), Some(row)) = (&section, line.strip_prefix("| `"))
            && let Some((variant, _)) = row.split_once('`')
        {
            entries.get_mut(name).unwrap().push(variant.to_owned());
        }
    }
    entries
}

fn normalized(text: &str) -> String {
    text.replace('`', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_errors_catalogue_lists_every_variant_of_every_error_enum() {
    let files = sources();
    let enums = error_enums(&files);
    for expected in ["CallError", "StartError", "StopError", "StoreError", "Exit"] {
        assert!(
            enums.contains_key(expected),
            "`{expected}` was not found in peeper/src: is this test still reading the right files?"
        );
    }
    let catalogue = std::fs::read_to_string(workspace().join(CATALOGUE)).unwrap();
    let entries = catalogue_entries(&catalogue);

    let mut problems = Vec::new();
    for (name, variants) in &enums {
        let Some(listed) = entries.get(name) else {
            problems.push(format!(
                "no section for `{name}`: add a `## `{name}`` section with one row per variant"
            ));
            continue;
        };
        for variant in variants {
            match listed.iter().filter(|v| *v == variant).count() {
                0 => problems.push(format!(
                    "`{name}::{variant}` has no entry: add `| `{variant}` | when | what to do |` \
                     under `## `{name}``"
                )),
                1 => {}
                n => problems.push(format!("`{name}::{variant}` has {n} entries; keep one")),
            }
        }
        for variant in listed {
            if !variants.contains(variant) {
                problems.push(format!(
                    "`{name}::{variant}` is listed but does not exist in peeper/src: remove its row"
                ));
            }
        }
    }
    for name in entries.keys() {
        if !enums.contains_key(name) {
            problems.push(format!(
                "the section `{name}` names no error enum of peeper/src: rename or remove it"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{CATALOGUE} and the error enums differ:\n- {}",
        problems.join("\n- ")
    );
}

#[test]
fn the_errors_catalogue_quotes_every_invalid_options_text() {
    let mut files = sources();
    let texts = invalid_options_texts(&mut files);
    assert!(
        !texts.is_empty(),
        "no `InvalidOptions(\"..\")` found in peeper/src: is this test still reading the right files?"
    );
    let catalogue = normalized(&std::fs::read_to_string(workspace().join(CATALOGUE)).unwrap());
    let missing: Vec<&String> = texts
        .iter()
        .filter(|text| !catalogue.contains(&normalized(text)))
        .collect();
    assert!(
        missing.is_empty(),
        "{CATALOGUE} does not quote these `StartError::InvalidOptions` texts (add each, with \
         what to do, under `### The texts of `InvalidOptions``):\n{missing:#?}"
    );
}

/// Every `Enum::Variant` that a rustdoc `# Errors` section in `peeper/src` names must exist: a
/// variant renamed or removed cannot live on in the documentation of the functions that returned
/// it.
#[test]
fn every_errors_section_names_existing_variants() {
    let files = sources();
    let enums = error_enums(&files);
    let mut problems = Vec::new();
    for (path, _) in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut in_errors = false;
        for (number, line) in text.lines().enumerate() {
            let doc = line
                .trim_start()
                .strip_prefix("///")
                .or_else(|| line.trim_start().strip_prefix("//!"));
            let Some(doc) = doc else {
                in_errors = false;
                continue;
            };
            let doc = doc.trim_start();
            if doc.starts_with('#') && !doc.starts_with("#[") && !doc.starts_with("# ") {
                continue;
            }
            if let Some(heading) = doc.strip_prefix("# ") {
                in_errors = heading.trim() == "Errors";
                continue;
            }
            if !in_errors {
                continue;
            }
            for (name, variants) in &enums {
                let needle = format!("{name}::");
                let mut rest = doc;
                while let Some(at) = rest.find(&needle) {
                    let after = &rest[at + needle.len()..];
                    let variant: String = after
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let boundary = rest[..at]
                        .chars()
                        .last()
                        .is_none_or(|c| !c.is_alphanumeric() && c != '_');
                    if boundary && !variant.is_empty() && !variants.contains(&variant) {
                        problems.push(format!(
                            "{}:{}: `{name}::{variant}` does not exist",
                            path.strip_prefix(workspace()).unwrap_or(path).display(),
                            number + 1
                        ));
                    }
                    rest = after;
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "`# Errors` sections name variants that do not exist:\n- {}",
        problems.join("\n- ")
    );
}
