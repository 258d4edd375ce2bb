//! Three cycles of "increment three times, then get killed": the count goes 1 to 9 and
//! nothing is lost, as in the Elixir forum demo that keeps a public ETS table.
//!
//! Run it with `cargo run --example dont_lose`.

use peeper::{Context, Server, Tracked};

#[derive(Clone, Debug, Default)]
struct Counter(u64);

impl Server for Counter {
    type Call = ();
    type Reply = u64;
    type Cast = ();
    type Info = ();
    type Keep = peeper::keep::Snapshot;

    async fn handle_call(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) -> u64 {
        state.0
    }

    async fn handle_cast(state: &mut Tracked<Self>, (): (), _: &mut Context<Self>) {
        state.0 += 1;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counter = Counter::start(Counter::default()).await?;
    for cycle in 1..=3 {
        for _ in 0..3 {
            counter.cast(())?;
            println!("{}", counter.call(()).await?);
        }
        let restarted = counter.branch().next_restart();
        counter.branch().kill_worker()?;
        let incarnation = restarted.await?;
        println!("-- cycle {cycle}: worker killed, incarnation {incarnation} took over");
    }
    assert_eq!(counter.call(()).await?, 9, "nothing was lost");
    counter.stop().await?;
    Ok(())
}
