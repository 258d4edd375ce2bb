//! The counter of the API's section 1, used as its docs show, under `#![deny(warnings)]`.
#![deny(warnings)]

use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Counter {
    count: u64,
    ticks: u64,
}

/// A raw message.
#[derive(Debug)]
pub struct Tick;

#[peeper::server]
impl Counter {
    /// Runs at every start of the worker.
    #[init]
    async fn init(&mut self, ctx: &mut peeper::Context<Self>) {
        let _ = ctx.incarnation();
    }

    #[call]
    fn get(&self) -> u64 {
        self.count
    }

    #[call]
    async fn add(&mut self, by: u64) -> u64 {
        self.count += by;
        self.count
    }

    #[cast]
    fn inc(&mut self) {
        self.count += 1
    }

    /// Raw ("info") messages, sent with `send`, may carry any owned type.
    #[info]
    fn tick(&mut self, _tick: Tick, _ctx: &mut peeper::Context<Self>) {
        self.ticks += 1;
    }

    /// Runs on a normal stop and when the branch gives up after too many restarts.
    #[terminate]
    fn terminate(&mut self, _reason: &peeper::Exit) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counter: CounterClient = Counter::start(Counter::default()).await?;
    counter.inc()?;
    assert_eq!(counter.add(2).await?, 3);
    counter.send(Tick)?;
    assert_eq!(counter.with_timeout(Duration::from_secs(1)).get().await?, 3);
    let _timer: peeper::Timer = counter.after(Duration::from_millis(1)).inc()?;
    let branch: &peeper::Branch = counter.branch();
    assert_eq!(branch.restarts(), 0);

    let named = Counter::builder(Counter::default()).name("counter").start().await?;
    let same: Option<CounterClient> = Counter::whereis("counter");
    assert!(same.is_some());
    named.stop().await?;
    counter.stop().await?;
    Ok(())
}
