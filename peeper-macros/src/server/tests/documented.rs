//! The expansion documented on `peeper::server` is the macro's real output.

use quote::{ToTokens, quote};
use syn::visit_mut::VisitMut;
use syn::{File, Item};

use super::{compact, parse};

/// Makes two token-equal programs compare equal after rustfmt: strips every `#[doc]` (the
/// documented expansion renders docs as `///` comments, the macro emits `#[doc = ".."]`), and
/// unwraps the `{ .. }` rustfmt puts around long match arms.
struct Normalize;

impl VisitMut for Normalize {
    fn visit_attributes_mut(&mut self, attrs: &mut Vec<syn::Attribute>) {
        attrs.retain(|attr| !attr.path().is_ident("doc"));
    }

    fn visit_arm_mut(&mut self, arm: &mut syn::Arm) {
        if let syn::Expr::Block(block) = &*arm.body
            && block.attrs.is_empty()
            && block.label.is_none()
            && let [syn::Stmt::Expr(expr, None)] = &block.block.stmts[..]
        {
            *arm.body = expr.clone();
        }
        arm.comma = Some(syn::Token![,](proc_macro2::Span::call_site()));
        syn::visit_mut::visit_arm_mut(self, arm);
    }
}

/// The code blocks of the docs of `peeper::server` (`peeper/src/docs/server-attribute.md`, which
/// peeper's lib.rs includes on `pub use peeper_macros::server;`), hidden lines (`# `) included.
fn documented_blocks() -> Vec<String> {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../peeper/src/docs/server-attribute.md"
    ))
    .expect("peeper's docs are next to this crate");
    let doc: Vec<&str> = docs.lines().collect();
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in doc {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block.join("\n")),
                None => current = Some(Vec::new()),
            }
        } else if let Some(block) = &mut current {
            let line = match line.trim_start().strip_prefix("# ") {
                Some(hidden) => hidden,
                None if line.trim() == "#" => "",
                None => line,
            };
            block.push(line);
        }
    }
    blocks
}

#[test]
fn the_documented_expansion_is_the_real_one() {
    let blocks = documented_blocks();
    assert!(
        blocks.len() >= 2,
        "the docs of `peeper::server` have an example and its expansion"
    );
    // The first block is the example; take its `#[peeper::server] impl Counter`.
    let example: File = syn::parse_str(&blocks[0]).expect("the example parses");
    let input = example
        .items
        .iter()
        .find_map(|item| match item {
            Item::Impl(item)
                if item
                    .attrs
                    .iter()
                    .any(|attr| compact(attr.path()) == "peeper::server") =>
            {
                let mut item = item.clone();
                item.attrs
                    .retain(|attr| compact(attr.path()) != "peeper::server");
                Some(item)
            }
            _ => None,
        })
        .expect("the example has a `#[peeper::server]` impl");
    let mut expanded = parse(quote!(), input.to_token_stream());
    // The expansion is the block that starts with the example's `impl Counter`.
    let documented = blocks
        .iter()
        .find(|block| block.contains("impl ::peeper::Server for Counter"))
        .expect("the docs show the expansion");
    let mut documented: File = syn::parse_str(documented).expect("the documented expansion parses");
    // Leave out what the doc adds to compile on its own: the state struct, `Tick`, `main`.
    documented.items.retain(|item| !matches!(item, Item::Struct(item) if item.ident == "Counter" || item.ident == "Tick"));
    documented
        .items
        .retain(|item| !matches!(item, Item::Fn(item) if item.sig.ident == "main"));
    documented
        .items
        .retain(|item| !matches!(item, Item::Use(_)));
    Normalize.visit_file_mut(&mut expanded);
    Normalize.visit_file_mut(&mut documented);
    // Spaces aside, rustfmt adds and removes trailing commas.
    let text = |file: &File| {
        let text = file.to_token_stream().to_string().replace(' ', "");
        [
            (",)", ")"),
            (",}", "}"),
            (",]", "]"),
            (",>", ">"),
            ("},", "}"),
        ]
        .iter()
        .fold(text, |text, (from, to)| text.replace(from, to))
    };
    let (expanded, documented) = (text(&expanded), text(&documented));
    if expanded != documented {
        let first = expanded
            .chars()
            .zip(documented.chars())
            .take_while(|(a, b)| a == b)
            .count();
        panic!(
            "the expansion in the docs of `peeper::server` is out of date; from character {first}:\n\
             macro: {}\ndocs:  {}",
            &expanded[first.saturating_sub(80)..(first + 200).min(expanded.len())],
            &documented[first.saturating_sub(80)..(first + 200).min(documented.len())],
        );
    }
}
