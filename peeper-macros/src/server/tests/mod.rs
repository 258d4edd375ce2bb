//! Expansion tests: the macro's output, parsed back with `syn`, has the items it should.

use proc_macro2::{TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::{File, ImplItem, Item, ItemEnum, ItemImpl, ItemStruct};

mod documented;

use super::expand;

fn counter() -> TokenStream {
    quote! {
        impl Counter {
            /// Runs at every start.
            #[init]
            async fn init(&mut self, ctx: &mut peeper::Context<Self>) {}

            #[call]
            fn get(&self) -> u64 { self.count }

            /// Adds `by`.
            #[call]
            async fn add(&mut self, by: u64) -> u64 { self.count += by; self.count }

            #[cast]
            fn inc(&mut self) { self.count += 1 }

            #[info]
            fn tick(&mut self, tick: Tick, ctx: &mut peeper::Context<Self>) {}

            #[terminate]
            fn terminate(&mut self, reason: &peeper::Exit) {}

            fn helper(&self) -> u64 { 1 }
        }
    }
}

fn parse(args: TokenStream, input: TokenStream) -> File {
    let output = expand(args, input);
    syn::parse2(output.clone())
        .unwrap_or_else(|error| panic!("the output does not parse: {error}\n{output}"))
}

fn enums(file: &File) -> impl Iterator<Item = &ItemEnum> {
    file.items.iter().filter_map(|item| match item {
        Item::Enum(item) => Some(item),
        _ => None,
    })
}

fn enum_named<'f>(file: &'f File, name: &str) -> &'f ItemEnum {
    enums(file)
        .find(|item| item.ident == name)
        .unwrap_or_else(|| panic!("no enum `{name}`"))
}

fn variants(item: &ItemEnum) -> Vec<String> {
    item.variants
        .iter()
        .map(|variant| variant.ident.to_string())
        .collect()
}

fn structs(file: &File) -> Vec<String> {
    file.items
        .iter()
        .filter_map(|item| match item {
            Item::Struct(ItemStruct { ident, .. }) => Some(ident.to_string()),
            _ => None,
        })
        .collect()
}

fn impls(file: &File) -> impl Iterator<Item = &ItemImpl> {
    file.items.iter().filter_map(|item| match item {
        Item::Impl(item) => Some(item),
        _ => None,
    })
}

/// The inherent impl of the type named `name` (its last path segment), after the first `skip`.
fn inherent<'f>(file: &'f File, name: &str, skip: usize) -> &'f ItemImpl {
    impls(file)
        .filter(|item| item.trait_.is_none() && last_segment(&item.self_ty) == name)
        .nth(skip)
        .unwrap_or_else(|| panic!("no inherent impl of `{name}`"))
}

fn trait_impl<'f>(file: &'f File, trait_name: &str, ty: &str) -> Option<&'f ItemImpl> {
    impls(file).find(|item| {
        item.trait_.as_ref().is_some_and(|(_, path, _)| {
            path.segments
                .last()
                .is_some_and(|last| last.ident == trait_name)
        }) && last_segment(&item.self_ty) == ty
    })
}

