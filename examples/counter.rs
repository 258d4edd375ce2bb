//! A counter that crashes on purpose and keeps its count.
//!
//! Run it with `cargo run --example counter`; add `RUST_LOG=peeper=info` to see peeper's own
//! lifecycle events.

use peeper::{CallError, Exit};

/// The state: the struct *is* the server.
#[derive(Clone, Debug, Default)]
pub struct Counter {
    count: u64,
}

#[peeper::server]
impl Counter {
    /// Runs at every start of a worker, on the kept state after a crash.
    #[init]
    fn init(&mut self, ctx: &mut peeper::Context<Self>) {
        println!(
            "  [worker {}] init with count = {}",
            ctx.incarnation(),
            self.count
        );
    }

    /// The current count: a `&self` handler, so the state is never copied for it.
    #[call]
    fn get(&self) -> u64 {
        self.count
    }

    /// Adds to the count, then panics: the change must not be kept.
    #[call]
    fn add_then_panic(&mut self, by: u64) -> u64 {
        self.count += by;
        panic!("the counter refuses to count to {}", self.count);
    }

    /// Adds one; nobody waits for it.
    #[cast]
    fn inc(&mut self) {
        self.count += 1;
    }

    #[terminate]
    fn terminate(&mut self, reason: &Exit) {
        println!("  [terminate] {reason}, count = {}", self.count);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The crashes below are on purpose: peeper catches them, tells the caller and logs them once
    // (run with `RUST_LOG=peeper=info` to see it); no backtrace on stderr.
    peeper::quiet_caught_panics();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    println!("starting a counter named \"counter\"");
    let counter = Counter::builder(Counter::default())
        .name("counter")
        .start()
        .await?;

    for _ in 0..3 {
        counter.inc()?;
    }
    println!("after 3 casts: count = {}", counter.get().await?);

    println!("crashing it with a handler that adds 100 and panics");
    let restarted = counter.branch().next_restart();
    match counter.add_then_panic(100).await {
        Err(CallError::Crashed(Exit::Panicked { message })) => {
            println!("  the caller was told: {message}")
        }
        other => println!("  unexpected: {other:?}"),
    }
    restarted.await?;
    println!(
        "after the crash: count = {} (the +100 was not kept)",
        counter.get().await?
    );

    println!("2 casts, then the worker is killed at once (handled or still queued, none is lost)");
    counter.inc()?;
    counter.inc()?;
    let restarted = counter.branch().next_restart();
    counter.branch().kill_worker()?;
    let incarnation = restarted.await?;
    println!(
        "after the kill: count = {} (worker incarnation {incarnation})",
        counter.get().await?
    );

    let same = Counter::whereis("counter").ok_or("the name is registered")?;
    println!(
        "found by name: count = {}, restarts = {}",
        same.get().await?,
        same.branch().restarts()
    );

    counter.stop().await?;
    println!(
        "stopped; the name is free again: {}",
        Counter::whereis("counter").is_none()
    );
    Ok(())
}
