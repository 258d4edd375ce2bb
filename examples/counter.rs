//! A counter that crashes on purpose and keeps its count.
//!
//! Run it with `cargo run --example counter`.

use peeper::{CallError, Context, Exit, Server, Tracked};

/// The state: the struct *is* the server.
#[derive(Clone, Debug, Default)]
struct Counter {
    count: u64,
}

/// The calls the counter answers.
enum Call {
    Get,
    /// Adds to the count, then panics: the change must not be kept.
    AddThenPanic(u64),
}

impl Server for Counter {
    type Call = Call;
    type Reply = u64;
    type Cast = u64;
    type Info = ();
    type Keep = peeper::keep::Snapshot;

    async fn init(
        state: &mut Tracked<Self>,
        ctx: &mut Context<Self>,
    ) -> Result<(), peeper::InitError> {
        println!(
            "  [worker {}] init with count = {}",
            ctx.incarnation(),
            state.count
        );
        Ok(())
    }

    async fn handle_call(state: &mut Tracked<Self>, call: Call, _: &mut Context<Self>) -> u64 {
        match call {
            Call::Get => state.count,
            Call::AddThenPanic(by) => {
                state.count += by;
                panic!("the counter refuses to count to {}", state.count);
            }
        }
    }

    async fn handle_cast(state: &mut Tracked<Self>, by: u64, _: &mut Context<Self>) {
        state.count += by;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Silence the default panic report: the crash below is on purpose and the caller hears of it.
    // `RUST_LOG=peeper=info cargo run --example counter` shows peeper's own lifecycle events.
    std::panic::set_hook(Box::new(|_| {}));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    println!("starting a counter");
    let counter = Counter::builder(Counter::default())
        .name("counter")
        .start()
        .await?;

    for _ in 0..3 {
        counter.cast(1)?;
    }
    println!("after 3 casts: count = {}", counter.call(Call::Get).await?);

    println!("crashing it with a handler that adds 100 and panics");
    let restarted = counter.branch().next_restart();
    match counter.call(Call::AddThenPanic(100)).await {
        Err(CallError::Crashed(Exit::Panicked { message })) => {
            println!("  the caller was told: {message}")
        }
        other => println!("  unexpected: {other:?}"),
    }
    restarted.await?;
    println!(
        "after the crash: count = {} (the +100 was not kept)",
        counter.call(Call::Get).await?
    );

    println!("2 casts, then the worker is killed at once (handled or still queued, none is lost)");
    counter.cast(1)?;
    counter.cast(1)?;
    let restarted = counter.branch().next_restart();
    counter.branch().kill_worker()?;
    let incarnation = restarted.await?;
    println!(
        "after the kill: count = {} (worker incarnation {incarnation})",
        counter.call(Call::Get).await?
    );

    let same = peeper::whereis::<Counter>("counter").ok_or("the name is registered")?;
    println!(
        "found by name: count = {}, restarts = {}",
        same.call(Call::Get).await?,
        same.branch().restarts()
    );

    counter.stop().await?;
    println!(
        "stopped; the name is free again: {}",
        peeper::whereis::<Counter>("counter").is_none()
    );
    Ok(())
}
