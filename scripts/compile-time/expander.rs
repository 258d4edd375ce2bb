// The expander of the compile-time harness: `cargo expand` for `#[peeper::server]` only.
//
// `generate.py` builds this file as a plain binary (not a proc-macro crate), with the modules of
// `peeper-macros/src` mounted in front of it by `#[path = ...] mod ...;` lines, so the expansion is
// the one the macro itself emits, from the same source, with nothing copied. It needs neither
// nightly nor cargo-expand: `proc_macro2` runs outside a compiler as well.
//
// Usage: expander INPUT.rs [--drop PART]...
//
// Reads INPUT.rs, replaces each `impl` carrying `#[peeper::server(...)]` by the macro's output,
// drops the requested parts of that output (to measure what each costs), and prints the file.
// Other macros (`inventory::submit!`, `unreachable!`, `#[tokio::main]`) stay as they are.
//
// Parts that can be dropped:
//   docs          every `#[doc = ...]` the macro emits
//   with_timeout  the `{S}WithTimeout` builder (a second async method per `#[call]`) and
//                 `{S}Client::with_timeout`
//   after         the `{S}After` builder (a second method per `#[cast]`) and `{S}Client::after`
//   keyed         the `{S}Idempotent` builder (a third async method per `#[call]`, with an
//                 idempotency key) and `{S}Client::idempotent`
//   client        the typed client and its builders, with `start`/`builder`/`whereis`
//                 (the input's `main` must then use `peeper::Server::start` and the enums)
//   registration  the `inventory::submit!` that lists the server in `peeper::servers()`

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::ToTokens;

fn main() {
    let mut args = std::env::args().skip(1);
    let input = args.next().expect("usage: expander INPUT.rs [--drop PART]...");
    let mut drop: Vec<String> = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--drop" => drop.push(args.next().expect("--drop needs a part")),
            other => panic!("unknown argument {other}"),
        }
    }
    for part in &drop {
        assert!(
            ["docs", "with_timeout", "after", "keyed", "client", "registration"].contains(&part.as_str()),
            "unknown part {part}"
        );
    }
    let source = std::fs::read_to_string(&input).expect("read the input");
    let file: syn::File = syn::parse_file(&source).expect("parse the input");

    let mut out = TokenStream::new();
    for attr in &file.attrs {
        attr.to_tokens(&mut out);
    }
    for item in file.items {
        match server_attr(&item) {
            Some((index, args)) => {
                let syn::Item::Impl(mut item_impl) = item else { unreachable!() };
                item_impl.attrs.remove(index);
                let expanded = server::expand(args, item_impl.into_token_stream());
                out.extend(transform(expanded, &drop));
            }
            None => item.to_tokens(&mut out),
        }
    }
    println!("{out}");
}

/// The index and arguments of a `#[peeper::server]` / `#[peeper::server(...)]` attribute.
fn server_attr(item: &syn::Item) -> Option<(usize, TokenStream)> {
    let syn::Item::Impl(item_impl) = item else { return None };
    item_impl.attrs.iter().enumerate().find_map(|(index, attr)| {
        let path = attr.path();
        let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if names != ["peeper", "server"] {
            return None;
        }
        let args = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            _ => TokenStream::new(),
        };
        Some((index, args))
    })
}

/// The macro's output without the dropped parts.
fn transform(expanded: TokenStream, drop: &[String]) -> TokenStream {
    let dropping = |part: &str| drop.iter().any(|d| d == part);
    let file: syn::File = syn::parse2(expanded).expect("the expansion parses as items");
    let mut out = TokenStream::new();
    for mut item in file.items {
        let name = item_name(&item);
        let ends = |suffix: &str| name.as_deref().is_some_and(|n| n.ends_with(suffix));
        let dropped = (dropping("client")
            && (ends("Client") || ends("WithTimeout") || ends("After") || ends("Idempotent")))
            || (dropping("with_timeout") && ends("WithTimeout"))
            || (dropping("after") && ends("After"))
            || (dropping("keyed") && ends("Idempotent"))
            || (dropping("registration") && matches!(item, syn::Item::Macro(_)));
        if dropped {
            continue;
        }
        if let syn::Item::Impl(item_impl) = &mut item {
            // The client's own `with_timeout` / `after`; with `client`, the generated inherent
            // impl of the server (`start`, `builder`, `whereis`, which return the client).
            item_impl.items.retain(|inner| {
                let syn::ImplItem::Fn(f) = inner else { return true };
                let method = f.sig.ident.to_string();
                !((dropping("with_timeout") && method == "with_timeout" && ends("Client"))
                    || (dropping("after") && method == "after" && ends("Client"))
                    || (dropping("keyed") && method == "idempotent" && ends("Client"))
                    || (dropping("client") && item_impl.trait_.is_none() && ["start", "builder", "whereis"].contains(&method.as_str())))
            });
            if item_impl.trait_.is_none() && item_impl.items.is_empty() {
                continue;
            }
        }
        let mut tokens = item.into_token_stream();
        if dropping("docs") {
            tokens = without_docs(tokens);
        }
        out.extend(tokens);
    }
    out
}

/// The type an item defines, or the type an `impl` is for.
fn item_name(item: &syn::Item) -> Option<String> {
    match item {
        syn::Item::Struct(s) => Some(s.ident.to_string()),
        syn::Item::Enum(e) => Some(e.ident.to_string()),
        syn::Item::Impl(i) => match &*i.self_ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// `tokens` without any `#[doc = ...]`, at any depth.
fn without_docs(tokens: TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        if let (TokenTree::Punct(p), Some(TokenTree::Group(g))) = (&trees[i], trees.get(i + 1)) {
            let is_doc = p.as_char() == '#'
                && g.delimiter() == Delimiter::Bracket
                && matches!(g.stream().into_iter().next(), Some(TokenTree::Ident(id)) if id == "doc");
            if is_doc {
                i += 2;
                continue;
            }
        }
        out.push(match &trees[i] {
            TokenTree::Group(g) => {
                let mut group = Group::new(g.delimiter(), without_docs(g.stream()));
                group.set_span(g.span());
                TokenTree::Group(group)
            }
            other => other.clone(),
        });
        i += 1;
    }
    out.into_iter().collect()
}
