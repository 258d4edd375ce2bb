//! Expansion tests of `#[derive(peeper::State)]`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{File, ImplItem, Item};

use super::expand;

fn parse(input: TokenStream) -> File {
    let output = expand(input);
    syn::parse2(output.clone())
        .unwrap_or_else(|error| panic!("the output does not parse: {error}\n{output}"))
}

fn compact(tokens: impl ToTokens) -> String {
    tokens.to_token_stream().to_string().replace(' ', "")
}

fn session() -> TokenStream {
    quote! {
        pub(crate) struct Session<T> where T: Eq {
            user: String,
            cart: Vec<T>,
            #[keep(skip)]
            cache: Vec<u8>,
            #[keep(skip, with = fresh::connection)]
            connection: Connection,
        }
    }
}

#[test]
fn the_projection_holds_the_kept_fields() {
    let file = parse(session());
    let Some(Item::Struct(kept)) = file.items.first() else {
        panic!("no struct first")
    };
    assert_eq!(kept.ident, "SessionKept");
    assert_eq!(compact(&kept.vis), "pub(crate)", "as visible as the state");
    assert_eq!(compact(&kept.generics), "<T>");
    let fields: Vec<String> = kept.fields.iter().map(compact).collect();
    assert_eq!(fields, ["user:String", "cart:Vec<T>"]);
}

#[test]
fn project_clones_and_rebuild_fills_the_skipped_fields() {
    let file = parse(session());
    let Some(Item::Impl(project)) = file.items.get(1) else {
        panic!("no impl second")
    };
    assert_eq!(
        compact(&project.trait_.as_ref().expect("a trait impl").1),
        "::peeper::keep::Project"
    );
    let where_clause = compact(&project.generics.where_clause);
    assert!(
        where_clause.contains("T:Eq"),
        "the struct's bounds stay: {where_clause}"
    );
    assert!(
        where_clause
            .contains("T:::core::clone::Clone+::core::marker::Send+::core::marker::Sync+'static"),
        "{where_clause}"
    );
    let body = |name: &str| {
        project
            .items
            .iter()
            .find_map(|item| match item {
                ImplItem::Fn(method) if method.sig.ident == name => Some(compact(&method.block)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no `{name}`"))
    };
    assert_eq!(
        body("project"),
        "{SessionKept{user:::core::clone::Clone::clone(&self.user),cart:::core::clone::Clone::clone(&self.cart),}}"
    );
    let rebuild = body("rebuild");
    assert!(
        rebuild.contains("cache:<Vec<u8>as::core::default::Default>::default()"),
        "{rebuild}"
    );
    assert!(
        rebuild.contains("connection:fresh::connection()"),
        "{rebuild}"
    );
}

#[test]
fn a_type_parameter_only_in_skipped_fields_is_kept_by_a_phantom() {
    let file = parse(quote! {
        struct Cache<K> {
            hits: u64,
            #[keep(skip)]
            map: HashMap<K, u64>,
        }
    });
    let text = compact(&file);
    assert!(
        text.contains("__phantom:::core::marker::PhantomData<fn()->(K,)>"),
        "{text}"
    );
    assert!(
        text.contains("__phantom:::core::marker::PhantomData,"),
        "{text}"
    );
}

#[test]
fn the_crate_can_be_renamed() {
    let file = parse(quote! {
        #[keep(crate = ::renamed)]
        struct Unit;
    });
    assert!(compact(&file).contains("impl::renamed::keep::ProjectforUnit"));
}

#[test]
fn mistakes_are_all_reported_with_a_stub_impl() {
    let output = expand(quote! {
        struct Session {
            #[keep(skipp)]
            a: u8,
            #[keep(with = f)]
            b: u8,
            #[keep]
            c: u8,
        }
    });
    let text = output.to_string();
    assert_eq!(text.matches("compile_error").count(), 3, "{text}");
    for expected in [
        "unknown option `skipp`",
        "`with` says how to rebuild a skipped field",
        "`#[keep]` takes options",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    let file: File = syn::parse2(output).expect("the fallback parses");
    assert!(
        compact(&file).contains("typeProjection=();"),
        "a stub impl avoids follow-up errors"
    );
}

#[test]
fn tuple_structs_and_enums_are_refused() {
    for input in [
        quote!(
            struct Pair(u8, u8);
        ),
        quote!(
            enum Either {
                A,
                B,
            }
        ),
    ] {
        let text = expand(input).to_string();
        assert!(text.contains("compile_error"), "{text}");
        assert!(text.contains("`#[derive(peeper::State)]`"), "{text}");
    }
}
