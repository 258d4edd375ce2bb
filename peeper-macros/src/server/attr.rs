//! The options of `#[peeper::server(...)]` and the handler attributes (`#[call]`, ...).

use proc_macro2::Ident;
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::parse::Parser as _;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Meta, Path, Token, parse_quote};

use crate::errors::Errors;

/// `#[peeper::server(keep = ..., crate = ...)]`.
pub(crate) struct Args {
    /// The path of the runtime crate: `::peeper` unless renamed with `crate = path`.
    pub(crate) krate: Path,
    /// How the state is kept between handlers.
    pub(crate) keep: Keep,
    /// `prefix = Name`: the base of every generated type's name, instead of the server's name
    /// (`NameCall`, `NameClient`, ...), for a server whose generated names clash with others.
    pub(crate) prefix: Option<Ident>,
    /// `client = Name`: the typed client's name, instead of `{Server}Client`.
    pub(crate) client: Option<Ident>,
    /// `remote`: the messages and replies derive serde's traits, and the server implements
    /// `peeper::Remote` (it can be called from other processes).
    pub(crate) remote: bool,
}

/// The keep strategies the `keep` option names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    Snapshot,
    Projection,
    InPlace,
}

impl Keep {
    const ALL: [(&'static str, Keep); 3] = [
        ("snapshot", Keep::Snapshot),
        ("projection", Keep::Projection),
        ("in_place", Keep::InPlace),
    ];

    /// The runtime type implementing the strategy.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Keep::Snapshot => "Snapshot",
            Keep::Projection => "Projection",
            Keep::InPlace => "InPlace",
        }
    }
}

const EXPECTED_OPTIONS: &str = "expected `keep = snapshot | projection | in_place`, `remote`, \
     `crate = path::to::peeper`, `client = ClientName` or `prefix = Name`";

impl Args {
    /// Parses the attribute's arguments, recording every mistake and going on with the defaults.
    pub(crate) fn parse(tokens: TokenStream, errors: &Errors) -> Args {
        let mut args = Args {
            krate: parse_quote!(::peeper),
            keep: Keep::Snapshot,
            prefix: None,
            client: None,
            remote: false,
        };
        let Some(metas) = errors.ok(Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens))
        else {
            return args;
        };
        let mut seen: Vec<String> = Vec::new();
        for meta in metas {
            let key = meta.path();
            let name = key.to_token_stream().to_string();
            if seen.contains(&name) {
                errors.error(key, format_args!("duplicate option `{name}`: give it once"));
                continue;
            }
            seen.push(name.clone());
            let value = match &meta {
                Meta::NameValue(pair) => Some(&pair.value),
                Meta::Path(_) | Meta::List(_) => None,
            };
            match (name.as_str(), value) {
                ("remote", None) if matches!(meta, Meta::Path(_)) => args.remote = true,
                ("remote", _) => errors.error(
                    &meta,
                    "`remote` takes no value: `#[peeper::server(remote)]`",
                ),
                ("keep", Some(value)) => {
                    if let Some(keep) = keep_strategy(value, errors) {
                        args.keep = keep;
                    }
                }
                ("crate", Some(value)) => match value {
                    Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
                        args.krate = path.path.clone();
                    }
                    other => errors.error(
                        other,
                        "`crate` takes the path of the peeper crate, e.g. `crate = ::my_peeper`",
                    ),
                },
                ("prefix" | "client", Some(value)) => {
                    let ident = match value {
                        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
                            path.path.get_ident().cloned()
                        }
                        _ => None,
                    };
                    match (ident, name.as_str()) {
                        (Some(ident), "prefix") => args.prefix = Some(ident),
                        (Some(ident), _) => args.client = Some(ident),
                        (None, option) => errors.error(
                            value,
                            format_args!(
                                "`{option}` takes a type name, e.g. `{option} = {}`",
                                if option == "prefix" { "Ledger" } else { "LedgerHandle" }
                            ),
                        ),
                    }
                }
                ("prefix" | "client", None) => errors.error(
                    &meta,
                    format_args!(
                        "`{name}` takes a value: `{name} = {}`",
                        if name == "prefix" { "Ledger" } else { "LedgerHandle" }
                    ),
                ),
                ("keep", None) => errors.error(
                    &meta,
                    "`keep` takes a value: `keep = snapshot` (the default), `keep = projection` or `keep = in_place`",
                ),
                ("crate", None) => {
                    errors.error(&meta, "`crate` takes a value: `crate = ::path::to::peeper`");
                }
                (_, _) => errors.error(key, format_args!("unknown option `{name}`: {EXPECTED_OPTIONS}")),
            }
        }
        args
    }
}

fn keep_strategy(value: &Expr, errors: &Errors) -> Option<Keep> {
    let name = match value {
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident().map(ToString::to_string),
        _ => None,
    };
    let found = name
        .as_deref()
        .and_then(|name| Keep::ALL.iter().find(|(known, _)| *known == name));
    if found.is_none() {
        let shown = value.to_token_stream().to_string();
        errors.error(
            value,
            format_args!(
                "unknown keep strategy `{shown}`: expected `snapshot` (a full copy, the default), \
                 `projection` (what `peeper::keep::Project` keeps) or `in_place` (no copy)"
            ),
        );
    }
    found.map(|(_, keep)| *keep)
}

/// The kind of a handler, from its attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Call,
    Cast,
    Info,
    Init,
    Terminate,
    Timeout,
}

impl Kind {
    /// The handler attribute this is, if any.
    pub(crate) fn of(attr: &Attribute) -> Option<Kind> {
        let ident = attr.path().get_ident()?;
        Some(match ident.to_string().as_str() {
            "call" => Kind::Call,
            "cast" => Kind::Cast,
            "info" => Kind::Info,
            "init" => Kind::Init,
            "terminate" => Kind::Terminate,
            "timeout" => Kind::Timeout,
            _ => return None,
        })
    }

    /// The attribute as written: `#[call]`.
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Kind::Call => "#[call]",
            Kind::Cast => "#[cast]",
            Kind::Info => "#[info]",
            Kind::Init => "#[init]",
            Kind::Terminate => "#[terminate]",
            Kind::Timeout => "#[timeout]",
        }
    }

    /// Whether the handler handles a message, and so gets a variant and a client method.
    pub(crate) fn is_message(self) -> bool {
        matches!(self, Kind::Call | Kind::Cast | Kind::Info)
    }
}

/// Whether `attr` is one of `#[doc]` (carried onto everything generated from a handler).
pub(crate) fn is_doc(attr: &Attribute) -> bool {
    attr.path().is_ident("doc")
}

/// Whether `attr` is a `#[cfg]` (carried onto everything generated from a handler).
pub(crate) fn is_cfg(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg")
}
