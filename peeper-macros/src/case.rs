//! Names of generated items, derived from the user's names.

use proc_macro2::Ident;
use quote::format_ident;
use syn::ext::IdentExt as _;

/// The variant name of a handler: `add_item` becomes `AddItem`, `r#type` becomes `Type`.
/// The variant keeps the span of the method's name, so errors about it point there.
pub(crate) fn variant(method: &Ident) -> Ident {
    let name = method.unraw().to_string();
    let mut camel = String::with_capacity(name.len());
    for part in name.split('_').filter(|part| !part.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            camel.extend(first.to_uppercase());
            camel.push_str(chars.as_str());
        }
    }
    if camel.is_empty() || camel.starts_with(|c: char| c.is_ascii_digit()) {
        // `_1`: no letter to start a type name with.
        camel.insert(0, 'H');
    }
    Ident::new(&camel, method.span())
}

/// `Counter` + `Call` = `CounterCall`, with the span of the server's name.
pub(crate) fn item(server: &Ident, suffix: &str) -> Ident {
    format_ident!("{}{}", server.unraw(), suffix, span = server.span())
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::*;

    fn camel(name: &str) -> String {
        let ident = match name.strip_prefix("r#") {
            Some(raw) => Ident::new_raw(raw, Span::call_site()),
            None => Ident::new(name, Span::call_site()),
        };
        variant(&ident).to_string()
    }

    #[test]
    fn upper_camel_case() {
        assert_eq!(camel("get"), "Get");
        assert_eq!(camel("add_item"), "AddItem");
        assert_eq!(camel("r#type"), "Type");
        assert_eq!(camel("__private_thing"), "PrivateThing");
        assert_eq!(camel("getX"), "GetX");
        assert_eq!(camel("get_2"), "Get2");
        assert_eq!(camel("_1"), "H1");
    }

    #[test]
    fn item_names() {
        let server = Ident::new("Counter", Span::call_site());
        assert_eq!(item(&server, "Call").to_string(), "CounterCall");
        let raw = Ident::new_raw("Type", Span::call_site());
        assert_eq!(item(&raw, "Client").to_string(), "TypeClient");
    }
}
