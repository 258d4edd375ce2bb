//! The generated code names everything by absolute path: a server compiles under
//! `#![no_implicit_prelude]`, with the runtime crate renamed (`crate = ::peeper_renamed`) and
//! `Result`, `Ok`, `Err`, `Option`, `Some`, `None`, `Box`, `Vec`, `String`, `Clone`, `Send`,
//! `Default`... shadowed by types of the same names, and with unit structs named like the
//! parameters a careless expansion would introduce (`state`, `name`, `message`, `client`, ...).
//!
//! Cargo refuses the same package twice under two names in one manifest, so the renamed crate is
//! an `extern crate .. as ..`; `::peeper` stays reachable here, and the absence of any `peeper`
//! path in the output is checked by the macro crate's expansion tests instead.

extern crate peeper as peeper_renamed;

mod hygiene {
    #![no_implicit_prelude]
    #![allow(dead_code, non_camel_case_types)]

    // Shadows: had the generated code used any of these names unqualified, it would not compile.
    pub(crate) struct Result;
    pub(crate) struct Ok;
    pub(crate) struct Err;
    pub(crate) struct Option;
    pub(crate) struct Some;
    pub(crate) struct None;
    pub(crate) struct Box;
    pub(crate) struct Vec;
    pub(crate) struct String;
    pub(crate) struct Clone;
    pub(crate) struct Copy;
    pub(crate) struct Send;
    pub(crate) struct Sync;
    pub(crate) struct Default;
    pub(crate) struct Debug;
    pub(crate) struct From;
    pub(crate) struct Into;
    pub(crate) struct Future;
    pub(crate) struct Duration;
    pub(crate) struct Client;
    pub(crate) struct Server;
    pub(crate) trait Iterator {}
    pub(crate) trait Fn {}
    pub(crate) struct peeper;
    // A unit struct in scope turns a binding of its name into a pattern: every parameter and
    // local the expansion introduces must be `__`-prefixed to stay a binding.
    pub(crate) struct state;
    pub(crate) struct name;
    pub(crate) struct message;
    pub(crate) struct client;
    pub(crate) struct reason;
    pub(crate) struct reply;
    pub(crate) struct timeout;
    pub(crate) struct delay;
    pub(crate) mod core {}
    pub(crate) mod std {}
    pub(crate) mod tokio {}
    pub(crate) mod inventory {}

    #[derive(::core::clone::Clone, ::core::default::Default, ::core::fmt::Debug)]
    pub(crate) struct Tally {
        pub(crate) total: u64,
        pub(crate) notes: ::std::vec::Vec<::std::string::String>,
    }

    #[derive(::core::fmt::Debug)]
    pub(crate) struct Note(pub(crate) ::std::string::String);

    #[::peeper_renamed::server(crate = ::peeper_renamed, keep = snapshot)]
    impl Tally {
        #[init]
        fn init(
            &mut self,
            ctx: &mut ::peeper_renamed::Context<Self>,
        ) -> ::core::result::Result<(), ::std::string::String> {
            let _ = ctx.incarnation();
            ::core::result::Result::Ok(())
        }

        #[call]
        fn total(&self) -> u64 {
            self.total
        }

        #[call]
        async fn add(&mut self, by: u64) -> ::core::result::Result<u64, ::std::string::String> {
            self.total += by;
            ::core::result::Result::Ok(self.total)
        }

        #[cast]
        fn reset(&mut self) -> ::core::result::Result<(), ::std::string::String> {
            self.total = 0;
            ::core::result::Result::Ok(())
        }

        /// Answers through its reply handle (the deferred-reply dispatch).
        #[call]
        fn doubled(&self, answer: ::peeper_renamed::ReplyTo<u64>) {
            answer.send(self.total * 2);
        }

        #[timeout]
        fn idle(&mut self) {}

        #[info]
        fn note(&mut self, note: Note) {
            self.notes.push(note.0);
        }

        #[terminate]
        async fn terminate(&mut self, why: &::peeper_renamed::Exit) {
            let _ = why;
        }
    }

    fn fresh() -> ::std::vec::Vec<u8> {
        ::std::vec::Vec::new()
    }

    /// A projected state under the same conditions.
    #[derive(::peeper_renamed::State)]
    #[keep(crate = ::peeper_renamed)]
    pub(crate) struct Projected<T> {
        pub(crate) kept: ::std::vec::Vec<T>,
        #[keep(skip)]
        pub(crate) cache: ::std::vec::Vec<u8>,
        #[keep(skip, with = fresh)]
        pub(crate) rebuilt: ::std::vec::Vec<u8>,
    }

    #[::peeper_renamed::server(crate = ::peeper_renamed, keep = projection)]
    impl<T: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static> Projected<T> {
        #[cast]
        fn push(&mut self, item: T) {
            self.kept.push(item);
        }

        #[call]
        fn len(&self) -> usize {
            self.kept.len()
        }
    }
}

#[tokio::test]
async fn a_server_compiles_and_runs_without_the_prelude() -> Result<(), Box<dyn std::error::Error>>
{
    use hygiene::{Note, Projected, Tally, TallyClient};

    let tally: TallyClient = Tally::start(Tally::default()).await?;
    assert_eq!(tally.add(2).await?, Ok(2));
    assert_eq!(tally.doubled().await?, 4);
    tally.send(Note("hello".to_owned()))?;
    tally.reset()?;
    assert_eq!(tally.total().await?, 0);
    tally.stop().await?;

    let projected = Projected::<u8>::start(Projected {
        kept: Vec::new(),
        cache: Vec::new(),
        rebuilt: Vec::new(),
    })
    .await?;
    projected.push(1)?;
    assert_eq!(projected.len().await?, 1);
    projected.stop().await?;
    assert!(peeper_renamed::servers().any(|kind| kind.is::<Tally>()));
    Ok(())
}
