//! A server that caches slow lookups in a kept table, crashes on purpose, and comes back with its
//! cache still warm and its backend connection still open.
//!
//! Run it with `cargo run --example cache`; add `RUST_LOG=peeper=info` to see peeper's own
//! lifecycle events.

use std::time::{Duration, Instant};

use peeper::{CallError, Exit, ReadOnly, Table, TableError};

/// A connection to a slow backend: expensive to open, and not `Clone`, so it cannot be part of a
/// snapshot-kept state. A kept value holds it instead.
#[derive(Debug)]
pub struct Backend {
    opened_by: u64,
    calls: u64,
}

impl Backend {
    fn connect(incarnation: u64) -> Backend {
        println!("  [worker {incarnation}] connecting to the backend (once for the whole branch)");
        Backend {
            opened_by: incarnation,
            calls: 0,
        }
    }

    /// A lookup that takes a while.
    async fn define(&mut self, word: &str) -> String {
        self.calls += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        format!("{word}: a word with {} letters", word.chars().count())
    }
}

/// The state: what the server answered so far. The cache is not in it: it lives in a kept table,
/// which crashes do not touch and which is never copied.
#[derive(Clone, Debug, Default)]
pub struct Dictionary {
    answered: u64,
}

#[peeper::server]
impl Dictionary {
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) -> Result<(), TableError> {
        if ctx.kept::<Backend>().is_none() {
            let backend = Backend::connect(ctx.incarnation());
            ctx.keep(backend);
        }
        let cache = ctx.table::<String, String>("cache")?;
        println!(
            "  [worker {}] init: {} answered, the cache ({}) holds {} entries",
            ctx.incarnation(),
            self.answered,
            cache.id(),
            cache.len()
        );
        Ok(())
    }

    /// The definition of `word`, and whether it came from the cache.
    #[call]
    async fn define(
        &mut self,
        word: String,
        ctx: &mut peeper::Context<Self>,
    ) -> Result<(String, bool), TableError> {
        let cache = ctx.table::<String, String>("cache")?;
        self.answered += 1;
        if let Some(definition) = cache.get(&word) {
            return Ok((definition, true));
        }
        let backend = ctx
            .kept_mut::<Backend>()
            .expect("init keeps a backend before any call");
        let definition = backend.define(&word).await;
        cache.insert(word, definition.clone());
        Ok((definition, false))
    }

    /// How many times the backend was called, and by which worker it was opened.
    #[call]
    fn backend(&self, ctx: &mut peeper::Context<Self>) -> (u64, u64) {
        ctx.kept::<Backend>()
            .map_or((0, 0), |backend| (backend.calls, backend.opened_by))
    }

    /// Crashes on purpose.
    #[call]
    fn crash(&mut self) {
        self.answered = 1_000_000; // not kept: the state goes back to the last completed handler's
        panic!("the dictionary tripped over a typo");
    }
}

async fn define(
    dictionary: &DictionaryClient,
    word: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let (definition, cached) = dictionary.define(word.to_owned()).await??;
    let took = started.elapsed();
    let source = if cached { "cache hit " } else { "cache miss" };
    println!("  {source} in {took:>9.1?}  {definition}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The crashes below are on purpose: peeper catches them, tells the caller and logs them once
    // (run with `RUST_LOG=peeper=info` to see it); no backtrace on stderr.
    peeper::quiet_caught_panics();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    println!("starting a dictionary named \"dictionary\"");
    let dictionary = Dictionary::builder(Dictionary::default())
        .name("dictionary")
        .start()
        .await?;

    println!("warming the cache");
    define(&dictionary, "peeper").await?;
    define(&dictionary, "keeper").await?;
    define(&dictionary, "peeper").await?;

    println!("crashing it with a handler that panics");
    let restarted = dictionary.branch().next_restart();
    match dictionary.crash().await {
        Err(CallError::Crashed(Exit::Panicked { message })) => {
            println!("  the caller was told: {message}")
        }
        other => println!("  unexpected: {other:?}"),
    }
    restarted.await?;

    println!("after the crash, the cache is still warm");
    define(&dictionary, "peeper").await?;
    define(&dictionary, "keeper").await?;

    println!("killing the worker");
    let restarted = dictionary.branch().next_restart();
    dictionary.branch().kill_worker()?;
    restarted.await?;
    define(&dictionary, "keeper").await?;
    define(&dictionary, "worker").await?;

    let (calls, opened_by) = dictionary.backend().await?;
    println!(
        "the backend was called {calls} times for 7 lookups, on the connection worker {opened_by} opened"
    );

    println!("another task reads the cache by name (it is protected: others may read it)");
    let cache: ReadOnly<Table<String, String>> =
        peeper::table::<Dictionary, _>("dictionary", "cache")?;
    let mut words: Vec<String> = cache.to_vec()?.into_iter().map(|(word, _)| word).collect();
    words.sort();
    println!("  {} cached words: {}", cache.len()?, words.join(", "));

    dictionary.stop().await?;
    match cache.len() {
        Err(error) => println!("stopped; the table went with the branch: {error}"),
        Ok(len) => println!("stopped, yet the table still holds {len} entries?"),
    }
    Ok(())
}
