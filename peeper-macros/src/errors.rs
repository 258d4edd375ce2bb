//! Error collection: every stage reports all the mistakes it finds, and the user sees them all at
//! once, each with its own span (the approach of serde_derive's `internals/ctxt.rs`).

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;

/// The mistakes found so far. Must be consumed with [`Errors::check`]; dropping it unchecked is a
/// bug in this crate and panics (outside of an unwinding panic).
pub(crate) struct Errors {
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Errors {
    pub(crate) fn new() -> Self {
        Errors {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// Records a mistake located at `tokens`.
    pub(crate) fn error(&self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    /// Records a parse error, or any ready-made error.
    pub(crate) fn push(&self, error: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("`Errors` used after `check`: a bug in peeper-macros")
            .push(error);
    }

    /// Records the error of `result`, if any, and returns its value.
    pub(crate) fn ok<T>(&self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// All the mistakes, combined into one error, or `Ok` if there were none.
    pub(crate) fn check(self) -> syn::Result<()> {
        let errors = self.errors.borrow_mut().take().unwrap_or_default();
        let mut errors = errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            panic!("`Errors` dropped without `check`: a bug in peeper-macros");
        }
    }
}

/// Tokens as a user would write them, for messages: `&str`, not `& str`; `std::fmt::Display`, not
/// `std :: fmt :: Display`.
pub(crate) fn shown(tokens: impl ToTokens) -> String {
    let text = tokens.into_token_stream().to_string();
    let mut shown = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let previous = shown.chars().last();
            let next = chars.peek().copied();
            let glued_after = matches!(previous, Some('&' | '<' | ':' | '(' | '[' | '!' | '#'));
            let glued_before = matches!(next, Some('<' | '>' | ',' | ':' | ')' | ']' | '(' | ';'));
            // `-> T` and `'a mut` keep their spaces; `T: 'a` too.
            let arrow = previous == Some('>') && shown.ends_with("->");
            if (glued_after || glued_before)
                && !arrow
                && !(previous == Some(':') && next == Some('\''))
            {
                continue;
            }
        }
        shown.push(c);
    }
    shown
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::shown;

    #[test]
    fn types_are_shown_as_written() {
        assert_eq!(shown(quote!(&str)), "&str");
        assert_eq!(shown(quote!(&'a mut Vec<u8>)), "&'a mut Vec<u8>");
        assert_eq!(
            shown(quote!(impl std::fmt::Display)),
            "impl std::fmt::Display"
        );
        assert_eq!(
            shown(quote!(HashMap<String, Vec<(u8, u16)>>)),
            "HashMap<String, Vec<(u8, u16)>>"
        );
        assert_eq!(shown(quote!(fn(u8) -> u8)), "fn(u8) -> u8");
        assert_eq!(shown(quote!([u8; 4])), "[u8; 4]");
        assert_eq!(
            shown(quote!(peeper::Context<Other>)),
            "peeper::Context<Other>"
        );
    }
}