fn last_segment(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(path) => path
            .path
            .segments
            .last()
            .map(|last| last.ident.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn methods(item: &ItemImpl) -> Vec<String> {
    item.items
        .iter()
        .filter_map(|item| match item {
            ImplItem::Fn(method) => Some(method.sig.ident.to_string()),
            _ => None,
        })
        .collect()
}

fn method<'i>(item: &'i ItemImpl, name: &str) -> &'i syn::ImplItemFn {
    item.items
        .iter()
        .find_map(|item| match item {
            ImplItem::Fn(method) if method.sig.ident == name => Some(method),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no method `{name}`"))
}

/// Token text without spaces, to look for a piece of code.
fn compact(tokens: impl ToTokens) -> String {
    tokens.to_token_stream().to_string().replace(' ', "")
}

#[test]
fn the_counter_expands_to_every_item() {
    let file = parse(quote!(), counter());
    assert_eq!(variants(enum_named(&file, "CounterCall")), ["Get", "Add"]);
    assert_eq!(variants(enum_named(&file, "CounterReply")), ["Get", "Add"]);
    assert_eq!(variants(enum_named(&file, "CounterCast")), ["Inc"]);
    assert_eq!(variants(enum_named(&file, "CounterInfo")), ["Tick"]);
    assert_eq!(
        structs(&file),
        [
            "CounterClient",
            "CounterWithTimeout",
            "CounterAfter",
            "CounterIdempotent"
        ]
    );

    let user = inherent(&file, "Counter", 0);
    assert_eq!(
        methods(user),
        ["init", "get", "add", "inc", "tick", "terminate", "helper"]
    );
    let generated = inherent(&file, "Counter", 1);
    assert_eq!(methods(generated), ["start", "builder", "whereis"]);

    let client = inherent(&file, "CounterClient", 0);
    assert_eq!(
        methods(client),
        [
            "get",
            "add",
            "inc",
            "send",
            "with_timeout",
            "idempotent",
            "after",
            "branch",
            "stop",
            "stop_with",
            "whereis",
            "inner",
            "into_inner"
        ]
    );
    let get = method(client, "get");
    assert!(
        get.sig.asyncness.is_none()
            && get
                .sig
                .output
                .to_token_stream()
                .to_string()
                .contains("peeper :: Call"),
        "calls return a `peeper::Call`, not an `async fn`'s future"
    );
    assert!(
        method(client, "inc").sig.asyncness.is_none(),
        "casts never await"
    );
    assert_eq!(
        methods(inherent(&file, "CounterWithTimeout", 0)),
        ["get", "add"]
    );
    assert_eq!(methods(inherent(&file, "CounterAfter", 0)), ["inc", "send"]);

    for trait_name in ["Clone", "Debug", "From"] {
        assert!(
            trait_impl(&file, trait_name, "CounterClient").is_some(),
            "CounterClient: {trait_name}"
        );
    }
    assert!(
        trait_impl(&file, "From", "CounterInfo").is_some(),
        "From<Tick> for CounterInfo"
    );

    let registration = file.items.iter().any(|item| {
        matches!(item, Item::Macro(mac) if compact(&mac.mac.path) == "::peeper::__private::inventory::submit")
    });
    assert!(registration, "the server is registered with inventory");
}

#[test]
fn the_server_impl_names_the_generated_types() {
    let file = parse(quote!(), counter());
    let server = trait_impl(&file, "Server", "Counter").expect("impl Server for Counter");
    assert_eq!(
        compact(&server.trait_.as_ref().expect("a trait impl").1),
        "::peeper::Server"
    );
    let types: Vec<String> = server
        .items
        .iter()
        .filter_map(|item| match item {
            ImplItem::Type(ty) => Some(format!("{}={}", ty.ident, compact(&ty.ty))),
            _ => None,
        })
        .collect();
    assert_eq!(
        types,
        [
            "Call=CounterCall",
            "Reply=CounterReply",
            "Cast=CounterCast",
            "Info=CounterInfo",
            "Keep=::peeper::keep::Snapshot"
        ]
    );
    assert_eq!(
        methods(server),
        [
            "init",
            "handle_call",
            "handle_cast",
            "handle_info",
            "terminate"
        ]
    );
}

#[test]
fn shared_handlers_borrow_through_deref_and_never_mark_the_state() {
    let file = parse(quote!(), counter());
    let server = trait_impl(&file, "Server", "Counter").expect("impl Server for Counter");
    let dispatch = compact(method(server, "handle_call"));
    assert!(dispatch.contains("Self::get(&**__state)"), "{dispatch}");
    assert!(
        dispatch.contains("Self::add(&mut**__state,__arg0).await"),
        "{dispatch}"
    );
    let info = compact(method(server, "handle_info"));
    assert!(
        info.contains("Self::tick(&mut**__state,__arg0,__ctx)"),
        "the context keeps its place: {info}"
    );
    let terminate = compact(method(server, "terminate"));
    assert!(
        terminate.contains("Self::terminate(self,__reason)"),
        "{terminate}"
    );
}

#[test]
fn handler_attributes_are_removed_and_other_methods_kept() {
    let file = parse(quote!(), counter());
    let user = inherent(&file, "Counter", 0);
    for item in &user.items {
        if let ImplItem::Fn(method) = item {
            for attr in &method.attrs {
                let path = compact(attr.path());
                assert!(
                    !["call", "cast", "info", "init", "terminate"].contains(&path.as_str()),
                    "{path} left"
                );
            }
        }
    }
    assert!(compact(method(user, "helper")).contains("fnhelper(&self)->u64{1}"));
}

#[test]
fn docs_and_cfg_follow_the_handler() {
    let file = parse(
        quote!(),
        quote! {
            impl Counter {
                /// Only with the feature.
                #[cfg(feature = "extra")]
                #[call]
                fn extra(&self, n: u8) -> u8 { n }
            }
        },
    );
    let is_cfg = |attrs: &[syn::Attribute]| {
        attrs
            .iter()
            .any(|attr| compact(attr) == "#[cfg(feature=\"extra\")]")
    };
    let is_doc = |attrs: &[syn::Attribute]| {
        attrs
            .iter()
            .any(|attr| compact(attr).contains("Onlywiththefeature."))
    };
    let variant = &enum_named(&file, "CounterCall").variants[0];
    assert!(
        is_cfg(&variant.attrs) && is_doc(&variant.attrs),
        "on the variant"
    );
    assert!(
        is_cfg(&enum_named(&file, "CounterReply").variants[0].attrs),
        "on the reply variant"
    );
    let client = method(inherent(&file, "CounterClient", 0), "extra");
    assert!(
        is_cfg(&client.attrs) && is_doc(&client.attrs),
        "on the client method"
    );
    let timeout = method(inherent(&file, "CounterWithTimeout", 0), "extra");
    assert!(
        is_cfg(&timeout.attrs) && is_doc(&timeout.attrs),
        "on the timeout builder's method"
    );
    let server = trait_impl(&file, "Server", "Counter").expect("impl Server");
    let dispatch = compact(method(server, "handle_call"));
    assert!(
        dispatch.contains("#[cfg(feature=\"extra\")]CounterCall::Extra"),
        "on the match arm: {dispatch}"
    );
}

#[test]
fn generic_servers_carry_their_generics_and_are_not_registered() {
    let file = parse(
        quote!(keep = in_place),
        quote! {
            impl<T: Item, L, const N: usize> Queue<T, L, N> where L: Clone, Self: Send {
                #[cast]
                fn push(&mut self, item: T) {}
                #[call]
                fn len(&self) -> usize { 0 }
                #[info]
                fn replace(&mut self, with: Self) {}
            }
        },
    );
    let cast = enum_named(&file, "QueueCast");
    assert_eq!(compact(&cast.generics), "<T:Item,L,constN:usize>");
    // `Self` in the where clause means the server there too.
    assert_eq!(
        compact(&cast.generics.where_clause),
        "whereL:Clone,Queue<T,L,N>:Send"
    );
    // `L` is in no cast: a hidden, uninhabited variant uses it.
    assert_eq!(variants(cast), ["Push", "__Phantom"]);
    assert_eq!(
        compact(&cast.variants[1].fields),
        "(::core::marker::PhantomData<fn()->(L,)>,::core::convert::Infallible)"
    );
    // `Self` in a message means the server, not the enum.
    let info = enum_named(&file, "QueueInfo");
    assert!(compact(&info.variants[0].fields).contains("with:Queue<T,L,N>"));
    assert_eq!(
        variants(enum_named(&file, "QueueReply")),
        ["Len", "__Phantom"]
    );
    // A single argument naming a generic parameter gets no `From` (two could overlap).
    assert!(trait_impl(&file, "From", "QueueInfo").is_none());
    assert!(
        !file.items.iter().any(|item| matches!(item, Item::Macro(_))),
        "generic servers are not registered"
    );
    let server = trait_impl(&file, "Server", "Queue").expect("impl Server");
    assert!(compact(server).contains("typeKeep=::peeper::keep::InPlace"));
    assert_eq!(
        compact(&server.generics.where_clause),
        "whereL:Clone,Self:Send",
        "the impl keeps its own"
    );
}

#[test]
fn info_from_impls_skip_shared_types() {
    let file = parse(
        quote!(),
        quote! {
            impl Counter {
                #[info] fn a(&mut self, x: u8) {}
                #[info] fn b(&mut self, x: u8) {}
                #[info] fn c(&mut self, s: String) {}
                #[info] fn d(&mut self, s: String, n: u8) {}
            }
        },
    );
    let froms: Vec<String> = impls(&file)
        .filter(|item| last_segment(&item.self_ty) == "CounterInfo")
        .map(|item| compact(&item.trait_.as_ref().expect("a trait impl").1))
        .collect();
    assert_eq!(froms, ["::core::convert::From<String>"]);
}

#[test]
fn a_renamed_crate_leaves_no_peeper_path() {
    let file = parse(quote!(crate = ::renamed, keep = projection), counter());
    fn peeper_idents(tokens: TokenStream, found: &mut Vec<String>) {
        for token in tokens {
            match token {
                TokenTree::Ident(ident) if ident == "peeper" => found.push(ident.to_string()),
                TokenTree::Group(group) => peeper_idents(group.stream(), found),
                _ => {}
            }
        }
    }
    // The user's own `peeper::Context` and `peeper::Exit` are theirs: look at generated items only.
    let generated: TokenStream = file
        .items
        .iter()
        .skip(1)
        .map(ToTokens::to_token_stream)
        .collect();
    let mut found = Vec::new();
    peeper_idents(generated.clone(), &mut found);
    assert!(found.is_empty(), "`peeper` left in:\n{generated}");
    assert!(compact(&generated).contains("::renamed::keep::Projection"));
}

#[test]
fn mistakes_are_all_reported_and_the_impl_is_kept() {
    let output = expand(
        quote!(keep = copy, color = red),
        quote! {
            impl Counter {
                #[call]
                fn get(self) -> u64 { 0 }
                #[cast]
                fn set(&mut self, value: &u64) {}
                fn start(&self) {}
            }
        },
    );
    let text = output.to_string();
    assert_eq!(text.matches("compile_error").count(), 5, "{text}");
    for expected in [
        "unknown keep strategy `copy`",
        "unknown option `color`",
        "cannot take `self`",
        "instead of `&u64`",
        "`start` clashes",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    let file: File = syn::parse2(output).expect("the fallback parses");
    assert_eq!(
        methods(inherent(&file, "Counter", 0)),
        ["get", "set", "start"],
        "the user's impl is still there"
    );
    assert!(
        trait_impl(&file, "Server", "Counter").is_some(),
        "a stub keeps `Context<Self>` well-formed"
    );
    // Stubs of what the rest of the crate may name, so that the mistakes are the only errors.
    assert_eq!(
        enums(&file)
            .map(|item| item.ident.to_string())
            .collect::<Vec<_>>(),
        ["CounterCall", "CounterCast", "CounterInfo"]
    );
    assert_eq!(
        variants(enum_named(&file, "CounterCast")),
        ["Set"],
        "a variant per handler"
    );
    let set = &enum_named(&file, "CounterCast").variants[0];
    assert!(set.fields.is_empty(), "the borrowed field is left out");
    assert_eq!(structs(&file), ["CounterClient"]);
    assert_eq!(
        methods(inherent(&file, "CounterClient", 0))[..2],
        ["get", "set"],
        "a client method per handler"
    );
    assert_eq!(
        methods(inherent(&file, "Counter", 1)),
        ["builder", "whereis"],
        "no stub `start`: the block defines its own (a reported clash)"
    );
}

#[test]
fn not_an_impl_is_given_back() {
    let output = expand(
        quote!(),
        quote!(
            struct Counter(u64);
        ),
    );
    let text = output.to_string();
    assert!(text.contains("goes on the `impl` block"), "{text}");
    assert!(text.contains("struct Counter (u64) ;"), "{text}");
}
